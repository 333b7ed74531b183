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
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from medvl_recipes.demo.analysis import siglip_match
from medvl_recipes.demo.cases import build_index
from medvl_recipes.demo.models import DemoModels, load_models
from medvl_recipes.demo.session_files import SessionFiles, delete_cached_file
from medvl_recipes.demo.settings import DemoConfig, resolve_sources
from medvl_recipes.demo.uploads import read_upload
from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import dicom_to_image
from tests.fixtures.factories import write_prepared_dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PATIENT_NAME, PATIENT_ID = "Doe^Jane", "PID-4711-XYZ"
TOP_K = 3


def write_dicom(path: Path, *, pixels: bool = True) -> Path:
    """A 12-bit MONOCHROME2 radiograph with a window and patient-identifying tags, or the same without pixels."""
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port = _free_port()
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
    rows = load_dataset(str(served_app["dataset"]), split="validation")

    def embed(images):
        with torch.no_grad():
            features = model.get_image_features(**processor(images=images, return_tensors="pt"))
        features = features.pooler_output if hasattr(features, "pooler_output") else features
        return torch.nn.functional.normalize(features, dim=-1)

    index_emb = embed([row["image"].convert("RGB") for row in rows])

    def neighbours(image: Image.Image) -> list[tuple[str, str, float]]:
        scores = index_emb @ embed([image.convert("RGB")])[0]
        order = torch.argsort(scores, descending=True)[:TOP_K]
        return [(rows[int(i)]["id"], rows[int(i)]["text"], float(scores[i])) for i in order]

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
    image, kind = read_upload(dicom, max_bytes=10**6, max_pixels=40_000_000)
    assert kind == "dicom" and image.mode == "RGB"
    # Windowing is imaging.dicom_to_image's (center 2000, width 1000): values <= 1500 black, >= 2500 white.
    np.testing.assert_array_equal(np.asarray(image)[..., 0], np.asarray(dicom_to_image(dicom)))
    assert np.asarray(image)[0, 0, 0] == 0 and np.asarray(image)[30, 40, 0] == 255
    png = tmp_path / "x.jpg"
    Image.new("RGB", (20, 10), (10, 20, 30)).save(png, format="PNG")  # named .jpg, content PNG: accepted as PNG
    assert read_upload(png, max_bytes=10**6, max_pixels=40_000_000)[1] == "png"


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


def test_index_is_brute_force_and_cached(tiny_models, tmp_path, monkeypatch):
    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=2, n_val=5)
    config = DemoConfig(
        decoder=str(tiny_models["mllama"]),
        encoder=str(tiny_models["siglip"]),
        index_dataset=str(dataset),
        cache_dir=str(tmp_path / "cache"),
    )
    from transformers import AutoModel, AutoProcessor

    encoder = AutoModel.from_pretrained(config.encoder).eval()
    models = DemoModels(None, None, encoder, AutoProcessor.from_pretrained(config.encoder))
    index = build_index(models, config)
    assert len(index.ids) == 5 and len(list((tmp_path / "cache").glob("index-*.pt"))) == 1
    query = index.image_emb[3]
    expected = sorted(range(5), key=lambda i: -float(index.image_emb[i] @ query))[:3]
    assert [row for row, _ in index.search(query, 3)] == expected
    # A second build must come from the cache: encoding again would fail.
    monkeypatch.setattr("medvl_recipes.retrieval.encode_images", lambda *a, **k: 1 / 0)
    cached = build_index(models, config)
    torch.testing.assert_close(cached.image_emb, index.image_emb)
    # Changing the encoder weights invalidates the cache.
    with torch.no_grad():
        encoder.logit_bias.add_(1.0)
    with pytest.raises(ZeroDivisionError):
        build_index(models, config)


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


def test_analyse_streams_the_greedy_report(tiny_models, tmp_path):
    from medvl_recipes.demo.analysis import analyse
    from medvl_recipes.generation import generate_reports

    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=2, n_val=4)
    config = DemoConfig(
        decoder=str(tiny_models["mllama"]),
        encoder=str(tiny_models["siglip"]),
        index_dataset=str(dataset),
        cache_dir=str(tmp_path / "cache"),
        max_new_tokens=12,
        top_k=2,
    )
    models = load_models(config)
    index = build_index(models, config)
    image_path = tmp_path / "scan.png"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(image_path)
    steps = [(step.report, len(step.cases), step.done) for step in analyse(models, index, config, str(image_path))]
    reports = [report for report, _, _ in steps]
    # Cases come first, then the report grows piece by piece, then the final state.
    assert steps[0] == ("", 2, False) and steps[-1][2] and len(steps) >= 4
    assert all(later.startswith(earlier) for earlier, later in zip(reports, reports[1:], strict=False))
    expected = generate_reports(
        models.decoder, models.decoder_processor, [Image.open(image_path)], max_new_tokens=12, show_progress=False
    )[0]
    assert reports[-1] == expected


# The served app through its API


def test_gradio_client_report_and_neighbours(served_app, client, brute_force, bad_files):
    from gradio_client import handle_file

    example = served_app["example"]
    upload, preview, status, report, similarity, gallery, table = client.predict(
        handle_file(str(example)), api_name="/analyse"
    )
    assert status == "Done." and report.strip()
    assert upload is None  # the upload is cleared from the page
    assert len(gallery) == TOP_K and len(table["data"]) == TOP_K
    expected = brute_force(Image.open(example))
    assert [row[2] for row in table["data"]] == [case_id for case_id, _, _ in expected]
    assert [row[3] for row in table["data"]] == [text for _, text, _ in expected]
    np.testing.assert_allclose([row[1] for row in table["data"]], [s for _, _, s in expected], atol=1e-3)
    assert re.fullmatch(r"\*\*Image-report match \(SigLIP\):\*\* [01]\.\d{3} \(cosine -?[01]\.\d{3}\)", similarity)
    np.testing.assert_array_equal(
        np.asarray(Image.open(preview).convert("RGB")), np.asarray(Image.open(example).convert("RGB"))
    )

    # Bad input: a message, nothing else, and the next request is served.
    for name, message in EXPECTED_MESSAGES.items():
        result = client.predict(handle_file(str(bad_files[name])), api_name="/analyse")
        assert message in result[2], (name, result[2])
        assert result[3] == "" and result[6]["data"] == []
    assert client.predict(handle_file(str(example)), api_name="/analyse")[2] == "Done."


