# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A folder of DICOM files, captioned from a CSV or from the files' own tags.

`<path>/**/*.dcm`; files without the extension (CD exports: `DICOM/IM000001`, next to a `DICOMDIR` media
directory, PS3.10 §8) are found by their 128-byte preamble + `DICM` magic (`medvl_recipes.imaging.is_dicom`), and
`DICOMDIR` itself is never a record. Captions come from
`<path>/captions.csv` (option `captions_csv`) with a file column (`file_name`, `file`, `filename` or `path`,
relative to `<path>`) and a text column (`caption`, `text` or `report`).

De-identification (DICOM PS3.15 Annex E, basic profile): free-text attributes (StudyDescription, SeriesDescription,
ImageComments are all "X" = remove) are never used as text unless the recipe opts in per tag with
`options.caption_tags: [StudyDescription, ...]` (for files the CSV does not list, or every file with
`caption_from: tags`); a file without a caption is then dropped and counted. Record ids and group ids are keyed
hashes (HMAC-SHA256) of the relative path and of PatientID (else StudyInstanceUID), with a secret per dataset
that is never published: `MEDVL_DEID_KEY` from the environment, else `<path>/.medvl-deid-key` (created once,
beside the raw data). A text that contains a part of the file's PatientName is dropped as `phi_suspected`.
Pixel decoding (VOI LUT, windowing, MONOCHROME1) happens in prepare via `medvl_recipes.imaging.dicom_to_image`.
"""

import hashlib
import hmac
import os
import re
import secrets
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


# Free-text attributes a recipe may opt into as captions, in this order (all "X" in PS3.15 Table E.1-1).
CAPTION_TAGS = ("StudyDescription", "SeriesDescription", "ImageComments")
_TAGS = ["StudyInstanceUID", "PatientID", "PatientName", "Modality", "BodyPartExamined", *CAPTION_TAGS]
KEY_FILE = ".medvl-deid-key"


def _caption_from_tags(header, tags: list[str]) -> str:
    parts = [" ".join(str(getattr(header, tag, "") or "").split()) for tag in tags]
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    return ". ".join(p.rstrip(".") for p in parts)


def _deid_key(root: Path) -> bytes:
    # The key makes the published ids unlinkable to paths and PatientIDs (an unkeyed hash of a 6-digit MRN is
    # reversed by trying all 10^6); it stays with the raw data, never with the prepared dataset.
    if os.environ.get("MEDVL_DEID_KEY"):
        return os.environ["MEDVL_DEID_KEY"].encode()
    key_file = root / KEY_FILE
    if not key_file.is_file():
        try:
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        except OSError as err:
            raise MedvlError(
                f"{key_file}: cannot write the de-identification key ({err.strerror}); set MEDVL_DEID_KEY to a "
                "secret of your own (and keep it out of the dataset)"
            ) from err
    return key_file.read_text().strip().encode()


def _keyed(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:20]


def _names_in(text: str, header) -> bool:
    # Any part of PatientName (family^given^middle), 3+ letters, as a whole word of the text.
    parts = [p for p in re.split(r"[\^\s]+", str(getattr(header, "PatientName", "") or "")) if len(p) >= 3]
    return any(re.search(rf"\b{re.escape(p)}\b", text, flags=re.IGNORECASE) for p in parts)


_FILE_COLUMNS = ("file_name", "file", "filename", "path")
_TEXT_COLUMNS = ("caption", "text", "report")


def _read_captions(path: Path) -> tuple[dict[str, str], list[str]]:
    table = read_csv(path, required=[_FILE_COLUMNS, _TEXT_COLUMNS], what="DICOM captions (file_name,caption)")
    file_column = next(c for c in _FILE_COLUMNS if c in table.columns)
    text_column = next(c for c in _TEXT_COLUMNS if c in table.columns)
    captions = {Path(row[file_column] or "").as_posix(): row[text_column] or "" for _, row in table.rows}
    return captions, table.changes


@register_source("dicom", options=("captions_csv", "caption_from", "caption_tags"), layouts=LAYOUTS)
def load_dicom(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield one record per DICOM file.

    Args:
        source (`SourceConfig`):
            `path` is the folder; options `captions_csv`, `caption_from` (`csv` or `tags`) and `caption_tags`
            (the free-text tags allowed as captions, default none).
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
    caption_tags = list(source.option("caption_tags", []) or [])
    unknown = [t for t in caption_tags if t not in CAPTION_TAGS]
    if unknown:
        raise MedvlError(
            f"source {source.name!r} (dicom): options.caption_tags {unknown} are not caption tags; use some of "
            f"{list(CAPTION_TAGS)}"
        )
    if caption_from == "tags" and not caption_tags:
        raise MedvlError(
            f"source {source.name!r} (dicom): caption_from: tags needs options.caption_tags (free-text tags can hold "
            f"PHI, so each one is opted into), e.g. caption_tags: [StudyDescription]"
        )
    key = _deid_key(root)
    captions, changes = (
        _read_captions(captions_file) if captions_file.is_file() and caption_from == "csv" else ({}, [])
    )
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_dicom(p))
    if not files:
        raise MedvlError(f"source {source.name!r} (dicom): no DICOM files under {root}; layouts known: {LAYOUTS}")
    for path in files:
        relative = path.relative_to(root).as_posix()
        record_id = _keyed(key, f"file:{relative}")
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception as err:  # pydicom raises InvalidDicomError, EOFError, struct.error, ...
            yield RawRecord(
                id=record_id,
                text="",
                image=path,
                group_id=f"dicom:{record_id}",
                license="unknown",
                file=str(path),
                drop_reason="corrupt_dicom",
                meta={"error": str(err)},
            )
            continue
        text = captions.get(relative, captions.get(path.name))
        from_csv = text is not None
        if text is None:
            text = _caption_from_tags(header, caption_tags)
        # One patient's studies stay in one split; the published group id is keyed, never a PatientID or a UID.
        patient = str(getattr(header, "PatientID", "") or getattr(header, "StudyInstanceUID", "") or relative)
        modality = str(getattr(header, "Modality", "") or "") or None
        yield RawRecord(
            id=record_id,
            text=text,
            image=path,
            group_id=f"dicom:{_keyed(key, f'patient:{patient}')}",
            license=normalise_license(None, "unknown"),
            findings=findings.get(relative, findings.get(path.name, [])),
            modality=modality,
            file=str(path),
            changes=list(changes) if from_csv else [],
            drop_reason="phi_suspected" if text and _names_in(text, header) else None,
        )
