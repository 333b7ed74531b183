# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl to-chat`: a prepared dataset as TRL conversational vision JSONL, one file per split.

    medvl to-chat --dataset outputs/quickstart/dataset --output-dir outputs/quickstart/chat [--prompt-set default]

Each line holds a system turn, a user turn (image + an instruction phrasing picked deterministically per sample
from the prompt set) and the assistant turn (the report), plus `images` (paths relative to the JSONL file's
folder) and `findings`. The folder is written as a temporary sibling and renamed into place on success, so a
failed run leaves the previous output whole and never half-written JSONL.
"""

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from medvl_recipes.atomic import atomic_dir
from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl
from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, build_messages, get_prompt_set, message_text


logger = logging.getLogger(__name__)


def pick_prompt(prompts: list[str], sample_id: str, seed: int = 0) -> str:
    """The instruction for a sample: fixed by a hash of `seed` and the id, so reruns and resumes agree.

    Args:
        prompts (`list[str]`):
            Instruction phrasings.
        sample_id (`str`):
            The sample's `id`.
        seed (`int`, *optional*, defaults to `0`):
            Changes the assignment as a whole.
    """
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return prompts[int.from_bytes(digest[:8], "big") % len(prompts)]


def _image_file_name(sample_id: str) -> str:
    # Ids contain ':' and '/' (e.g. "dicom:CT/small.dcm"); the hash keeps sanitised names unique.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._")[:80]
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}.png"


def _num_image_parts(messages: list[dict], image_token: str | None) -> int:
    # `{"type": "image"}` parts, plus image tokens written into the text when the processor's token is known.
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            count += content.count(image_token) if image_token else 0
        else:
            count += sum(1 for part in content or [] if part.get("type") == "image")
            if image_token:
                count += sum((part.get("text") or "").count(image_token) for part in content or [])
    return count


def check_chat_example(example: dict, where: str, image_token: str | None = None) -> None:
    """Raise a `MedvlError` naming `where` (e.g. `"sample 3 (id abc)"`) if `example` cannot be trained on.

    Checks that the example has a `messages` list with at least one assistant turn and an `images` list (or a single
    `image`) with exactly one entry per image placeholder in the messages.

    Args:
        example (`dict`):
            A chat-JSONL record: `{"messages": [...], "images": [...]}`.
        where (`str`):
            How to name the sample in the error message.
        image_token (`str`, *optional*):
            The processor's image token (`processor.image_token`); occurrences in the text count as placeholders.
    """
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MedvlError(f"{where}: no `messages` list; each line needs the chat-JSONL layout of `medvl to-chat`")
    if not any(message.get("role") == "assistant" and message_text(message.get("content")) for message in messages):
        raise MedvlError(
            f"{where}: the chat has no (non-empty) assistant turn, so there is nothing to learn; add the report as an "
            "assistant message or drop the sample"
        )
    images = example.get("images")
    if images is None and example.get("image") is not None:
        images = [example["image"]]
    num_images = len(images or [])
    num_placeholders = _num_image_parts(messages, image_token)
    if num_images == 0:
        raise MedvlError(
            f"{where}: the sample has no image; give it an `images` list (paths relative to the JSONL file) or drop it"
        )
    if num_placeholders != num_images:
        raise MedvlError(
            f"{where}: the messages have {num_placeholders} image placeholder(s) (`{{'type': 'image'}}` parts or "
            f"{image_token or 'image'} tokens) but `images` has {num_images}; give one image per placeholder"
        )


def load_chat_split(dataset_name: str | Path, split: str, *, config: str | None = None):
    """Load one split of a chat dataset for `train-decoder`, in any of the layouts it recognises.

    - A `medvl to-chat` folder: `dataset_name/{split}.jsonl`, image paths relative to the JSONL file (made
      absolute here).
    - TRL's vision SFT layout (the format of TRL's VLM examples, e.g. `HuggingFaceH4/llava-instruct-mix-vsft`):
      rows with `messages` (content lists of `{"type": "image"}` and `{"type": "text", "text": ...}` parts) and
      `images` (a list of images), as a folder written by `Dataset(Dict).save_to_disk`, a folder of parquet/JSONL
      files `datasets.load_dataset` reads, or a Hub dataset id (the same `load_dataset` call).

    Every sample is checked with `check_chat_example` before any training starts, so errors name the file or split
    and the line or row.

    Args:
        dataset_name (`str` or `Path`):
            A chat folder, a TRL-format dataset folder or a Hub dataset id.
        split (`str`):
            The split, e.g. `"train"` (the JSONL file stem of a `medvl to-chat` folder).
        config (`str`, *optional*):
            The dataset configuration of a Hub or `load_dataset` dataset (`dataset_config`).

    Returns:
        `datasets.Dataset` with columns `id`, `messages` and `images` (absolute paths, or images).
    """
    path = Path(dataset_name)
    if (path / f"{split}.jsonl").is_file():
        return _load_chat_jsonl(path / f"{split}.jsonl")
    if not path.exists() and (
        path.is_absolute() or str(dataset_name).startswith(".") or path.as_posix().count("/") != 1
    ):
        raise MedvlError(
            f"{path / (split + '.jsonl')}: no such file; point dataset_name at a `medvl to-chat` folder, a TRL-format "
            "dataset folder or a Hub dataset id"
        )
    if path.is_dir() and any(path.glob("*.jsonl")) and not any(path.glob("*.parquet")):
        found = ", ".join(sorted(p.stem for p in path.glob("*.jsonl")))
        raise MedvlError(f"{path / (split + '.jsonl')}: no such file (this chat folder has {found}); choose a split")
    return _load_trl_split(dataset_name, split, config)


def _load_chat_jsonl(path: Path):
    from datasets import Dataset

    rows = []
    for line_number, example in read_jsonl(path, what="a chat sample written by `medvl to-chat`"):
        where = f"{path} line {line_number} (sample {len(rows)})"
        check_chat_example(example, where)
        images = example.get("images") if example.get("images") is not None else [example["image"]]
        absolute = []
        for image in images:
            image_path = Path(image) if Path(image).is_absolute() else path.parent / image
            if not image_path.is_file():
                raise MedvlError(
                    f"{where}: image {image_path} does not exist; copy the `images/` folder next to the JSONL or "
                    "rerun `medvl to-chat`"
                )
            absolute.append(str(image_path))
        rows.append({"id": str(example.get("id", len(rows))), "messages": example["messages"], "images": absolute})
    if not rows:
        raise MedvlError(f"{path}: no samples; rerun `medvl to-chat` or choose another split")
    return Dataset.from_list(rows)


def _read_dataset_split(dataset_name: str | Path, split: str, config: str | None):
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(dataset_name)
    what = f"dataset_name {dataset_name}"
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            dataset = load_from_disk(str(path))  # written by `save_to_disk`
            if isinstance(dataset, DatasetDict):
                if split not in dataset:
                    raise ValueError(f"Unknown split {split!r}. Should be one of {sorted(dataset)}.")
                dataset = dataset[split]
            return dataset
        return load_dataset(str(dataset_name), config, split=split)
    except ValueError as err:
        if "split" in str(err).lower():
            raise MedvlError(
                f"{what}: {str(err).splitlines()[0]}; set --dataset_train_split / --dataset_test_split"
            ) from err
        raise MedvlError(f"{what}: {str(err).splitlines()[0]}") from err
    except (FileNotFoundError, ConnectionError) as err:
        raise MedvlError(
            f"{what}: neither a `medvl to-chat` folder ({split}.jsonl), a dataset folder (save_to_disk, parquet or "
            f"JSONL files) nor a Hub dataset this machine can reach ({type(err).__name__})"
        ) from err


def _load_trl_split(dataset_name: str | Path, split: str, config: str | None):
    from datasets import Image, List

    dataset = _read_dataset_split(dataset_name, split, config)
    columns = set(dataset.column_names)
    if not {"messages", "images"} <= columns:
        hint = " (a `medvl prepare` dataset: convert it with `medvl to-chat`)" if {"image", "text"} <= columns else ""
        raise MedvlError(
            f"dataset_name {dataset_name} split {split}: unknown layout, columns {sorted(columns)}{hint}; "
            "train-decoder reads `medvl to-chat` folders and TRL's `messages` + `images` datasets"
        )
    # Checked without decoding a single image: an `Image()` column read with `decode=False` gives bytes/path dicts.
    undecoded = dataset.select_columns(["messages", "images"])
    if isinstance(undecoded.features["images"], List) and isinstance(undecoded.features["images"].feature, Image):
        undecoded = undecoded.cast_column("images", List(Image(decode=False)))
    for row, example in enumerate(undecoded):
        check_chat_example(example, f"dataset_name {dataset_name} split {split} row {row}")
    if "id" not in columns:
        dataset = dataset.add_column("id", [f"{split}-{row}" for row in range(len(dataset))])
    if len(dataset) == 0:
        raise MedvlError(f"dataset_name {dataset_name} split {split}: no samples; choose another split")
    return dataset.select_columns(["id", "messages", "images"])


def write_chat_dataset(
    dataset_dir: str | Path,
    output_dir: str | Path,
    *,
    prompt_set: str = "default",
    system_prompt: str | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> Path:
    """Convert a prepared dataset folder into `OUT/<split>.jsonl` + `OUT/images/*.png`.

    Args:
        dataset_dir (`str` or `pathlib.Path`):
            A folder written by `prepare_dataset` (`data/<split>-*.parquet`).
        output_dir (`str` or `pathlib.Path`):
            Where the JSONL files and images go.
        prompt_set (`str`, *optional*, defaults to `"default"`):
            Name of a prompt set in `medvl_recipes.prompts.PROMPT_SETS`.
        system_prompt (`str`, *optional*):
            System turn; defaults to `medvl_recipes.prompts.DEFAULT_SYSTEM_PROMPT`.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the per-sample instruction choice.
        show_progress (`bool`, *optional*, defaults to `True`):
            Show a tqdm progress bar.

    Returns:
        `pathlib.Path`: the output folder.
    """
    dataset_dir, output_dir = Path(dataset_dir), Path(output_dir)
    prompts = get_prompt_set(prompt_set)
    system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    files = sorted((dataset_dir / "data").glob("*.parquet"))
    if not files:
        raise MedvlError(f"{dataset_dir}: no data/<split>-*.parquet files; run `medvl prepare` first")
    by_split: dict[str, list[Path]] = {}
    for file in files:
        by_split.setdefault(file.name.split("-")[0], []).append(file)
    _check_replaceable(output_dir)
    with atomic_dir(output_dir) as staging:
        counts = _write_splits(by_split, staging, prompts, system_prompt, seed, show_progress)
    for split, count in counts.items():
        logger.info("wrote %d %s conversations to %s", count, split, output_dir / f"{split}.jsonl")
    return output_dir


def _check_replaceable(output_dir: Path) -> None:
    # Replacing the folder deletes it: only ever replace an earlier to-chat output (or an empty folder).
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise MedvlError(f"--output-dir {output_dir} is a file; pass a folder")
    foreign = sorted(p.name for p in output_dir.iterdir() if not (p.suffix == ".jsonl" or p.name == "images"))
    if foreign:
        raise MedvlError(
            f"--output-dir {output_dir} holds files that are not a `medvl to-chat` output ({', '.join(foreign[:3])}); "
            "pass a new or empty folder"
        )


def _write_splits(
    by_split: dict[str, list[Path]], out_dir: Path, prompts, system_prompt, seed, show_progress
) -> dict[str, int]:
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True)
    counts = {}
    for split, split_files in by_split.items():
        count = 0
        with (out_dir / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            for file in split_files:
                parquet = pq.ParquetFile(file)
                missing = {"image", "text", "id"} - set(parquet.schema_arrow.names)
                if missing:
                    raise MedvlError(
                        f"{file}: missing column(s) {sorted(missing)}; expected a `medvl prepare` dataset"
                    )
                with tqdm(
                    total=parquet.metadata.num_rows, desc=f"to-chat {split}", disable=not show_progress
                ) as progress:
                    for row_number, row in enumerate(
                        (row for batch in parquet.iter_batches(batch_size=256) for row in batch.to_pylist()), start=1
                    ):
                        where = f"{file} row {row_number} (id {row['id']!r})"
                        image = row["image"] or {}
                        if not image.get("bytes"):
                            raise MedvlError(f"{where}: field `image` has no image bytes; rerun `medvl prepare`")
                        if not isinstance(row["text"], str) or not row["text"].strip():
                            raise MedvlError(
                                f"{where}: field `text` is empty; rerun `medvl prepare`, which drops such rows"
                            )
                        if not isinstance(row["id"], str) or not row["id"]:
                            raise MedvlError(f"{where}: field `id` must be a non-empty string")
                        name = _image_file_name(row["id"])
                        (image_dir / name).write_bytes(image["bytes"])
                        line = {
                            "id": row["id"],
                            "messages": build_messages(
                                pick_prompt(prompts, row["id"], seed), system_prompt, report=row["text"]
                            ),
                            "images": [f"images/{name}"],
                            "findings": row.get("findings") or [],
                        }
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                        count += 1
                        progress.update(1)
        counts[split] = count
    return counts


def cli(argv: list[str] | None = None) -> int:
    """`medvl to-chat` entry point."""
    parser = argparse.ArgumentParser(
        prog="medvl to-chat",
        description="Convert a prepared dataset into TRL conversational vision JSONL (one file per split) "
        "with PNG images under OUT/images/.",
    )
    parser.add_argument("--dataset", required=True, help="Folder written by `medvl prepare`.")
    parser.add_argument("--output-dir", required=True, help="Output folder for <split>.jsonl and images/.")
    parser.add_argument("--prompt-set", default="default", help="Instruction prompt set (medvl_recipes.prompts).")
    parser.add_argument("--system-prompt", default=None, help="System prompt (default: DEFAULT_SYSTEM_PROMPT).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the per-sample instruction choice.")
    args = parser.parse_args(argv)
    write_chat_dataset(
        args.dataset, args.output_dir, prompt_set=args.prompt_set, system_prompt=args.system_prompt, seed=args.seed
    )
    return 0
