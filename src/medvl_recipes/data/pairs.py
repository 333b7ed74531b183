# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The image-text pairs of an encoder run: train and validation splits of a prepared dataset, checked up front."""

import logging

from datasets import Dataset, Image

from medvl_recipes.data.prepared import load_prepared_split
from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)


def get_pair_datasets(script_args, do_eval: bool = True) -> tuple[Dataset, Dataset | None]:
    """Load the train (and validation) splits of `script_args.dataset_name` and check them.

    Args:
        script_args (`EncoderScriptArguments`):
            `dataset_name` (a prepared dataset folder, a `save_to_disk` folder or a Hub id), `dataset_config`,
            `dataset_train_split`, `dataset_test_split`, `image_column`, `text_column`, `max_train_samples`,
            `max_eval_samples`.
        do_eval (`bool`, *optional*, defaults to `True`):
            Also load and check the evaluation split.

    Returns:
        `(train_dataset, eval_dataset)`; `eval_dataset` is `None` without `do_eval`.
    """
    if not script_args.dataset_name:
        raise MedvlError("no dataset_name; set it to a prepared dataset folder (`medvl prepare --output-dir DIR`)")
    name = script_args.dataset_name
    columns = (script_args.image_column, script_args.text_column)
    train = load_prepared_split(
        name,
        script_args.dataset_train_split,
        columns=columns,
        config=script_args.dataset_config,
        max_samples=script_args.max_train_samples,
        setting="dataset_train_split",
    )
    evaluation = None
    if do_eval:
        evaluation = load_prepared_split(
            name,
            script_args.dataset_test_split,
            columns=columns,
            config=script_args.dataset_config,
            max_samples=script_args.max_eval_samples,
            setting="dataset_test_split",
        )
    train, evaluation = (_undecoded(d, script_args.image_column) for d in (train, evaluation))
    logger.info("pairs: %d train, %s eval from %s", len(train), len(evaluation) if evaluation else 0, name)
    return train, evaluation


def _undecoded(dataset: Dataset | None, image_column: str) -> Dataset | None:
    # `datasets` would decode images inside the dataloader, where a corrupt or oversized file is a PIL traceback;
    # the pair collator decodes them with `imaging.load_image` instead, whose error names the sample and its id.
    if dataset is None or not isinstance(dataset.features.get(image_column), Image):
        return dataset
    return dataset.cast_column(image_column, Image(decode=False))
