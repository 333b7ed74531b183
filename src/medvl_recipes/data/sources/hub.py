# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Any `datasets` dataset (Hub id or local folder) or local parquet file(s), with a column mapping.

Options: `image_column` (default `image`), `text_column` (default `caption`, falls back to `text`),
`id_column` (default `image_id`, falls back to `id`, then the row number), `group_column` (default: the id),
`findings_column`, `license_column`, `subset` (Hub config name). `splits` lists the splits to read (default:
every parquet file / every Hub split). Local parquet is streamed row group by row group with pyarrow; Hub
datasets are read with `datasets.load_dataset(..., streaming=True)` and images left undecoded.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, normalise_license, read_findings_sidecar, register_source
from medvl_recipes.errors import MedvlError


def iter_parquet_rows(path: Path, columns: list[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield `(row_index, row)` from a parquet file, one row group in memory at a time.

    Args:
        path (`pathlib.Path`):
            The parquet file.
        columns (`list[str]`, *optional*):
            Columns to read; those missing from the file are left out.
    """
    parquet = pq.ParquetFile(path)
    if columns is not None:
        columns = [c for c in columns if c in parquet.schema_arrow.names]
    row_index = 0
    for batch in parquet.iter_batches(batch_size=256, columns=columns):
        for row in batch.to_pylist():
            yield row_index, row
            row_index += 1


def _image_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    return None


def _pick(row: dict, *names: str | None):
    for name in names:
        if name and name in row:
            return name
    return None


def _rows(source: SourceConfig) -> Iterator[tuple[str, int, dict]]:
    path = Path(source.path)
    if path.is_file() or path.is_dir():
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        if source.splits:
            files = [f for f in files if f.name.split("-")[0].split(".")[0] in source.splits]
        if not files:
            raise MedvlError(f"source 'hub': no parquet files under {path}")
        for file in files:
            for row_index, row in iter_parquet_rows(file):
                yield str(file), row_index, row
        return
    import datasets

    image_column = source.option("image_column", "image")
    try:
        loaded = datasets.load_dataset(source.path, source.option("subset"), streaming=True)
    except Exception as err:  # datasets raises many types for a missing/unreachable repo
        raise MedvlError(f"source 'hub': cannot load {source.path!r} ({type(err).__name__}: {err})") from err
    for split in source.splits or list(loaded):
        stream = loaded[split]
        if image_column in (stream.features or {}):
            stream = stream.cast_column(image_column, datasets.Image(decode=False))
        for row_index, row in enumerate(stream):
            yield f"{source.path}:{split}", row_index, row


@register_source("hub")
def load_hub(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield records from a Hub/local `datasets` dataset or parquet files, mapping columns by option.

    Args:
        source (`SourceConfig`):
            `path` is a parquet file, a folder of parquet files or a Hub id; see the module docstring for options.
    """
    findings_sidecar = read_findings_sidecar(Path(source.path)) if Path(source.path).is_dir() else {}
    image_column = source.option("image_column", "image")
    default_licence = normalise_license(source.option("default_license"), default="unknown")
    columns: dict[str, str | None] = {}
    for file, row_index, row in _rows(source):
        if not columns:
            named = {k: source.option(k) for k in ("text_column", "id_column", "group_column", "findings_column")}
            absent = {k: v for k, v in named.items() if v is not None and v not in row}
            if absent:
                raise MedvlError(f"source 'hub' {source.path}: options {absent} name columns not in {sorted(row)}")
            columns = {
                "text": _pick(row, source.option("text_column"), "caption", "text", "report"),
                "id": _pick(row, source.option("id_column"), "image_id", "id"),
                "group": _pick(row, source.option("group_column")),
                "findings": _pick(row, source.option("findings_column"), "findings"),
                "license": _pick(row, source.option("license_column"), "license"),
            }
            if image_column not in row or columns["text"] is None:
                raise MedvlError(
                    f"source 'hub' {source.path}: columns {sorted(row)} lack image column {image_column!r} or a text "
                    "column; set options.image_column / options.text_column"
                )
        record_id = str(row[columns["id"]]) if columns["id"] else f"{Path(file).stem}-{row_index:08d}"
        image = _image_bytes(row.get(image_column))
        findings = row.get(columns["findings"]) if columns["findings"] else None
        yield RawRecord(
            id=record_id,
            text=row.get(columns["text"]) or "",
            image=image,
            group_id=f"{source.name}:{row[columns['group']] if columns['group'] else record_id}",
            license=normalise_license(row.get(columns["license"]) if columns["license"] else None, default_licence),
            findings=list(findings) if findings else findings_sidecar.get(record_id, []),
            file=f"{file}#row{row_index}",
            drop_reason=None if image else "no_image",
        )
