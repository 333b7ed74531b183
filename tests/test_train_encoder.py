# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medvl_recipes.cli import main as medvl_main
from medvl_recipes.errors import MedvlError
from medvl_recipes.train_encoder import RETRIEVAL_FILE, build_parser, cli
from tests.fixtures.factories import write_prepared_dataset


RECIPES = sorted(Path(__file__).resolve().parents[1].glob("recipes/siglip-base-patch16-224/encoder/*.yaml"))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return write_prepared_dataset(tmp_path_factory.mktemp("pairs") / "dataset", n_train=16, n_val=8, seed=0)


def _argv(model_dir, dataset_dir, output_dir, *extra):
    return [
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(dataset_dir),
        "--output_dir",
        str(output_dir),
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--per_device_train_batch_size",
        "2",
        "--per_device_eval_batch_size",
        "8",
        "--gradient_accumulation_steps",
        "2",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        "--disable_tqdm",
        "true",
        "--seed",
        "0",
        *extra,
    ]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipes_parse(recipe):
    # The GPU recipes use bf16, which TrainingArguments only accepts on CPU with use_cpu.
    argv = ["--config", str(recipe), "--use_cpu", "true"]
    script_args, training_args, model_args = build_parser().parse_args_and_config(args=argv)
    assert training_args.negatives in ("local", "accumulated", "global")
    assert script_args.image_column == "image" and script_args.text_column == "text"
    assert training_args.remove_unused_columns is False
    if recipe.name == "config_full.yaml":
        assert (training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps) == (8, 8)
        assert training_args.learning_rate == 1e-4 and training_args.num_train_epochs == 2 and training_args.bf16
        assert training_args.negatives == "accumulated"
    if recipe.name == "config_lit.yaml":
        assert model_args.freeze_vision_tower
    if recipe.name == "config_smoke.yaml":
        assert not training_args.push_to_hub and training_args.report_to == []


def test_cli_trains_saves_and_reports(tiny_models, dataset_dir, tmp_path):
    out = tmp_path / "encoder"
    code = medvl_main(
        [
            "train-encoder",
            *_argv(
                tiny_models["siglip"],
                dataset_dir,
                out,
                "--max_steps",
                "2",
                "--eval_strategy",
                "steps",
                "--eval_steps",
                "2",
            ),
        ]
    )
    assert code == 0
    for name in (
        "model.safetensors",
        "config.json",
        "processor_config.json",
        "README.md",
        "retrieval_before_after.json",
    ):
        assert (out / name).is_file(), name
    weights = load_file(out / "model.safetensors")
    initial = load_file(Path(tiny_models["siglip"]) / "model.safetensors")
    assert not torch.equal(weights["logit_bias"], initial["logit_bias"])  # it trained
    report = json.loads((out / "retrieval_before_after.json").read_text())
    assert report["before"]["eval_num_pairs"] == 8 and "eval_i2t_recall@1" in report["after"]
    assert "| i2t_recall@1 |" in report["table"]
    card = (out / "README.md").read_text()
    assert "eval_loss" in card or "eval/loss" in card or "loss" in card


