# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The cases of a review: one or two `medvl eval` runs over the same samples, and each reviewer's queue.

Blinding: a reviewer sees "Report 1" and "Report 2", never the run names; which run is which is drawn per
reviewer and case from the review seed, as is the order of the cases, so two reviewers see different orders and
a reviewer who comes back sees the same one.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


# ReXVal (Yu et al., 2023, "Evaluating progress in automatic chest X-ray radiology report generation"): the six
# error categories radiologists counted, each as clinically significant or insignificant.
REXVAL_ERRORS = (
    "false prediction of finding",
    "omission of finding",
    "incorrect location/position of finding",
    "incorrect severity of finding",
    "mention of comparison that is not present in the reference",
    "omission of comparison describing a change from a previous study",
)
FINDING_VERDICTS = ("correct", "missed", "hallucinated", "wrong location or severity")
SYSTEM_NAMES = ("A", "B")


@dataclass
class ReviewCase:
    """One sample of the review.

    Args:
        case_id (`str`): The sample id shared by the runs.
        reference (`str`): The reference report.
        reports (`dict[str, str]`): System name (`"A"`, `"B"`) -> generated report.
        findings (`dict[str, dict[str, str]]`): System name -> the extractor's findings of its report.
        scores (`dict[str, dict[str, float]]`): System name -> the run's per-sample metric scores.
        reference_findings (`dict[str, str]`, *optional*): The extractor's findings of the reference report.
    """

    case_id: str
    reference: str
    reports: dict[str, str]
    findings: dict[str, dict[str, str]]
    scores: dict[str, dict[str, float]]
    reference_findings: dict[str, str] = field(default_factory=dict)


def _read_run(run_dir: str | Path) -> dict[str, dict]:
    path = Path(run_dir) / "per_sample.jsonl"
    if not path.is_file():
        raise MedvlError(f"{path} not found; pass the --output-dir of a finished `medvl eval` run with a decoder")
    rows = {}
    for line, row in read_jsonl(path, what="a per-sample row of `medvl eval`"):
        if not isinstance(row.get("generation"), str):
            raise MedvlError(f"{path}:{line}: no `generation`; review needs a run that generated reports")
        rows[str(row["id"])] = row
    return rows


def load_cases(run_dirs: list[str | Path]) -> list[ReviewCase]:
    """The samples every run has, in the first run's order, as `ReviewCase`s (runs named A and B).

    Args:
        run_dirs (`list`): One or two `medvl eval` output folders.
    """
    if not 1 <= len(run_dirs) <= 2:
        raise MedvlError(f"review one run or two (A/B), got {len(run_dirs)}")
    runs = [_read_run(run_dir) for run_dir in run_dirs]
    common = [case_id for case_id in runs[0] if all(case_id in run for run in runs[1:])]
    if not common:
        raise MedvlError(f"the runs {', '.join(map(str, run_dirs))} share no sample id")
    cases = []
    for case_id in common:
        rows = dict(zip(SYSTEM_NAMES, (run[case_id] for run in runs), strict=False))
        reference = rows["A"]["reference"]
        cases.append(
            ReviewCase(
                case_id=case_id,
                reference=reference if isinstance(reference, str) else reference[0],
                reports={name: row["generation"] for name, row in rows.items()},
                findings={name: row.get("findings_generation", {}) for name, row in rows.items()},
                scores={name: row.get("scores", {}) for name, row in rows.items()},
                reference_findings=rows["A"].get("findings_reference", {}),
            )
        )
    return cases


@dataclass
class QueueItem:
    """One position of a reviewer's queue: which case, and which system is shown as Report 1, 2."""

    case: ReviewCase
    shown: tuple[str, ...]


def reviewer_queue(cases: list[ReviewCase], reviewer: str, seed: int) -> list[QueueItem]:
    """The reviewer's cases in their own order, each with its own blinded report order.

    Args:
        cases (`list[ReviewCase]`): The review's cases.
        reviewer (`str`): The reviewer's login.
        seed (`int`): The review seed; with the login it fixes the order, so a reviewer who returns resumes it.
    """
    rng = random.Random(f"{seed}:{reviewer}")
    order = list(range(len(cases)))
    rng.shuffle(order)
    queue = []
    for i in order:
        systems = list(cases[i].reports)
        rng.shuffle(systems)
        queue.append(QueueItem(cases[i], tuple(systems)))
    return queue


def load_images(dataset: str, split: str, case_ids: list[str]) -> dict:
    """`{case id: PIL image}` from the prepared dataset the runs evaluated."""
    from medvl_recipes.data.prepared import load_prepared_split

    rows = load_prepared_split(dataset, split, columns=("id", "image"), setting="--split")
    wanted = set(case_ids)
    images = {str(row["id"]): row["image"] for row in rows if str(row["id"]) in wanted}
    missing = wanted - set(images)
    if missing:
        raise MedvlError(f"{len(missing)} case ids are not in {dataset}[{split}] (e.g. {sorted(missing)[:3]})")
    return images
