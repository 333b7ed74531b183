# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Loading and checking the image-text pairs and the model of an encoder run, before any training starts.

Every check raises a `MedvlError` that names the dataset, split, column or setting and what to change.
"""

import logging
import re
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)


def _load(dataset_name: str, dataset_config: str | None) -> DatasetDict:
    path = Path(dataset_name)
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        return load_from_disk(str(path))
    if not path.exists() and (dataset_name.startswith((".", "/")) or dataset_name.count("/") > 1):
        raise MedvlError(
            f"dataset_name={dataset_name!r} does not exist; point it at a prepared dataset folder "
            "(`medvl prepare --output-dir DIR`) or a Hub dataset id"
        )
    try:
        return load_dataset(str(dataset_name), dataset_config)
    except ValueError as err:
        empty = re.search(r'Instruction "([^"]+)" corresponds to no data', str(err))
        if empty is None:
            raise
        raise MedvlError(
            f"dataset {dataset_name!r} split {empty.group(1)!r} is empty; prepare more data or choose another split"
        ) from err


def _check_split(dataset: DatasetDict, split: str, name: str, columns: tuple[str, str], role: str) -> Dataset:
    if split not in dataset:
        raise MedvlError(
            f"dataset {name!r} has no {split!r} split (it has {sorted(dataset)}); set dataset_{role}_split to one of them"
        )
    data = dataset[split]
    missing = [column for column in columns if column not in data.column_names]
    if missing:
        raise MedvlError(
            f"dataset {name!r} split {split!r} has no column(s) {missing} (it has {data.column_names}); "
            "set image_column/text_column to the image and text columns"
        )
    if len(data) == 0:
        raise MedvlError(
            f"dataset {name!r} split {split!r} is empty; prepare more data or choose another dataset_{role}_split"
        )
    return data


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
    dataset = _load(script_args.dataset_name, script_args.dataset_config)
    columns = (script_args.image_column, script_args.text_column)
    name = script_args.dataset_name
    train = _check_split(dataset, script_args.dataset_train_split, name, columns, "train")
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    evaluation = None
    if do_eval:
        evaluation = _check_split(dataset, script_args.dataset_test_split, name, columns, "test")
        if script_args.max_eval_samples is not None:
            evaluation = evaluation.select(range(min(script_args.max_eval_samples, len(evaluation))))
    logger.info("pairs: %d train, %s eval from %s", len(train), len(evaluation) if evaluation else 0, name)
    return train, evaluation


def check_encoder_model(model, max_length: int, model_name: str) -> None:
    """Raise a `MedvlError` if `model` is not a SigLIP-style dual encoder or `max_length` exceeds its text positions.

    Args:
        model (`PreTrainedModel`):
            The loaded model.
        max_length (`int`):
            The configured text length in tokens.
        model_name (`str`):
            How to name the model in the message.
    """
    if not all(hasattr(model, attr) for attr in ("logit_scale", "logit_bias", "get_image_features")):
        raise MedvlError(
            f"{model_name} ({type(model).__name__}) is not a SigLIP dual encoder with logit_scale/logit_bias; "
            "use a SiglipModel checkpoint such as google/siglip-base-patch16-224"
        )
    limit = model.config.text_config.max_position_embeddings
    if max_length > limit:
        raise MedvlError(
            f"max_length={max_length} exceeds the text tower's {limit} positions of {model_name}; set max_length <= {limit}"
        )
