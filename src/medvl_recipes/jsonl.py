# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""JSON Lines: the one reader (with line numbers and one-line errors) and the one atomic writer of the package."""

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)


def read_jsonl(
    path: str | Path, *, what: str = "one JSON object per line", skip_bad_lines: bool = False
) -> Iterator[tuple[int, dict]]:
    """Yield `(line_number, object)` for every non-blank line of a JSONL file.

    UTF-8 with or without a byte-order mark; CRLF line ends are fine.

    Args:
        path (`str` or `Path`): The file.
        what (`str`, *optional*): What a line should hold, for the error message.
        skip_bad_lines (`bool`, *optional*, defaults to `False`): Log and skip unreadable lines instead of raising
            (append-only logs, whose last line a crash can cut short).

    Raises:
        `MedvlError`: `path:line: ...` when the file is missing, a line is not valid JSON or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise MedvlError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise MedvlError(
                        f"{path}:{line_number}: a {type(row).__name__}, not a JSON object; expected {what}"
                    )
            except (json.JSONDecodeError, MedvlError) as err:
                message = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
                if skip_bad_lines:
                    logger.warning("%s:%d: unreadable line skipped (%s)", path, line_number, message)
                    continue
                if isinstance(err, MedvlError):
                    raise
                raise MedvlError(f"{path}:{line_number}: not valid JSON ({message}); expected {what}") from err
            yield line_number, row


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write `rows` to `path` atomically (a temporary sibling renamed on success); return the number written.

    Args:
        path (`str` or `Path`): The target file; a previous file stays whole if writing fails.
        rows (`Iterable[dict]`): JSON-serialisable objects, one per line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
