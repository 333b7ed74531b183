# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`generate_reports` / `stream_report` against a brute-force greedy loop on the tiny Mllama."""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.generation import generate_reports, stream_report
from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, PROMPT_SETS, build_messages


@pytest.fixture(scope="module")
def model_and_processor(tiny_models):
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    # Sharpen the random weights' dependence on the image so that different images give different reports.
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            if hasattr(layer, "cross_attn_attn_gate"):
                layer.cross_attn_attn_gate.fill_(3.0)
                layer.cross_attn_mlp_gate.fill_(3.0)
    return model.eval(), AutoProcessor.from_pretrained(tiny_models["mllama"])


def images():
    return [
        Image.new("RGB", (96, 80), color=(20, 20, 20)),
        Image.new("RGB", (200, 60), color=(230, 230, 230)),
        Image.radial_gradient("L").convert("RGB").resize((60, 150)),
    ]


def greedy_reference(model, processor, image, max_new_tokens):
    """Greedy decoding by hand: full forward pass per step, argmax of the last logits, stop at an EOS id."""
    text = processor.apply_chat_template(build_messages(), add_generation_prompt=True)
    inputs = processor(text=[text], images=[[image]], add_special_tokens=False, return_tensors="pt")
    eos = set(model.generation_config.eos_token_id)
    ids, cross = inputs["input_ids"], inputs["cross_attention_mask"]
    new = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values=inputs["pixel_values"],
                aspect_ratio_ids=inputs["aspect_ratio_ids"],
                aspect_ratio_mask=inputs["aspect_ratio_mask"],
                cross_attention_mask=cross,
            ).logits
        token = int(logits[0, -1].argmax())
        if token in eos:
            break
        new.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        cross = torch.cat([cross, cross[:, -1:]], dim=1)
    return processor.decode(new, skip_special_tokens=True).strip()


def test_default_prompt_is_the_training_prompt():
    messages = build_messages()
    assert messages[0]["content"][0]["text"] == DEFAULT_SYSTEM_PROMPT
    assert messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": PROMPT_SETS["default"][0]}]


def test_batched_generation_matches_brute_force_greedy(model_and_processor):
    model, processor = model_and_processor
    reports = generate_reports(model, processor, images(), max_new_tokens=10, batch_size=2, show_progress=False)
    reference = [greedy_reference(model, processor, image, 10) for image in images()]
    assert reports == reference
    assert len(set(reports)) > 1  # the images matter, so the comparison is not vacuous
    one_by_one = [generate_reports(model, processor, [image], max_new_tokens=10)[0] for image in images()]
    assert reports == one_by_one


def test_stream_report_ends_with_the_full_report(model_and_processor, tmp_path):
    model, processor = model_and_processor
    path = tmp_path / "image.png"
    images()[1].save(path)
    pieces = list(stream_report(model, processor, path, max_new_tokens=10))
    assert pieces and all(later.startswith(earlier) for earlier, later in zip(pieces, pieces[1:], strict=False))
    assert pieces[-1] == generate_reports(model, processor, [path], max_new_tokens=10)[0]
