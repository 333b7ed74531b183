# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl generate`: reports for new, unlabelled images with a trained decoder (and, optionally, the encoder).

Inputs are image files (PNG, JPEG, DICOM with or without an extension), folders (searched recursively), a prepared
dataset split or a Hub dataset id. The decoder is asked exactly as it was trained: the instruction and system prompt
stored with the checkpoint (`prompt.json`, else the `medvl_recipes.prompts` defaults the chat data is written with)
and the chat template saved with its processor, through `generation.generate_reports`, the function `medvl eval` and
the demo use. With `--encoder` (a SigLIP folder, Hub id or `medvl export onnx` folder) each row also gets the k most
similar cases of an index split (ids and reports) and SigLIP's image-report match probability.

Outputs, appended batch by batch so that an interrupted run resumes where it stopped: `OUT/reports.jsonl` and, at
the end, `OUT/reports.csv`. They hold the id, the source path relative to its input root, the report, the findings,
similar cases and timings; never DICOM tags or absolute paths (DICOM pixels are windowed by `imaging.load_image`).

Usage:

    medvl generate new_images/ --decoder outputs/decoder --output-dir outputs/generate
    medvl generate scan.dcm DICOM/IM000001 --decoder me/medvl-decoder --encoder outputs/encoder \
        --index-dataset outputs/dataset --output-dir outputs/generate
    medvl generate outputs/dataset --split validation --decoder outputs/decoder --output-dir outputs/generate
