# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A training run's output folder and its `checkpoint-N` folders: which run wrote them, and where a run resumes.

Every run has an identity: the model it starts from, a fingerprint of its data files and the arguments that change
what it computes (not where it logs, saves or pushes, nor how long it goes on). It is written as `run_identity.json`
into the output folder when a run starts and into every checkpoint (`RunIdentityCallback`), and compared before a
run resumes from a checkpoint or writes into a folder that already holds training output. Both trainers use
`resolve_resume_checkpoint` and `prepare_output_dir`, so `resume_from_checkpoint: true|last|PATH` and
`overwrite_output_dir` mean the same in both.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

RUN_IDENTITY_FILE = "run_identity.json"
# Written by the Trainer into each checkpoint before `on_save` fires, so a checkpoint holding both is complete.
TRAINER_STATE_FILE = "trainer_state.json"
# Files that carry a dataset's rows; images stored beside a chat JSONL are named by its rows.
DATA_SUFFIXES = (".jsonl", ".parquet", ".arrow", ".csv")
# Arguments that change where a run logs, saves or pushes, how long it trains or how it is evaluated, but not the
# weights after a given step: a run that resumes may change them.
NOT_IDENTITY = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "logging_dir",
        "logging_steps",
        "logging_strategy",
        "logging_first_step",
        "logging_nan_inf_filter",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "report_to",
        "run_name",
        "project",
        "trackio_space_id",
        "disable_tqdm",
        "push_to_hub",
        "hub_model_id",
        "hub_strategy",
        "hub_token",
        "hub_private_repo",
        "hub_always_push",
        "hub_revision",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "save_only_model",
        "save_on_each_node",
        "num_train_epochs",
        "max_steps",
        "eval_strategy",
        "eval_steps",
        "eval_on_start",
        "per_device_eval_batch_size",
        "dataset_test_split",
        "max_eval_samples",
        "retrieval_eval",
        "num_sample_generations",
        "sample_max_new_tokens",
        "dataloader_num_workers",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "dataloader_pin_memory",
        "use_cpu",
        "local_rank",
        # Reported on their own, as "model" and "data".
        "model_name_or_path",
        "dataset_name",
    }
)
# What a training run writes into its output folder that a later run must never mix with its own.
WEIGHT_PATTERNS = (
    "model*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model*.bin",
    "adapter_model.*",
    "adapter_config.json",
)
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def files_fingerprint(files, root: str | Path, full_up_to: int = 64 << 20, sample: int = 8 << 20) -> str:
    """A short SHA-256 over files' paths (relative to `root`), sizes and contents.

    Files up to `full_up_to` bytes are hashed whole; larger ones (weight shards, parquet files with embedded images)
    by their first and last `sample` bytes, which differ whenever two trainings' weights or two datasets' rows do, so
    a 20 GB checkpoint is fingerprinted in well under a second.

    Args:
        files (iterable of `Path`): The files, in a stable order.
        root (`str` or `Path`): What their recorded paths are relative to.
        full_up_to (`int`, *optional*, defaults to 64 MiB): Hash smaller files whole.
        sample (`int`, *optional*, defaults to 8 MiB): Bytes hashed from each end of a larger file.
    """
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{Path(file).relative_to(root).as_posix()}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= full_up_to:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
            else:
                digest.update(f.read(sample))
                f.seek(size - sample)
                digest.update(f.read(sample))
    return digest.hexdigest()[:16]


def dataset_fingerprint(name_or_path: str | None) -> str | None:
    """A `files_fingerprint` of a local dataset folder's row files (`*.jsonl`, `*.parquet`, ...), or its Hub id.

    Args:
        name_or_path (`str`, *optional*): A prepared-dataset or chat folder, a data file, or a Hub dataset id.
    """
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if not path.exists():
        return f"hub:{name_or_path}"
    base = path if path.is_dir() else path.parent
    candidates = sorted(p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES) if path.is_dir() else [path]
    files = [
        p for p in candidates if p.is_file() and not any(part.startswith(".") for part in p.relative_to(base).parts)
    ]
    return files_fingerprint(files, base)


