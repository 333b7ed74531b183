# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""De-duplication and leakage control: exact and perceptual image hashes, identical reports, duplicate groups.

Exact duplicates are images with identical decoded pixels (so a PNG and a re-saved copy match); near-duplicates
are images whose 64-bit `imagehash.phash` values differ in at most `threshold` bits. Candidate pairs come from
the pigeonhole principle: split the hash into `threshold + 1` bands; two hashes within `threshold` bits agree
exactly on at least one band, so only records sharing a band value are compared (no all-pairs scan).
"""

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import imagehash
import numpy as np
from PIL import Image


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and raw pixels (independent of the file encoding)."""
    digest = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash (`imagehash.phash`) as an unsigned integer."""
    return int(str(imagehash.phash(image)), 16)


def normalise_report(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced text: the key under which reports count as identical."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _popcount(values: np.ndarray) -> np.ndarray:
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def find_near_duplicate_pairs(
    hashes: Sequence[int], threshold: int, stats: dict | None = None
) -> list[tuple[int, int]]:
    """All index pairs `(i, j)`, `i < j`, whose 64-bit hashes differ in at most `threshold` bits.

    Args:
        hashes (`Sequence[int]`):
            Unsigned 64-bit perceptual hashes.
        threshold (`int`):
            Maximum Hamming distance; negative returns no pairs.
        stats (`dict`, *optional*):
            Receives `candidate_pairs`, the number of hash comparisons made (the cost of the band index).
    """
    if stats is not None:
        stats["candidate_pairs"] = 0
    if threshold < 0 or len(hashes) < 2:
        return []
    values = np.array([np.uint64(h) for h in hashes], dtype=np.uint64)
    n_bands = threshold + 1
    bounds = np.linspace(0, 64, n_bands + 1).astype(int)
    pairs: set[tuple[int, int]] = set()
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        mask = np.uint64((1 << (high - low)) - 1)
        bands = (values >> np.uint64(low)) & mask
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, band in enumerate(bands.tolist()):
            buckets[band].append(index)
        for members in buckets.values():
            if len(members) < 2:
                continue
            if stats is not None:
                stats["candidate_pairs"] += len(members) * (len(members) - 1) // 2
            members_array = np.array(members)
            for position, i in enumerate(members[:-1]):
                others = members_array[position + 1 :]
                distances = _popcount(values[others] ^ values[i])
                for j in others[distances <= threshold].tolist():
                    pairs.add((i, j))
    return sorted(pairs)


class UnionFind:
    """Disjoint sets over `0..n-1` with path halving."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return False
        self.parent[max(root_a, root_b)] = min(root_a, root_b)
        return True


def union_by_key(union_find: UnionFind, keys: Iterable) -> int:
    """Union all indices sharing a key; return the number of merges made."""
    first: dict = {}
    merges = 0
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            merges += union_find.union(first[key], index)
        else:
            first[key] = index
    return merges


def find_templates(report_keys: Sequence[str], source_groups: Sequence[str], min_groups: int) -> set[str]:
    """Normalised texts shared by more than `min_groups` distinct source groups.

    Identical texts are evidence of one study or figure only while they are rare: in IU X-Ray a few normal
    templates are shared by hundreds of patients, and grouping them would put one giant group in one split.

    Args:
        report_keys (`Sequence[str]`):
            Normalised text of each record.
        source_groups (`Sequence[str]`):
            The study/report/case group each source assigned.
        min_groups (`int`):
            A text shared by more groups than this is a template; `0` returns no templates.
    """
    if min_groups <= 0:
        return set()
    groups: dict[str, set[str]] = defaultdict(set)
    for key, group in zip(report_keys, source_groups, strict=True):
        groups[key].add(group)
    return {key for key, members in groups.items() if len(members) > min_groups}


def leakage_report(
    splits: Sequence[str],
    pixel_hashes: Sequence[str],
    report_keys: Sequence[str],
    group_ids: Sequence[str],
    source_group_ids: Sequence[str],
    near_pairs: Iterable[tuple[int, int]],
) -> dict:
    """Count what the splits share: images, reports, near-duplicate pairs, duplicate groups and source groups.

    Every count is 0 for a leak-free split.

    Args:
        splits (`Sequence[str]`):
            Split of each record.
        pixel_hashes (`Sequence[str]`):
            Exact image hash of each record.
        report_keys (`Sequence[str]`):
            Normalised text of each record; `None` for texts not compared (templates, see `find_templates`).
        group_ids (`Sequence[str]`):
            Final (merged) group of each record.
        source_group_ids (`Sequence[str]`):
            The study/report/case group each source assigned.
        near_pairs (`Iterable[tuple[int, int]]`):
            Near-duplicate index pairs.
    """

    def shared(keys: Sequence[str]) -> int:
        seen: dict[str, set[str]] = defaultdict(set)
        for key, split in zip(keys, splits, strict=True):
            if key is not None:
                seen[key].add(split)
        return sum(len(s) > 1 for s in seen.values())

    near_pairs = list(near_pairs)
    return {
        "shared_images": shared(pixel_hashes),
        "shared_reports": shared(report_keys),
        "near_duplicate_pairs_across_splits": sum(splits[i] != splits[j] for i, j in near_pairs),
        "near_duplicate_pairs_checked": len(near_pairs),
        "groups_across_splits": shared(group_ids),
        "source_groups_across_splits": shared(source_group_ids),
    }
