# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl push`: push a trained model, a prepared dataset or the Gradio demo to the Hugging Face Hub.

    medvl push model outputs/quickstart/decoder --repo-id me/medvl-decoder --dataset-id me/medvl-data \
        --eval-dir outputs/quickstart/eval
    medvl push dataset outputs/quickstart/dataset --repo-id me/medvl-data
    medvl push space --repo-id me/medvl-demo --decoder-id me/medvl-decoder --encoder-id me/medvl-encoder \
        --dataset-id me/medvl-data
    medvl push model outputs/quickstart/encoder --repo-id me/medvl-encoder --dry-run /tmp/staged

Each command first stages exactly the files it will upload in a folder (the `--dry-run` folder, or a temporary
one), then creates the repo, the branch (`--revision`) and one commit with `huggingface_hub`. The token comes
from `HF_TOKEN` or the cached `hf auth login`; it is never printed or logged, and a push is refused if a
staged file contains it.
"""

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import medvl_recipes
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.model_card import MODEL_INDEX_FILE, update_model_card, write_model_card


logger = logging.getLogger(__name__)

# Trainer state that is useless on the Hub; `training_args.bin` is a pickle that can hold `hub_token`, and
# `run_identity.json` (medvl_recipes.checkpoints) names local model and data paths.
MODEL_EXCLUDE = {
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state.pth",
    "run_identity.json",
}
MODEL_EXCLUDE_DIRS = {"runs", ".cache", "__pycache__"}
# The demo's files live in the repository, not in the package: `medvl push space` reads them from a checkout.
APP_FILE = Path("app.py")
SPACE_REQUIREMENTS = Path("space") / "requirements.txt"
# The demo reads the Hub ids it serves from this file at the Space's root.
SPACE_CONFIG_FILE = "demo_config.json"


@dataclass
class PushResult:
    """What a push staged and where it went.

    Args:
        repo_id (`str`): The target repo.
        repo_type (`str`): `"model"`, `"dataset"` or `"space"`.
        files (`list[str]`): The staged paths, relative to the repo root, sorted.
        staging_dir (`Path`): Where the files were staged (kept for `--dry-run`, deleted after a real push).
        commit_url (`str`, *optional*): The commit's URL; `None` for a dry run.
    """

    repo_id: str
    repo_type: str
    files: list[str]
    staging_dir: Path
    commit_url: str | None = None


def _copy_tree(src: Path, dst: Path, exclude_files: set[str] = frozenset(), exclude_dirs: set[str] = frozenset()):
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in exclude_dirs or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if rel.parts[0].startswith("checkpoint-") or not path.is_file():
            continue  # intermediate Trainer checkpoints are not part of the release
        if rel.name in exclude_files or rel.name.startswith(".") or rel.name.startswith("rng_state"):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _detect_stage(model_dir: Path) -> tuple[str, str]:
    """Return `(stage, base_model)` from a checkpoint's `config.json` or `adapter_config.json`."""
    adapter = model_dir / "adapter_config.json"
    config = model_dir / "config.json"
    if adapter.is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path") or "unknown"
        return "decoder", base
    if not config.is_file():
        raise MedvlError(
            f"{model_dir} has neither config.json nor adapter_config.json; pass a saved checkpoint folder"
        )
    data = json.loads(config.read_text())
    model_type = data.get("model_type", "")
    stage = "encoder" if model_type.startswith("siglip") else "decoder"
    return stage, data.get("_name_or_path") or "unknown"


