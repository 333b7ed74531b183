# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark the finding extractor: per-state precision/recall on the labelled sentence table, and sentences/s.

    python bench/bench_findings.py
    python bench/bench_findings.py --table tests/data/finding_sentences.tsv --repeats 20 --uncertain-as negative

Prints markdown tables: precision/recall of each state (present, uncertain, absent, not mentioned) over every
(sentence, observation) pair of the table, per-tag exact-match accuracy, and throughput on one CPU core.
"""

import argparse
import time
from collections import Counter
from pathlib import Path

from medvl_recipes.evaluation.findings import FindingExtractor, load_labelled_sentences, per_state_precision_recall


TABLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "finding_sentences.tsv"


def main(args: argparse.Namespace) -> None:
    extractor = FindingExtractor(args.lexicon, uncertain_as=args.uncertain_as, impression_only=args.impression_only)
    rows = load_labelled_sentences(args.table)
    texts = [text for text, _, _ in rows]
    predicted = [extractor.extract(text) for text in texts]
    scores = per_state_precision_recall(predicted, [expected for _, expected, _ in rows], extractor.names)

    print(f"{len(rows)} sentences, {len(extractor.names)} observations, `{extractor.signature}`\n")
    print("| state | precision | recall | support |\n|---|---|---|---|")
    for state, s in scores.items():
        print(f"| {state} | {s['precision']:.1f} | {s['recall']:.1f} | {s['support']} |")

    total, exact = Counter(), Counter()
    for (_, expected, tag), got in zip(rows, predicted, strict=True):
        total[tag] += 1
        exact[tag] += got == expected
    print("\n| tag | sentences | exact match % |\n|---|---|---|")
    for tag in sorted(total):
        print(f"| {tag} | {total[tag]} | {100.0 * exact[tag] / total[tag]:.1f} |")

    # Throughput: the whole table, repeated, one extractor (compiled once), one process.
    start = time.perf_counter()
    for _ in range(args.repeats):
        for text in texts:
            extractor.extract(text)
    elapsed = time.perf_counter() - start
    print(f"\nthroughput: {args.repeats * len(texts) / elapsed:,.0f} sentences/s ({args.repeats} x {len(texts)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--lexicon", default=None, help="lexicon YAML (the packaged default when omitted)")
    parser.add_argument("--uncertain-as", default="positive", choices=["positive", "negative", "own_class"])
    parser.add_argument("--impression-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    main(parser.parse_args())
