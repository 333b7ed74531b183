# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import importlib
import subprocess
import sys

import pytest

from medvl_recipes.cli import COMMANDS, main


def test_help_lists_every_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in COMMANDS.items():
        lines = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1 and help_text in lines[0]


def test_every_command_module_has_a_cli_entry():
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(getattr(module, "cli", None)), f"{module_name} (medvl {name}) has no cli(argv)"


def test_unknown_command_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "medvl_recipes.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "tiny-models" in result.stdout


def test_suggest_finds_the_closest_name_across_dash_styles():
    from medvl_recipes.errors import suggest

    assert suggest("learnig_rate", ["learning_rate", "lr_scheduler_type"]) == "learning_rate"
    assert suggest("output-dir", ["output_dir", "logging_dir"]) == "output_dir"
    assert suggest("zzz", ["learning_rate"]) is None


def test_normalize_options_rewrites_names_only():
    from medvl_recipes.cli import normalize_options

    argv = ["--output_dir", "a_b-c", "--lora-target-modules=.*cross_attn\\..*_proj", "-h", "--", "--x_y"]
    assert normalize_options(argv, underscores=False) == [
        "--output-dir",
        "a_b-c",
        "--lora-target-modules=.*cross_attn\\..*_proj",
        "-h",
        "--",
        "--x-y",
    ]
    assert normalize_options(["--config=r.yaml", "--output-dir=o"], underscores=True) == [
        "--config",
        "r.yaml",
        "--output_dir=o",
    ]


def test_argparse_commands_accept_the_underscore_spelling(tmp_path, capsys):
    # Reaching the adapter check means `--output_dir` was parsed as `--output-dir`.
    assert main(["merge-adapter", "--adapter", str(tmp_path), "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no LoRA adapter here" in err and "unrecognized" not in err


def test_train_commands_accept_the_dash_spelling(repo_root, tmp_path, capsys):
    smoke = repo_root / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
    argv = ["train-decoder", "--config", str(smoke), "--output-dir", str(tmp_path), "--dataset-name", str(tmp_path),
            "--model-name-or-path", str(tmp_path / "model")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # The dash spellings reached the trainer as its fields: it complains about the model folder they named.
    assert len(err) == 1 and f"--model_name_or_path {tmp_path}/model: no such folder" in err[0]


def test_unknown_flags_are_one_line_with_a_suggestion(repo_root, capsys):
    smoke = repo_root / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
    assert main(["train-decoder", "--config", str(smoke), "--learnig-rate", "1e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown option --learnig_rate; did you mean --learning_rate?" in err[0]
    assert main(["tiny-models", "--output-dir", "x", "--sed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean --seed?" in err[0]
    assert main(["push", "modle"]) == 2
    assert "did you mean 'model'?" in capsys.readouterr().err
    assert main(["genrate"]) == 2
    assert "Did you mean `medvl generate`?" in capsys.readouterr().err


def test_train_help_is_short_and_starts_with_config(capsys):
    for name in ("train-encoder", "train-decoder"):
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: medvl {name} --config RECIPE.yaml")
        assert len(out.splitlines()) < 60 and "--help-all" in out
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help-all"])
        assert exit_info.value.code == 0
        assert len(capsys.readouterr().out.splitlines()) > 300


def test_an_uncached_hub_id_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    from medvl_recipes.cli import main

    argv = ["eval", "--predictions", str(tmp_path / "none.jsonl"), "--encoder", "nobody/not-cached", "--output-dir",
            str(tmp_path / "out")]  # fmt: skip
    (tmp_path / "none.jsonl").write_text('{"id": "1", "reference": "No effusion.", "generation": "No effusion."}\n')
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nobody/not-cached" in err and "Traceback" not in err
    with pytest.raises(Exception, match="not-cached|snapshot|offline"):
        main(["--debug", *argv])
