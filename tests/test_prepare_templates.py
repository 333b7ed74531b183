# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Template reports (IU X-Ray's shared normal texts) are not leakage; rare identical reports still are."""

from collections import Counter

import numpy as np
import pytest

from medvl_recipes.data.mixture import DatasetMixtureConfig
from medvl_recipes.data.prepare import _IndexRow, _SourceStats, split_rows


# Normal templates of the kind IU X-Ray shares across hundreds of patients (ecgen-radiology FINDINGS).
TEMPLATES = [
    "The heart is normal in size. The lungs are clear.",
    "The cardiomediastinal silhouette is within normal limits for size and contour. The lungs are normally inflated "
    "without evidence of focal airspace disease, pleural effusion, or pneumothorax.",
    "Heart size and mediastinal contours are within normal limits. No focal consolidation, pleural effusion or "
    "pneumothorax.",
    "The heart and lungs have XXXX in the interval. Both lungs are clear and expanded. Heart and mediastinum normal.",
    "No acute cardiopulmonary abnormality.",
]


def iu_like_rows(n_reports: int = 3000, template_share: float = 0.3, seed: int = 0) -> list[_IndexRow]:
    """`n_reports` reports of 1 or 2 images (frontal + lateral share the report's group and text); 30% of the
    reports use one of 5 templates; 60 pairs of different studies share a rare identical text."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(n_reports):
        if n < template_share * n_reports:
            text = TEMPLATES[n % len(TEMPLATES)]
        elif n < template_share * n_reports + 120:
            text = f"Rare finding number {(n // 2)} seen in two different studies."
        else:
            text = f"Unique report {n}: opacity in segment {rng.integers(1000)} with size {rng.integers(50)} mm."
        for k in range(1 + int(n % 3 != 0)):
            rows.append(
                _IndexRow(
                    source="openi",
                    id=f"CXR{n}_IM-{k}",
                    source_group=f"openi:CXR{n}",
                    license="cc-by-nc-nd-4.0",
                    text=text,
                    findings=[],
                    modality="CR",
                    pixel_hash=f"{n}-{k}",
                    phash=int(rng.integers(0, 2**63, dtype=np.int64)) * 2 + k,
                    offset=0,
                    length=0,
                )
            )
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


@pytest.mark.parametrize("seed", [0, 1])
def test_templates_are_not_one_giant_group(seed):
    rows = iu_like_rows(seed=seed)
    config = DatasetMixtureConfig(sources=[{"type": "openi", "path": "openi"}], val_fraction=0.1, seed=seed)
    stats = {"openi": _SourceStats()}
    result = split_rows(rows, config, stats)
    n = len(result.rows)
    validation_share = result.split_of.count("validation") / n
    assert abs(validation_share - config.val_fraction) <= 0.01
    share = result.templates["share"]
    assert result.templates["texts"] == len(TEMPLATES)
    assert abs(share["validation"] - share["train"]) <= 0.03
    assert abs(share["train"] - result.templates["records"] / n) <= 0.03
    assert max(Counter(result.group_of).values()) < 0.01 * n
    assert result.leakage["shared_images"] == 0
    assert result.leakage["shared_reports"] == 0  # rare identical texts kept together
    assert result.leakage["groups_across_splits"] == result.leakage["source_groups_across_splits"] == 0
    # The 60 rare pairs were merged, each into one group of two studies.
    assert result.dedup_stats["merged_by_identical_report"] == 60


def test_without_template_detection_one_group_swallows_the_templates():
    rows = iu_like_rows()
    config = DatasetMixtureConfig(
        sources=[{"type": "openi", "path": "openi"}], val_fraction=0.1, dedup={"template_min_groups": 0}
    )
    result = split_rows(rows, config, {"openi": _SourceStats()})
    # What the issue reported: every report of a template in one group, hundreds of studies in one split.
    assert max(Counter(result.group_of).values()) > 0.05 * len(result.rows)
