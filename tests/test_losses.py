# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import SiglipConfig, SiglipModel

from medvl_recipes.losses import SigLipLoss


def naive_siglip_loss(image_emb, text_emb, logit_scale, logit_bias):
    """The paper's pseudo-code as a double loop over all (image, text) pairs."""
    n = image_emb.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            label = 1.0 if i == j else -1.0
            logit = math.exp(float(logit_scale)) * float(image_emb[i].double() @ text_emb[j].double()) + float(
                logit_bias
            )
            total += -math.log(1.0 / (1.0 + math.exp(-label * logit)))
    return total / n


def _embeddings(n, d, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    image_emb = F.normalize(torch.randn(n, d, generator=generator), dim=-1).to(dtype)
    text_emb = F.normalize(torch.randn(n, d, generator=generator), dim=-1).to(dtype)
    return image_emb, text_emb


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_naive_double_loop(batch_size, dtype):
    image_emb, text_emb = _embeddings(batch_size, 16, seed=batch_size)
    logit_scale, logit_bias = torch.tensor([math.log(10.0)]), torch.tensor([-10.0])
    loss = SigLipLoss()(image_emb.to(dtype), text_emb.to(dtype), logit_scale, logit_bias)
    assert loss.dtype == torch.float32
    # The reference sees the same (rounded) inputs; the loss itself always runs in float32.
    expected = naive_siglip_loss(image_emb.to(dtype).float(), text_emb.to(dtype).float(), logit_scale, logit_bias)
    torch.testing.assert_close(loss.item(), expected, rtol=1e-5, atol=1e-5)


def test_logits_and_ground_truth():
    image_emb, text_emb = _embeddings(4, 8, seed=0)
    loss_fn = SigLipLoss()
    logits = loss_fn.get_logits(image_emb, text_emb, torch.tensor(0.5), torch.tensor(-2.0))
    torch.testing.assert_close(logits, math.exp(0.5) * image_emb @ text_emb.T - 2.0)
    labels = loss_fn.get_ground_truth(3, device="cpu")
    torch.testing.assert_close(labels, torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1]]))


def test_normalize_option_equals_prenormalised():
    generator = torch.Generator().manual_seed(1)
    raw_image, raw_text = torch.randn(5, 8, generator=generator) * 3, torch.randn(5, 8, generator=generator) * 3
    scale, bias = torch.tensor(1.0), torch.tensor(-3.0)
    torch.testing.assert_close(
        SigLipLoss(normalize=True)(raw_image, raw_text, scale, bias),
        SigLipLoss()(F.normalize(raw_image, dim=-1), F.normalize(raw_text, dim=-1), scale, bias),
    )


@pytest.mark.parametrize("batch_size", [2, 5])
def test_matches_transformers_siglip_model_loss(batch_size):
    config = SiglipConfig(
        text_config={
            "vocab_size": 50,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "image_size": 16,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    )
    torch.manual_seed(0)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        # Non-trivial scale and bias so that a swapped or missing term changes the value.
        model.logit_scale.fill_(1.7)
        model.logit_bias.fill_(-3.0)
    generator = torch.Generator().manual_seed(batch_size)
    input_ids = torch.randint(0, 50, (batch_size, 16), generator=generator)
    pixel_values = torch.randn(batch_size, 3, 16, 16, generator=generator)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, return_loss=True)
        loss = SigLipLoss()(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias)
    torch.testing.assert_close(loss, out.loss, rtol=1e-5, atol=1e-6)
    # Same logits as the model's, image-major.
    torch.testing.assert_close(
        SigLipLoss().get_logits(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias),
        out.logits_per_image,
    )
    assert naive_siglip_loss(out.image_embeds, out.text_embeds, 1.7, -3.0) == pytest.approx(out.loss.item(), rel=1e-5)
