# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Evaluate a report decoder, a SigLIP encoder or existing predictions; compare two runs.

Tested on CPU (2 cores) with the tiny smoke checkpoints and on one GPU for the 11B decoder.

    python eval/run_eval.py --config eval/configs/smoke.yaml
    python eval/run_eval.py --config eval/configs/sample.yaml --decoder outputs/decoder --encoder outputs/encoder
    python eval/run_eval.py --predictions other_system.jsonl --dataset data/prepared --output-dir outputs/eval-other
    python eval/run_eval.py compare outputs/eval-a outputs/eval-b

Same as `medvl eval ...`; flags after `--config` override the YAML.
"""

import sys

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.runner import cli
from medvl_recipes.logs import setup_logging


if __name__ == "__main__":
    setup_logging()
    try:
        sys.exit(cli(sys.argv[1:]))
    except MedvlError as err:
        print(f"run_eval.py: error: {err}", file=sys.stderr)
        sys.exit(2)
