# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medvl_recipes.cli import main
from medvl_recipes.imaging import dicom_to_image
from medvl_recipes.samples.phantoms import (
    MAX_SIDE,
    STUDY_TYPES,
    StudySpec,
    generate_study,
    render_study,
    report_corpus,
    sample_spec,
)
from medvl_recipes.samples.sample_data import write_sample_data


NUM_STUDIES = 40

# An independent reading of the report grammar: finding names as they appear in the text.
_PHRASES = {
    "nodule": r"nodule",
    "mass": r"mass",
    "pleural effusion": r"pleural effusion",
    "pneumothorax": r"pneumothorax",
    "cardiomegaly": r"cardiomegaly",
    "consolidation": r"consolidation",
    "fracture": r"fracture",
}
_NEGATION = re.compile(r"\b(no|without)\b")
_NORMAL = re.compile(r"\bno acute findings?\b")


def parse_report(text: str) -> list[tuple[str, bool, str]]:
    """(finding, present, sentence) for every finding mentioned in `text`."""
    mentions = []
    for sentence in re.split(r"(?<=\.)\s+", text.strip()):
        lowered = sentence.lower()
        if _NORMAL.search(lowered):
            mentions.append(("no finding", True, lowered))
            continue
        for finding, pattern in _PHRASES.items():
            match = re.search(rf"\b{pattern}\b", lowered)
            if match:
                cue = _NEGATION.search(lowered)
                mentions.append((finding, not (cue and cue.start() < match.start()), lowered))
    return mentions


def assert_report_agrees(text: str, findings: list[dict]) -> None:
    mentions = parse_report(text)
    assert {(f, p) for f, p, _ in mentions} == {(f["finding"], f["present"]) for f in findings}, text
    for item in findings:
        if item["present"] and item["site"]:
            sentences = [s for f, p, s in mentions if f == item["finding"] and p]
            assert any(item["site"] in s for s in sentences), (item, text)


@pytest.fixture(scope="module")
def sample_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return {
        "a": write_sample_data(root / "a", seed=0, num_studies=NUM_STUDIES),
        "b": write_sample_data(root / "b", seed=0, num_studies=NUM_STUDIES),
        "c": write_sample_data(root / "c", seed=1, num_studies=NUM_STUDIES),
    }


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_other_seed_differs(sample_dirs):
    a, b, c = (_files(sample_dirs[k]) for k in "abc")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    different = [name for name in a if name in c and a[name] != c[name]]
    assert "roco/data/train/radiology/captions.txt" in different
    assert "rocov2/data/train-00000-of-00001.parquet" in different


def test_grammar_reports_agree_with_structured_findings():
    for seed in range(600):
        spec = sample_spec(seed)
        assert_report_agrees(spec.report, spec.findings)
        assert_report_agrees(spec.impression, [f for f in spec.findings if f["present"]])
        assert max(spec.size) <= MAX_SIDE
        names = {f["finding"] for f in spec.findings}
        assert names <= set(_PHRASES) | {"no finding"}


def test_report_corpus_is_deterministic_and_varied():
    corpus = report_corpus(300, seed=3)
    assert len(corpus) == 300 and corpus == report_corpus(300, seed=3)
    assert corpus != report_corpus(300, seed=4)
    assert len(set(corpus)) > 150
    vocabulary = {w for text in corpus for w in re.findall(r"[a-z]+", text.lower())}
    assert 40 < len(vocabulary) < 200


def _spec(study_type: str, finding: str, site: str | None, seed: int = 11) -> StudySpec:
    findings = [{"finding": finding, "site": site, "present": True}] if finding else []
    size = STUDY_TYPES[study_type].size
    return StudySpec(study_type, seed, size, "", [], "", findings, {})


