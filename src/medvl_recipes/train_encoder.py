# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune a SigLIP dual encoder on image-report pairs with the sigmoid contrastive loss.

Tested on 2 CPU cores (`config_smoke.yaml`, a few minutes) and sized for one 80 GB GPU (`config_full.yaml`).

Usage:
    python -m medvl_recipes.train_encoder --config recipes/siglip-base-patch16-224/encoder/config_smoke.yaml
    accelerate launch --config_file accelerate_configs/ddp.yaml -m medvl_recipes.train_encoder \
        --config recipes/siglip-base-patch16-224/encoder/config_full.yaml
    medvl train-encoder --config recipes/siglip-base-patch16-224/encoder/config_full.yaml --learning_rate 5e-5
"""

import contextlib
import logging
import os
import sys
from pathlib import Path

import transformers
from transformers import set_seed
from trl import TrlParser

from medvl_recipes.callbacks import RunIdentityCallback
from medvl_recipes.checkpoints import start_run
from medvl_recipes.collators import SiglipPairCollator
from medvl_recipes.configs import (
    EncoderModelConfig,
    EncoderScriptArguments,
    SiglipTrainingConfig,
    get_recipe_path,
    parse_recipe,
)
from medvl_recipes.data.pairs import get_pair_datasets
from medvl_recipes.hub.model_card import write_model_card
from medvl_recipes.hub.push import push_training_output, take_over_push
from medvl_recipes.logs import setup_logging
from medvl_recipes.modeling import check_checkpoint, full_weights_on_save, get_encoder
from medvl_recipes.retrieval import write_retrieval_before_after
from medvl_recipes.trainers import SiglipContrastiveTrainer


logger = logging.getLogger(__name__)
RETRIEVAL_FILE = "retrieval_before_after.json"


@contextlib.contextmanager
def _tensorboard_dir(path: Path):
    # TensorBoardCallback reads TENSORBOARD_LOGGING_DIR when the Trainer creates it; a user's own value wins.
    if "TENSORBOARD_LOGGING_DIR" in os.environ:
        yield
        return
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        del os.environ["TENSORBOARD_LOGGING_DIR"]


def main(script_args, training_args, model_args, recipe: str | None = None) -> dict:
    # Seed and logging
    setup_logging()
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)
    push_to_hub = take_over_push(training_args)
    check_checkpoint(model_args.model_name_or_path, "model_name_or_path")
    identity, resume_from = start_run(script_args, training_args, model_args)

    # Data
    do_eval = training_args.eval_strategy != "no" or training_args.retrieval_eval
    train_dataset, eval_dataset = get_pair_datasets(script_args, do_eval=do_eval)

    # Processor and model
    model, processor = get_encoder(model_args, script_args)

    # Trainer
    collator = SiglipPairCollator(
        processor,
        image_column=script_args.image_column,
        text_column=script_args.text_column,
        max_length=script_args.max_length,
    )
    # The retrieval evaluation before training logs before `on_train_begin`, where TensorBoardCallback would pick
    # its folder, and it then writes to ./runs; point it at the run's folder, as Trainer does for a plain run.
    with _tensorboard_dir(Path(training_args.output_dir) / "runs"):
        trainer = SiglipContrastiveTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collator,
            processing_class=processor,
            callbacks=[RunIdentityCallback(identity)],
        )
    before = trainer.evaluate(metric_key_prefix="eval") if eval_dataset is not None else {}

    # Train
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    # Save
    full_weights_on_save(trainer)
    trainer.save_model(training_args.output_dir)
    metrics = dict(train_result.metrics)

    # Evaluate
    if eval_dataset is not None:
        after = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", after)
        trainer.save_metrics("eval", after)
        metrics.update(after)
        if trainer.is_world_process_zero():
            write_retrieval_before_after(Path(training_args.output_dir) / RETRIEVAL_FILE, before, after)

    # Model card and push
    if trainer.is_world_process_zero():
        processor.save_pretrained(training_args.output_dir)
        write_model_card(
            training_args.output_dir,
            stage="encoder",
            base_model=model_args.model_name_or_path,
            recipe=recipe,
            dataset=script_args.dataset_name,
            metrics=metrics,
            training_args=training_args.to_sanitized_dict(),
        )
        if push_to_hub:
            push_training_output(training_args.output_dir, training_args)
    return metrics


def build_parser() -> TrlParser:
    return TrlParser((EncoderScriptArguments, SiglipTrainingConfig, EncoderModelConfig))


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parse_recipe(build_parser(), argv)
    main(script_args, training_args, model_args, recipe=get_recipe_path(argv))
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(cli())
