# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The one exception type that `medvl` turns into a one-line message instead of a traceback."""


class MedvlError(ValueError):
    """A user-facing error: bad input, a bad config value or an unusable path.

    The message must name the file/row/field at fault and say what to do about it. The `medvl` command prints
    it on one line and exits with status 2; library callers can catch it as a `ValueError`.
    """
