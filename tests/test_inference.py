# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl generate`: reports for new images equal `generate_reports` on the same images and prompt; resumable;
similar cases and match probabilities against a SigLIP reference; no PHI or absolute paths in the outputs."""

import csv
import json
import shutil
from pathlib import Path

import pydicom
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

import medvl_recipes.generation as generation
from medvl_recipes.cli import main as medvl
from medvl_recipes.generation import generate_reports
from medvl_recipes.imaging import load_image
from medvl_recipes.inference import collect_inputs, generate
from medvl_recipes.modeling import load_decoder
from medvl_recipes.prompts import PROMPT_FILE, read_prompt


MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def new_images(sample_raw_dir, tmp_path_factory) -> Path:
    """A folder as a user would have it: a PNG, a JPEG in a subfolder, an extension-less DICOM with PHI, a note."""
    root = tmp_path_factory.mktemp("new-images") / "study"
    (root / "sub" / "DICOM").mkdir(parents=True)
    png = next((sample_raw_dir / "rocov2_csv").rglob("*.png"))
    shutil.copy(png, root / "a.png")
    Image.open(png).convert("RGB").save(root / "sub" / "b.jpg", quality=95)
    ds = pydicom.dcmread(next((sample_raw_dir / "dicom").glob("phantom_*.dcm")))
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-12345"
    ds.save_as(root / "sub" / "DICOM" / "IM000001", enforce_file_format=True)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def decoder(tiny_models):
    return load_decoder(str(tiny_models["mllama"]), dtype="float32", device="cpu")


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]


def test_collect_inputs_finds_png_jpeg_and_extensionless_dicom(new_images):
    items = collect_inputs([str(new_images)])
    assert [item.id for item in items] == ["a.png", "sub/DICOM/IM000001", "sub/b.jpg"]
    dicom = items[1]
    # The DICOM is windowed by the one loader the rest of the project uses.
    assert list(dicom.load().getdata()) == list(load_image(new_images / "sub" / "DICOM" / "IM000001").getdata())


def test_reports_match_generate_reports_and_carry_no_phi(new_images, tiny_models, decoder, tmp_path):
    out = tmp_path / "out"
    argv = ["generate", str(new_images), "--decoder", str(tiny_models["mllama"]), "--output-dir", str(out)]
    assert medvl([*argv, "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "2", "--dtype", "float32"]) == 0
    rows = _rows(out)
    model, processor = decoder
    paths = [new_images / "a.png", new_images / "sub" / "DICOM" / "IM000001", new_images / "sub" / "b.jpg"]
    expected = generate_reports(model, processor, [load_image(p) for p in paths], max_new_tokens=MAX_NEW_TOKENS)
    assert [row["report"] for row in rows] == expected
    assert [row["source"] for row in rows] == ["a.png", "sub/DICOM/IM000001", "sub/b.jpg"]
    assert all(row["timings_s"]["generate"] > 0 and isinstance(row["findings"], dict) for row in rows)
    with (out / "reports.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["report"] for r in table] == expected and [r["id"] for r in table] == [row["id"] for row in rows]
    for text in ((out / "reports.jsonl").read_text(), (out / "reports.csv").read_text()):
        assert "Doe" not in text and "MRN-12345" not in text and str(new_images) not in text


def test_resume_skips_done_ids_and_redoes_a_torn_line(new_images, tiny_models, tmp_path, monkeypatch):
    out = tmp_path / "out"
    kwargs = {"max_new_tokens": 4, "batch_size": 1, "dtype": "float32", "device": "cpu", "show_progress": False}
    generate([str(new_images)], str(tiny_models["mllama"]), out, **kwargs)
    first = _rows(out)
    lines = (out / "reports.jsonl").read_text().splitlines(keepends=True)
    # A run killed while writing its last batch: two complete rows and a torn third.
    (out / "reports.jsonl").write_text("".join(lines[:2]) + lines[2][:20])
    calls = []
    real = generation.generate_reports
    monkeypatch.setattr(
        generation,
        "generate_reports",
        lambda m, p, images, **kw: calls.append(len(images)) or real(m, p, images, **kw),
    )
    generate([str(new_images)], str(tiny_models["mllama"]), out, **kwargs)
    assert calls == [1]
    assert [row["id"] for row in _rows(out)[:2]] == [row["id"] for row in first[:2]]
    assert sorted(row["id"] for row in _rows(out)) == sorted(row["id"] for row in first)


def test_prompt_stored_with_the_checkpoint_is_used(new_images, tiny_models, decoder, tmp_path):
    checkpoint = tmp_path / "decoder"
    shutil.copytree(tiny_models["mllama"], checkpoint)
    stored = {"instruction": "Write the radiology report for this image.", "system_prompt": "You are a radiologist."}
    (checkpoint / PROMPT_FILE).write_text(json.dumps(stored))
    assert read_prompt(str(checkpoint)) == (stored["instruction"], stored["system_prompt"])
    assert read_prompt(str(tiny_models["mllama"])) == (None, None)
    out = generate(
        [str(new_images / "a.png")],
        str(checkpoint),
        tmp_path / "out",
        max_new_tokens=MAX_NEW_TOKENS,
        dtype="float32",
        device="cpu",
    )
    model, processor = decoder
    expected = generate_reports(
        model,
        processor,
        [load_image(new_images / "a.png")],
        prompt=stored["instruction"],
        system_prompt=stored["system_prompt"],
        max_new_tokens=MAX_NEW_TOKENS,
    )
    assert [row["report"] for row in _rows(out.parent)] == expected


def test_encoder_adds_similar_cases_and_siglip_match_probability(
    new_images, tiny_models, prepared_dataset_dir, tmp_path
):
    from medvl_recipes.data.prepared import load_prepared_split

    out = tmp_path / "out"
    generate(
        [str(new_images)],
        str(tiny_models["mllama"]),
        out,
        encoder=str(tiny_models["siglip"]),
        index_dataset=str(prepared_dataset_dir),
        index_split="validation",
        k=2,
        max_new_tokens=MAX_NEW_TOKENS,
        dtype="float32",
        device="cpu",
    )
    rows = _rows(out)
    model = AutoModel.from_pretrained(tiny_models["siglip"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models["siglip"])
    index = load_prepared_split(prepared_dataset_dir, "validation")
    paths = [new_images / "a.png", new_images / "sub" / "DICOM" / "IM000001", new_images / "sub" / "b.jpg"]
    with torch.no_grad():
        # Reference: SiglipModel's own pairwise logits, sigmoid on the diagonal; cosine neighbours over the index.
        inputs = processor(
            text=[row["report"] for row in rows],
            images=[load_image(p) for p in paths],
            padding="max_length",
            max_length=64,
            truncation=True,
            return_tensors="pt",
        )
        logits = model(**inputs).logits_per_image
        query = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        keys = model.get_image_features(
            **processor(images=[r.convert("RGB") for r in index["image"]], return_tensors="pt")
        ).pooler_output
    probability = torch.sigmoid(logits.diagonal())
    sims = torch.nn.functional.normalize(query, dim=-1) @ torch.nn.functional.normalize(keys, dim=-1).T
    top = torch.topk(sims, k=2, dim=1).indices
    for i, row in enumerate(rows):
        assert row["match_probability"] == pytest.approx(float(probability[i]), abs=1e-5)
        assert [case["id"] for case in row["similar_cases"]] == [index["id"][j] for j in top[i].tolist()]
        assert row["similar_cases"][0]["report"] == index["text"][top[i][0].item()]


def test_dataset_split_input_and_errors(tiny_models, prepared_dataset_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["generate", str(prepared_dataset_dir), "--split", "validation", "--max-samples", "2"]
    argv += ["--decoder", str(tiny_models["mllama"]), "--output-dir", str(out), "--max-new-tokens", "4"]
    assert medvl(argv) == 0
    from medvl_recipes.data.prepared import load_prepared_split

    assert [row["id"] for row in _rows(out)] == load_prepared_split(prepared_dataset_dir, "validation")["id"][:2]
    assert {row["source"] for row in _rows(out)} == {f"{prepared_dataset_dir.name}[validation]"}
    assert medvl(["generate", str(tmp_path / "nowhere"), "--decoder", "x", "--output-dir", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert medvl(["generate", str(out), "--decoder", "x", "--output-dir", str(out), "--index-dataset", "d"]) == 2
    assert "--index-dataset needs --encoder" in capsys.readouterr().err
