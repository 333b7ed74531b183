# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The analysis of one upload, step by step: read it (masking burned-in text if asked), find similar cases and
check how far the image is from them, stream a report with its findings, then score image-report agreement.
What the page shows is `Analysis`; `app.py` renders it."""

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from medvl_recipes.demo.cases import Calibration, CaseIndex, pixel_hash
from medvl_recipes.demo.models import DemoModels
from medvl_recipes.demo.settings import DemoConfig
from medvl_recipes.demo.uploads import UPLOAD_KINDS, Upload, mask_bands, read_upload
from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.findings import FindingExtractor
from medvl_recipes.evaluation.similarity import siglip_logit_params
from medvl_recipes.generation import stream_report
from medvl_recipes.retrieval import encode_images, encode_texts, match_probability


@functools.cache
def finding_extractor() -> FindingExtractor:
    """The evaluation's rule-based finding extractor (its default lexicon), built once."""
    return FindingExtractor()


def siglip_match(models: DemoModels, image_emb: torch.Tensor, report: str) -> tuple[float, float]:
    """SigLIP image-report agreement: `(probability, cosine)`.

    The probability is the model's own sigmoid of `logit_scale.exp() * cosine + logit_bias`, the quantity its
    contrastive loss was trained on.

    Args:
        models (`DemoModels`): Loaded models.
        image_emb (`torch.Tensor`): `(1, D)` image embedding.
        report (`str`): The report text.
    """
    text_emb = encode_texts(models.encoder, models.encoder_processor, [report])  # (1, D)
    cosine = float(image_emb.reshape(-1) @ text_emb.reshape(-1))
    scale, bias = siglip_logit_params(models.encoder)
    return match_probability(cosine, scale, bias), cosine


@dataclass
class Match:
    """Image-report agreement: the SigLIP probability and cosine, and where the cosine falls among correct pairs.

    Args:
        probability (`float`): See `siglip_match`.
        cosine (`float`): See `siglip_match`.
        percentile (`float`): Share (0-100) of held-out image-report pairs with a cosine at most this one.
    """

    probability: float
    cosine: float
    percentile: float


@dataclass
class Analysis:
    """One step of `analyse`: what the page shows so far."""

    image: Image.Image | None = None
    kind: str | None = None
    burned_in: bool = False
    masked: bool = False
    report: str = ""
    findings: dict[str, str] = field(default_factory=dict)
    match: Match | None = None
    cases: list[dict] = field(default_factory=list)
    best_similarity: float | None = None
    out_of_distribution: bool = False
    status: str = ""
    done: bool = False
    image_emb: torch.Tensor | None = field(default=None, repr=False)  # (1, D)


def open_upload(path: str | Path | None, config: DemoConfig) -> Upload:
    """`read_upload` with the limits of `config` (`max_upload_mb`, `max_pixels`)."""
    return read_upload(path, max_bytes=int(config.max_upload_mb * 1e6), max_pixels=config.max_pixels)


def shown_image(upload: Upload, config: DemoConfig, mask: bool) -> tuple[Image.Image, bool]:
    """The image the model sees and the page shows: `(image, masked)`; burned-in bands blanked when asked."""
    if mask and upload.burned_in:
        return mask_bands(upload.image, config.mask_fraction), True
    return upload.image, False


def find_similar(
    models: DemoModels, index: CaseIndex, calibration: Calibration, config: DemoConfig, image: Image.Image
) -> Analysis:
    """The similar cases of one image and its out-of-distribution check, as an `Analysis` (no report yet).

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        calibration (`Calibration`): Its calibration (the out-of-distribution threshold).
        config (`DemoConfig`): Settings (`top_k`).
        image (`PIL.Image.Image`): The query.
    """
    image_emb = encode_images(models.encoder, models.encoder_processor, [image])  # (1, D)
    query_hash = pixel_hash(image)
    hits = index.search(image_emb, config.top_k, query_hash)
    cases = [
        {
            "rank": rank,
            "score": round(score, 3),
            "id": index.ids[row],
            "report": index.texts[row],
            "thumbnail": index.thumbnail(row),
        }
        for rank, (row, score) in enumerate(hits, start=1)
    ]
    best = index.best_similarity(image_emb, query_hash)
    return Analysis(
        image=image,
        cases=cases,
        best_similarity=best,
        out_of_distribution=best < calibration.ood_threshold,
        image_emb=image_emb,
    )


def analyse(
    models: DemoModels,
    index: CaseIndex,
    calibration: Calibration,
    config: DemoConfig,
    upload: Upload | str | Path | None,
    mask: bool = True,
) -> Iterator[Analysis]:
    """Validate an upload, find similar cases, stream a report with its findings, then score image-report agreement.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        calibration (`Calibration`): Its calibration (out-of-distribution threshold, match score scale).
        config (`DemoConfig`): Settings (`max_upload_mb`, `max_pixels`, `top_k`, `max_new_tokens`, `mask_fraction`).
        upload (`Upload`, `str` or `Path`, *optional*): A decoded upload, or the uploaded file.
        mask (`bool`, *optional*, defaults to `True`): Blank the bands where a DICOM declares burned-in text.

    Yields:
        `Analysis`: the state after validation, after each generated piece, and the final state (`done=True`).
        Bad input gives a single `Analysis` whose `status` explains the problem.
    """
    try:
        upload = upload if isinstance(upload, Upload) else open_upload(upload, config)
    except MedvlError as err:
        yield Analysis(status=f"⚠️ {err}", done=True)
        return
    image, masked = shown_image(upload, config, mask)
    state = find_similar(models, index, calibration, config, image)
    state.kind, state.burned_in, state.masked = upload.kind, upload.burned_in, masked
    state.status = f"Generating a report for the {UPLOAD_KINDS[upload.kind]} image…"
    yield state
    extractor = finding_extractor()
    context = models.context.reports_for([image])[0] if models.context is not None else None
    instruction, system_prompt = models.prompt
    for text in stream_report(
        models.decoder,
        models.decoder_processor,
        image,
        prompt=instruction,
        system_prompt=system_prompt,
        context=context,
        max_new_tokens=config.max_new_tokens,
    ):
        state.report = text
        state.findings = extractor.extract(text)
        yield state
    if state.report:
        probability, cosine = siglip_match(models, state.image_emb, state.report)
        state.match = Match(probability, cosine, calibration.match_percentile(cosine))
    state.status = "Done." if state.report else "Done (the model generated an empty report)."
    state.done = True
    yield state
