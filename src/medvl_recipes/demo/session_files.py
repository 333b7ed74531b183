# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Which files in Gradio's cache each browser session holds, so that uploads and the images a session was shown
are deleted when it ends (an upload as soon as it has been read)."""

import contextlib
import logging
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

    def release(self, session_hash: str | None, path: str | Path | None) -> None:
        """Drop a session's hold on one file (an upload once it is read) and delete the file if no session holds it."""
        if path is None:
            return
        key = str(Path(path).resolve())
        with self._lock:
            holders = self._holders.get(key, set())
            holders.discard(session_hash)
            self._files.get(session_hash, set()).discard(key)
            if not holders:
                self._holders.pop(key, None)
                self._delete(key)

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
                    if self._delete(key):
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
