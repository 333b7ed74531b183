# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The Gradio demo: package functions, the `/analyse` API through `gradio_client`, and the page in Chromium.

The served app is `app.py` itself, built once per module on the untrained tiny models and a small fixture
dataset, and launched on 127.0.0.1 on a free port, with a short heartbeat so that a closed page ends its session
within a second.
"""

import importlib.util
import os
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from medvl_recipes.demo.analysis import siglip_match
from medvl_recipes.demo.cases import SAME_IMAGE_COSINE, build_index, calibrate, pixel_hash
from medvl_recipes.demo.models import DemoModels, load_models
from medvl_recipes.demo.presentation import findings_markdown, highlight_report
from medvl_recipes.demo.session_files import SessionFiles, delete_cached_file
from medvl_recipes.demo.settings import DemoConfig, resolve_sources
from medvl_recipes.demo.uploads import mask_bands, read_upload
from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import dicom_to_image
from medvl_recipes.launch import free_port
from tests.fixtures.factories import write_prepared_dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
PATIENT_NAME, PATIENT_ID = "Doe^Jane", "PID-4711-XYZ"
TOP_K = 3


def write_dicom(path: Path, *, pixels: bool = True, burned_in: bool = False) -> Path:
    """A 12-bit MONOCHROME2 radiograph with a window and patient-identifying tags, or the same without pixels;
    `burned_in` declares burned-in annotation."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19700101"
    ds.Modality, ds.StudyDescription = "CR", "CHEST PA"
    if burned_in:
        ds.BurnedInAnnotation = "YES"
    if pixels:
        yy, xx = np.mgrid[0:64, 0:80]
        arr = (1000 + 20 * xx + 10 * yy).astype(np.uint16)  # stored values 1000..3210
        arr[20:40, 30:50] = 3000
        ds.Rows, ds.Columns = arr.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2000, 1000
        ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-uploads")
    text = folder / "notes.png"
    text.write_text("This is a text file, not an image.\n")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    huge = folder / "huge.png"
    # 100 megapixels that compress to a few kB: only the header is read before the upload is refused.
    Image.new("1", (10_000, 10_000)).save(huge)
    no_pixels = write_dicom(folder / "report.dcm", pixels=False)
    return {"text": text, "empty": empty, "huge": huge, "no_pixels": no_pixels}


EXPECTED_MESSAGES = {
    "text": "is not a PNG, JPEG or DICOM image",
    "empty": "is empty (0 bytes)",
    "huge": "too large (the limit is 40 megapixels)",
    "no_pixels": "contains no image (no pixel data)",
}


