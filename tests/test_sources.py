# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Source adapters on small fixtures written in each dataset's real on-disk format, gotchas included.

The `write_*` functions are also used by `tests/test_data.py` to build multi-source mixtures.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import available_sources, get_source_adapter
from tests.fixtures.sources.releases import openi_report_xml


def noise_image(seed: int, size: tuple[int, int] = (64, 48), mode: str = "L") -> Image.Image:
    """A random image: distinct seeds give images that are neither exact nor perceptual duplicates."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    image = Image.fromarray(small, mode="L").resize(size, Image.Resampling.BILINEAR)
    return image.convert(mode)


def read(source_type: str, path: Path, **kwargs) -> list:
    return list(get_source_adapter(source_type)(SourceConfig(type=source_type, path=str(path), **kwargs)))


def write_roco(root: Path, seed: int = 100) -> Path:
    """ROCO v1: validation with licences.txt + revised keyword files, train with dlinks only."""
    val = root / "data" / "validation" / "radiology"
    (val / "images").mkdir(parents=True)
    (val / "captions.txt").write_text(
        "ROCO_00020\t Axial computed tomography scan of the pelvis showing a diffuse infiltration of the bladder wall.\n"
        "ROCO_00027\t Postoperative anteroposterior radiograph of the pelvis.\n"
        "ROCO_00031\t Chest radiograph without image file on disk.\n"
    )
    (val / "keywords_tp_val_revised.txt").write_text(
        "ROCO_00020\t\tpelvi\tscan\twall\tbladder\nROCO_00027\t\tpostoperative\tpelvi\tradiograph\tanteroposterior\n"
    )
    (val / "cuis_tp_val_revised.txt").write_text("ROCO_00027\t\tC0043299\tC1306645\n")
    (val / "licences.txt").write_text(
        "ROCO_ID,PMC_ID,CC\n"
        "ROCO_00020,PMC3970251_CRIONM2014-931546.003.jpg,CC BY\n"
        "ROCO_00027,PMC3970251_CRIONM2014-931546.004.jpg,CC BY-NC\n"
        "ROCO_00031,PMC1111111_missing.jpg,CC BY\n"
    )
    noise_image(seed).convert("RGB").save(val / "images" / "PMC3970251_CRIONM2014-931546.003.jpg", quality=95)
    noise_image(seed + 1).convert("RGB").save(val / "images" / "PMC3970251_CRIONM2014-931546.004.jpg", quality=95)
    train = root / "data" / "train" / "radiology"
    (train / "images").mkdir(parents=True)
    (train / "captions.txt").write_text("ROCO_00108\t Chest radiograph showing left pleural fluid with collapse.\n")
    (train / "dlinks.txt").write_text(
        "ROCO_00108\twget -r ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/1e/ed/PMC4000001.tar.gz -P /path/to/Dir"
        "\tfig1.jpg\n"
    )
    noise_image(seed + 2).convert("RGB").save(train / "images" / "PMC4000001_fig1.jpg", quality=95)
    return root


def test_registry_lists_every_adapter():
    assert set(available_sources()) >= {"roco", "rocov2", "medpix", "openi", "pmc_oa", "hub", "imagefolder", "dicom"}


def test_roco(tmp_path):
    records = {r.id: r for r in read("roco", write_roco(tmp_path / "roco"))}
    assert set(records) == {"ROCO_00020", "ROCO_00027", "ROCO_00031", "ROCO_00108"}
    # Leading space after the tab is stripped; two-tab keyword lines give no empty first keyword.
    assert records["ROCO_00027"].text == "Postoperative anteroposterior radiograph of the pelvis."
    assert records["ROCO_00020"].meta["keywords"] == ["pelvi", "scan", "wall", "bladder"]
    assert records["ROCO_00027"].meta["cuis"] == ["C0043299", "C1306645"]
    assert records["ROCO_00020"].license == "cc-by" and records["ROCO_00027"].license == "cc-by-nc"
    # Image names are <PMCID>_<name>, found through licences.txt or, without it, through dlinks.
    assert records["ROCO_00020"].image.name == "PMC3970251_CRIONM2014-931546.003.jpg"
    assert records["ROCO_00108"].image.name == "PMC4000001_fig1.jpg" and records["ROCO_00108"].image.is_file()
    # Figures of one article share a group.
    assert records["ROCO_00020"].group_id == records["ROCO_00027"].group_id == "roco:PMC3970251"
    assert not records["ROCO_00031"].image.is_file()


def write_rocov2_parquet(root: Path, seed: int = 200) -> Path:
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "image_id": datasets.Value("string"),
            "caption": datasets.Value("string"),
            "cui": datasets.List(datasets.Value("string")),
        }
    )
    (root / "data").mkdir(parents=True)
    for split, offset in (("train", 0), ("validation", 10)):
        ids = [f"ROCOv2_2023_{split[:5]}_{i + 1:06d}" for i in range(2)]
        table = datasets.Dataset.from_dict(
            {
                "image": [noise_image(seed + offset + i) for i in range(2)],
                "image_id": ids,
                "caption": [f"Head CT demonstrating finding number {offset + i} in the parotid." for i in range(2)],
                "cui": [["C0040405"], ["C0040405", "C0030580"]],
            },
            features=features,
        )
        table.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    (root / "findings.jsonl").write_text(
        json.dumps(
            {"id": "ROCOv2_2023_train_000001", "findings": [{"finding": "mass", "site": "left", "present": True}]}
        )
        + "\n"
    )
    return root


def write_rocov2_csv(root: Path, seed: int = 300) -> Path:
    """The Zenodo CSV form: LF line ends, minimal quoting, JPEG images in <split>/ (see the release fixture in
    tests/fixtures/sources/releases.py for the provenance)."""
    (root / "train").mkdir(parents=True)
    with (root / "train_captions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["ID", "Caption"])
        writer.writerow(["ROCOv2_2023_train_000001", "Head CT demonstrating left parotiditis, with comma."])
        writer.writerow(["ROCOv2_2023_train_000002", "Chest X-ray without the image file."])
    (root / "train_concepts.csv").write_text("ID,CUIs\nROCOv2_2023_train_000001,C0040405;C0030580\n")
    noise_image(seed).save(root / "train" / "ROCOv2_2023_train_000001.jpg", quality=95)
    return root


def test_rocov2_parquet(tmp_path):
    records = read("rocov2", write_rocov2_parquet(tmp_path / "rocov2"))
    assert [r.id for r in records] == [
        "ROCOv2_2023_train_000001",
        "ROCOv2_2023_train_000002",
        "ROCOv2_2023_valid_000001",
        "ROCOv2_2023_valid_000002",
    ]
    assert all(isinstance(r.image, bytes) and r.image[:8] == b"\x89PNG\r\n\x1a\n" for r in records)
    assert records[1].meta["cuis"] == ["C0040405", "C0030580"]
    assert records[0].findings == [{"finding": "mass", "site": "left", "present": True}]
    assert records[1].findings == []
    assert {r.license for r in records} == {"cc-by-nc-sa-4.0"}
    only_train = read("rocov2", tmp_path / "rocov2", splits=["train"])
    assert len(only_train) == 2


def test_rocov2_csv(tmp_path):
    records = read("rocov2", write_rocov2_csv(tmp_path / "rocov2_csv"))
    assert records[0].text == "Head CT demonstrating left parotiditis, with comma."
    assert records[0].meta["cuis"] == ["C0040405", "C0030580"]
    assert records[0].image.name == "ROCOv2_2023_train_000001.jpg"
    assert records[1].image.name == "ROCOv2_2023_train_000002.jpg"  # a missing image is reported as the .jpg
    assert records[1].drop_reason == "missing_image"


def write_medpix(root: Path, seed: int = 400) -> Path:
    base = root / "MedPix-2-0"
    (base / "images").mkdir(parents=True)
    (base / "splitted_dataset").mkdir()
    rows = [
        ("CT", "MPX1024", "MPX1024_synpic40275", "CT of the chest reveals an obstructing mass and LUL collapse."),
        ("MR", "MPX1024", "MPX1024_synpic40276", "Axial T1\\/T2 MR of the brain shows a ring enhancing lesion."),
        ("CT", "MPX2000", "MPX2000_synpic1", "IN PROGRESS"),
        ("MR", "MPX2000", "MPX2000_synpic2", "pelvis"),
        (None, "MPX2483", "MPX2483_synpic27408", "Axial CT of the abdomen with contrast shows a hepatic cyst."),
    ]
    lines = []
    for index, (kind, uid, image, caption) in enumerate(rows):
        noise_image(seed + index).save(base / "images" / f"{image}.png")
        description = {
            "ACR Codes": "-1.-1",
            "Age": "60",
            "Caption": caption,
            "Figure Part": None,
            "Modality": f"{kind} - noncontrast" if kind else None,
            "Plane": "Axial",
            "Sex": "female",
        }
        entry = {
            "Type": kind,
            "U_id": uid,
            "image": image,
            "Description": description,
            "Location": "Chest, Pulmonary",
            "Location Category": "Thorax",
        }
        # Written by hand, not json.dumps, to keep the release's "\/" escapes.
        lines.append(json.dumps(entry).replace("T1\\\\/T2", "T1\\/T2"))
    (base / "splitted_dataset" / "descriptions_train.jsonl").write_text("\n".join(lines[:4]) + "\n")
    (base / "splitted_dataset" / "descriptions_test.jsonl").write_text(lines[4] + "\n")
    # train_1 repeats train records and must not be read.
    (base / "splitted_dataset" / "descriptions_train_1.jsonl").write_text(lines[0] + "\n")
    cases = [
        {
            "U_id": "MPX1024",
            "TAC": ["MPX1024_synpic40275"],
            "MRI": ["MPX1024_synpic40276"],
            "Case": {"Findings": "Obstructing mass with left upper lobe collapse.", "Title": "Lung cancer"},
        },
        {
            "U_id": "MPX2483",
            "TAC": ["MPX2483_synpic27408"],
            "MRI": [],
            "Case": {"Findings": "Simple hepatic cyst.", "Title": "Cyst"},
        },
    ]
    (base / "splitted_dataset" / "data_train.jsonl").write_text(json.dumps(cases[0]) + "\n")
    (base / "splitted_dataset" / "data_test.jsonl").write_text(json.dumps(cases[1]) + "\n")
    return root


def test_medpix(tmp_path):
    root = write_medpix(tmp_path / "medpix")
    assert "T1\\/T2" in (root / "MedPix-2-0/splitted_dataset/descriptions_train.jsonl").read_text()
    records = {r.id: r for r in read("medpix", root)}
    assert len(records) == 5  # train_1 duplicates are skipped
    assert records["MPX1024_synpic40276"].text == "Axial T1/T2 MR of the brain shows a ring enhancing lesion."
    # CT/MR in descriptions, TAC/MRI in case lists: both map to CT/MR.
    assert records["MPX1024_synpic40275"].modality == "CT"
    assert records["MPX1024_synpic40276"].modality == "MR"
    assert records["MPX2483_synpic27408"].modality == "CT"  # no Type: taken from the case's TAC list
    assert records["MPX1024_synpic40275"].group_id == records["MPX1024_synpic40276"].group_id == "medpix:MPX1024"
    assert records["MPX2000_synpic1"].text == "IN PROGRESS"  # junk captions are cleaning's job, not the adapter's
    findings = {r.id: r.text for r in read("medpix", root, text_field="findings")}
    assert findings["MPX2483_synpic27408"] == "Simple hepatic cyst."


def write_openi(root: Path, seed: int = 500, reports: list[tuple[str, str, int]] | None = None) -> Path:
    """IU X-Ray XML reports; `reports` is a list of (findings, impression, number of images)."""
    reports = reports or [
        (
            "The cardiac silhouette is within normal limits. There are no XXXX of a pleural effusion.",
            "Normal chest x-XXXX.",
            2,
        ),
        ("", "No acute cardiopulmonary abnormality seen.", 1),
        ("Heart size normal, lungs are clear without focal opacity.", "No acute disease.", 0),
    ]
    (root / "ecgen-radiology").mkdir(parents=True)
    (root / "NLMCXR_png").mkdir()
    findings_lines = []
    for n, (findings, impression, n_images) in enumerate(reports, start=1):
        uid = f"CXR{n}"
        names = [f"CXR{n}_1_IM-{n:04d}-{k + 1}001" for k in range(n_images)]
        (root / "ecgen-radiology" / f"{n}.xml").write_text(openi_report_xml(n, findings, impression, names))
        for k, name in enumerate(names):
            noise_image(seed + 10 * n + k, size=(64, 64)).save(root / "NLMCXR_png" / f"{name}.png")
        findings_lines.append(
            json.dumps({"id": uid, "findings": [{"finding": "no finding", "site": None, "present": True}]})
        )
    (root / "findings.jsonl").write_text("\n".join(findings_lines) + "\n")
    return root


def test_openi_xml(tmp_path):
    root = write_openi(tmp_path / "openi")
    records = read("openi", root)
    by_id = {r.id: r for r in records}
    # Two images of one report: same text and group; the report without images is yielded as no_image.
    assert [r.id for r in records] == ["CXR1_1_IM-0001-1001", "CXR1_1_IM-0001-2001", "CXR2_1_IM-0002-1001", "CXR3"]
    assert by_id["CXR1_1_IM-0001-1001"].group_id == by_id["CXR1_1_IM-0001-2001"].group_id == "openi:CXR1"
    assert "XXXX" in by_id["CXR1_1_IM-0001-1001"].text  # masking is cleaning's job
    assert by_id["CXR3"].drop_reason == "no_image" and by_id["CXR3"].image is None
    # Empty FINDINGS falls back to the impression, unless told not to.
    assert by_id["CXR2_1_IM-0002-1001"].text == "No acute cardiopulmonary abnormality seen."
    strict = {r.id: r for r in read("openi", root, options={"fallback_to_impression": False})}
    assert strict["CXR2_1_IM-0002-1001"].text == ""
    both = {r.id: r for r in read("openi", root, text_field="both")}
    assert both["CXR1_1_IM-0001-1001"].text.endswith("Normal chest x-XXXX.")
    impression = {r.id: r for r in read("openi", root, text_field="impression")}
    assert impression["CXR3"].text == "No acute disease."
    assert by_id["CXR1_1_IM-0001-1001"].findings == [{"finding": "no finding", "site": None, "present": True}]


def test_openi_kaggle_csv(tmp_path):
    root = tmp_path / "iu"
    (root / "images" / "images_normalized").mkdir(parents=True)
    with (root / "indiana_reports.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        writer.writerow(
            [
                "1",
                "normal",
                "normal",
                "Xray Chest PA and Lateral",
                "Positive TB test",
                "None.",
                "The cardiac silhouette is normal. No XXXX.",
                "Normal chest x-XXXX.",
            ]
        )
        writer.writerow(["2", "Cardiomegaly/mild", "Cardiomegaly", "Xray", "", "", "", "Mild cardiomegaly."])
    with (root / "indiana_projections.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "filename", "projection"])
        writer.writerow(["1", "1_IM-0001-4001.dcm.png", "Frontal"])
        writer.writerow(["1", "1_IM-0001-3001.dcm.png", "Lateral"])
    for k, name in enumerate(["1_IM-0001-4001.dcm.png", "1_IM-0001-3001.dcm.png"]):
        noise_image(600 + k).save(root / "images" / "images_normalized" / name)
    records = read("openi", root)
    assert [(r.id, r.group_id) for r in records] == [
        ("1_IM-0001-4001.dcm", "openi:CXR1"),
        ("1_IM-0001-3001.dcm", "openi:CXR1"),
        ("CXR2", "openi:CXR2"),
    ]
    assert records[0].image.is_file() and records[2].drop_reason == "no_image"
    assert records[2].text == "Mild cardiomegaly."


def write_pmc_oa(root: Path, seed: int = 700) -> Path:
    (root / "images").mkdir(parents=True)
    rows = [
        {
            "image": "PMC212319_Fig3_4.jpg",
            "caption": "A. Real time image of the translocation of ARF1-GFP.",
            "pmcid": "PMC212319",
            "url_name": "1471-2121-4-13-3.jpg",
        },
        {"image": "PMC212319_Fig3_5.jpg", "caption": "B. Confocal image of the same cells after treatment."},
        {"image": "PMC999_F1.jpg", "caption": "CT scan of the abdomen showing a renal mass."},
    ]
    for index, row in enumerate(rows):
        noise_image(seed + index).convert("RGB").save(root / "images" / row["image"])
    (root / "pmc_oa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_pmc_oa(tmp_path):
    records = read("pmc_oa", write_pmc_oa(tmp_path / "pmc_oa"))
    assert [r.group_id for r in records] == ["pmc_oa:PMC212319", "pmc_oa:PMC212319", "pmc_oa:PMC999"]
    assert records[0].meta["url_name"] == "1471-2121-4-13-3.jpg" and records[1].meta["url_name"] is None
    assert all(r.image.is_file() for r in records)


def write_imagefolder(root: Path, seed: int = 800) -> Path:
    (root / "train").mkdir(parents=True)
    with (root / "train" / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text", "study", "license"])
        for index in range(3):
            name = f"img{index}.png"
            noise_image(seed + index).save(root / "train" / name)
            writer.writerow(
                [name, f"Frontal chest radiograph number {index} with clear lungs.", f"s{index // 2}", "CC BY"]
            )
    return root


def test_imagefolder(tmp_path):
    records = read("imagefolder", write_imagefolder(tmp_path / "folder"), options={"group_column": "study"})
    assert [r.id for r in records] == ["train/img0.png", "train/img1.png", "train/img2.png"]
    assert [r.group_id for r in records] == ["imagefolder:s0", "imagefolder:s0", "imagefolder:s1"]
    assert records[0].license == "cc-by" and records[2].image.is_file()


def write_hub_parquet(path: Path, seed: int = 900) -> Path:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(
        {
            "img": [noise_image(seed + i) for i in range(3)],
            "report": [f"Portable chest radiograph {i}: lines and tubes in place." for i in range(3)],
            "uid": ["a", "b", "c"],
            "study": ["s1", "s1", "s2"],
        },
        features=datasets.Features(
            {
                "img": datasets.Image(),
                "report": datasets.Value("string"),
                "uid": datasets.Value("string"),
                "study": datasets.Value("string"),
            }
        ),
    ).to_parquet(str(path))
    return path


def test_hub_local_parquet_with_column_mapping(tmp_path):
    path = write_hub_parquet(tmp_path / "hub" / "train-00000-of-00001.parquet")
    options = {
        "image_column": "img",
        "text_column": "report",
        "id_column": "uid",
        "group_column": "study",
        "default_license": "CC-BY-4.0",
    }
    records = read("hub", path, options=options)
    assert [(r.id, r.group_id) for r in records] == [("a", "hub:s1"), ("b", "hub:s1"), ("c", "hub:s2")]
    assert records[2].text == "Portable chest radiograph 2: lines and tubes in place."
    assert Image.open(__import__("io").BytesIO(records[0].image)).size == (64, 48)
    assert records[0].license == "cc-by-4.0"
    with pytest.raises(ValueError, match="text_column"):
        read("hub", path, options={"image_column": "img", "text_column": "nope"})


def write_dicom(path: Path, *, seed: int = 0, study_uid: str = "1.2.3.4", monochrome1: bool = False, **tags) -> Path:
    """A 16-bit CT-like DICOM file with a window, written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    pixels = (np.kron(rng.integers(0, 3000, size=(8, 8)), np.ones((8, 8)))).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.Modality = tags.pop("Modality", "CT")
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _by_file(records, root: Path) -> dict:
    # Record ids are keyed hashes; the file each came from is only in the (never published) `file` field.
    return {Path(r.file).relative_to(root).as_posix(): r for r in records}


