# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl prepare` end to end: cleaning, de-duplication, leakage control, split, determinism and the output format."""

import itertools
import json
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medvl_recipes.data.cleaning import clean_text
from medvl_recipes.data.dedup import find_near_duplicate_pairs, normalise_report
from medvl_recipes.data.mixture import CleaningConfig, DatasetMixtureConfig, load_mixture_config
from medvl_recipes.data.prepare import prepare_dataset
from medvl_recipes.data.split import split_groups
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.dataset_card import is_non_commercial
from tests.test_sources import (
    noise_image,
    write_dicom,
    write_hub_parquet,
    write_imagefolder,
    write_medpix,
    write_openi,
    write_pmc_oa,
    write_roco,
    write_rocov2_csv,
    write_rocov2_parquet,
)


def read_split(out: Path, split: str) -> list[dict]:
    return pq.read_table(out / "data" / f"{split}-00000-of-00001.parquet").to_pylist()


# Config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing key 'sources'"),
        ({"sources": []}, "sources: expected a non-empty list"),
        ({"sources": [{"type": "roco"}]}, r"sources\[0\]: missing key\(s\) \['path'\]"),
        ({"sources": [{"type": "roco", "path": "r", "wieght": 1}]}, r"sources\[0\]: unknown key\(s\) \['wieght'\]"),
        (
            {"sources": [{"type": "roco", "path": "r", "weight": 2}]},
            r"sources\[roco\].weight: expected a number in \(0, 1\]",
        ),
        ({"sources": [{"type": "roco", "path": "a"}, {"type": "roco", "path": "b"}]}, "duplicate name"),
        ({"sources": [{"type": "roco", "path": "r"}], "val_fraction": 1.5}, "val_fraction: expected a number in"),
        (
            {"sources": [{"type": "roco", "path": "r"}], "cleaning": {"max_sides": 3}},
            r"cleaning: unknown key\(s\) \['max_sides'\]",
        ),
        ({"sources": [{"type": "roco", "path": "r"}], "cleaning": {"deid_action": "zap"}}, "cleaning.deid_action"),
        ({"sources": [{"type": "roco", "path": "r"}], "dedup": "yes"}, "dedup: expected a mapping"),
    ],
)
def test_mixture_config_rejects_bad_keys(data, message):
    with pytest.raises(ValueError, match=message):
        DatasetMixtureConfig.from_dict(data)


def test_recipes_parse_and_sample_covers_every_sample_source(repo_root):
    sample = load_mixture_config(repo_root / "recipes" / "data" / "sample.yaml")
    assert {(s.type, s.path) for s in sample.sources} == {
        ("roco", "roco"),
        ("rocov2", "rocov2"),
        ("rocov2", "rocov2_csv"),
        ("medpix", "medpix"),
        ("openi", "openi"),
        ("pmc_oa", "pmc_oa"),
        ("dicom", "dicom"),
    }
    real = load_mixture_config(repo_root / "recipes" / "data" / "roco_medpix_openi.yaml")
    assert [s.type for s in real.sources] == ["roco", "medpix", "openi"]
    assert str(sample.resolve_path(sample.sources[0], "/x")) == "/x/roco"


# Text cleaning


def test_clean_text():
    config = CleaningConfig(min_words=3, max_words=12)
    cleaned = clean_text("  There are no XXXX of a\npleural effusion.  Normal chest x-XXXX. ", config)
    assert cleaned.text == "There are no ___ of a pleural effusion. Normal chest x-___."
    assert cleaned.changes == ["text_whitespace_normalised", "text_deid_masked"]
    dropped = clean_text(
        "There are no XXXX of a pleural effusion. The heart is normal.", CleaningConfig(deid_action="drop_sentence")
    )
    assert dropped.text == "The heart is normal."
    assert clean_text("IN PROGRESS", config).drop_reason == "junk_text"
    assert clean_text("pelvis", config).drop_reason == "text_too_short"
    assert clean_text(" \n ", config).drop_reason == "empty_text"
    assert clean_text(" ".join(["word"] * 13), config).drop_reason == "text_too_long"
    assert clean_text("Clean text stays unchanged.", config).changes == []


