# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Tiny, randomly initialised stand-ins for the real checkpoints, built offline from configs.

`medvl tiny-models --output-dir DIR` writes two checkpoint folders that load exactly like their Hub
counterparts, through the same `AutoProcessor` / `AutoModel*` calls the recipes use:

- `DIR/tiny-siglip`: `SiglipModel` + `SiglipProcessor`, a stand-in for `google/siglip-base-patch16-224`;
- `DIR/tiny-llama-3.2-vision`: `MllamaForConditionalGeneration` + `MllamaProcessor`, a stand-in for
  `meta-llama/Llama-3.2-11B-Vision-Instruct` (same special tokens, chat template layout and
  image-token-outside-the-vocabulary convention).

Their tokenizers are byte-level BPEs trained with `tokenizers` on the sample-data report grammar, so the
vocabulary is small but covers any text. The models are sized to visibly learn the sample data in a few
CPU minutes, not to be the smallest possible. Everything is deterministic given the seed.
"""

import argparse
import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessorPil,
    MllamaProcessor,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    SiglipProcessor,
)

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

SIGLIP_DIRNAME = "tiny-siglip"
MLLAMA_DIRNAME = "tiny-llama-3.2-vision"

# Same special tokens as the Llama 3.2 Vision tokenizer. `<|image|>` must come last: like the real model,
# its id equals `text_config.vocab_size`, i.e. it lies outside the language model's output vocabulary
# (Mllama's embedding table has 8 extra rows for it).
LLAMA_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|finetune_right_pad_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
]

# The Llama 3.2 Vision chat template's layout: a header per role, `<|image|>` where an image part stands,
# `<|eot_id|>` after every turn. (The real template also renders tool calls and a date line, which report
# generation never uses.)
LLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}"
    "{{- message['content'] | trim }}"
    "{%- else %}"
    "{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif content['type'] == 'text' %}{{- content['text'] | trim }}{%- endif %}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def _training_corpus(seed: int) -> list[str]:
    """Report texts to train the BPE on: the phantom report grammar plus common radiology wording."""
    from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, PROMPT_SETS
    from medvl_recipes.samples.phantoms import report_corpus

    corpus = report_corpus(n=2000, seed=seed)
    corpus += [DEFAULT_SYSTEM_PROMPT] + [prompt for prompts in PROMPT_SETS.values() for prompt in prompts]
    return corpus


def _train_bpe(corpus: list[str], vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    # Byte-level: any text (accents, symbols, de-identification tokens) stays representable.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def build_siglip_tokenizer(corpus: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A SigLIP-style tokenizer: `</s>` appended to every text and used as padding, like the original."""
    tokenizer = _train_bpe(corpus, vocab_size, special_tokens=["<pad>", "</s>", "<unk>"])
    eos_id = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="</s>",
        pad_token="</s>",
        unk_token="<unk>",
        model_max_length=64,
        model_input_names=["input_ids"],
    )


def build_llama_tokenizer(corpus: list[str], vocab_size: int = 3072) -> PreTrainedTokenizerFast:
    """A Llama-3-style tokenizer: `<|begin_of_text|>` prepended, Llama 3.2 Vision special tokens, the chat template."""
    tokenizer = _train_bpe(corpus, vocab_size - len(LLAMA_SPECIAL_TOKENS), special_tokens=[])
    tokenizer.add_special_tokens(LLAMA_SPECIAL_TOKENS)
    bos_id = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        model_max_length=131072,
        padding_side="right",
    )
    fast.chat_template = LLAMA_CHAT_TEMPLATE
    return fast