"""

import argparse
import csv
import functools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import is_dicom, load_image
from medvl_recipes.prompts import read_prompt
from medvl_recipes.retrieval import TorchEncoder, match_probability
from medvl_recipes.retrieval_context import load_retrieval_context


logger = logging.getLogger(__name__)

# Written next to a decoder's weights by `train_decoder`: the instruction and system prompt it was trained with.
REPORTS_JSONL = "reports.jsonl"
REPORTS_CSV = "reports.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
CSV_COLUMNS = ("id", "source", "report", "findings", "similar_case_ids", "match_probability", "generate_s")


@dataclass
class InputImage:
    """One image to report on: `id` (unique, no PHI), `source` (path relative to its input root) and a loader."""

    id: str
    source: str
    image: Any  # a path (read lazily with `load_image`) or a PIL image from a dataset row

    def load(self):
        return load_image(self.image) if isinstance(self.image, (str, Path)) else self.image.convert("RGB")


def _looks_like_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or any(path.glob("data/*.parquet")) or any(path.glob("*.parquet"))


def _is_image_file(path: Path) -> bool:
    if path.name.startswith(".") or not path.is_file():
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or is_dicom(path)


def collect_inputs(
    inputs: list[str], *, split: str = "validation", max_samples: int | None = None
) -> list[InputImage]:
    """Expand files, folders, prepared dataset folders and Hub dataset ids into a list of `InputImage`.

    Args:
        inputs (`list[str]`):
            Image files, folders (recursive; PNG/JPEG/DICOM by extension or DICOM preamble), prepared dataset
            folders or Hub dataset ids.
        split (`str`, *optional*, defaults to `"validation"`):
            The split read from datasets.
        max_samples (`int`, *optional*):
            Keep only the first N images of each input.
    """
    from medvl_recipes.data.prepared import load_prepared_split, looks_local

    images: list[InputImage] = []
    for name in inputs:
        path = Path(name).expanduser()
        found: list[InputImage] = []
        if path.is_file():
            if not _is_image_file(path):
                raise MedvlError(f"{name}: not a PNG, JPEG or DICOM file; pass images, folders or a dataset")
            found = [InputImage(path.name, path.name, str(path))]
        elif path.is_dir() and not _looks_like_dataset(path):
            files = sorted(p for p in path.rglob("*") if _is_image_file(p))
            if not files:
                raise MedvlError(f"{name}: no PNG, JPEG or DICOM files in this folder (searched recursively)")
            found = [InputImage(p.relative_to(path).as_posix(), p.relative_to(path).as_posix(), str(p)) for p in files]
        elif path.is_dir() or not looks_local(name):
            data = load_prepared_split(
                name, split, columns=("image", "id"), max_samples=max_samples, setting="--split"
            )
            label = f"{path.name if path.is_dir() else name}[{split}]"
            found = [InputImage(str(row["id"]), label, row["image"]) for row in data]
        else:
            raise MedvlError(f"{name}: no such file or folder; pass images, folders, a dataset folder or a Hub id")
        images += found[:max_samples] if max_samples else found
    seen: dict[str, int] = {}
    for item in images:
        # Two inputs with the same relative name (a/1.png, b/1.png given as a and b) get distinct ids.
        count = seen.get(item.id, 0)
        seen[item.id] = count + 1
        if count:
            item.id = f"{item.id}#{count}"
    return images


def load_match_encoder(name_or_path: str, device: str = "cpu"):
    """A `TorchEncoder`, or an `export.OnnxEncoder` for a `medvl export onnx` folder (it has `onnx/vision_model.onnx`)."""
    if (Path(name_or_path) / "onnx" / "vision_model.onnx").is_file():
        from medvl_recipes.export import OnnxEncoder

        return OnnxEncoder(name_or_path)
    return TorchEncoder(name_or_path, device=device)


def _done_ids(path: Path) -> set[str]:
    from medvl_recipes.jsonl import read_jsonl, write_jsonl

    if not path.is_file():
        return set()
    # A run killed mid-write can leave a torn last line: keep the complete rows (rewritten atomically, so the next
    # append starts on a fresh line) and redo that image.
    rows = [row for _, row in read_jsonl(path, what="a `medvl generate` row", skip_bad_lines=True)]
    write_jsonl(path, rows)
    return {row["id"] for row in rows}


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def generate(
    inputs: list[str],
    decoder: str,
    output_dir: str | Path,
    *,
    encoder: str | None = None,
    index_dataset: str | None = None,
    index_split: str = "train",
    k: int = 3,
    split: str = "validation",
    max_samples: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Write a report (and optionally similar cases and a match probability) for every input image.

    Args:
        inputs (`list[str]`):
            Files, folders, prepared dataset folders or Hub dataset ids (see `collect_inputs`).
        decoder (`str`):
            Full, merged or LoRA adapter checkpoint, local or Hub (`modeling.load_decoder`).
        output_dir (`str` or `Path`):
            Gets `reports.jsonl` (appended per batch) and `reports.csv`.
        encoder (`str`, *optional*):
            SigLIP checkpoint (folder, Hub id or `medvl export onnx` folder) for similar cases and match scores.
        index_dataset (`str`, *optional*):
            Prepared dataset (folder or Hub id) whose `index_split` holds the cases to retrieve; needs `encoder`.
        index_split (`str`, *optional*, defaults to `"train"`):
            Split of `index_dataset`.
        k (`int`, *optional*, defaults to `3`):
            Similar cases per image.
        split (`str`, *optional*, defaults to `"validation"`):
            Split read from dataset inputs.
        max_samples (`int`, *optional*):
            First N images of each input.
        batch_size (`int`, *optional*, defaults to `8`):
            Images per `generate` call and per appended JSONL block.
        max_new_tokens (`int`, *optional*, defaults to `128`):
            Longest report.
        dtype (`str`, *optional*, defaults to `"auto"`):
            Decoder dtype (`modeling.parse_dtype`).
        device (`str`, *optional*, defaults to `"auto"`):
            `auto`, `cpu`, `cuda`, ...
        overwrite (`bool`, *optional*, defaults to `False`):
            Start afresh instead of skipping the ids already in `reports.jsonl`.
        show_progress (`bool`, *optional*, defaults to `True`):
            tqdm bar over images.

    Returns:
        `Path`: the JSONL file.
    """
    from tqdm.auto import tqdm

    from medvl_recipes.modeling import load_decoder, resolve_device

    if index_dataset and not encoder:
        raise MedvlError("--index-dataset needs --encoder: similar cases are found with the encoder's embeddings")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = output_dir / REPORTS_JSONL
    if overwrite:
        jsonl_path.unlink(missing_ok=True)
    images = collect_inputs(inputs, split=split, max_samples=max_samples)
    done = _done_ids(jsonl_path)
    todo = [item for item in images if item.id not in done]
    logger.info("%d images, %d already in %s, %d to do", len(images), len(images) - len(todo), jsonl_path, len(todo))

    device = resolve_device(device)
    if todo:
        started = time.perf_counter()
        model, processor = load_decoder(decoder, dtype=dtype, device=device)
        instruction, system_prompt = read_prompt(decoder)
        context = load_retrieval_context(decoder, device=str(device))
        match_encoder = load_match_encoder(encoder, device=device) if encoder else None
        index = _build_index(match_encoder, index_dataset, index_split) if index_dataset else None
        logger.info("loaded the models in %.1f s", time.perf_counter() - started)
        progress = tqdm(total=len(todo), desc="generate", unit="image", disable=not show_progress)
        for batch in _batches(todo, batch_size):
            rows = _generate_batch(
                batch, model, processor, (instruction, system_prompt, context), max_new_tokens, match_encoder, index, k
            )
            with jsonl_path.open("a", encoding="utf-8") as out:
                out.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            progress.update(len(batch))
        progress.close()
    write_csv(jsonl_path, output_dir / REPORTS_CSV)
    return jsonl_path


