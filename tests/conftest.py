# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Session fixtures: tiny models, sample data and the prepared chain, each built once per test session.

The environment is set before any Hugging Face library is imported so that no test can reach the network.
"""

import os
import tempfile


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["WANDB_DISABLED"] = "true"
# Keep caches (datasets' Arrow cache, hub cache) inside a throwaway folder, not the user's home.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="medvl-hf-home-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """`{"siglip": path, "mllama": path}`: the tiny checkpoints of `medvl tiny-models`."""
    from medvl_recipes.samples.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"), seed=0)


@pytest.fixture(scope="session")
def tiny_mllama_4_tiles(tmp_path_factory) -> Path:
    """The tiny Mllama with the real model's tiling (`medvl tiny-models --max-tiles 4`), for the tiling tests."""
    from medvl_recipes.samples.tiny_models import build_tiny_mllama

    return build_tiny_mllama(tmp_path_factory.mktemp("tiny-4-tiles") / "mllama", seed=0, max_tiles=4)


@pytest.fixture(scope="session")
def sample_raw_dir(tmp_path_factory) -> Path:
    """The raw sample sources of `medvl sample-data` (default size, seed 0)."""
    from medvl_recipes.samples.sample_data import write_sample_data

    return write_sample_data(tmp_path_factory.mktemp("sample-raw") / "raw", seed=0)


@pytest.fixture(scope="session")
def prepared_dataset_dir(tmp_path_factory, sample_raw_dir) -> Path:
    """The sample sources prepared by `medvl prepare --config recipes/data/sample.yaml`."""
    from medvl_recipes.data.prepare import load_mixture_config, prepare_dataset

    config = load_mixture_config(REPO_ROOT / "recipes" / "data" / "sample.yaml")
    out = tmp_path_factory.mktemp("prepared") / "dataset"
    return prepare_dataset(config, output_dir=out, data_root=sample_raw_dir, num_proc=1)


@pytest.fixture(scope="session")
def chat_dataset_dir(tmp_path_factory, prepared_dataset_dir) -> Path:
    """The prepared sample dataset converted by `medvl to-chat`."""
    from medvl_recipes.data.chat import write_chat_dataset

    return write_chat_dataset(prepared_dataset_dir, tmp_path_factory.mktemp("chat") / "chat")


# Debian's chromium, driven by Playwright (never `playwright install`, which downloads a browser build).
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the demo and review page tests (skipped where Debian's chromium is missing)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
