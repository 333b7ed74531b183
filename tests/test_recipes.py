# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Every recipe YAML parses with the parser its entry point uses, so a typo fails here, not on a GPU node."""

import importlib
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE_MODULES = {"encoder": "medvl_recipes.train_encoder", "decoder": "medvl_recipes.train_decoder"}
TRAIN_RECIPES = sorted(p for stage in STAGE_MODULES for p in REPO_ROOT.glob(f"recipes/*/{stage}/config_*.yaml"))
DATA_RECIPES = sorted((REPO_ROOT / "recipes" / "data").glob("*.yaml"))


def test_each_model_has_a_smoke_recipe():
    for stage in STAGE_MODULES:
        model_dirs = {p.parent.parent for p in REPO_ROOT.glob(f"recipes/*/{stage}/config_*.yaml")}
        assert model_dirs, f"no {stage} recipes"
        for model_dir in model_dirs:
            assert (model_dir / stage / "config_smoke.yaml").is_file(), f"{model_dir} has no config_smoke.yaml"
            assert (model_dir / "README.md").is_file(), f"{model_dir} has no README.md"


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: str(p.relative_to(REPO_ROOT / "recipes")))
def test_training_recipe_parses(path, tmp_path):
    module = importlib.import_module(STAGE_MODULES[path.parent.name])
    parser = module.build_parser()
    # The GPU recipes ask for bf16, which transformers refuses to set up on a CPU; every key is still checked.
    args = ["--config", str(path), "--output_dir", str(tmp_path), "--bf16", "false"]
    parsed = parser.parse_args_and_config(args=args)
    training_args = next(arg for arg in parsed if hasattr(arg, "learning_rate"))
    assert training_args.learning_rate > 0
    if path.stem == "config_smoke":
        assert training_args.use_cpu and not training_args.push_to_hub


@pytest.mark.parametrize("path", DATA_RECIPES, ids=lambda p: p.name)
def test_data_recipe_parses(path):
    from medvl_recipes.data.prepare import load_mixture_config

    config = load_mixture_config(path)
    assert config.sources


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: str(p.relative_to(REPO_ROOT / "recipes")))
def test_real_recipes_evaluate_during_training_with_an_installed_logger(path):
    import importlib.util

    import yaml

    keys = yaml.safe_load(path.read_text())
    if path.stem != "config_smoke":
        assert keys.get("eval_strategy", "no") != "no", "real recipes report the validation loss during training"
    for logger_name in (
        [keys.get("report_to", "none")] if isinstance(keys.get("report_to"), str) else keys["report_to"]
    ):
        if logger_name not in ("none", "all"):
            assert importlib.util.find_spec(logger_name), f"report_to: {logger_name} is not an installed dependency"
    assert not {"gradient_checkpointing", "gradient_checkpointing_kwargs"} & set(keys), "use activation_checkpointing"