def _generate_batch(batch, model, processor, prompt, max_new_tokens, match_encoder, index, k) -> list[dict]:
    # One batch of rows: report, its findings and timing, then (with an encoder) similar cases and match score.
    # `prompt` is (instruction, system prompt, retrieval context or None), as the decoder was trained.
    from medvl_recipes.generation import generate_reports

    pil_images = [item.load() for item in batch]
    started = time.perf_counter()
    context = prompt[2]
    reports = generate_reports(
        model,
        processor,
        pil_images,
        prompt=prompt[0],
        system_prompt=prompt[1],
        context=context,
        max_new_tokens=max_new_tokens,
        batch_size=len(batch),
        show_progress=False,
    )
    generate_s = (time.perf_counter() - started) / len(batch)
    extractor = _finding_extractor()
    rows = [
        {
            "id": item.id,
            "source": item.source,
            "report": report,
            "findings": extractor.extract(report),
            "timings_s": {"generate": round(generate_s, 4)},
        }
        for item, report in zip(batch, reports, strict=True)
    ]
    if context is not None:
        # The prior reports the decoder was shown, by training sample id.
        for row, cases in zip(rows, context.lookup(pil_images), strict=True):
            row["retrieval_context"] = [{"id": case["id"], "similarity": case["similarity"]} for case in cases]
    if match_encoder is not None:
        _add_encoder_fields(rows, pil_images, reports, match_encoder, index, k)
    return rows


@functools.cache
def _finding_extractor():
    # The lexicon is parsed once per process, not once per batch.
    from medvl_recipes.evaluation.findings import FindingExtractor

    return FindingExtractor()


def _build_index(match_encoder, index_dataset: str, index_split: str) -> dict:
    from medvl_recipes.data.prepared import load_prepared_split

    data = load_prepared_split(index_dataset, index_split, columns=("image", "text", "id"), setting="--index-split")
    image_emb = match_encoder.encode_images([row["image"] for row in data])  # (N, D)
    return {"image_emb": image_emb, "ids": list(data["id"]), "texts": list(data["text"])}


