# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""PNG plots of an eval run (matplotlib, Agg backend: no display needed)."""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np


logger = logging.getLogger(__name__)

_SCALE_TITLES = {"percent": "score (%)", "cosine": "cosine", "probability": "probability", "rank": "rank"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(metrics: Mapping[str, Mapping], path: str | Path) -> Path:
    """Horizontal bars of every metric with its bootstrap interval, one panel per scale.

    Args:
        metrics (`Mapping[str, Mapping]`): name -> `{"value", "ci_low", "ci_high", "scale"}` (as in metrics.json).
        path (`str` or `Path`): output PNG.
    """
    plt = _pyplot()
    scales = [s for s in _SCALE_TITLES if any(m["scale"] == s for m in metrics.values())]
    heights = [sum(m["scale"] == s for m in metrics.values()) for s in scales]
    fig, axes = plt.subplots(
        len(scales), 1, figsize=(8, 1.2 + 0.35 * sum(heights) + 0.6 * len(scales)), squeeze=False,
        gridspec_kw={"height_ratios": heights or [1]},
    )  # fmt: skip
    for ax, scale in zip(axes[:, 0], scales, strict=True):
        names = [n for n, m in metrics.items() if m["scale"] == scale]
        values = np.array([metrics[n]["value"] for n in names])
        low = values - np.array([metrics[n]["ci_low"] for n in names])
        high = np.array([metrics[n]["ci_high"] for n in names]) - values
        ax.barh(names, values, xerr=[np.maximum(low, 0), np.maximum(high, 0)], capsize=3, color="#4C72B0")
        ax.invert_yaxis()
        ax.set_xlabel(_SCALE_TITLES[scale])
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Metrics with bootstrap 95% intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_recall_curve(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray, path: str | Path) -> Path:
    """Recall@K for K = 1..N of image->text and text->image retrieval.

    Args:
        i2t_ranks, t2i_ranks (`np.ndarray` (N,)): rank of the true match of each query (1 = best).
        path (`str` or `Path`): output PNG.
    """
    plt = _pyplot()
    n = len(i2t_ranks)
    ks = np.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ranks in (("image -> text", i2t_ranks), ("text -> image", t2i_ranks)):
        recall = 100.0 * np.searchsorted(np.sort(ranks), ks, side="right") / n
        ax.plot(ks, recall, label=label)
    ax.plot(ks, 100.0 * ks / n, linestyle="--", color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_similarity_histograms(per_sample: Mapping[str, np.ndarray], path: str | Path) -> Path | None:
    """Histograms of the per-sample similarities: report vs report, and image vs generated/reference report.

    Args:
        per_sample (`Mapping[str, np.ndarray]`): metric name -> per-sample values.
        path (`str` or `Path`): output PNG.

    Returns:
        The path, or None when there is no similarity to plot.
    """
    panels = [
        ("generated vs reference report", ["embedding_cosine", "siglip_text_cosine"]),
        ("image vs report (SigLIP cosine)", ["siglip_image_cosine_gen", "siglip_image_cosine_ref"]),
        ("image vs report (SigLIP probability)", ["siglip_image_prob_gen", "siglip_image_prob_ref"]),
    ]
    panels = [(title, [n for n in names if n in per_sample]) for title, names in panels]
    panels = [(title, names) for title, names in panels if names]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, names) in zip(axes[0], panels, strict=True):
        # Shared bin edges so the two distributions of a panel are comparable bar for bar.
        bins = np.histogram_bin_edges(np.concatenate([np.asarray(per_sample[n]) for n in names]), bins=30)
        for name in names:
            ax.hist(np.asarray(per_sample[name]), bins=bins, alpha=0.6, label=name)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