@pytest.mark.parametrize(
    ("license_id", "restricted"),
    [
        ("cc-by-nc-sa-4.0", True),
        ("cc-by-nc", True),
        ("no-cc-code", True),
        ("medpix-terms-non-commercial", True),
        ("unknown", True),
        ("cc-by-4.0", False),
        ("cc0", False),
        ("cc-by-sa", False),
    ],
)
def test_non_commercial_licences_are_called_out(license_id, restricted):
    assert is_non_commercial(license_id) is restricted


# De-duplication and split


def test_near_duplicate_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=40, dtype=np.int64).astype(np.uint64)
    # Plant close neighbours: flip 1..6 random bits of some hashes.
    planted = []
    for i in range(40):
        value = int(base[i])
        for bit in rng.choice(64, size=int(rng.integers(1, 7)), replace=False):
            value ^= 1 << int(bit)
        planted.append(value)
    hashes = [int(h) for h in base] + planted
    for threshold in (0, 2, 4, 6):
        brute = [
            (i, j)
            for i, j in itertools.combinations(range(len(hashes)), 2)
            if bin(hashes[i] ^ hashes[j]).count("1") <= threshold
        ]
        assert find_near_duplicate_pairs(hashes, threshold) == brute


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_groups_is_stratified_group_aware_and_within_one_group(seed):
    rng = np.random.default_rng(seed)
    groups, strata = [], []
    for stratum, n_groups in (("a", 30), ("b", 7)):
        for g in range(n_groups):
            size = int(rng.integers(1, 6))
            groups += [f"{stratum}{g}"] * size
            strata += [stratum] * size
    assignment = split_groups(groups, strata, val_fraction=0.2, seed=seed)
    assert assignment == split_groups(groups, strata, val_fraction=0.2, seed=seed)
    for stratum in ("a", "b"):
        members = [g for g, s in zip(groups, strata, strict=True) if s == stratum]
        n_val = sum(assignment[g] == "validation" for g in members)
        largest = max(Counter(members).values())
        assert abs(n_val - 0.2 * len(members)) <= largest
    assert split_groups(groups, strata, val_fraction=0.0, seed=seed) == dict.fromkeys(assignment, "train")


def test_split_many_small_strata_still_reaches_val_fraction():
    # Ten sources of five single-record groups: each stratum's own target (0.5 records) rounds to nothing.
    groups = [f"s{s}-g{g}" for s in range(10) for g in range(5)]
    strata = [group.split("-")[0] for group in groups]
    assignment = split_groups(groups, strata, val_fraction=0.1, seed=0)
    assert sum(split == "validation" for split in assignment.values()) == 5


# End to end


@pytest.fixture(scope="module")
def all_formats_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_roco(root / "roco")
    write_rocov2_parquet(root / "rocov2")
    write_rocov2_csv(root / "rocov2_csv")
    write_medpix(root / "medpix")
    write_openi(root / "openi")
    write_pmc_oa(root / "pmc_oa")
    write_imagefolder(root / "folder")
    write_hub_parquet(root / "hub" / "train-00000-of-00001.parquet")
    write_dicom(root / "dicom" / "a.dcm", seed=1, study_uid="1.2.3", StudyDescription="CT CHEST")
    write_dicom(root / "dicom" / "b.dcm", seed=2, study_uid="1.2.3", monochrome1=True)
    (root / "dicom" / "captions.csv").write_text(
        "file_name,caption\na.dcm,Axial CT of the chest shows a small nodule.\nb.dcm,Axial CT of the chest is normal.\n"
    )
    return root


ALL_SOURCES = [
    {"type": "roco", "path": "roco"},
    {"type": "rocov2", "path": "rocov2"},
    {"type": "rocov2", "name": "rocov2_csv", "path": "rocov2_csv"},
    {"type": "medpix", "path": "medpix"},
    {"type": "openi", "path": "openi"},
    {"type": "pmc_oa", "path": "pmc_oa", "license": "CC BY"},
    {"type": "imagefolder", "path": "folder", "options": {"group_column": "study"}},
    {"type": "hub", "path": "hub", "options": {"image_column": "img", "text_column": "report", "id_column": "uid"}},
    {"type": "dicom", "path": "dicom"},
]