def _add_encoder_fields(rows, pil_images, reports, match_encoder, index, k) -> None:
    started = time.perf_counter()
    image_emb = match_encoder.encode_images(pil_images)  # (B, D), L2-normalised
    text_emb = match_encoder.encode_texts(reports)  # (B, D)
    cosine = (image_emb * text_emb).sum(-1)  # (B,)
    probability = match_probability(cosine, match_encoder.logit_scale, match_encoder.logit_bias)
    neighbours = None
    if index is not None:
        scores = image_emb @ index["image_emb"].T  # (B, N)
        neighbours = torch.topk(scores, k=min(k, scores.shape[1]), dim=1)
    encode_s = (time.perf_counter() - started) / len(rows)
    for i, row in enumerate(rows):
        row["match_probability"] = round(float(probability[i]), 6)
        row["match_cosine"] = round(float(cosine[i]), 6)
        if neighbours is not None:
            row["similar_cases"] = [
                {"id": index["ids"][j], "report": index["texts"][j], "similarity": round(float(s), 6)}
                for s, j in zip(neighbours.values[i].tolist(), neighbours.indices[i].tolist(), strict=True)
            ]
        row["timings_s"]["encode"] = round(encode_s, 4)


def write_csv(jsonl_path: str | Path, csv_path: str | Path) -> Path:
    """Flatten `reports.jsonl` into a CSV with `CSV_COLUMNS` (findings as `name: label; ...`)."""
    from medvl_recipes.jsonl import read_jsonl

    csv_path = Path(csv_path)
    rows = (
        [row for _, row in read_jsonl(jsonl_path, what="a `medvl generate` row")] if Path(jsonl_path).is_file() else []
    )
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    row["id"],
                    row["source"],
                    row["report"],
                    "; ".join(f"{name}: {label}" for name, label in row["findings"].items()),
                    " ".join(case["id"] for case in row.get("similar_cases", [])),
                    row.get("match_probability", ""),
                    row["timings_s"]["generate"],
                ]
            )
    return csv_path


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medvl generate",
        description=(
            "Write reports for new, unlabelled images (PNG, JPEG, DICOM; files, folders, a prepared dataset split or "
            "a Hub dataset id) with a trained decoder, asked exactly as in training. Resumable: rerun to continue."
        ),
    )
    parser.add_argument("inputs", nargs="+", help="Image files, folders, prepared dataset folders or Hub dataset ids.")
    parser.add_argument(
        "--decoder", required=True, help="Decoder checkpoint (full, merged or adapter; folder or Hub id)."
    )
    parser.add_argument("--output-dir", required=True, help="Folder for reports.jsonl and reports.csv.")
    parser.add_argument("--encoder", default=None, help="SigLIP folder, Hub id or `medvl export onnx` folder.")
    parser.add_argument(
        "--index-dataset", default=None, help="Prepared dataset whose cases are retrieved (needs --encoder)."
    )
    parser.add_argument("--index-split", default="train", help="Split of --index-dataset (default: train).")
    parser.add_argument("--k", type=int, default=3, help="Similar cases per image (default: 3).")
    parser.add_argument("--split", default="validation", help="Split read from dataset inputs (default: validation).")
    parser.add_argument("--max-samples", type=int, default=None, help="Only the first N images of each input.")
    parser.add_argument("--batch-size", type=int, default=8, help="Images per generate call (default: 8).")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="Longest report in tokens (default: 128).")
    parser.add_argument("--dtype", default="auto", help="Decoder dtype: auto, bfloat16, float16, float32.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--overwrite", action="store_true", help="Start afresh instead of resuming.")
    parser.add_argument("--print", action="store_true", dest="print_reports", help="Print id and report per image.")
    args = parser.parse_args(argv)
    jsonl_path = generate(
        args.inputs,
        args.decoder,
        args.output_dir,
        encoder=args.encoder,
        index_dataset=args.index_dataset,
        index_split=args.index_split,
        k=args.k,
        split=args.split,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        dtype=args.dtype,
        device=args.device,
        overwrite=args.overwrite,
    )
    if args.print_reports:
        import sys

        from medvl_recipes.jsonl import read_jsonl

        for _, row in read_jsonl(jsonl_path, what="a `medvl generate` row"):
            sys.stdout.write(f"{row['source']}: {row['report']}\n")
    logger.info("wrote %s and %s", jsonl_path, jsonl_path.with_name(REPORTS_CSV))
    return 0
