# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Every launcher config and every recipe parses with the parser that consumes it, so typos fail in CI."""

from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType


REPO_ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = sorted((REPO_ROOT / "accelerate_configs").glob("*.yaml"))
FSDP_WRAP_CLASSES = {
    "MllamaSelfAttentionDecoderLayer",
    "MllamaCrossAttentionDecoderLayer",
    "MllamaVisionEncoderLayer",
    "SiglipEncoderLayer",
}


def test_all_launcher_configs_exist():
    names = {path.stem for path in ACCELERATE_CONFIGS}
    assert {"single_gpu", "ddp", "fsdp", "zero2", "zero3"} <= names


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_parses(path):
    config = load_config_from_file(str(path))
    expected = {
        "single_gpu": DistributedType.NO,
        "ddp": DistributedType.MULTI_GPU,
        "fsdp": DistributedType.FSDP,
        "zero2": DistributedType.DEEPSPEED,
        "zero3": DistributedType.DEEPSPEED,
    }[path.stem]
    assert config.distributed_type == expected
    if path.stem.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(path.stem[-1])


def test_fsdp_wraps_mllama_and_siglip_layers():
    config = load_config_from_file(str(REPO_ROOT / "accelerate_configs" / "fsdp.yaml"))
    classes = set(config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","))
    assert classes == FSDP_WRAP_CLASSES
    # The names must be real classes of the installed transformers, or FSDP silently wraps nothing.
    from transformers.models.mllama import modeling_mllama
    from transformers.models.siglip import modeling_siglip

    for name in classes:
        assert hasattr(modeling_mllama, name) or hasattr(modeling_siglip, name), name


def test_unknown_launcher_key_is_rejected(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "accelerate_configs" / "ddp.yaml").read_text())
    config["num_procesess"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="num_procesess"):
        load_config_from_file(str(bad))
