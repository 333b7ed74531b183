# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The one log format of every `medvl` command, entry point, the demo and the eval script."""

import logging


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger with `LOG_FORMAT` (a no-op when the process already configured logging).

    Args:
        level (`int`, *optional*, defaults to `logging.INFO`): The root level.
    """
    logging.basicConfig(format=LOG_FORMAT, datefmt="%H:%M:%S", level=level)
