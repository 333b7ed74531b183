# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Deterministic, source-stratified, group-aware train/validation split."""

import hashlib
from collections import defaultdict
from collections.abc import Sequence


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def split_groups(groups: Sequence[str], strata: Sequence[str], *, val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each group to `train` or `validation`.

    A group's stratum is the stratum (source) of its first record. Within each stratum, groups are visited in
    an order fixed by hashing `seed` and the group id, and a group joins validation when that brings the
    stratum's validation count closer to `val_fraction` of its records; so each stratum's validation size is
    within one group of its target, and the result depends only on the seed and the group ids.

    Args:
        groups (`Sequence[str]`):
            Group id of each record.
        strata (`Sequence[str]`):
            Stratum (source) of each record.
        val_fraction (`float`):
            Target fraction of records in validation.
        seed (`int`):
            Seed of the visiting order.
    """
    sizes: dict[str, int] = defaultdict(int)
    stratum_of: dict[str, str] = {}
    for group, stratum in zip(groups, strata, strict=True):
        sizes[group] += 1
        stratum_of.setdefault(group, stratum)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, stratum in stratum_of.items():
        by_stratum[stratum].append(group)
    assignment: dict[str, str] = {}
    # What a stratum could not take (its target was a fraction of a group) carries into the next, so many small
    # strata still add up to `val_fraction` overall instead of each rounding its share down to nothing.
    carry = 0.0
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda g: _order_key(seed, g))
        target = val_fraction * sum(sizes[g] for g in members) + carry
        n_val = 0
        for group in members:
            if abs(n_val + sizes[group] - target) < abs(n_val - target):
                assignment[group] = "validation"
                n_val += sizes[group]
            else:
                assignment[group] = "train"
        carry = target - n_val
    return assignment
