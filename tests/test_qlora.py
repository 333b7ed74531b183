# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""QLoRA wherever bitsandbytes runs (its CPU backend here): `config_qlora.yaml` trains the tiny Mllama in 4-bit,
and `medvl merge-adapter` folds the adapter into a plain base that generates the adapter model's greedy tokens."""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageTextToText
from trl import get_quantization_config

from medvl_recipes import modeling
from medvl_recipes.cli import main as medvl
from medvl_recipes.configs import DecoderModelConfig
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.errors import MedvlError
from medvl_recipes.generation import generate_reports
from medvl_recipes.imaging import load_image
from medvl_recipes.merging import merge_adapter
from medvl_recipes.modeling import get_decoder, load_decoder
from tests.fixtures.factories import write_chat_dataset


pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes")
QLORA = Path(__file__).resolve().parents[1] / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_qlora.yaml"
# The real recipe's GPU settings, swapped for the tiny model on CPU: float32 compute, no bf16, no worker processes.
CPU_OVERRIDES = ["--bf16", "false", "--dtype", "float32", "--use_cpu", "true", "--dataloader_num_workers", "0"]


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return write_chat_dataset(tmp_path_factory.mktemp("qlora-chat"), n_train=16, n_val=4, seed=0)


@pytest.fixture(scope="module")
def adapter(tiny_mllama_4_tiles, chat_dir, tmp_path_factory):
    """6 steps of the QLoRA recipe on the tiny model with its tiling (lr raised so that the adapter changes the
    tokens)."""
    out = tmp_path_factory.mktemp("qlora") / "adapter"
    argv = ["train-decoder", "--config", str(QLORA), "--model_name_or_path", str(tiny_mllama_4_tiles)]
    argv += ["--dataset_name", str(chat_dir), "--output_dir", str(out), *CPU_OVERRIDES, "--max_steps", "6"]
    argv += ["--learning_rate", "3e-3", "--warmup_steps", "0", "--max_length", "256", "--max_image_side", "560"]
    argv += ["--num_sample_generations", "0", "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none"]
    argv += ["--disable_tqdm", "true"]
    assert medvl(argv) == 0
    return out


def _greedy(model, processor, images):
    return generate_reports(model, processor, images, max_new_tokens=16, show_progress=False)


def test_qlora_recipe_trains_in_4bit(adapter):
    state = json.loads((adapter / "trainer_state.json").read_text())
    losses = [log["loss"] for log in state["log_history"] if "loss" in log]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses
    assert (adapter / "adapter_model.safetensors").is_file()
    model_args = json.loads((adapter / "run_args.json").read_text())["model_args"]
    assert model_args["load_in_4bit"] and model_args["bnb_4bit_quant_type"] == "nf4"


def test_get_decoder_quantises_on_cpu(tiny_models):
    import bitsandbytes as bnb

    args = DecoderModelConfig(
        model_name_or_path=str(tiny_models["mllama"]), dtype="float32", use_peft=True, load_in_4bit=True
    )
    model = get_decoder(args)
    linear4bit = [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert len(linear4bit) > 50
    # LoRA trains, the 4-bit base does not; everything sits on the CPU.
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert {param.device.type for param in model.parameters()} == {"cpu"}


def test_missing_bitsandbytes_is_one_line(tiny_models, monkeypatch):
    monkeypatch.setattr(modeling, "_bitsandbytes_available", lambda: False)
    args = DecoderModelConfig(model_name_or_path=str(tiny_models["mllama"]), use_peft=True, load_in_4bit=True)
    with pytest.raises(MedvlError, match=r"load_in_4bit \(QLoRA\) needs bitsandbytes .*pip install bitsandbytes"):
        get_decoder(args)


def test_merged_qlora_adapter_generates_the_adapter_models_tokens(adapter, chat_dir, tiny_mllama_4_tiles, tmp_path):
    images = [row["images"][0] for row in load_chat_split(chat_dir, "validation")]
    model_args = DecoderModelConfig(**json.loads((adapter / "run_args.json").read_text())["model_args"])
    base_4bit = AutoModelForImageTextToText.from_pretrained(
        tiny_mllama_4_tiles,
        quantization_config=get_quantization_config(model_args),
        device_map={"": "cpu"},
        dtype=torch.float32,
    )
    adapter_model = PeftModel.from_pretrained(base_4bit, str(adapter)).eval()
    merged, processor = load_decoder(str(merge_adapter(adapter, tmp_path / "merged", dtype="float32")))
    assert not any("4bit" in type(module).__name__ for module in merged.modules())
    expected = _greedy(adapter_model, processor, images)
    with adapter_model.disable_adapter():
        # Control: the adapter changes the tokens, so equal tokens below say the merge kept it.
        assert _greedy(adapter_model, processor, images) != expected
    assert _greedy(merged, processor, images) == expected
    # Tokens of a tiny model are a weak signal: the merged logits must also equal the adapter model's, which a merge
    # into the full-precision base (not the 4-bit rounding the adapter was trained on) misses by ~0.1.
    inputs = processor(images=[[load_image(images[0])]], text=["<|image|>A"], return_tensors="pt")
    with torch.no_grad():
        diff = (merged(**inputs).logits - adapter_model(**inputs).logits).abs().max().item()
    assert diff < 0.02, diff