def build_tiny_siglip(output_dir: str | Path, *, seed: int = 0, corpus: list[str] | None = None) -> Path:
    """Write a tiny random `SiglipModel` and its `SiglipProcessor` to `output_dir`.

    Args:
        output_dir (`str` or `Path`):
            Folder to write; loadable with `AutoModel.from_pretrained` / `AutoProcessor.from_pretrained`.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the tokenizer corpus and the weight initialisation.
        corpus (`list[str]`, *optional*):
            Texts to train the tokenizer on; defaults to the sample-data report grammar.
    """
    output_dir = Path(output_dir)
    corpus = corpus if corpus is not None else _training_corpus(seed)
    tokenizer = build_siglip_tokenizer(corpus)
    image_processor = SiglipImageProcessorPil(
        size={"height": 64, "width": 64}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    config = SiglipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            # SigLIP has no BOS; pooling reads the last position, which max_length padding fills with `</s>`.
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.eos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "projection_size": 128,
        },
        vision_config={
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        },
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    # SigLIP's paper initialisation (t' = log 10, b = -10); `SiglipModel` starts both at 0.
    with torch.no_grad():
        model.logit_scale.fill_(torch.log(torch.tensor(10.0)))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(output_dir)
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(output_dir)
    return output_dir


# Starting value of the tanh gates on the cross-attention and its MLP (tanh(0.5) ~ 0.46), and the scale of the
# cross-attention and projector weights (std = scale / sqrt(fan_in)). See `_open_cross_attention`.
CROSS_ATTENTION_GATE_INIT = 0.5
CROSS_ATTENTION_INIT_SCALE = 0.5


def _open_cross_attention(model: MllamaForConditionalGeneration) -> None:
    """Let the image reach the language model from the first step.

    Llama 3.2 Vision starts its cross-attention gates at 0 so that adding vision leaves a *pretrained* language model
    unchanged. A random tiny model has nothing to protect, and a zero gate blocks every gradient to the cross-attention
    weights, the projector and the vision tower, so on the sample data the model learned the report style and wrote
    the same report for every image. Opening the gates and giving the image path unit-order weights (instead of
    std 0.02 through three stacked layers) makes the image signal large enough to be learned in a smoke run; larger
    values (gate 1, scale 1) swamp the untrained language model and training stalls.
    """
    with torch.no_grad():
        projector = model.model.multi_modal_projector
        modules = [projector]
        for layer in model.model.language_model.layers:
            if hasattr(layer, "cross_attn_attn_gate"):
                layer.cross_attn_attn_gate.fill_(CROSS_ATTENTION_GATE_INIT)
                layer.cross_attn_mlp_gate.fill_(CROSS_ATTENTION_GATE_INIT)
                attention = layer.cross_attn
                modules += [attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj]
        for module in modules:
            module.weight.normal_(0.0, CROSS_ATTENTION_INIT_SCALE / module.weight.shape[1] ** 0.5)


