# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""One loader per model kind, and the checkpoint folder they read and write.

- Encoder (SigLIP dual encoder): `get_encoder` for training, `load_encoder` for inference.
- Decoder (Llama 3.2 Vision / Mllama, or any `AutoModelForImageTextToText`): `get_processor` and `get_decoder` for
  training (dtype, QLoRA, LoRA, freezing), `load_decoder` for inference (full, merged or LoRA adapter).
- `parse_dtype`, the one parser of dtype options; `check_checkpoint`, `adapter_base` and `save_checkpoint`, the
  checkpoint folder (`save_pretrained` output plus processor, `run_args.json`, optional LoRA adapter);
  `full_weights_on_save`, what makes an FSDP run's final `save_model` write weights `from_pretrained` reads.
"""

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
)

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

# The language model's self-attention and MLP projections, found under the module that `get_decoder()` returns so
# that they can never match the vision tower (whose layers also have `self_attn.q_proj` and an MLP) and so that
# another image-text family (Qwen2-VL, LLaVA, ...) gets its own language model's names, not Mllama's.
_LORA_PROJECTIONS = r"(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"


def default_lora_target_modules(model: PreTrainedModel) -> str:
    """A PEFT regex for the self-attention and MLP projections of `model`'s language model layers only.

    Args:
        model (`PreTrainedModel`): An image-text-to-text model whose `get_decoder()` is its language model.
    """
    language_model = model.get_decoder()
    prefix = next(name for name, module in model.named_modules() if module is language_model)
    return rf"{re.escape(prefix)}\.layers\.\d+\.{_LORA_PROJECTIONS}"


def get_processor(model_args) -> ProcessorMixin:
    """Load the processor of `model_args.model_name_or_path`, with `max_image_tiles` applied when set.

    Args:
        model_args (`DecoderModelConfig`):
            Reads `model_name_or_path`, `model_revision` and `max_image_tiles`.
    """
    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
    )
    max_tiles = getattr(model_args, "max_image_tiles", None)
    if max_tiles:
        model_tiles = AutoConfig.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision
        ).vision_config.max_num_tiles
        # The processor pads every image to `max_image_tiles` tiles and Mllama's tile position embeddings are
        # sized for `max_num_tiles`: any other count fails deep inside the vision tower with a reshape error.
        if max_tiles != model_tiles:
            raise MedvlError(
                f"max_image_tiles={max_tiles}, but {model_args.model_name_or_path} takes exactly {model_tiles} "
                f"tile(s) per image (vision_config.max_num_tiles); drop max_image_tiles, and use max_image_side to make "
                "images use fewer of those tiles"
            )
        processor.image_processor.max_image_tiles = max_tiles
    return processor


def parse_dtype(name: str | torch.dtype | None, *, device: str | None = None) -> str | torch.dtype | None:
    """The dtype option of every command and recipe: `auto`, `bfloat16`, `float16`, `float32` (or a `torch.dtype`).

    Args:
        name (`str`, `torch.dtype` or `None`): The option value.
        device (`str`, *optional*): For inference: with a device, `auto` means bfloat16 on CUDA and float32
            elsewhere. Without one, `auto` (and `None`) are passed on to `from_pretrained`, which then keeps the
            checkpoint's dtype.
    """
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        if device is None:
            return name
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if not isinstance(getattr(torch, str(name), None), torch.dtype):
        raise MedvlError(f"dtype={name!r} is not a torch dtype; use auto, bfloat16, float16 or float32")
    return getattr(torch, name)


def resolve_device(name: str = "auto") -> str:
    """`auto` is `cuda` when a GPU is visible, else `cpu`; any other name is returned as is."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def check_checkpoint(path: str, kind: str) -> None:
    """Fail early, with a clear message, on a local checkpoint folder that cannot be loaded.

    Args:
        path (`str`): A folder or a Hub id (Hub ids are not checked here; a missing local-looking path is).
        kind (`str`): `"encoder"` or `"decoder"`, for the message.
    """
    folder = Path(path)
    if not folder.exists():
        if path.startswith((".", "/", "~")) or path.count("/") > 1:
            raise MedvlError(f"--{kind} {path}: no such folder; pass a checkpoint folder or a Hub id")
        return
    if (folder / "adapter_config.json").is_file():
        return  # a LoRA adapter: the base model and, if absent here, its processor are loaded from the base
    if not (folder / "config.json").is_file():
        raise MedvlError(f"--{kind} {path}: no config.json; is this a checkpoint folder (save_pretrained output)?")
    processor_files = ("processor_config.json", "preprocessor_config.json")
    if not any((folder / name).is_file() for name in processor_files):
        raise MedvlError(
            f"--{kind} {path}: no processor (preprocessor_config.json) next to the weights; "
            f"save it with processor.save_pretrained({str(path)!r}) or point --{kind} at the training output folder"
        )


