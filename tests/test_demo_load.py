# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The demo under load: 30 `gradio_client` sessions upload at once, half of them the very same files.

The served app is `app.py` on the untrained tiny models (as in `tests/test_app.py`), on 127.0.0.1 on a free
port, with Gradio's cache (`GRADIO_TEMP_DIR`) in this test's folder so that what stays on disk can be inspected:
every request must be answered (a report, similar cases or a message) or refused by the full queue with a
message, and no uploaded file, nor a file named like one, may stay on disk, neither once the sessions have ended
nor after shutdown.
"""

import hashlib
import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from medvl_recipes.launch import free_port
from tests.fixtures.factories import write_prepared_dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
# A real CT slice with patient tags (PatientName and PatientID "CQ500-CT-310"), from pydicom-data:
# pydicom/pydicom-data, data_store/data/693_UNCR.dcm (pydicom-data 1.0.0 on PyPI).
REAL_DICOM = "693_UNCR.dcm"
PATIENT_TAG = b"CQ500-CT-310"
N_SAME_PNG, N_SAME_DICOM, N_OTHER_PNG, N_OTHER_DICOM = 8, 7, 7, 7  # + one text file named .png: 30 in all
QUEUE_SIZE = 16


def real_dicom_path() -> Path:
    import data_store

    return Path(data_store.__file__).parent / "data" / REAL_DICOM


def write_uploads(folder: Path) -> list[tuple[str, Path]]:
    """30 `(endpoint, file)` pairs: 15 requests for two identical files, 15 for files that all differ."""
    import pydicom

    folder.mkdir()
    same_png = folder / "doe-jane-chest.png"
    gradient = np.add.outer(np.arange(96), np.arange(80)).astype(np.uint8)
    Image.fromarray(gradient).save(same_png, pnginfo=_png_text("identical upload"))
    # A CD export's file name: no extension, the type is read from the content.
    same_dicom = folder / "IM000001"
    same_dicom.write_bytes(real_dicom_path().read_bytes())
    uploads = [same_png] * N_SAME_PNG + [same_dicom] * N_SAME_DICOM
    rng = np.random.default_rng(0)
    for i in range(N_OTHER_PNG):
        path = folder / f"doe-jane-{i}.png"
        Image.fromarray(rng.integers(0, 256, (64 + i, 72, 3), dtype=np.uint8)).save(path)
        uploads.append(path)
    for i in range(N_OTHER_DICOM):
        ds = pydicom.dcmread(real_dicom_path())
        ds.PatientID = f"{PATIENT_TAG.decode()}-{i}"  # a different patient: different bytes
        path = folder / f"IM00010{i}"
        ds.save_as(path)
        uploads.append(path)
    not_an_image = folder / "doe-jane-notes.png"
    not_an_image.write_text(f"{PATIENT_TAG.decode()}: not an image\n")
    uploads.append(not_an_image)
    # Identical files go to both endpoints: `/similar` and `/report` run side by side (one of each at a time).
    return [("/report" if i % 2 else "/similar", path) for i, path in enumerate(uploads)]


def _png_text(text: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", text)  # so that no re-encoded copy of the pixels can have the upload's bytes
    return info


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folders: list[Path], uploads: list[Path]) -> list[str]:
    """Files under `folders` that are an upload (same bytes), are named like one, or carry the patient tag."""
    hashes = {sha256(p) for p in uploads}
    names = {p.name for p in uploads}
    found = []
    for folder in folders:
        # os.walk, not rglob: the server may delete a file and its folder while they are being listed.
        for parent, _, children in os.walk(folder):
            for name in children:
                path = Path(parent) / name
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                if name in names or hashlib.sha256(data).hexdigest() in hashes or PATIENT_TAG in data:
                    found.append(str(path))
    return sorted(found)


def call(client, endpoint: str, path: Path, start: threading.Barrier) -> tuple[str, str]:
    """One session's request: `("answered", status)`, `("refused", message)` or `("failed", what)`."""
    from gradio_client import handle_file
    from gradio_client.utils import QueueError

    try:
        start.wait(timeout=60)
        result = client.predict(handle_file(str(path)), True, api_name=endpoint)
        status = result[3] if endpoint == "/report" else result[0]
        return ("answered" if status.startswith(("Done", "Similar cases found", "⚠️")) else "failed"), status
    except QueueError as err:
        return "refused", str(err)
    except Exception as err:  # noqa: BLE001 - any other outcome is a failure to report
        return "failed", f"{type(err).__name__}: {err}"
    finally:
        client.close()  # ends its session, like closing a tab