@pytest.fixture(scope="module")
def served_app(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    gradio_tmp = root / "gradio-cache"
    old_env = {name: os.environ.get(name) for name in ("GRADIO_TEMP_DIR", "GRADIO_HEARTBEAT_INTERVAL")}
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)
    # Gradio notices a closed page when its next heartbeat cannot be sent (15 s by default).
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "0.25"
    dataset = write_prepared_dataset(root / "dataset", n_train=4, n_val=8)
    spec = importlib.util.spec_from_file_location("medvl_app", REPO_ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    port = free_port()
    demo, config, kwargs = app.build(
        [
            "--decoder",
            str(tiny_models["mllama"]),
            "--encoder",
            str(tiny_models["siglip"]),
            "--index-dataset",
            str(dataset),
            "--cache-dir",
            str(root / "cache"),
            "--max-new-tokens",
            "12",
            "--top-k",
            str(TOP_K),
            "--port",
            str(port),
        ]
    )
    demo.launch(**kwargs, prevent_thread_lock=True, quiet=True)
    yield {
        "url": f"http://127.0.0.1:{port}/",
        "config": config,
        "dataset": dataset,
        "gradio_tmp": gradio_tmp,
        "example": Path(config.cache_dir) / "examples" / "example-1.png",
    }
    demo.close()
    for name, value in old_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def client(served_app):
    from gradio_client import Client

    client = Client(served_app["url"], verbose=False)
    yield client
    client.close()  # ends its session, like closing a tab


@pytest.fixture(scope="module")
def brute_force(served_app):
    """Reference neighbours: cosine of SigLIP image features computed straight from the model."""
    from datasets import load_dataset
    from transformers import AutoModel, AutoProcessor

    config = served_app["config"]
    model = AutoModel.from_pretrained(config.encoder).eval()
    processor = AutoProcessor.from_pretrained(config.encoder)
    rows = load_dataset(str(served_app["dataset"]), split="train")  # the index: the training cases

    def embed(images):
        with torch.no_grad():
            features = model.get_image_features(**processor(images=images, return_tensors="pt"))
        features = features.pooler_output if hasattr(features, "pooler_output") else features
        return torch.nn.functional.normalize(features, dim=-1)

    index_emb = embed([row["image"].convert("RGB") for row in rows])

    def neighbours(image: Image.Image) -> list[tuple[str, str, float]]:
        """The TOP_K closest training cases, the image itself (same pixels) left out."""
        scores = index_emb @ embed([image.convert("RGB")])[0]
        same = [
            np.array_equal(np.asarray(row["image"].convert("RGB")), np.asarray(image.convert("RGB"))) for row in rows
        ]
        order = torch.argsort(scores, descending=True).tolist()
        order = [i for i in order if not same[i] and scores[i] < SAME_IMAGE_COSINE][:TOP_K]
        return [(rows[i]["id"], rows[i]["text"], float(scores[i])) for i in order]

    # The calibration's reference: each validation image's best cosine to the index, 5th percentile.
    held_out = embed(
        [row["image"].convert("RGB") for row in load_dataset(str(served_app["dataset"]), split="validation")]
    )
    neighbours.ood_threshold = float(np.percentile((held_out @ index_emb.T).max(dim=1).values.numpy(), 5))
    return neighbours


# Package functions


def test_config_from_env_then_flags(tmp_path):
    env = {"MEDVL_DEMO_MAX_NEW_TOKENS": "64", "MEDVL_DEMO_DECODER": "me/dec", "MEDVL_DEMO_MAX_UPLOAD_MB": "2.5"}
    config = DemoConfig.from_env(env, decoder="local/dec", port=None)
    assert (config.max_new_tokens, config.decoder, config.max_upload_mb, config.port) == (64, "local/dec", 2.5, None)
    with pytest.raises(MedvlError, match="MEDVL_DEMO_TOP_K='three' is not a number"):
        DemoConfig.from_env({"MEDVL_DEMO_TOP_K": "three"})


def test_resolve_sources_quickstart_layout(tmp_path):
    root = tmp_path / "quickstart"
    for sub in ("models/tiny-llama-3.2-vision", "models/tiny-siglip", "encoder", "dataset"):
        (root / sub).mkdir(parents=True)
    resolved = resolve_sources(DemoConfig(), root=root)
    # No trained decoder yet: the untrained tiny one; the trained encoder wins over the tiny one.
    assert resolved.decoder == str(root / "models" / "tiny-llama-3.2-vision")
    assert resolved.encoder == str(root / "encoder")
    assert resolved.index_dataset == str(root / "dataset")
    space = tmp_path / "demo_config.json"
    space.write_text('{"decoder": "me/dec", "encoder": "me/enc", "index_dataset": "me/data"}')
    assert resolve_sources(DemoConfig(encoder="mine"), root=tmp_path / "none", space_config=space).encoder == "mine"
    with pytest.raises(MedvlError, match="no decoder given and none found"):
        resolve_sources(DemoConfig(), root=tmp_path / "none")


def test_read_upload_validates_and_decodes(tmp_path, bad_files):
    for name, message in EXPECTED_MESSAGES.items():
        with pytest.raises(MedvlError, match=re.escape(message)):
            read_upload(bad_files[name], max_bytes=10**6, max_pixels=40_000_000)
    with pytest.raises(MedvlError, match=r"is 0.0 MB; the limit is 0 MB"):
        read_upload(bad_files["text"], max_bytes=10, max_pixels=40_000_000)
    dicom = write_dicom(tmp_path / "study.dcm")
    image, kind, burned_in = read_upload(dicom, max_bytes=10**6, max_pixels=40_000_000)
    assert kind == "dicom" and image.mode == "RGB" and not burned_in
    # Windowing is imaging.dicom_to_image's (center 2000, width 1000): values <= 1500 black, >= 2500 white.
    np.testing.assert_array_equal(np.asarray(image)[..., 0], np.asarray(dicom_to_image(dicom)))
    assert np.asarray(image)[0, 0, 0] == 0 and np.asarray(image)[30, 40, 0] == 255
    png = tmp_path / "x.jpg"
    Image.new("RGB", (20, 10), (10, 20, 30)).save(png, format="PNG")  # named .jpg, content PNG: accepted as PNG
    assert read_upload(png, max_bytes=10**6, max_pixels=40_000_000)[1] == "png"
    # DICOM by content: a CD export's file without an extension; its burned-in annotation flag is read.
    no_extension = write_dicom(tmp_path / "IM000001", burned_in=True)
    upload = read_upload(no_extension, max_bytes=10**6, max_pixels=40_000_000)
    assert upload.kind == "dicom" and upload.burned_in
    np.testing.assert_array_equal(np.asarray(upload.image), np.asarray(image))


def test_mask_bands_blanks_top_and_bottom():
    image = Image.new("RGB", (10, 20), (200, 200, 200))
    pixels = np.asarray(mask_bands(image, 0.1))
    assert (pixels[:2] == 0).all() and (pixels[-2:] == 0).all() and (pixels[2:-2] == 200).all()
    assert np.asarray(image).min() == 200  # the original is left alone
    with pytest.raises(MedvlError, match="must be between 0 and 0.5"):
        mask_bands(image, 0.7)


def test_findings_are_highlighted_by_sentence():
    from medvl_recipes.evaluation.findings import FindingExtractor

    report = "Small left pleural effusion. No pneumothorax.\nPossible pneumonia. Heart size is 1.5 cm larger"
    pieces = highlight_report(report)
    assert "".join(text for text, _ in pieces) == report  # nothing lost, nothing added
    assert [text.strip() for text, _ in pieces] == [
        "Small left pleural effusion.",
        "No pneumothorax.",
        "Possible pneumonia.",
        "Heart size is 1.5 cm larger",
    ]
    extracted = FindingExtractor().extract(report)
    assert (extracted["pleural effusion"], extracted["pneumothorax"], extracted["pneumonia"]) == (
        "present",
        "absent",
        "uncertain",
    )
    assert [label for _, label in pieces[:3]] == ["present", "absent", "uncertain"]
    summary = findings_markdown(extracted)
    assert "**Present:** pleural effusion" in summary and "**Absent:** pneumothorax" in summary
    assert "no finding" not in summary


def test_delete_cached_file_only_touches_the_gradio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    upload = tmp_path / "cache" / "abc123" / "scan.dcm"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    outside = tmp_path / "mine.png"
    outside.write_bytes(b"x")
    for path in (upload, outside):
        delete_cached_file(path)
    assert not upload.exists() and not upload.parent.exists()
    assert outside.exists()


def test_session_files_are_deleted_when_the_last_session_holding_them_ends(tmp_path, monkeypatch):
    import gradio as gr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    preview = SimpleNamespace(GRADIO_CACHE=str(tmp_path / "cache"), format="png")
    thumbs = SimpleNamespace(GRADIO_CACHE=str(tmp_path / "cache"), format="jpeg")
    own, shared = Image.new("RGB", (16, 16), (10, 20, 30)), Image.new("RGB", (16, 16), (200, 0, 0))
    example = tmp_path / "cache" / "e1" / "example-1.png"
    example.parent.mkdir(parents=True)
    example.write_bytes(b"example")
    upload = tmp_path / "cache" / "u1" / "scan.png"
    upload.parent.mkdir()
    upload.write_bytes(b"upload")
    files = SessionFiles(keep=[str(example)])

    own_path = Path(files.cache_image("a", own, preview))
    shared_a = Path(files.cache_image("a", shared, thumbs))
    shared_b = Path(files.cache_image("b", shared, thumbs))
    # The very file the components would write when given the PIL image.
    assert str(own_path) == gr.Image(format="png").postprocess(own).path
    assert str(shared_a) == gr.Gallery(format="jpeg").postprocess([shared]).root[0].image.path
    assert shared_a == shared_b  # content-addressed: both sessions hold one file
    files.add("a", upload)
    files.add("a", example)
    files.add("b", example)

    assert sorted(files.end_session("a")) == sorted([str(own_path), str(upload)])
    assert not own_path.exists() and not own_path.parent.exists() and not upload.exists()
    assert shared_b.exists() and example.exists()
    assert files.end_session("b") == [str(shared_b)]
    assert not shared_b.exists() and example.exists()

    # An upload read by one session is deleted at once unless another session uploaded the same bytes.
    upload.parent.mkdir()
    upload.write_bytes(b"upload")
    files.add("c", upload)
    files.add("d", upload)
    files.release("c", upload)
    assert upload.exists()
    files.release("d", upload)
    assert not upload.exists()

    # A run that outlives its session (tab closed mid-report): what it cached later goes when it finishes.
    files.end_session("e")
    late = Path(files.cache_image("e", own, preview))
    assert late.exists() and files.has_ended("e") and not files.has_ended("f")
    files.end_session("e")
    assert not late.exists()


def encode_images_of(models, dataset) -> torch.Tensor:
    from medvl_recipes.retrieval import encode_images

    return encode_images(models.encoder, models.encoder_processor, [row["image"] for row in dataset])


def test_index_is_brute_force_and_cached(tiny_models, tmp_path, monkeypatch):
    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=2, n_val=5)
    config = DemoConfig(
        decoder=str(tiny_models["mllama"]),
        encoder=str(tiny_models["siglip"]),
        index_dataset=str(dataset),
        index_split="validation",
        calibration_split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    from transformers import AutoModel, AutoProcessor

    from medvl_recipes.checkpoints import model_fingerprint

    encoder = AutoModel.from_pretrained(config.encoder).eval()
    processor = AutoProcessor.from_pretrained(config.encoder)
    models = DemoModels(None, None, encoder, processor, {"encoder": model_fingerprint(config.encoder)})
    index = build_index(models, config)
    assert len(index.ids) == 5 and len(list((tmp_path / "cache").glob("index-*.pt"))) == 1
    query = index.image_emb[3]
    # The query itself (row 3, cosine 1) is never one of its similar cases.
    # (and neither is a row the encoder cannot tell from it: the fixture draws some identical pictures).
    scores = [float(index.image_emb[i] @ query) for i in range(5)]
    expected = sorted((i for i in range(5) if scores[i] < SAME_IMAGE_COSINE), key=lambda i: -scores[i])[:3]
    assert 3 not in expected
    assert [row for row, _ in index.search(query, 3)] == expected
    # Nor is an image with the same pixels, whatever its embedding.
    assert 1 not in [row for row, _ in index.search(index.image_emb[1] * 0.5, 4, index.pixel_hashes[1])]
    assert index.pixel_hashes[1] == pixel_hash(index.dataset[1]["image"])
    # The calibration: each held-out image's best cosine to the index; the threshold is their 5th percentile.
    calibration = calibrate(models, index, config)
    held_out = encode_images_of(models, calibration.dataset)
    best = (held_out @ index.image_emb.T).max(dim=1).values.numpy()
    np.testing.assert_allclose(calibration.best_similarities, best, atol=1e-5)
    assert calibration.ood_threshold == pytest.approx(float(np.percentile(best, 5)))
    # A second build must come from the cache: encoding again would fail.
    monkeypatch.setattr("medvl_recipes.retrieval.encode_images", lambda *a, **k: 1 / 0)
    cached = build_index(models, config)
    torch.testing.assert_close(cached.image_emb, index.image_emb)
    # A retrained encoder (other weights on disk, same file names and sizes) invalidates the cache.
    with torch.no_grad():
        encoder.logit_bias.add_(1.0)
    encoder.save_pretrained(tmp_path / "retrained")
    retrained = DemoModels(None, None, encoder, processor, {"encoder": model_fingerprint(str(tmp_path / "retrained"))})
    with pytest.raises(ZeroDivisionError):
        build_index(retrained, config)


def test_siglip_match_is_the_model_sigmoid(tiny_models):
    from transformers import AutoModel, AutoProcessor

    from medvl_recipes.retrieval import encode_images

    encoder = AutoModel.from_pretrained(tiny_models["siglip"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models["siglip"])
    models = DemoModels(None, None, encoder, processor)
    image = Image.new("RGB", (40, 40), (200, 200, 200))
    report = "Small left pleural effusion."
    probability, cosine = siglip_match(models, encode_images(encoder, processor, [image]), report)
    inputs = processor(text=[report], images=[image], padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad():
        logits = encoder(**inputs).logits_per_image  # (1, 1) = scale * cosine + bias
    assert probability == pytest.approx(float(torch.sigmoid(logits)[0, 0]), abs=1e-5)
    assert -1 <= cosine <= 1


def test_load_models_reads_a_lora_adapter(tiny_models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    models = load_models(DemoConfig(decoder=str(tmp_path / "adapter"), encoder=str(tiny_models["siglip"])))
    ids = torch.tensor([[1, 5, 9, 11]])
    with torch.no_grad():
        torch.testing.assert_close(models.decoder(input_ids=ids).logits, peft_model(input_ids=ids).logits)


@pytest.mark.parametrize("trained_prompt", [False, True], ids=["defaults", "stored-prompt-and-retrieval-context"])
def test_analyse_streams_the_greedy_report(tiny_models, tmp_path, trained_prompt):
    import shutil

    from medvl_recipes.data.prepared import load_prepared_split
    from medvl_recipes.demo.analysis import analyse
    from medvl_recipes.generation import generate_reports
    from medvl_recipes.prompts import read_prompt, write_prompt
    from medvl_recipes.retrieval_context import (
        build_retrieval_context,
        load_retrieval_context,
        write_retrieval_context,
    )

    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=2, n_val=4)
    decoder = str(tiny_models["mllama"])
    if trained_prompt:
        # A decoder trained with another instruction and a retrieval context: the demo asks it the same way.
        decoder = str(shutil.copytree(tiny_models["mllama"], tmp_path / "decoder"))
        write_prompt(decoder, "Write the radiology report for this image.", "You are a radiologist.")
        train = load_prepared_split(str(dataset), "train", columns=("image", "text", "id"), setting="test")
        built = build_retrieval_context(
            str(tiny_models["siglip"]), [r["image"] for r in train], train["id"], train["text"], k=2
        )
        write_retrieval_context(decoder, built)
    config = DemoConfig(
        decoder=decoder,
        encoder=str(tiny_models["siglip"]),
        index_dataset=str(dataset),
        cache_dir=str(tmp_path / "cache"),
        max_new_tokens=12,
        top_k=2,
    )
    models = load_models(config)
    index = build_index(models, config)
    calibration = calibrate(models, index, config)
    image_path = tmp_path / "scan.png"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(image_path)
    analysis = analyse(models, index, calibration, config, str(image_path))
    steps = [(step.report, len(step.cases), step.done) for step in analysis]
    reports = [report for report, _, _ in steps]
    # Cases come first, then the report grows piece by piece, then the final state.
    assert steps[0] == ("", 2, False) and steps[-1][2] and len(steps) >= 4
    assert all(later.startswith(earlier) for earlier, later in zip(reports, reports[1:], strict=False))
    instruction, system_prompt = read_prompt(decoder)
    expected = generate_reports(
        models.decoder,
        models.decoder_processor,
        [Image.open(image_path)],
        prompt=instruction,
        system_prompt=system_prompt,
        context=load_retrieval_context(decoder),
        max_new_tokens=12,
        show_progress=False,
    )[0]
    assert reports[-1] == expected
    assert (models.context is not None) == trained_prompt


# The served app through its API


def _noise_image(path: Path) -> Path:
    """A random-noise colour picture: nothing like the indexed radiographs."""
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_gradio_client_report_and_neighbours(served_app, client, brute_force, bad_files):
    import json

    from gradio_client import handle_file

    example = served_app["example"]
    result = client.predict(handle_file(str(example)), True, api_name="/report")
    upload, preview, burned, status, pieces, findings, match, ood, gallery, cases, files = result
    report = "".join(piece["token"] for piece in pieces)
    assert status == "Done." and report.strip() and burned == ""
    assert upload is None  # the upload is cleared from the page
    expected = brute_force(Image.open(example))
    assert len(gallery) == TOP_K
    assert re.findall(r"case `([^`]+)`", cases) == [case_id for case_id, _, _ in expected]
    assert all(text in cases for _, text, _ in expected)
    assert [item["caption"] for item in gallery] == [
        f"#{i} · {s:.0%} similar" for i, (_, _, s) in enumerate(expected, 1)
    ]
    assert re.fullmatch(
        r"\*\*Image-report match: (weak|typical|strong)\*\* \(better than \d+% of correct reports\)\..+", match, re.S
    )
    assert "within the training range" in ood and f"{brute_force.ood_threshold:.3f}" in ood
    np.testing.assert_array_equal(
        np.asarray(Image.open(preview).convert("RGB")), np.asarray(Image.open(example).convert("RGB"))
    )
    # The downloads: the report as text and as JSON naming the model and its revision (a local folder's weights
    # fingerprint, the one `medvl eval` reports).
    assert sorted(Path(f).name for f in files) == ["report.json", "report.txt"]
    record = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    from medvl_recipes.checkpoints import model_fingerprint

    decoder = served_app["config"].decoder
    assert record["report"] == report and record["model"] == {"id": decoder, "revision": model_fingerprint(decoder)}
    assert record["model"]["revision"].startswith("local-")
    assert record["disclaimer"].startswith("Not for clinical use")
    assert [c["id"] for c in record["similar_cases"]] == [case_id for case_id, _, _ in expected]
    assert report in Path(next(f for f in files if f.endswith(".txt"))).read_text()

    # Bad input: a message, nothing else, and the next request is served.
    for name, message in EXPECTED_MESSAGES.items():
        result = client.predict(handle_file(str(bad_files[name])), True, api_name="/report")
        assert message in result[3], (name, result[3])
        assert result[4] == [] and result[9] == "" and result[10] is None
    assert client.predict(handle_file(str(example)), True, api_name="/report")[3] == "Done."


def test_similar_leaves_out_the_query_and_flags_out_of_distribution(served_app, client, brute_force, tmp_path):
    from datasets import load_dataset
    from gradio_client import handle_file

    # A training case uploaded as is: it is in the index, but never its own "similar case".
    train_row = load_dataset(str(served_app["dataset"]), split="train")[0]
    own = tmp_path / "own.png"
    train_row["image"].convert("RGB").save(own)
    status, ood, gallery, cases, table = client.predict(handle_file(str(own)), True, api_name="/similar")
    assert status == "Similar cases found." and len(table) == TOP_K and train_row["id"] not in cases
    expected = brute_force(Image.open(own))
    assert [row["id"] for row in table] == [case_id for case_id, _, _ in expected]
    np.testing.assert_allclose([row["score"] for row in table], [s for _, _, s in expected], atol=1e-3)
    assert all(row["score"] < 0.9999 for row in table)
    assert "within the training range" in ood

    noise = _noise_image(tmp_path / "noise.png")
    ood = client.predict(handle_file(str(noise)), True, api_name="/similar")[1]
    assert ood.startswith("⚠️ **Unlike the training images.**") and f"{brute_force.ood_threshold:.3f}" in ood


def test_dicom_upload_is_windowed_masked_and_never_kept(served_app, client, tmp_path, caplog):
    from gradio_client import handle_file

    dicom = write_dicom(tmp_path / "study.dcm")
    result = client.predict(handle_file(str(dicom)), True, api_name="/report")
    assert result[3] == "Done." and result[2] == ""
    np.testing.assert_array_equal(np.asarray(Image.open(result[1]))[..., 0], np.asarray(dicom_to_image(dicom)))
    assert PATIENT_ID not in caplog.text and "Doe" not in caplog.text
    # Burned-in annotation, no file extension: read by content; masked unless masking is switched off.
    burned = write_dicom(tmp_path / "IM000002", burned_in=True)
    masked = client.predict(handle_file(str(burned)), True, api_name="/similar")
    result = client.predict(handle_file(str(burned)), True, api_name="/report")
    assert masked[0] == "Similar cases found." and result[3] == "Done."
    assert "declares burned-in annotation" in result[2] and "Masked: the top and bottom 10%" in result[2]
    expected = np.asarray(mask_bands(dicom_to_image(burned), 0.1))
    np.testing.assert_array_equal(np.asarray(Image.open(result[1]).convert("RGB")), expected)
    result = client.predict(handle_file(str(burned)), False, api_name="/report")
    assert "Masking is off" in result[2]
    np.testing.assert_array_equal(np.asarray(Image.open(result[1]))[..., 0], np.asarray(dicom_to_image(burned)))
    # The DICOM files themselves are gone from the server's cache.
    for path in served_app["gradio_tmp"].rglob("*"):
        assert not (path.is_file() and PATIENT_ID.encode() in path.read_bytes()), path


# The page in a real browser


def _open(browser, url: str, **kwargs):
    from playwright.sync_api import expect

    page = browser.new_page(**kwargs)
    # Not "networkidle": the page keeps its session's heartbeat connection open.
    page.goto(url, wait_until="domcontentloaded")
    expect(page.locator("#run")).to_be_visible(timeout=60_000)
    return page


def _is_event_call(response) -> bool:
    return response.request.method == "POST" and ("/run/predict" in response.url or "/queue/join" in response.url)


def _upload(page, path: Path, expect_status: str):
    """Choose a file; the page reads it at once, shows it and clears the file input (and its name)."""
    from playwright.sync_api import expect

    with page.expect_response(_is_event_call, timeout=30_000):
        page.locator("#upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#status")).to_contain_text(expect_status, timeout=30_000)
    expect(page.locator(f'#upload a[href$="/{path.name}"]')).to_have_count(0, timeout=30_000)


def _press(page, button: str, expect_status: str):
    from playwright.sync_api import expect

    with page.expect_response(_is_event_call, timeout=30_000):
        page.locator(button).click()
    expect(page.locator("#status")).to_contain_text(expect_status, timeout=120_000)


def _submit(page, path: Path, expect_status: str = "Done."):
    _upload(page, path, "image ready")
    _press(page, "#run", expect_status)


def _shown_files(page) -> set[Path]:
    """The cached files behind the preview and the gallery thumbnails on the page."""
    sources = page.eval_on_selector_all("#preview img, #gallery img", "images => images.map(image => image.src)")
    assert len(sources) == 1 + TOP_K, sources
    return {Path(unquote(src.split("/file=", 1)[1])).resolve() for src in sources}


def _fetch_image(page, selector: str) -> np.ndarray:
    import io

    src = page.locator(selector).get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def _eventually(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


SCRIPTED_REPORT = "Small left pleural effusion. No pneumothorax. Possible right lower lobe pneumonia."


def _scripted_stream(model, processor, image, **kwargs):
    # The tiny random decoder writes no words; these stand in for a trained one's, piece by piece.
    words = SCRIPTED_REPORT.split(" ")
    for i in range(1, len(words) + 1):
        yield " ".join(words[:i])


def _save_screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("MEDVL_DEMO_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / name, Path(os.environ["MEDVL_DEMO_SCREENSHOT_DIR"]) / name)


def test_browser_upload_preview_report_dicom_ood_and_phone(
    served_app, brute_force, browser, bad_files, tmp_path, monkeypatch
):
    from playwright.sync_api import expect

    monkeypatch.setattr("medvl_recipes.demo.analysis.stream_report", _scripted_stream)
    page = _open(browser, served_app["url"], viewport={"width": 1400, "height": 1100})
    assert "Not for clinical use." in page.locator("#disclaimer").inner_text()
    # A PNG: preview on upload, its file name nowhere on the page; then the report with its findings coloured.
    png = tmp_path / "jane-doe-chest.png"
    shutil.copy(served_app["example"], png)
    _upload(page, png, "PNG image ready")
    expect(page.locator("#preview img")).to_be_visible()
    assert png.name not in page.content()
    _press(page, "#run", "Done.")
    report = page.locator("#report")
    expect(report).to_contain_text("lower lobe pneumonia")

    def coloured() -> dict:
        colours = page.eval_on_selector_all(
            "#report .token", "spans => spans.map(s => [s.innerText, getComputedStyle(s).backgroundColor])"
        )
        return {text.split("\n")[0].strip(): colour for text, colour in colours}

    # The report streams: wait until its last sentence is there and highlighted, not only its first.
    _eventually(lambda: "0, 0, 0, 0" not in coloured().get("Possible right lower lobe pneumonia.", "0, 0, 0, 0"), 15)
    coloured = coloured()
    assert (
        coloured["Small left pleural effusion."] == "rgba(224, 49, 49, 0.5)"
        or "224, 49, 49" in coloured["Small left pleural effusion."]
    ), coloured
    assert (
        "47, 158, 68" in coloured["No pneumothorax."]
        and "240, 140, 0" in coloured["Possible right lower lobe pneumonia."]
    )
    assert "Not for clinical use" in page.locator("#report-disclaimer").inner_text()
    assert "Present: pleural effusion" in page.locator("#findings").inner_text()
    cases_text = page.locator("#cases").inner_text()
    for case_id, text, _ in brute_force(Image.open(png)):
        assert case_id in cases_text and text in cases_text
    assert page.locator("#gallery img").count() == TOP_K
    assert "Image-report match:" in page.locator("#match").inner_text()
    links = page.locator("#download a")
    expect(links).to_have_count(2)
    json_href = next(h for h in (links.nth(i).get_attribute("href") for i in range(2)) if h.endswith(".json"))
    record = page.request.get(json_href).json()
    assert record["report"] == SCRIPTED_REPORT and record["model"]["id"] == served_app["config"].decoder
    _save_screenshot(page, tmp_path, "demo-screenshot.png")

    # A DICOM without extension that declares burned-in text: the old results go at once, the bands are masked.
    dicom = write_dicom(tmp_path / "IM000001", burned_in=True)
    _upload(page, dicom, "DICOM image ready")
    assert page.locator("#report .token").count() == 0 and page.locator("#gallery img").count() == 0
    assert page.locator("#download a").count() == 0 and page.locator("#cases").inner_text().strip() == ""
    assert "Masked: the top and bottom 10%" in page.locator("#burned").inner_text()
    preview = _fetch_image(page, "#preview img")
    assert (preview[:6] == 0).all() and preview[6:-6].max() == 255
    _press(page, "#run", "Done.")
    html = page.content()
    for secret in (PATIENT_ID, "Doe", "Jane", "19700101", png.name):
        assert secret not in html

    for name, message in EXPECTED_MESSAGES.items():
        _upload(page, bad_files[name], message)
        assert page.locator("#report .token").count() == 0

    # Noise: nothing like the training images.
    _upload(page, _noise_image(tmp_path / "noise.png"), "PNG image ready")
    _press(page, "#similar", "Similar cases found.")
    assert "Unlike the training images" in page.locator("#ood").inner_text()
    page.close()

    # A phone: an example thumbnail, the report, nothing wider than the screen.
    phone = _open(browser, served_app["url"], viewport={"width": 390, "height": 844}, device_scale_factor=2)
    with phone.expect_response(_is_event_call, timeout=30_000):
        phone.locator("#examples img").first.click()
    expect(phone.locator("#status")).to_contain_text("PNG image ready", timeout=30_000)
    _press(phone, "#run", "Done.")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("#cases").bounding_box()["width"] > 300
    _save_screenshot(phone, tmp_path, "demo-phone.png")
    phone.close()


def test_closing_the_page_deletes_the_sessions_files(served_app, browser, tmp_path):
    cache = served_app["gradio_tmp"].resolve()
    example = served_app["example"]
    own, pending = tmp_path / "own-scan.png", tmp_path / "pending-scan.png"
    Image.new("RGB", (64, 48), (30, 160, 90)).save(own)
    Image.new("RGB", (48, 64), (160, 30, 90)).save(pending)
    page_b = _open(browser, served_app["url"])
    _submit(page_b, example)
    files_b = _shown_files(page_b)

    # Session A: a report on its own image, one on the example (the same cached files as B's), and an upload it
    # only previews.
    page_a = _open(browser, served_app["url"])
    _submit(page_a, own)
    files_a_own = _shown_files(page_a)
    _submit(page_a, example)
    assert _shown_files(page_a) == files_b
    _upload(page_a, pending, "image ready")
    src = page_a.locator("#preview img").get_attribute("src")
    pending_preview = Path(unquote(src.split("/file=", 1)[1])).resolve()
    only_a = (files_a_own - files_b) | {pending_preview}
    assert len(files_a_own - files_b) >= 1
    assert all(cache in p.parents and p.is_file() for p in only_a | files_b)
    # Uploads are gone as soon as they were read.
    assert not list(cache.rglob(own.name)) and not list(cache.rglob(pending.name))
    example_copies = list(cache.rglob(example.name))
    assert example_copies

    page_a.close()
    assert _eventually(lambda: not any(p.exists() for p in only_a)), [p for p in only_a if p.exists()]
    assert all(p.is_file() for p in files_b)  # still on B's page
    page_b.close()
    assert _eventually(lambda: not any(p.exists() for p in files_b)), [p for p in files_b if p.exists()]
    # The examples stay for the next visitor.
    assert all(p.is_file() for p in example_copies) and example.is_file()


def test_space_bundle_builds_from_its_demo_config(tiny_models, tmp_path):
    """The folder `medvl push space` uploads runs on its own: bundled package, ids from demo_config.json."""
    import json
    import subprocess
    import sys

    from medvl_recipes.hub.push import stage_space

    space = tmp_path / "space"
    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=2, n_val=3)
    stage_space(space, repo_id="me/demo", decoder_id="me/dec", encoder_id="me/enc", dataset_id="me/data")
    # Local paths stand in for the Hub ids so that the check runs offline.
    config = {
        "decoder": str(tiny_models["mllama"]),
        "encoder": str(tiny_models["siglip"]),
        "index_dataset": str(dataset),
    }
    (space / "demo_config.json").write_text(json.dumps(config))
    code = (
        "import json, app, medvl_recipes; demo, config, kwargs = app.build(['--cache-dir', 'cache']); "
        "print(json.dumps({'package': medvl_recipes.__file__, 'decoder': config.decoder, 'api': "
        "[d.api_name for d in demo.fns.values()]}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).resolve() == (space / "medvl_recipes" / "__init__.py").resolve()
    assert result["decoder"] == str(tiny_models["mllama"]) and {"report", "similar"} <= set(result["api"])
