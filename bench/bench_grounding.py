# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Does the quickstart decoder read the image? One row of grounding numbers for a trained decoder.

Runs `medvl eval` (grounding metrics and the image-swap control) on the validation split and scores the text
baselines of the report-generation literature on the same samples: the most frequent training report (constant)
and a random training report (seeded). Prints one markdown row and writes `grounding_row.json` into the eval folder.

Usage (after the quickstart stages up to train-decoder):
    python bench/bench_grounding.py --quickstart-dir outputs/quickstart --label "smoke recipe" --train-seconds 85
"""

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from medvl_recipes.data.prepared import load_prepared_split
from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics
from medvl_recipes.evaluation.runner import EvalArguments, load_split, run_evaluation


METRICS = [
    "finding_f1_micro_gt", "finding_f1_micro_gt_swapped", "finding_f1_micro_gt_swap_drop", "bleu", "bleu_swap_drop",
    "distinct_generations", "modality_agreement", "region_agreement", "study_agreement",
]  # fmt: skip


def baselines(dataset: str, split: str, seed: int = 0) -> dict[str, float]:
    """Finding F1 vs ground truth of the constant and the random training report on `split`."""
    train = load_prepared_split(dataset, "train", columns=("id", "text"))
    val = load_split(dataset, split)
    constant = Counter(train["text"]).most_common(1)[0][0]
    rng = np.random.default_rng(seed)
    random_reports = [train["text"][int(i)] for i in rng.integers(0, len(train), len(val.ids))]
    out = {}
    for name, generations in (("constant", [constant] * len(val.ids)), ("random", random_reports)):
        inputs = MetricInputs(generations=generations, references=val.references, ground_truth=val.findings)
        results, _ = compute_metrics(inputs, ["finding_f1_micro_gt", "modality_agreement"], n_resamples=0)
        out[name] = results["finding_f1_micro_gt"].value
        out[f"{name}_modality"] = results["modality_agreement"].value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart-dir", required=True, type=Path)
    parser.add_argument("--decoder", type=Path, help="Defaults to QS/decoder.")
    parser.add_argument("--label", default="")
    parser.add_argument("--train-seconds", type=float, default=float("nan"))
    args = parser.parse_args()
    qs = args.quickstart_dir
    decoder = args.decoder or qs / "decoder"
    out = decoder.parent / f"eval-{decoder.name}"
    started = time.perf_counter()
    payload = run_evaluation(
        EvalArguments(
            decoder=str(decoder), dataset=str(qs / "dataset"), split="validation", output_dir=str(out),
            max_new_tokens=64, batch_size=8, metrics=METRICS, n_resamples=1000, device="cpu", plots=False,
        )
    )  # fmt: skip
    m = {name: payload["metrics"][name] for name in METRICS if name in payload["metrics"]}
    base = baselines(str(qs / "dataset"), "validation")
    f1, swapped = m["finding_f1_micro_gt"]["value"], m["finding_f1_micro_gt_swapped"]["value"]
    row = {
        "label": args.label,
        "modality_agreement": m["modality_agreement"]["value"],
        "region_agreement": m["region_agreement"]["value"],
        "study_agreement": m["study_agreement"]["value"],
        "f1_gt": f1,
        "f1_gt_ci": [m["finding_f1_micro_gt"]["ci_low"], m["finding_f1_micro_gt"]["ci_high"]],
        "constant_f1": base["constant"],
        "random_f1": base["random"],
        "f1_swapped": swapped,
        "swap_drop": m["finding_f1_micro_gt_swap_drop"]["value"],
        "swap_drop_ci": [m["finding_f1_micro_gt_swap_drop"]["ci_low"], m["finding_f1_micro_gt_swap_drop"]["ci_high"]],
        "distinct": m["distinct_generations"]["value"],
        "bleu": m["bleu"]["value"],
        "train_s": args.train_seconds,
        "eval_s": round(time.perf_counter() - started, 1),
        "load": os.getloadavg()[0],
    }
    (out / "grounding_row.json").write_text(json.dumps(row, indent=2) + "\n")
    print(
        f"| {row['label']} | {row['modality_agreement']:.1f} / {row['region_agreement']:.1f} | {f1:.1f} "
        f"[{row['f1_gt_ci'][0]:.1f}, {row['f1_gt_ci'][1]:.1f}] | {base['constant']:.1f} / {base['random']:.1f} | "
        f"{swapped:.1f} ({row['swap_drop']:+.1f} [{row['swap_drop_ci'][0]:+.1f}, {row['swap_drop_ci'][1]:+.1f}]) | "
        f"{row['distinct']:.0f}% | {row['train_s']:.0f} s | {row['load']:.1f} |"
    )


if __name__ == "__main__":
    main()
