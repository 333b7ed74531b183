# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl to-chat`: a prepared dataset as TRL conversational vision JSONL, one file per split.

    medvl to-chat --dataset outputs/quickstart/dataset --output-dir outputs/quickstart/chat [--prompt-set default]

Each line holds a system turn, a user turn (image + an instruction phrasing picked deterministically per sample
from the prompt set) and the assistant turn (the report), plus `images` (paths relative to the JSONL file's
folder) and `findings`.
"""

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from medvl_recipes.errors import MedvlError
from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, get_prompt_set


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


def build_messages(report: str, instruction: str, system_prompt: str) -> list[dict]:
    """The three-turn conversation of one sample in TRL's conversational vision format.

    Args:
        report (`str`):
            The assistant's answer.
        instruction (`str`):
            The user's instruction, after the image.
        system_prompt (`str`):
            The system turn.
    """
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]},
        {"role": "assistant", "content": [{"type": "text", "text": report}]},
    ]


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
    image_dir = output_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for split, split_files in by_split.items():
        count = 0
        with (output_dir / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            for file in split_files:
                parquet = pq.ParquetFile(file)
                missing = {"image", "text", "id"} - set(parquet.schema_arrow.names)
                if missing:
                    raise MedvlError(
                        f"{file}: missing column(s) {sorted(missing)}; expected a `medvl prepare` dataset"
                    )
                progress = tqdm(total=parquet.metadata.num_rows, desc=f"to-chat {split}", disable=not show_progress)
                for batch in parquet.iter_batches(batch_size=256):
                    for row in batch.to_pylist():
                        image = row["image"] or {}
                        if not image.get("bytes"):
                            raise MedvlError(f"{file}: row id {row['id']!r} has no image bytes")
                        name = _image_file_name(row["id"])
                        (image_dir / name).write_bytes(image["bytes"])
                        line = {
                            "id": row["id"],
                            "messages": build_messages(
                                row["text"], pick_prompt(prompts, row["id"], seed), system_prompt
                            ),
                            "images": [f"images/{name}"],
                            "findings": row.get("findings") or [],
                        }
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                        count += 1
                    progress.update(batch.num_rows)
                progress.close()
        logger.info("wrote %d %s conversations to %s", count, split, output_dir / f"{split}.jsonl")
    return output_dir


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