def stage_model(
    model_dir: str | Path,
    staging_dir: str | Path,
    *,
    repo_id: str,
    dataset_id: str | None = None,
    model_index: str | Path | None = None,
    eval_dir: str | Path | None = None,
) -> list[str]:
    """Copy a trained encoder/decoder (full, merged or LoRA adapter) and its model card into `staging_dir`.

    The card (written at training time by `write_model_card`, or now if missing) is pointed at `repo_id` and
    `dataset_id`, and gets the eval `model-index` from `model_index` or `eval_dir/model_index.yaml`.

    Args:
        model_dir (`str` or `Path`): The checkpoint folder (`save_pretrained` output).
        staging_dir (`str` or `Path`): An empty or missing folder to stage into.
        repo_id (`str`): The model repo id.
        dataset_id (`str`, *optional*): The Hub id of the training dataset, linked from the card.
        model_index (`str` or `Path`, *optional*): A `model_index.yaml` written by `medvl eval`.
        eval_dir (`str` or `Path`, *optional*): A `medvl eval` output folder holding `model_index.yaml`.

    Returns:
        `list[str]`: the staged paths relative to `staging_dir`.
    """
    model_dir, staging_dir = Path(model_dir), Path(staging_dir)
    if not model_dir.is_dir():
        raise MedvlError(f"model folder {model_dir} does not exist; pass the output_dir of a training run")
    stage, base_model = _detect_stage(model_dir)
    _copy_tree(model_dir, staging_dir, MODEL_EXCLUDE, MODEL_EXCLUDE_DIRS)
    if model_index is None and eval_dir is not None:
        check_eval_is_of(model_dir, eval_dir, stage)
        model_index = Path(eval_dir) / MODEL_INDEX_FILE
        if not model_index.is_file():
            logger.warning("%s has no %s; the card gets no eval results", eval_dir, MODEL_INDEX_FILE)
            model_index = None
    if not (staging_dir / "README.md").is_file() or "medvl-recipes" not in (staging_dir / "README.md").read_text():
        # A card from `save_pretrained`/PEFT (or none): replace it with ours.
        write_model_card(staging_dir, stage=stage, base_model=base_model)
    update_model_card(staging_dir, repo_id=repo_id, dataset_id=dataset_id, model_index=model_index)
    from huggingface_hub import ModelCard

    card_base = ModelCard.load(staging_dir / "README.md").data.base_model
    card_base = card_base[0] if isinstance(card_base, list) else card_base
    hub_ids = {"model_name_or_path": card_base, "dataset_name": dataset_id, "output_dir": repo_id}
    for name in RECORDS_WITH_PATHS:
        if (staging_dir / name).is_file():
            publishable_record(staging_dir / name, hub_ids=hub_ids)
    publishable_text(staging_dir / "README.md")
    return _list_files(staging_dir)


# JSON records of a run that name local folders (`model_name_or_path`, `dataset_name`, `output_dir`, `logging_dir`,
# `best_model_checkpoint`, ...). They are pushed with the model; the local copies stay as they are (merging reads
# the base model's path from run_args.json).
RECORDS_WITH_PATHS = ("run_args.json", "trainer_state.json")
# The Hugging Face cache keeps a Hub repo at `.../models--<owner>--<name>/snapshots/<commit>` (datasets-- likewise).
_CACHE_SNAPSHOT = re.compile(r"/(?:models|datasets)--([^/]+?)--([^/]+)/snapshots/[^/]+")


def _publishable_path(value: str, key: str, hub_ids: dict[str, str | None]) -> str:
    cached = _CACHE_SNAPSHOT.search(value)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    return hub_ids.get(key) or Path(value).name or value


def publishable_record(path: str | Path, *, hub_ids: dict[str, str | None]) -> list[str]:
    """Replace the absolute local paths of a staged JSON record in place, and say which keys were replaced.

    A path becomes the Hub id it is a cached snapshot of (`.../models--owner--name/snapshots/...` -> `owner/name`),
    else the Hub id `hub_ids` gives for its key (`dataset_name` -> `--dataset-id`), else its last component. The
    replaced keys are listed under `_medvl_local_paths_replaced` so that nobody mistakes a name for the path.

    Args:
        path (`str` or `Path`): A staged copy (never the run's own file).
        hub_ids (`dict[str, str | None]`): Key name -> Hub id to use for that key's path.

    Returns:
        `list[str]`: the dotted keys whose value was replaced.
    """
    path = Path(path)
    replaced: list[str] = []

    def scrub(value, where: str, key: str):
        if isinstance(value, dict):
            return {k: scrub(v, f"{where}.{k}" if where else k, k) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v, f"{where}[{i}]", key) for i, v in enumerate(value)]
        if isinstance(value, str) and Path(value).is_absolute():
            replaced.append(where)
            return _publishable_path(value, key, hub_ids)
        return value

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise MedvlError(f"{path.name} is not valid JSON ({err}); fix or delete it before pushing") from err
    record = scrub(record, "", "")
    if replaced:
        record["_medvl_local_paths_replaced"] = {
            "note": "absolute local paths of the training machine, replaced by a Hub id or the folder's name",
            "keys": replaced,
        }
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return replaced