@pytest.mark.parametrize("study_type", sorted(STUDY_TYPES))
def test_findings_are_drawn_where_the_report_says(study_type):
    """Each sited finding changes mostly the half of the image its site names (patient right = image left)."""
    stype = STUDY_TYPES[study_type]
    checked = 0
    for finding, sites in stype.candidates.items():
        for site in sites:
            if not site:
                continue
            base = np.asarray(render_study(_spec(study_type, "", None)), dtype=float)
            drawn = np.asarray(render_study(_spec(study_type, finding, site)), dtype=float)
            diff = np.abs(drawn - base)
            height, width = diff.shape
            # Visible: a clear local contrast change over at least a few dozen pixels.
            assert (diff > 40).sum() >= 30, (finding, site, (diff > 40).sum())
            if site.startswith(("right", "left")):
                image_left, image_right = diff[:, : width // 2].sum(), diff[:, width // 2 :].sum()
                expected_left = site.startswith("right")
                assert (image_left > image_right) == expected_left, (finding, site, image_left, image_right)
                checked += 1
            if any(word in site for word in ("upper", "frontal", "lower", "occipital")):
                top, bottom = diff[: height // 2].sum(), diff[height // 2 :].sum()
                assert (top > bottom) == any(w in site for w in ("upper", "frontal")), (finding, site)
    # Lateral chest, knee and hand sites carry no side; every other type has sided sites to check.
    assert checked > 0 or study_type in {"chest_xr_lateral", "knee_xr", "hand_xr"}


def test_phantom_is_deterministic():
    a, b = generate_study(5), generate_study(5)
    assert a.spec == b.spec and a.image.tobytes() == b.image.tobytes()
    assert a.image.mode == "L"


def test_sidecar_findings_agree_with_source_texts(sample_dirs):
    root = sample_dirs["a"]
    manifest = json.loads((root / "MANIFEST.json").read_text())
    checked = 0

    def sidecar(folder: Path) -> dict:
        return {row["id"]: row["findings"] for row in map(json.loads, (folder / "findings.jsonl").open())}

    roco = sidecar(root / "roco")
    for split in ("train", "validation"):
        for line in (root / "roco" / "data" / split / "radiology" / "captions.txt").open(encoding="utf-8"):
            roco_id, caption = line.rstrip("\n").split("\t")
            assert caption.startswith(" ")
            if roco_id in roco:
                assert_report_agrees(caption, roco[roco_id])
                checked += 1

    rocov2 = sidecar(root / "rocov2")
    for parquet in sorted((root / "rocov2" / "data").glob("*.parquet")):
        for row in pq.read_table(parquet, columns=["image_id", "caption"]).to_pylist():
            if row["image_id"] in rocov2:
                assert_report_agrees(row["caption"], rocov2[row["image_id"]])
                checked += 1

    medpix = sidecar(root / "medpix")
    junk = 0
    for line in (root / "medpix" / "MedPix-2-0" / "Descriptions.json").read_text().split("\n")[:1]:
        for row in json.loads(line):
            caption = row["Description"]["Caption"]
            if row["image"] in medpix:
                if caption in ("IN PROGRESS", "pelvis"):
                    junk += 1
                    continue
                assert_report_agrees(caption, medpix[row["image"]])
                checked += 1
    assert junk == manifest["gotchas"]["medpix_junk_captions"] > 0

    openi = sidecar(root / "openi")
    no_images = empty = 0
    for xml_path in sorted((root / "openi" / "ecgen-radiology").glob("*.xml")):
        tree = ET.parse(xml_path).getroot()
        sections = {e.get("Label"): e.text or "" for e in tree.iter("AbstractText")}
        uid = tree.find("uId").get("id")
        text = sections["FINDINGS"] or sections["IMPRESSION"]
        empty += not sections["FINDINGS"]
        images = [e.get("id") for e in tree.iter("parentImage")]
        no_images += not images
        for image_id in images:
            # Flat beside ecgen-radiology/, as `tar xf NLMCXR_png.tgz` (no top folder) leaves them.
            assert (root / "openi" / f"{image_id}.png").is_file()
        assert_report_agrees(text, openi[uid])
        checked += 1
    assert no_images == manifest["gotchas"]["openi_reports_without_images"] > 0
    assert empty == manifest["gotchas"]["openi_empty_findings"] > 0

    pmc_oa = sidecar(root / "pmc_oa")
    rows = [json.loads(line) for line in (root / "pmc_oa" / "pmc_oa.jsonl").open(encoding="utf-8")]
    assert len(rows) == manifest["sources"]["pmc_oa"]["rows"] > 0
    articles = {row["image"].split("_", 1)[0] for row in rows}
    assert len(articles) == manifest["sources"]["pmc_oa"]["articles"] <= len(rows)
    for row in rows:
        # The row fields of axiong/pmc_oa's loading script; images.zip unzipped into images/.
        assert list(row) == ["image", "caption", "alignment_type", "alignment_score"]
        assert re.fullmatch(r"PMC\d+_Fig\d_\d\.jpg", row["image"])
        assert (root / "pmc_oa" / "images" / "caption_T060_filtered_top4_sep_v0_subfigures" / row["image"]).is_file()
        assert_report_agrees(row["caption"], pmc_oa[row["image"]])
        checked += 1

    dicom = sidecar(root / "dicom")
    with (root / "dicom" / "captions.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["file_name"] in dicom:
                assert_report_agrees(row["caption"], dicom[row["file_name"]])
                checked += 1
    assert checked >= NUM_STUDIES


def test_every_dicom_file_decodes_to_a_non_blank_8bit_image(sample_dirs):
    files = sorted((sample_dirs["a"] / "dicom").glob("*.dcm"))
    assert len(files) >= 12
    for path in files:
        image = dicom_to_image(path)
        pixels = np.asarray(image)
        assert image.mode in ("L", "RGB") and pixels.dtype == np.uint8, path.name
        assert pixels.std() > 5, path.name


def test_phantom_dicom_round_trips_through_windowing(sample_dirs):
    import pydicom

    path = next((sample_dirs["a"] / "dicom").glob("phantom_000_*.dcm"))
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsAllocated == 16 and "WindowCenter" in ds
    spec = sample_spec(0, "chest_xr_pa")
    np.testing.assert_array_equal(np.asarray(dicom_to_image(path)), np.asarray(render_study(spec)))


def test_roco_rocov2_overlap_and_formats(sample_dirs):
    from datasets import load_dataset

    root = sample_dirs["a"]
    manifest = json.loads((root / "MANIFEST.json").read_text())
    train = root / "roco" / "data" / "train" / "radiology"
    licences = list(csv.DictReader((train / "licences.txt").open()))
    for line in (train / "dlinks.txt").open():
        roco_id, command, image_name = line.rstrip("\n").split("\t")
        pmc_id = command.split(" ")[2].split("/")[-1][:-7]
        # Current scripts/fetch.py naming (razorx89/roco-dataset a1f0ad6): images/<ROCO_ID>.jpg.
        assert (train / "images" / f"{roco_id}.jpg").is_file()
        assert not (train / "images" / f"{pmc_id}_{image_name}").exists()
        assert {"ROCO_ID": roco_id, "PMC_ID": f"{pmc_id}_{image_name}"}.items() <= next(
            r for r in licences if r["ROCO_ID"] == roco_id
        ).items()
    for name in ("keywords", "cuis", "semtypes"):
        for line in (train / f"{name}.txt").open():
            assert line.split("\t")[1] == ""

    roco_images = {p.read_bytes() for p in (root / "roco").rglob("*.jpg")}
    dataset = load_dataset(str(root / "rocov2"))
    assert set(dataset) == {"train", "validation", "test"}
    assert dataset["train"].features["cui"].feature.dtype == "string"
    exact = sum(
        row["image"]["bytes"] in roco_images
        for split in ("train", "validation", "test")
        for row in pq.read_table(root / "rocov2" / "data" / f"{split}-00000-of-00001.parquet").to_pylist()
    )
    assert exact == manifest["gotchas"]["roco_rocov2_exact_duplicate_images"] > 0
    assert isinstance(dataset["train"][0]["image"], Image.Image)

    captions = list(csv.DictReader((root / "rocov2_csv" / "train_captions.csv").open()))
    for row in captions:
        assert (root / "rocov2_csv" / "train" / f"{row['ID']}.png").is_file()
    assert (root / "medpix" / "MedPix-2-0" / "Case_topic.json").read_text().count("\\/") > 0


def test_cli_refuses_non_empty_dir_without_overwrite(tmp_path, capsys):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    assert main(["sample-data", "--output-dir", str(target), "--num-studies", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and str(target) in err
    assert main(["sample-data", "--output-dir", str(target), "--num-studies", "40", "--overwrite"]) == 0
    assert (target / "MANIFEST.json").is_file() and (target / "keep.txt").is_file()
    assert main(["sample-data", "--output-dir", str(tmp_path / "x"), "--num-studies", "3"]) == 2
    assert "--num-studies" in capsys.readouterr().err


def test_distinct_phantoms_are_not_near_duplicates_but_planted_copies_are(sample_dirs):
    import io

    import imagehash

    hashes = [imagehash.phash(generate_study(seed, "chest_xr_pa").image) for seed in range(15)]
    assert min(hashes[i] - hashes[j] for i in range(15) for j in range(i + 1, 15)) > 4

    root = sample_dirs["a"]
    manifest = json.loads((root / "MANIFEST.json").read_text())
    roco = {p.read_bytes(): imagehash.phash(Image.open(p)) for p in (root / "roco").rglob("*.jpg")}
    near = 0
    for parquet in sorted((root / "rocov2" / "data").glob("*.parquet")):
        for row in pq.read_table(parquet, columns=["image"]).to_pylist():
            data = row["image"]["bytes"]
            if data not in roco:
                digest = imagehash.phash(Image.open(io.BytesIO(data)))
                near += any(digest - other <= 4 for other in roco.values())
    assert near >= manifest["gotchas"]["roco_rocov2_near_duplicate_images"] > 0
