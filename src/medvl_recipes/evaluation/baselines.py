# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Baselines every report-generation score is read against: reports that never looked at the image.

- `most_frequent`: the training split's most frequent report, written for every sample (a constant system).
- `random`: a training report drawn at random (seeded) for each sample: the report style without the image.
- `nearest`: the report of the training image nearest to each sample's image by the encoder's image embedding,
  the retrieval baseline of the report-generation literature (e.g. Chen et al. 2020, R2Gen; Endo et al. 2021,
  CXR-RePaiR). It reads the image, through retrieval only; a generator should beat it.

Each baseline gets the same metrics and intervals as the model, and a paired approximate-randomisation test
against it on the same samples.
"""

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from medvl_recipes.evaluation.bootstrap import paired_randomization_test
from medvl_recipes.evaluation.metrics import METRICS, MetricInputs, compute_metrics


logger = logging.getLogger(__name__)

BASELINES = ("most_frequent", "random", "nearest")
# Text metrics a baseline is scored on (the ones that compare a generated report with the reference or the truth).
BASELINE_METRICS = (
    "bleu",
    "chrf",
    "rougeL",
    "finding_f1_micro",
    "finding_f1_macro",
    "finding_f1_micro_gt",
    "finding_f1_macro_gt",
)
SIGNIFICANCE = 0.05


def most_frequent_report(texts: Sequence[str]) -> str:
    """The most frequent text after whitespace normalisation (ties: the first seen); its first spelling is kept."""
    normalised = [" ".join(t.split()) for t in texts]
    counts = Counter(normalised)
    best = max(counts.values())
    winner = next(t for t in normalised if counts[t] == best)
    return texts[normalised.index(winner)]


def baseline_generations(
    train_texts: Sequence[str],
    num_samples: int,
    *,
    seed: int = 0,
    train_image_emb: np.ndarray | None = None,
    image_emb: np.ndarray | None = None,
) -> dict[str, list[str]]:
    """The reports each baseline writes for `num_samples` samples.

    Args:
        train_texts (`Sequence[str]`): The training split's reports.
        num_samples (`int`): How many samples are evaluated.
        seed (`int`, *optional*, defaults to `0`): Seed of the `random` baseline.
        train_image_emb (`np.ndarray` of shape `(M, D)`, *optional*): L2-normalised training image embeddings.
        image_emb (`np.ndarray` of shape `(N, D)`, *optional*): The evaluated images' embeddings; with
            `train_image_emb`, adds the `nearest` baseline.

    Returns:
        `dict`: baseline name -> one report per sample.
    """
    train_texts = list(train_texts)
    out = {"most_frequent": [most_frequent_report(train_texts)] * num_samples}
    rng = np.random.default_rng(seed)
    out["random"] = [train_texts[i] for i in rng.integers(0, len(train_texts), size=num_samples)]
    if train_image_emb is not None and image_emb is not None:
        nearest = np.argmax(np.asarray(image_emb) @ np.asarray(train_image_emb).T, axis=1)  # (N,)
        out["nearest"] = [train_texts[i] for i in nearest]
    return out


def score_baselines(
    inputs: MetricInputs,
    model_stats: dict[str, np.ndarray],
    baselines: dict[str, list[str]],
    *,
    metric_names: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Score each baseline with the model's metrics and test the model against it, sample by sample.

    Args:
        inputs (`MetricInputs`): The model's inputs (references, ground truth, extractor are shared).
        model_stats (`dict`): The model's per-sample statistics (`compute_metrics`' second output).
        baselines (`dict`): `baseline_generations` output.
        metric_names (`Sequence[str]`): Metrics to score (those of `BASELINE_METRICS` the model has).
        n_resamples (`int`, *optional*, defaults to `1000`): Bootstrap resamples and random swaps.
        seed (`int`, *optional*, defaults to `0`): Seed of both.
        confidence (`float`, *optional*, defaults to `0.95`): Interval coverage.

    Returns:
        `dict`: baseline -> `{"metrics": {name: {value, ci_low, ci_high}}, "vs_model": {name: {delta, p_value}}}`,
        where `delta` is model minus baseline.
    """
    out = {}
    for baseline, generations in baselines.items():
        base_inputs = dataclasses.replace(
            inputs, generations=list(generations), gen_text_emb=None, gen_sent_emb=None, _signatures={}
        )
        results, stats = compute_metrics(
            base_inputs, list(metric_names), n_resamples=n_resamples, seed=seed, confidence=confidence
        )
        entry = {"metrics": {}, "vs_model": {}}
        for name, result in results.items():
            spec = METRICS[name]
            entry["metrics"][name] = {"value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high}
            delta, p_value = paired_randomization_test(
                model_stats[result.stats_key],
                stats[result.stats_key],
                spec.aggregate,
                n_resamples=max(n_resamples, 1),
                seed=seed,
                decomposable=spec.decomposable,
            )
            entry["vs_model"][name] = {"delta": delta, "p_value": p_value}
        out[baseline] = entry
    return out


def baseline_verdicts(metrics: dict, baselines: dict) -> list[str]:
    """Plain sentences for every metric on which the model does not significantly beat a baseline.

    Args:
        metrics (`dict`): The model's `metrics.json` entries (`higher_is_better` per metric).
        baselines (`dict`): `score_baselines` output.
    """
    lines = []
    for baseline, entry in baselines.items():
        for name, test in entry["vs_model"].items():
            better = test["delta"] > 0 if metrics[name]["higher_is_better"] else test["delta"] < 0
            if not better:
                lines.append(
                    f"The model does not beat the `{baseline}` baseline on {name} "
                    f"({metrics[name]['value']:.2f} vs {entry['metrics'][name]['value']:.2f})."
                )
            elif test["p_value"] >= SIGNIFICANCE:
                lines.append(
                    f"The model's lead over the `{baseline}` baseline on {name} is not significant "
                    f"(p = {test['p_value']:.3f})."
                )
    return lines