@pytest.fixture(scope="module")
def all_formats_dataset(all_formats_root, tmp_path_factory) -> Path:
    config = {"sources": ALL_SOURCES, "val_fraction": 0.3, "seed": 3, "cleaning": {"max_side": 48}}
    return prepare_dataset(
        config,
        output_dir=tmp_path_factory.mktemp("out") / "ds",
        data_root=all_formats_root,
        num_proc=2,
        show_progress=False,
    )


def test_prepare_all_formats_counts_every_drop(all_formats_dataset):
    report = json.loads((all_formats_dataset / "prepare_report.json").read_text())
    sources = report["sources"]
    assert sources["roco"]["dropped"] == {"missing_image": 1} and sources["roco"]["kept"] == 3
    assert sources["rocov2_csv"]["dropped"] == {"missing_image": 1}
    assert sources["medpix"]["dropped"] == {"junk_text": 1, "text_too_short": 1} and sources["medpix"]["kept"] == 3
    assert sources["openi"]["dropped"] == {"no_image": 1} and sources["openi"]["kept"] == 3
    assert sources["openi"]["changed"]["text_deid_masked"] == 2
    assert sources["dicom"]["changed"] == {"image_dicom_windowed": 2, "image_resized": 2}
    assert sources["pmc_oa"]["licenses"] == {"cc-by": 3}
    for name, s in sources.items():
        assert s["read"] == s["kept"] + sum(s["dropped"].values()), name
        assert s["kept"] == s["train"] + s["validation"], name
    assert report["totals"]["kept"] == report["totals"]["train"] + report["totals"]["validation"]
    assert all(v == 0 for k, v in report["leakage"].items() if k != "near_duplicate_pairs_checked")


def test_prepared_dataset_loads_offline_with_the_contract_columns(all_formats_dataset):
    import datasets

    loaded = datasets.load_dataset(str(all_formats_dataset))
    assert set(loaded) == {"train", "validation"}
    assert {"image", "text", "source", "id", "group_id", "license", "findings"} <= set(loaded["train"].column_names)
    assert isinstance(loaded["train"].features["image"], datasets.Image)
    rows = list(loaded["train"]) + list(loaded["validation"])
    assert len({r["id"] for r in rows}) == len(rows)
    by_id = {r["id"]: r for r in rows}
    assert all(r["image"].mode == "RGB" and max(r["image"].size) <= 48 for r in rows)
    openi = by_id["openi:CXR1_1_IM-0001-1001"]
    assert openi["text"] == "The cardiac silhouette is within normal limits. There are no ___ of a pleural effusion."
    assert openi["findings"] == [{"finding": "no finding", "site": None, "present": True}]
    assert by_id["medpix:MPX1024_synpic40276"]["modality"] == "MR"
    card = (all_formats_dataset / "README.md").read_text()
    assert "Non-commercial" in card and "cc-by-nc-sa-4.0" in card and "| medpix | `medpix` | 5 | 3 |" in card


def test_same_config_and_seed_give_byte_identical_parquet(all_formats_root, all_formats_dataset, tmp_path):
    config = {"sources": ALL_SOURCES, "val_fraction": 0.3, "seed": 3, "cleaning": {"max_side": 48}}
    again = prepare_dataset(
        config, output_dir=tmp_path / "again", data_root=all_formats_root, num_proc=1, show_progress=False
    )
    for split in ("train", "validation"):
        name = f"data/{split}-00000-of-00001.parquet"
        assert (again / name).read_bytes() == (all_formats_dataset / name).read_bytes()
    other_seed = prepare_dataset(
        {**config, "seed": 4},
        output_dir=tmp_path / "seed4",
        data_root=all_formats_root,
        num_proc=1,
        show_progress=False,
    )
    assert {r["id"] for r in read_split(other_seed, "validation")} != {
        r["id"] for r in read_split(all_formats_dataset, "validation")
    }


