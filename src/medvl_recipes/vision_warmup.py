# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A vision alignment stage before SFT: the decoder's vision tower learns what the fine-tuned SigLIP sees and what
the training reports say.

The seed's architecture puts a fine-tuned SigLIP in front of the report decoder; LLaVA-Med aligns image features
to biomedical concepts before it trains on reports. This stage does a small version of both on the training split,
with the decoder's own vision tower (its output features averaged over the patches of the real tiles) and
temporary linear heads that are thrown away afterwards:

- contrastive distillation from the encoder: among the images of a batch, the tower's projected features must pick
  out the fine-tuned SigLIP's embedding of their own image (InfoNCE, temperature 0.1), so the tower inherits the
  distinctions the encoder's contrastive training made;
- concepts (on by default): the modality and body region that each training report names (`StudyParser`) and its
  positive findings (`FindingExtractor`), as classification targets.

SFT then starts from a tower that separates study types and findings instead of having to learn them from the
language-model loss alone. On the embedded sample data with the tiny models this is what makes reports depend on
the image: both terms are needed (docs/benchmarks.md, "Decoder grounding"). The labels come from the training
reports with the same rules `medvl eval` applies to generations, so concept supervision is as good as those rules
are on your reports. For a real Llama 3.2 Vision the stage adapts the vision tower to the domain (off in the real
recipes); it runs before the Trainer, on each process with the same seed and data.
"""

import logging
import time

import torch
from tqdm.auto import tqdm

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

# InfoNCE temperature of the distillation term: cosine similarities of unit vectors / 0.1.
DISTILLATION_TEMPERATURE = 0.1
IGNORE = -100
# The findings term is a mean over the lexicon's findings, most of them absent from most reports, so it is small
# beside the modality and region terms; weighted 3x (the setting measured in docs/benchmarks.md).
FINDINGS_WEIGHT = 3.0


def vision_tower(model) -> torch.nn.Module:
    """The Mllama vision encoder of `model` (a `MllamaForConditionalGeneration`, also inside a `PeftModel`)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = getattr(getattr(base, "model", base), "vision_model", None)
    if tower is None or getattr(base.config, "model_type", None) != "mllama":
        raise MedvlError(
            f"the vision warm-up needs a model with a Mllama vision tower (`model.vision_model`); "
            f"{type(base).__name__} has none"
        )
    return tower


def pooled_features(tower, pixel_values, aspect_ratio_ids, aspect_ratio_mask) -> torch.Tensor:
    """Mean of the tower's output features over the patches of the image's real tiles: `(B, vision_output_dim)`."""
    hidden = tower(
        pixel_values=pixel_values, aspect_ratio_ids=aspect_ratio_ids, aspect_ratio_mask=aspect_ratio_mask
    ).last_hidden_state[:, 0]  # (B, tiles, patches, dim): one image per sample
    tiles = aspect_ratio_mask[:, 0, :, None].to(hidden.dtype)  # (B, tiles, 1): 0 for padding tiles
    return (hidden.mean(dim=2) * tiles).sum(dim=1) / tiles.sum(dim=1).clamp(min=1)


def report_concepts(reports: list[str]) -> dict:
    """Classification targets from report text: modality and region ids (`IGNORE` where a report names none) and
    the positive-finding matrix, with the class names."""
    from medvl_recipes.evaluation.findings import FindingExtractor
    from medvl_recipes.evaluation.grounding import StudyParser

    parser, extractor = StudyParser(), FindingExtractor()
    targets = {}
    for field, read in (("modality", parser.modality), ("region", parser.region)):
        values = [read(report) for report in reports]
        names = sorted({value for value in values if value})
        targets[field] = (names, torch.tensor([names.index(v) if v else IGNORE for v in values]))
    targets["findings"] = (extractor.names, torch.tensor(extractor.positive_matrix(reports), dtype=torch.float32))
    return targets


