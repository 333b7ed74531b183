# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image-text retrieval with a SigLIP encoder: embeddings, ranks and Recall@k / mean / median rank.

The one implementation the trainer's evaluation, `medvl eval`, the `evaluate` module and the demo share. Pair i
(image i, text i) is the match; image->text (`i2t`) ranks all texts for each image, text->image (`t2i`) all images
for each text. Recalls are fractions in [0, 1] here; `medvl eval` reports them in percent like its other metrics.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from medvl_recipes.errors import MedvlError


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


class TorchEncoder:
    """A SigLIP checkpoint behind the interface `medvl generate`, the retrieval context and the vision warm-up use
    (`encode_images`, `encode_texts`, `logit_scale`, `logit_bias`; also implemented by `export.OnnxEncoder`)."""

    def __init__(self, name_or_path: str, device: str = "cpu"):
        from medvl_recipes.modeling import load_encoder

        self.model, self.processor = load_encoder(name_or_path, dtype="float32", device=device)
        self.logit_scale = float(self.model.logit_scale.detach())  # log temperature, as in the checkpoint
        self.logit_bias = float(self.model.logit_bias.detach())

    def encode_images(self, images, batch_size: int = 32) -> torch.Tensor:
        return encode_images(self.model, self.processor, images, batch_size=batch_size)

    def encode_texts(self, texts, batch_size: int = 32, max_length: int = 64) -> torch.Tensor:
        return encode_texts(self.model, self.processor, texts, batch_size=batch_size, max_length=max_length)


def retrieval_ranks(image_emb, text_emb, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = best) of each pair's true match: image i among all texts, and text i among all images.

    Only strictly higher scores count against the true match, so a duplicate caption with the same embedding
    does not push the true pair down.

    Args:
        image_emb (`np.ndarray` or `torch.Tensor` of shape `(N, D)`): Image embeddings; pair i matches text i.
        text_emb (`np.ndarray` or `torch.Tensor` of shape `(N, D)`): Text embeddings.
        chunk (`int`, *optional*, defaults to `4096`): Rows per block of the similarity matrix (memory bound).

    Returns:
        `(i2t_ranks, t2i_ranks)`, each `(N,)` int.
    """
    if isinstance(image_emb, torch.Tensor):
        image_emb = image_emb.detach().float().cpu().numpy()
    if isinstance(text_emb, torch.Tensor):
        text_emb = text_emb.detach().float().cpu().numpy()
    # float32 embeddings stay float32 (half the matmul time on 10k x 10k); the ranks only compare scores from one
    # product, so the precision does not bias ties.
    image_emb, text_emb = np.asarray(image_emb), np.asarray(text_emb)
    dtype = np.result_type(image_emb.dtype, text_emb.dtype, np.float32)
    image_emb, text_emb = image_emb.astype(dtype, copy=False), text_emb.astype(dtype, copy=False)
    if image_emb.shape != text_emb.shape:
        raise MedvlError(f"image and text embeddings differ in shape: {image_emb.shape} vs {text_emb.shape}")
    n = len(image_emb)
    i2t = np.empty(n, dtype=np.int64)
    t2i = np.zeros(n, dtype=np.int64)
    diag = np.empty(n, dtype=dtype)
    # Pass 1: the true pairs' scores taken from the same matrix product as the rest, so that exact ties (duplicate
    # captions) compare equal rather than differing in the last bit.
    for start in range(0, n, chunk):
        sims = image_emb[start : start + chunk] @ text_emb.T  # (C, N)
        rows = np.arange(len(sims))
        own = sims[rows, start + rows]
        diag[start : start + chunk] = own
        i2t[start : start + chunk] = 1 + (sims > own[:, None]).sum(1)
    for start in range(0, n, chunk):
        sims = image_emb[start : start + chunk] @ text_emb.T  # column j: the images' scores for text j
        t2i += (sims > diag[None, :]).sum(0)
    return i2t, t2i + 1


def retrieval_metrics(image_emb, text_emb, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@k and mean/median rank for image->text and text->image retrieval (pair i matches text i).

    Args:
        image_emb (`torch.Tensor` or `np.ndarray` of shape `(N, D)`):
            Image embeddings (any scale; cosine similarity is used).
        text_emb (`torch.Tensor` or `np.ndarray` of shape `(N, D)`):
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
    image_emb, text_emb = (
        F.normalize(torch.as_tensor(image_emb).float(), dim=-1),
        F.normalize(torch.as_tensor(text_emb).float(), dim=-1),
    )
    metrics: dict = {}
    for direction, ranks in zip(("i2t", "t2i"), retrieval_ranks(image_emb, text_emb), strict=True):
        for k in ks:
            metrics[f"{direction}_recall@{k}"] = float((ranks <= k).mean())
        metrics[f"{direction}_mean_rank"] = float(ranks.mean())
        metrics[f"{direction}_median_rank"] = float(np.median(ranks))
    metrics["num_pairs"] = int(len(image_emb))
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


def write_retrieval_before_after(path: str | Path, before: dict, after: dict) -> str:
    """Log and write `{"before", "after", "table"}` of an encoder run's validation retrieval; return the table.

    Args:
        path (`str` or `Path`): The JSON file (`retrieval_before_after.json` in the run's output folder).
        before (`dict`): `trainer.evaluate()` before training (`eval_`-prefixed keys).
        after (`dict`): The same after training.
    """
    table = format_retrieval_table(before, after, prefix="eval_")
    logger.info("Validation retrieval before -> after training:\n%s", table)
    Path(path).write_text(json.dumps({"before": before, "after": after, "table": table}, indent=2))
    return table


def match_probability(cosine, logit_scale: float, logit_bias: float):
    """SigLIP's own image-report pair probability, `sigmoid(exp(logit_scale) * cosine + logit_bias)`.

    The quantity its sigmoid loss is trained on; `medvl eval`, `medvl generate` and the demo all report this one.

    Args:
        cosine (`float`, `np.ndarray` or `torch.Tensor`): Image-text cosine similarities.
        logit_scale (`float`): The learned log temperature, as stored in the checkpoint (`model.logit_scale`).
        logit_bias (`float`): The learned bias.

    Returns:
        The probabilities, of the type of `cosine` (a `float` for a `float`).
    """
    logits = np.exp(float(logit_scale)) * cosine + float(logit_bias)
    if isinstance(logits, torch.Tensor):
        return torch.sigmoid(logits)
    probability = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return float(probability) if np.ndim(probability) == 0 else probability
