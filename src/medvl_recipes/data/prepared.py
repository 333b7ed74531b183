# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The prepared dataset on disk (`medvl prepare` output): its schema and the one reader every stage uses.

Layout: `data/<split>-NNNNN-of-NNNNN.parquet` with `FEATURES`, a dataset card (`README.md`) and
`prepare_report.json`. The reader also takes a `save_to_disk` folder or a Hub dataset id with the same columns,
so the encoder, `to-chat`, `medvl eval` and the demo read any of them the same way.
"""

import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from medvl_recipes.errors import MedvlError


SPLITS = ("train", "validation")
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "source": datasets.Value("string"),
        "id": datasets.Value("string"),
        "group_id": datasets.Value("string"),
        "license": datasets.Value("string"),
        "modality": datasets.Value("string"),
        "findings": datasets.List(
            {"finding": datasets.Value("string"), "site": datasets.Value("string"), "present": datasets.Value("bool")}
        ),
    }
)
REQUIRED_COLUMNS = ("image", "text", "id")


def looks_local(name: str) -> bool:
    """Whether `name` is meant as a local path rather than a Hub id (`./x`, `/x`, `~/x`, `a/b/c`, an existing parent)."""
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return True
    parent = Path(name).expanduser().parent
    return str(parent) not in ("", ".") and parent.is_dir()


def _load_dict(name: str, config: str | None) -> datasets.DatasetDict:
    path = Path(name).expanduser()
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(path))
    if not path.exists() and looks_local(name):
        raise MedvlError(
            f"dataset {name!r} does not exist; point it at a prepared dataset folder (`medvl prepare --output-dir DIR`) "
            "or a Hub dataset id"
        )
    if path.is_dir() and not any(path.rglob("*.parquet")) and not (path / "dataset_infos.json").is_file():
        raise MedvlError(f"dataset {name!r}: no parquet files under {path}; run `medvl prepare` into it first")
    try:
        return datasets.load_dataset(str(path) if path.exists() else name, config)
    except ValueError as err:
        empty = re.search(r'Instruction "([^"]+)" corresponds to no data', str(err))
        if empty is None:
            raise MedvlError(f"dataset {name!r}: cannot be loaded ({str(err).splitlines()[0]})") from err
        raise MedvlError(
            f"dataset {name!r} split {empty.group(1)!r} is empty; prepare more data or choose another split"
        ) from err


def load_prepared_split(
    name_or_path: str | Path,
    split: str,
    *,
    columns: Sequence[str] = REQUIRED_COLUMNS,
    config: str | None = None,
    max_samples: int | None = None,
    setting: str = "split",
) -> datasets.Dataset:
    """Load one split of a prepared dataset and check it has rows and the columns the caller needs.

    Args:
        name_or_path (`str` or `Path`):
            A `medvl prepare` folder, a `save_to_disk` folder, or a Hub dataset id. A name that looks local and
            does not exist is an error, never a Hub lookup.
        split (`str`):
            The split name.
        columns (`Sequence[str]`, *optional*, defaults to `("image", "text", "id")`):
            Columns that must exist.
        config (`str`, *optional*):
            Hub dataset configuration name.
        max_samples (`int`, *optional*):
            Keep only the first N rows.
        setting (`str`, *optional*, defaults to `"split"`):
            The option that chose `split`, named in the error messages (e.g. `dataset_test_split`).

    Raises:
        `MedvlError`: naming the dataset, the split or the column and what to change.
    """
    name = str(name_or_path)
    dataset = _load_dict(name, config)
    if split not in dataset:
        raise MedvlError(
            f"dataset {name!r} has no split {split!r} (it has {sorted(dataset)}); set {setting} to one of them"
        )
    data = dataset[split]
    missing = [column for column in columns if column not in data.column_names]
    if missing:
        raise MedvlError(
            f"dataset {name!r} split {split!r} has no column(s) {missing} (it has {data.column_names}); "
            "pass a `medvl prepare` output or set the column options"
        )
    if len(data) == 0:
        raise MedvlError(f"dataset {name!r} split {split!r} is empty; prepare more data or choose another {setting}")
    if max_samples is not None:
        data = data.select(range(min(max_samples, len(data))))
    return data
