# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A `datasets` ImageFolder: images plus `metadata.csv` or `metadata.jsonl` with a `file_name` column.

Options: `text_column` (default `text`, falls back to `caption`/`report`), `id_column` (default: the file name),
`group_column` (default: the id), `license_column`. Metadata files in sub-folders are read too, with
`file_name` relative to their own folder, as in `datasets`.
"""

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
from medvl_recipes.data.text_files import read_csv, read_jsonl_utf8
from medvl_recipes.errors import MedvlError


LAYOUTS = "<path>/**/metadata.csv or metadata.jsonl with a file_name column, images relative to each metadata file"


def _metadata_rows(path: Path) -> tuple[list[tuple[int, dict]] | Iterator[tuple[int, dict]], list[str]]:
    if path.suffix != ".csv":
        return read_jsonl_utf8(path, what="a JSON object with a 'file_name' field"), []
    table = read_csv(path, required=["file_name"], what="ImageFolder metadata with a file_name column")
    return table.rows, table.changes


@register_source(
    "imagefolder", options=("text_column", "id_column", "group_column", "license_column"), layouts=LAYOUTS
)
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
        raise MedvlError(
            f"source {source.name!r} (imagefolder): no metadata.csv or metadata.jsonl under {root}; "
            f"layouts known: {LAYOUTS}"
        )
    text_option = source.option("text_column")
    for file in metadata:
        rows, changes = _metadata_rows(file)
        for line_number, row in rows:
            if "file_name" not in row:
                raise MedvlError(
                    f"{file}:{line_number}: missing the 'file_name' field; the fields there are {sorted(row)}"
                )
            if text_option is not None and text_option not in row:
                raise MedvlError(
                    f"{file}:{line_number}: options.text_column {text_option!r} is not a column; "
                    f"the columns there are {sorted(row)}"
                )
            text_key = next((k for k in (text_option, "text", "caption", "report") if k and k in row), None)
            if text_key is None:
                raise MedvlError(
                    f"{file}:{line_number}: no text column (text, caption, report) among {sorted(row)}; "
                    "set options.text_column"
                )
            image = file.parent / row["file_name"]
            record_id = str(row.get(source.option("id_column") or "", "") or image.relative_to(root).as_posix())
            group = row.get(source.option("group_column") or "") or record_id
            raw_findings = row.get("findings")
            if isinstance(raw_findings, str):
                try:
                    raw_findings = json.loads(raw_findings) if raw_findings.strip() else []
                except json.JSONDecodeError as err:
                    raise MedvlError(
                        f"{file}:{line_number}: the findings column is not JSON ({err.msg}); expected "
                        '[{"finding": ..., "site": ..., "present": ...}]'
                    ) from err
            yield RawRecord(
                id=record_id,
                text=row.get(text_key) or "",
                image=image,
                group_id=f"{source.name}:{group}",
                license=normalise_license(row.get(source.option("license_column") or "license"), "unknown"),
                findings=raw_findings or findings.get(record_id, []),
                file=f"{file}:{line_number}",
                changes=list(changes),
            )