def check_encoder_model(model, max_length: int, model_name: str) -> None:
    """Raise a `MedvlError` if `model` is not a SigLIP-style dual encoder or `max_length` exceeds its text positions.

    Args:
        model (`PreTrainedModel`):
            The loaded model.
        max_length (`int`):
            The configured text length in tokens.
        model_name (`str`):
            How to name the model in the message.
    """
    if not all(hasattr(model, attr) for attr in ("logit_scale", "logit_bias", "get_image_features")):
        raise MedvlError(
            f"{model_name} ({type(model).__name__}) is not a SigLIP dual encoder with logit_scale/logit_bias; "
            "use a SiglipModel checkpoint such as google/siglip-base-patch16-224"
        )
    limit = model.config.text_config.max_position_embeddings
    if max_length > limit:
        raise MedvlError(
            f"max_length={max_length} exceeds the text tower's {limit} positions of {model_name}; set max_length <= {limit}"
        )


def _modifiable(params: list[torch.nn.Parameter]):
    """A context in which `params` can be written in place, also under DeepSpeed ZeRO-3.

    With ZeRO-3 (`zero3_init_flag`) `from_pretrained` partitions every parameter as it loads, so an in-place write
    to one is lost (its `data` is empty). `deepspeed.zero.GatheredParameters(modifier_rank=0)` gathers them, and
    on exit broadcasts rank 0's values and partitions them again.
    """
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not params or not is_deepspeed_zero3_enabled():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def get_encoder(model_args, script_args) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load the encoder and its processor for training: dtype, checks, re-initialised logit scale/bias, frozen towers.

    Args:
        model_args (`EncoderModelConfig`):
            `model_name_or_path`, `model_revision`, `dtype`, `attn_implementation`, `init_logit_scale`,
            `init_logit_bias`, `freeze_vision_tower`, `freeze_text_tower`.
        script_args (`EncoderScriptArguments`):
            `image_size` (saved with the processor, so inference resizes like training did) and `max_length`.
    """
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    if script_args.image_size is not None:
        processor.image_processor.size = {"height": script_args.image_size, "width": script_args.image_size}
    model = AutoModel.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=parse_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
    )
    check_encoder_model(model, script_args.max_length, model_args.model_name_or_path)
    inits = [(model.logit_scale, model_args.init_logit_scale), (model.logit_bias, model_args.init_logit_bias)]
    inits = [(param, value) for param, value in inits if value is not None]
    with _modifiable([param for param, _ in inits]), torch.no_grad():
        for param, value in inits:
            param.fill_(value)
    for tower, frozen in (
        ("vision_model", model_args.freeze_vision_tower),
        ("text_model", model_args.freeze_text_tower),
    ):
        if frozen:
            getattr(model, tower).requires_grad_(False)
    return model, processor


def load_encoder(
    name_or_path: str, *, dtype: str | torch.dtype = "auto", device: str = "cpu"
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a trained encoder and its processor for inference, from a folder or a Hub id.

    Args:
        name_or_path (`str`): A checkpoint folder or Hub id.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`): See `parse_dtype`.
        device (`str`, *optional*, defaults to `"cpu"`): Where to put the model.

    Returns:
        `(model, processor)`, the model in eval mode.
    """
    check_checkpoint(name_or_path, "encoder")
    try:
        processor = AutoProcessor.from_pretrained(name_or_path)
        model = AutoModel.from_pretrained(name_or_path, dtype=parse_dtype(dtype, device=device))
    except OSError as err:
        raise MedvlError(f"--encoder {name_or_path}: cannot load ({str(err).splitlines()[0]})") from err
    return model.to(device).eval(), processor


def get_lora_config(model_args, model: PreTrainedModel):
    """A PEFT `LoraConfig` from `model_args`; targets `default_lora_target_modules(model)` unless `lora_target_modules`.

    Args:
        model_args (`DecoderModelConfig`):
            Reads `lora_r`, `lora_alpha`, `lora_dropout`, `lora_target_modules`, `lora_modules_to_save`,
            `use_rslora` and `use_dora`.
        model (`PreTrainedModel`):
            The model the adapters go on (its language model decides the default targets).
    """
    from peft import LoraConfig

    target_modules = model_args.lora_target_modules
    if target_modules is None:
        target_modules = default_lora_target_modules(model)
    elif len(target_modules) == 1 and not target_modules[0].isidentifier():
        # A single regex given on the command line or in YAML.
        target_modules = target_modules[0]
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=target_modules,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        task_type="CAUSAL_LM",
    )


