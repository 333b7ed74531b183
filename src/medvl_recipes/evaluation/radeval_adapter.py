# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Optional model-based radiology metrics from RadEval (`pip install radeval`): RadGraph F1, CheXbert F1,
BERTScore, GREEN, and RadEval's own lexical metrics.

RadEval depends on torchvision, which this project never installs next to its own CPU torch, and its model-based
metrics download weights; so it is used when the user's environment has it (and the weights are cached for an
offline run), and otherwise the run says in one line what is missing and goes on without those numbers.
"""

import logging
from collections.abc import Sequence


logger = logging.getLogger(__name__)

# RadEval's metric names (its `metrics=[...]` argument); lexical ones need no weights.
RADEVAL_METRICS = ("bleu", "rouge", "radgraph", "f1chexbert", "bertscore", "green")


def radeval_scores(references: Sequence[str], generations: Sequence[str], metrics: Sequence[str]) -> dict:
    """Run RadEval's `metrics` on the reports; `{"scores": {...}}`, or `{"missing": "one line"}` if it cannot run.

    Args:
        references (`Sequence[str]`): Reference reports.
        generations (`Sequence[str]`): Generated reports, one per reference.
        metrics (`Sequence[str]`): RadEval metric names (see `RADEVAL_METRICS`).
    """
    unknown = [m for m in metrics if m not in RADEVAL_METRICS]
    if unknown:
        return {"missing": f"unknown RadEval metrics {unknown}; choose from {list(RADEVAL_METRICS)}"}
    try:
        from radeval import RadEval
    except ImportError:
        return {
            "missing": "RadEval metrics skipped: the `radeval` package is not installed (`pip install radeval`, "
            "in an environment where torchvision may be installed)"
        }
    try:
        scores = RadEval(metrics=list(metrics), show_progress=False)(list(references), list(generations))
    except (OSError, RuntimeError, ValueError) as err:
        # Typically weights that are not in the local cache of an offline run.
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"missing": f"RadEval metrics {list(metrics)} could not run ({first_line}); cache their weights first"}
    return {"scores": {name: float(value) for name, value in scores.items() if isinstance(value, int | float)}}