def model_fingerprint(name_or_path: str | None, revision: str | None = None) -> str | None:
    """What identifies a model's weights: for a local folder a `files_fingerprint` of its config and weights (a moved
    folder is the same model, another model in the same place is not); for a Hub id `hub:<id>@<commit>`, the commit
    the local cache serves (else `revision` or `main`).

    The one model identity of the project: checkpoints' run identity, `medvl eval`'s reported revision and
    `--resume` check, the demo's downloads and its case-index cache key.

    Args:
        name_or_path (`str`, *optional*): A model folder or Hub id.
        revision (`str`, *optional*): The Hub revision asked for.
    """
    if not name_or_path:
        return None
    folder = Path(name_or_path)
    if not folder.is_dir():
        return f"hub:{name_or_path}@{_cached_commit(name_or_path) or revision or 'main'}"
    files = sorted(
        p
        for p in folder.iterdir()
        if p.name in ("config.json", "adapter_config.json")
        or (p.suffix in (".safetensors", ".bin") and p.name != "training_args.bin")
    )
    return f"local-{files_fingerprint(files, folder)}"


def _cached_commit(repo_id: str) -> str | None:
    # The cache lays a snapshot out as `.../snapshots/<commit>`: the folder name is the revision served offline.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True)).name
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None


def _plain(args) -> dict[str, Any]:
    values = args.to_dict() if hasattr(args, "to_dict") else dataclasses.asdict(args)
    # JSON round trip: enums and paths become the strings they are written as.
    return json.loads(json.dumps(values, default=str))


def run_identity(script_args, training_args, model_args) -> dict[str, Any]:
    """What makes a training run this run: its start model, data fingerprint and weight-changing arguments.

    Args:
        script_args, training_args, model_args: The entry point's parsed dataclasses (`hub_token` already moved
            out, see `hub.push.move_token_to_environment`).
    """
    args = {}
    for group in (script_args, training_args, model_args):
        args.update({key: value for key, value in _plain(group).items() if key not in NOT_IDENTITY})
    return {
        "model": model_args.model_name_or_path,
        "model_fingerprint": model_fingerprint(
            model_args.model_name_or_path, getattr(model_args, "model_revision", None)
        ),
        "data": dataset_fingerprint(script_args.dataset_name),
        "dataset_name": script_args.dataset_name,
        "args": args,
    }


def identity_differences(saved: dict[str, Any], current: dict[str, Any], limit: int = 5) -> list[str]:
    """Human-readable differences between two run identities; empty when they describe the same run.

    Arguments present in only one of them (another library version) are not differences.
    """
    differences = []
    if saved.get("model_fingerprint") != current.get("model_fingerprint"):
        differences.append(
            f"model {saved.get('model')} ({saved.get('model_fingerprint')}) -> {current.get('model')} "
            f"({current.get('model_fingerprint')})"
        )
    if saved.get("data") != current.get("data"):
        differences.append(
            f"data fingerprint {saved.get('data')} ({saved.get('dataset_name')}) -> {current.get('data')} "
            f"({current.get('dataset_name')})"
        )
    saved_args, current_args = saved.get("args", {}), current.get("args", {})
    changed = [key for key in sorted(saved_args.keys() & current_args.keys()) if saved_args[key] != current_args[key]]
    differences += [f"{key} {saved_args[key]!r} -> {current_args[key]!r}" for key in changed[:limit]]
    if len(changed) > limit:
        differences.append(f"and {len(changed) - limit} more arguments")
    return differences


def write_run_identity(folder: str | Path, identity: dict[str, Any]) -> Path:
    """Write `identity` to `folder/run_identity.json` (atomically: a reader never sees half a file)."""
    path = Path(folder) / RUN_IDENTITY_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_run_identity(folder: str | Path) -> dict[str, Any] | None:
    """The `run_identity.json` of `folder`, or `None` when it has none."""
    path = Path(folder) / RUN_IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MedvlError(
            f"{path}: not valid JSON ({err.msg}, line {err.lineno}); delete the folder or fix it"
        ) from err


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, oldest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [path for _, path in sorted(found)]


