# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import statistics

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModel, AutoProcessor

from medvl_recipes.retrieval import encode_images, encode_texts, retrieval_metrics


def brute_force_ranks(image_emb, text_emb):
    """Rank of the true match for each query, by sorting the similarities in Python."""
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    sims = (image_emb @ text_emb.T).tolist()
    i2t = [1 + sum(score > row[i] for score in row) for i, row in enumerate(sims)]
    columns = list(zip(*sims, strict=True))
    t2i = [1 + sum(score > col[j] for score in col) for j, col in enumerate(columns)]
    return i2t, t2i


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    text_emb = torch.randn(12, 6, generator=generator)
    image_emb = text_emb + 1.2 * torch.randn(12, 6, generator=generator)  # noisy matches
    metrics = retrieval_metrics(image_emb, text_emb)
    i2t, t2i = brute_force_ranks(image_emb, text_emb)
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            assert metrics[f"{name}_recall@{k}"] == pytest.approx(sum(r <= k for r in ranks) / len(ranks))
        assert metrics[f"{name}_mean_rank"] == pytest.approx(statistics.mean(ranks))
        assert metrics[f"{name}_median_rank"] == pytest.approx(statistics.median(ranks))
    assert metrics["num_pairs"] == 12


def test_perfect_and_reversed_retrieval():
    emb = torch.eye(4)
    metrics = retrieval_metrics(emb, emb, ks=(1, 2))
    assert metrics["i2t_recall@1"] == 1.0 and metrics["t2i_mean_rank"] == 1.0
    # Image i is closest to text 3 - i: the true text ranks 2nd for every image (ties counted in the pair's favour).
    texts = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    images = texts.flip(0) * 0.3 + texts * 0.1
    metrics = retrieval_metrics(images, texts)
    i2t, _ = brute_force_ranks(images, texts)
    assert metrics["i2t_mean_rank"] == pytest.approx(sum(i2t) / 4)
    assert metrics["i2t_recall@1"] < 1.0


def test_unpaired_inputs_raise():
    with pytest.raises(ValueError, match="paired"):
        retrieval_metrics(torch.zeros(3, 2), torch.zeros(4, 2))


def test_encoders_match_model_features(tiny_models):
    model = AutoModel.from_pretrained(tiny_models["siglip"])
    processor = AutoProcessor.from_pretrained(tiny_models["siglip"])
    images = [Image.new("RGB", (40 + 8 * i, 50), color=(30 * i, 20, 200 - 20 * i)) for i in range(5)]
    texts = [f"A nodule in the left lower zone, case {i}." for i in range(5)]
    image_emb = encode_images(model, processor, images, batch_size=2)
    text_emb = encode_texts(model, processor, texts, batch_size=2)
    assert image_emb.shape == (5, model.config.vision_config.hidden_size)
    torch.testing.assert_close(image_emb.norm(dim=-1), torch.ones(5))
    # One batch through the model's own forward gives the same normalised embeddings.
    inputs = processor(text=texts, images=images, padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(image_emb, out.image_embeds, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(text_emb, out.text_embeds, rtol=1e-4, atol=1e-5)
