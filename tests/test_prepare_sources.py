# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl prepare` on every layout the public releases really have, and on the ways a run used to lose data.

Fixtures are in `tests/fixtures/sources/releases.py` (provenance on each writer). Each layout test checks the
records kept, the drop reasons and that every kept image is the one written for its own record id.
"""

import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medvl_recipes.cli import main
from medvl_recipes.data.prepare import prepare_dataset
from tests.fixtures.sources.releases import (
    expected_image,
    matches,
    png_bytes,
    write_kaggle_iu_release,
    write_medpix_release,
    write_openi_release,
    write_pmc_oa_release,
    write_roco_release,
    write_rocov2_zenodo_release,
)
from tests.test_sources import write_dicom


def prepare_one(tmp_path: Path, source: dict, **config) -> tuple[dict, list[dict]]:
    """Prepare one source; return the report and every written row (train + validation)."""
    out = tmp_path / "out"
    prepare_dataset(
        {"sources": [source], "val_fraction": 0.0, **config}, output_dir=out, num_proc=1, show_progress=False
    )
    report = json.loads((out / "prepare_report.json").read_text())
    # val_fraction 0: only the train split is written (an empty validation parquet would not load).
    assert not (out / "data" / "validation-00000-of-00001.parquet").exists()
    rows = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()
    return report, rows


def assert_paired(rows: list[dict]) -> None:
    """Every written image is the fixture image of its own record (the `source:` prefix is the source name)."""
    for row in rows:
        record_id = row["id"].split(":", 1)[1]
        assert matches(Image.open(io.BytesIO(row["image"]["bytes"])), record_id), row["id"]


def assert_counted(report: dict) -> None:
    """Every record read is counted once: kept or dropped under a reason."""
    for name, s in report["sources"].items():
        assert s["read"] == s["kept"] + sum(s["dropped"].values()), name


# Layouts


@pytest.mark.parametrize("naming", ["new", "old"])
@pytest.mark.parametrize("level", ["", "data", "data/validation", "data/validation/radiology"])
def test_roco_every_image_naming_and_folder_level(tmp_path, naming, level):
    root = write_roco_release(tmp_path / "roco-dataset", naming=naming)
    report, rows = prepare_one(tmp_path, {"type": "roco", "path": str(root / level)})
    s = report["sources"]["roco"]
    # ROCO_00108's image was never fetched.
    assert (s["read"], s["kept"], s["dropped"]) == (4, 3, {"missing_image": 1})
    assert_paired(rows)
    assert_counted(report)
    by_id = {r["id"]: r for r in rows}
    assert by_id["roco:ROCO_00543"]["text"].startswith("Thoracic computed tomographic scan")  # two leading spaces
    assert by_id["roco:ROCO_00020"]["group_id"] == "roco:PMC3970251"
    assert by_id["roco:ROCO_00020"]["license"] == "cc-by"


@pytest.mark.parametrize("png_layout", ["flat", "NLMCXR_png", "custom"])
def test_openi_pngs_flat_in_nlmcxr_png_or_given_folder(tmp_path, png_layout):
    root = write_openi_release(tmp_path / "openi", png_layout=png_layout)
    options = {"image_dir": "pngs"} if png_layout == "custom" else {}
    report, rows = prepare_one(tmp_path, {"type": "openi", "path": str(root), "options": options})
    s = report["sources"]["openi"]
    assert (s["read"], s["kept"], s["dropped"]) == (4, 3, {"no_image": 1})
    assert_paired(rows)
    assert_counted(report)
    texts = {r["id"]: r["text"] for r in rows}
    assert texts["openi:CXR2_IM-0652-1001"] == "No acute cardiopulmonary abnormality. Heart size is normal."
    assert texts["openi:CXR1_1_IM-0001-3001"] == texts["openi:CXR1_1_IM-0001-4001"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_openi_kaggle_csvs_in_any_encoding(tmp_path, encoding):
    root = write_kaggle_iu_release(tmp_path / "iu", encoding=encoding)
    report, rows = prepare_one(tmp_path, {"type": "openi", "path": str(root)})
    s = report["sources"]["openi"]
    assert (s["read"], s["kept"], s["dropped"]) == (3, 3, {})
    assert_paired(rows)
    assert s["changed"].get("text_decoded_cp1252", 0) == (3 if encoding == "cp1252" else 0)


@pytest.mark.parametrize("layout", ["images", "root"])
def test_pmc_oa_images_zip_folder(tmp_path, layout):
    root = write_pmc_oa_release(tmp_path / "pmc_oa", layout=layout)
    report, rows = prepare_one(tmp_path, {"type": "pmc_oa", "path": str(root)})
    assert report["sources"]["pmc_oa"]["kept"] == 3
    assert_paired(rows)
    assert {r["group_id"] for r in rows} == {"pmc_oa:PMC212319", "pmc_oa:PMC2000001"}


@pytest.mark.parametrize("layout", ["MedPix-2-0", "root"])
def test_medpix_placeholder_is_junk_and_a_repeated_line_is_counted(tmp_path, layout):
    root = write_medpix_release(tmp_path / "MedPix-2.0", layout=layout)
    report, rows = prepare_one(tmp_path, {"type": "medpix", "path": str(root), "splits": ["validation"]})
    s = report["sources"]["medpix"]
    assert (s["read"], s["kept"]) == (5, 2)
    assert s["dropped"] == {"junk_text": 2, "duplicate_id": 1}
    assert_paired(rows)
    assert_counted(report)
    # 2 of 5 kept is under half: a warning, not an error.
    assert any("'medpix' kept 2 of 5" in w and "junk_text 2" in w for w in report["warnings"])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_rocov2_zenodo_csv_in_any_encoding(tmp_path, encoding):
    root = write_rocov2_zenodo_release(tmp_path / "rocov2", encoding=encoding)
    report, rows = prepare_one(tmp_path, {"type": "rocov2", "path": str(root)})
    assert report["sources"]["rocov2"]["kept"] == 4
    assert_paired(rows)
    texts = {row["id"]: row["text"] for row in rows}
    # Curly quotes survive every encoding; the caption's leading space is not kept.
    assert texts["rocov2:ROCOv2_2023_test_000011"].endswith("the \u201cstring of pearls\u201d sign.")
    assert texts["rocov2:ROCOv2_2023_test_000021"].startswith("Computed tomography of the head")


def _report_parquet(path: Path, columns: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def test_hub_report_schema_findings_and_impression_text_from_a_single_parquet_file(tmp_path):
    ids = ["s50414267", "s53189527"]
    path = _report_parquet(
        tmp_path / "mimic" / "train-00000-of-00001.parquet",
        {
            "image": [{"bytes": png_bytes(i), "path": None} for i in ids],
            "id": ids,
            "findings": ["There is no focal consolidation, effusion or pneumothorax.", ""],
            "impression": ["No acute cardiopulmonary process.", "Low lung volumes with bibasilar atelectasis."],
        },
    )
    report, rows = prepare_one(tmp_path, {"type": "hub", "path": str(path)})
    assert report["sources"]["hub"]["kept"] == 2
    assert_paired(rows)
    texts = {r["id"]: r["text"] for r in rows}
    assert texts["hub:s50414267"] == (
        "There is no focal consolidation, effusion or pneumothorax. No acute cardiopulmonary process."
    )
    assert texts["hub:s53189527"] == "Low lung volumes with bibasilar atelectasis."
    assert all(r["findings"] == [] for r in rows)  # a text `findings` column is not structured findings
    _, only_impression = prepare_one(
        tmp_path / "b", {"type": "hub", "path": str(path), "options": {"text_column": "impression"}}
    )
    assert {r["text"] for r in only_impression} == {
        "No acute cardiopulmonary process.",
        "Low lung volumes with bibasilar atelectasis.",
    }


def test_dicom_cd_export_without_extensions_and_dicomdir(tmp_path):
    root = tmp_path / "cd"
    write_dicom(root / "DICOM" / "IM000001", seed=1, study_uid="1.2.3", StudyDescription="CT CHEST WITH CONTRAST")
    write_dicom(root / "DICOM" / "IM000002", seed=2, study_uid="1.2.3", StudyDescription="CT CHEST WITH CONTRAST")
    # A DICOMDIR carries the DICM preamble too; it is a media directory, never an image.
    write_dicom(root / "DICOMDIR", seed=3, study_uid="1.2.3", StudyDescription="DIRECTORY")
    source = {"type": "dicom", "path": str(root), "options": {"caption_tags": ["StudyDescription"]}}
    report, rows = prepare_one(tmp_path, source)
    s = report["sources"]["dicom"]
    assert (s["read"], s["kept"], s["dropped"]) == (2, 2, {})
    assert len({r["id"] for r in rows}) == 2 and not any("IM0000" in r["id"] for r in rows)  # keyed ids, no paths
    assert s["changed"]["image_dicom_windowed"] == 2


# Silent loss


def run_cli(tmp_path: Path, mixture: dict, capsys) -> tuple[int, str]:
    config = tmp_path / "mixture.yaml"
    config.write_text(json.dumps(mixture))  # JSON is YAML
    code = main(["prepare", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--num-proc", "1"])
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("medvl prepare: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_source_that_reads_nothing_fails_naming_path_and_layouts(tmp_path, capsys):
    folder = tmp_path / "roco" / "data" / "train" / "radiology"
    folder.mkdir(parents=True)
    (folder / "captions.txt").write_text("")
    code, err = run_cli(tmp_path, {"sources": [{"type": "roco", "path": str(tmp_path / "roco")}]}, capsys)
    assert_one_line_error(code, err, "'roco'", str(tmp_path / "roco"), "read 0 records", "images/<ROCO_ID>.jpg")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    code, err = run_cli(tmp_path, {"sources": [{"type": "roco", "path": str(empty)}]}, capsys)
    assert_one_line_error(code, err, "no captions.txt under", str(empty), "layouts known")


def test_a_source_that_keeps_nothing_fails_with_its_drop_reasons(tmp_path, capsys):
    root = write_openi_release(tmp_path / "openi", png_layout="custom")  # PNGs where nothing looks by default
    code, err = run_cli(tmp_path, {"sources": [{"type": "openi", "path": str(root)}]}, capsys)
    assert_one_line_error(
        code, err, "'openi'", "kept 0 of 4", "missing_image 3", "NLMCXR_png/CXR1_1_IM-0001-3001.png", "image_dir"
    )


def test_a_source_that_keeps_under_half_is_a_warning_in_log_and_table(tmp_path, caplog):
    root = write_roco_release(tmp_path / "roco", naming="new")
    for name in ("ROCO_00020.jpg", "ROCO_00027.jpg"):
        (root / "data" / "validation" / "radiology" / "images" / name).unlink()
    with caplog.at_level("INFO"):
        report, _ = prepare_one(tmp_path, {"type": "roco", "path": str(root)})
    assert report["warnings"] == [
        f"source 'roco' kept 1 of 4 records read (25%) from {root}; top drop reasons: missing_image 3"
    ]
    assert report["warnings"][0] in caplog.text
    assert "| kept 25% < 50%: missing_image 3 |" in caplog.text  # the summary table's warning column


def test_a_source_emptied_by_cross_source_dedup_is_a_warning_that_says_so(tmp_path, caplog):
    # One release re-published under a second path (as ROCOv2's CSV form repeats its parquet form): every record of
    # the copy is an exact image+text duplicate of one kept from the first source. That is the one 0-kept case
    # that does not fail the run.
    first = write_rocov2_zenodo_release(tmp_path / "rocov2")
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    sources = [{"type": "rocov2", "path": str(first)}, {"type": "rocov2", "name": "copy", "path": str(copy)}]

    def prepare_two(out: Path) -> dict:
        prepare_dataset({"sources": sources, "val_fraction": 0.0}, output_dir=out, num_proc=1, show_progress=False)
        return json.loads((out / "prepare_report.json").read_text())

    with caplog.at_level("INFO"):
        report = prepare_two(tmp_path / "out")
    assert_counted(report)
    s = report["sources"]["copy"]
    assert (s["read"], s["kept"], s["dropped"]) == (4, 0, {"duplicate_pair": 4})
    assert s["duplicate_of"] == {"rocov2": 4} and s["emptied_by_cross_source_dedup"] is True
    assert report["sources"]["rocov2"]["kept"] == 4 and report["sources"]["rocov2"]["duplicate_of"] == {}
    assert report["sources"]["rocov2"]["emptied_by_cross_source_dedup"] is False
    (warning,) = report["warnings"]
    assert warning.startswith(f"source 'copy' kept 0 of 4 records read from {copy}: emptied by cross-source dedup")
    assert "exact duplicate (same pixels, same text) of a record kept from 'rocov2' 4" in warning
    assert warning in caplog.text
    assert "| kept 0: emptied by cross-source dedup, all 4 duplicates of 'rocov2' 4 |" in caplog.text

    # One record of its own: not emptied, so the usual under-half warning, naming the duplicates' other source.
    line = "ROCOv2_2023_test_000009,Early sagittal T2-weighted MRI.\n"  # test_captions.csv (982165e)
    with (copy / "test_captions.csv").open("a", encoding="utf-8") as handle:
        handle.write(line)
    expected_image("ROCOv2_2023_test_000009").convert("RGB").save(copy / "test" / "ROCOv2_2023_test_000009.jpg")
    report = prepare_two(tmp_path / "out2")
    s = report["sources"]["copy"]
    assert (s["kept"], s["emptied_by_cross_source_dedup"]) == (1, False)
    assert report["warnings"] == [
        f"source 'copy' kept 1 of 5 records read (20%) from {copy}; top drop reasons: duplicate_pair 4; "
        "duplicates of records kept from other sources: 'rocov2' 4"
    ]


# Encodings, missing columns, typos: one line, exit 2, no traceback


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    cases = []
    pmc = write_pmc_oa_release(tmp_path / "pmc_cp1252")
    (pmc / "pmc_oa.jsonl").write_bytes('{"image": "a.jpg", "caption": "Caf\u00e9 au lait spots."}\n'.encode("cp1252"))
    cases.append(({"type": "pmc_oa", "path": str(pmc)}, ["pmc_oa.jsonl", "not UTF-8"]))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train_captions.csv").write_bytes(b"ID,Caption\r\nx,\x81\x8d\x8f\r\n")  # undefined in cp1252 too
    cases.append(({"type": "rocov2", "path": str(broken)}, ["train_captions.csv", "neither UTF-8"]))
    columns = write_rocov2_zenodo_release(tmp_path / "columns", encoding="utf-8-sig")
    (columns / "test_captions.csv").write_text("\ufeffID,Text\nROCOv2_2023_test_000001,x\n")
    cases.append(({"type": "rocov2", "path": str(columns)}, ["missing column(s) ['Caption']", "['ID', 'Text']"]))
    metadata = tmp_path / "imagefolder"
    metadata.mkdir()
    (metadata / "metadata.csv").write_bytes("file_name,text\r\na.png,x\r\n".encode("utf-8-sig"))
    (metadata / "a.png").write_bytes(png_bytes("a"))
    cases.append(
        (
            {"type": "imagefolder", "path": str(metadata), "options": {"text_column": "report"}},
            ["'report' is not a column", "['file_name', 'text']"],
        )
    )
    roco = write_roco_release(tmp_path / "roco")
    cases.append(
        (
            {"type": "roco", "path": str(roco), "options": {"subset": ["radiology"]}},
            ["unknown option(s) ['subset']", "'subsets'"],
        )
    )
    cases.append(({"type": "hub", "path": str(tmp_path / "typo" / "x.parquet")}, ["does not exist", "not a Hub id"]))
    cases.append(({"type": "hub", "path": "./data/reports"}, ["does not exist", "not a Hub id"]))
    parquet = _report_parquet(
        tmp_path / "hub" / "train.parquet", {"image": [{"bytes": png_bytes("a"), "path": None}], "note": ["x"]}
    )
    cases.append(({"type": "hub", "path": str(parquet)}, ["no text column", "['image', 'note']"]))
    cases.append(
        (
            {"type": "hub", "path": str(parquet), "options": {"text_column": "report"}},
            ["'report' is not a column", "['image', 'note']"],
        )
    )
    for index, (source, needles) in enumerate(cases):
        case_dir = tmp_path / f"case{index}"
        case_dir.mkdir()
        code, err = run_cli(case_dir, {"sources": [source]}, capsys)
        assert_one_line_error(code, err, *needles)


def test_bom_csv_that_used_to_crash_now_reads(tmp_path):
    metadata = tmp_path / "imagefolder"
    metadata.mkdir()
    (metadata / "metadata.csv").write_bytes("file_name,text\r\na.png,Axial CT of the chest.\r\n".encode("utf-8-sig"))
    (metadata / "a.png").write_bytes(png_bytes("a.png"))
    report, rows = prepare_one(tmp_path, {"type": "imagefolder", "path": str(metadata)})
    assert report["sources"]["imagefolder"]["kept"] == 1
    assert_paired(rows)
