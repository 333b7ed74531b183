# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image-text retrieval with a SigLIP encoder: embeddings and Recall@k / mean / median rank.

Pair i (image i, text i) is the match; image->text (`i2t`) ranks all texts for each image, text->image
(`t2i`) all images for each text.
"""

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


logger = logging.getLogger(__name__)


def needs_pos_interpolation(model, pixel_values: torch.Tensor) -> bool:
    """Whether `pixel_values` differ from the vision tower's trained resolution (e.g. 448 px on a 224 px model)."""
    vision_config = getattr(model.config, "vision_config", model.config)
    return tuple(pixel_values.shape[-2:]) != (vision_config.image_size, vision_config.image_size)


def _device_dtype(model) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters())
    return param.device, param.dtype


@torch.no_grad()
def encode_images(
    model, processor, images: Sequence, batch_size: int = 32, show_progress: bool = False
) -> torch.Tensor:
    """L2-normalised image embeddings, shape `(N, D)`, float32 on CPU.

    Args:
        model (`SiglipModel`):
            The encoder (any model with `get_image_features`).
        processor (`SiglipProcessor`):
            Its processor; images are resized to the processor's size (position embeddings are interpolated
            when that differs from the model's).
        images (`Sequence[PIL.Image.Image]`):
            The images.
        batch_size (`int`, *optional*, defaults to `32`):
            Images per forward pass.
        show_progress (`bool`, *optional*, defaults to `False`):
            Show a tqdm bar.
    """
    device, dtype = _device_dtype(model)
    was_training = model.training
    model.eval()
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="encode images", disable=not show_progress):
        batch = [image.convert("RGB") for image in images[start : start + batch_size]]
        pixel_values = processor(images=batch, return_tensors="pt")["pixel_values"].to(device, dtype)
        out = model.get_image_features(
            pixel_values=pixel_values, interpolate_pos_encoding=needs_pos_interpolation(model, pixel_values)
        )
        features = out.pooler_output if hasattr(out, "pooler_output") else out
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


@torch.no_grad()
def encode_texts(
    model, processor, texts: Sequence[str], batch_size: int = 32, max_length: int = 64, show_progress: bool = False
) -> torch.Tensor:
    """L2-normalised text embeddings, shape `(N, D)`, float32 on CPU.

    Texts are padded to `max_length` like SigLIP was trained (its text tower pools the last position).

    Args:
        model (`SiglipModel`):
            The encoder (any model with `get_text_features`).
        processor (`SiglipProcessor`):
            Its processor (or tokenizer).
        texts (`Sequence[str]`):
            The texts.
        batch_size (`int`, *optional*, defaults to `32`):
            Texts per forward pass.
        max_length (`int`, *optional*, defaults to `64`):
            Padding/truncation length.
        show_progress (`bool`, *optional*, defaults to `False`):
            Show a tqdm bar.
    """
    device, _ = _device_dtype(model)
    tokenizer = getattr(processor, "tokenizer", processor)
    was_training = model.training
    model.eval()
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="encode texts", disable=not show_progress):
        tokens = tokenizer(
            list(texts[start : start + batch_size]),
            padding="max_length",
            max_length=max_length,
            truncation=True,
            return_tensors="pt",
        )
        out = model.get_text_features(**{k: v.to(device) for k, v in tokens.items()})
        features = out.pooler_output if hasattr(out, "pooler_output") else out
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    # Rank of the matching column for each row, 1 = best. Only strictly higher scores count against it,
    # so an identical duplicate caption (same embedding, same score) does not push the true pair down.
    positive = scores.diagonal().unsqueeze(1)  # (N, 1)
    return (scores > positive).sum(dim=1) + 1


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@k and mean/median rank for image->text and text->image retrieval (pair i matches text i).

    Args:
        image_emb (`torch.Tensor` of shape `(N, D)`):
            Image embeddings (any scale; cosine similarity is used).
        text_emb (`torch.Tensor` of shape `(N, D)`):
            Text embeddings, row i pairs with image row i.
        ks (`Sequence[int]`, *optional*, defaults to `(1, 5, 10)`):
            Cut-offs for Recall@k.

    Returns:
        `dict`: `{"i2t_recall@1": ..., "i2t_mean_rank": ..., "i2t_median_rank": ..., "t2i_recall@1": ..., ...,
        "num_pairs": N}`; recalls are fractions in [0, 1], ranks start at 1.
    """
    if image_emb.shape[0] != text_emb.shape[0]:
        raise ValueError(
            f"retrieval_metrics needs paired embeddings; got {image_emb.shape[0]} images and {text_emb.shape[0]} texts"
        )
    image_emb = F.normalize(image_emb.float(), dim=-1)
    text_emb = F.normalize(text_emb.float(), dim=-1)
    scores = image_emb @ text_emb.T  # (N_images, N_texts)
    metrics: dict = {}
    for direction, matrix in (("i2t", scores), ("t2i", scores.T)):
        ranks = _ranks(matrix).float()
        for k in ks:
            metrics[f"{direction}_recall@{k}"] = (ranks <= k).float().mean().item()
        metrics[f"{direction}_mean_rank"] = ranks.mean().item()
        # torch.median returns the lower middle value; numpy's convention (mean of the two middles) is the usual one.
        metrics[f"{direction}_median_rank"] = ranks.quantile(0.5).item()
    metrics["num_pairs"] = int(scores.shape[0])
    return metrics


RETRIEVAL_TABLE_KEYS = (
    "i2t_recall@1",
    "i2t_recall@5",
    "i2t_recall@10",
    "i2t_median_rank",
    "t2i_recall@1",
    "t2i_recall@5",
    "t2i_recall@10",
    "t2i_median_rank",
)


def format_retrieval_table(before: dict, after: dict, prefix: str = "") -> str:
    """A markdown table `| metric | before | after |` of the retrieval metrics (keys optionally prefixed).

    Args:
        before (`dict`):
            Metrics before training, e.g. `trainer.evaluate()` (`eval_i2t_recall@1`, ...).
        after (`dict`):
            Metrics after training.
        prefix (`str`, *optional*, defaults to `""`):
            Prefix of the keys, e.g. `"eval_"`.
    """
    rows = ["| metric | before | after |", "|---|---|---|"]
    for key in RETRIEVAL_TABLE_KEYS:
        if prefix + key in before or prefix + key in after:
            fmt = "{:.3f}" if "recall" in key else "{:.1f}"
            cells = [fmt.format(m[prefix + key]) if prefix + key in m else "-" for m in (before, after)]
            rows.append(f"| {key} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)
