# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A folder of DICOM files, captioned from a CSV or from the files' own tags.

`<path>/**/*.dcm`; files without the extension (CD exports: `DICOM/IM000001`, next to a `DICOMDIR` media
directory, PS3.10 §8) are found by their 128-byte preamble + `DICM` magic (`medvl_recipes.imaging.is_dicom`), and
`DICOMDIR` itself is never a record. Captions come from
`<path>/captions.csv` (option `captions_csv`) with a file column (`file_name`, `file`, `filename` or `path`,
relative to `<path>`) and a text column (`caption`, `text` or `report`); files it does not list, or every file
when `options.caption_from: tags`, are captioned from StudyDescription / SeriesDescription / ImageComments.
Records are grouped by StudyInstanceUID (else PatientID, else the file). Pixel decoding (VOI LUT, windowing,
MONOCHROME1) happens in prepare via `medvl_recipes.imaging.dicom_to_image`.
"""

import hashlib
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
from medvl_recipes.data.text_files import read_csv
from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import is_dicom


LAYOUTS = (
    "DICOM files anywhere below <path> (*.dcm, or CD-style files without extension such as DICOM/IM000001, "
    "found by their DICM preamble; DICOMDIR is skipped), captioned by <path>/captions.csv or their tags"
)


_TAGS = [
    "StudyInstanceUID",
    "PatientID",
    "Modality",
    "StudyDescription",
    "SeriesDescription",
    "ImageComments",
    "BodyPartExamined",
]


def _caption_from_tags(header) -> str:
    parts = [str(getattr(header, tag, "") or "").strip() for tag in ("StudyDescription", "SeriesDescription")]
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    comments = str(getattr(header, "ImageComments", "") or "").strip()
    text = ", ".join(parts)
    return f"{text}. {comments}".strip(". ") if comments else text


_FILE_COLUMNS = ("file_name", "file", "filename", "path")
_TEXT_COLUMNS = ("caption", "text", "report")


def _read_captions(path: Path) -> tuple[dict[str, str], list[str]]:
    table = read_csv(path, required=[_FILE_COLUMNS, _TEXT_COLUMNS], what="DICOM captions (file_name,caption)")
    file_column = next(c for c in _FILE_COLUMNS if c in table.columns)
    text_column = next(c for c in _TEXT_COLUMNS if c in table.columns)
    captions = {Path(row[file_column] or "").as_posix(): row[text_column] or "" for _, row in table.rows}
    return captions, table.changes


@register_source("dicom", options=("captions_csv", "caption_from"), layouts=LAYOUTS)
def load_dicom(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield one record per DICOM file.

    Args:
        source (`SourceConfig`):
            `path` is the folder; options `captions_csv` and `caption_from` (`csv` or `tags`).
    """
    import pydicom

    root = require_dir(Path(source.path), "dicom")
    findings = read_findings_sidecar(root)
    captions_file = root / source.option("captions_csv", "captions.csv")
    caption_from = source.option("caption_from", "csv")
    if caption_from not in {"csv", "tags"}:
        raise MedvlError(
            f"source {source.name!r} (dicom): options.caption_from must be csv|tags, got {caption_from!r}"
        )
    captions, changes = (
        _read_captions(captions_file) if captions_file.is_file() and caption_from == "csv" else ({}, [])
    )
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_dicom(p))
    if not files:
        raise MedvlError(f"source {source.name!r} (dicom): no DICOM files under {root}; layouts known: {LAYOUTS}")
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception as err:  # pydicom raises InvalidDicomError, EOFError, struct.error, ...
            yield RawRecord(
                id=relative,
                text="",
                image=path,
                group_id=f"dicom:{relative}",
                license="unknown",
                file=str(path),
                drop_reason="corrupt_dicom",
                meta={"error": str(err)},
            )
            continue
        text = captions.get(relative, captions.get(path.name))
        from_csv = text is not None
        if text is None:
            text = _caption_from_tags(header)
        # One patient's studies stay in one split. The published `group_id` is a hash: a PatientID or a raw UID is
        # itself identifying (DICOM PS3.15 basic profile) and the prepared dataset is meant to be pushed.
        patient = str(getattr(header, "PatientID", "") or getattr(header, "StudyInstanceUID", "") or relative)
        group = hashlib.sha256(f"medvl-dicom-group:{patient}".encode()).hexdigest()[:16]
        modality = str(getattr(header, "Modality", "") or "") or None
        yield RawRecord(
            id=relative,
            text=text,
            image=path,
            group_id=f"dicom:{group}",
            license=normalise_license(None, "unknown"),
            findings=findings.get(relative, findings.get(path.name, [])),
            modality=modality,
            file=str(path),
            changes=list(changes) if from_csv else [],
        )