def freeze_parameters(model: PreTrainedModel, *, vision_tower: bool, language_model: bool) -> None:
    """Set `requires_grad=False` on the vision tower and/or the language model except its cross-attention layers.

    Args:
        model (`PreTrainedModel`):
            An `MllamaForConditionalGeneration`.
        vision_tower (`bool`):
            Freeze `model.vision_model`.
        language_model (`bool`):
            Freeze the language model (embeddings, self-attention layers, final norm, `lm_head`) but not the
            layers listed in `text_config.cross_attention_layers`, which hold the cross-attention to the image.
    """
    cross_layers = set(model.config.get_text_config().cross_attention_layers or [])
    cross_pattern = re.compile(r"language_model\.layers\.(\d+)\.")
    for name, param in model.named_parameters():
        if vision_tower and "vision_model." in name:
            param.requires_grad_(False)
        if language_model and ("language_model." in name or name.startswith("lm_head")):
            match = cross_pattern.search(name)
            if match is None or int(match.group(1)) not in cross_layers:
                param.requires_grad_(False)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Return `(trainable, total)` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def _bitsandbytes_available() -> bool:
    from transformers.utils import is_bitsandbytes_available

    return is_bitsandbytes_available()


def get_decoder(model_args, training_args=None) -> PreTrainedModel:
    """Load the decoder for training: dtype, optional 4-bit QLoRA, freezing, optional LoRA adapters.

    Args:
        model_args (`DecoderModelConfig`):
            Model arguments (`model_name_or_path`, `dtype`, `attn_implementation`, `load_in_4bit`, `use_peft`,
            the `lora_*` fields, `freeze_vision_tower`, `freeze_language_model`).
        training_args (`SFTConfig`, *optional*):
            Reads `activation_checkpointing` (and its kwargs) to prepare a 4-bit model.

    Returns:
        `PreTrainedModel` or `peft.PeftModel`.
    """
    if model_args.load_in_8bit:
        raise MedvlError("load_in_8bit is not supported by the decoder recipes; use load_in_4bit (QLoRA)")
    if model_args.load_in_4bit and not model_args.use_peft:
        raise MedvlError("load_in_4bit (QLoRA) trains LoRA adapters on a frozen 4-bit model; set use_peft: true")
    if model_args.load_in_4bit and not _bitsandbytes_available():
        raise MedvlError(
            "load_in_4bit (QLoRA) needs bitsandbytes (CUDA, or its CPU backend): pip install bitsandbytes, "
            "or use config_lora.yaml"
        )
    if model_args.use_peft and model_args.freeze_language_model:
        raise MedvlError(
            "freeze_language_model trains the cross-attention layers in full and use_peft trains adapters; choose "
            "one (for LoRA on cross-attention, set lora_target_modules to a regex such as '.*cross_attn\\..*_proj')"
        )
    kwargs = {
        "revision": model_args.model_revision,
        "dtype": parse_dtype(model_args.dtype),
    }
    if model_args.attn_implementation is not None:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if model_args.load_in_4bit:
        from accelerate import PartialState
        from trl import get_quantization_config

        kwargs["quantization_config"] = get_quantization_config(model_args)
        # A quantized model cannot be moved after loading: each process loads it where it trains (its own GPU, or
        # the CPU with `use_cpu`), the device the training arguments resolved.
        device = training_args.device if training_args is not None else PartialState().device
        kwargs["device_map"] = {"": device}
    model = AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs)
    if getattr(model.config, "model_type", None) != "mllama":
        logger.warning(
            "model type %r is not mllama; the recipes are tested on Llama 3.2 Vision", model.config.model_type
        )

    if model_args.use_peft:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if model_args.load_in_4bit:
            gradient_checkpointing = bool(training_args and training_args.activation_checkpointing)
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=gradient_checkpointing,
                gradient_checkpointing_kwargs=getattr(training_args, "activation_checkpointing_kwargs", None),
            )
        model = get_peft_model(model, get_lora_config(model_args, model))
    else:
        freeze_parameters(
            model, vision_tower=model_args.freeze_vision_tower, language_model=model_args.freeze_language_model
        )
    trainable, total = count_parameters(model)
    logger.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return model


_FULL_WEIGHT_FILES = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "config.json")
_ADAPTER_FILES = ("adapter_model.*", "adapter_config.json")


