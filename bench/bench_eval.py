# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark the eval harness: end-to-end samples/s on the sample split, and metric time for 10k report pairs.

    python bench/bench_eval.py --dataset outputs/quickstart/dataset --models-dir outputs/quickstart/models
    python bench/bench_eval.py --skip-harness --n-pairs 10000      # metric timings only (no models/data needed)

Prints a markdown table. The harness row runs the tiny checkpoints (decoder + encoder), so it measures the harness
(data loading, generation loop, embedding, metrics, bootstrap, plots), not a real model's speed.
"""

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from medvl_recipes.evaluation.bootstrap import bootstrap_distribution, resample_counts
from medvl_recipes.evaluation.findings import FindingExtractor
from medvl_recipes.evaluation.metrics import METRICS, MetricInputs, compute_metrics


SENTENCES = [
    "No pleural effusion.", "There is a small left pleural effusion.", "The heart is enlarged.",
    "Heart size is normal.", "No pneumothorax.", "There is consolidation in the right lower lobe.",
    "Cannot exclude pneumonia.", "A nodule in the left upper zone.", "No acute finding.",
    "There is a fracture of the left sixth rib.", "Endotracheal tube in place.", "Mild pulmonary edema.",
    "A mass is seen in the right lung.", "No focal consolidation, pleural effusion, or pneumothorax.",
]  # fmt: skip


def synthetic_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    refs = [" ".join(rng.sample(SENTENCES, 3)) for _ in range(n)]
    hyps = [" ".join(s if rng.random() < 0.6 else rng.choice(SENTENCES) for s in r.split(". ")) for r in refs]
    return hyps, refs


def bench_metrics(n_pairs: int, n_resamples: int) -> list[tuple[str, float, float]]:
    """(metric family, seconds for per-sample statistics + point estimate, seconds for the bootstrap)."""
    hyps, refs = synthetic_pairs(n_pairs)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n_pairs, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    families = {
        "BLEU + BLEU-1..4 (sacrebleu stats)": ["bleu", "bleu1", "bleu2", "bleu3", "bleu4"],
        "chrF": ["chrf"],
        "ROUGE-L (rouge-score)": ["rougeL"],
        "finding F1 micro+macro (extractor)": ["finding_f1_micro", "finding_f1_macro"],
        "embedding cosine (given embeddings)": ["embedding_cosine"],
        "retrieval R@1/5/10 + ranks (10k x 10k)": [n for n in METRICS if n.startswith(("i2t_", "t2i_"))],
    }
    rows = []
    extractor = FindingExtractor()
    for family, names in families.items():
        inputs = MetricInputs(
            generations=hyps, references=refs, gen_sent_emb=emb, ref_sent_emb=emb[::-1].copy(), image_emb=emb,
            ref_text_emb=np.roll(emb, 1, axis=1), extractor=extractor,
        )  # fmt: skip
        start = time.perf_counter()
        results, stats = compute_metrics(inputs, names, n_resamples=0)
        point = time.perf_counter() - start
        start = time.perf_counter()
        counts = resample_counts(n_pairs, n_resamples, seed=0)
        for name in names:
            spec = METRICS[name]
            bootstrap_distribution(
                stats[results[name].stats_key], spec.aggregate, n_resamples=n_resamples,
                decomposable=spec.decomposable, counts=counts if spec.decomposable else None,
            )  # fmt: skip
        rows.append((family, point, time.perf_counter() - start))
    return rows


def bench_harness(dataset: str, models_dir: str | None, max_new_tokens: int, n_resamples: int) -> tuple[int, float]:
    from medvl_recipes.evaluation.runner import EvalArguments, run_evaluation
    from medvl_recipes.samples.tiny_models import build_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        if models_dir is None:
            paths = build_tiny_models(Path(tmp) / "models", seed=0)
        else:
            paths = {"mllama": Path(models_dir) / "tiny-llama-3.2-vision", "siglip": Path(models_dir) / "tiny-siglip"}
        args = EvalArguments(
            decoder=str(paths["mllama"]), encoder=str(paths["siglip"]), dataset=dataset, split="validation",
            output_dir=str(Path(tmp) / "eval"), max_new_tokens=max_new_tokens, n_resamples=n_resamples,
            batch_size=8, device="cpu",
        )  # fmt: skip
        start = time.perf_counter()
        payload = run_evaluation(args)
        return payload["data"]["num_samples"], time.perf_counter() - start


def bench_harness_with_baselines(n_pairs: int, n_resamples: int) -> float:
    """Seconds for `medvl eval --predictions` on `n_pairs` synthetic pairs with a `n_pairs` training split, baselines on."""
    from datasets import Dataset

    from medvl_recipes.evaluation.runner import EvalArguments, run_evaluation

    hyps, refs = synthetic_pairs(n_pairs)
    train_hyps, train_refs = synthetic_pairs(n_pairs, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "dataset" / "data"
        data.mkdir(parents=True)
        for split, texts in (("train", train_refs), ("validation", refs)):
            ids = [f"{split}-{i}" for i in range(n_pairs)]
            Dataset.from_dict({"id": ids, "text": texts}).to_parquet(str(data / f"{split}-00000-of-00001.parquet"))
        preds = Path(tmp) / "predictions.jsonl"
        preds.write_text(
            "".join(
                f'{{"id": "validation-{i}", "reference": {r!r}, "generation": {h!r}}}\n'.replace("'", '"')
                for i, (h, r) in enumerate(zip(hyps, refs, strict=True))
            )
        )
        args = EvalArguments(
            predictions=str(preds), dataset=str(Path(tmp) / "dataset"), output_dir=str(Path(tmp) / "eval"),
            n_resamples=n_resamples, plots=False, device="cpu",
            metrics=["bleu", "chrf", "rougeL", "finding_f1_micro", "finding_f1_macro"],
        )  # fmt: skip
        start = time.perf_counter()
        payload = run_evaluation(args)
        assert set(payload["baselines"]) == {"most_frequent", "random"}
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="outputs/quickstart/dataset", help="Prepared dataset folder.")
    parser.add_argument(
        "--models-dir", default=None, help="Folder with the tiny models (built in a temp dir if unset)."
    )
    parser.add_argument("--n-pairs", type=int, default=10_000, help="Report pairs for the metric timings.")
    parser.add_argument("--n-resamples", type=int, default=1000, help="Bootstrap resamples.")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="Generation length in the harness run.")
    parser.add_argument("--skip-harness", action="store_true", help="Only time the metrics.")
    parser.add_argument(
        "--baselines-pairs", type=int, default=10_000, help="Pairs of the predictions run with baselines (0: skip)."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print("| stage | N | time (s) | throughput |\n|---|---:|---:|---:|")
    if not args.skip_harness:
        n, seconds = bench_harness(args.dataset, args.models_dir, args.max_new_tokens, args.n_resamples)
        print(f"| whole harness, tiny decoder+encoder, {args.max_new_tokens} new tokens, CPU | {n} | {seconds:.1f} | "
              f"{n / seconds:.2f} samples/s |")  # fmt: skip
    if args.baselines_pairs:
        seconds = bench_harness_with_baselines(args.baselines_pairs, args.n_resamples)
        print(f"| `medvl eval --predictions`, 5 text metrics, baselines most_frequent + random, bootstrap "
              f"x{args.n_resamples} | {args.baselines_pairs} | {seconds:.1f} | "
              f"{args.baselines_pairs / seconds:,.0f} samples/s |")  # fmt: skip
    for family, point, boot in bench_metrics(args.n_pairs, args.n_resamples):
        print(f"| {family}: stats + point | {args.n_pairs} | {point:.2f} | {args.n_pairs / point:,.0f} pairs/s |")
        print(f"| {family}: bootstrap x{args.n_resamples} | {args.n_pairs} | {boot:.2f} | |")


if __name__ == "__main__":
    main()