def build_tiny_mllama(
    output_dir: str | Path, *, seed: int = 0, corpus: list[str] | None = None, max_tiles: int = 1
) -> Path:
    """Write a tiny random `MllamaForConditionalGeneration` and its `MllamaProcessor` to `output_dir`.

    The vision tower keeps Llama 3.2 Vision's structure (tiles, aspect-ratio embeddings, local + global
    encoders, intermediate-layer features) and the language model keeps its interleaved cross-attention
    layers, at a size a CPU trains in minutes.

    One 112-px tile is the default: with four, each of the 8x8 patches of a tile sees a quarter of the image, and a
    study-type probe of the random tower on the sample data reached 0.389 accuracy after 80 steps in 35 s, against
    0.444 in 6 s with one tile (0.625 after 240 steps; docs/benchmarks.md, "Decoder grounding"). `max_tiles=4` keeps the real model's
    tiling (its `supported_aspect_ratios` are the transformers default for four tiles).

    Args:
        output_dir (`str` or `Path`):
            Folder to write; loadable with `AutoModelForImageTextToText.from_pretrained` and
            `AutoProcessor.from_pretrained`.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the tokenizer corpus and the weight initialisation.
        corpus (`list[str]`, *optional*):
            Texts to train the tokenizer on; defaults to the sample-data report grammar.
        max_tiles (`int`, *optional*, defaults to `1`):
            Tiles per image (`vision_config.max_num_tiles` and the processor's `max_image_tiles`): 1 or 4.
    """
    if max_tiles not in (1, 4):
        raise MedvlError(f"max_tiles must be 1 or 4, got {max_tiles}")
    output_dir = Path(output_dir)
    corpus = corpus if corpus is not None else _training_corpus(seed)
    tokenizer = build_llama_tokenizer(corpus)
    image_token_id = tokenizer.convert_tokens_to_ids("<|image|>")
    tile_size = 112
    vision_hidden, intermediate_layers = 64, [1, 3]
    config = MllamaConfig(
        vision_config={
            "hidden_size": vision_hidden,
            "intermediate_size": 4 * vision_hidden,
            "num_hidden_layers": 4,
            "num_global_layers": 1,
            "attention_heads": 4,
            "image_size": tile_size,
            "patch_size": 14,
            "max_num_tiles": max_tiles,
            # Mllama's config lists the tile layouts for 4 tiles by default and requires them for any other count.
            **({"supported_aspect_ratios": [[1, 1]]} if max_tiles == 1 else {}),
            "intermediate_layers_indices": intermediate_layers,
            # The projector input is the final hidden state concatenated with the intermediate ones.
            "vision_output_dim": vision_hidden * (len(intermediate_layers) + 1),
        },
        text_config={
            "vocab_size": image_token_id,
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 4,
            "cross_attention_layers": [1, 3],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": [
                tokenizer.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")
            ],
            "pad_token_id": tokenizer.pad_token_id,
            "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
        },
        image_token_index=image_token_id,
    )
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    _open_cross_attention(model)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(output_dir)
    image_processor = MllamaImageProcessorPil(
        size={"height": tile_size, "width": tile_size}, max_image_tiles=max_tiles
    )
    MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=LLAMA_CHAT_TEMPLATE
    ).save_pretrained(output_dir)
    return output_dir


def build_tiny_models(output_dir: str | Path, *, seed: int = 0, max_tiles: int = 1) -> dict[str, Path]:
    """Write both tiny checkpoints under `output_dir` and return `{"siglip": path, "mllama": path}`.

    Args:
        output_dir (`str` or `Path`):
            Parent folder; gets `tiny-siglip/` and `tiny-llama-3.2-vision/`.
        seed (`int`, *optional*, defaults to `0`):
            Same seed, same bytes.
        max_tiles (`int`, *optional*, defaults to `1`):
            Tiles per image of the tiny Mllama (see `build_tiny_mllama`).
    """
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MedvlError(
            f"cannot create output directory {output_dir}: {err.strerror}; choose a writable path"
        ) from err
    corpus = _training_corpus(seed)
    paths = {
        "siglip": build_tiny_siglip(output_dir / SIGLIP_DIRNAME, seed=seed, corpus=corpus),
        "mllama": build_tiny_mllama(output_dir / MLLAMA_DIRNAME, seed=seed, corpus=corpus, max_tiles=max_tiles),
    }
    for name, path in paths.items():
        logger.info("wrote tiny %s to %s", name, path)
    return paths


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medvl tiny-models",
        description=(
            "Build tiny, randomly initialised SigLIP and Llama-3.2-Vision checkpoints (with locally trained "
            "tokenizers) that load with from_pretrained exactly like the Hub models. Used by the smoke "
            "recipes, the tests and `make quickstart`."
        ),
    )
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="Folder to write tiny-siglip/ and tiny-llama-3.2-vision/ into."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed for the tokenizer corpus and weights (default: 0).")
    parser.add_argument(
        "--max-tiles",
        type=int,
        choices=(1, 4),
        default=1,
        help="Tiles per image of the tiny Llama-3.2-Vision: 1 (default; learns the sample data fastest) or 4 (the "
        "real model's tiling).",
    )
    args = parser.parse_args(argv)
    paths = build_tiny_models(args.output_dir, seed=args.seed, max_tiles=args.max_tiles)
    for name, path in paths.items():
        print_path = path.resolve()
        logger.info("%s: %s", name, print_path)
    return 0
