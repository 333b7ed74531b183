# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Any `datasets` dataset (Hub id or local folder) or local parquet file(s), with a column mapping.

Options: `image_column` (default `image`); `text_column`, a column or a list of columns joined with a space
(default: the first of `caption`, `text`, `report`, else the free-text `findings` + `impression` of the
MIMIC-CXR-style report schema); `findings_column`, the column of structured findings (`[{finding, site, present}]`;
by default a `findings` column is taken as structured only when it holds lists, never when it holds text);
`id_column` (default `image_id`, falls back to `id`, then the row number), `group_column` (default: the id),
`license_column`, `default_license`, `subset` (Hub config name). Which columns were chosen is logged; a named
column that is missing is a one-line error listing the columns there. `splits` lists the splits to read (default:
every parquet file / every Hub split). Local parquet is streamed row group by row group with pyarrow; Hub
datasets are read with `datasets.load_dataset(..., streaming=True)` and images left undecoded.
"""

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, normalise_license, read_findings_sidecar, register_source
from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)
LAYOUTS = "a parquet file, a folder of *.parquet files (e.g. data/<split>-*.parquet) or a Hub dataset id"


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
            raise MedvlError(
                f"source {source.name!r} (hub): no *.parquet files under {path} for splits {source.splits or 'all'}; "
                f"layouts known: {LAYOUTS}"
            )
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


def _choose_columns(source: SourceConfig, row: dict, where: str) -> dict:
    """Pick the text, id, group, structured-findings and licence columns from the options and the first row."""
    names = sorted(row)

    def require(option: str, value):
        for column in [value] if isinstance(value, str) else value:
            if column not in row:
                raise MedvlError(
                    f"source {source.name!r} (hub) {where}: options.{option} {column!r} is not a column; the columns there are {names}"
                )

    image_column = source.option("image_column", "image")
    require("image_column", image_column)
    text_option = source.option("text_column")
    if text_option is not None:
        if not isinstance(text_option, str | list) or not text_option:
            raise MedvlError(
                f"source {source.name!r} (hub): options.text_column must be a column name or a list of them, got {text_option!r}"
            )
        require("text_column", text_option)
        text = [text_option] if isinstance(text_option, str) else list(text_option)
    else:
        text = next(([c] for c in ("caption", "text", "report") if c in row), None)
        if text is None:
            # The MIMIC-CXR-style report schema: free-text `findings` and `impression` sections.
            text = [c for c in ("findings", "impression") if c in row and not isinstance(row[c], list)] or None
        if text is None:
            raise MedvlError(
                f"source {source.name!r} (hub) {where}: no text column (caption, text, report, or findings + impression); "
                f"the columns there are {names}; set options.text_column"
            )
    findings_option = source.option("findings_column")
    if findings_option is not None:
        require("findings_column", findings_option)
        if findings_option in text:
            raise MedvlError(
                f"source {source.name!r} (hub): options.findings_column {findings_option!r} is also a text column"
            )
        findings = findings_option
    else:
        # A `findings` column is structured findings only when it holds lists; a string column is report text.
        findings = "findings" if isinstance(row.get("findings"), list) and "findings" not in text else None
    for option in ("id_column", "group_column", "license_column"):
        if source.option(option) is not None:
            require(option, source.option(option))
    return {
        "image": image_column,
        "text": text,
        "id": _pick(row, source.option("id_column"), "image_id", "id"),
        "group": _pick(row, source.option("group_column")),
        "findings": findings,
        "license": _pick(row, source.option("license_column"), "license"),
    }


@register_source(
    "hub",
    options=(
        "image_column",
        "text_column",
        "id_column",
        "group_column",
        "findings_column",
        "license_column",
        "default_license",
        "subset",
    ),
    layouts=LAYOUTS,
)
def load_hub(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield records from a Hub/local `datasets` dataset or parquet files, mapping columns by option.

    Args:
        source (`SourceConfig`):
            `path` is a parquet file, a folder of parquet files or a Hub id; see the module docstring for options.
    """
    findings_sidecar = read_findings_sidecar(Path(source.path)) if Path(source.path).is_dir() else {}
    default_licence = normalise_license(source.option("default_license"), default="unknown")
    columns: dict | None = None
    for file, row_index, row in _rows(source):
        if columns is None:
            columns = _choose_columns(source, row, file)
            logger.info(
                "source %s: text from %s, structured findings from %s",
                source.name,
                " + ".join(columns["text"]),
                columns["findings"] or "no column",
            )
        record_id = str(row[columns["id"]]) if columns["id"] else f"{Path(file).stem}-{row_index:08d}"
        image = _image_bytes(row.get(columns["image"]))
        findings = row.get(columns["findings"]) if columns["findings"] else None
        text = " ".join(str(row[c]).strip() for c in columns["text"] if isinstance(row.get(c), str) and row[c].strip())
        yield RawRecord(
            id=record_id,
            text=text,
            image=image,
            group_id=f"{source.name}:{row[columns['group']] if columns['group'] else record_id}",
            license=normalise_license(row.get(columns["license"]) if columns["license"] else None, default_licence),
            findings=list(findings) if findings else findings_sidecar.get(record_id, []),
            file=f"{file}#row{row_index}",
            drop_reason=None if image else "no_image",
        )