def test_dicom_upload_is_windowed_and_never_kept(served_app, client, tmp_path, caplog):
    from gradio_client import handle_file

    dicom = write_dicom(tmp_path / "study.dcm")
    result = client.predict(handle_file(str(dicom)), api_name="/analyse")
    assert result[2] == "Done."
    np.testing.assert_array_equal(np.asarray(Image.open(result[1]))[..., 0], np.asarray(dicom_to_image(dicom)))
    assert PATIENT_ID not in caplog.text and "Doe" not in caplog.text
    # The DICOM file itself is gone from the server's cache.
    for path in served_app["gradio_tmp"].rglob("*"):
        assert not (path.is_file() and PATIENT_ID.encode() in path.read_bytes()), path


# The page in a real browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _open(browser, url: str, **kwargs):
    from playwright.sync_api import expect

    page = browser.new_page(**kwargs)
    # Not "networkidle": the page keeps its session's heartbeat connection open.
    page.goto(url, wait_until="domcontentloaded")
    expect(page.locator("#run")).to_be_visible(timeout=60_000)
    return page


def _submit(page, path: Path, expect_status: str):
    from playwright.sync_api import expect

    _upload(page, path)
    page.locator("#run").click()
    # The run's first update clears the upload: from then on the status is this run's, not the previous one's.
    expect(page.locator(f'#upload a[href$="/{path.name}"]')).to_have_count(0, timeout=120_000)
    expect(page.locator("#status")).to_contain_text(expect_status, timeout=120_000)


def _upload(page, path: Path):
    from playwright.sync_api import expect

    page.locator("#upload input[type=file]").set_input_files(str(path))
    # Wait until the file is uploaded (its download link appears).
    expect(page.locator(f'#upload a[href$="/{path.name}"]')).to_have_count(1, timeout=30_000)


def _shown_files(page) -> set[Path]:
    """The cached files behind the preview and the gallery thumbnails on the page."""
    sources = page.eval_on_selector_all("#preview img, #gallery img", "images => images.map(image => image.src)")
    assert len(sources) == 1 + TOP_K, sources
    return {Path(unquote(src.split("/file=", 1)[1])).resolve() for src in sources}


def _eventually(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_browser_report_cases_dicom_and_bad_input(served_app, brute_force, browser, bad_files, tmp_path):
    page = _open(browser, served_app["url"], viewport={"width": 1400, "height": 1100})
    assert "Not for clinical use." in page.locator("#disclaimer").inner_text()

    example = served_app["example"]
    _submit(page, example, "Done.")
    report = page.locator("#report textarea").input_value()
    assert report.strip()
    cases_text = page.locator("#cases").inner_text()
    for case_id, text, _ in brute_force(Image.open(example)):
        assert case_id in cases_text and text in cases_text
    assert page.locator("#gallery img").count() == TOP_K
    assert "Image-report match (SigLIP)" in page.locator("#similarity").inner_text()
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    if os.environ.get("MEDVL_DEMO_SCREENSHOT"):
        shutil.copy(tmp_path / "demo.png", os.environ["MEDVL_DEMO_SCREENSHOT"])

    for name, message in EXPECTED_MESSAGES.items():
        _submit(page, bad_files[name], message)
        assert page.locator("#report textarea").input_value() == ""

    dicom = write_dicom(tmp_path / "study.dcm")
    _submit(page, dicom, "Done.")
    assert page.locator("#preview img").is_visible()
    html = page.content()
    for secret in (PATIENT_ID, "Doe", "Jane", "19700101"):
        assert secret not in html
    page.screenshot(path=str(tmp_path / "demo-dicom.png"), full_page=True)
    page.close()


def test_closing_the_page_deletes_the_sessions_files(served_app, browser, tmp_path):
    cache = served_app["gradio_tmp"].resolve()
    example = served_app["example"]
    own, pending = tmp_path / "own-scan.png", tmp_path / "pending-scan.png"
    Image.new("RGB", (64, 48), (30, 160, 90)).save(own)
    Image.new("RGB", (48, 64), (160, 30, 90)).save(pending)
    page_b = _open(browser, served_app["url"])
    _submit(page_b, example, "Done.")
    files_b = _shown_files(page_b)

    # Session A: a report on its own image, one on the example (the same cached files as B's), and an upload it
    # never analyses.
    page_a = _open(browser, served_app["url"])
    _submit(page_a, own, "Done.")
    files_a_own = _shown_files(page_a)
    _submit(page_a, example, "Done.")
    assert _shown_files(page_a) == files_b
    _upload(page_a, pending)
    pending_copies = [p.resolve() for p in cache.rglob(pending.name)]
    only_a = (files_a_own - files_b) | set(pending_copies)
    assert len(pending_copies) == 1 and len(files_a_own - files_b) >= 1
    assert all(cache in p.parents and p.is_file() for p in only_a | files_b)
    assert not list(cache.rglob(own.name))  # the analysed upload is gone as soon as it was read
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
    assert result["decoder"] == str(tiny_models["mllama"]) and "analyse" in result["api"]