def test_dicom_captions_from_csv_and_opted_in_tags_only(tmp_path):
    root = tmp_path / "dicom"
    write_dicom(root / "a.dcm", seed=1, study_uid="1.2.3", StudyDescription="CT CHEST")
    write_dicom(root / "b.dcm", seed=2, study_uid="1.2.3", StudyDescription="CT CHEST", SeriesDescription="AXIAL")
    write_dicom(root / "sub" / "c", seed=3, study_uid="9.9", StudyDescription="CT HEAD", monochrome1=True)
    (root / "captions.csv").write_text("file_name,caption\na.dcm,Axial CT of the chest shows a small nodule.\n")
    records = _by_file(read("dicom", root), root)
    assert set(records) == {"a.dcm", "b.dcm", "sub/c"}  # the extension-less file is found by its preamble
    assert records["a.dcm"].text == "Axial CT of the chest shows a small nodule."
    # Free-text tags are PHI-bearing (PS3.15 Annex E): without an opt-in, a file the CSV does not caption has no text.
    assert records["b.dcm"].text == "" and records["sub/c"].text == ""
    opted = _by_file(read("dicom", root, options={"caption_tags": ["StudyDescription", "SeriesDescription"]}), root)
    assert opted["b.dcm"].text == "CT CHEST. AXIAL"
    # Same study -> same group; the published ids are keyed hashes, never a path, a UID or a PatientID.
    assert records["a.dcm"].group_id == records["b.dcm"].group_id != records["sub/c"].group_id
    for r in records.values():
        assert not any(leak in r.id + r.group_id for leak in ("1.2.3", "9.9", "a.dcm", "sub", ".dcm"))
    assert records["sub/c"].modality == "CT"
    tags_only = _by_file(
        read("dicom", root, options={"caption_from": "tags", "caption_tags": ["StudyDescription"]}), root
    )
    assert tags_only["a.dcm"].text == "CT CHEST"
    with pytest.raises(ValueError, match="caption_tags"):
        list(read("dicom", root, options={"caption_from": "tags"}))
    with pytest.raises(ValueError, match="PatientName"):
        list(read("dicom", root, options={"caption_tags": ["PatientName"]}))


