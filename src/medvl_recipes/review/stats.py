# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl review stats`: what the experts said, per system, with bootstrap confidence intervals; how much the
reviewers agree; and how well each automatic metric of the runs ranks reports the way the experts do.

    medvl review stats --answers reviews/ --runs outputs/eval-a outputs/eval-b --output-dir reviews/stats

- Expert scores: mean acceptability (1-5) and mean clinically significant / insignificant ReXVal error counts per
  report, each with a percentile bootstrap CI over the rated reports (`evaluation.bootstrap`); preference shares.
- Agreement on acceptability over the reports two reviewers both rated: Cohen's kappa (unweighted and quadratic,
  scikit-learn's `cohen_kappa_score`) for two reviewers; Krippendorff's alpha (ordinal, the `krippendorff`
  package, when installed) for more.
- Kendall's tau-b (`scipy.stats.kendalltau`) between each per-sample metric of the runs and the mean expert
  acceptability of the same report.
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.bootstrap import bootstrap_distribution, confidence_interval
from medvl_recipes.evaluation.report import write_json
from medvl_recipes.review.cases import load_cases
from medvl_recipes.review.store import load_all_answers


def _mean_with_ci(values: list[float], n_resamples: int, seed: int) -> dict:
    stats = np.stack([np.asarray(values, dtype=np.float64), np.ones(len(values))], axis=1)  # (N, 2): value, count
    samples = bootstrap_distribution(stats, lambda s: s[:, 0] / s[:, 1], n_resamples=n_resamples, seed=seed)
    low, high = confidence_interval(samples)
    return {"mean": float(np.mean(values)), "ci_low": low, "ci_high": high, "n": len(values)}


def rated_reports(answers: list[dict]) -> list[dict]:
    """One row per (reviewer, case, system): acceptability and error totals."""
    rows = []
    for answer in answers:
        for system, rating in answer["systems"].items():
            errors = rating.get("errors", {}).values()
            rows.append(
                {
                    "reviewer": answer["reviewer"],
                    "case_id": answer["case_id"],
                    "system": system,
                    "acceptability": rating["acceptability"],
                    "significant": sum(e["significant"] for e in errors),
                    "insignificant": sum(e["insignificant"] for e in errors),
                }
            )
    return rows


def expert_scores(rows: list[dict], answers: list[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Per system: acceptability and error counts with bootstrap CIs, and the share of answers preferring it."""
    scores = {}
    for system in sorted({row["system"] for row in rows}):
        mine = [row for row in rows if row["system"] == system]
        scores[system] = {
            key: _mean_with_ci([row[key] for row in mine], n_resamples, seed)
            for key in ("acceptability", "significant", "insignificant")
        }
    preferences = [a["preference"] for a in answers if a.get("preference")]
    for system in scores:
        scores[system]["preferred_share"] = (
            sum(p == system for p in preferences) / len(preferences) if preferences else None
        )
    return scores


def agreement(rows: list[dict]) -> dict:
    """Inter-rater agreement on acceptability over the reports rated by the reviewers."""
    by_reviewer: dict[str, dict] = defaultdict(dict)
    for row in rows:
        by_reviewer[row["reviewer"]][(row["case_id"], row["system"])] = row["acceptability"]
    reviewers = sorted(by_reviewer)
    if len(reviewers) < 2:
        return {"reviewers": reviewers, "note": "one reviewer: no agreement to measure"}
    if len(reviewers) == 2:
        from sklearn.metrics import cohen_kappa_score

        a, b = (by_reviewer[r] for r in reviewers)
        shared = sorted(set(a) & set(b))
        if len(shared) < 2:
            return {"reviewers": reviewers, "note": f"{len(shared)} report(s) rated by both reviewers"}
        x, y = [a[k] for k in shared], [b[k] for k in shared]
        return {
            "reviewers": reviewers,
            "n_shared": len(shared),
            "cohen_kappa": float(cohen_kappa_score(x, y)),
            "cohen_kappa_quadratic": float(cohen_kappa_score(x, y, weights="quadratic")),
        }
    try:
        import krippendorff
    except ImportError:
        return {"reviewers": reviewers, "note": "more than two reviewers: install `krippendorff` for the alpha"}
    items = sorted({k for ratings in by_reviewer.values() for k in ratings})
    data = [[by_reviewer[r].get(k, np.nan) for k in items] for r in reviewers]
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    return {"reviewers": reviewers, "krippendorff_alpha_ordinal": float(alpha)}


def metric_correlations(rows: list[dict], run_dirs: list[str]) -> dict:
    """Kendall's tau-b between each per-sample metric and the mean expert acceptability of the same report."""
    from scipy.stats import kendalltau

    cases = {case.case_id: case for case in load_cases(run_dirs)}
    ratings: dict[tuple, list] = defaultdict(list)
    for row in rows:
        ratings[(row["case_id"], row["system"])].append(row["acceptability"])
    keys = sorted(k for k in ratings if k[0] in cases)
    metrics = sorted({m for case_id, system in keys for m in cases[case_id].scores[system]})
    result = {}
    for metric in metrics:
        pairs = [
            (cases[c].scores[s][metric], np.mean(ratings[(c, s)])) for c, s in keys if metric in cases[c].scores[s]
        ]
        if len(pairs) < 2:
            continue
        tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs])
        result[metric] = {"tau_b": float(tau.statistic), "p_value": float(tau.pvalue), "n": len(pairs)}
    return result


