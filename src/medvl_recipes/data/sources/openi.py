# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""IU X-Ray / Open-I: the NLM XML reports and the Kaggle CSV variant.

XML form: `<path>/ecgen-radiology/<n>.xml` (one report each, zero or more `parentImage`), images
`<path>/NLMCXR_png/<parentImage id>.png`. Kaggle form (raddar/chest-xrays-indiana-university):
`<path>/indiana_reports.csv` (`uid,MeSH,Problems,image,indication,comparison,findings,impression`),
`<path>/indiana_projections.csv` (`uid,filename,projection`) and the PNGs anywhere below `<path>`.

One record per image; all images of a report share its group (`openi:CXR<n>`) and text. `text_field`:
`findings` (default), `impression` or `both` ("findings impression"); option `fallback_to_impression`
(default true) uses the impression when the findings are empty. A report without images is yielded once
with `drop_reason="no_image"`.
"""

import csv
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
from medvl_recipes.errors import MedvlError


DEFAULT_LICENSE = "cc-by-nc-nd-4.0"


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


def _kaggle_reports(root: Path) -> Iterator[tuple[str, str, str, list[str], list[str], str]]:
    reports = root / "indiana_reports.csv"
    projections: dict[str, list[str]] = {}
    with (root / "indiana_projections.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            projections.setdefault(row["uid"].strip(), []).append(row["filename"].strip())
    with reports.open(encoding="utf-8", newline="") as handle:
        for line_number, row in enumerate(csv.DictReader(handle), start=2):
            uid = row["uid"].strip()
            yield (
                f"CXR{uid}",
                row.get("findings") or "",
                row.get("impression") or "",
                projections.get(uid, []),
                [m for m in (row.get("MeSH") or "").split(";") if m],
                f"{reports}:{line_number}",
            )


@register_source("openi")
def load_openi(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield IU X-Ray / Open-I records (one per image). See the module docstring for layouts and options.

    Args:
        source (`SourceConfig`):
            `path` holds `ecgen-radiology/` + `NLMCXR_png/`, or the Kaggle CSVs + images.
    """
    root = require_dir(Path(source.path), "openi")
    text_field = source.text_field or "findings"
    if text_field not in {"findings", "impression", "both"}:
        raise MedvlError(f"source {source.name!r}: text_field must be findings|impression|both, got {text_field!r}")
    fallback = bool(source.option("fallback_to_impression", True))
    findings = read_findings_sidecar(root)
    licence = normalise_license(None, DEFAULT_LICENSE)
    if (root / "ecgen-radiology").is_dir():
        reports = _xml_reports(root)

        def image_path(name: str) -> Path:
            return root / "NLMCXR_png" / f"{name}.png"

    elif (root / "indiana_reports.csv").is_file():
        reports = _kaggle_reports(root)
        index = {p.name: p for p in sorted(root.rglob("*.png"))}

        def image_path(name: str) -> Path:
            return index.get(name, root / "images" / name)

    else:
        raise MedvlError(f"source 'openi': {root} has neither ecgen-radiology/ nor indiana_reports.csv")
    for uid, findings_text, impression, images, mesh, file in reports:
        text = _choose_text(findings_text, impression, text_field, fallback)
        common = {"group_id": f"openi:{uid}", "license": licence, "findings": findings.get(uid, []), "file": file}
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
