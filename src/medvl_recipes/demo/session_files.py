# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Which files in Gradio's cache each browser session holds, so that uploads and the images a session was shown
are deleted when it ends (an upload as soon as the last request naming it has been answered or refused)."""

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from PIL import Image


logger = logging.getLogger(__name__)


def delete_cached_file(path: str | Path | None) -> None:
    """Delete a file (and its now-empty per-file folder) from Gradio's cache; paths outside the cache are left alone.

    Args:
        path (`str` or `Path`, *optional*): A file in Gradio's cache (`GRADIO_TEMP_DIR`).
    """
    from gradio.utils import get_upload_folder

    if path is None:
        return
    path = Path(path)
    if Path(get_upload_folder()).resolve() not in path.resolve().parents:
        return
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the folder may hold other files
        path.parent.rmdir()


class SessionFiles:
    """The files in Gradio's cache that each browser session holds, deleted when the last session holding them ends.

    Gradio names a cached file by the hash of its content, so two sessions shown the same image (an example, the
    thumbnail of a popular similar case) share one file: a file is deleted only once no session holds it. Sessions
    are Gradio's `session_hash`es; one ends when its tab is closed or reloaded (`Blocks.unload`). Gradio's
    time-based `delete_cache` stays as the backstop for sessions that never end cleanly (REST calls).

    Uploads are content-addressed too (`<hash of the bytes>/<name>`): identical uploads from several clients are
    one file, read by each of their requests. So an upload is also held from the moment Gradio stores it
    (`hold_upload`, called by `UploadGuard`) until each request naming it has been answered (`release`) or
    refused by a full queue (`UploadGuard` again): the first request to finish never deletes it under the others.

    Args:
        keep (`Iterable[str]`, *optional*): Cached files never deleted (the cached copies of the examples).
    """

    # A run can outlive its session (the tab was closed mid-report); its late files are deleted when it
    # finishes, so recently ended sessions are remembered, a bounded number of them.
    max_ended = 4096

    def __init__(self, keep: Iterable[str] = ()):
        self.keep = {str(Path(p).resolve()) for p in keep}
        self._holders: dict[str, set[str]] = {}  # file -> sessions holding it
        self._files: dict[str, set[str]] = {}  # session -> files it holds
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._uploads: dict[str, int] = {}  # upload -> requests still to answer or refuse
        self._inodes: dict[str, set[int]] = {}  # upload -> the stored copies (inodes) that were held
        # One lock around write + register and check + delete: a file another session is writing right now
        # is never deleted in between.
        self._lock = threading.Lock()

    def add(self, session_hash: str | None, path: str | Path | None) -> str | Path | None:
        """Record that a session holds a cached file; returns `path` (nothing is recorded without a session)."""
        if session_hash is None or path is None:
            return path
        with self._lock:
            self._add(session_hash, path)
        return path

    def _add(self, session_hash: str, path: str | Path) -> None:
        key = str(Path(path).resolve())
        self._holders.setdefault(key, set()).add(session_hash)
        self._files.setdefault(session_hash, set()).add(key)

    def cache_image(self, session_hash: str | None, image: Image.Image, component) -> str:
        """Write `image` into Gradio's cache exactly as `component` (a `gr.Image` or `gr.Gallery`) would when
        it is returned, and record it for the session. Returns the path to give the component instead.
        """
        from gradio.image_utils import save_image

        with self._lock:
            path = save_image(image, cache_dir=component.GRADIO_CACHE, format=component.format)
            if session_hash is not None:
                self._add(session_hash, path)
        return path

    def cache_file(self, session_hash: str | None, path: str | Path, component) -> str:
        """Copy a file into Gradio's cache as `component` (a `gr.File`) would when it is returned, and record it
        for the session. Returns the cached path to give the component instead.
        """
        with self._lock:
            cached = component.move_resource_to_block_cache(str(path))
            if session_hash is not None:
                self._add(session_hash, cached)
        return cached

    def hold_upload(self, path: str | Path) -> None:
        """Gradio has stored an upload at `path`: keep it until the request that names it is answered or refused."""
        key = str(Path(path).resolve())
        with self._lock:
            self._uploads[key] = self._uploads.get(key, 0) + 1
            with contextlib.suppress(OSError):
                self._inodes.setdefault(key, set()).add(os.stat(key).st_ino)

    def holds_upload(self, path: str | Path) -> bool:
        """Whether a request naming this upload is still to be answered or refused."""
        with self._lock:
            return self._uploads.get(str(Path(path).resolve()), 0) > 0

    def release(self, session_hash: str | None, path: str | Path | None) -> None:
        """A request has read its upload (or was refused): drop its hold and the session's, and delete the file
        once no request and no session holds it."""
        if path is None:
            return
        key = str(Path(path).resolve())
        with self._lock:
            holders = self._holders.get(key, set())
            holders.discard(session_hash)
            self._files.get(session_hash, set()).discard(key)
            pending = self._uploads.pop(key, 0) - 1
            if pending > 0:
                self._uploads[key] = pending
            if not holders:
                self._holders.pop(key, None)
                if pending <= 0 and not self._stored_again(key):
                    self._inodes.pop(key, None)
                    self._delete(key)

    def _stored_again(self, key: str) -> bool:
        # The same bytes uploaded again were stored (a new file renamed over the old one) just before this
        # release, and `hold_upload` for them is still to come: that upload's own request deletes it.
        seen = self._inodes.get(key)
        try:
            return bool(seen) and os.stat(key).st_ino not in seen
        except OSError:
            return False

    def end_session(self, session_hash: str | None) -> list[str]:
        """Delete every file of an ended session that no other session holds; returns the deleted paths."""
        if session_hash is None:
            return []
        with self._lock:
            self._ended[session_hash] = None
            while len(self._ended) > self.max_ended:
                self._ended.popitem(last=False)
            deleted = []
            for key in self._files.pop(session_hash, set()):
                holders = self._holders.get(key, set())
                holders.discard(session_hash)
                if not holders:
                    self._holders.pop(key, None)
                    if self._uploads.get(key, 0) <= 0 and self._delete(key):
                        self._inodes.pop(key, None)
                        deleted.append(key)
        if deleted:
            logger.info("Session ended: deleted %d cached files", len(deleted))
        return deleted

    def has_ended(self, session_hash: str | None) -> bool:
        """Whether `end_session` was called for this session (recently)."""
        with self._lock:
            return session_hash in self._ended

    def _delete(self, key: str) -> bool:
        if key in self.keep:
            return False
        delete_cached_file(key)
        return True


def _named_files(value) -> list[str]:
    """The `path` of every file payload (`{"path": ..., "meta": {"_type": "gradio.FileData"}}`) in a request body."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str):
            return [value["path"]]
        value = list(value.values())
    if isinstance(value, list):
        return [path for item in value for path in _named_files(item)]
    return []