def warm_up_vision_tower(
    model,
    image_processor,
    images,
    *,
    encoder: str | None = None,
    reports: list[str] | None = None,
    steps: int = 300,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> dict:
    """Train `model`'s vision tower (in place) on `images` against the `encoder`'s embeddings and/or the `reports`'
    concepts; everything else in `model` is untouched and `requires_grad` flags are restored.

    Args:
        model (`MllamaForConditionalGeneration` or `peft.PeftModel`):
            The decoder.
        image_processor (`MllamaImageProcessor`):
            The decoder's image processor (tiles, aspect-ratio ids), as in training.
        images (`Sequence[PIL.Image.Image]`):
            The training images (a list, or a sequence that opens each one when indexed or sliced).
        encoder (`str`, *optional*):
            A fine-tuned SigLIP folder or Hub id (`medvl train-encoder` output): adds the distillation term.
        reports (`list[str]`, *optional*):
            The images' reports: adds the concept term.
        steps (`int`, *optional*, defaults to `300`):
            AdamW steps at a constant learning rate.
        learning_rate (`float`, *optional*, defaults to `1e-3`):
            Learning rate of the tower and the temporary heads.
        batch_size (`int`, *optional*, defaults to `32`):
            Images per step, sampled with replacement.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the heads' initialisation and the batch sampling.

    Returns:
        `dict`: `vision_warmup_loss_first` / `_last` (mean loss of the first and last tenth of the steps),
        `vision_warmup_steps`, `vision_warmup_seconds`.
    """
    if encoder is None and reports is None:
        raise MedvlError("the vision warm-up needs an encoder (distillation), reports (concepts) or both")
    if not images:
        raise MedvlError("the vision warm-up has no training images")
    if reports is not None and len(reports) != len(images):
        raise MedvlError(f"the vision warm-up got {len(images)} images but {len(reports)} reports")
    tower = vision_tower(model)
    parameters = list(tower.parameters())
    if any(not p.dtype.is_floating_point for p in parameters):
        raise MedvlError(
            "the vision warm-up trains the vision tower, which is quantized here (load_in_4bit); warm it up on the "
            "unquantized model and save it, then train QLoRA from that checkpoint"
        )
    device, dtype = parameters[0].device, parameters[0].dtype
    start = time.perf_counter()

    heads, targets = _objectives(tower.config.vision_output_dim, images, encoder, reports, device, seed)
    heads.to(device, dtype)

    generator = torch.Generator().manual_seed(seed)
    requires_grad = [p.requires_grad for p in parameters]
    was_training = tower.training
    for p in parameters:
        p.requires_grad_(True)
    tower.train()
    optimizer = torch.optim.AdamW(parameters + list(heads.parameters()), lr=learning_rate, weight_decay=0.0)
    losses = []
    try:
        for _ in tqdm(range(steps), desc="vision warm-up", unit="step"):
            index = torch.randint(0, len(images), (min(batch_size, len(images)),), generator=generator)
            # Tiled per batch, not all at once: a real dataset's 4-tile pixel values would not fit in memory.
            inputs = image_processor([[images[i].convert("RGB")] for i in index.tolist()], return_tensors="pt")
            features = pooled_features(
                tower,
                inputs["pixel_values"].to(device, dtype),
                inputs["aspect_ratio_ids"].to(device),
                inputs["aspect_ratio_mask"].to(device),
            )
            loss = _loss(heads, targets, features, index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for p, flag in zip(parameters, requires_grad, strict=True):
            p.requires_grad_(flag)
            p.grad = None
        tower.train(was_training)
    tenth = max(1, len(losses) // 10)
    stats = {
        "vision_warmup_loss_first": sum(losses[:tenth]) / tenth,
        "vision_warmup_loss_last": sum(losses[-tenth:]) / tenth,
        "vision_warmup_steps": len(losses),
        "vision_warmup_seconds": round(time.perf_counter() - start, 1),
    }
    logger.info(
        "vision warm-up (%s) on %d images: loss %.3f -> %.3f in %d steps (%.0f s)",
        " + ".join(heads),
        len(images),
        stats["vision_warmup_loss_first"],
        stats["vision_warmup_loss_last"],
        stats["vision_warmup_steps"],
        stats["vision_warmup_seconds"],
    )
    return stats


def _objectives(width: int, images, encoder, reports, device, seed: int) -> tuple[torch.nn.ModuleDict, dict]:
    # One linear head per term, and its targets per training image.
    heads, targets = torch.nn.ModuleDict(), {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if encoder is not None:
            from medvl_recipes.retrieval import TorchEncoder

            targets["encoder"] = TorchEncoder(encoder, device=str(device)).encode_images(images)  # (N, D), unit norm
            heads["encoder"] = torch.nn.Linear(width, targets["encoder"].shape[1])
        if reports is not None:
            for field, (names, values) in report_concepts(reports).items():
                if names:
                    targets[field] = values
                    heads[field] = torch.nn.Linear(width, len(names))
    return heads, targets


def _loss(heads: torch.nn.ModuleDict, targets: dict, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    loss = features.new_zeros((), dtype=torch.float32)
    for name, head in heads.items():
        out, wanted = head(features).float(), targets[name][index].to(features.device)
        if name == "encoder":
            similarity = torch.nn.functional.normalize(out, dim=-1) @ wanted.T / DISTILLATION_TEMPERATURE
            own = torch.arange(len(index), device=features.device)
            loss = loss + torch.nn.functional.cross_entropy(similarity, own)
        elif name == "findings":
            loss = loss + FINDINGS_WEIGHT * torch.nn.functional.binary_cross_entropy_with_logits(out, wanted)
        elif (wanted != IGNORE).any():
            loss = loss + torch.nn.functional.cross_entropy(out, wanted, ignore_index=IGNORE)
    return loss
