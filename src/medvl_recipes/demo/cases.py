# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The similar-case index: image embeddings of a prepared dataset split, cached on disk per encoder and data,
searched by cosine similarity; and the example images the page offers."""

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medvl_recipes.demo.models import DemoModels
from medvl_recipes.demo.settings import DemoConfig
from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (160, 160)


@dataclass
class CaseIndex:
    """Image embeddings of an indexed dataset split, with the rows they came from.

    Args:
        image_emb (`torch.Tensor`): `(N, D)` L2-normalised image embeddings.
        ids (`list[str]`): Row ids.
        texts (`list[str]`): Reference reports.
        dataset (`datasets.Dataset`): The indexed rows (for thumbnails).
    """

    image_emb: torch.Tensor
    ids: list[str]
    texts: list[str]
    dataset: object = field(repr=False)

    def search(self, query_emb: torch.Tensor, k: int) -> list[tuple[int, float]]:
        """The `k` rows most similar to one `(1, D)` or `(D,)` embedding: `[(row, cosine), ...]`, best first."""
        scores = self.image_emb @ query_emb.reshape(-1)  # (N,)
        top = torch.topk(scores, k=min(k, len(self.ids)))
        return [(int(i), float(s)) for s, i in zip(top.values, top.indices, strict=True)]


def _load_split(name_or_path: str, split: str):
    from medvl_recipes.data.prepared import load_prepared_split

    return load_prepared_split(name_or_path, split, setting="--index-split")


def _encoder_fingerprint(encoder) -> str:
    # The weights decide the embeddings: hash them (a few ms for SigLIP-base) so a retrained encoder never
    # reuses a stale index.
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_index(models: DemoModels, config: DemoConfig, batch_size: int = 32) -> CaseIndex:
    """Embed the index split with the encoder, or load the embeddings cached on disk for this encoder and data.

    The cache file is `cache_dir/index-<key>.pt`, keyed by the encoder weights, the dataset fingerprint,
    the split and the row limit.

    Args:
        models (`DemoModels`): Loaded models.
        config (`DemoConfig`): Settings (`index_dataset`, `index_split`, `index_limit`, `cache_dir`).
        batch_size (`int`, *optional*, defaults to `32`): Images per encoder forward pass.
    """
    from medvl_recipes.retrieval import encode_images

    dataset = _load_split(config.index_dataset, config.index_split)
    if config.index_limit and len(dataset) > config.index_limit:
        dataset = dataset.select(range(config.index_limit))
    if len(dataset) == 0:
        raise MedvlError(f"index dataset {config.index_dataset}: split {config.index_split!r} is empty")
    key_source = f"{_encoder_fingerprint(models.encoder)}|{dataset._fingerprint}|{config.index_split}|{len(dataset)}"
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    cache_file = Path(config.cache_dir) / f"index-{key}.pt"
    if cache_file.is_file():
        cached = torch.load(cache_file)
        logger.info("Loaded the case index (%d rows) from %s", len(cached["ids"]), cache_file)
        return CaseIndex(cached["image_emb"], cached["ids"], cached["texts"], dataset)
    images = [row["image"] for row in dataset]
    image_emb = encode_images(
        models.encoder, models.encoder_processor, images, batch_size=batch_size, show_progress=True
    )
    ids, texts = list(dataset["id"]), list(dataset["text"])
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so that a crash never leaves a truncated cache behind.
    tmp = cache_file.with_suffix(".tmp")
    torch.save({"image_emb": image_emb, "ids": ids, "texts": texts}, tmp)
    tmp.replace(cache_file)
    logger.info("Indexed %d cases from %s[%s] into %s", len(ids), config.index_dataset, config.index_split, cache_file)
    return CaseIndex(image_emb, ids, texts, dataset)


def write_examples(index: CaseIndex, out_dir: str | Path, n: int = 3) -> list[str]:
    """Save the first `n` indexed images as PNG files for the demo's examples.

    Args:
        index (`CaseIndex`): The case index (its dataset supplies the images).
        out_dir (`str` or `Path`): Folder to write `example-<i>.png` to.
        n (`int`, *optional*, defaults to `3`): How many.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(n, len(index.ids))):
        path = out_dir / f"example-{i + 1}.png"
        if not path.is_file():
            index.dataset[i]["image"].convert("RGB").save(path)
        paths.append(str(path))
    return paths
