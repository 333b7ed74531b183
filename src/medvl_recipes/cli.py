# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The `medvl` command: one subcommand per stage, each implemented by a module's `cli(argv)`.

Subcommand modules are imported lazily so that `medvl --help` stays fast and a stage's heavy dependencies
(torch, gradio, ...) are only imported when that stage runs.
"""

import importlib
import os
import sys


# name -> (module exposing `cli(argv: list[str]) -> int | None`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tiny-models": (
        "medvl_recipes.samples.tiny_models",
        "Build tiny random SigLIP and Llama-3.2-Vision checkpoints (offline stand-ins).",
    ),
    "sample-data": (
        "medvl_recipes.samples.sample_data",
        "Write the embedded sample data in the public datasets' own formats.",
    ),
    "prepare": ("medvl_recipes.data.prepare", "Clean, de-duplicate and split raw sources into a Hub-ready dataset."),
    "to-chat": ("medvl_recipes.data.chat", "Convert a prepared dataset into TRL chat-format JSONL per split."),
    "train-encoder": ("medvl_recipes.train_encoder", "Fine-tune SigLIP with the sigmoid contrastive loss."),
    "train-decoder": (
        "medvl_recipes.train_decoder",
        "Fine-tune Llama 3.2 Vision with TRL SFTTrainer (full, LoRA, QLoRA).",
    ),
    "merge-adapter": ("medvl_recipes.merging", "Merge a LoRA adapter into its base model and save it."),
    "eval": (
        "medvl_recipes.evaluation.runner",
        "Evaluate checkpoints or predictions; `medvl eval compare A B` tests differences.",
    ),
    "push": ("medvl_recipes.hub.push", "Push a model, a dataset or the demo Space to the Hugging Face Hub."),
    "review": ("medvl_recipes.review.app", "Expert review of generated reports (Gradio); `medvl review stats`."),
}


def _print_help() -> None:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: medvl <command> [options]",
        "",
        "Recipes for medical image-to-report models. Run `medvl <command> --help` for a command's options.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    sys.stdout.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        _print_help()
        return 0
    if argv[0] in {"-V", "--version"}:
        from medvl_recipes import __version__

        sys.stdout.write(f"medvl-recipes {__version__}\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"medvl: unknown command {name!r}. Run `medvl --help` for the list of commands.\n")
        return 2
    from medvl_recipes.logs import setup_logging

    setup_logging()
    module = importlib.import_module(COMMANDS[name][0])
    from medvl_recipes.errors import MedvlError

    try:
        code = module.cli(rest)
    except (MedvlError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as err:
        if os.environ.get("MEDVL_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"medvl {name}: error: {message}\n")
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