def test_30_concurrent_uploads_are_answered_or_refused_and_leave_nothing(tiny_models, tmp_path, monkeypatch):
    gradio_tmp = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_tmp))
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.25")  # a closed client ends its session within a second
    dataset = write_prepared_dataset(tmp_path / "dataset", n_train=4, n_val=8)
    spec = importlib.util.spec_from_file_location("medvl_app_load", REPO_ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    port = free_port()
    cache_dir = tmp_path / "cache"
    demo, config, kwargs = app.build(
        [
            *("--decoder", str(tiny_models["mllama"]), "--encoder", str(tiny_models["siglip"])),
            *("--index-dataset", str(dataset), "--cache-dir", str(cache_dir)),
            *("--max-new-tokens", "4", "--queue-size", str(QUEUE_SIZE), "--port", str(port)),
        ]
    )
    requests = write_uploads(tmp_path / "uploads")
    files = sorted({path for _, path in requests})
    demo.launch(**kwargs, prevent_thread_lock=True, quiet=True)
    try:
        from gradio_client import Client

        # One session each. download_files=False: the client would write the results into GRADIO_TEMP_DIR too.
        # A 60 s timeout instead of httpx's 5 s: on a few busy cores an upload can wait longer than 5 s for the
        # server, and that would measure the machine, not the app.
        def connect(_) -> Client:
            return Client(
                f"http://127.0.0.1:{port}/", verbose=False, download_files=False, httpx_kwargs={"timeout": 60}
            )

        with ThreadPoolExecutor(8) as pool:
            clients = list(pool.map(connect, requests))
        start = threading.Barrier(len(requests))
        outcomes: list = [("failed", "no answer")] * len(requests)

        def worker(i: int, endpoint: str, path: Path) -> None:
            outcomes[i] = call(clients[i], endpoint, path, start)

        threads = [threading.Thread(target=worker, args=(i, *r)) for i, r in enumerate(requests)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        wall = time.monotonic() - began
        kinds = [kind for kind, _ in outcomes]
        # Answered: an image with its report or cases, the text file with the upload message; refused: the
        # full queue's message. Anything else ("no longer on the server", a timeout, an error) is a failure.
        wrong = [
            (endpoint, path.name, kind, message)
            for (endpoint, path), (kind, message) in zip(requests, outcomes, strict=True)
            if kind == "failed"
            or (kind == "refused" and not message.startswith("Queue is full"))
            or (kind == "answered" and message.startswith("⚠️") != (path.name == "doe-jane-notes.png"))
        ]
        assert not wrong, "\n".join(map(str, wrong))
        assert kinds.count("answered") >= 1
        # Sessions have ended (closed clients): nothing of theirs stays in Gradio's cache or the app's folders.
        watched = [gradio_tmp, cache_dir]
        deadline = time.monotonic() + 10
        while leftovers(watched, files) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftovers(watched, files) == []
    finally:
        demo.close()
    assert leftovers([gradio_tmp, cache_dir], files) == []
    answered, refused = kinds.count("answered"), kinds.count("refused")
    summary = f"answered {answered}, refused {refused}, leftover files 0, wall {wall:.1f} s"
    print(f"\n30 concurrent uploads: {summary}")  # noqa: T201


def test_an_upload_stored_again_is_kept_for_its_own_request(tmp_path, monkeypatch):
    from medvl_recipes.demo.session_files import SessionFiles

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    upload = tmp_path / "cache" / "abc" / "IM000001"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"dicom")
    files = SessionFiles()
    files.hold_upload(upload)  # two clients uploaded the same bytes: one file, two requests
    files.hold_upload(upload)
    files.release("a", upload)
    assert upload.exists()
    # A third client's copy is renamed over it (as Gradio stores uploads) before its hold is counted.
    again = tmp_path / "again"
    again.write_bytes(b"dicom")
    again.rename(upload)
    files.release("b", upload)
    assert upload.exists()
    files.hold_upload(upload)
    files.release("c", upload)
    assert not upload.exists()
    # A file no request held (an upload read by the page itself) goes at once, as before.
    upload.parent.mkdir()
    upload.write_bytes(b"dicom")
    files.release("d", upload)
    assert not upload.exists()


def test_upload_guard_holds_uploads_and_releases_refused_requests(tmp_path, monkeypatch):
    """`UploadGuard` around a stand-in for Gradio's routes: `/upload` stores a file, `/queue/join` refuses."""
    import asyncio
    import json

    from medvl_recipes.demo.session_files import SessionFiles, UploadGuard

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    stored = tmp_path / "cache" / "abc" / "scan.png"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"png")

    async def gradio(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        status, body = (200, [str(stored)]) if scope["path"].endswith("/upload") else (503, {"detail": "full"})
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    files = SessionFiles()
    guard = UploadGuard(gradio, files=files)

    def post(path: str, body: bytes) -> list[dict]:
        sent, chunks = [], [{"type": "http.request", "body": body[:5], "more_body": True}]
        chunks.append({"type": "http.request", "body": body[5:]})

        async def receive():
            return chunks.pop(0)

        async def send(message):
            sent.append(message)

        # In a thread of its own: an earlier test of the session (Playwright, Gradio) may leave an event loop
        # running in this one, where asyncio.run refuses to start.
        call = guard({"type": "http", "method": "POST", "path": path}, receive, send)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, call).result()
        return sent

    assert post("/gradio_api/upload", b"--multipart--")[0]["status"] == 200
    assert files.holds_upload(stored) and stored.exists()
    join = {"data": [{"path": str(stored), "meta": {"_type": "gradio.FileData"}}, True, None], "fn_index": 3}
    assert post("/gradio_api/queue/join", json.dumps(join).encode())[0]["status"] == 503
    assert not files.holds_upload(stored) and not stored.exists()
