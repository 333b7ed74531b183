# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""ROCOv2: the Zenodo CSV + images release and the Hub parquet mirror (`eltorio/ROCOv2-radiology`).

CSV form (Zenodo record of ROCOv2, files `{train,valid,test}_captions.csv`, `*_concepts.csv`, `{train,valid,
test}.zip`, as copied in github.com/sctg-development/ROCOv2-radiology `source_dataset/`: `test_captions.csv` at
982165ee0c5d97ec250b0794dceceb304b6de50b, `test_concepts.csv` and `cui_mapping.csv` at
5e93de596d561ac6dcc496acc17e8efc99f945e2, images `test/ROCOv2_2023_test_000001.jpg`):
`<path>/{train,valid,test}_captions.csv` (`ID,Caption`, minimal CSV quoting, some captions start with a space),
optional `*_concepts.csv` (`ID,CUIs`, `;`-separated) and images `<path>/<split>/<ID>.jpg` (the zips unpacked;
`.png` also accepted). Parquet form (the Hub mirror's `data/<split>-0000n-of-0000m.parquet`, splits train,
validation, test; features `image` {bytes, path}, `image_id`, `caption`, `cui` (sequence of strings), per its
README's dataset_info at revision 80ffeef4eb8d34d27cb5c2815305f1d8aee8a83c): `<path>/data/<split>-*.parquet` or
`<path>/*.parquet`. Each image is its own group (the release has no article
ids). Licence defaults to `cc-by-nc-sa-4.0`, as on the Hub mirror.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, read_findings_sidecar, register_source, require_dir
from medvl_recipes.data.sources.hub import iter_parquet_rows
from medvl_recipes.data.text_files import read_csv
from medvl_recipes.errors import MedvlError


DEFAULT_LICENSE = "cc-by-nc-sa-4.0"
LAYOUTS = (
    "<path>/data/<split>-*.parquet or <path>/*.parquet (image, image_id, caption, cui); or the Zenodo "
    "<path>/{train,valid,test}_captions.csv (ID,Caption) with images in <path>/<split>/<ID>.jpg (or .png)"
)
PARQUET_COLUMNS = ["image", "image_id", "caption", "cui"]
_CSV_SPLITS = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}


def _parquet_files(root: Path, splits: list[str] | None) -> list[Path]:
    folder = root / "data" if (root / "data").is_dir() else root
    files = sorted(folder.glob("*.parquet"))
    if splits:
        files = [f for f in files if f.name.split("-")[0] in splits]
    return files


@register_source("rocov2", layouts=LAYOUTS)
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
            columns = pq.ParquetFile(file).schema_arrow.names
            missing = [c for c in ("image", "image_id", "caption") if c not in columns]
            if missing:
                raise MedvlError(
                    f"source {source.name!r} (rocov2): {file} lacks column(s) {missing}; the columns there are "
                    f"{columns}; use `type: hub` with options.text_column/id_column for other schemas"
                )
            for row_index, row in iter_parquet_rows(file, PARQUET_COLUMNS):
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
            table = read_csv(concepts_file, required=["ID"], what="ROCOv2 concepts (ID,CUIs)")
            concepts = {
                (r["ID"] or "").strip(): [c.strip() for c in (r.get("CUIs") or "").split(";") if c.strip()]
                for _, r in table.rows
            }
        table = read_csv(captions, required=["ID", "Caption"], what="ROCOv2 captions (ID,Caption)")
        for line_number, row in table.rows:
            image_id = (row["ID"] or "").strip()
            candidates = [root / split / f"{image_id}{ext}" for ext in (".jpg", ".png", ".jpeg")]
            # A missing file keeps its expected path, so that the error for a source that keeps 0 shows it.
            image = next((p for p in candidates if p.is_file()), candidates[0])
            yield RawRecord(
                id=image_id,
                text=row.get("Caption") or "",
                image=image,
                group_id=f"rocov2:{image_id}",
                license=licence,
                findings=findings.get(image_id, []),
                file=f"{captions}:{line_number}",
                meta={"cuis": concepts.get(image_id, [])},
                changes=list(table.changes),
                drop_reason=None if image.is_file() else "missing_image",
            )
    if not found:
        raise MedvlError(
            f"source {source.name!r} (rocov2): {root} has neither data/*.parquet nor <split>_captions.csv files "
            f"for splits {splits}; layouts known: {LAYOUTS}"
        )