def test_duplicates_across_sources_stay_in_one_split(tmp_path):
    """Plant exact and near-duplicate images and identical reports across two sources."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
    rows_a, rows_b = [], []
    for i in range(16):
        noise_image(1000 + i, size=(96, 96)).save(a / f"a{i}.png")
        rows_a.append((f"a{i}.png", f"Study {i} of source a shows finding number {i} in the left lung."))
        noise_image(2000 + i, size=(96, 96)).save(b / f"b{i}.png")
        rows_b.append((f"b{i}.png", f"Study {i} of source b shows finding number {i} in the right lung."))
    # Exact duplicate: the same pixels re-encoded as JPEG-free TIFF in source b, with another report.
    Image.open(a / "a0.png").save(b / "dup_exact.tiff")
    rows_b.append(("dup_exact.tiff", "A different report for the very same image."))
    # Near duplicate: slightly brighter and re-scaled copy of a1.
    near = Image.open(a / "a1.png").point(lambda v: min(255, v + 3)).resize((100, 100))
    near.save(b / "dup_near.png")
    rows_b.append(("dup_near.png", "Another report for an almost identical image."))
    # Identical report (after normalisation) on an unrelated image.
    noise_image(3000, size=(96, 96)).save(b / "same_report.png")
    rows_b.append(("same_report.png", "  study 2 of SOURCE A shows finding number 2 in the left lung "))
    # An exact image+text repeat is dropped, not just grouped.
    Image.open(a / "a3.png").save(b / "pair.png")
    rows_b.append(("pair.png", rows_a[3][1]))
    for folder, rows in ((a, rows_a), (b, rows_b)):
        (folder / "metadata.csv").write_text("file_name,text\n" + "".join(f'{f},"{t}"\n' for f, t in rows))
    config = {
        "sources": [
            {"type": "imagefolder", "path": "a", "name": "a"},
            {"type": "imagefolder", "path": "b", "name": "b"},
        ],
        "val_fraction": 0.5,
        "seed": 0,
    }
    out = prepare_dataset(config, output_dir=tmp_path / "out", data_root=tmp_path, num_proc=1, show_progress=False)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["sources"]["b"]["dropped"] == {"duplicate_pair": 1}
    assert report["dedup"]["exact_image_duplicates"] == 1
    assert report["dedup"]["near_duplicate_pairs_across_sources"] >= 1
    assert report["dedup"]["identical_report_duplicates"] == 1
    leakage = report["leakage"]
    assert leakage["near_duplicate_pairs_checked"] >= 1
    assert {k: v for k, v in leakage.items() if k != "near_duplicate_pairs_checked"} == dict.fromkeys(
        [
            "shared_images",
            "shared_reports",
            "near_duplicate_pairs_across_splits",
            "groups_across_splits",
            "source_groups_across_splits",
        ],
        0,
    )
    split_of = {}
    group_of = {}
    for split in ("train", "validation"):
        for row in read_split(out, split):
            split_of[row["id"]], group_of[row["id"]] = split, row["group_id"]
    assert 0 < sum(s == "validation" for s in split_of.values()) < len(split_of)
    for planted, original in (
        ("b:dup_exact.tiff", "a:a0.png"),
        ("b:dup_near.png", "a:a1.png"),
        ("b:same_report.png", "a:a2.png"),
    ):
        assert group_of[planted] == group_of[original] and split_of[planted] == split_of[original]
    # Independent check: no normalised report and no image pixel hash appears in both splits.
    texts = {split: {normalise_report(r["text"]) for r in read_split(out, split)} for split in ("train", "validation")}
    assert not texts["train"] & texts["validation"]
    pixels = {
        split: {Image.open(__import__("io").BytesIO(r["image"]["bytes"])).tobytes() for r in read_split(out, split)}
        for split in ("train", "validation")
    }
    assert not pixels["train"] & pixels["validation"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _png_16bit(path: Path) -> None:
    array = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(array, mode="I;16").save(path)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's signature)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture
def bad_files_root(tmp_path) -> Path:
    root = tmp_path / "bad"
    root.mkdir()
    files = {
        "good.png": lambda p: noise_image(1, size=(64, 64)).save(p),
        "truncated.png": lambda p: (noise_image(2, size=(256, 256), mode="RGB").save(p), _truncate(p)),
        "zero.png": lambda p: p.write_bytes(b""),
        "not_image.png": lambda p: p.write_text("this is not an image at all"),
        "sixteen.png": _png_16bit,
        "cmyk.jpg": lambda p: noise_image(3, size=(64, 64), mode="RGB").convert("CMYK").save(p),
        "rgba.png": lambda p: noise_image(4, size=(64, 64), mode="RGBA").save(p),
        "palette.png": lambda p: noise_image(5, size=(64, 64), mode="RGB").convert("P").save(p),
        "large.png": lambda p: noise_image(6, size=(300, 200)).save(p),
        "bomb.png": lambda p: _png_claiming(p, 30_000, 30_000),
        "tiny.png": lambda p: noise_image(7, size=(8, 8)).save(p),
    }
    rows = []
    for index, (name, write) in enumerate(files.items()):
        write(root / name)
        rows.append(f'{name},"Radiograph number {index} of the test set with a report."\n')
    (root / "metadata.csv").write_text("file_name,text\n" + "".join(rows))
    return root


def test_bad_files_are_counted_by_reason_and_strict_names_the_file(bad_files_root, tmp_path):
    config = {
        "sources": [{"type": "imagefolder", "path": str(bad_files_root), "name": "bad"}],
        "cleaning": {"max_side": 128, "max_pixels": 200_000_000},
        "val_fraction": 0.3,  # 6 kept records: the 0.05 default would leave validation empty, which is refused
    }
    out = prepare_dataset(config, output_dir=tmp_path / "out", num_proc=2, show_progress=False)
    report = json.loads((out / "prepare_report.json").read_text())["sources"]["bad"]
    assert report["dropped"] == {
        "truncated_image": 1,
        "zero_byte_image": 1,
        "not_an_image": 1,
        "decompression_bomb": 1,
        "image_too_small": 1,
    }
    assert report["kept"] == 6
    assert report["changed"] == {
        "image_mode_converted:I;16": 1,
        "image_mode_converted:CMYK": 1,
        "image_mode_converted:RGBA": 1,
        "image_mode_converted:P": 1,
        "image_mode_converted:L": 2,
        "image_resized": 1,
    }
    rows = {r["id"]: r for r in read_split(out, "train") + read_split(out, "validation")}
    sixteen = Image.open(__import__("io").BytesIO(rows["bad:sixteen.png"]["image"]["bytes"]))
    assert sixteen.mode == "RGB" and sixteen.getextrema()[0] == (0, 255)  # 16-bit range stretched, not clipped
    large = Image.open(__import__("io").BytesIO(rows["bad:large.png"]["image"]["bytes"]))
    assert large.size == (128, 85)
    with pytest.raises(
        MedvlError,
        match=r"source 'bad', record 'truncated.png' in .*metadata.csv:3, image .*truncated.png: truncated_image",
    ):
        prepare_dataset(config, output_dir=tmp_path / "strict", strict=True, num_proc=1, show_progress=False)


def test_cli_prepare_with_data_root(all_formats_root, tmp_path, monkeypatch):
    from medvl_recipes.cli import main

    recipe = tmp_path / "mix.yaml"
    recipe.write_text("data_root: /nonexistent\nval_fraction: 0.0\nsources:\n  - {type: openi, path: openi}\n")
    assert main(["prepare", "--config", str(recipe), "--output-dir", str(tmp_path / "o"), "--num-proc", "1"]) == 2
    code = main(
        [
            "prepare",
            "--config",
            str(recipe),
            "--data-root",
            str(all_formats_root),
            "--output-dir",
            str(tmp_path / "o"),
            "--num-proc",
            "1",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "o" / "prepare_report.json").read_text())
    assert report["totals"]["kept"] == 3
    # The report is published with the dataset: the absolute --data-root is not in it.
    assert str(all_formats_root) not in (tmp_path / "o" / "prepare_report.json").read_text()
    assert report["data_root"] == "<absolute path, not published>"


def test_a_failed_prepare_leaves_the_previous_dataset_whole(all_formats_root, tmp_path):
    from medvl_recipes.cli import main

    recipe = tmp_path / "mix.yaml"
    recipe.write_text("val_fraction: 0.0\nsources:\n  - {type: openi, path: openi}\n")
    out = tmp_path / "o"
    argv = ["prepare", "--config", str(recipe), "--data-root", str(all_formats_root), "--output-dir", str(out)]
    assert main([*argv, "--num-proc", "1"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # The second source exists but holds nothing: the run fails while reading, after the first source was read.
    empty = tmp_path / "empty_openi"
    (empty / "ecgen-radiology").mkdir(parents=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"val_fraction: 0.0\nsources:\n  - {{type: openi, path: {all_formats_root / 'openi'}}}\n"
        f"  - {{type: openi, path: {empty}, name: empty}}\n"
    )
    assert main(["prepare", "--config", str(bad), "--output-dir", str(out), "--num-proc", "1"]) == 2
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # parquet, card and report all untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]  # no temporary folder left behind
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["prepare", "--config", str(recipe), "--data-root", str(all_formats_root), "--output-dir",
                 str(tmp_path / "other")]) == 2  # fmt: skip
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_sample_data_gotchas_are_counted_and_split_is_leak_free(sample_raw_dir, prepared_dataset_dir):
    import datasets

    manifest = json.loads((sample_raw_dir / "MANIFEST.json").read_text())
    report = json.loads((prepared_dataset_dir / "prepare_report.json").read_text())
    assert set(report["sources"]) == set(manifest["sources"])
    gotchas = manifest["gotchas"]
    medpix = report["sources"]["medpix"]["dropped"]
    assert medpix.get("junk_text", 0) + medpix.get("text_too_short", 0) == gotchas["medpix_junk_captions"]
    assert report["sources"]["openi"]["dropped"]["no_image"] == gotchas["openi_reports_without_images"]
    assert report["sources"]["rocov2"]["dropped"]["duplicate_pair"] == gotchas["roco_rocov2_exact_duplicate_images"]
    # The Zenodo CSV form re-publishes ROCOv2 records already read from the parquet form: kept 0, legitimately.
    csv_form = report["sources"]["rocov2_csv"]
    assert csv_form["duplicate_of"] == {"rocov2": manifest["sources"]["rocov2_csv"]["splits"]["train"]}
    assert csv_form["emptied_by_cross_source_dedup"] and csv_form["kept"] == 0
    assert any("'rocov2_csv'" in w and "emptied by cross-source dedup" in w for w in report["warnings"])
    # PMC-OA in the official zip layout (images/caption_T060_filtered_top4_sep_v0_subfigures/): every row is kept.
    assert report["sources"]["pmc_oa"]["kept"] == manifest["sources"]["pmc_oa"]["rows"] > 0
    assert all(v == 0 for k, v in report["leakage"].items() if k != "near_duplicate_pairs_checked")
    loaded = datasets.load_dataset(str(prepared_dataset_dir))
    assert loaded["train"].num_rows == report["totals"]["train"] > 0
    assert loaded["validation"].num_rows == report["totals"]["validation"] > 0


def test_weight_and_max_samples_select_records_deterministically(tmp_path):
    root = tmp_path / "folder"
    root.mkdir()
    lines = []
    for i in range(40):
        noise_image(5000 + i, size=(32, 32)).save(root / f"{i}.png")
        lines.append(f'{i}.png,"Distinct report number {i} for this study."\n')
    (root / "metadata.csv").write_text("file_name,text\n" + "".join(lines))

    def kept_ids(**source):
        config = {"sources": [{"type": "imagefolder", "path": str(root), **source}], "val_fraction": 0.0}
        out = prepare_dataset(config, output_dir=tmp_path / "out", num_proc=1, show_progress=False)
        report = json.loads((out / "prepare_report.json").read_text())["sources"]["imagefolder"]
        return [r["id"] for r in read_split(out, "train")], report

    ids, report = kept_ids(weight=0.5)
    assert 10 < len(ids) < 30 and report["skipped_by_weight"] == 40 - len(ids)
    assert kept_ids(weight=0.5)[0] == ids
    capped, report = kept_ids(weight=0.5, max_samples=5)
    assert capped == ids[:5] and report["read"] == 5
