# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The analysis of one upload, step by step: read it, find similar cases, stream a report, score image-report
agreement. What the page shows is `Analysis`; `app.py` renders it."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from medvl_recipes.demo.cases import THUMBNAIL_SIZE, CaseIndex
from medvl_recipes.demo.models import DemoModels
from medvl_recipes.demo.settings import DemoConfig
from medvl_recipes.demo.uploads import UPLOAD_KINDS, read_upload
from medvl_recipes.errors import MedvlError


DISCLAIMER = (
    "**Not for clinical use.** This demo shows a research model. Its reports can be wrong or incomplete and are "
    "not a diagnosis. Upload only de-identified images; DICOM tags are never displayed, uploads are deleted "
    "from the server after they are read and the images shown to you when you close the page."
)


def siglip_match(models: DemoModels, image_emb: torch.Tensor, report: str) -> tuple[float, float]:
    """SigLIP image-report agreement: `(probability, cosine)`.

    The probability is the model's own sigmoid of `logit_scale.exp() * cosine + logit_bias`, the quantity its
    contrastive loss was trained on.

    Args:
        models (`DemoModels`): Loaded models.
        image_emb (`torch.Tensor`): `(1, D)` image embedding.
        report (`str`): The report text.
    """
    from medvl_recipes.retrieval import encode_texts

    text_emb = encode_texts(models.encoder, models.encoder_processor, [report])  # (1, D)
    cosine = float(image_emb.reshape(-1) @ text_emb.reshape(-1))
    with torch.no_grad():
        scale = float(models.encoder.logit_scale.exp())
        bias = float(models.encoder.logit_bias) if getattr(models.encoder, "logit_bias", None) is not None else 0.0
    return float(torch.sigmoid(torch.tensor(scale * cosine + bias))), cosine


@dataclass
class Analysis:
    """One step of `analyse`: what the page shows so far."""

    image: Image.Image | None = None
    report: str = ""
    similarity: tuple[float, float] | None = None
    cases: list[dict] = field(default_factory=list)
    status: str = ""
    done: bool = False


def analyse(models: DemoModels, index: CaseIndex, config: DemoConfig, path: str | None) -> Iterator[Analysis]:
    """Validate an upload, find similar cases, stream a report, then score image-report agreement.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        config (`DemoConfig`): Settings (`max_upload_mb`, `max_pixels`, `top_k`, `max_new_tokens`).
        path (`str`, *optional*): The uploaded file.

    Yields:
        `Analysis`: the state after validation, after each generated piece, and the final state (`done=True`).
        Bad input gives a single `Analysis` whose `status` explains the problem.
    """
    from medvl_recipes.generation import stream_report
    from medvl_recipes.retrieval import encode_images

    try:
        image, kind = read_upload(path, max_bytes=int(config.max_upload_mb * 1e6), max_pixels=config.max_pixels)
    except MedvlError as err:
        yield Analysis(status=f"⚠️ {err}", done=True)
        return
    image_emb = encode_images(models.encoder, models.encoder_processor, [image])  # (1, D)
    cases = []
    for rank, (row, score) in enumerate(index.search(image_emb, config.top_k), start=1):
        thumbnail = index.dataset[row]["image"].convert("RGB")
        thumbnail.thumbnail(THUMBNAIL_SIZE)
        cases.append(
            {
                "rank": rank,
                "score": round(score, 3),
                "id": index.ids[row],
                "report": index.texts[row],
                "thumbnail": thumbnail,
            }
        )
    state = Analysis(image=image, cases=cases, status=f"Generating a report for the {UPLOAD_KINDS[kind]} image…")
    yield state
    for text in stream_report(models.decoder, models.decoder_processor, image, max_new_tokens=config.max_new_tokens):
        state.report = text
        yield state
    state.similarity = siglip_match(models, image_emb, state.report) if state.report else None
    state.status = "Done." if state.report else "Done (the model generated an empty report)."
    state.done = True
    yield state


def similarity_text(similarity: tuple[float, float] | None) -> str:
    if similarity is None:
        return ""
    probability, cosine = similarity
    return f"**Image-report match (SigLIP):** {probability:.3f} (cosine {cosine:.3f})"