def full_weights_on_save(trainer) -> None:
    """Make the next `trainer.save_model` write the full weights (`model.safetensors`) under FSDP; else a no-op.

    `accelerate_configs/fsdp.yaml` keeps `fsdp_state_dict_type: SHARDED_STATE_DICT`, so each `checkpoint-N` holds
    every rank's shard of the model and optimizer (`pytorch_model_fsdp_0/`, `optimizer_0/`, written with
    `torch.distributed.checkpoint` by accelerate's `save_fsdp_model`/`save_fsdp_optimizer`) and
    `--resume_from_checkpoint` reads them back with `load_fsdp_model`.
    With that type `Trainer.save_model` writes no weights at all (transformers 5.24 `Trainer.save_model` saves under
    FSDP only `if "FULL_STATE_DICT" in str(fsdp_plugin.state_dict_type)`), so for the final save the type becomes
    `FULL_STATE_DICT`, as transformers' FSDP guide does (docs/source/en/fsdp.md): `accelerator.get_state_dict` then
    gathers the full state dict (FSDP2: `get_model_state_dict(full_state_dict=True, cpu_offload=True)`) and rank 0
    writes it with `save_pretrained`. Call it after `train()`: a later checkpoint would be gathered on rank 0 too.
    """
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")


def save_checkpoint(trainer, processor, output_dir: str | Path, *, run_args: dict[str, Any]) -> Path:
    """Save what a decoder run produced: weights, processor, generation config and all the arguments.

    LoRA runs save the adapter (`adapter_model.safetensors`, `adapter_config.json`), others the full weights
    (`model.safetensors` shards; under FSDP gathered from the ranks' shards, see `full_weights_on_save`).
    `run_args.json` records the script, training and model arguments; the trainer's own `training_args.bin` and
    the `trainer_state.json` log history are written too. Weights of the other kind left in `output_dir` by an
    earlier run are deleted first: `load_decoder` prefers an `adapter_config.json`, so a
    stale adapter would otherwise shadow a later full run.

    Args:
        trainer (`transformers.Trainer`):
            The trainer after `train()`.
        processor (`ProcessorMixin`):
            Saved next to the weights so the folder loads with `AutoProcessor.from_pretrained`.
        output_dir (`str` or `Path`):
            Target folder.
        run_args (`dict`):
            `{"script_args": ..., "training_args": ..., "model_args": ...}`, JSON-serialisable.
    """
    output_dir = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_world_process_zero() and output_dir.is_dir():
        stale = _FULL_WEIGHT_FILES if hasattr(model, "peft_config") else _ADAPTER_FILES
        for path in (p for pattern in stale for p in output_dir.glob(pattern)):
            logger.warning("Deleting %s, left by an earlier run of another kind", path)
            path.unlink()
    full_weights_on_save(trainer)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        processor.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        # The loss curve and the callbacks' statistics, also when no intermediate checkpoint was saved.
        trainer.state.save_to_json(str(output_dir / "trainer_state.json"))
        (output_dir / "run_args.json").write_text(json.dumps(run_args, indent=2, default=str) + "\n")
    return output_dir


def adapter_base(adapter_dir: str | Path) -> tuple[str, str] | None:
    """`(base model, processor source)` of a LoRA adapter folder, or `None` when `adapter_dir` holds a full model.

    The processor comes from the adapter folder when the run saved one there, else from the base model.

    Args:
        adapter_dir (`str` or `Path`): A checkpoint folder.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        return None
    base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if not base:
        raise MedvlError(f"{config_path}: no base_model_name_or_path; say which base model the adapter belongs to")
    processor_source = str(adapter_dir) if (adapter_dir / "processor_config.json").is_file() else base
    return base, processor_source


def load_decoder(
    name_or_path: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a report model for inference, full/merged checkpoint or LoRA adapter, local folder or Hub id.

    Args:
        name_or_path (`str`): A folder or Hub id.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`): See `parse_dtype`.
        device (`str`, *optional*): Where to put the model; left where `from_pretrained` puts it when unset.

    Returns:
        `(model, processor)`, the model in eval mode.
    """
    check_checkpoint(name_or_path, "decoder")
    dtype = parse_dtype(dtype, device=device)
    try:
        if not Path(name_or_path).exists():
            from huggingface_hub import snapshot_download

            # A local snapshot tells an adapter repo from a full model before anything is loaded.
            name_or_path = snapshot_download(name_or_path)
        adapter = adapter_base(name_or_path)
        if adapter is None:
            model = AutoModelForImageTextToText.from_pretrained(name_or_path, dtype=dtype)
            processor = AutoProcessor.from_pretrained(name_or_path)
        else:
            from peft import PeftModel

            base, processor_source = adapter
            base_model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype)
            model = PeftModel.from_pretrained(base_model, name_or_path)
            processor = AutoProcessor.from_pretrained(processor_source)
    except OSError as err:
        raise MedvlError(f"--decoder {name_or_path}: cannot load ({str(err).splitlines()[0]})") from err
    if device is not None:
        model = model.to(device)
    return model.eval(), processor
