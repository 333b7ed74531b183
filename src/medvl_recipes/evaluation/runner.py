# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl eval`: score a decoder, an encoder, or existing predictions on a prepared split; compare two runs.

Usage:
    medvl eval --config eval/configs/smoke.yaml
    medvl eval --decoder outputs/decoder --encoder outputs/encoder --dataset data/prepared --split validation
    medvl eval --predictions other_system.jsonl --encoder outputs/encoder --output-dir outputs/eval-other
    medvl eval compare outputs/eval-a outputs/eval-b

A decoder run generates a report per image (appended to `generations.jsonl` batch by batch, so `--resume` after a
crash regenerates nothing that was finished) and computes text metrics; unless `--image_swap_control false`, it
generates every report a second time from another sample's image (the image-swap control, `grounding.py`), which
doubles generation time and shows whether the reports depend on the image. An encoder adds retrieval and SigLIP
similarities. Everything is written to `--output-dir` (see `report.py`).
"""

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from medvl_recipes.data.prepared import load_prepared_split
from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation import report as report_io
from medvl_recipes.evaluation.bootstrap import paired_randomization_test
from medvl_recipes.evaluation.findings import FindingExtractor, per_finding_f1
from medvl_recipes.evaluation.metrics import METRICS, MetricInputs, compute_metrics
from medvl_recipes.jsonl import read_jsonl


logger = logging.getLogger(__name__)

# Swapped-image generations of the image-swap control, batch by batch (removed once per_sample.jsonl is written).
SWAP_GENERATIONS_FILE = "generations_swapped.jsonl"


@dataclass
class EvalArguments:
    """Arguments of `medvl eval` (YAML keys of `eval/configs/*.yaml`; command-line flags override them)."""

    decoder: str | None = field(default=None, metadata={"help": "Decoder checkpoint folder or Hub id (Mllama)."})
    encoder: str | None = field(default=None, metadata={"help": "Encoder checkpoint folder or Hub id (SigLIP)."})
    dataset: str | None = field(default=None, metadata={"help": "Prepared dataset folder (`medvl prepare` output)."})
    split: str = field(default="validation", metadata={"help": "Split of --dataset to evaluate."})
    predictions: str | None = field(
        default=None,
        metadata={"help": "JSONL of existing generations (id, reference, generation, optional image); no decoder."},
    )
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate only the first N samples."})
    batch_size: int = field(default=8, metadata={"help": "Batch size for generation and embedding."})
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where outputs are written."})
    resume: bool = field(default=False, metadata={"help": "Reuse generations already in --output-dir."})
    max_new_tokens: int = field(default=128, metadata={"help": "Generation length limit."})
    prompt: str | None = field(default=None, metadata={"help": "User instruction (default prompt set's first)."})
    system_prompt: str | None = field(default=None, metadata={"help": "System prompt (the project default if unset)."})
    metrics: list[str] = field(default_factory=list, metadata={"help": "Metric names; all available when empty."})
    sentence_model: str | None = field(
        default=None, metadata={"help": "sentence-transformers model for embedding_cosine (offline MiniLM default)."}
    )
    lexicon: str | None = field(default=None, metadata={"help": "Finding lexicon YAML (packaged default if unset)."})
    n_resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples (0: no intervals)."})
    confidence: float = field(default=0.95, metadata={"help": "Interval coverage."})
    seed: int = field(default=0, metadata={"help": "Bootstrap seed."})
    device: str = field(default="auto", metadata={"help": "Torch device ('auto': cuda when available)."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto (bf16 on GPU, fp32 on CPU), float32..."})
    plots: bool = field(default=True, metadata={"help": "Write PNG plots."})
    baselines: bool = field(
        default=True,
        metadata={
            "help": "Score the most frequent / a random / the nearest-image training report as baselines (needs "
            "--dataset with a train split; nearest also needs --encoder)."
        },
    )
    radeval: list[str] = field(
        default_factory=list,
        metadata={
            "help": "RadEval metrics to add when the `radeval` package is installed (radgraph, f1chexbert, ...)."
        },
    )
    baseline_split: str = field(default="train", metadata={"help": "Split of --dataset the baselines draw from."})
    image_swap_control: bool = field(
        default=True,
        metadata={
            "help": "Decoder runs: generate each report again from another sample's image (a seeded derangement) and "
            "report the drop in finding F1 and BLEU; doubles generation time (`false` to skip)."
        },
    )
    retrieval_context: bool = field(
        default=True,
        metadata={
            "help": "Ask a decoder trained with a retrieval context with it (the reports of the nearest training "
            "images, from the index stored in its retrieval_context/); `false` asks without it, an ablation."
        },
    )
    model_name: str | None = field(default=None, metadata={"help": "Model name in the model-index block."})
    dataset_name: str | None = field(default=None, metadata={"help": "Dataset id in the model-index block."})


@dataclass
class Samples:
    """The samples of a run; `images`/`findings`/`generations`/`modalities`/`swap_*` may be None."""

    ids: list[str]
    references: list[str]
    images: Sequence | None = None
    findings: list[list[dict]] | None = None
    generations: list[str] | None = None
    modalities: list[str | None] | None = None
    swap_generations: list[str] | None = None
    swap_image_of: list[int] | None = None
    source: str = ""
    split: str | None = None
    fingerprint: str = ""


class _LazyImages(Sequence):
    # Decodes images of a datasets column only when a batch is sliced, so large splits never sit in memory.
    def __init__(self, dataset):
        self._dataset = dataset

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [image.convert("RGB") for image in self._dataset[index]["image"]]
        return self._dataset[int(index)]["image"].convert("RGB")


def load_split(dataset_dir: str, split: str, max_samples: int | None = None) -> Samples:
    """Load a split of a prepared dataset (`medvl prepare` layout).

    Args:
        dataset_dir (`str`): the dataset folder.
        split (`str`): split name.
        max_samples (`int`, *optional*): keep the first N rows.
    """
    if not Path(dataset_dir).is_dir():
        raise MedvlError(f"--dataset {dataset_dir}: no such folder; pass a `medvl prepare` output folder")
    ds = load_prepared_split(dataset_dir, split, columns=("id", "text"), max_samples=max_samples, setting="--split")
    return Samples(
        ids=[str(i) for i in ds["id"]],
        references=list(ds["text"]),
        images=_LazyImages(ds) if "image" in ds.column_names else None,
        findings=list(ds["findings"]) if "findings" in ds.column_names else None,
        modalities=list(ds["modality"]) if "modality" in ds.column_names else None,
        source=str(dataset_dir),
        split=split,
        fingerprint=_rows_fingerprint(ds["id"], ds["text"]),
    )


def _rows_fingerprint(ids: Sequence, texts: Sequence) -> str:
    # What was evaluated, independent of where the files live: the ids and reference texts in order.
    digest = hashlib.sha256()
    for sample_id, text in zip(ids, texts, strict=True):
        digest.update(f"{sample_id}\x1f{text}\x1e".encode())
    return digest.hexdigest()[:16]


def load_predictions(path: str, max_samples: int | None = None) -> Samples:
    """Load a predictions JSONL: one `{"id", "reference", "generation", "image"?}` per line.

    Args:
        path (`str`): the file; `image` paths are relative to its folder.
        max_samples (`int`, *optional*): keep the first N rows.
    """
    path = Path(path)
    if not path.is_file():
        raise MedvlError(f"--predictions {path}: no such file")
    ids, refs, gens, image_paths = [], [], [], []
    for lineno, row in read_jsonl(path, what="an object with id, reference and generation"):
        for key in ("id", "reference", "generation"):
            if key not in row:
                raise MedvlError(f"{path}:{lineno}: missing field {key!r}; each line needs id, reference, generation")
        if not isinstance(row["generation"], str) or not isinstance(row["reference"], str | list):
            raise MedvlError(f"{path}:{lineno}: `generation` must be a string and `reference` a string or list")
        if isinstance(row["reference"], list) and (
            not row["reference"] or not all(isinstance(ref, str) for ref in row["reference"])
        ):
            raise MedvlError(f"{path}:{lineno}: `reference` is a list, so it needs one or more reference strings")
        ids.append(str(row["id"]))
        refs.append(row["reference"])
        gens.append(row["generation"])
        image_paths.append(row.get("image"))
        if max_samples is not None and len(ids) >= max_samples:
            break
    if len(set(ids)) != len(ids):
        raise MedvlError(f"{path}: duplicate ids; every line needs a unique id")
    images = None
    if any(image_paths):
        if not all(image_paths):
            raise MedvlError(f"{path}: `image` is set on some lines only; set it on all lines or none")
        from medvl_recipes.imaging import load_image

        images = [load_image(path.parent / p).convert("RGB") for p in image_paths]
    fingerprint = _rows_fingerprint(ids, [r if isinstance(r, str) else json.dumps(r) for r in refs])
    return Samples(
        ids=ids, references=refs, images=images, generations=gens, source=str(path), fingerprint=fingerprint
    )


def _attach_dataset(samples: Samples, dataset: Samples) -> None:
    # Predictions + --dataset: take ground-truth findings (and images) from the dataset rows with the same id.
    index = {sample_id: i for i, sample_id in enumerate(dataset.ids)}
    missing = [i for i in samples.ids if i not in index]
    if missing:
        raise MedvlError(f"{len(missing)} prediction ids are not in the dataset split (e.g. {missing[:3]})")
    rows = [index[i] for i in samples.ids]
    if dataset.findings is not None:
        samples.findings = [dataset.findings[r] for r in rows]
    if dataset.modalities is not None:
        samples.modalities = [dataset.modalities[r] for r in rows]
    if samples.images is None and dataset.images is not None:
        samples.images = [dataset.images[r] for r in rows]


def _model_info(path: str, model) -> dict:
    from medvl_recipes.checkpoints import model_fingerprint

    return {"name_or_path": path, "revision": model_fingerprint(path), "class": type(model).__name__}


def _generate(model, processor, images: list, args: EvalArguments, context=None) -> list[str]:
    from medvl_recipes.generation import generate_reports
    from medvl_recipes.prompts import read_prompt

    # Asked as the decoder was trained (its stored prompt.json) unless the run names a prompt.
    stored_instruction, stored_system = read_prompt(args.decoder) if args.decoder else (None, None)
    return generate_reports(
        model,
        processor,
        images,
        prompt=args.prompt if args.prompt is not None else stored_instruction,
        system_prompt=args.system_prompt if args.system_prompt is not None else stored_system,
        context=context,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        show_progress=False,
    )


def _read_finished(output_dir: Path) -> dict[str, str]:
    """Generations already written by an earlier (possibly crashed) run: id -> text."""
    done: dict[str, str] = {}
    for name in (report_io.PER_SAMPLE_FILE, report_io.GENERATIONS_FILE):
        path = output_dir / name
        if not path.is_file():
            continue
        # A crash can cut the last line short: that sample is simply generated again.
        for lineno, row in read_jsonl(path, skip_bad_lines=True):
            if "id" in row and isinstance(row.get("generation"), str):
                done[str(row["id"])] = row["generation"]
            else:
                logger.warning("%s:%d: line without id/generation skipped (will regenerate)", path, lineno)
    return done


GENERATION_IDENTITY_FILE = "generation_identity.json"


def generation_identity(args: EvalArguments, decoder_info: dict) -> dict:
    """What decides a decoder's generations: the decoder (name, revision, weights), the data and the prompt.

    Written next to `generations.jsonl` as `generation_identity.json`; `--resume` reuses generations only when the
    identity of the new run is the same.

    Args:
        args (`EvalArguments`): `dataset`, `split`, `prompt`, `system_prompt`, `max_new_tokens`.
        decoder_info (`dict`): `_model_info` of the loaded decoder.
    """
    from medvl_recipes.checkpoints import dataset_fingerprint

    return {
        "decoder": args.decoder,
        # Content-based for local folders: two runs of one recipe write weights of equal names and sizes.
        "decoder_revision": decoder_info.get("revision"),
        "dataset": dataset_fingerprint(args.dataset),
        "split": args.split,
        "prompt": args.prompt,
        "system_prompt": args.system_prompt,
        "max_new_tokens": args.max_new_tokens,
        "retrieval_context": decoder_info.get("retrieval_context"),
    }


def _check_reusable(output_dir: Path, identity: dict, num_reused: int) -> None:
    path = output_dir / GENERATION_IDENTITY_FILE
    if not path.is_file():
        raise MedvlError(
            f"--resume: {output_dir} has {num_reused} generations but no {GENERATION_IDENTITY_FILE} saying which "
            "decoder, data and prompt made them; run without --resume to generate them again"
        )
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MedvlError(f"{path}: not valid JSON ({err.msg}); run without --resume to generate again") from err
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in identity.items() if saved.get(key) != value]
    if changed:
        raise MedvlError(
            f"--resume: the generations in {output_dir} were made by another run ({'; '.join(changed)}); run without "
            "--resume, or pass another --output-dir"
        )


def _generation_line(sample_id: str, reference, generation: str) -> str:
    return json.dumps({"id": sample_id, "reference": reference, "generation": generation}) + "\n"


def generate_with_resume(
    model, processor, samples: Samples, args: EvalArguments, identity: dict | None = None, context=None
) -> list[str]:
    """Generate a report per sample, appending each finished batch to `generations.jsonl` (flushed, fsynced).

    With `args.resume`, generations found in the output folder are reused and only the rest is generated, provided
    they were made by the same decoder, data and prompt (`identity`, checked against `generation_identity.json`).

    Args:
        model, processor: the decoder and its processor.
        samples (`Samples`): samples with images.
        args (`EvalArguments`): batch size, generation options, output folder, resume flag.
        identity (`dict`, *optional*): `generation_identity(args, ...)`; without it nothing is checked or recorded.
        context (`RetrievalContext`, *optional*): the decoder's retrieval context (`load_retrieval_context`).
    """
    output_dir = Path(args.output_dir)
    partial = output_dir / report_io.GENERATIONS_FILE
    done = _read_finished(output_dir) if args.resume else {}
    if not args.resume and partial.exists():
        partial.unlink()
    wanted = set(samples.ids)
    done = {k: v for k, v in done.items() if k in wanted}
    if identity is not None:
        if done:
            _check_reusable(output_dir, identity, len(done))
        report_io.write_json(output_dir / GENERATION_IDENTITY_FILE, identity)
    todo = [i for i, sample_id in enumerate(samples.ids) if sample_id not in done]
    if done:
        logger.info("Resuming: %d generations reused, %d to generate", len(done), len(todo))
    if args.resume and done and not partial.exists():
        # Keep the reused generations in the partial file too, so a second crash still finds them.
        with partial.open("w", encoding="utf-8") as f:
            for i, sample_id in enumerate(samples.ids):
                if sample_id in done:
                    f.write(_generation_line(sample_id, samples.references[i], done[sample_id]))
    with partial.open("a", encoding="utf-8") as f, tqdm(total=len(todo), desc="generate", unit="report") as bar:
        for start in range(0, len(todo), args.batch_size):
            rows = todo[start : start + args.batch_size]
            images = [samples.images[i] for i in rows]
            texts = _generate(model, processor, images, args, context)
            if len(texts) != len(rows):
                raise MedvlError(f"generation returned {len(texts)} reports for {len(rows)} images")
            for i, text in zip(rows, texts, strict=True):
                done[samples.ids[i]] = text
                f.write(_generation_line(samples.ids[i], samples.references[i], text))
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(rows))
    return [done[sample_id] for sample_id in samples.ids]


def _read_finished_swaps(output_dir: Path) -> dict[str, tuple[str, str]]:
    """Swapped-image generations of an earlier run: id -> (id of the image it was generated from, text)."""
    done: dict[str, tuple[str, str]] = {}
    for name, key in ((report_io.PER_SAMPLE_FILE, "generation_swapped"), (SWAP_GENERATIONS_FILE, "generation")):
        path = output_dir / name
        if path.is_file():
            for _, row in read_jsonl(path, skip_bad_lines=True):
                if "id" in row and isinstance(row.get(key), str) and "swapped_image_of" in row:
                    done[str(row["id"])] = (str(row["swapped_image_of"]), row[key])
    return done


def generate_swap_control(model, processor, samples: Samples, args: EvalArguments, context=None) -> None:
    """The image-swap control: set `samples.swap_generations[i]`, generated from `samples.images[swap_image_of[i]]`.

    The derangement is seeded with `args.seed`, so two runs on the same samples swap the same images. Finished
    batches are appended to `generations_swapped.jsonl`; with `args.resume`, swapped generations of an earlier run
    made from the same image are reused.

    Args:
        model, processor: the decoder and its processor.
        samples (`Samples`): samples with images and their own generations.
        args (`EvalArguments`): batch size, generation options, seed, output folder, resume flag.
        context (`RetrievalContext`, *optional*): the decoder's retrieval context; it follows the swapped image.
    """
    from medvl_recipes.evaluation.grounding import image_swap_generations, swap_derangement

    output_dir = Path(args.output_dir)
    partial = output_dir / SWAP_GENERATIONS_FILE
    perm = swap_derangement(len(samples.ids), args.seed)
    previous = _read_finished_swaps(output_dir) if args.resume else {}
    done = {
        i: previous[sample_id][1]
        for i, sample_id in enumerate(samples.ids)
        if previous.get(sample_id, ("",))[0] == samples.ids[perm[i]]
    }
    with (
        partial.open("w", encoding="utf-8") as f,
        tqdm(total=len(samples.ids) - len(done), desc="generate (image-swap control)", unit="report") as bar,
    ):

        def write(rows: list[int], texts: list[str]) -> None:
            for i, text in zip(rows, texts, strict=True):
                row = {"id": samples.ids[i], "swapped_image_of": samples.ids[perm[i]], "generation": text}
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(rows))

        write(list(done), list(done.values()))  # a second crash keeps the reused ones too
        texts, perm = image_swap_generations(
            lambda images: _generate(model, processor, images, args, context),
            samples.images,
            seed=args.seed,
            batch_size=args.batch_size,
            done=done,
            on_batch=write,
        )
    samples.swap_generations, samples.swap_image_of = texts, [int(j) for j in perm]


def _grounding_fields(row: dict, i: int, samples: Samples, inputs: MetricInputs) -> None:
    # Per-sample view of the grounding metrics: which study each text names, and the swapped-image generation.
    parser = inputs.study_parser
    reference = samples.references[i] if isinstance(samples.references[i], str) else samples.references[i][0]
    row["study_reference"] = asdict(parser.parse(reference))
    if samples.modalities is not None:
        row["modality_dataset"] = samples.modalities[i]
    if samples.generations is not None:
        row["study_generation"] = asdict(parser.parse(samples.generations[i]))
    if samples.swap_generations is not None:
        row["generation_swapped"] = samples.swap_generations[i]
        row["swapped_image_of"] = samples.ids[samples.swap_image_of[i]]


def _signatures_payload(results) -> dict:
    return {
        name: {
            "value": r.value,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "higher_is_better": r.higher_is_better,
            "scale": r.scale,
            "signature": r.signature,
            "stats_key": r.stats_key,
        }
        for name, r in results.items()
    }


def _wants_baselines(args: EvalArguments, samples: Samples) -> bool:
    return bool(args.baselines and args.dataset and samples.generations is not None)


def _training_reports(args: EvalArguments, columns=("text",)):
    from medvl_recipes.data.prepared import load_prepared_split

    return load_prepared_split(args.dataset, args.baseline_split, columns=columns, setting="--baseline-split")


def _training_image_embeddings(args: EvalArguments, samples: Samples, encoder, processor):
    # The nearest-image baseline's gallery: every training image, embedded by the same encoder as the samples.
    if not _wants_baselines(args, samples) or samples.images is None:
        return None
    from medvl_recipes.retrieval import encode_images

    train = _training_reports(args, columns=("text", "image"))
    return encode_images(encoder, processor, _LazyImages(train), batch_size=args.batch_size).numpy()


def _score_baselines(args: EvalArguments, inputs: MetricInputs, results: dict, stats: dict, train_image_emb) -> dict:
    from medvl_recipes.evaluation.baselines import BASELINE_METRICS, baseline_generations, score_baselines

    train_texts = list(_training_reports(args)["text"])
    generations = baseline_generations(
        train_texts, len(inputs), seed=args.seed, train_image_emb=train_image_emb, image_emb=inputs.image_emb
    )
    logger.info("Scoring baselines %s from %d training reports", ", ".join(generations), len(train_texts))
    names = [name for name in BASELINE_METRICS if name in results]
    return score_baselines(
        inputs, stats, generations, metric_names=names, n_resamples=args.n_resamples, seed=args.seed,
        confidence=args.confidence,
    )  # fmt: skip


def _load_samples(args: EvalArguments) -> Samples:
    # The samples to score: a predictions file (optionally joined with the dataset's truth) or a dataset split.
    if args.predictions:
        samples = load_predictions(args.predictions, args.max_samples)
        if args.dataset:
            _attach_dataset(samples, load_split(args.dataset, args.split))
            samples.split = args.split
        if args.decoder:
            logger.warning("--predictions given: the decoder %s is not used", args.decoder)
    else:
        samples = load_split(args.dataset, args.split, args.max_samples)
    if not samples.ids:
        raise MedvlError(f"{samples.source}: no samples to evaluate")
    return samples


def _embed(args: EvalArguments, samples: Samples, inputs: MetricInputs, models: dict, *, dtype, device):
    # SigLIP embeddings of images, references and generations (and the training images for the nearest-image
    # baseline), and sentence embeddings for `embedding_cosine`; returns the training image embeddings.
    from medvl_recipes.modeling import load_encoder

    wanted = set(args.metrics or METRICS)
    train_image_emb = None
    if args.encoder:
        from medvl_recipes.evaluation.similarity import siglip_embeddings

        encoder, enc_processor = load_encoder(args.encoder, dtype=dtype, device=device)
        models["encoder"] = _model_info(args.encoder, encoder)
        # The weights, not the folder they sit in, decide the embeddings (local folders get a file fingerprint).
        inputs._signatures["encoder"] = models["encoder"]["revision"] or args.encoder
        embedded = siglip_embeddings(
            encoder,
            enc_processor,
            images=samples.images,
            references=[r if isinstance(r, str) else r[0] for r in samples.references],
            generations=samples.generations,
            batch_size=args.batch_size,
        )
        for key, value in embedded.items():
            setattr(inputs, key, value)
        train_image_emb = _training_image_embeddings(args, samples, encoder, enc_processor)
        del encoder
    if samples.generations is not None and "embedding_cosine" in wanted:
        from medvl_recipes.evaluation.similarity import (
            default_sentence_model_path,
            load_sentence_model,
            sentence_embeddings,
        )

        st_model = load_sentence_model(args.sentence_model, device=device)
        models["sentence_model"] = {"name_or_path": args.sentence_model or default_sentence_model_path()}
        inputs._signatures["sentence_model"] = "/".join(Path(models["sentence_model"]["name_or_path"]).parts[-2:])
        inputs.gen_sent_emb = sentence_embeddings(st_model, samples.generations, batch_size=args.batch_size * 8)
        inputs.ref_sent_emb = sentence_embeddings(
            st_model, [r if isinstance(r, str) else r[0] for r in samples.references], batch_size=args.batch_size * 8
        )
    return train_image_emb


def _add_controls(payload, args, samples, inputs, results, stats, train_image_emb) -> None:
    # What every score is read against: the image-swap control, RadEval's metrics, the baselines.
    if samples.swap_generations is not None:
        payload["image_swap_control"] = {"seed": args.seed, "method": "derangement (Sattolo cycle)"}
    if args.radeval and samples.generations is not None:
        from medvl_recipes.evaluation.radeval_adapter import radeval_scores

        refs = [r if isinstance(r, str) else r[0] for r in samples.references]
        payload["radeval"] = radeval_scores(refs, samples.generations, args.radeval)
        if "missing" in payload["radeval"]:
            logger.warning("%s", payload["radeval"]["missing"])
    if _wants_baselines(args, samples):
        payload["baselines"] = _score_baselines(args, inputs, results, stats, train_image_emb)


def _retrieval_context(args: EvalArguments, device):
    # The decoder's stored retrieval context, unless the run asks without it (`--retrieval_context false`).
    from medvl_recipes.retrieval_context import load_retrieval_context

    context = load_retrieval_context(args.decoder, device=str(device))
    if context is not None and not args.retrieval_context:
        logger.info(
            "%s was trained with a retrieval context; asking without it (--retrieval_context false)", args.decoder
        )
        return None
    return context


def run_evaluation(args: EvalArguments) -> dict:
    """Run an evaluation end to end and write every output to `args.output_dir`.

    Args:
        args (`EvalArguments`): the run's arguments.

    Returns:
        `dict`: the metrics.json payload.
    """
    started = time.perf_counter()
    if not (args.decoder or args.encoder or args.predictions):
        raise MedvlError("nothing to evaluate: pass --decoder, --encoder and/or --predictions")
    if args.predictions is None and args.dataset is None:
        raise MedvlError("pass --dataset DIR (a prepared dataset) or --predictions FILE.jsonl")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    from medvl_recipes.modeling import load_decoder, parse_dtype, resolve_device

    device = resolve_device(args.device)
    dtype = parse_dtype(args.dtype, device=device)

    # Data
    samples = _load_samples(args)
    models: dict = {}

    # Generation
    if args.decoder and not args.predictions:
        if samples.images is None:
            raise MedvlError(f"{samples.source} has no `image` column; a decoder needs images")
        decoder, processor = load_decoder(args.decoder, dtype=dtype, device=device)
        models["decoder"] = _model_info(args.decoder, decoder)
        context = _retrieval_context(args, device)
        models["decoder"]["retrieval_context"] = context.settings if context is not None else None
        identity = generation_identity(args, models["decoder"])
        samples.generations = generate_with_resume(decoder, processor, samples, args, identity, context)
        if args.image_swap_control:
            generate_swap_control(decoder, processor, samples, args, context)
        del decoder, context

    # Embeddings
    inputs = MetricInputs(
        generations=samples.generations,
        references=samples.references,
        ground_truth=samples.findings,
        extractor=FindingExtractor(args.lexicon),
        swap_generations=samples.swap_generations,
        dataset_modalities=samples.modalities,
    )
    train_image_emb = _embed(args, samples, inputs, models, dtype=dtype, device=device)

    # Metrics
    results, stats = compute_metrics(
        inputs, args.metrics or None, n_resamples=args.n_resamples, seed=args.seed, confidence=args.confidence
    )
    payload = {
        "metrics": _signatures_payload(results),
        "models": models,
        "data": {
            "source": samples.source,
            "split": samples.split,
            "num_samples": len(samples.ids),
            "fingerprint": samples.fingerprint,
        },
        "bootstrap": {
            "n_resamples": args.n_resamples,
            "seed": args.seed,
            "confidence": args.confidence,
            "method": "percentile",
        },
        "config": asdict(args),
        "elapsed_s": None,
    }
    _add_controls(payload, args, samples, inputs, results, stats, train_image_emb)
    if "finding_stats_vs_reference" in stats:
        payload["finding_f1_per_finding"] = per_finding_f1(
            stats["finding_stats_vs_reference"].sum(0), inputs.extractor.names
        )
    _write_outputs(output_dir, args, samples, inputs, results, stats, payload, time.perf_counter() - started)
    return payload


def _write_outputs(output_dir, args, samples, inputs, results, stats, payload, elapsed) -> None:
    payload["elapsed_s"] = round(elapsed, 3)
    extractor = inputs.extractor
    rows = []
    for i, sample_id in enumerate(samples.ids):
        reference = samples.references[i]
        row = {"id": sample_id, "reference": reference}
        row["findings_reference"] = extractor.extract(reference if isinstance(reference, str) else reference[0])
        if samples.generations is not None:
            row["generation"] = samples.generations[i]
            row["findings_generation"] = extractor.extract(samples.generations[i])
        _grounding_fields(row, i, samples, inputs)
        row["scores"] = {
            name: float(r.per_sample[i])
            for name, r in results.items()
            if r.per_sample is not None and math.isfinite(r.per_sample[i])
        }
        rows.append(row)
    report_io.write_per_sample(output_dir / report_io.PER_SAMPLE_FILE, rows)
    report_io.save_stats(output_dir / report_io.STATS_FILE, samples.ids, stats)
    plots = []
    if args.plots:
        from medvl_recipes.evaluation import plots as plotting

        plotting.plot_metric_bars(payload["metrics"], output_dir / "metrics.png")
        plots.append("metrics.png")
        if "retrieval_stats_with_count" in stats:
            ranks = stats["retrieval_stats_with_count"]
            plotting.plot_recall_curve(ranks[:, 0], ranks[:, 1], output_dir / "recall_at_k.png")
            plots.append("recall_at_k.png")
        per_sample = {name: r.per_sample for name, r in results.items() if r.per_sample is not None}
        if plotting.plot_similarity_histograms(per_sample, output_dir / "similarity_histograms.png"):
            plots.append("similarity_histograms.png")
    model_name = args.model_name or Path(args.decoder or args.encoder or samples.source).name
    dataset_type = args.dataset_name or (Path(args.dataset).name if args.dataset else Path(samples.source).stem)
    model_index = report_io.model_index_yaml(payload, model_name=model_name, dataset_type=dataset_type)
    (output_dir / report_io.MODEL_INDEX_FILE).write_text(model_index, encoding="utf-8")
    payload["model_index"] = model_index
    report_io.write_json(output_dir / report_io.METRICS_FILE, payload)
    markdown = report_io.render_report(payload, plots)
    markdown += "\n## model-index\n\n```yaml\n" + model_index + "```\n"
    (output_dir / report_io.REPORT_FILE).write_text(markdown, encoding="utf-8")
    (output_dir / report_io.GENERATIONS_FILE).unlink(missing_ok=True)
    (output_dir / SWAP_GENERATIONS_FILE).unlink(missing_ok=True)
    logger.info("Wrote %s (%d samples, %d metrics, %.1fs)", output_dir, len(samples.ids), len(results), elapsed)


def _references(run_dir: str | Path) -> dict[str, object]:
    return {str(row["id"]): row.get("reference") for _, row in read_jsonl(Path(run_dir) / report_io.PER_SAMPLE_FILE)}


def _check_comparable(run_a, run_b, payload_a: dict, payload_b: dict, common_ids: list[str]) -> None:
    # A paired test is only meaningful on the same references, scored the same way.
    data_a, data_b = payload_a["data"], payload_b["data"]
    if data_a["num_samples"] == data_b["num_samples"] and data_a["fingerprint"] != data_b["fingerprint"]:
        raise MedvlError(
            f"{run_a} and {run_b} were run on different data (fingerprints {data_a['fingerprint']} vs "
            f"{data_b['fingerprint']}); compare runs on the same split"
        )
    refs_a, refs_b = _references(run_a), _references(run_b)
    differing = [i for i in common_ids if refs_a.get(i) != refs_b.get(i)]
    if differing:
        raise MedvlError(
            f"{run_a} and {run_b} have different references for {len(differing)} samples (e.g. id {differing[0]!r}); "
            "compare runs on the same references"
        )
    for name, meta_a in payload_a["metrics"].items():
        meta_b = payload_b["metrics"].get(name)
        if meta_b is not None and meta_a.get("signature") != meta_b.get("signature"):
            raise MedvlError(
                f"metric {name} was computed differently in the two runs (signature {meta_a.get('signature')!r} vs "
                f"{meta_b.get('signature')!r}, e.g. another lexicon or uncertain policy); rerun one of them"
            )


def compare_runs(
    run_a: str | Path, run_b: str | Path, *, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> list[dict]:
    """Paired approximate-randomisation test of every metric the two runs share, on their common samples.

    Args:
        run_a, run_b (`str` or `Path`): eval output folders.
        n_resamples (`int`, *optional*, defaults to 1000): random swaps per metric.
        seed (`int`, *optional*, defaults to 0): seed.
        alpha (`float`, *optional*, defaults to 0.05): significance level.

    Returns:
        `list[dict]`: per metric `{metric, a, b, delta, p_value, significant, better}`.
    """
    payload_a, ids_a, stats_a = report_io.load_run(run_a)
    payload_b, ids_b, stats_b = report_io.load_run(run_b)
    index_b = {sample_id: i for i, sample_id in enumerate(ids_b)}
    common = [i for i, sample_id in enumerate(ids_a) if sample_id in index_b]
    if not common:
        raise MedvlError(f"{run_a} and {run_b} share no sample ids; compare runs on the same split")
    if len(common) < max(len(ids_a), len(ids_b)):
        logger.warning("Comparing on the %d samples both runs share (%d / %d)", len(common), len(ids_a), len(ids_b))
    rows_b = [index_b[ids_a[i]] for i in common]
    _check_comparable(run_a, run_b, payload_a, payload_b, [ids_a[i] for i in common])
    out = []
    for name, meta_a in payload_a["metrics"].items():
        meta_b = payload_b["metrics"].get(name)
        if meta_b is None or name not in METRICS:
            continue
        spec = METRICS[name]
        sa, sb = stats_a[meta_a["stats_key"]][common], stats_b[meta_b["stats_key"]][rows_b]
        delta, p_value = paired_randomization_test(
            sa, sb, spec.aggregate, n_resamples=n_resamples, seed=seed, decomposable=spec.decomposable
        )
        value_a = delta + (float(spec.aggregate(sb.sum(0)[None])[0]) if spec.decomposable else spec.aggregate(sb))
        better = "A" if (delta > 0) == spec.higher_is_better else "B"
        out.append(
            {
                "metric": name,
                "a": value_a,
                "b": value_a - delta,
                "delta": delta,
                "p_value": p_value,
                "significant": p_value < alpha,
                "better": better if p_value < alpha else "-",
            }
        )
    return out


def _compare_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="medvl eval compare",
        description="Paired approximate-randomisation test per metric between two eval runs on the same samples.",
    )
    parser.add_argument("run_a", help="Output folder of run A.")
    parser.add_argument("run_b", help="Output folder of run B.")
    parser.add_argument("--n-resamples", type=int, default=1000, help="Random swaps per metric (default 1000).")
    parser.add_argument("--seed", type=int, default=0, help="Seed (default 0).")
    parser.add_argument("--alpha", type=float, default=0.05, help="Significance level (default 0.05).")
    parser.add_argument("--output", help="Also write the table as JSON to this file.")
    args = parser.parse_args(argv)
    rows = compare_runs(args.run_a, args.run_b, n_resamples=args.n_resamples, seed=args.seed, alpha=args.alpha)
    lines = [
        f"A = {args.run_a}  B = {args.run_b}  (approximate randomisation, {args.n_resamples} swaps, alpha {args.alpha})",
        "",
        "| metric | A | B | A - B | p | significant |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        mark = f"yes ({r['better']} better)" if r["significant"] else "no"
        lines.append(
            f"| {r['metric']} | {r['a']:.4f} | {r['b']:.4f} | {r['delta']:+.4f} | {r['p_value']:.4f} | {mark} |"
        )
    n_sig = sum(r["significant"] for r in rows)
    lines += ["", f"{n_sig} of {len(rows)} metrics differ significantly."]
    sys.stdout.write("\n".join(lines) + "\n")
    if args.output:
        report_io.write_json(args.output, {"run_a": str(args.run_a), "run_b": str(args.run_b), "results": rows})
    return 0


def parse_args(argv: list[str] | None = None) -> EvalArguments:
    """Parse `--config YAML` plus overriding flags into `EvalArguments`."""
    from trl import TrlParser

    parser = TrlParser(
        (EvalArguments,),
        prog="medvl eval",
        description="Evaluate a decoder, an encoder or a predictions JSONL (`--config eval/configs/<name>.yaml`; flags "
        "override the YAML). `medvl eval compare RUN_A RUN_B` tests the differences between two runs.",
    )
    try:
        (args,) = parser.parse_args_and_config(argv)
    except ValueError as err:
        raise MedvlError(f"bad eval config: {err}") from err
    return args


def cli(argv: list[str] | None = None) -> int:
    """Entry point of `medvl eval` (and `python eval/run_eval.py`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return _compare_cli(argv[1:])
    args = parse_args(argv)
    payload = run_evaluation(args)
    summary = ", ".join(f"{name} {m['value']:.4g}" for name, m in list(payload["metrics"].items())[:8])
    logger.info("%s", summary)
    sys.stdout.write(f"Wrote {Path(args.output_dir) / report_io.REPORT_FILE}\n")
    return 0
