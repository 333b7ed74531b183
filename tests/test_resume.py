# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Both trainers, killed with SIGKILL after their first checkpoint, resume to the weights of an uninterrupted run;
checkpoints and output folders of another run are refused, naming the difference."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from medvl_recipes.checkpoints import RUN_IDENTITY_FILE
from medvl_recipes.cli import main as medvl
from tests.fixtures.factories import write_chat_dataset, write_prepared_dataset


REPO = Path(__file__).resolve().parents[1]
DECODER_SMOKE = REPO / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
# Runs the real CLI, but parks the process once its first checkpoint is complete, so the test kills it there.
KILLABLE = r"""
import sys, time
from medvl_recipes import callbacks
save = callbacks.RunIdentityCallback.on_save
def save_then_wait(self, args, state, control, **kwargs):
    save(self, args, state, control, **kwargs)
    time.sleep(600)
callbacks.RunIdentityCallback.on_save = save_then_wait
from medvl_recipes.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume-data")
    return {
        "encoder": write_prepared_dataset(root / "pairs", n_train=8, n_val=4, seed=0),
        "decoder": write_chat_dataset(root / "chat", n_train=8, n_val=4, seed=0),
        "other_decoder": write_chat_dataset(root / "chat-other", n_train=8, n_val=4, seed=1),
    }


def encoder_argv(tiny_models, data, out, *extra):
    return [
        "train-encoder",
        "--model_name_or_path",
        str(tiny_models["siglip"]),
        "--dataset_name",
        str(data["encoder"]),
        "--output_dir",
        str(out),
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--per_device_train_batch_size",
        "2",
        "--gradient_accumulation_steps",
        "2",
        "--learning_rate",
        "1e-3",
        "--max_steps",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--retrieval_eval",
        "false",
        "--disable_tqdm",
        "true",
        "--seed",
        "0",
        *extra,
    ]


def decoder_argv(tiny_models, data, out, *extra, dataset="decoder"):
    return [
        "train-decoder",
        "--config",
        str(DECODER_SMOKE),
        "--model_name_or_path",
        str(tiny_models["mllama"]),
        "--dataset_name",
        str(data[dataset]),
        "--output_dir",
        str(out),
        "--max_steps",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
        "--num_sample_generations",
        "0",
        "--disable_tqdm",
        "true",
        # The recipe's vision warm-up, with the fixture's encoder: a resumed run must skip it and still match.
        "--vision_warmup_encoder",
        str(tiny_models["siglip"]),
        "--vision_warmup_steps",
        "5",
        *extra,
    ]


ARGV = {"encoder": encoder_argv, "decoder": decoder_argv}


def kind_model(kind: str) -> str:
    return "siglip" if kind == "encoder" else "mllama"


def run_until_first_checkpoint_then_kill(argv: list[str], out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, *argv], env=env, stderr=subprocess.PIPE, text=True)
    marker = out / "checkpoint-2" / RUN_IDENTITY_FILE
    deadline = time.monotonic() + 300
    while not marker.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before its first checkpoint: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def record_steps(monkeypatch) -> list[int]:
    """The optimizer steps the next in-process run takes (a fresh start would take 1..N, a resumed one fewer)."""
    steps = []
    from medvl_recipes import callbacks

    def on_step_end(self, args, state, control, **kwargs):
        steps.append(state.global_step)

    monkeypatch.setattr(callbacks.RunIdentityCallback, "on_step_end", on_step_end, raising=False)
    return steps


def step_losses(out: Path) -> dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("encoder", ()),
        ("decoder", ()),
        # A LoRA adapter does not store the base's vision tower, so LoRA runs refuse the warm-up.
        ("decoder", ("--use_peft", "true", "--learning_rate", "0.05", "--vision_warmup_steps", "0")),
    ],
    ids=["encoder", "decoder", "decoder-lora"],
)
def test_sigkill_after_first_checkpoint_resumes_to_uninterrupted_weights(
    kind, extra, tiny_models, data, tmp_path, monkeypatch
):
    argv = ARGV[kind]
    reference = tmp_path / "reference"
    assert medvl(argv(tiny_models, data, reference, *extra)) == 0

    out = tmp_path / "killed"
    run_until_first_checkpoint_then_kill(argv(tiny_models, data, out, *extra), out)
    weights = "adapter_model.safetensors" if extra else "model.safetensors"
    assert not (out / "checkpoint-4").exists() and not (out / weights).exists()
    steps = record_steps(monkeypatch)
    assert medvl(argv(tiny_models, data, out, *extra, "--resume_from_checkpoint", "last")) == 0
    assert steps == [3, 4]  # it resumed; a restart from scratch would reach the same weights too

    expected, resumed = load_file(reference / weights), load_file(out / weights)
    assert expected.keys() == resumed.keys()
    max_dw = max((expected[k] - resumed[k]).abs().max().item() for k in expected)
    assert max_dw <= 1e-6, max_dw
    # Training did move the weights, so equality is not two untrained copies.
    if extra:
        assert max(v.abs().max().item() for k, v in expected.items() if "lora_B" in k) > 1e-4
    else:
        initial = load_file(next(Path(tiny_models[kind_model(kind)]).glob("*.safetensors")))
        assert max((expected[k] - initial[k]).abs().max().item() for k in expected if k in initial) > 1e-4
    # The steps after the checkpoint are the same steps: same losses.
    ref_losses, resumed_losses = step_losses(reference), step_losses(out)
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(ref_losses[step], abs=1e-6), step


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_resume_true_and_path_also_resume(kind, tiny_models, data, tmp_path, monkeypatch):
    argv = ARGV[kind]
    out = tmp_path / "run"
    assert medvl(argv(tiny_models, data, out, "--max_steps", "2")) == 0
    steps = record_steps(monkeypatch)
    assert medvl(argv(tiny_models, data, out, "--resume_from_checkpoint", "true")) == 0
    assert steps == [3, 4] and step_losses(out).keys() == {1, 2, 3, 4}
    steps.clear()
    # The same base model in another folder is the same run (its files decide, not its path).
    moved = {**tiny_models, kind_model(kind): shutil.copytree(tiny_models[kind_model(kind)], tmp_path / "moved")}
    assert medvl(argv(moved, data, out, "--resume_from_checkpoint", str(out / "checkpoint-2"))) == 0
    assert steps == [3, 4]
    # Resuming a finished run would train 0 steps and report success: refused.
    assert medvl(argv(tiny_models, data, out, "--resume_from_checkpoint", "last")) == 2


def test_checkpoint_of_another_run_is_refused_naming_the_difference(tiny_models, data, tmp_path, capsys):
    out = tmp_path / "decoder"
    assert medvl(decoder_argv(tiny_models, data, out, "--max_steps", "2")) == 0
    capsys.readouterr()
    cases = [
        (("--learning_rate", "1e-4"), "learning_rate 0.003 -> 0.0001"),
        (("--use_peft", "true", "--vision_warmup_steps", "0"), "use_peft False -> True"),  # LoRA takes no warm-up
    ]
    for extra, difference in cases:
        assert medvl(decoder_argv(tiny_models, data, out, *extra, "--resume_from_checkpoint", "last")) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "checkpoint-2 belongs to another run" in err and difference in err
    assert (
        medvl(decoder_argv(tiny_models, data, out, "--resume_from_checkpoint", "last", dataset="other_decoder")) == 2
    )
    assert "data fingerprint" in capsys.readouterr().err
    encoder_run = tmp_path / "encoder"
    assert medvl(encoder_argv(tiny_models, data, encoder_run, "--max_steps", "2")) == 0
    capsys.readouterr()
    checkpoint = str(encoder_run / "checkpoint-2")
    assert medvl(decoder_argv(tiny_models, data, out, "--resume_from_checkpoint", checkpoint)) == 2
    assert "model " in capsys.readouterr().err
    # No checkpoint at all, and a folder that is not one.
    assert medvl(decoder_argv(tiny_models, data, tmp_path / "empty", "--resume_from_checkpoint", "last")) == 2
    assert "no complete checkpoint-N folder" in capsys.readouterr().err
    assert medvl(decoder_argv(tiny_models, data, out, "--resume_from_checkpoint", str(tmp_path))) == 2
    assert "is not a checkpoint folder" in capsys.readouterr().err


def test_output_dir_of_another_run_is_refused_unless_overwrite(tiny_models, data, tmp_path, capsys):
    out = tmp_path / "decoder"
    lora = ("--use_peft", "true", "--vision_warmup_steps", "0", "--max_steps", "1", "--save_strategy", "no")
    assert medvl(decoder_argv(tiny_models, data, out, *lora)) == 0
    assert (out / "adapter_config.json").is_file()
    capsys.readouterr()
    full = ("--max_steps", "1", "--save_strategy", "no")
    assert medvl(decoder_argv(tiny_models, data, out, *full)) == 2
    err = capsys.readouterr().err
    assert "holds another run's output" in err and "use_peft True -> False" in err and "--overwrite_output_dir" in err
    assert medvl(decoder_argv(tiny_models, data, out, *full, "--overwrite_output_dir", "true")) == 0
    # The LoRA run's adapter is gone, so loaders see the full model, not the stale adapter.
    assert not list(out.glob("adapter_*")) and (out / "model.safetensors").is_file()
    # The same run again into its own folder is fine, and adapter files planted there do not survive its save.
    (out / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_models["mllama"])}))
    (out / "adapter_model.safetensors").write_bytes(b"stale")
    assert medvl(decoder_argv(tiny_models, data, out, *full)) == 0
    assert not list(out.glob("adapter_*"))
    # A run that failed before saving anything leaves only its identity, which protects nothing.
    failed = tmp_path / "failed"
    assert medvl(decoder_argv(tiny_models, data, failed, *full, "--max_length", "8")) == 2  # cuts the image token
    assert [p.name for p in failed.iterdir()] == ["run_identity.json"]
    assert medvl(decoder_argv(tiny_models, data, failed, *full)) == 0
    # A folder with training output but no identity (another tool, an older version) is refused too.
    (out / "run_identity.json").unlink()
    assert medvl(decoder_argv(tiny_models, data, out, *full)) == 2
    assert "no run_identity.json" in capsys.readouterr().err


def test_files_fingerprint_hashes_small_files_whole_and_samples_the_ends_of_big_ones(tmp_path):
    from medvl_recipes.checkpoints import files_fingerprint

    path = tmp_path / "shard.safetensors"

    def fingerprint(content: bytes, **sizes) -> str:
        path.write_bytes(content)
        return files_fingerprint([path], tmp_path, **sizes)

    data = bytes(range(100))
    small = {"full_up_to": 1000, "sample": 4}
    big = {"full_up_to": 10, "sample": 4}
    changed = {i: data[:i] + b"\xff" + data[i + 1 :] for i in (1, 50, 98)}
    assert all(fingerprint(changed[i], **small) != fingerprint(data, **small) for i in changed)
    assert fingerprint(changed[1], **big) != fingerprint(data, **big)
    assert fingerprint(changed[98], **big) != fingerprint(data, **big)
    assert fingerprint(changed[50], **big) == fingerprint(data, **big)  # the documented blind spot
    assert fingerprint(data + b"\x00", **big) != fingerprint(data, **big)  # sizes count
