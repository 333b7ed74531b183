# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Every dataclass a recipe can set: subclasses of the TRL / transformers configs with only the new fields.

A recipe YAML is the flat union of the fields of the dataclasses its entry point hands to `TrlParser`.
"""

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainingArguments
from trl import ModelConfig, ScriptArguments

from medvl_recipes.errors import MedvlError, suggest


NEGATIVES_CHOICES = ("local", "accumulated", "global")


@dataclass
class EncoderScriptArguments(ScriptArguments):
    """Data arguments of `medvl_recipes.train_encoder` (on top of TRL's `ScriptArguments`).

    Args:
        image_column (`str`, *optional*, defaults to `"image"`):
            Dataset column with the images (datasets `Image()`, PIL images, bytes or paths).
        text_column (`str`, *optional*, defaults to `"text"`):
            Dataset column with the paired texts (reports, captions).
        max_length (`int`, *optional*, defaults to `64`):
            Text length in tokens; texts are padded to it and truncated, as SigLIP was trained.
        image_size (`int`, *optional*):
            Square image side in pixels; defaults to the processor's. Other sizes than the checkpoint's
            (e.g. 448 on a 224 px model) interpolate the position embeddings.
        max_train_samples (`int`, *optional*):
            Use only the first N training pairs (quick experiments).
        max_eval_samples (`int`, *optional*):
            Use only the first N validation pairs.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Replace the output of another run in `output_dir` (its weights, adapter and checkpoints are deleted
            first). Without it such a folder is refused, naming how the runs differ (`medvl_recipes.checkpoints`).
    """

    dataset_test_split: str = field(default="validation", metadata={"help": "Dataset split used for evaluation."})
    image_column: str = field(default="image", metadata={"help": "Dataset column with the images."})
    text_column: str = field(default="text", metadata={"help": "Dataset column with the paired texts."})
    max_length: int = field(
        default=64, metadata={"help": "Text length in tokens (padded to it and truncated, as SigLIP was trained)."}
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "Square image side in pixels; defaults to the processor's (position embeddings are interpolated)."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation pairs."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace another run's output in output_dir (refused otherwise, naming the difference)."},
    )

    def __post_init__(self):
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be a positive number of tokens, got {self.max_length}")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {self.image_size}")


@dataclass
class EncoderModelConfig(ModelConfig):
    """Model arguments of `medvl_recipes.train_encoder` (on top of TRL's `ModelConfig`).

    Args:
        freeze_vision_tower (`bool`, *optional*, defaults to `False`):
            Keep the image tower fixed and train the text tower only (LiT, Zhai et al. 2022).
        freeze_text_tower (`bool`, *optional*, defaults to `False`):
            Keep the text tower fixed.
        init_logit_scale (`float`, *optional*):
            Re-initialise the log temperature `t` (the paper uses `log(10)`). Keep the checkpoint's when unset.
        init_logit_bias (`float`, *optional*):
            Re-initialise the bias `b` (the paper uses `-10`, the log prior odds of a positive in its 32k batches).
            For a from-scratch run with small batches about `-log(batch size)` learns much faster: at `-10` the
            embeddings first collapse to absorb the bias, which Adam moves by only ~lr per step.
    """

    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Freeze the image tower and train the text tower only (LiT-style)."}
    )
    freeze_text_tower: bool = field(default=False, metadata={"help": "Freeze the text tower."})
    init_logit_scale: float | None = field(
        default=None, metadata={"help": "Re-initialise logit_scale (log temperature; the paper: log(10))."}
    )
    init_logit_bias: float | None = field(
        default=None,
        metadata={"help": "Re-initialise logit_bias (the paper: -10 for 32k batches; ~ -log(batch) for small ones)."},
    )


@dataclass
class SiglipTrainingConfig(TrainingArguments):
    """Training arguments of `medvl_recipes.train_encoder` (on top of `transformers.TrainingArguments`).

    Args:
        negatives (`str`, *optional*, defaults to `"accumulated"`):
            Which pairs serve as negatives. `"local"`: each micro-batch on its own. `"accumulated"`: the whole
            gradient-accumulation window (GradCache: gradients equal those of one batch of
            `per_device_train_batch_size * gradient_accumulation_steps`, with one micro-batch's activation memory).
            `"global"`: the accumulation window of every data-parallel rank.
        retrieval_eval (`bool`, *optional*, defaults to `True`):
            Add image<->text Recall@1/5/10 and mean/median rank on the evaluation split to the evaluation metrics.
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            The pair collator needs the raw image and text columns, so they are kept.
    """

    negatives: str = field(
        default="accumulated",
        metadata={"help": "Negatives for the sigmoid loss.", "choices": list(NEGATIVES_CHOICES)},
    )
    retrieval_eval: bool = field(
        default=True, metadata={"help": "Add retrieval Recall@k and ranks on the evaluation split to eval metrics."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the raw columns: the pair collator needs them."}
    )

    def __post_init__(self):
        if self.negatives not in NEGATIVES_CHOICES:
            raise ValueError(f"negatives={self.negatives!r} is not supported; choose one of {NEGATIVES_CHOICES}")
        super().__post_init__()


@dataclass
class DecoderScriptArguments(ScriptArguments):
    """Data arguments of `medvl_recipes.train_decoder` (on top of TRL's `ScriptArguments`).

    `dataset_name` is a chat-JSONL folder written by `medvl to-chat` (`train.jsonl`, `validation.jsonl`, `images/`),
    or a dataset in TRL's `messages` + `images` layout (a `save_to_disk` or parquet folder, or a Hub id).

    Args:
        loss_on (`str`, *optional*, defaults to `"assistant"`):
            `"assistant"`: loss on the assistant turns only; `"all"`: on every non-padding, non-image token.
        too_long (`str`, *optional*, defaults to `"error"`):
            A sample whose image token(s) `max_length` would cut: `"error"` (raise, naming it) or `"drop"` (counted).
        max_train_samples (`int`, *optional*):
            Use only the first N training samples (smoke runs).
        num_sample_generations (`int`, *optional*, defaults to `0`):
            After training, generate reports for the first N test-split samples and log them next to their
            references, with the corpus BLEU of the whole test split (`quickstart`).
        sample_max_new_tokens (`int`, *optional*, defaults to `64`):
            `max_new_tokens` of those generations.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Replace the output of another run in `output_dir` (its weights, adapter and checkpoints are deleted
            first). Without it such a folder is refused, naming how the runs differ (`medvl_recipes.checkpoints`).
    """

    dataset_test_split: str = field(
        default="validation", metadata={"help": "Split used for evaluation and sample generations."}
    )
    loss_on: str = field(
        default="assistant",
        metadata={"help": "Train on the 'assistant' turns only or on 'all' non-padding, non-image tokens."},
    )
    too_long: str = field(
        default="error",
        metadata={"help": "A sample whose image token max_length would cut: 'error' or 'drop' (counted)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training samples."})
    num_sample_generations: int = field(
        default=0, metadata={"help": "After training, log N generated reports next to their references, and BLEU."}
    )
    sample_max_new_tokens: int = field(default=64, metadata={"help": "max_new_tokens of those generations."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace another run's output in output_dir (refused otherwise, naming the difference)."},
    )

    def __post_init__(self):
        if self.loss_on not in ("assistant", "all"):
            raise ValueError(f"loss_on={self.loss_on!r} is not supported; choose 'assistant' or 'all'")
        if self.too_long not in ("error", "drop"):
            raise ValueError(f"too_long={self.too_long!r} is not supported; choose 'error' or 'drop'")


@dataclass
class DecoderModelConfig(ModelConfig):
    """Model arguments of `medvl_recipes.train_decoder` (on top of TRL's `ModelConfig`: LoRA, QLoRA, dtype, ...).

    With `use_peft` and no `lora_target_modules`, LoRA targets the language model's self-attention and MLP
    projections (`medvl_recipes.modeling.default_lora_target_modules`), never the vision tower.

    Args:
        freeze_vision_tower (`bool`, *optional*, defaults to `True`):
            Keep the vision encoder's weights fixed.
        freeze_language_model (`bool`, *optional*, defaults to `False`):
            Keep the language model fixed except its cross-attention layers (the Llama 3 paper's image-adapter
            recipe); the projector stays trainable.
        max_image_side (`int`, *optional*):
            Downscale images whose longer side exceeds this before tiling.
        max_image_tiles (`int`, *optional*):
            Tiles per image the processor pads to (Llama 3.2 Vision: 4 tiles of 560 px). Must equal the model's
            `vision_config.max_num_tiles`; it is checked, not changed. Use `max_image_side` for smaller inputs.
        vision_warmup_steps (`int`, *optional*, defaults to `0`):
            Steps of a vision warm-up before SFT (`medvl_recipes.vision_warmup`; 0 turns it off). The vision tower
            learns the modality, region and findings the training reports name and, with `vision_warmup_encoder`,
            the fine-tuned SigLIP's image embeddings. Skipped on resume (the checkpoint has its result).
        vision_warmup_encoder (`str`, *optional*):
            A fine-tuned SigLIP (`medvl train-encoder` output) distilled into the tower during the warm-up.
        vision_warmup_concepts (`bool`, *optional*, defaults to `True`):
            Include the report concepts in the warm-up.
        vision_warmup_learning_rate (`float`, *optional*, defaults to `1e-3`):
            Its learning rate.
        vision_warmup_batch_size (`int`, *optional*, defaults to `32`):
            Its images per step.
        retrieval_context_k (`int`, *optional*, defaults to `0`):
            Reports of similar training images placed in each prompt (`medvl_recipes.retrieval_context`; 0: none).
            Each training sample gets those of its k nearest training images by `retrieval_context_encoder`, never
            its own report; the checkpoint stores the index, and generate, eval and the demo ask with it.
        retrieval_context_encoder (`str`, *optional*):
            The fine-tuned SigLIP (`medvl train-encoder` output) that finds them; needed when `retrieval_context_k > 0`.
    """

    freeze_vision_tower: bool = field(default=True, metadata={"help": "Keep the vision encoder's weights fixed."})
    freeze_language_model: bool = field(
        default=False,
        metadata={"help": "Train only the cross-attention layers of the language model (and the projector)."},
    )
    max_image_side: int | None = field(
        default=None, metadata={"help": "Downscale images whose longer side exceeds this before tiling."}
    )
    max_image_tiles: int | None = field(
        default=None,
        metadata={"help": "Tiles per image; must equal the model's vision_config.max_num_tiles (checked)."},
    )
    vision_warmup_steps: int = field(
        default=0,
        metadata={
            "help": "Steps of a vision warm-up before SFT (0: none): the vision tower learns the training reports' "
            "modality, region and findings, and the vision_warmup_encoder's image embeddings (medvl_recipes."
            "vision_warmup); skipped on resume."
        },
    )
    vision_warmup_encoder: str | None = field(
        default=None,
        metadata={"help": "A fine-tuned SigLIP folder or Hub id to distil into the vision tower during the warm-up."},
    )
    vision_warmup_concepts: bool = field(
        default=True,
        metadata={"help": "Train the warm-up on the reports' modality, region and findings (the eval's own rules)."},
    )
    vision_warmup_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the vision warm-up."})
    vision_warmup_batch_size: int = field(default=32, metadata={"help": "Images per step of the vision warm-up."})
    retrieval_context_k: int = field(
        default=0,
        metadata={
            "help": "Reports of the k training images nearest to each image by retrieval_context_encoder, placed in "
            "its prompt (0: none; never the sample's own report); stored with the checkpoint for generate, eval "
            "and the demo."
        },
    )
    retrieval_context_encoder: str | None = field(
        default=None, metadata={"help": "The fine-tuned SigLIP folder or Hub id that finds the retrieval context."}
    )


def get_recipe_path(argv: list[str]) -> str | None:
    """The `--config` recipe path in a command line, so a model card can quote the recipe it was trained with."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


class _ArgumentError(Exception):
    """argparse's complaint, raised instead of printing the whole usage and exiting."""


def _raise_argument_error(message: str):
    raise _ArgumentError(message)


def _field_types(parser) -> dict[str, Any]:
    hints = {}
    for dataclass_type in parser.dataclass_types:
        try:
            resolved = typing.get_type_hints(dataclass_type)
        except (NameError, TypeError):
            resolved = {}
        hints.update({f.name: resolved.get(f.name, f.type) for f in dataclasses.fields(dataclass_type) if f.init})
    return hints


def _scalar_type(hint) -> type | None:
    # `int`, `float | None`, `Optional[bool]` -> the scalar type; anything richer -> None (not checked here).
    options = [hint] if isinstance(hint, type) else [a for a in typing.get_args(hint) if a is not type(None)]
    return options[0] if len(options) == 1 and options[0] in (int, float, bool, str) else None


def _suggest(name: str, known) -> str:
    close = suggest(name, known)
    return f" (did you mean {close!r}?)" if close else ""


def _check_recipe_file(path: str, types: dict[str, Any]) -> None:
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise MedvlError(f"recipe {path}: no such file; pass a YAML under recipes/") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MedvlError(f"recipe {path}: not valid YAML{where} ({getattr(err, 'problem', None) or err})") from err
    if not isinstance(config, dict):
        raise MedvlError(f"recipe {path}: must be a mapping of `key: value` lines, got {type(config).__name__}")
    for key, value in config.items():
        if key == "env":
            if not isinstance(value, dict):
                raise MedvlError(f"recipe {path}: `env` must be a mapping of environment variables")
            continue
        if key not in types:
            raise MedvlError(
                f"recipe {path}: unknown key {key!r}{_suggest(str(key), types)}; remove it or fix its name"
            )
        expected = _scalar_type(types[key])
        if value is None or expected in (None, str) or isinstance(value, str):
            continue  # strings are converted (and checked) by argparse like command-line values
        if isinstance(value, bool):
            matches = expected is bool
        else:
            matches = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not matches:
            raise MedvlError(f"recipe {path}: {key} must be {expected.__name__}, got {value!r}")


def _check_flags(argv: list[str], types: dict[str, Any]) -> None:
    options = (
        set(types) | {"config", "help"} | {f"no_{name}" for name, hint in types.items() if _scalar_type(hint) is bool}
    )
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        # Exact names only: argparse would take `--freeze_vision` for `--freeze_vision_tower`, and a prefix that
        # names one option today names two after the next library upgrade.
        if name not in options:
            longer = sorted(option for option in options if option.startswith(name))
            close = longer[0] if len(longer) == 1 else suggest(name, options)
            hint = f"; did you mean --{close}?" if close else ""
            raise MedvlError(f"unknown option --{name}{hint} (`--help-all` lists them all)")


def parse_recipe(parser, argv: list[str]) -> tuple:
    """Parse `--config RECIPE.yaml` and flags with a `TrlParser`; every mistake is one `MedvlError` line.

    Unknown recipe keys and flags get a "did you mean" suggestion, recipe values of the wrong type (`max_length:
    true`) are refused instead of reaching the model, and argparse or `__post_init__` complaints (`negatives`,
    `loss_on`, bf16 on CPU, ...) become one line instead of a usage dump or a traceback.

    Args:
        parser (`trl.TrlParser`): The entry point's parser.
        argv (`list[str]`): The command line after the command name.

    Returns:
        `tuple`: the parsed dataclasses, in the parser's order.
    """
    types = _field_types(parser)
    recipe = get_recipe_path(argv)
    if recipe is not None:
        _check_recipe_file(recipe, types)
    flags = [arg for i, arg in enumerate(argv) if not (arg == "--config" or (i > 0 and argv[i - 1] == "--config"))]
    _check_flags(flags, types)
    where = f"recipe {recipe}" if recipe else "arguments"
    parser.error = _raise_argument_error
    try:
        return parser.parse_args_and_config(args=argv)
    except _ArgumentError as err:
        raise MedvlError(f"{where}: {err}") from err
    except (ValueError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MedvlError(f"{where}: {message}") from err