# An absolute POSIX path of two or more components inside prose, Markdown or YAML: after a backtick, quote, space or
# parenthesis (so `https://...` URLs and `</details>` are not paths).
_ABSOLUTE_PATH = re.compile(r"(?<=[`\"'\s(])/[\w.@+~=-]+(?:/[\w.@+~=-]*)+")


def publishable_text(path: str | Path) -> int:
    """Replace the absolute local paths of a staged text file (the model card) in place; return how many.

    The card written at training time names the base model, recipe and training arguments by their local paths;
    each becomes the Hub id it is a cached snapshot of, else its last component (see `publishable_record`).

    Args:
        path (`str` or `Path`): A staged copy.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new, count = _ABSOLUTE_PATH.subn(lambda m: _publishable_path(m.group(0), "", {}), text)
    if count:
        path.write_text(new, encoding="utf-8")
    return count


def check_eval_is_of(model_dir: str | Path, eval_dir: str | Path, stage: str) -> None:
    """Refuse `eval_dir` unless the `medvl eval` run it holds evaluated the weights of `model_dir`.

    The eval runner records each model's `checkpoints.model_fingerprint` in `metrics.json`
    (`models.<stage>.revision`); the pushed folder's fingerprint must be the same.

    Args:
        model_dir (`str` or `Path`): The checkpoint folder being pushed.
        eval_dir (`str` or `Path`): A `medvl eval` output folder.
        stage (`str`): `"encoder"` or `"decoder"`, the kind of model `model_dir` holds.
    """
    from medvl_recipes.checkpoints import model_fingerprint

    metrics_path = Path(eval_dir) / "metrics.json"
    try:
        evaluated = json.loads(metrics_path.read_text()).get("models", {}).get(stage) or {}
    except (OSError, ValueError, AttributeError):
        evaluated = {}
    if not evaluated.get("revision"):
        raise MedvlError(
            f"--eval-dir {eval_dir}: {metrics_path.name} records no {stage} (not a `medvl eval --{stage}` run), so "
            f"its results cannot be tied to {model_dir}; pass --model-index FILE to attach them anyway"
        )
    pushed = model_fingerprint(str(model_dir))
    if evaluated["revision"] != pushed:
        raise MedvlError(
            f"--eval-dir {eval_dir} evaluated {stage} {evaluated.get('name_or_path')} ({evaluated['revision']}), "
            f"not {model_dir} ({pushed}); evaluate this checkpoint or drop --eval-dir"
        )


def stage_dataset(dataset_dir: str | Path, staging_dir: str | Path) -> list[str]:
    """Copy a prepared dataset folder (`data/*.parquet`, dataset card, prepare report) into `staging_dir`.

    Args:
        dataset_dir (`str` or `Path`): The output of `medvl prepare`.
        staging_dir (`str` or `Path`): An empty or missing folder to stage into.
    """
    dataset_dir, staging_dir = Path(dataset_dir), Path(staging_dir)
    if not (dataset_dir / "data").is_dir():
        raise MedvlError(f"{dataset_dir} has no data/ folder; pass the output_dir of `medvl prepare`")
    if not (dataset_dir / "README.md").is_file():
        raise MedvlError(f"{dataset_dir} has no README.md dataset card; re-run `medvl prepare` to write it")
    _copy_tree(dataset_dir, staging_dir, exclude_dirs={".cache", "__pycache__"})
    return _list_files(staging_dir)


def space_readme(*, title: str, decoder_id: str, encoder_id: str, dataset_id: str | None) -> str:
    """The Space card: Gradio SDK metadata pointing at the pushed models and dataset, and a usage note."""
    import gradio
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=gradio.__version__,
        app_file="app.py",
        license="apache-2.0",
        models=[decoder_id, encoder_id],
        datasets=[dataset_id] if dataset_id else None,
        tags=["medical", "radiology", "medvl-recipes"],
        emoji="🩻",
        colorFrom="blue",
        colorTo="gray",
        pinned=False,
        short_description="Medical image-to-report demo (research only)",
    )
    body = (
        f"# {title}\n\n"
        "Upload a PNG/JPEG or a DICOM image to get a generated report (streamed), the SigLIP image-report "
        "similarity and the most similar cases of the index dataset.\n\n"
        f"- Report model: [{decoder_id}](https://huggingface.co/{decoder_id})\n"
        f"- Encoder: [{encoder_id}](https://huggingface.co/{encoder_id})\n"
        + (f"- Index dataset: [{dataset_id}](https://huggingface.co/datasets/{dataset_id})\n" if dataset_id else "")
        + "\n> **Not for clinical use.** Outputs are research artefacts, not a diagnosis. Upload only "
        "de-identified images; DICOM tags are never displayed, and uploads are deleted after the session.\n"
    )
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def stage_space(
    staging_dir: str | Path,
    *,
    repo_id: str,
    decoder_id: str,
    encoder_id: str,
    dataset_id: str | None = None,
    index_split: str = "train",
    app_file: str | Path = APP_FILE,
    requirements: str | Path = SPACE_REQUIREMENTS,
) -> list[str]:
    """Stage the Gradio demo as a Space: `app.py`, the bundled `medvl_recipes` package, requirements, card, config.

    Args:
        staging_dir (`str` or `Path`): An empty or missing folder to stage into.
        repo_id (`str`): The Space id (used for its title).
        decoder_id (`str`): Hub id of the report model the Space loads.
        encoder_id (`str`): Hub id of the SigLIP encoder the Space loads.
        dataset_id (`str`, *optional*): Hub id of the dataset whose `index_split` is the similar-case index.
        index_split (`str`, *optional*, defaults to `"train"`): The split indexed for similar cases (the demo calibrates on validation).
        app_file (`str` or `Path`, *optional*, defaults to `app.py`): The demo's Gradio app (the checkout's).
        requirements (`str` or `Path`, *optional*, defaults to `space/requirements.txt`): The Space's requirements.
    """
    staging_dir, app_file, requirements = Path(staging_dir), Path(app_file), Path(requirements)
    for path, option in ((app_file, "--app-file"), (requirements, "--requirements")):
        if not path.is_file():
            raise MedvlError(
                f"{path} is missing; run `medvl push space` from a medvl-recipes checkout or set {option}"
            )
    staging_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(app_file, staging_dir / "app.py")
    package = Path(medvl_recipes.__file__).resolve().parent
    _copy_tree(package, staging_dir / "medvl_recipes", exclude_dirs={"__pycache__"})
    shutil.copy2(requirements, staging_dir / "requirements.txt")
    config = {"decoder": decoder_id, "encoder": encoder_id, "index_dataset": dataset_id, "index_split": index_split}
    (staging_dir / SPACE_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    title = repo_id.split("/")[-1]
    (staging_dir / "README.md").write_text(
        space_readme(title=title, decoder_id=decoder_id, encoder_id=encoder_id, dataset_id=dataset_id)
    )
    return _list_files(staging_dir)


def _list_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# What a Hugging Face user access token looks like (`hf_` and 34 letters/digits today); 30 is enough to tell one from
# prose and code, and a scan for the pattern also catches tokens other than the one this process uses.
TOKEN_PATTERN = rb"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30}"
_TOKEN_PATTERN_MAX_LEN = 1 + 3 + 30


def _file_matches(path: Path, pattern: re.Pattern, max_len: int, chunk_size: int = 1 << 23) -> bool:
    # Chunked so that multi-GB weight shards are never read into memory at once; keeping the last `max_len` bytes
    # of each window finds a match that straddles two chunks.
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            window = tail + chunk
            if pattern.search(window):
                return True
            tail = window[max(0, len(window) - max_len + 1) :]
    return False


def _file_contains(path: Path, needle: bytes, chunk_size: int = 1 << 23) -> bool:
    return _file_matches(path, re.compile(re.escape(needle)), len(needle), chunk_size)


def _check_no_token(folder: Path, token: str | None) -> None:
    """Refuse to upload `folder` if a file holds `token` or anything shaped like a Hugging Face token."""
    any_token = re.compile(TOKEN_PATTERN)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        # Name the file, never the token.
        if token and _file_contains(path, token.encode()):
            raise MedvlError(f"{path.relative_to(folder)} contains your Hugging Face token; remove it before pushing")
        if _file_matches(path, any_token, _TOKEN_PATTERN_MAX_LEN):
            raise MedvlError(
                f"{path.relative_to(folder)} contains what looks like a Hugging Face token (hf_ and 30+ letters or "
                "digits); remove it before pushing"
            )


def upload_staged(
    staging_dir: str | Path,
    *,
    repo_id: str,
    repo_type: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Create the repo (and branch), then commit every file of `staging_dir` in one commit.

    Args:
        staging_dir (`str` or `Path`): The staged files.
        repo_id (`str`): Target repo id.
        repo_type (`str`): `"model"`, `"dataset"` or `"space"`.
        private (`bool`, *optional*, defaults to `False`): Create the repo private (an existing repo keeps its
            visibility).
        revision (`str`, *optional*): A branch to commit to; created from `main` if missing.
        commit_message (`str`, *optional*): The commit summary.
        token (`str`, *optional*): Overrides `HF_TOKEN` / the cached login.

    Returns:
        `str`: the commit URL.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    token = token or get_token()
    if not token:
        raise MedvlError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run)")
    staging_dir = Path(staging_dir)
    _check_no_token(staging_dir, token)
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    operations = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(staging_dir / rel))
        for rel in _list_files(staging_dir)
    ]
    try:
        api.create_repo(
            repo_id,
            repo_type=repo_type,
            private=private,
            exist_ok=True,
            space_sdk="gradio" if repo_type == "space" else None,
        )
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message or f"Upload {repo_type} with medvl-recipes",
            repo_type=repo_type,
            revision=revision,
        )
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        hint = (
            "check that the token (HF_TOKEN or `hf auth login`) is valid and has write access to it"
            if status in (401, 403)
            else "check the repo id and your connection"
        )
        # The server's first line only: the token is never part of it.
        raise MedvlError(f"the Hub refused the push to {repo_type} {repo_id} (HTTP {status}); {hint}") from err
    logger.info("Pushed %d files to %s (%s)", len(operations), repo_id, info.commit_url)
    return info.commit_url


def move_token_to_environment(training_args) -> None:
    """Take `hub_token` out of the training arguments before any checkpoint is written.

    The Trainer pickles its arguments into every `training_args.bin` it saves and pushes (its own
    `push_to_hub` and `hub_strategy` uploads included), so a token left in `training_args.hub_token` ends up on the
    Hub. Moved to `HF_TOKEN`, it still authenticates every upload of this process and is in no file.

    Args:
        training_args (`transformers.TrainingArguments`): Modified in place (`hub_token` becomes `None`).
    """
    import os

    if training_args.hub_token:
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None


def take_over_push(training_args) -> bool:
    """Keep the Trainer from pushing anything itself; return whether the run should `push_training_output` at the end.

    The Trainer's own pushes (`push_to_hub` at `save_model`, `hub_strategy` checkpoint pushes) upload the whole
    `output_dir` unscanned, `training_args.bin` included. This moves `hub_token` to `HF_TOKEN`
    (`move_token_to_environment`) and turns `training_args.push_to_hub` off, so the only upload of a run is the
    staged, token-scanned one of `push_training_output`, once training has finished.

    Args:
        training_args (`transformers.TrainingArguments`): Modified in place (`hub_token=None`, `push_to_hub=False`).

    Returns:
        `bool`: the `push_to_hub` the recipe asked for.
    """
    move_token_to_environment(training_args)
    requested = bool(training_args.push_to_hub)
    if requested and training_args.hub_strategy in ("checkpoint", "all_checkpoints"):
        logger.warning(
            "hub_strategy=%s: medvl pushes the finished run once (staged and token-scanned), not its checkpoints",
            training_args.hub_strategy,
        )
    training_args.push_to_hub = False
    return requested


def push_training_output(output_dir: str | Path, training_args, *, dataset_id: str | None = None) -> str:
    """Push a finished training run's `output_dir` the way `medvl push model` does (staged, token-scanned).

    Args:
        output_dir (`str` or `Path`): The run's output folder (weights, processor, model card).
        training_args (`transformers.TrainingArguments`): `hub_model_id` (default: the folder name),
            `hub_private_repo` and `hub_revision`.
        dataset_id (`str`, *optional*): A Hub dataset id linked from the card.

    Returns:
        `str`: the commit URL.
    """
    repo_id = training_args.hub_model_id or Path(output_dir).name
    with tempfile.TemporaryDirectory(prefix="medvl-push-") as staging_dir:
        stage_model(output_dir, staging_dir, repo_id=repo_id, dataset_id=dataset_id)
        try:
            return upload_staged(
                staging_dir,
                repo_id=repo_id,
                repo_type="model",
                private=bool(training_args.hub_private_repo),
                revision=getattr(training_args, "hub_revision", None),
                commit_message="End of training",
            )
        except MedvlError as err:
            raise MedvlError(
                f"{err}; the trained model is saved in {output_dir}: push it with `medvl push model {output_dir} "
                f"--repo-id {repo_id}`"
            ) from err


def push(kind: str, args: argparse.Namespace) -> PushResult:
    """Stage then (unless `args.dry_run`) upload a model, dataset or Space; see `medvl push --help`."""
    repo_type = {"model": "model", "dataset": "dataset", "space": "space"}[kind]
    staging_dir = Path(args.dry_run) if args.dry_run else Path(tempfile.mkdtemp(prefix="medvl-push-"))
    if args.dry_run and staging_dir.exists() and any(staging_dir.iterdir()):
        raise MedvlError(f"--dry-run folder {staging_dir} is not empty; pass a new or empty folder")
    try:
        if kind == "model":
            files = stage_model(
                args.path,
                staging_dir,
                repo_id=args.repo_id,
                dataset_id=args.dataset_id,
                model_index=args.model_index,
                eval_dir=args.eval_dir,
            )
        elif kind == "dataset":
            files = stage_dataset(args.path, staging_dir)
        else:
            files = stage_space(
                staging_dir,
                repo_id=args.repo_id,
                decoder_id=args.decoder_id,
                encoder_id=args.encoder_id,
                dataset_id=args.dataset_id,
                index_split=args.index_split,
                app_file=args.app_file,
                requirements=args.requirements,
            )
        result = PushResult(args.repo_id, repo_type, files, staging_dir)
        if not args.dry_run:
            result.commit_url = upload_staged(
                staging_dir,
                repo_id=args.repo_id,
                repo_type=repo_type,
                private=args.private,
                revision=args.revision,
                commit_message=args.commit_message,
            )
        return result
    finally:
        if not args.dry_run:
            shutil.rmtree(staging_dir, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medvl push",
        description="Push a trained model, a prepared dataset or the demo Space to the Hugging Face Hub. "
        "The token comes from HF_TOKEN or `hf auth login` and is never printed.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo-id", required=True, help="Target repo id, e.g. me/medvl-decoder.")
        p.add_argument("--private", action="store_true", help="Create the repo private.")
        p.add_argument("--revision", default=None, help="Branch to push to (created from main if missing).")
        p.add_argument("--commit-message", default=None, help="Commit summary.")
        p.add_argument(
            "--dry-run",
            metavar="DIR",
            default=None,
            help="Write exactly the files that would be uploaded to DIR and print the list; upload nothing.",
        )

    model = sub.add_parser("model", help="Push a trained encoder or decoder (full, merged or LoRA adapter).")
    model.add_argument("path", help="Checkpoint folder (a training run's output_dir).")
    common(model)
    model.add_argument("--dataset-id", default=None, help="Hub id of the training dataset, linked from the card.")
    model.add_argument("--eval-dir", default=None, help="A `medvl eval` output folder with model_index.yaml.")
    model.add_argument("--model-index", default=None, help="A model_index.yaml file (overrides --eval-dir).")

    dataset = sub.add_parser("dataset", help="Push a prepared dataset folder (output of `medvl prepare`).")
    dataset.add_argument("path", help="Prepared dataset folder.")
    common(dataset)

    space = sub.add_parser("space", help="Push the Gradio demo as a Space that loads the pushed models.")
    common(space)
    space.add_argument("--decoder-id", required=True, help="Hub id of the report-generation model.")
    space.add_argument("--encoder-id", required=True, help="Hub id of the SigLIP encoder.")
    space.add_argument("--dataset-id", required=True, help="Hub id of the dataset indexed for similar cases.")
    space.add_argument("--index-split", default="train", help="Split of --dataset-id to index.")
    space.add_argument("--app-file", default=str(APP_FILE), help="The demo's app.py (default: ./app.py).")
    space.add_argument(
        "--requirements", default=str(SPACE_REQUIREMENTS), help="The Space's requirements (default: ./space/...)."
    )
    return parser


def cli(argv: list[str]) -> int:
    """`medvl push model|dataset|space ...`."""
    args = _parser().parse_args(argv)
    result = push(args.kind, args)
    out = sys.stdout
    if args.dry_run:
        out.write(
            f"Dry run: {len(result.files)} files staged in {result.staging_dir} for {result.repo_type} "
            f"{result.repo_id}:\n"
        )
    else:
        out.write(f"Pushed {len(result.files)} files to {result.repo_type} {result.repo_id}: {result.commit_url}\n")
    out.write("".join(f"  {name}\n" for name in result.files))
    return 0
