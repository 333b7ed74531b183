# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl merge-adapter`: the merged model reloads without PEFT and generates the adapter model's tokens."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.cli import main as medvl
from medvl_recipes.configs import DecoderModelConfig
from medvl_recipes.generation import generate_reports
from medvl_recipes.merging import merge_adapter
from medvl_recipes.modeling import get_decoder


def test_merged_model_generates_the_adapter_models_tokens(tiny_models, tmp_path):
    base = str(tiny_models["mllama"])
    model = get_decoder(DecoderModelConfig(model_name_or_path=base, use_peft=True, lora_r=8, lora_alpha=16))
    # A trained-looking adapter: LoRA's B starts at zero, which would make the merge trivially exact.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    processor = AutoProcessor.from_pretrained(base)
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    processor.save_pretrained(adapter_dir)
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == base

    assert medvl(["merge-adapter", "--adapter", str(adapter_dir), "--output-dir", str(tmp_path / "merged")]) == 0
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    merged_processor = AutoProcessor.from_pretrained(tmp_path / "merged")

    images = [Image.new("RGB", (96, 80), color=(c, c, c)) for c in (10, 128, 250)]
    plain = generate_reports(
        get_decoder(DecoderModelConfig(model_name_or_path=base)), processor, images, max_new_tokens=12
    )
    with_adapter = generate_reports(model.eval(), processor, images, max_new_tokens=12)
    from_merged = generate_reports(merged, merged_processor, images, max_new_tokens=12)
    assert from_merged == with_adapter
    assert with_adapter != plain  # the adapter changes the output, so equality above is not vacuous
    inputs = processor(
        text=[processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])],
        images=[[images[0]]],
        add_special_tokens=False,
        return_tensors="pt",
    )
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, model(**inputs).logits, rtol=1e-4, atol=1e-4)


def test_merge_adapter_rejects_a_folder_without_adapter(tmp_path):
    with pytest.raises(Exception, match="no LoRA adapter here"):
        merge_adapter(tmp_path, tmp_path / "out")
    assert medvl(["merge-adapter", "--adapter", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
