# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The `medvl` command: one subcommand per stage, each implemented by a module's `cli(argv)`.

Subcommand modules are imported lazily so that `medvl --help` stays fast and a stage's heavy dependencies
(torch, gradio, ...) are only imported when that stage runs.

One argument style for every command: the `train-*` commands take TRL/transformers' `--output_dir` spelling,
the others argparse's `--output-dir`; each accepts the other spelling too (`normalize_options`). An unknown flag is
one line with the closest known one (`suggest`, also used for unknown recipe keys).
"""

import argparse
import contextlib
import dataclasses
import importlib
import inspect
import os
import re
import sys
from collections.abc import Iterator

from medvl_recipes.errors import suggest


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
    "generate": ("medvl_recipes.inference", "Write reports (and similar training cases) for new, unlabelled images."),
    "eval": (
        "medvl_recipes.evaluation.runner",
        "Evaluate checkpoints or predictions; `medvl eval compare A B` tests differences.",
    ),
    "export": ("medvl_recipes.export", "Export the SigLIP encoder to ONNX (`medvl export onnx ENCODER_DIR OUT`)."),
    "push": ("medvl_recipes.hub.push", "Push a model, a dataset or the demo Space to the Hugging Face Hub."),
    "review": (
        "medvl_recipes.review.app",
        "Expert review of generated reports (Gradio); `medvl review stats`, `medvl review publish`.",
    ),
}
# Commands parsed by TrlParser (dataclass fields, `--output_dir`); all others use argparse (`--output-dir`).
TRL_COMMANDS = ("train-encoder", "train-decoder")
_OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def normalize_options(argv: list[str], *, underscores: bool) -> list[str]:
    """Rewrite every `--foo-bar` / `--foo_bar` option name of `argv` to one spelling; values are left alone.

    Args:
        argv (`list[str]`):
            The arguments after the subcommand.
        underscores (`bool`):
            `True` for the TrlParser commands (`--output_dir`), `False` for the argparse ones (`--output-dir`).
    """
    out = []
    for arg in argv:
        if not arg.startswith("--") or len(arg) == 2 or not arg[2].isalpha():
            out.append(arg)
            continue
        name, sep, value = arg[2:].partition("=")
        name = name.replace("-", "_") if underscores else name.replace("_", "-")
        if underscores and name == "config" and sep:
            out += ["--config", value]  # TrlParser only finds the recipe as a separate `--config PATH`
        else:
            out.append(f"--{name}{sep}{value}")
    return out


def _trl_fields(parser) -> list:
    return [field for dataclass_type in parser.dataclass_types for field in dataclasses.fields(dataclass_type)]


def _short_trl_help(name: str, module, parser) -> str:
    """`medvl train-* --help`: the recipe-level usage and the project's own fields, not the ~200 inherited ones."""
    doc = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [
        f"usage: medvl {name} --config RECIPE.yaml [--KEY VALUE ...]",
        "",
        doc,
        "",
        "  --config RECIPE.yaml   a recipe under recipes/ (every key is a field below or of the classes listed)",
        "  --KEY VALUE            override one recipe key, e.g. --learning_rate 1e-4 --output_dir outputs/run",
        "  --help-all             every option, with its help",
    ]
    total = 0
    for dataclass_type in parser.dataclass_types:
        fields = {field.name: field for field in dataclasses.fields(dataclass_type)}
        total += len(fields)
        if not dataclass_type.__module__.startswith("medvl_recipes."):
            lines += [
                "",
                f"{dataclass_type.__name__}: {len(fields)} options of {dataclass_type.__module__} (--help-all)",
            ]
            continue
        own = inspect.get_annotations(dataclass_type)
        bases = ", ".join(base.__name__ for base in dataclass_type.__bases__)
        lines += [
            "",
            f"{dataclass_type.__name__}: {len(own)} options of medvl-recipes, {len(fields) - len(own)} of {bases}:",
        ]
        for field_name in own:
            help_text = " ".join(str(fields[field_name].metadata.get("help", "")).split())
            help_text = help_text if len(help_text) <= 88 else help_text[:85] + "..."
            lines.append(f"  --{field_name:<24} {help_text}")
    lines += ["", f"See `medvl {name} --help-all` for all {total} options (TrainingArguments, TRL and PEFT ones)."]
    return "\n".join(lines) + "\n"


class _ArgumentError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


@contextlib.contextmanager
def _one_line_argparse_errors() -> Iterator[None]:
    """Turn argparse's usage-plus-error exit into an exception `main` prints as one line with a suggestion."""
    original = argparse.ArgumentParser.error

    def error(self, message):
        raise _ArgumentError(self, message)

    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def _argparse_message(err: _ArgumentError) -> str:
    message = str(err)
    known = {option[2:] for option in _OPTION.findall(err.parser.format_help())}
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    choice = re.search(r"invalid choice: '([^']+)' \(choose from (.*)\)", message)
    if unknown:
        for option in _OPTION.findall(unknown.group(1)):
            hint = suggest(option[2:], known)
            if hint:
                message += f"; did you mean --{hint}?"
                break
    elif choice:
        hint = suggest(choice.group(1), re.findall(r"[\w.-]+", choice.group(2)))
        message += f"; did you mean {hint!r}?" if hint else ""
    return f"{message} (`{err.parser.prog} --help` lists the options)"


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
    # `--debug` anywhere (or MEDVL_DEBUG=1): show the traceback instead of the one-line error.
    debug = "--debug" in argv or bool(os.environ.get("MEDVL_DEBUG"))
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in {"-h", "--help", "help"}:
        _print_help()
        return 0
    if argv[0] in {"-V", "--version"}:
        from medvl_recipes import __version__

        sys.stdout.write(f"medvl-recipes {__version__}\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        hint = suggest(name, COMMANDS)
        did_you_mean = f" Did you mean `medvl {hint}`?" if hint else ""
        sys.stderr.write(
            f"medvl: unknown command {name!r}.{did_you_mean} Run `medvl --help` for the list of commands.\n"
        )
        return 2
    from medvl_recipes.logs import setup_logging

    setup_logging()
    module = importlib.import_module(COMMANDS[name][0])
    from medvl_recipes.errors import MedvlError

    rest = normalize_options(rest, underscores=name in TRL_COMMANDS)
    try:
        if name in TRL_COMMANDS:
            parser = module.build_parser()
            if "--help_all" in rest:
                rest = ["--help"]
            elif {"-h", "--help"} & set(rest):
                sys.stdout.write(_short_trl_help(name, module, parser))
                return 0
        with _one_line_argparse_errors():
            code = module.cli(rest)
    except _ArgumentError as err:
        sys.stderr.write(f"medvl {name}: error: {_argparse_message(err)}\n")
        return 2
    except (MedvlError, OSError) as err:
        # OSError covers missing/unreadable paths and `from_pretrained` on an id the offline cache does not hold.
        if debug:
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"medvl {name}: error: {message}\n")
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