def test_image_size_interpolates_position_embeddings(tiny_models, dataset_dir, tmp_path):
    out = tmp_path / "encoder96"
    cli(
        _argv(
            tiny_models["siglip"],
            dataset_dir,
            out,
            "--max_steps",
            "1",
            "--image_size",
            "96",
            "--retrieval_eval",
            "false",
            "--eval_strategy",
            "no",
        )
    )
    processor_config = json.loads((out / "processor_config.json").read_text())
    assert processor_config["image_processor"]["size"] == {"height": 96, "width": 96}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text_column", "caption"], "no column(s) ['caption']"),
        (["--dataset_test_split", "test"], "has no split 'test'"),
        (["--max_length", "128"], "max_length=128 exceeds the text tower's 64 positions"),
    ],
)
def test_bad_input_fails_before_training(tiny_models, dataset_dir, tmp_path, extra, message):
    with pytest.raises(MedvlError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        cli(_argv(tiny_models["siglip"], dataset_dir, tmp_path / "out", "--max_steps", "1", *extra))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_empty_split_fails_before_training(tiny_models, tmp_path):
    from datasets import Dataset

    dataset_dir = write_prepared_dataset(tmp_path / "dataset", n_train=4, n_val=2)
    empty = Dataset.from_parquet(str(dataset_dir / "data" / "validation-00000-of-00001.parquet")).select([])
    empty.to_parquet(str(dataset_dir / "data" / "validation-00000-of-00001.parquet"))
    with pytest.raises(MedvlError, match="split 'validation' is empty"):
        cli(_argv(tiny_models["siglip"], dataset_dir, tmp_path / "out", "--max_steps", "1"))


def _final_loss(output_dir, step):
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return next(log["loss"] for log in state["log_history"] if log.get("step") == step and "loss" in log)


def test_resume_from_checkpoint_reaches_the_same_loss(tiny_models, dataset_dir, tmp_path):
    # 16 pairs / (2 x 2) = 4 steps per epoch; 6 steps cross an epoch boundary, the checkpoint sits mid-epoch.
    common = [
        "--max_steps",
        "6",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--eval_strategy",
        "no",
        "--retrieval_eval",
        "false",
        "--negatives",
        "accumulated",
    ]
    full = tmp_path / "full"
    cli(_argv(tiny_models["siglip"], dataset_dir, full, *common))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # The interrupted run: only its checkpoint at step 3 survives.
    shutil.copytree(full / "checkpoint-3", resumed / "checkpoint-3")
    cli(_argv(tiny_models["siglip"], dataset_dir, resumed, *common, "--resume_from_checkpoint", "last"))
    assert _final_loss(resumed, 6) == pytest.approx(_final_loss(full, 6), abs=1e-4)
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_smoke_recipe_triples_validation_recall(tiny_models, prepared_dataset_dir, tmp_path, repo_root):
    # Acceptance: the smoke recipe as `make quickstart` runs it, on the real sample-data -> prepare chain.
    recipe = repo_root / "recipes" / "siglip-base-patch16-224" / "encoder" / "config_smoke.yaml"
    out = tmp_path / "smoke"
    cli(["--config", str(recipe), "--model_name_or_path", str(tiny_models["siglip"]),
         "--dataset_name", str(prepared_dataset_dir), "--output_dir", str(out)])  # fmt: skip
    report = json.loads((out / RETRIEVAL_FILE).read_text())
    before, after = report["before"], report["after"]
    chance = 1 / before["eval_num_pairs"]
    assert after["eval_i2t_recall@1"] >= 3 * max(before["eval_i2t_recall@1"], chance), report["table"]
    assert after["eval_loss"] < before["eval_loss"]


def test_a_corrupt_image_in_the_pairs_is_one_line_naming_the_sample(tiny_models, tmp_path, capsys):
    from datasets import Dataset, Image, load_dataset

    data = write_prepared_dataset(tmp_path / "dataset", n_train=8, n_val=4, seed=1)
    original = load_dataset(str(data), split="train")
    train = original.cast_column("image", Image(decode=False)).to_list()
    train[3]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "path": None}  # a truncated PNG
    Dataset.from_list(train, features=original.features).to_parquet(
        str(data / "data" / "train-00000-of-00001.parquet")
    )
    argv = ["train-encoder", *_argv(tiny_models["siglip"], data, tmp_path / "out"), "--max_steps", "4"]
    capsys.readouterr()
    assert medvl_main(argv) == 2
    stderr = capsys.readouterr().err  # progress bars share stderr; the error is the one `medvl ...` line
    assert "Traceback" not in stderr
    err = [line for line in stderr.splitlines() if line.startswith("medvl ")]
    assert len(err) == 1, err
    assert train[3]["id"] in err[0] and "cannot read image" in err[0]
