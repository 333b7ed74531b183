# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.cli import main
from medvl_recipes.samples.tiny_models import build_tiny_models


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_siglip_roundtrip_gives_identical_outputs(tiny_models, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_models["siglip"])
    model = AutoModel.from_pretrained(tiny_models["siglip"]).eval()
    assert type(model).__name__ == "SiglipModel"
    assert type(processor.image_processor).__name__ == "SiglipImageProcessorPil"
    images = [Image.new("RGB", (90, 60), (30, 30, 30)), Image.new("RGB", (40, 120), (200, 10, 10))]
    texts = ["A nodule in the right upper zone.", "No pleural effusion."]
    inputs = processor(text=texts, images=images, padding="max_length", max_length=64, return_tensors="pt")
    assert inputs["input_ids"].shape == (2, 64)
    with torch.no_grad():
        before = model(**inputs)
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    reloaded = AutoModel.from_pretrained(tmp_path / "copy").eval()
    inputs_again = AutoProcessor.from_pretrained(tmp_path / "copy")(
        text=texts, images=images, padding="max_length", max_length=64, return_tensors="pt"
    )
    torch.testing.assert_close(inputs_again["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        after = reloaded(**inputs_again)
    torch.testing.assert_close(after.logits_per_image, before.logits_per_image, rtol=0, atol=0)
    # Paper initialisation of the learnable temperature and bias.
    assert model.logit_scale.item() == pytest.approx(torch.log(torch.tensor(10.0)).item())
    assert model.logit_bias.item() == pytest.approx(-10.0)


def test_mllama_roundtrip_generates_identical_tokens(tiny_models, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_models["mllama"])
    model = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"]).eval()
    assert type(model).__name__ == "MllamaForConditionalGeneration"
    assert type(processor.image_processor).__name__ == "MllamaImageProcessorPil"
    tokenizer = processor.tokenizer
    for token in ("<|image|>", "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    assert tokenizer.pad_token == "<|finetune_right_pad_id|>"
    # Like Llama 3.2 Vision: the image token lies just outside the language model's vocabulary.
    assert (
        model.config.image_token_index
        == tokenizer.convert_tokens_to_ids("<|image|>")
        == model.config.text_config.vocab_size
    )

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this medical image."}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Describe")
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    image = Image.new("RGB", (150, 100), (120, 120, 120))
    inputs = processor(images=[[image]], text=[prompt], add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        before = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "copy").eval()
    with torch.no_grad():
        after = reloaded.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert torch.equal(before, after)
    assert before.shape[1] > inputs["input_ids"].shape[1]


def test_mllama_processor_outputs_for_different_aspect_ratios(tiny_mllama_4_tiles):
    processor = AutoProcessor.from_pretrained(tiny_mllama_4_tiles)
    image_processor = processor.image_processor
    tile, max_tiles = image_processor.size["height"], image_processor.max_image_tiles
    wide, tall = Image.new("RGB", (3 * tile, tile)), Image.new("RGB", (tile, 2 * tile))
    text = ["<|image|>A wide image.", "<|image|>A tall one, with a longer caption."]
    batch = processor(images=[[wide], [tall]], text=text, padding=True, return_tensors="pt")
    # (batch, images per sample, tiles, channels, height, width)
    assert batch["pixel_values"].shape == (2, 1, max_tiles, 3, tile, tile)
    assert batch["aspect_ratio_ids"].shape == (2, 1)
    assert batch["aspect_ratio_mask"].shape == (2, 1, max_tiles)
    # A 3:1 image uses 3 tiles (1 row x 3 columns), a 1:2 image 2 tiles; the rest are masked out.
    assert batch["aspect_ratio_mask"][0, 0].tolist() == [1, 1, 1, 0]
    assert batch["aspect_ratio_mask"][1, 0].tolist() == [1, 1, 0, 0]
    assert batch["aspect_ratio_ids"][0, 0] != batch["aspect_ratio_ids"][1, 0]
    seq_len = batch["input_ids"].shape[1]
    assert batch["cross_attention_mask"].shape == (2, seq_len, 1, max_tiles)
    # Text tokens from the image token on attend to the image's real tiles only.
    image_pos = (batch["input_ids"][0] == processor.image_token_id).nonzero().item()
    assert batch["cross_attention_mask"][0, image_pos, 0].tolist() == [1, 1, 1, 0]


def test_tiny_models_are_deterministic_per_seed(tmp_path):
    first = build_tiny_models(tmp_path / "a", seed=3)
    second = build_tiny_models(tmp_path / "b", seed=3)
    other = build_tiny_models(tmp_path / "c", seed=4)
    for name in ("siglip", "mllama"):
        assert _digest(first[name]) == _digest(second[name])
        assert _digest(first[name])["model.safetensors"] != _digest(other[name])["model.safetensors"]


def test_tiny_models_unwritable_path_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["tiny-models", "--output-dir", str(blocker / "models")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("medvl tiny-models: error:") and str(blocker / "models") in err
