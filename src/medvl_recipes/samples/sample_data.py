# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl sample-data`: write raw sample sources in the public datasets' own on-disk formats.

The images are phantom studies with known findings (`medvl_recipes.samples.phantoms`) mixed with the real DICOM
images shipped by pydicom-data / pydicom's test files. Each source gets the layout of its public release
(ROCO, ROCOv2 parquet + CSV, MedPix 2.0, Open-I XML, PMC-OA JSONL + images.zip, raw DICOM), a `findings.jsonl` sidecar with the phantoms'
ground truth and, on purpose, the gotchas of the real data (junk captions, "XXXX" de-identification tokens,
reports without images or FINDINGS, ROCO/ROCOv2 overlap, repeated reports), all counted in `MANIFEST.json`.

Output is byte-identical for a seed: every file is written in sorted order without timestamps.

    medvl sample-data --output-dir data/raw --seed 0 --num-studies 300
"""

import argparse
import csv
import hashlib
import io
import json
import logging
import shutil
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageEnhance

from medvl_recipes.data.sources.dicom import KEY_FILE
from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import dicom_tags_caption, dicom_to_image, read_dicom
from medvl_recipes.samples.phantoms import STUDY_TYPES, StudySpec, render_study, sample_spec


logger = logging.getLogger(__name__)

SOURCES = ("roco", "rocov2", "rocov2_csv", "medpix", "openi", "pmc_oa", "dicom")
MIN_STUDIES = 40
REAL_MAX_SIDE = 384

# Real DICOM files that decode with plain pydicom + numpy: (file name, where the image also goes).
# data_store = pydicom-data; testdata = pydicom's bundled test files.
REAL_DICOM = (
    ("data_store", "RG1_UNCR.dcm", "roco"),
    ("data_store", "RG3_UNCR.dcm", "roco"),
    ("data_store", "MR2_UNCR.dcm", "medpix"),
    ("data_store", "693_UNCR.dcm", "medpix"),
    ("data_store", "emri_small.dcm", "medpix"),
    ("data_store", "MR-SIEMENS-DICOM-WithOverlays.dcm", "medpix"),
    ("data_store", "US1_UNCR.dcm", "rocov2"),
    ("data_store", "color-px.dcm", "rocov2"),
    ("data_store", "mlut_18.dcm", None),
    ("data_store", "vlut_04.dcm", None),
    ("testdata", "CT_small.dcm", "medpix"),
    ("testdata", "MR_small.dcm", "rocov2"),
)

# Which phantom study types each source holds, and its share of the phantoms.
_SOURCE_TYPES = {
    "openi": ("chest_xr_pa",),
    "medpix": ("chest_ct", "head_ct", "abdomen_ct", "brain_mr"),
    "roco": tuple(STUDY_TYPES),
    "rocov2": tuple(STUDY_TYPES),
    "pmc_oa": tuple(STUDY_TYPES),
}
# rocov2 takes what the others leave (about 0.35); pmc_oa is allocated last so the other sources keep their seeds.
# Open-I's share follows the real mixture (recipes/data/roco_medpix_openi.yaml): IU X-Ray's 7,470 images are about 8%
# of it beside ROCO's 81,825 radiology images; 5% of the studies, with two views each, are 8% of the prepared sample.
# Its reports name no modality: at 22% of the studies (until round 2, session 7) they were 73% of the training chest
# radiographs (27% now), and the decoder learned to leave the modality out of chest radiograph reports
# (docs/benchmarks.md, "Decoder grounding").
_SOURCE_SHARE = {"openi": 0.05, "medpix": 0.18, "roco": 0.36, "rocov2": 0.35, "pmc_oa": 0.06}
# Open-I reports n = 1..7 hold each of its gotchas (see `_sample_openi`), whatever the number of studies.
_MIN_OPENI_REPORTS = 7
# Phantoms written as DICOM: one per entry, each exercising a different pixel encoding.
_DICOM_PHANTOMS = (
    ("chest_xr_pa", "mono1_16bit_voi"),
    ("head_ct", "ct_rescale_window"),
    ("brain_mr", "mono2_16bit_nowindow"),
    ("knee_xr", "mono2_8bit"),
    ("chest_ct", "ct_multiframe"),
    ("hand_xr", "mono2_8bit"),
)

# UMLS concepts used by the ROCO/ROCOv2 concept files (CUI, canonical name, semantic type code, type name).
_CONCEPTS = {
    "radiograph": ("C1306645", "Plain x-ray", "T060", "Diagnostic Procedure"),
    "x-ray": ("C1306645", "Plain x-ray", "T060", "Diagnostic Procedure"),
    "ct": ("C0040405", "X-Ray Computed Tomography", "T060", "Diagnostic Procedure"),
    "computed tomography": ("C0040405", "X-Ray Computed Tomography", "T060", "Diagnostic Procedure"),
    "mri": ("C0024485", "Magnetic Resonance Imaging", "T060", "Diagnostic Procedure"),
    "mr": ("C0024485", "Magnetic Resonance Imaging", "T060", "Diagnostic Procedure"),
    "ultrasound": ("C0041618", "Ultrasonography", "T060", "Diagnostic Procedure"),
    "chest": ("C0817096", "Chest", "T029", "Body Location or Region"),
    "head": ("C0018670", "Head", "T029", "Body Location or Region"),
    "abdomen": ("C0000726", "Abdomen", "T029", "Body Location or Region"),
    "brain": ("C0006104", "Brain", "T023", "Body Part, Organ, or Organ Component"),
    "knee": ("C0022742", "Knee", "T029", "Body Location or Region"),
    "hand": ("C0018563", "Hand", "T029", "Body Location or Region"),
    "lung": ("C0024109", "Lung", "T023", "Body Part, Organ, or Organ Component"),
    "liver": ("C0023884", "Liver", "T023", "Body Part, Organ, or Organ Component"),
    "kidney": ("C0022646", "Kidney", "T023", "Body Part, Organ, or Organ Component"),
    "rib": ("C0035561", "Bone structure of rib", "T023", "Body Part, Organ, or Organ Component"),
    "nodule": ("C0028259", "Nodule", "T033", "Finding"),
    "mass": ("C0577559", "Mass of body structure", "T033", "Finding"),
    "pleural effusion": ("C0032227", "Pleural effusion disorder", "T047", "Disease or Syndrome"),
    "pneumothorax": ("C0032326", "Pneumothorax", "T047", "Disease or Syndrome"),
    "cardiomegaly": ("C0018800", "Cardiomegaly", "T019", "Congenital Abnormality"),
    "consolidation": ("C0521530", "Lung consolidation", "T046", "Pathologic Function"),
    "fracture": ("C0016658", "Fracture", "T037", "Injury or Poisoning"),
}
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "is",
        "are",
        "there",
        "no",
        "with",
        "and",
        "or",
        "to",
        "on",
        "at",
        "by",
        "as",
        "be",
        "seen",
        "present",
        "evidence",
        "consistent",
        "this",
    ]
)
_MEDPIX_INFO = {
    "chest_ct": ("CT", "TAC", "CT - noncontrast", "Chest, Pulmonary", "Thorax"),
    "head_ct": ("CT", "TAC", "CT - noncontrast", "Brain and Neuro", "Neuro"),
    "abdomen_ct": ("CT", "TAC", "CT w/contrast (IV)", "Abdomen, Hepatobiliary", "Abdomen"),
    "brain_mr": ("MR", "MRI", "MR - T2 weighted", "Brain and Neuro", "Neuro"),
}
_JUNK_CAPTIONS = ("IN PROGRESS", "pelvis", "IN PROGRESS")
_INDICATIONS = (
    "XXXX-year-old male with cough.",
    "XXXX-year-old female with chest pain.",
    "Shortness of breath.",
    "XXXX with fever.",
    "Preoperative evaluation.",
)
_PMC_FILE_STEMS = ("poljradiol", "CRIONM2014", "jcis", "ccr3", "rcr", "AJCR")
_LICENCES = ("CC BY", "CC BY", "CC BY", "CC BY-NC", "CC0", "NO-CC CODE")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Level 1: a third of the encode time of the default for ~15% larger files.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, subsampling=0)
    return buffer.getvalue()


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="\n")
    else:
        path.write_bytes(data)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write(path, buffer.getvalue())


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    _write(path, "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))


def _slashed_json(obj) -> str:
    # The MedPix release escapes "/" as "\/" (PHP json_encode); both forms are valid JSON.
    return json.dumps(obj, ensure_ascii=False).replace("/", "\\/")


def _concepts(text: str) -> list[tuple[str, str, str, str]]:
    lowered = text.lower()
    seen: dict[str, tuple] = {}
    for term, concept in _CONCEPTS.items():
        if f" {term} " in f" {lowered.replace('.', ' ').replace(',', ' ')} " and concept[0] not in seen:
            seen[concept[0]] = concept
    return list(seen.values())


def _keywords(text: str) -> list[str]:
    words = []
    for raw in text.lower().replace(",", " ").replace(".", " ").split():
        # ROCO's keyword extraction truncates plurals crudely ("pelvis" -> "pelvi"); mimic it.
        word = raw[:-1] if raw.endswith("s") and len(raw) > 4 else raw
        if word not in _STOPWORDS and word not in words and word.isascii():
            words.append(word)
    return words


def _findings_line(record_id: str, findings: list[dict]) -> dict:
    return {"id": record_id, "findings": [dict(f) for f in findings]}


def _lateral_spec(spec: StudySpec) -> StudySpec:
    """The lateral view of a PA study: only what a lateral shows (effusion, heart size) is drawn."""
    visible = [
        {"finding": f["finding"], "site": None, "present": True}
        for f in spec.present
        if f["finding"] in ("pleural effusion", "cardiomegaly")
    ]
    width, height = spec.size
    return StudySpec(
        study_type="chest_xr_lateral",
        seed=spec.seed + 7,
        size=(min(384, int(width * 0.95)), height),
        header="",
        sentences=[],
        impression="",
        findings=visible,
        severity=spec.severity,
    )


def _real_dicom_path(store: str, name: str) -> Path:
    if store == "data_store":
        import data_store

        return Path(data_store.__file__).parent / "data" / name
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name))


def _real_records() -> list[dict]:
    try:
        paths = [(_real_dicom_path(store, name), target) for store, name, target in REAL_DICOM]
    except ImportError as err:
        raise MedvlError(
            "sample-data needs the real DICOM files of pydicom-data: `pip install 'medvl-recipes[sample]'`."
        ) from err
    records = []
    for path, target in paths:
        ds = read_dicom(path)
        image = dicom_to_image(path)
        image.thumbnail((REAL_MAX_SIDE, REAL_MAX_SIDE), Image.LANCZOS)
        records.append(
            {
                "path": path,
                "target": target,
                "image": image,
                "caption": dicom_tags_caption(ds),
                "modality": str(ds.get("Modality", "OT")),
            }
        )
    return records


def _allocate(num_studies: int, seed: int) -> dict[str, list[StudySpec]]:
    """Sample the phantom specs of each source; study `i` has seed `seed * 1_000_003 + i`."""
    n_dicom = len(_DICOM_PHANTOMS)
    rest = num_studies - n_dicom
    counts = {name: int(rest * share) for name, share in _SOURCE_SHARE.items()}
    counts["openi"] = max(counts["openi"], _MIN_OPENI_REPORTS)
    counts["rocov2"] += rest - sum(counts.values())
    plan = [("dicom", t) for t, _ in _DICOM_PHANTOMS]
    for source in ("openi", "medpix", "roco", "rocov2", "pmc_oa"):
        plan += [(source, None)] * counts[source]
    allocation: dict[str, list[StudySpec]] = {s: [] for s in ("dicom", *counts)}
    for index, (source, forced) in enumerate(plan):
        study_seed = seed * 1_000_003 + index
        if forced is None:
            choices = _SOURCE_TYPES[source]
            weights = np.array([_TYPE_WEIGHTS_FOR[source].get(t, 1.0) for t in choices])
            pick = np.random.default_rng([study_seed, 0xA110C]).choice(len(choices), p=weights / weights.sum())
            forced = choices[int(pick)]
        allocation[source].append(sample_spec(study_seed, forced))
    return allocation


_TYPE_WEIGHTS_FOR = {
    "openi": {"chest_xr_pa": 1.0},
    "medpix": {"chest_ct": 0.3, "head_ct": 0.25, "abdomen_ct": 0.25, "brain_mr": 0.2},
    "roco": {
        "chest_xr_pa": 0.22,
        "chest_xr_lateral": 0.1,
        "chest_ct": 0.16,
        "head_ct": 0.12,
        "abdomen_ct": 0.12,
        "brain_mr": 0.1,
        "knee_xr": 0.09,
        "hand_xr": 0.09,
    },
}
_TYPE_WEIGHTS_FOR["rocov2"] = _TYPE_WEIGHTS_FOR["pmc_oa"] = _TYPE_WEIGHTS_FOR["roco"]


def _interleave(items: list, extra: list) -> list:
    """Spread `extra` evenly through `items` so that real images land in every split."""
    merged = list(items)
    for k, item in enumerate(extra):
        merged.insert(min(len(merged), (k * 2 + 1) * len(items) // (2 * len(extra)) + k), item)
    return merged


def _split_of(index: int, total: int, splits: tuple[str, ...], fractions: tuple[float, ...]) -> str:
    edge = 0.0
    for split, fraction in zip(splits, fractions, strict=True):
        edge += fraction
        if index < round(edge * total):
            return split
    return splits[-1]


def _write_roco(root: Path, items: list[dict], rng: np.random.Generator) -> dict:
    """ROCO: data/<split>/radiology/{captions,keywords,cuis,semtypes,dlinks,licences}.txt + images/."""
    by_split: dict[str, list[dict]] = {"train": [], "validation": []}
    for index, item in enumerate(items):
        by_split[_split_of(index, len(items), ("train", "validation"), (0.8, 0.2))].append(item)
    findings_rows = []
    for split, rows in by_split.items():
        folder = root / "data" / split / "radiology"
        lines = {k: [] for k in ("captions", "keywords", "cuis", "semtypes", "dlinks")}
        licences = []
        for item in rows:
            roco_id, pmcid, image_name = item["roco_id"], item["pmcid"], item["image_name"]
            concepts = _concepts(item["text"])
            lines["captions"].append(f"{roco_id}\t {item['text']}")
            lines["keywords"].append("\t".join([roco_id, "", *_keywords(item["text"])]))
            lines["cuis"].append("\t".join([roco_id, "", *(c[0] for c in concepts)]))
            lines["semtypes"].append("\t".join([roco_id, "", *(x for c in concepts for x in (c[2], c[3]))]))
            url = f"ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/{pmcid[-2:]}/{pmcid[-4:-2]}/{pmcid}.tar.gz"
            lines["dlinks"].append(f"{roco_id}\twget -r {url} -P /path/to/Dir\t{image_name}")
            licences.append([roco_id, f"{pmcid}_{image_name}", item["licence"]])
            # razorx89/roco-dataset scripts/fetch.py (a1f0ad6, since 2022) saves images/<ROCO_ID>.jpg.
            _write(folder / "images" / f"{roco_id}.jpg", item["jpeg"])
            if item.get("findings") is not None:
                findings_rows.append(_findings_line(roco_id, item["findings"]))
        for name, content in lines.items():
            _write(folder / f"{name}.txt", "".join(line + "\n" for line in content))
        _write_csv(folder / "licences.txt", ["ROCO_ID", "PMC_ID", "CC"], licences)
    _write_jsonl(root / "findings.jsonl", sorted(findings_rows, key=lambda r: r["id"]))
    return {split: len(rows) for split, rows in by_split.items()}


def _write_rocov2(root: Path, csv_root: Path, items: list[dict]) -> tuple[dict, int]:
    """ROCOv2: Hub parquet (data/<split>-00000-of-00001.parquet) and the Zenodo CSV form for a few records."""
    from datasets import Dataset, Features, Sequence, Value
    from datasets import Image as ImageFeature
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    features = Features(
        {
            "image": ImageFeature(),
            "image_id": Value("string"),
            "caption": Value("string"),
            "cui": Sequence(Value("string")),
        }
    )
    by_split: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for item in items:
        by_split[item["split"]].append(item)
    findings_rows = []
    for split, rows in by_split.items():
        rows.sort(key=lambda r: r["image_id"])
        table = {
            "image": [{"bytes": r["image_bytes"], "path": r["image_id"] + r["ext"]} for r in rows],
            "image_id": [r["image_id"] for r in rows],
            "caption": [r["text"] for r in rows],
            "cui": [[c[0] for c in _concepts(r["text"])] for r in rows],
        }
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        # A progress bar per tiny file is noise in the sample-data log.
        bars_were_disabled = are_progress_bars_disabled()
        disable_progress_bars()
        try:
            Dataset.from_dict(table, features=features).to_parquet(str(path))
        finally:
            if not bars_were_disabled:
                enable_progress_bars()
        findings_rows += [_findings_line(r["image_id"], r["findings"]) for r in rows if r.get("findings") is not None]
    _write_jsonl(root / "findings.jsonl", sorted(findings_rows, key=lambda r: r["id"]))

    # The Zenodo release as consumed by the ImageCLEF code: a handful of train records are enough to test it.
    few = by_split["train"][:8]
    _write_csv(csv_root / "train_captions.csv", ["ID", "Caption"], [[r["image_id"], r["text"]] for r in few])
    _write_csv(
        csv_root / "train_concepts.csv",
        ["ID", "CUIs"],
        [[r["image_id"], ";".join(c[0] for c in _concepts(r["text"]))] for r in few],
    )
    mapping = sorted({(c[0], c[1]) for c in _CONCEPTS.values()})
    _write_csv(csv_root / "cui_mapping.csv", ["CUI", "Canonical name"], [list(m) for m in mapping])
    for r in few:
        _write(csv_root / "train" / f"{r['image_id']}.png", _png_bytes(r["pil"]))
    _write_jsonl(
        csv_root / "findings.jsonl",
        sorted(
            (_findings_line(r["image_id"], r["findings"]) for r in few if r.get("findings") is not None),
            key=lambda r: r["id"],
        ),
    )
    return {split: len(rows) for split, rows in by_split.items()}, len(few)


def _medpix_description(case: dict) -> dict:
    # One entry of Descriptions.json / descriptions_<split>.jsonl, with the release's keys.
    return {
        "Type": case["type"],
        "U_id": case["uid"],
        "image": case["image"],
        "Description": {
            "ACR Codes": "-1.-1",
            "Age": case["age"],
            "Caption": case["caption"],
            "Figure Part": case["figure_part"],
            "Modality": case["modality_text"],
            "Plane": "Axial",
            "Sex": case["sex"],
        },
        "Location": case["location"],
        "Location Category": case["location_category"],
    }


def _medpix_case_topic(case: dict) -> dict:
    # One entry of Case_topic.json / data_<split>.jsonl, with the release's keys.
    return {
        "U_id": case["uid"],
        "TAC": [case["image"]] if case["list_type"] == "TAC" else [],
        "MRI": [case["image"]] if case["list_type"] == "MRI" else [],
        "Case": {
            "Case Diagnosis": case["diagnosis"],
            "Diagnosis By": "Imaging",
            "Differential Diagnosis": "N/A",
            "Discussion": "N/A",
            "Exam": "N/A",
            "Findings": case["findings_text"],
            "History": f"{case['age']} year-old {case['sex']}.",
            "Media": None,
            "Title": case["diagnosis"],
            "Treatment & Follow Up": "N/A",
        },
        "Topic": {
            "ACR Code": "-1",
            "Category": "Unsure",
            "Disease Discussion": "N/A",
            "External Links": "https://medpix.nlm.nih.gov/",
            "Keywords": case["diagnosis"].rstrip(".").lower(),
            "Reference": "N/A",
            "Title": case["diagnosis"],
        },
    }


def _write_medpix(root: Path, cases: list[dict]) -> dict:
    """MedPix 2.0: images/, images_overview.csv, Case_topic.json, Descriptions.json, splitted_dataset/."""
    base = root / "MedPix-2-0"
    descriptions, case_topics, overview, findings_rows = [], [], [], []
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for index, case in enumerate(cases):
        split = _split_of(index, len(cases), ("train", "dev", "test"), (0.7, 0.15, 0.15))
        case["split"] = split
        splits[split].append(case["uid"])
        _write(base / "images" / f"{case['image']}.png", _png_bytes(case["pil"]))
        overview.append(
            [
                case["list_type"],
                case["uid"],
                case["image"],
                f"https://medpix.nlm.nih.gov/images/full/{case['image'].split('_')[1]}.jpg",
                f"https://medpix.nlm.nih.gov/case?id={case['uid']}",
            ]
        )
        descriptions.append(_medpix_description(case))
        case_topics.append(_medpix_case_topic(case))
        if case.get("findings") is not None:
            findings_rows.append(_findings_line(case["image"], case["findings"]))
    _write_csv(base / "images_overview.csv", ["Type", "U_id", "ID_Image", "Img_Large", "URL_Article_image"], overview)
    _write(base / "Case_topic.json", _slashed_json(case_topics))
    _write(base / "Descriptions.json", _slashed_json(descriptions))
    for split, uids in splits.items():
        wanted = set(uids)
        _write(
            base / "splitted_dataset" / f"data_{split}.jsonl",
            "".join(_slashed_json(c) + "\n" for c in case_topics if c["U_id"] in wanted),
        )
        _write(
            base / "splitted_dataset" / f"descriptions_{split}.jsonl",
            "".join(_slashed_json(d) + "\n" for d in descriptions if d["U_id"] in wanted),
        )
    _write(base / "splitted_dataset" / "uid_list.json", _slashed_json(splits))
    _write_jsonl(root / "findings.jsonl", sorted(findings_rows, key=lambda r: r["id"]))
    return {split: len(uids) for split, uids in splits.items()}


def _openi_xml(report: dict) -> str:
    images = "".join(
        f'  <parentImage id="{image_id}">\n'
        f"    <figureId>F{k + 1}</figureId>\n"
        f"    <caption>Xray Chest PA and Lateral</caption>\n"
        f'    <panel type="single"><url>/hadoop/storage/radiology/extract/{image_id}.jpg</url></panel>\n'
        f"  </parentImage>\n"
        for k, image_id in enumerate(report["image_ids"])
    )
    mesh = "".join(f"    <major>{escape(term)}</major>\n" for term in report["mesh"])
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<eCitation>\n"
        '  <meta type="rr"/>\n'
        f'  <uId id="{report["uid"]}"/>\n'
        f'  <pmcId id="{report["n"]}"/>\n'
        "  <docSource>CXR</docSource>\n"
        f'  <IUXRId id="{report["n"]}"/>\n'
        '  <MedlineCitation Owner="Indiana University" Status="supplied">\n'
        '    <Article PubModel="Electronic">\n'
        "      <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>\n"
        "      <Abstract>\n"
        f'        <AbstractText Label="COMPARISON">{escape(report["comparison"])}</AbstractText>\n'
        f'        <AbstractText Label="INDICATION">{escape(report["indication"])}</AbstractText>\n'
        f'        <AbstractText Label="FINDINGS">{escape(report["findings_text"])}</AbstractText>\n'
        f'        <AbstractText Label="IMPRESSION">{escape(report["impression"])}</AbstractText>\n'
        "      </Abstract>\n"
        "    </Article>\n"
        "  </MedlineCitation>\n"
        f"  <MeSH>\n{mesh}  </MeSH>\n"
        f"{images}"
        "</eCitation>\n"
    )


def _mesh_terms(spec: StudySpec) -> list[str]:
    names = {
        "nodule": "Nodule",
        "mass": "Mass",
        "pleural effusion": "Pleural Effusion",
        "pneumothorax": "Pneumothorax",
        "cardiomegaly": "Cardiomegaly",
        "consolidation": "Consolidation",
        "fracture": "Fractures, Bone",
    }
    terms = [f"{names[f['finding']]}/{f['site']}" if f["site"] else names[f["finding"]] for f in spec.present]
    return terms or ["normal"]


def _xxxx(text: str) -> tuple[str, bool]:
    """De-identification damage as in IU X-Ray: a non-diagnostic word replaced by XXXX."""
    for word in ("evidence", "seen", "radiograph"):
        if f" {word} " in f" {text} ".replace(".", " "):
            return text.replace(word, "XXXX", 1), True
    return text, False


def _dicom_phantom(path: Path, spec: StudySpec, image: Image.Image, encoding: str, index: int) -> None:
    """Write a phantom study as a DICOM Part 10 file with deterministic UIDs and no dates."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = np.asarray(image, dtype=np.float64) / 255.0  # (H, W) in [0, 1]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["medvl-sample", path.name, str(spec.seed)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["medvl-sample-study", str(spec.seed)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medvl-sample-series", str(spec.seed)])
    ds.Modality = spec.modality
    ds.BodyPartExamined = spec.body_part
    ds.StudyDescription = spec.header.rstrip(".")
    ds.SeriesDescription = "Phantom"
    # Fake identifiers so that PHI stripping has something to strip.
    ds.PatientName = f"Phantom^{index:03d}"
    ds.PatientID = f"PHANTOM-{index:04d}"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    if encoding == "mono1_16bit_voi":
        # MONOCHROME1: high stored values are dark; a 12-bit detector inside 16-bit words, window over the data.
        stored = np.rint(4095 - pixels * 3800 - 100).astype(np.uint16)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.WindowCenter, ds.WindowWidth = 2095, 3800
    elif encoding in ("ct_rescale_window", "ct_multiframe"):
        hu = pixels * 2000.0 - 1000.0
        frames = [hu, hu[:, ::-1]] if encoding == "ct_multiframe" else [hu]
        stored = np.rint((np.stack(frames) + 1024.0) / 1.0).astype(np.int16)
        stored = stored if len(frames) > 1 else stored[0]
        if len(frames) > 1:
            ds.NumberOfFrames = len(frames)
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.WindowCenter, ds.WindowWidth = 0, 2000
    elif encoding == "mono2_16bit_nowindow":
        stored = np.rint(pixels * 3000).astype(np.uint16)
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    else:
        stored = np.asarray(image, dtype=np.uint8)
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = stored.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise MedvlError(f"--output-dir {output_dir} is a file; pass a folder.")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise MedvlError(f"--output-dir {output_dir} is not empty; pass --overwrite to replace its sample data.")
        # Only what this command writes is removed; other files in the folder are left alone.
        for name in (*SOURCES, "MANIFEST.json"):
            target = output_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def _sample_dicom(output_dir: Path, allocation: dict, real: list[dict], seed: int):
    """Copies of the real DICOM files plus phantoms in several pixel encodings; returns the captions."""
    # DICOM: copies of the real files plus phantoms in several pixel encodings.
    dicom_root = output_dir / "dicom"
    dicom_captions, dicom_findings = [], []
    dicom_root.mkdir(parents=True, exist_ok=True)
    # The DICOM source keys its published ids with a secret kept beside the raw files (a random one for real data).
    # The sample holds no patient, so its key follows the seed: the same seed prepares the same ids and split.
    (dicom_root / KEY_FILE).write_text(hashlib.sha256(f"medvl-sample-deid-key:{seed}".encode()).hexdigest())
    for (_, name, _), record in zip(REAL_DICOM, real, strict=True):
        shutil.copyfile(record["path"], dicom_root / name)
        dicom_captions.append([name, record["caption"]])
    for index, (spec, (_, encoding)) in enumerate(zip(allocation["dicom"], _DICOM_PHANTOMS, strict=True)):
        name = f"phantom_{index:03d}_{spec.study_type}.dcm"
        _dicom_phantom(dicom_root / name, spec, render_study(spec), encoding, index)
        dicom_captions.append([name, spec.report])
        dicom_findings.append(_findings_line(name, spec.findings))
    _write_csv(dicom_root / "captions.csv", ["file_name", "caption"], sorted(dicom_captions))
    _write_jsonl(dicom_root / "findings.jsonl", sorted(dicom_findings, key=lambda r: r["id"]))
    return dicom_captions


