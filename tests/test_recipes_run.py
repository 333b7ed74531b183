# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Every training recipe runs as written: each one trains a step on CPU with only its model, data, output folder and
step counts swapped for the tiny ones.

Everything else stays as the recipe says: logger (`report_to`), checkpointing, optimizer, scheduler, eval strategy,
mixed precision, dataloader workers, image size, LoRA/freezing settings, sample generations. The one CPU override is
`--use_cpu true`: transformers refuses `bf16: true` without a GPU unless told to train on the CPU (where bf16
autocast then runs). `eval_steps`/`save_steps` drop to 1 with `max_steps` so that one step exercises the in-training
evaluation and a checkpoint save.
"""

import json
import warnings
from pathlib import Path

import pytest
import yaml

from medvl_recipes.cli import main as medvl


REPO_ROOT = Path(__file__).resolve().parents[1]
ENCODER_RECIPES = sorted((REPO_ROOT / "recipes").glob("*/encoder/config_*.yaml"))
DECODER_RECIPES = sorted((REPO_ROOT / "recipes").glob("*/decoder/config_*.yaml"))
CPU_OVERRIDES = ["--use_cpu", "true"]


@pytest.fixture(scope="module")
def small_prepared_dir(prepared_dataset_dir, tmp_path_factory) -> Path:
    """The first 8 train / 4 validation pairs of the session's prepared sample dataset, in the same layout."""
    from medvl_recipes.data.prepared import load_prepared_split

    out = tmp_path_factory.mktemp("recipes-run") / "dataset"
    (out / "data").mkdir(parents=True)
    for split, count in (("train", 8), ("validation", 4)):
        data = load_prepared_split(prepared_dataset_dir, split, max_samples=count)
        data.to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    return out


@pytest.fixture(scope="module")
def small_chat_dir(chat_dataset_dir, tmp_path_factory) -> Path:
    """The first 8 train / 4 validation conversations of the session's chat sample data (absolute image paths)."""
    from medvl_recipes.data.chat import load_chat_split

    out = tmp_path_factory.mktemp("recipes-run") / "chat"
    out.mkdir()
    for split, count in (("train", 8), ("validation", 4)):
        rows = load_chat_split(chat_dataset_dir, split).select(range(count))
        (out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def _recipe_id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT / "recipes"))


def _run(stage: str, recipe: Path, model: Path, data: Path, out: Path, encoder: Path | None = None) -> int:
    keys = yaml.safe_load(recipe.read_text())
    steps = ["--max_steps", "1"]
    if keys.get("vision_warmup_steps", 0) > 0:  # the warm-up's encoder is a model path too; a few of its steps
        steps += ["--vision_warmup_encoder", str(encoder), "--vision_warmup_steps", "2"]
    if keys.get("eval_strategy", "no") != "no":
        steps += ["--eval_steps", "1"]
    if keys.get("save_strategy", "steps") != "no":
        steps += ["--save_steps", "1"]
    argv = [f"train-{stage}", "--config", str(recipe)]
    argv += ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = medvl(argv + steps + CPU_OVERRIDES)
    # No deprecation warnings from our own settings (e.g. `gradient_checkpointing` -> `activation_checkpointing`).
    deprecated = [
        str(w.message)
        for w in caught
        if issubclass(w.category, DeprecationWarning | FutureWarning) and "`" in str(w.message)
    ]
    ours = [m for m in deprecated if any(f"`{key}`" in m for key in keys)]
    assert not ours, ours
    return code


def _assert_ran_as_written(recipe: Path, out: Path) -> None:
    keys = yaml.safe_load(recipe.read_text())
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    if keys.get("eval_strategy", "no") != "no":
        assert any("eval_loss" in entry for entry in log), "validation loss was not computed during training"
    if keys.get("save_strategy", "steps") != "no":
        assert (out / "checkpoint-1").is_dir()
    if keys.get("report_to") == "tensorboard":
        assert list((out / "runs").rglob("events.out.tfevents.*")), "no tensorboard event file"
    args = (
        json.loads((out / "run_args.json").read_text())["training_args"] if (out / "run_args.json").is_file() else None
    )
    if args is not None:
        for key in ("lr_scheduler_type", "optim", "learning_rate", "gradient_accumulation_steps"):
            if key in keys:
                assert args[key] == keys[key], (key, args[key], keys[key])


@pytest.mark.parametrize("recipe", ENCODER_RECIPES, ids=_recipe_id)
def test_encoder_recipe_runs_as_written(recipe, tiny_models, small_prepared_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert _run("encoder", recipe, tiny_models["siglip"], small_prepared_dir, out) == 0
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    _assert_ran_as_written(recipe, out)
    assert not (tmp_path / "cwd" / "runs").exists(), "tensorboard events outside output_dir"


@pytest.mark.parametrize("recipe", DECODER_RECIPES, ids=_recipe_id)
def test_decoder_recipe_runs_as_written(
    recipe, tiny_models, tiny_mllama_4_tiles, small_chat_dir, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    # The real recipes ask for Llama 3.2 Vision's 4 tiles, the smoke recipe's tiny model has 1.
    model = tiny_models["mllama"] if recipe.stem == "config_smoke" else tiny_mllama_4_tiles
    # QLoRA included: bitsandbytes' CPU backend runs 4-bit layers, so every decoder recipe trains here.
    assert _run("decoder", recipe, model, small_chat_dir, out, encoder=tiny_models["siglip"]) == 0
    weights = ("model.safetensors", "adapter_model.safetensors")
    assert any((out / name).is_file() for name in weights)
    _assert_ran_as_written(recipe, out)
    assert not (tmp_path / "cwd" / "runs").exists(), "tensorboard events outside output_dir"
