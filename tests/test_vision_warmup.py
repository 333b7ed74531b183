# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The vision warm-up before SFT: the Mllama vision tower learns the SigLIP encoder's image embeddings and the
concepts (modality, region, findings) of the reports."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.errors import MedvlError
from medvl_recipes.samples.phantoms import generate_studies
from medvl_recipes.vision_warmup import report_concepts, warm_up_vision_tower


@pytest.fixture(scope="module")
def studies():
    return generate_studies(16, seed=3)


@pytest.fixture(scope="module")
def images(studies):
    return [study.image for study in studies]


def test_warmup_moves_only_the_vision_tower_and_its_loss_falls(tiny_models, studies, images):
    model = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    processor = AutoProcessor.from_pretrained(tiny_models["mllama"])
    for name, param in model.named_parameters():
        param.requires_grad_("vision_model." not in name)  # as `freeze_vision_tower: true` leaves it
    before = {name: param.detach().clone() for name, param in model.named_parameters()}

    reports = [study.spec.report for study in studies]
    stats = warm_up_vision_tower(
        model, processor.image_processor, images, encoder=str(tiny_models["siglip"]), reports=reports, steps=80
    )

    assert stats["vision_warmup_steps"] == 80
    assert stats["vision_warmup_loss_last"] < 0.6 * stats["vision_warmup_loss_first"], stats
    for name, param in model.named_parameters():
        if "vision_model." not in name:
            assert torch.equal(param, before[name]), f"{name} is outside the vision tower and changed"
        assert param.requires_grad == ("vision_model." not in name), f"{name}: requires_grad not restored"
        assert param.grad is None
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if "vision_model." in n)


def test_concepts_are_read_from_the_reports_with_the_eval_rules():
    reports = [
        "Axial CT of the head. There is a mass in the left frontal lobe.",
        "No pleural effusion.",
        "PA chest radiograph. There is cardiomegaly.",
    ]
    concepts = report_concepts(reports)
    modalities, modality_ids = concepts["modality"]
    regions, region_ids = concepts["region"]
    assert [modalities[i] if i >= 0 else None for i in modality_ids.tolist()] == ["CT", None, "XR"]
    assert [regions[i] if i >= 0 else None for i in region_ids.tolist()] == ["head", "chest", "chest"]
    names, findings = concepts["findings"]
    positive = [{names[j] for j in row.nonzero()[:, 0].tolist()} for row in findings]
    assert positive == [{"mass"}, {"no finding"}, {"cardiomegaly"}]


def test_a_model_without_a_vision_tower_or_nothing_to_learn_is_refused(tiny_models, images):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_models["siglip"])
    with pytest.raises(MedvlError, match="needs a model with a Mllama vision tower"):
        warm_up_vision_tower(encoder, None, images, encoder=str(tiny_models["siglip"]), steps=1)
    model = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    with pytest.raises(MedvlError, match="needs an encoder"):
        warm_up_vision_tower(model, None, images, steps=1)
