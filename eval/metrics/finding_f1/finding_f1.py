# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Finding F1: agreement of findings extracted (with negation handling) from generated and reference reports.

Loads offline with `evaluate.load("eval/metrics/finding_f1")`; the implementation is
`medvl_recipes.evaluation.findings` / `metrics` (the same code `medvl eval` runs).
"""

import datasets
import evaluate
import numpy as np

from medvl_recipes.evaluation.findings import FindingExtractor, per_finding_f1
from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics


_DESCRIPTION = """
Rule-based extraction of a finding lexicon (the 14 CheXpert observations plus nodule and mass by default) with
NegEx-style negation and uncertainty ("cannot exclude pneumonia" counts as present), then per-finding
present/absent agreement of predictions against references, as micro and macro F1 in percent.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated reports.
    references (`list[str]`): reference reports.
    lexicon (`str`, *optional*): path of a lexicon YAML (the packaged default when None).
    n_resamples (`int`, *optional*, defaults to 0): bootstrap resamples for 95% intervals (0: none).
    seed (`int`, *optional*, defaults to 0): bootstrap seed.
Returns:
    finding_f1_micro, finding_f1_macro (`float`), their `*_ci` intervals when n_resamples > 0, and
    per_finding (`dict[str, float | None]`).
Examples:
    >>> metric = evaluate.load("eval/metrics/finding_f1")
    >>> metric.compute(predictions=["Small left pleural effusion."], references=["Left pleural effusion."])["finding_f1_micro"]
    100.0
"""

_CITATION = """
@inproceedings{irvin2019chexpert, title={CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and
Expert Comparison}, author={Irvin, Jeremy and others}, booktitle={AAAI}, year={2019}}
@article{chapman2001negex, title={A Simple Algorithm for Identifying Negated Findings and Diseases in Discharge
Summaries}, author={Chapman, Wendy W. and others}, journal={Journal of Biomedical Informatics}, year={2001}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FindingF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, lexicon=None, n_resamples=0, seed=0):
        extractor = FindingExtractor(lexicon)
        inputs = MetricInputs(generations=list(predictions), references=list(references), extractor=extractor)
        results, stats = compute_metrics(
            inputs, ["finding_f1_micro", "finding_f1_macro"], n_resamples=n_resamples, seed=seed
        )
        out = {name: r.value for name, r in results.items()}
        if n_resamples > 0:
            out.update({f"{name}_ci": (r.ci_low, r.ci_high) for name, r in results.items()})
        out["per_finding"] = per_finding_f1(np.sum(stats["finding_stats_vs_reference"], 0), extractor.names)
        return out
