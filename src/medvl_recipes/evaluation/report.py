# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""What an eval run writes: metrics.json, per_sample.jsonl, sample_stats.npz, report.md, model-index YAML."""

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PER_SAMPLE_FILE = "per_sample.jsonl"
STATS_FILE = "sample_stats.npz"
REPORT_FILE = "report.md"
MODEL_INDEX_FILE = "model_index.yaml"
GENERATIONS_FILE = "generations.jsonl"

# Pretty names for the model-index `type`/`name` of the metrics the Hub knows.
_HUB_TYPES = {"bleu": "bleu", "chrf": "chrf", "rougeL": "rouge"}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: str | Path, payload: Mapping) -> Path:
    """Write `payload` as indented JSON (numpy scalars/arrays converted)."""
    path = Path(path)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return path


def write_per_sample(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """Write one JSON object per sample."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=_jsonable) + "\n")
    return path


def save_stats(path: str | Path, ids: Sequence[str], stats: Mapping[str, np.ndarray]) -> Path:
    """Save per-sample metric statistics (what `medvl eval compare` tests) with the sample ids."""
    path = Path(path)
    np.savez_compressed(path, ids=np.asarray(list(ids), dtype=str), **{f"stats__{k}": v for k, v in stats.items()})
    return path


def load_run(run_dir: str | Path) -> tuple[dict, list[str], dict[str, np.ndarray]]:
    """Load a finished run: `(metrics.json payload, sample ids, stats key -> (N, K) statistics)`.

    Args:
        run_dir (`str` or `Path`): an eval `--output-dir`.
    """
    run_dir = Path(run_dir)
    metrics_path, stats_path = run_dir / METRICS_FILE, run_dir / STATS_FILE
    for path in (metrics_path, stats_path):
        if not path.is_file():
            raise MedvlError(f"{path} not found; is {run_dir} the --output-dir of a finished `medvl eval` run?")
    payload = json.loads(metrics_path.read_text(encoding="utf-8"))
    with np.load(stats_path) as data:
        ids = [str(i) for i in data["ids"]]
        stats = {k.removeprefix("stats__"): data[k] for k in data.files if k.startswith("stats__")}
    return payload, ids, stats


def _format(value: float, scale: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if scale in ("percent", "rank") else f"{value:.4f}"


# Percentile bootstrap intervals of corpus BLEU cover the truth less often than stated on small test sets
# (Koehn 2004 used 300+ sentences; below ~100 the resampled corpora repeat too few n-grams).
SMALL_N = 100


def _baseline_lines(payload: Mapping) -> list[str]:
    # The model beside reports that never looked at the image, each with its interval and the paired test.
    from medvl_recipes.evaluation.baselines import baseline_verdicts

    baselines = payload.get("baselines")
    if not baselines:
        return []
    names = list(baselines)
    metrics = list(next(iter(baselines.values()))["metrics"])
    lines = [
        "",
        "## Baselines",
        "",
        "Training reports written without looking at the image (`most_frequent`, `random`) or retrieved by image "
        "similarity (`nearest`), scored like the model; p: paired approximate randomisation test, model vs baseline.",
        "",
        "| metric | model | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for metric in metrics:
        model = payload["metrics"][metric]
        scale = model["scale"]
        cells = [f"{_format(model['value'], scale)}"]
        for name in names:
            value = baselines[name]["metrics"][metric]
            p_value = baselines[name]["vs_model"][metric]["p_value"]
            cells.append(
                f"{_format(value['value'], scale)} [{_format(value['ci_low'], scale)}, "
                f"{_format(value['ci_high'], scale)}] (p={p_value:.3f})"
            )
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    verdicts = baseline_verdicts(payload["metrics"], baselines)
    lines += [""] + ([f"**Warning:** {v}" for v in verdicts] or ["The model beats every baseline on every metric."])
    return lines


def render_report(payload: Mapping, plots: Sequence[str] = ()) -> str:
    """The markdown report of a run: provenance, then one table row per metric with its interval.

    Args:
        payload (`Mapping`): the metrics.json content.
        plots (`Sequence[str]`): PNG file names (relative to the report) to embed.
    """
    conf = int(round(100 * payload["bootstrap"]["confidence"]))
    lines = ["# Evaluation report", ""]
    models = payload.get("models") or {}
    for role in ("decoder", "encoder", "sentence_model"):
        if models.get(role):
            rev = models[role].get("revision")
            lines.append(f"- **{role}**: `{models[role]['name_or_path']}`" + (f" (revision `{rev}`)" if rev else ""))
    data = payload["data"]
    lines.append(
        f"- **data**: `{data['source']}` split `{data.get('split')}`, {data['num_samples']} samples, "
        f"fingerprint `{data['fingerprint']}`"
    )
    boot = payload["bootstrap"]
    lines += [
        f"- **intervals**: bootstrap {conf}% percentile, {boot['n_resamples']} resamples, seed {boot['seed']}",
        "",
        f"| metric | value | {conf}% CI | better |",
        "|---|---:|---:|:---:|",
    ]
    for name, m in payload["metrics"].items():
        ci = f"[{_format(m['ci_low'], m['scale'])}, {_format(m['ci_high'], m['scale'])}]"
        arrow = "↑" if m["higher_is_better"] else "↓"
        lines.append(f"| {name} | {_format(m['value'], m['scale'])} | {ci} | {arrow} |")
    if data["num_samples"] < SMALL_N:
        lines += [
            "",
            f"**Warning:** {data['num_samples']} samples: bootstrap intervals of corpus metrics (BLEU, chrF) "
            f"under-cover below about {SMALL_N} samples; read them as rough.",
        ]
    lines += _baseline_lines(payload)
    radeval = payload.get("radeval") or {}
    if radeval.get("scores"):
        lines += ["", "RadEval (model-based metrics, no intervals):", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in radeval["scores"].items()]
    elif radeval.get("missing"):
        lines += ["", f"RadEval: {radeval['missing']}."]
    signatures = {m["signature"] for m in payload["metrics"].values() if m.get("signature")}
    if signatures:
        lines += ["", "Signatures:", ""] + [f"- `{s}`" for s in sorted(signatures)]
    if payload.get("finding_f1_per_finding"):
        lines += ["", "Finding F1 per finding (generated vs reference):", "", "| finding | F1 |", "|---|---:|"]
        lines += [
            f"| {name} | {'n/a' if f1 is None else f'{f1:.1f}'} |"
            for name, f1 in payload["finding_f1_per_finding"].items()
        ]
    lines += _grounding_section(payload)
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines).rstrip() + "\n"


# (own-image metric, swapped-image metric, drop metric) of the image-swap control, in report order.
_SWAP_ROWS = (
    ("finding_f1_micro_gt", "finding_f1_micro_gt_swapped", "finding_f1_micro_gt_swap_drop"),
    ("finding_f1_micro", "finding_f1_micro_swapped", "finding_f1_micro_swap_drop"),
    ("bleu", "bleu_swapped", "bleu_swap_drop"),
)
# At most this share of distinct generations reads as "one report for every image".
CONSTANT_SHARE = 10.0


def _grounding_section(payload: Mapping) -> list[str]:
    """The "does the report depend on the image?" section: distinct share, study agreement, image-swap control."""
    metrics = payload["metrics"]
    if not any(name in metrics for name in ("distinct_generations", "modality_agreement", "bleu_swap_drop")):
        return []
    lines = ["", "## Does the report depend on the image?", ""]
    n = payload["data"]["num_samples"]
    if "distinct_generations" in metrics:
        share = metrics["distinct_generations"]["value"]
        lines.append(f"- **distinct generations**: {int(round(share * n / 100))} of {n} ({share:.1f}%)")
        if share <= CONSTANT_SHARE:
            lines.append(
                f"- **warning: (almost) the same report for every image** ({share:.1f}% distinct): text metrics "
                "measure the most common report, not the model's reading of the images"
            )
    for name, label in (
        ("modality_agreement", "modality named as in the reference"),
        ("region_agreement", "body region named as in the reference"),
        ("study_agreement", "both"),
    ):
        if name in metrics:
            m = metrics[name]
            lines.append(f"- **{label}**: {m['value']:.1f}% [{m['ci_low']:.1f}, {m['ci_high']:.1f}]")
    rows = [r for r in _SWAP_ROWS if all(name in metrics for name in r)]
    if rows:
        control = payload.get("image_swap_control") or {}
        conf = int(round(100 * payload["bootstrap"]["confidence"]))
        lines += [
            "",
            f"Image-swap control: each sample generated again from another sample's image "
            f"({control.get('method', 'derangement')}, seed {control.get('seed', '?')}).",
            "",
            f"| metric | own image | swapped image | drop | {conf}% CI of the drop |",
            "|---|---:|---:|---:|---:|",
        ]
        for own, swapped, drop in rows:
            d = metrics[drop]
            lines.append(
                f"| {own} | {metrics[own]['value']:.2f} | {metrics[swapped]['value']:.2f} | {d['value']:+.2f} | "
                f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] |"
            )
        own, _, drop = rows[0]
        if metrics[drop]["ci_low"] <= 0:
            lines += [
                "",
                f"**Swapping the images does not lower {own} significantly: the reports do not depend on the image.**",
            ]
        else:
            share = 100 * metrics[drop]["value"] / max(metrics[own]["value"], 1e-9)
            lines += ["", f"Swapping the images lowers {own} by {metrics[drop]['value']:.2f} ({share:.0f}% of it)."]
    return lines


def model_index_yaml(payload: Mapping, *, model_name: str, dataset_type: str, dataset_name: str | None = None) -> str:
    """A `model-index` YAML block (Hub model-card metadata) with the run's metrics.

    Args:
        payload (`Mapping`): the metrics.json content.
        model_name (`str`): the model's name in the card.
        dataset_type (`str`): dataset id (e.g. "medvl-recipes/sample").
        dataset_name (`str`, *optional*): pretty dataset name.
    """
    import yaml
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    results = [
        EvalResult(
            task_type="image-to-text",
            task_name="Radiology report generation",
            dataset_type=dataset_type,
            dataset_name=dataset_name or dataset_type,
            dataset_split=payload["data"].get("split"),
            metric_type=_HUB_TYPES.get(name, name),
            metric_name=name,
            metric_value=round(float(m["value"]), 4),
            metric_config=m.get("signature") or None,
            verified=False,
        )
        for name, m in payload["metrics"].items()
    ]
    index = eval_results_to_model_index(model_name, results)
    return yaml.safe_dump({"model-index": index}, sort_keys=False, allow_unicode=True)
