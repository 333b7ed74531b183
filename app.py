# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Gradio demo: upload a PNG/JPEG or DICOM image, get a streamed report, the SigLIP image-report similarity and
the most similar cases of an indexed dataset split. Not for clinical use.

Runs on CPU (tested with the quickstart's smoke models) or one GPU.

    python app.py                                   # serves outputs/quickstart/{decoder,encoder,dataset}, offline
    python app.py --decoder me/medvl-decoder --encoder me/medvl-encoder --index-dataset me/medvl-data --port 7860

Every flag can also be set as an environment variable, e.g. MEDVL_DEMO_MAX_NEW_TOKENS=64.
In a Space pushed by `medvl push space`, the model ids come from demo_config.json next to this file.
"""

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

from medvl_recipes.demo import (
    QUICKSTART_DIR,
    DemoConfig,
    build_demo,
    build_index,
    field_type,
    launch_kwargs,
    load_models,
    resolve_sources,
    write_examples,
)
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.push import SPACE_CONFIG_FILE
from medvl_recipes.logs import setup_logging


logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    for f in fields(DemoConfig):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=field_type(f),
            default=None,
            help=f"{f.metadata['help']} Env MEDVL_DEMO_{f.name.upper()}; default: {f.default}.",
        )
    parser.add_argument(
        "--quickstart-dir", default=str(QUICKSTART_DIR), help="Where `make quickstart` wrote its outputs."
    )
    return parser.parse_args(argv)


def build(argv: list[str] | None = None):
    """Load everything and return `(demo, config, launch_kwargs)` without starting the server."""
    args = vars(parse_args(argv))
    quickstart_dir = args.pop("quickstart_dir")
    config = DemoConfig.from_env(**args)
    config = resolve_sources(config, root=quickstart_dir, space_config=Path(__file__).with_name(SPACE_CONFIG_FILE))
    models = load_models(config)
    index = build_index(models, config)
    examples_dir = Path(config.cache_dir) / "examples"
    examples = write_examples(index, examples_dir)
    return build_demo(models, index, config, examples=examples), config, launch_kwargs(config, examples_dir)


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    try:
        demo, config, kwargs = build(argv)
    except MedvlError as err:
        sys.exit(f"app.py: error: {err}")
    print(f"medvl demo: decoder {config.decoder}, encoder {config.encoder}, index {config.index_dataset}")
    demo.launch(**kwargs)


if __name__ == "__main__":
    main()