def _check_same_run(checkpoint: Path, identity: dict[str, Any]) -> None:
    saved = read_run_identity(checkpoint)
    if saved is None:
        raise MedvlError(
            f"{checkpoint} has no {RUN_IDENTITY_FILE}, so it cannot be told apart from another run's checkpoint; "
            "resume from a checkpoint written by medvl for this run, or train into a new output_dir"
        )
    differences = identity_differences(saved, identity)
    if differences:
        raise MedvlError(
            f"{checkpoint} belongs to another run ({'; '.join(differences)}); resume from a checkpoint of this run, "
            "or train into a new output_dir"
        )


def resolve_resume_checkpoint(
    resume_from_checkpoint, output_dir: str | Path, identity: dict[str, Any], max_steps: int | None = None
) -> str | None:
    """The checkpoint folder a run resumes from, checked to belong to this run; `None` for a fresh start.

    Args:
        resume_from_checkpoint (`str` or `bool`, *optional*): `true`/`last` (the newest complete checkpoint of
            `output_dir`), a `checkpoint-N` path, or `None`/`false`.
        output_dir (`str` or `Path`): The run's output folder.
        identity (`dict`): This run's `run_identity`.
        max_steps (`int`, *optional*): The run's `max_steps`; a checkpoint already there is refused (it would
            train 0 steps and report success).
    """
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    value = str(resume_from_checkpoint).strip()
    if value.lower() in ("", "false", "none", "no"):
        return None
    if value.lower() in ("true", "last", "yes"):
        checkpoints = list_checkpoints(output_dir)
        complete = [c for c in checkpoints if (c / TRAINER_STATE_FILE).is_file() and (c / RUN_IDENTITY_FILE).is_file()]
        if not complete:
            found = f" ({', '.join(c.name for c in checkpoints)} incomplete or not medvl's)" if checkpoints else ""
            raise MedvlError(
                f"resume_from_checkpoint={value}: no complete checkpoint-N folder in {output_dir}{found}; "
                "drop resume_from_checkpoint to start fresh, or pass the checkpoint's path"
            )
        for skipped in checkpoints[checkpoints.index(complete[-1]) + 1 :]:
            logger.warning("Skipping %s: the run stopped while writing it", skipped)
        checkpoint = complete[-1]
    else:
        checkpoint = Path(value)
        if not checkpoint.is_dir() or not (checkpoint / TRAINER_STATE_FILE).is_file():
            raise MedvlError(
                f"resume_from_checkpoint={value} is not a checkpoint folder (no {TRAINER_STATE_FILE}); pass a "
                "checkpoint-N folder of this run, or 'last'"
            )
    _check_same_run(checkpoint, identity)
    try:
        step = json.loads((checkpoint / TRAINER_STATE_FILE).read_text()).get("global_step", 0)
    except (json.JSONDecodeError, AttributeError) as err:
        raise MedvlError(
            f"{checkpoint / TRAINER_STATE_FILE}: not a trainer state; resume from another checkpoint"
        ) from err
    if max_steps is not None and 0 < max_steps <= step:
        raise MedvlError(
            f"{checkpoint} is at step {step} and max_steps={max_steps}, so resuming would train 0 steps; raise "
            "max_steps to train on, or resume from an earlier checkpoint"
        )
    logger.info("Resuming from %s (step %d)", checkpoint, step)
    return str(checkpoint)