def render_markdown(payload: dict) -> str:
    """The stats as a short Markdown report."""
    lines = [
        "# Expert review",
        "",
        "| system | acceptability (1-5) | significant errors | insignificant errors | preferred |",
    ]
    lines.append("|---|---|---|---|---|")
    for system, s in payload["expert_scores"].items():
        cells = [
            f"{s[k]['mean']:.2f} [{s[k]['ci_low']:.2f}, {s[k]['ci_high']:.2f}]"
            for k in ("acceptability", "significant", "insignificant")
        ]
        share = "" if s["preferred_share"] is None else f"{s['preferred_share']:.0%}"
        lines.append(f"| {system} | {' | '.join(cells)} | {share} |")
    lines += ["", "95% percentile bootstrap intervals over the rated reports.", "", "## Agreement", ""]
    lines += [f"- {k}: {v}" for k, v in payload["agreement"].items()]
    lines += [
        "",
        "## Automatic metrics vs experts (Kendall tau-b)",
        "",
        "| metric | tau-b | p | n |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {c['tau_b']:.3f} | {c['p_value']:.3g} | {c['n']} |"
        for m, c in payload["metric_correlations"].items()
    ]
    return "\n".join(lines) + "\n"


def review_stats(answers_dir: str, run_dirs: list[str], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Everything `medvl review stats` reports, as a JSON-ready dict."""
    answers = load_all_answers(answers_dir)
    if not answers:
        raise MedvlError(f"--answers {answers_dir}: no answers yet (one <reviewer>.jsonl per reviewer)")
    rows = rated_reports(answers)
    return {
        "n_answers": len(answers),
        "expert_scores": expert_scores(rows, answers, n_resamples, seed),
        "agreement": agreement(rows),
        "metric_correlations": metric_correlations(rows, run_dirs),
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95, "method": "percentile"},
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medvl review stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", required=True, help="The review's answers folder.")
    parser.add_argument("--runs", nargs="+", required=True, help="The reviewed `medvl eval` runs (A, B).")
    parser.add_argument("--output-dir", required=True, help="Where review_stats.json and review_report.md go.")
    parser.add_argument("--n-resamples", type=int, default=1000, help="Bootstrap resamples.")
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed.")
    args = parser.parse_args(argv)
    payload = review_stats(args.answers, args.runs, args.n_resamples, args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "review_stats.json", payload)
    (out / "review_report.md").write_text(render_markdown(payload))
    sys.stdout.write(f"medvl review stats: wrote {out / 'review_stats.json'} and {out / 'review_report.md'}\n")
    return 0
