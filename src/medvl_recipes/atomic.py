# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Output folders written atomically: a run that fails leaves the previous output whole."""

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `target`; on success it replaces `target`, on failure it is deleted.

    The swap is two renames on one file system (the old folder moves aside, the new one takes its name, the old one
    is deleted), so a reader sees the old output or the new one, never a mix, and an error, a crash or Ctrl-C while
    writing leaves the previous output untouched. Callers check first that `target` is theirs to replace.

    Args:
        target (`str` or `Path`): The output folder.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