def test_dicom_groups_by_patient_with_a_keyed_hash(tmp_path, monkeypatch):
    root = tmp_path / "dicom"
    write_dicom(root / "a.dcm", seed=1, study_uid="1.1", PatientID="123456")
    write_dicom(root / "b.dcm", seed=2, study_uid="2.2", PatientID="123456")
    write_dicom(root / "c.dcm", seed=3, study_uid="3.3", PatientID="PAT-0007")
    records = _by_file(read("dicom", root), root)
    # Two studies of one patient must land in one split, so they share a group.
    assert records["a.dcm"].group_id == records["b.dcm"].group_id != records["c.dcm"].group_id
    assert not any("123456" in r.group_id or "PAT-" in r.group_id for r in records.values())
    # A 6-digit MRN cannot be recovered by hashing every candidate: the hash is keyed with a secret that stays
    # beside the raw data (or in MEDVL_DEID_KEY); without the key, the unkeyed hashes of all MRNs never match.
    import hashlib

    group = records["a.dcm"].group_id.split(":", 1)[1]
    assert all(hashlib.sha256(f"{c}".encode()).hexdigest()[:20] != group for c in ("123456", "patient:123456"))
    assert (root / ".medvl-deid-key").is_file()
    monkeypatch.setenv("MEDVL_DEID_KEY", "another secret")
    assert _by_file(read("dicom", root), root)["a.dcm"].group_id != records["a.dcm"].group_id


