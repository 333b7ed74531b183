# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A `datasets` ImageFolder: images plus `metadata.csv` or `metadata.jsonl` with a `file_name` column.

Options: `text_column` (default `text`, falls back to `caption`/`report`), `id_column` (default: the file name),
`group_column` (default: the id), `license_column`. Metadata files in sub-folders are read too, with
`file_name` relative to their own folder, as in `datasets`.
"""

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import (
    RawRecord,
    normalise_license,
    read_findings_sidecar,
    register_source,
    require_dir,
)
from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


def _metadata_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix != ".csv":
        yield from read_jsonl(path, what="a JSON object with a 'file_name' field")
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


@register_source("imagefolder")
def load_imagefolder(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield records from an ImageFolder with metadata.

    Args:
        source (`SourceConfig`):
            `path` is the folder; see the module docstring for options.
    """
    root = require_dir(Path(source.path), "imagefolder")
    findings = read_findings_sidecar(root)
    metadata = sorted(root.rglob("metadata.csv")) + sorted(root.rglob("metadata.jsonl"))
    if not metadata:
        raise MedvlError(f"source 'imagefolder': no metadata.csv or metadata.jsonl under {root}")
    for file in metadata:
        for line_number, row in _metadata_rows(file):
            if "file_name" not in row:
                raise MedvlError(f"{file}:{line_number}: missing the 'file_name' column")
            text_key = next((k for k in (source.option("text_column"), "text", "caption", "report") if k in row), None)
            if text_key is None:
                raise MedvlError(f"{file}:{line_number}: no text column; set options.text_column")
            image = file.parent / row["file_name"]
            record_id = str(row.get(source.option("id_column") or "", "") or image.relative_to(root).as_posix())
            group = row.get(source.option("group_column") or "") or record_id
            raw_findings = row.get("findings")
            if isinstance(raw_findings, str):
                raw_findings = json.loads(raw_findings) if raw_findings.strip() else []
            yield RawRecord(
                id=record_id,
                text=row.get(text_key) or "",
                image=image,
                group_id=f"{source.name}:{group}",
                license=normalise_license(row.get(source.option("license_column") or "license"), "unknown"),
                findings=raw_findings or findings.get(record_id, []),
                file=f"{file}:{line_number}",
            )
