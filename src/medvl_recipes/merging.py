# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl merge-adapter`: fold a LoRA adapter into its base Llama 3.2 Vision model and save a plain checkpoint.

The merged folder loads with `AutoModelForImageTextToText.from_pretrained` / `AutoProcessor.from_pretrained`, needs
no PEFT at inference, and generates the same tokens as the base model with the adapter.

Usage:

    medvl merge-adapter --adapter outputs/llama-3.2-11b-vision-lora --output-dir outputs/llama-3.2-11b-vision-merged
"""

import argparse
import json
import logging
import shutil
from pathlib import Path

from transformers import AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.errors import MedvlError
from medvl_recipes.modeling import adapter_base, parse_dtype


logger = logging.getLogger(__name__)


def _trained_model_args(adapter_dir: Path) -> dict:
    run_args = adapter_dir / "run_args.json"
    return json.loads(run_args.read_text()).get("model_args", {}) if run_args.is_file() else {}


def _load_base(base_model: str, dtype, model_args: dict):
    # A QLoRA adapter was trained against the 4-bit rounding of the base, not the base itself: merge it into the
    # de-quantised 4-bit weights, so the merged model computes what the adapter model computed.
    if not model_args.get("load_in_4bit"):
        return AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype)
    from trl import get_quantization_config

    from medvl_recipes.configs import DecoderModelConfig

    known = {k: v for k, v in model_args.items() if k in DecoderModelConfig.__dataclass_fields__}
    quantized = AutoModelForImageTextToText.from_pretrained(
        base_model,
        quantization_config=get_quantization_config(DecoderModelConfig(**known)),
        device_map={"": "cpu"},
        dtype=dtype if dtype != "auto" else None,
    )
    return quantized.dequantize()


def merge_adapter(
    adapter_dir: str | Path,
    output_dir: str | Path,
    *,
    base_model: str | None = None,
    dtype: str = "auto",
) -> Path:
    """Merge the LoRA adapter in `adapter_dir` into its base model and save the result to `output_dir`.

    Args:
        adapter_dir (`str` or `Path`):
            A folder saved by a `use_peft` run (`adapter_config.json`, `adapter_model.safetensors`).
        output_dir (`str` or `Path`):
            Where to write the merged model (safetensors), its processor and generation config.
        base_model (`str`, *optional*):
            The base model path or Hub id; defaults to `base_model_name_or_path` from `adapter_config.json`.
        dtype (`str`, *optional*, defaults to `"auto"`):
            Dtype to load the base model in and save the merged weights with (`auto` keeps the checkpoint's).

    Returns:
        `Path`: `output_dir`.
    """
    from peft import PeftModel

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise MedvlError(f"{config_path}: no LoRA adapter here; pass the output_dir of a `use_peft: true` run")
    if base_model is None:
        base_model, processor_source = adapter_base(adapter_dir)
    else:
        processor_source = adapter_dir if (adapter_dir / "processor_config.json").is_file() else base_model
    if not Path(base_model).exists() and Path(adapter_dir, base_model).exists():
        # An adapter saved with a path relative to its own folder rather than to the training run's cwd.
        base_model = str(Path(adapter_dir, base_model))
    # Local bases are recorded absolute so that the merged card and config resolve from any directory.
    base_model = str(Path(base_model).resolve()) if Path(base_model).exists() else base_model
    torch_dtype = parse_dtype(dtype)
    logger.info("merging %s into %s", adapter_dir, base_model)
    try:
        model = _load_base(base_model, torch_dtype, _trained_model_args(adapter_dir))
    except OSError as err:
        raise MedvlError(
            f"{config_path}: cannot load the base model {base_model!r} ({str(err).splitlines()[0]}); a relative base "
            "path only resolves from the training run's directory: pass --base-model PATH_OR_HUB_ID"
        ) from err
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.save_pretrained(output_dir)
    AutoProcessor.from_pretrained(processor_source).save_pretrained(output_dir)
    if (adapter_dir / "generation_config.json").is_file():
        from transformers import GenerationConfig

        GenerationConfig.from_pretrained(adapter_dir).save_pretrained(output_dir)
    from medvl_recipes.hub.model_card import write_model_card
    from medvl_recipes.prompts import PROMPT_FILE

    if (adapter_dir / PROMPT_FILE).is_file():
        shutil.copy(adapter_dir / PROMPT_FILE, output_dir / PROMPT_FILE)
    write_model_card(output_dir, stage="decoder", base_model=base_model)
    logger.info("wrote the merged model to %s (base %s)", output_dir, base_model)
    return output_dir


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medvl merge-adapter",
        description=(
            "Merge a LoRA adapter (the output_dir of `medvl train-decoder` with use_peft) into its base model and "
            "save a checkpoint that loads with from_pretrained, without PEFT."
        ),
    )
    parser.add_argument("--adapter", required=True, type=Path, help="Folder with adapter_config.json.")
    parser.add_argument("--output-dir", required=True, type=Path, help="Where to write the merged model.")
    parser.add_argument(
        "--base-model", default=None, help="Base model path or Hub id (default: the one the adapter records)."
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="Dtype of the merged weights (default: auto, the checkpoint's).",
    )
    args = parser.parse_args(argv)
    merge_adapter(args.adapter, args.output_dir, base_model=args.base_model, dtype=args.dtype)
    return 0