def test_dicom_text_with_the_patients_name_is_dropped(tmp_path):
    root = tmp_path / "dicom"
    write_dicom(root / "a.dcm", seed=1, study_uid="1.1", PatientName="Doe^Jane", StudyDescription="CT chest Doe")
    write_dicom(root / "b.dcm", seed=2, study_uid="2.2", PatientName="Doe^Jane", StudyDescription="CT chest")
    records = _by_file(read("dicom", root, options={"caption_tags": ["StudyDescription"]}), root)
    assert records["a.dcm"].drop_reason == "phi_suspected" and records["b.dcm"].drop_reason is None


def test_unknown_adapter_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown source type 'nope'"):
        get_source_adapter("nope")
    with pytest.raises(ValueError, match="does not exist"):
        read("openi", tmp_path / "absent")


def test_findings_sidecar_present_strings_are_parsed_not_truthy(tmp_path):
    from medvl_recipes.data.sources import read_findings_sidecar

    rows = [
        {"id": "a", "findings": [{"finding": "effusion", "present": "false"}, {"finding": "mass", "present": "Yes"}]},
        {"id": "b", "findings": [{"finding": "nodule", "present": 0}, {"finding": "edema"}]},
    ]
    (tmp_path / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_findings_sidecar(tmp_path)
    assert [f["present"] for f in got["a"]] == [False, True]
    assert [f["present"] for f in got["b"]] == [False, True]  # a missing flag means the finding is stated present
    (tmp_path / "findings.jsonl").write_text(
        json.dumps({"id": "c", "findings": [{"finding": "x", "present": "maybe"}]})
    )
    with pytest.raises(ValueError, match=r"findings.jsonl:1: .*'present' must be true or false"):
        read_findings_sidecar(tmp_path)
