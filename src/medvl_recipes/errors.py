# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The one exception type that `medvl` turns into a one-line message instead of a traceback, and its "did you mean"."""

import difflib
from collections.abc import Iterable


class MedvlError(ValueError):
    """A user-facing error: bad input, a bad config value or an unusable path.

    The message must name the file/row/field at fault and say what to do about it. The `medvl` command prints
    it on one line and exits with status 2; library callers can catch it as a `ValueError`.
    """


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a mistyped `name` (difflib ratio >= 0.6), or `None`.

    The one "did you mean" helper of the project: unknown commands and flags in `medvl`, unknown recipe keys and
    flags in the trainers. Dashes and underscores are compared alike, so `--output-dir` finds `output_dir`.

    Args:
        name (`str`): What was typed.
        choices (`Iterable[str]`): The valid names.
    """
    canonical = {str(choice).replace("-", "_").lower(): str(choice) for choice in choices}
    match = difflib.get_close_matches(name.replace("-", "_").lower(), list(canonical), n=1, cutoff=0.6)
    return canonical[match[0]] if match else None