def _sample_roco(output_dir: Path, allocation: dict, real: list[dict], rng: np.random.Generator):
    """ROCO phantoms + real radiographs; returns the items (ROCOv2 re-releases some) and the split counts."""
    # ROCO: phantoms + real radiographs, JPEG named <PMCID>_<figure>.jpg.
    roco_items = []
    for spec in allocation["roco"]:
        roco_items.append({"text": spec.report, "pil": render_study(spec), "findings": spec.findings, "spec": spec})
    roco_items = _interleave(
        roco_items,
        [{"text": r["caption"], "pil": r["image"], "findings": None} for r in real if r["target"] == "roco"],
    )
    for index, item in enumerate(roco_items):
        item["roco_id"] = f"ROCO_{index * 3 + 20:05d}"
        item["pmcid"] = f"PMC{int(rng.integers(1_000_000, 9_999_999))}"
        stem = _PMC_FILE_STEMS[int(rng.integers(len(_PMC_FILE_STEMS)))]
        item["image_name"] = (
            f"{stem}-{int(rng.integers(10, 99))}-{int(rng.integers(1, 9))}-g{int(rng.integers(1, 6)):03d}.jpg"
        )
        item["licence"] = _LICENCES[int(rng.integers(len(_LICENCES)))]
        item["jpeg"] = _jpeg_bytes(item["pil"])
    roco_splits = _write_roco(output_dir / "roco", roco_items, rng)
    return roco_items, roco_splits


