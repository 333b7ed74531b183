# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""ROCOv2: the Zenodo CSV + images release and the Hub parquet mirror (`eltorio/ROCOv2-radiology`).

CSV form: `<path>/{train,valid,test}_captions.csv` (`ID,Caption`), optional `*_concepts.csv` (`ID,CUIs`, `;`-separated)
and images `<path>/<split>/<ID>.png` (`.jpg` also accepted).
Parquet form: `<path>/data/<split>-*.parquet` (or `<path>/*.parquet`) with columns `image` ({bytes, path}),
`image_id`, `caption`, `cui`. Each image is its own group (the release has no article ids). Licence defaults to
`cc-by-nc-sa-4.0`, as on the Hub mirror.
"""

import csv
from collections.abc import Iterator
from pathlib import Path

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, read_findings_sidecar, register_source, require_dir
from medvl_recipes.data.sources.hub import iter_parquet_rows


DEFAULT_LICENSE = "cc-by-nc-sa-4.0"
_CSV_SPLITS = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}


def _parquet_files(root: Path, splits: list[str] | None) -> list[Path]:
    folder = root / "data" if (root / "data").is_dir() else root
    files = sorted(folder.glob("*.parquet"))
    if splits:
        files = [f for f in files if f.name.split("-")[0] in splits]
    return files


@register_source("rocov2")
def load_rocov2(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield ROCOv2 records from either the CSV or the parquet release (auto-detected).

    Args:
        source (`SourceConfig`):
            `path` is the release folder; `splits` selects among train/validation(valid)/test.
    """
    root = require_dir(Path(source.path), "rocov2")
    findings = read_findings_sidecar(root)
    licence = DEFAULT_LICENSE
    parquet_files = _parquet_files(root, source.splits)
    if parquet_files:
        for file in parquet_files:
            for row_index, row in iter_parquet_rows(file, ["image", "image_id", "caption", "cui"]):
                image = row["image"] or {}
                image_id = str(row["image_id"])
                yield RawRecord(
                    id=image_id,
                    text=row["caption"] or "",
                    image=image.get("bytes"),
                    group_id=f"rocov2:{image_id}",
                    license=licence,
                    findings=findings.get(image_id, []),
                    file=f"{file}#row{row_index}",
                    meta={"cuis": list(row.get("cui") or [])},
                    drop_reason=None if image.get("bytes") else "no_image",
                )
        return
    splits = [_CSV_SPLITS.get(s, s) for s in (source.splits or ["train", "valid", "test"])]
    found = False
    for split in splits:
        captions = root / f"{split}_captions.csv"
        if not captions.is_file():
            continue
        found = True
        concepts: dict[str, list[str]] = {}
        concepts_file = root / f"{split}_concepts.csv"
        if concepts_file.is_file():
            with concepts_file.open(encoding="utf-8", newline="") as handle:
                concepts = {
                    r["ID"]: [c for c in (r.get("CUIs") or "").split(";") if c] for r in csv.DictReader(handle)
                }
        with captions.open(encoding="utf-8", newline="") as handle:
            for line_number, row in enumerate(csv.DictReader(handle), start=2):
                image_id = row["ID"].strip()
                image = next(
                    (
                        p
                        for p in (root / split / f"{image_id}{ext}" for ext in (".png", ".jpg", ".jpeg"))
                        if p.is_file()
                    ),
                    None,
                )
                yield RawRecord(
                    id=image_id,
                    text=row.get("Caption") or "",
                    image=image,
                    group_id=f"rocov2:{image_id}",
                    license=licence,
                    findings=findings.get(image_id, []),
                    file=f"{captions}:{line_number}",
                    meta={"cuis": concepts.get(image_id, [])},
                    drop_reason=None if image else "missing_image",
                )
    if not found:
        from medvl_recipes.errors import MedvlError

        raise MedvlError(f"source 'rocov2': {root} has neither data/*.parquet nor <split>_captions.csv files")
