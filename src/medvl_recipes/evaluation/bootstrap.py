# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Bootstrap confidence intervals and paired significance tests over per-sample sufficient statistics.

Every metric is a function of per-sample statistics `stats` (N, K). For sum-decomposable metrics (BLEU counts,
F1 counts, means written as `[score, 1]`) a resample is a multinomial count vector `w` (N,) and its statistics
are `w @ stats`, so a whole batch of resamples is one matrix product; the corpus metric is recomputed from those
sums on each resample (not averaged per example). Other metrics (median rank) are recomputed per resample.
"""

import logging
from collections.abc import Callable

import numpy as np


logger = logging.getLogger(__name__)

# Resamples processed per matrix product; bounds memory at chunk * N counts.
_CHUNK = 256


def _resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    # Draw indices and count them per row: much faster than rng.multinomial over N categories.
    idx = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float32)  # (size, N)


def resample_counts(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """All bootstrap resamples as multiplicity counts, shape (n_resamples, N), float32.

    `bootstrap_distribution(..., counts=...)` reuses them, so every metric of a run sees the same resamples and
    they are drawn once. Identical to what `bootstrap_distribution` draws itself for the same seed.
    """
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [_resample_counts(rng, n, min(_CHUNK, n_resamples - start)) for start in range(0, n_resamples, _CHUNK)]
    )


def bootstrap_distribution(
    stats: np.ndarray,
    aggregate: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    decomposable: bool = True,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Metric values on `n_resamples` bootstrap resamples of the samples.

    Args:
        stats (`np.ndarray` of shape (N, K)):
            Per-sample sufficient statistics.
        aggregate (`Callable`):
            Decomposable: maps summed statistics (B, K) to scores (B,). Otherwise maps one resample's statistics
            (N, K) to a scalar.
        n_resamples (`int`, *optional*, defaults to 1000):
            Number of resamples.
        seed (`int`, *optional*, defaults to 0):
            Seed of the `numpy` generator; the same seed gives the same resamples for every metric.
        decomposable (`bool`, *optional*, defaults to `True`):
            Whether the metric is a function of the summed statistics.
        counts (`np.ndarray` of shape (n_resamples, N), *optional*):
            Precomputed `resample_counts(N, n_resamples, seed)` (decomposable metrics only).

    Returns:
        `np.ndarray` of shape (n_resamples,).
    """
    stats = np.asarray(stats, dtype=np.float64)
    n = stats.shape[0]
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.full(n_resamples, np.nan)
    if decomposable:
        out = []
        for start in range(0, n_resamples, _CHUNK):
            size = min(_CHUNK, n_resamples - start)
            chunk = counts[start : start + size] if counts is not None else _resample_counts(rng, n, size)
            out.append(np.asarray(aggregate(chunk.astype(np.float64) @ stats), dtype=np.float64))
        return np.concatenate(out)
    return np.array([float(aggregate(stats[rng.integers(0, n, n)])) for _ in range(n_resamples)])


def confidence_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples.

    Args:
        samples (`np.ndarray`): bootstrap metric values.
        confidence (`float`, *optional*, defaults to 0.95): coverage of the interval.
    """
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_randomization_test(
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    aggregate: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    decomposable: bool = True,
) -> tuple[float, float]:
    """Approximate randomisation test of the difference of a metric between two systems on the same samples.

    Under the null hypothesis the two systems are exchangeable per sample, so each sample's statistics are swapped
    between A and B with probability 1/2 and the metric difference recomputed (Riezler & Maxwell, 2005; the test
    `sacrebleu --paired-ar` runs). A system compared with itself has p = 1.

    Args:
        stats_a, stats_b (`np.ndarray` of shape (N, K)):
            Per-sample statistics of the two systems, rows aligned on the same samples.
        aggregate (`Callable`):
            As in `bootstrap_distribution`.
        n_resamples (`int`, *optional*, defaults to 1000):
            Number of random swaps.
        seed (`int`, *optional*, defaults to 0):
            Seed of the generator.
        decomposable (`bool`, *optional*, defaults to `True`):
            Whether the metric is a function of the summed statistics.

    Returns:
        `(delta, p_value)`: the observed difference metric(A) - metric(B) and its two-sided p-value.
    """
    stats_a = np.asarray(stats_a, dtype=np.float64)
    stats_b = np.asarray(stats_b, dtype=np.float64)
    if decomposable:
        delta = float(aggregate(stats_a.sum(0)[None])[0] - aggregate(stats_b.sum(0)[None])[0])
    else:
        delta = float(aggregate(stats_a) - aggregate(stats_b))
    rng = np.random.default_rng(seed)
    n = stats_a.shape[0]
    diff = stats_b - stats_a  # (N, K)
    hits = 0
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        swap = rng.integers(0, 2, size=(size, n)).astype(np.float64)  # (B, N), 1 = swap this sample
        if decomposable:
            sum_a = stats_a.sum(0) + swap @ diff
            sum_b = stats_b.sum(0) - swap @ diff
            deltas = aggregate(sum_a) - aggregate(sum_b)
        else:
            deltas = []
            for row in swap.astype(bool):
                perm_a = np.where(row[:, None], stats_b, stats_a)
                perm_b = np.where(row[:, None], stats_a, stats_b)
                deltas.append(float(aggregate(perm_a) - aggregate(perm_b)))
            deltas = np.array(deltas)
        # A small tolerance so that float noise in recomputing identical systems does not count as "less extreme".
        hits += int((np.abs(deltas) >= abs(delta) - 1e-9).sum())
    return delta, (hits + 1) / (n_resamples + 1)