def resume_weights_source(model_name_or_path: str, checkpoint: str | None) -> str:
    """Where a resuming run loads its model from: the checkpoint when it holds full weights, else the base model.

    `save_pretrained` writes a model's weights under their original Hub names (Mllama: `language_model.model.*`,
    `vision_model.*`; transformers 5 renames them to `model.language_model.*` on load, see its
    `conversion_mapping.py`), but `Trainer._load_from_checkpoint` reads them back with a non-strict
    `load_state_dict` that applies no renaming, so for such models it restores nothing. `from_pretrained` on the
    checkpoint applies the renaming; the Trainer then restores only the optimizer, scheduler, RNG and step.
    A LoRA checkpoint (adapter files only) starts from the base model: PEFT's `load_adapter` restores the adapter.

    Args:
        model_name_or_path (`str`): The run's base model.
        checkpoint (`str`, *optional*): The resolved checkpoint (`resolve_resume_checkpoint`).
    """
    if checkpoint is None or (Path(checkpoint) / "adapter_config.json").is_file():
        return model_name_or_path
    if (Path(checkpoint) / "config.json").is_file():
        logger.info(
            "Loading the weights of %s with from_pretrained; the Trainer's own reload of them that follows maps no "
            "keys, so its 'missing keys' / 'unexpected keys' warnings change nothing",
            checkpoint,
        )
        return checkpoint
    return model_name_or_path


def _training_outputs(output_dir: Path) -> list[str]:
    # A run_identity.json alone is a run that failed before saving anything: nothing to protect.
    names = {p.name for pattern in WEIGHT_PATTERNS for p in output_dir.glob(pattern)}
    names |= {p.name for p in list_checkpoints(output_dir)}
    names |= {TRAINER_STATE_FILE} if (output_dir / TRAINER_STATE_FILE).exists() else set()
    return sorted(names)


def prepare_output_dir(
    output_dir: str | Path, identity: dict[str, Any], *, overwrite: bool = False, resume_from: str | None = None
) -> None:
    """Refuse an output folder that holds another run, clear it with `overwrite`, then record this run in it.

    A folder another run trained into is refused (naming the differences) unless `overwrite` is set, which
    deletes that run's weights, adapter files and checkpoints first, so nothing of it (a LoRA run's
    `adapter_config.json`, which loaders prefer, least of all) can be mixed with this run's output.

    Args:
        output_dir (`str` or `Path`): The run's output folder.
        identity (`dict`): This run's `run_identity`.
        overwrite (`bool`, *optional*, defaults to `False`): Replace another run's output.
        resume_from (`str`, *optional*): The checkpoint this run resumes from (already checked); its folder is kept.
    """
    output_dir = Path(output_dir)
    outputs = _training_outputs(output_dir) if output_dir.is_dir() else []
    if outputs and resume_from is None:
        saved = read_run_identity(output_dir)
        if saved is None and list_checkpoints(output_dir):
            saved = read_run_identity(list_checkpoints(output_dir)[-1])
        differences = ["no run_identity.json"] if saved is None else identity_differences(saved, identity)
        if differences and not overwrite:
            raise MedvlError(
                f"output_dir {output_dir} holds another run's output ({'; '.join(differences)}); pass "
                "--overwrite_output_dir true to replace it, resume_from_checkpoint to continue a run, or choose "
                "another output_dir"
            )
        if differences:
            logger.warning("overwrite_output_dir: deleting %s from %s", ", ".join(outputs), output_dir)
            for name in outputs:
                target = output_dir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    write_run_identity(output_dir, identity)


def start_run(script_args, training_args, model_args) -> tuple[dict[str, Any], str | None]:
    """The start of both trainers: this run's identity, the checkpoint it resumes from, and a checked output folder.

    Resolves `training_args.resume_from_checkpoint` (`resolve_resume_checkpoint`), then checks and records the
    output folder (`prepare_output_dir`, honouring `script_args.overwrite_output_dir`) on the main process first,
    so that other ranks only see the folder once it is settled.

    Args:
        script_args, training_args, model_args: The entry point's parsed dataclasses.

    Returns:
        `(identity, resume_from)`: give `identity` to `RunIdentityCallback`, `resume_from` to `trainer.train`.
    """
    identity = run_identity(script_args, training_args, model_args)
    resume_from = resolve_resume_checkpoint(
        training_args.resume_from_checkpoint, training_args.output_dir, identity, max_steps=training_args.max_steps
    )
    with training_args.main_process_first(local=False, desc="output_dir check"):
        prepare_output_dir(
            training_args.output_dir,
            identity,
            overwrite=getattr(script_args, "overwrite_output_dir", False),
            resume_from=resume_from,
        )
    return identity, resume_from