def _sample_rocov2(
    output_dir: Path,
    allocation: dict,
    real: list[dict],
    roco_items: list[dict],
    rng: np.random.Generator,
    gotchas: dict,
):
    """ROCOv2: its own phantoms and real images, plus exact and near copies of ROCO figures."""
    # ROCOv2 re-releases part of ROCO: exact copies (same JPEG bytes) and near copies (resized, re-encoded).
    rocov2_items = []
    for spec in allocation["rocov2"]:
        image = render_study(spec)
        rocov2_items.append(
            {
                "text": spec.report,
                "pil": image,
                "image_bytes": _png_bytes(image),
                "ext": ".png",
                "findings": spec.findings,
            }
        )
    for record in (r for r in real if r["target"] == "rocov2"):
        rocov2_items.append(
            {
                "text": record["caption"],
                "pil": record["image"],
                "image_bytes": _png_bytes(record["image"]),
                "ext": ".png",
                "findings": None,
            }
        )
    phantom_roco = [item for item in roco_items if item["findings"] is not None]
    n_exact, n_near = min(4, len(phantom_roco) // 4), min(4, len(phantom_roco) // 4)
    for item in phantom_roco[:n_exact]:
        rocov2_items.append(
            {
                "text": item["text"],
                "pil": item["pil"],
                "image_bytes": item["jpeg"],
                "ext": ".jpg",
                "findings": item["findings"],
            }
        )
    for item in phantom_roco[n_exact : n_exact + n_near]:
        width, height = item["pil"].size
        near = item["pil"].resize((int(width * 0.9), int(height * 0.9)), Image.BILINEAR)
        near = ImageEnhance.Brightness(near).enhance(1.04)
        rocov2_items.append(
            {
                "text": item["text"],
                "pil": near,
                "image_bytes": _png_bytes(near),
                "ext": ".png",
                "findings": item["findings"],
            }
        )
    gotchas["roco_rocov2_exact_duplicate_images"] = n_exact
    gotchas["roco_rocov2_near_duplicate_images"] = n_near
    order = rng.permutation(len(rocov2_items))
    counters = {"train": 0, "validation": 0, "test": 0}
    prefix = {"train": "train", "validation": "valid", "test": "test"}
    for rank, position in enumerate(order):
        item = rocov2_items[int(position)]
        split = _split_of(rank, len(rocov2_items), ("train", "validation", "test"), (0.7, 0.15, 0.15))
        counters[split] += 1
        item["split"] = split
        item["image_id"] = f"ROCOv2_2023_{prefix[split]}_{counters[split]:06d}"
    rocov2_splits, n_csv = _write_rocov2(output_dir / "rocov2", output_dir / "rocov2_csv", rocov2_items)
    return rocov2_items, rocov2_splits, n_csv


def _sample_medpix(output_dir: Path, allocation: dict, real: list[dict], rng: np.random.Generator, gotchas: dict):
    """MedPix 2.0 cases, a few with the authoring template or other junk as caption."""
    # MedPix: one image per case; CT listed as TAC and MR as MRI in the case lists; a few junk captions.
    cases = []
    for spec in allocation["medpix"]:
        kind, list_type, modality_text, location, category = _MEDPIX_INFO[spec.study_type]
        cases.append(
            {
                "pil": render_study(spec),
                "type": kind,
                "list_type": list_type,
                "modality_text": modality_text,
                "location": location,
                "location_category": category,
                "caption": spec.report,
                "findings_text": spec.report,
                "diagnosis": spec.impression,
                "findings": spec.findings,
            }
        )
    real_cases = []
    for record in (r for r in real if r["target"] == "medpix"):
        is_ct = record["modality"] == "CT"
        real_cases.append(
            {
                "pil": record["image"],
                "type": "CT" if is_ct else "MR",
                "list_type": "TAC" if is_ct else "MRI",
                "modality_text": "CT - noncontrast" if is_ct else "MR - T2 weighted",
                "location": "Unknown",
                "location_category": "Unknown",
                "caption": record["caption"],
                "findings_text": record["caption"],
                "diagnosis": record["caption"],
                "findings": None,
            }
        )
    cases = _interleave(cases, real_cases)
    junk = 0
    for index, case in enumerate(cases):
        case["uid"] = f"MPX{1009 + index * 7}"
        case["image"] = f"{case['uid']}_synpic{40000 + int(rng.integers(0, 59999))}"
        case["age"] = str(int(rng.integers(18, 90)))
        case["sex"] = "female" if rng.random() < 0.5 else "male"
        case["figure_part"] = None if rng.random() < 0.8 else "2a"
        if case["findings"] is not None and junk < len(_JUNK_CAPTIONS) and index >= 5 + 17 * junk:
            case["caption"] = _JUNK_CAPTIONS[junk]
            junk += 1
    gotchas["medpix_junk_captions"] = junk
    medpix_splits = _write_medpix(output_dir / "medpix", cases)
    return cases, medpix_splits


def _sample_openi(output_dir: Path, allocation: dict, rng: np.random.Generator, gotchas: dict):
    """Open-I reports (XML) and their PNGs, with the release's gotchas (no image, empty FINDINGS, XXXX)."""
    # Open-I: PA + lateral per report; a few reports without images, with empty FINDINGS, or with XXXX tokens.
    openi_root = output_dir / "openi"
    findings_rows, n_images, no_image, empty_findings, xxxx, xxxx_other = [], 0, 0, 0, 0, 0
    for n, spec in enumerate(allocation["openi"], start=1):
        uid = f"CXR{n}"
        findings_text, impression, findings = spec.findings_text, spec.impression, spec.findings
        if n % 23 == 4:
            findings_text = ""
            findings = [f for f in findings if f["present"]]
            empty_findings += 1
        elif n % 7 == 2:
            findings_text, replaced = _xxxx(findings_text)
            xxxx += int(replaced)
        image_ids = []
        if n % 29 == 6:
            no_image += 1
        else:
            image_ids.append(f"CXR{n}_1_IM-{n:04d}-1001")
            # NLMCXR_png.tgz has no top folder: `tar xf` beside ecgen-radiology/ leaves the PNGs flat in openi/.
            _write(openi_root / f"{image_ids[-1]}.png", _png_bytes(render_study(spec)))
            if n % 5 != 3:
                image_ids.append(f"CXR{n}_1_IM-{n:04d}-2001")
                _write(openi_root / f"{image_ids[-1]}.png", _png_bytes(render_study(_lateral_spec(spec))))
        n_images += len(image_ids)
        indication = _INDICATIONS[int(rng.integers(len(_INDICATIONS)))]
        comparison = "None." if rng.random() < 0.7 else "XXXX, XXXX."
        xxxx_other += int("XXXX" in indication or "XXXX" in comparison)
        report = {
            "uid": uid,
            "n": n,
            "comparison": comparison,
            "indication": indication,
            "findings_text": findings_text,
            "impression": impression,
            "mesh": _mesh_terms(spec),
            "image_ids": image_ids,
        }
        _write(openi_root / "ecgen-radiology" / f"{n}.xml", _openi_xml(report))
        findings_rows.append(_findings_line(uid, findings))
    _write_jsonl(openi_root / "findings.jsonl", sorted(findings_rows, key=lambda r: r["id"]))
    gotchas.update(
        openi_reports_without_images=no_image,
        openi_empty_findings=empty_findings,
        openi_xxxx_in_findings=xxxx,
        openi_xxxx_in_indication_or_comparison=xxxx_other,
    )
    return n_images


# PMC-OA as the Hub dataset axiong/pmc_oa ships it: `pmc_oa.jsonl` plus `images.zip`, whose members sit in one
# top folder. Its loading script (huggingface.co/datasets/axiong/pmc_oa, pmc_oa.py at revision
# d42b8f9160fb558b7dd82ee44718afcf73277adc) opens `<images.zip extracted>/caption_T060_filtered_top4_sep_v0_subfigures/
# <row["image"]>` and declares the row fields image, caption (strings), alignment_type (string) and alignment_score
# (float); consumers unzip it into `images/` (`<root>/images/caption_T060_filtered_top4_sep_v0_subfigures/`).
# Image names and the panel-lettered sub-caption follow the README's sample row ("PMC212319_Fig3_4.jpg",
# "A. Real time image of ..."). The release does not document alignment_type/alignment_score values (Hub
# discussion axiong/pmc_oa#10), so the sample writes stand-ins of the declared types, which the adapter ignores.
PMC_OA_ZIP_FOLDER = "caption_T060_filtered_top4_sep_v0_subfigures"


def _sample_pmcoa(output_dir: Path, allocation: dict, rng: np.random.Generator) -> tuple[int, int, set[str]]:
    """PMC-OA: phantoms as sub-figures of a few articles; returns rows, articles and the captions written."""
    root = output_dir / "pmc_oa"
    rows, findings_rows, captions = [], [], set()
    specs = list(allocation["pmc_oa"])
    articles = 0
    while specs:
        # One to three sub-figures per figure; sub-figures of one article share its PMCID (one group when prepared).
        size = int(rng.integers(1, 4))
        figure, specs = specs[:size], specs[size:]
        articles += 1
        pmcid = f"PMC{int(rng.integers(1_000_000, 9_999_999))}"
        fig = int(rng.integers(1, 6))
        for k, spec in enumerate(figure):
            name = f"{pmcid}_Fig{fig}_{k + 1}.jpg"
            caption = f"{'ABC'[k]}. {spec.report}" if len(figure) > 1 else spec.report
            _write(root / "images" / PMC_OA_ZIP_FOLDER / name, _jpeg_bytes(render_study(spec)))
            rows.append({"image": name, "caption": caption, "alignment_type": "sample", "alignment_score": 1.0})
            findings_rows.append(_findings_line(name, spec.findings))
            captions.add(caption)
    # Fields in the loading script's order (not sorted like the sidecars).
    _write(root / "pmc_oa.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    _write_jsonl(root / "findings.jsonl", sorted(findings_rows, key=lambda r: r["id"]))
    return len(rows), articles, captions


def _write_manifest(
    output_dir: Path, *, seed, num_studies, allocation, gotchas, texts_by_source, splits, n_images, n_dicom, pmc_oa
) -> None:
    """`MANIFEST.json`: what each source holds and how many of each planted gotcha."""
    counted: dict[str, int] = {}
    for texts in texts_by_source.values():
        for text in texts:
            counted[text] = counted.get(text, 0) + 1
    gotchas["reports_identical_across_sources"] = sum(1 for c in counted.values() if c > 1)

    manifest = {
        "generator": "medvl sample-data",
        "seed": seed,
        "num_studies": num_studies,
        "sources": {
            "roco": {"path": "roco", "format": "roco", "splits": splits["roco"], "phantom": len(allocation["roco"])},
            "rocov2": {
                "path": "rocov2",
                "format": "rocov2-parquet",
                "splits": splits["rocov2"],
                "phantom": len(allocation["rocov2"]),
            },
            "rocov2_csv": {"path": "rocov2_csv", "format": "rocov2-csv", "splits": splits["rocov2_csv"]},
            "medpix": {
                "path": "medpix",
                "format": "medpix-2.0",
                "splits": splits["medpix"],
                "phantom": len(allocation["medpix"]),
            },
            "openi": {
                "path": "openi",
                "format": "openi-xml",
                "reports": len(allocation["openi"]),
                "images": n_images,
                "phantom": len(allocation["openi"]),
            },
            "pmc_oa": {
                "path": "pmc_oa",
                "format": "pmc-oa",
                "rows": pmc_oa[0],
                "articles": pmc_oa[1],
                "phantom": len(allocation["pmc_oa"]),
            },
            "dicom": {
                "path": "dicom",
                "format": "dicom",
                "files": n_dicom,
                "phantom": len(allocation["dicom"]),
            },
        },
        "real_dicom": [{"file": name, "store": store, "also_in": target} for store, name, target in REAL_DICOM],
        "gotchas": gotchas,
    }
    _write(output_dir / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def write_sample_data(output_dir, *, seed: int = 0, num_studies: int = 300, overwrite: bool = False) -> Path:
    """Write the raw sample sources (phantoms + real DICOM) in the public datasets' formats.

    Args:
        output_dir (`str` or `os.PathLike`): Folder to create; must be empty or absent unless `overwrite`.
        seed (`int`, *optional*, defaults to 0): Same seed, byte-identical output.
        num_studies (`int`, *optional*, defaults to 300): Number of phantom studies (at least 20).
        overwrite (`bool`, *optional*, defaults to `False`): Replace the sample data in a non-empty folder.

    Returns:
        `Path`: `output_dir`, holding roco/, rocov2/, rocov2_csv/, medpix/, openi/, pmc_oa/, dicom/ and
            MANIFEST.json.
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    if num_studies < MIN_STUDIES:
        raise MedvlError(
            f"--num-studies must be at least {MIN_STUDIES} (one per source and gotcha), got {num_studies}."
        )
    _check_output_dir(output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x5A3F])
    allocation = _allocate(num_studies, seed)
    real = _real_records()
    gotchas: dict[str, int] = {}

    dicom_captions = _sample_dicom(output_dir, allocation, real, seed)
    roco_items, roco_splits = _sample_roco(output_dir, allocation, real, rng)
    rocov2_items, rocov2_splits, n_csv = _sample_rocov2(output_dir, allocation, real, roco_items, rng, gotchas)
    cases, medpix_splits = _sample_medpix(output_dir, allocation, real, rng, gotchas)
    n_images = _sample_openi(output_dir, allocation, rng, gotchas)
    n_pmc_rows, n_pmc_articles, pmc_captions = _sample_pmcoa(output_dir, allocation, rng)
    _write_manifest(
        output_dir, seed=seed, num_studies=num_studies, allocation=allocation, gotchas=gotchas,
        texts_by_source={
            "roco": {i["text"] for i in roco_items},
            "rocov2": {i["text"] for i in rocov2_items},
            "medpix": {c["caption"] for c in cases},
            "openi": {s.findings_text for s in allocation["openi"]},
            "pmc_oa": pmc_captions,
            "dicom": {c[1] for c in dicom_captions},
        },
        splits={"roco": roco_splits, "rocov2": rocov2_splits, "rocov2_csv": {"train": n_csv}, "medpix": medpix_splits},
        n_images=n_images, n_dicom=len(dicom_captions), pmc_oa=(n_pmc_rows, n_pmc_articles),
    )  # fmt: skip
    logger.info(
        "Wrote sample data to %s in %.1fs: roco %s, rocov2 %s, medpix %s, openi %d reports/%d images, "
        "pmc_oa %d sub-figures/%d articles, dicom %d files; gotchas %s",
        output_dir,
        time.perf_counter() - start,
        roco_splits,
        rocov2_splits,
        medpix_splits,
        len(allocation["openi"]),
        n_images,
        n_pmc_rows,
        n_pmc_articles,
        len(dicom_captions),
        gotchas,
    )
    return output_dir


def cli(argv: list[str] | None = None) -> int:
    """`medvl sample-data`: parse arguments and call `write_sample_data`.

    Args:
        argv (`list[str]`, *optional*): Arguments after the subcommand.
    """
    parser = argparse.ArgumentParser(
        prog="medvl sample-data",
        description=(
            "Write raw sample data in the public datasets' own formats (ROCO, ROCOv2 parquet + CSV, MedPix 2.0, "
            "Open-I XML, PMC-OA JSONL + images.zip folder, raw DICOM): procedurally drawn phantom studies with known findings mixed with real DICOM "
            "images from pydicom-data, plus findings.jsonl sidecars and MANIFEST.json. Same seed, same bytes."
        ),
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="Folder to write (must be empty or absent).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed (default: 0).")
    parser.add_argument(
        "--num-studies",
        type=int,
        default=300,
        help=f"Number of phantom studies, at least {MIN_STUDIES} (default: 300).",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace the sample data in a non-empty folder.")
    args = parser.parse_args(argv)
    write_sample_data(args.output_dir, seed=args.seed, num_studies=args.num_studies, overwrite=args.overwrite)
    return 0
