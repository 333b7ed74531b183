# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The dataset card (`README.md` with YAML metadata) of a prepared dataset."""

from pathlib import Path

import datasets
import datasets.info
from huggingface_hub import DatasetCard, DatasetCardData

from medvl_recipes.data.mixture import DatasetMixtureConfig
from medvl_recipes.data.prepared import FEATURES, SPLITS


def is_non_commercial(license_id: str) -> bool:
    """Whether a licence id may forbid commercial use: CC `-nc` variants, ROCO's `NO-CC CODE`, MedPix terms, unknown."""
    parts = license_id.lower().replace("_", "-").split("-")
    return "nc" in parts or "non" in parts or parts[:2] == ["no", "cc"] or license_id in {"unknown", "other"}


def size_category(n: int) -> str:
    """The Hub's `size_categories` tag for a dataset of `n` rows (`"n<1K"`, `"1K<n<10K"`, ...)."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _card_data(output_dir: Path, report: dict, config: DatasetMixtureConfig) -> DatasetCardData:
    # The YAML header: licence, task, size, the parquet data files per split and `dataset_info` (features and
    # split sizes, written by `datasets` itself so that `load_dataset` reads them back).
    licenses = sorted({lic for s in report["sources"].values() for lic in s["licenses"]})
    spdx = licenses[0] if len(licenses) == 1 and licenses[0].startswith("cc-") else "other"
    totals = report["totals"]
    card_data = DatasetCardData(
        pretty_name=config.dataset_name or "medvl-recipes prepared image-report dataset",
        license=spdx,
        # The Hub asks for a name when the licence is "other": records carry their own licence in `license`.
        license_name=None if spdx != "other" else "mixed-per-record",
        task_categories=["image-to-text"],
        language=["en"],
        tags=["medical", "radiology", "medvl-recipes"],
        size_categories=[size_category(totals["kept"])],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in SPLITS if totals[s]],
            }
        ],
    )
    # `datasets` reads a split entry only when it has all three fields; the sizes are the parquet bytes.
    splits = datasets.SplitDict()
    for s in (s for s in SPLITS if totals[s]):
        num_bytes = sum(p.stat().st_size for p in (output_dir / "data").glob(f"{s}-*.parquet"))
        splits.add(datasets.SplitInfo(name=s, num_bytes=num_bytes, num_examples=totals[s]))
    info = datasets.DatasetInfo(features=FEATURES, splits=splits)
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return card_data


def _sources_section(report: dict) -> tuple[str, str]:
    # The per-source table and the licence notice.
    rows = []
    non_commercial = []
    for name, source in report["sources"].items():
        source_licenses = ", ".join(f"`{k}` ({v})" for k, v in source["licenses"].items()) or "-"
        dropped = ", ".join(f"{k}: {v}" for k, v in source["dropped"].items()) or "0"
        rows.append(
            f"| {name} | `{source['type']}` | {source['read']} | {source['kept']} | {source['train']} | "
            f"{source['validation']} | {dropped} | {source_licenses} |"
        )
        non_commercial += [f"`{lic}` ({name})" for lic in source["licenses"] if is_non_commercial(lic)]
    notice = (
        "**Non-commercial / restricted licences:** "
        + ", ".join(non_commercial)
        + ". Records under these licences may not be used commercially; check each source's terms before use "
        "or redistribution, and filter on the `license` column to build a commercially usable subset."
        if non_commercial
        else "All records carry licences that allow commercial use; attribution may still be required."
    )
    return "\n".join(rows), notice


def write_dataset_card(output_dir: str | Path, report: dict, config: DatasetMixtureConfig) -> Path:
    """Write `output_dir/README.md`: YAML metadata (licence, splits, features, data files) and per-source counts.

    Args:
        output_dir (`str` or `pathlib.Path`):
            The prepared dataset folder.
        report (`dict`):
            The content of `prepare_report.json`.
        config (`DatasetMixtureConfig`):
            The mixture recipe the dataset was prepared from.
    """
    output_dir = Path(output_dir)
    card_data = _card_data(output_dir, report, config)
    rows, notice = _sources_section(report)
    totals, leakage = report["totals"], report["leakage"]
    body = f"""---
{card_data.to_yaml()}
---

# {card_data.pretty_name}

Image-report pairs prepared by [medvl-recipes](https://github.com/medvl-recipes/medvl-recipes) (`medvl prepare`):
text normalised and de-identification placeholders handled, images validated, converted to RGB PNG and
downscaled, exact and near-duplicate images and identical reports grouped, and a seeded, source-stratified,
group-aware split (seed {config.seed}, validation fraction {config.val_fraction}).

{notice}

## Sources

| source | adapter | read | kept | train | validation | dropped (reason: count) | licences (records) |
|---|---|---|---|---|---|---|---|
{rows}

Totals: {totals["kept"]} kept of {totals["read"]} read ({totals["train"]} train, {totals["validation"]} validation).

## Columns

`image` (PNG), `text` (cleaned report or caption), `source`, `id` (`<source>:<source record id>`, unique),
`group_id` (study/report/case merged with duplicate groups: all records of a group are in one split),
`license`, `modality` (when the source states it), `findings` (structured findings where the source provides
them, else empty).

## Leakage control

| check | count |
|---|---|
| images shared across splits | {leakage["shared_images"]} |
| reports shared across splits | {leakage["shared_reports"]} |
| near-duplicate image pairs across splits | {leakage["near_duplicate_pairs_across_splits"]} (of {leakage["near_duplicate_pairs_checked"]} pairs) |
| groups across splits | {leakage["groups_across_splits"]} |

Full counts (dropped and changed records by source and reason, de-duplication) are in `prepare_report.json`.
"""
    path = output_dir / "README.md"
    DatasetCard(body).save(path)
    return path
