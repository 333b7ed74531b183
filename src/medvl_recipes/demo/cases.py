# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The similar-case index and its calibration.

The index holds the image embeddings of a prepared split (the training cases by default), cached on disk per
encoder and data, and is searched by cosine similarity, never returning the query image itself. The calibration
embeds a held-out split (validation) against it: each held-out image's best similarity to the index says how
close an in-distribution image usually gets (the out-of-distribution threshold), and each held-out image's
similarity to its own reference report says what a correct report scores (the match score's scale).
"""

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medvl_recipes.demo.models import DemoModels
from medvl_recipes.demo.settings import DemoConfig
from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (160, 160)
# Cosine at which two embeddings are taken to be the same image (re-encoded, resized): such a case is the query
# itself and is never shown as a "similar" one.
SAME_IMAGE_COSINE = 0.9999


def pixel_hash(image: Image.Image) -> str:
    """A hash of an image's RGB pixels and size: equal for the same picture whatever file format carried it."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()[:32]


@dataclass
class CaseIndex:
    """Image embeddings of an indexed dataset split, with the rows they came from.

    Args:
        image_emb (`torch.Tensor`): `(N, D)` L2-normalised image embeddings.
        ids (`list[str]`): Row ids.
        texts (`list[str]`): Reference reports.
        pixel_hashes (`list[str]`): `pixel_hash` of each row's image (to leave the query itself out).
        dataset (`datasets.Dataset`): The indexed rows (for thumbnails).
    """

    image_emb: torch.Tensor
    ids: list[str]
    texts: list[str]
    pixel_hashes: list[str]
    dataset: object = field(repr=False)

    def search(self, query_emb: torch.Tensor, k: int, query_hash: str | None = None) -> list[tuple[int, float]]:
        """The `k` rows most similar to one `(1, D)` or `(D,)` embedding: `[(row, cosine), ...]`, best first.

        Rows showing the query itself (same `pixel_hash`, or cosine >= `SAME_IMAGE_COSINE`) are left out.
        """
        scores = self.image_emb @ query_emb.reshape(-1)  # (N,)
        order = torch.argsort(scores, descending=True)
        found = []
        for i in order.tolist():
            if (query_hash is not None and self.pixel_hashes[i] == query_hash) or scores[i] >= SAME_IMAGE_COSINE:
                continue
            found.append((i, float(scores[i])))
            if len(found) == k:
                break
        return found

    def best_similarity(self, query_emb: torch.Tensor, query_hash: str | None = None) -> float:
        """The cosine of the closest indexed image other than the query itself (-1 when there is none)."""
        best = self.search(query_emb, 1, query_hash)
        return best[0][1] if best else -1.0

    def thumbnail(self, row: int) -> Image.Image:
        """The image of one row, shrunk to `THUMBNAIL_SIZE`."""
        image = self.dataset[row]["image"].convert("RGB")
        image.thumbnail(THUMBNAIL_SIZE)
        return image


@dataclass
class Calibration:
    """How held-out images relate to the index, for the out-of-distribution warning and the match score.

    Args:
        split (`str`): The held-out split.
        best_similarities (`np.ndarray`): `(M,)` each held-out image's best cosine to the index.
        pair_cosines (`np.ndarray`): `(M,)` each held-out image's cosine to its own reference report.
        percentile (`float`): The percentile of `best_similarities` that is the threshold.
        dataset (`datasets.Dataset`): The held-out rows (the demo's examples come from them).
    """

    split: str
    best_similarities: np.ndarray
    pair_cosines: np.ndarray
    percentile: float
    dataset: object = field(repr=False)

    @property
    def ood_threshold(self) -> float:
        """Best-match cosine below which an image is unlike the indexed cases."""
        return float(np.percentile(self.best_similarities, self.percentile))

    def match_percentile(self, cosine: float) -> float:
        """The share (0-100) of held-out image-report pairs whose cosine is at most `cosine`."""
        return float(100.0 * np.mean(self.pair_cosines <= cosine))


def _load_split(name_or_path: str, split: str, limit: int, setting: str):
    from medvl_recipes.data.prepared import load_prepared_split

    dataset = load_prepared_split(name_or_path, split, setting=setting)
    if limit and len(dataset) > limit:
        dataset = dataset.select(range(limit))
    if len(dataset) == 0:
        raise MedvlError(f"index dataset {name_or_path}: split {split!r} is empty; pass another {setting}")
    return dataset


def _content_fingerprint(dataset) -> str:
    # The stored image bytes, ids and texts decide the cache: hashed without decoding a single image.
    from datasets import Image as ImageFeature

    digest = hashlib.sha256()
    raw = dataset.cast_column("image", ImageFeature(decode=False))
    for row in raw.select_columns(["image", "id", "text"]):
        image = row["image"] or {}
        digest.update(image.get("bytes") or str(image.get("path")).encode())
        digest.update(f"\0{row['id']}\0{row['text']}\0".encode())
    return digest.hexdigest()[:16]


def _cached(path: Path, compute):
    if path.is_file():
        logger.info("Loaded %s", path)
        return torch.load(path, weights_only=False)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so that a crash never leaves a truncated cache behind.
    tmp = path.with_suffix(".tmp")
    torch.save(value, tmp)
    tmp.replace(path)
    return value


def _cache_file(kind: str, models: DemoModels, dataset, config: DemoConfig, split: str) -> Path:
    # The encoder weights and the stored rows decide the embeddings: a retrained encoder never reuses a stale index.
    key_source = f"{models.revisions.get('encoder')}|{_content_fingerprint(dataset)}|{split}|{len(dataset)}"
    return Path(config.cache_dir) / f"{kind}-{hashlib.sha256(key_source.encode()).hexdigest()[:20]}.pt"


def build_index(models: DemoModels, config: DemoConfig, batch_size: int = 32) -> CaseIndex:
    """Embed the index split with the encoder, or load the embeddings cached on disk for this encoder and data.

    The cache file is `cache_dir/index-<key>.pt`, keyed by the encoder weights, the dataset content (image bytes,
    ids, texts), the split and the row count.

    Args:
        models (`DemoModels`): Loaded models.
        config (`DemoConfig`): Settings (`index_dataset`, `index_split`, `index_limit`, `cache_dir`).
        batch_size (`int`, *optional*, defaults to `32`): Images per encoder forward pass.
    """
    from medvl_recipes.retrieval import encode_images

    dataset = _load_split(config.index_dataset, config.index_split, config.index_limit, "--index-split")

    def compute() -> dict:
        images = [row["image"] for row in dataset]
        image_emb = encode_images(
            models.encoder, models.encoder_processor, images, batch_size=batch_size, show_progress=True
        )
        hashes = [pixel_hash(image) for image in images]
        return {"image_emb": image_emb, "ids": list(dataset["id"]), "texts": list(dataset["text"]), "hashes": hashes}

    cached = _cached(_cache_file("index", models, dataset, config, config.index_split), compute)
    logger.info("Case index: %d rows of %s[%s]", len(cached["ids"]), config.index_dataset, config.index_split)
    return CaseIndex(cached["image_emb"], cached["ids"], cached["texts"], cached["hashes"], dataset)


def calibrate(models: DemoModels, index: CaseIndex, config: DemoConfig, batch_size: int = 32) -> Calibration:
    """Embed the calibration split (cached like the index) and measure it against the index.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        config (`DemoConfig`): Settings (`index_dataset`, `calibration_split`, `index_limit`, `ood_percentile`).
        batch_size (`int`, *optional*, defaults to `32`): Images per encoder forward pass.
    """
    from medvl_recipes.retrieval import encode_images, encode_texts

    dataset = _load_split(config.index_dataset, config.calibration_split, config.index_limit, "--calibration-split")

    def compute() -> dict:
        images = [row["image"] for row in dataset]
        image_emb = encode_images(models.encoder, models.encoder_processor, images, batch_size=batch_size)
        text_emb = encode_texts(models.encoder, models.encoder_processor, list(dataset["text"]), batch_size=batch_size)
        best = [index.best_similarity(emb, pixel_hash(image)) for emb, image in zip(image_emb, images, strict=True)]
        return {"best": np.asarray(best), "pairs": (image_emb * text_emb).sum(-1).numpy()}

    # Keyed by the index too: its rows are what "best similarity" is measured against.
    cache_file = _cache_file(f"calibration-{len(index.ids)}", models, dataset, config, config.calibration_split)
    cached = _cached(cache_file, compute)
    calibration = Calibration(
        config.calibration_split, cached["best"], cached["pairs"], config.ood_percentile, dataset
    )
    logger.info(
        "Out-of-distribution threshold: cosine %.3f (%g-th percentile of %d %s images)",
        calibration.ood_threshold,
        config.ood_percentile,
        len(dataset),
        config.calibration_split,
    )
    return calibration


def write_examples(dataset, out_dir: str | Path, n: int = 3) -> list[str]:
    """Save the first `n` images of a dataset split (the held-out one) as PNG files for the demo's examples.

    Args:
        dataset (`datasets.Dataset`): Rows with an `image` column, e.g. `Calibration.dataset`.
        out_dir (`str` or `Path`): Folder to write `example-<i>.png` to.
        n (`int`, *optional*, defaults to `3`): How many.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(n, len(dataset))):
        path = out_dir / f"example-{i + 1}.png"
        if not path.is_file():
            dataset[i]["image"].convert("RGB").save(path)
        paths.append(str(path))
    return paths