class UploadGuard:
    """ASGI middleware that tells `SessionFiles` when an upload arrives and when a request naming it is refused.

    Gradio stores an upload on `POST .../upload` and answers with its path; the file is held before the client
    hears of it. A request that names uploads and is refused (the queue is full: 503, or any other error answer
    before it runs) never reaches the app's handlers, so its uploads are released here, at once.
    Pass it as `demo.launch(app_kwargs={"middleware": [Middleware(UploadGuard, files=...)]})`.

    Args:
        app: The ASGI app (Gradio's FastAPI app).
        files (`SessionFiles`): The page's session files.
    """

    def __init__(self, app, files: SessionFiles):
        self.app, self.files = app, files

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if scope["path"].endswith("/upload"):
            return await self.app(scope, receive, self._holding(send))
        request = bytearray()

        async def reading():
            message = await receive()
            if message["type"] == "http.request":
                request.extend(message.get("body", b""))
            return message

        async def answering(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self._release_named(bytes(request))
            await send(message)

        return await self.app(scope, reading, answering)

    def _holding(self, send):
        status, body = [0], bytearray()

        async def holding(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and status[0] == 200:
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    # Held before the client can name the file in a request, so no request finds it gone.
                    with contextlib.suppress(ValueError):
                        for path in json.loads(body):
                            self.files.hold_upload(path)
            await send(message)

        return holding

    def _release_named(self, request: bytes) -> None:
        try:
            named = _named_files(json.loads(request).get("data", []))
        except (ValueError, AttributeError):
            return
        for path in named:
            if self.files.holds_upload(path):
                self.files.release(None, path)
