# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""IU X-Ray / Open-I: the NLM XML reports and the Kaggle CSV variant.

XML form (Open-I archives `NLMCXR_reports.tgz`, `NLMCXR_png.tgz`): `NLMCXR_reports.tgz` unpacks to
`ecgen-radiology/<n>.xml` (one report each, zero or more `parentImage`); `NLMCXR_png.tgz` has NO top folder, so
`tar xf` puts `<parentImage id>.png` wherever it is run. The images are therefore looked up in option
`image_dir` (relative to `<path>`) when set, else in `<path>/NLMCXR_png/` (made by hand, as many public loaders
do) and beside `ecgen-radiology/` in `<path>` itself. Kaggle form (raddar/chest-xrays-indiana-university):
`<path>/indiana_reports.csv` (`uid,MeSH,Problems,image,indication,comparison,findings,impression`),
`<path>/indiana_projections.csv` (`uid,filename,projection`) and the PNGs anywhere below `<path>`
(`images/images_normalized/<filename>` as unpacked).

One record per image; all images of a report share its group (`openi:CXR<n>`) and text. `text_field`:
`findings` (default), `impression` or `both` ("findings impression"); option `fallback_to_impression`
(default true) uses the impression when the findings are empty. A report without images is yielded once
with `drop_reason="no_image"`.
"""

import xml.etree.ElementTree as ET
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


DEFAULT_LICENSE = "cc-by-nc-nd-4.0"
LAYOUTS = (
    "<path>/ecgen-radiology/*.xml with PNGs in <path>/NLMCXR_png/, beside ecgen-radiology/ or in options.image_dir; "
    "or the Kaggle <path>/indiana_reports.csv + indiana_projections.csv with PNGs below <path>"
)


def _choose_text(findings: str, impression: str, text_field: str, fallback: bool) -> str:
    findings, impression = (findings or "").strip(), (impression or "").strip()
    if text_field == "impression":
        return impression
    if text_field == "both":
        return " ".join(t for t in (findings, impression) if t)
    return findings or (impression if fallback else "")


def _xml_reports(root: Path) -> Iterator[tuple[str, str, str, list[str], list[str], str]]:
    report_dir = root / "ecgen-radiology"
    for xml_path in sorted(report_dir.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
        try:
            tree = ET.parse(xml_path).getroot()
        except ET.ParseError as err:
            raise MedvlError(f"{xml_path}: not valid XML ({err}); re-extract NLMCXR_reports.tgz") from err
        uid_element = tree.find("uId")
        uid = uid_element.get("id") if uid_element is not None else f"CXR{xml_path.stem}"
        sections = {
            (element.get("Label") or "").upper(): "".join(element.itertext()) for element in tree.iter("AbstractText")
        }
        images = [element.get("id") for element in tree.iter("parentImage") if element.get("id")]
        mesh = [element.text.strip() for element in tree.iter("major") if element.text]
        yield uid, sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""), images, mesh, str(xml_path)


def _kaggle_reports(root: Path, changes: list[str]) -> Iterator[tuple[str, str, str, list[str], list[str], str]]:
    projections: dict[str, list[str]] = {}
    table = read_csv(root / "indiana_projections.csv", required=["uid", "filename"], what="indiana_projections.csv")
    changes.extend(table.changes)
    for _, row in table.rows:
        projections.setdefault((row["uid"] or "").strip(), []).append((row["filename"] or "").strip())
    reports = read_csv(
        root / "indiana_reports.csv", required=["uid", ("findings", "impression")], what="indiana_reports.csv"
    )
    changes.extend(c for c in reports.changes if c not in changes)
    for line_number, row in reports.rows:
        uid = (row["uid"] or "").strip()
        yield (
            f"CXR{uid}",
            row.get("findings") or "",
            row.get("impression") or "",
            projections.get(uid, []),
            [m for m in (row.get("MeSH") or "").split(";") if m],
            f"{reports.path}:{line_number}",
        )


@register_source("openi", options=("fallback_to_impression", "image_dir"), layouts=LAYOUTS)
def load_openi(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield IU X-Ray / Open-I records (one per image). See the module docstring for layouts and options.

    Args:
        source (`SourceConfig`):
            `path` holds `ecgen-radiology/` (+ the PNGs, see the module docstring), or the Kaggle CSVs + images;
            options `fallback_to_impression` (default true) and `image_dir`.
    """
    root = require_dir(Path(source.path), "openi")
    text_field = source.text_field or "findings"
    if text_field not in {"findings", "impression", "both"}:
        raise MedvlError(f"source {source.name!r}: text_field must be findings|impression|both, got {text_field!r}")
    fallback = bool(source.option("fallback_to_impression", True))
    findings = read_findings_sidecar(root)
    licence = normalise_license(None, DEFAULT_LICENSE)
    changes: list[str] = []
    image_dir = source.option("image_dir")
    if image_dir is not None and not (root / image_dir).is_dir():
        raise MedvlError(f"source {source.name!r} (openi): options.image_dir {root / image_dir} is not a folder")
    if (root / "ecgen-radiology").is_dir():
        reports = _xml_reports(root)
        folders = [root / image_dir] if image_dir is not None else [root / "NLMCXR_png", root]

        def image_path(name: str) -> Path:
            candidates = [folder / f"{name}.png" for folder in folders]
            return next((p for p in candidates if p.is_file()), candidates[0])

    elif (root / "indiana_reports.csv").is_file():
        reports = _kaggle_reports(root, changes)
        index = {p.name: p for p in sorted((root / image_dir if image_dir else root).rglob("*.png"))}

        def image_path(name: str) -> Path:
            return index.get(name, root / "images" / "images_normalized" / name)

    else:
        raise MedvlError(
            f"source {source.name!r} (openi): {root} has neither ecgen-radiology/ nor indiana_reports.csv; "
            f"layouts known: {LAYOUTS}"
        )
    for uid, findings_text, impression, images, mesh, file in reports:
        text = _choose_text(findings_text, impression, text_field, fallback)
        common = {
            "group_id": f"openi:{uid}",
            "license": licence,
            "findings": findings.get(uid, []),
            "file": file,
            "changes": list(changes),
        }
        if not images:
            yield RawRecord(id=uid, text=text, image=None, modality="CR", drop_reason="no_image", **common)
            continue
        for name in images:
            yield RawRecord(
                id=Path(name).stem if name.endswith(".png") else name,
                text=text,
                image=image_path(name),
                modality="CR",
                meta={"uid": uid, "mesh": mesh},
                **common,
            )
