# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Peak GPU memory and training throughput of the real-size Llama 3.2 11B Vision for the decoder recipes.

Builds the Llama-3.2-11B-Vision architecture from its config (written out below, nothing is downloaded) with random
bf16 weights directly on the GPU, then runs a few optimizer steps at batch 1 with one 4-tile image (560 px tiles)
and a 512-token chat for each recipe that fits one GPU:

- `lora`: LoRA r=16 on the language model's self-attention + MLP (`default_lora_target_modules`), vision frozen;
- `cross_attn_only`: the cross-attention layers and the projector trained in full (`freeze_language_model`).

Gradient checkpointing (`use_reentrant=False`) and SDPA attention, as in the recipes. Prints a markdown table and
writes `$OUT/gpu_decoder.json` when `OUT` is set. Needs torch, transformers and peft; 50 s on one H100.

    python bench/gpu_decoder.py            # on the GPU machine
    python bench/gpu_decoder.py --tiny     # a scaled-down CPU dry run of the script itself
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from medvl_recipes.modeling import default_lora_target_modules, freeze_parameters  # noqa: E402


# meta-llama/Llama-3.2-11B-Vision(-Instruct) config.json, as published.
LLAMA_32_11B_VISION = {
    "image_token_index": 128256,
    "vision_config": {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "attention_heads": 16,
        "num_channels": 3,
        "image_size": 560,
        "patch_size": 14,
        "max_num_tiles": 4,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "vision_output_dim": 7680,
        "norm_eps": 1e-5,
        "hidden_act": "gelu",
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    },
    "text_config": {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "pad_token_id": 128004,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    },
}


def tiny_config() -> dict:
    config = json.loads(json.dumps(LLAMA_32_11B_VISION))
    config["image_token_index"] = 512
    config["vision_config"].update(
        hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_global_layers=1, attention_heads=2,
        image_size=56, intermediate_layers_indices=[1, 3], vision_output_dim=96,
    )  # fmt: skip
    config["text_config"].update(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, cross_attention_layers=[1, 3], bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )  # fmt: skip
    return config


def make_batch(config: MllamaConfig, seq_len: int, device, dtype) -> dict:
    """One sample: a 2x2-tile image, `seq_len` tokens, the image token at 40, loss on the last 60%."""
    vision, text = config.vision_config, config.text_config
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, text.vocab_size, (1, seq_len), generator=generator)
    image_pos = 40
    input_ids[0, image_pos] = config.image_token_index
    labels = input_ids.clone()
    labels[0, : int(seq_len * 0.4)] = -100
    labels[labels == config.image_token_index] = -100  # outside the output vocabulary (see VisionSFTCollator)
    tiles = vision.max_num_tiles
    cross_attention_mask = torch.zeros(1, seq_len, 1, tiles, dtype=torch.long)
    cross_attention_mask[0, image_pos:, 0, :] = 1
    aspect_ratio_id = vision.supported_aspect_ratios.index([2, 2]) + 1
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": torch.ones_like(input_ids).to(device),
        "labels": labels.to(device),
        "pixel_values": torch.randn(1, 1, tiles, 3, vision.image_size, vision.image_size, generator=generator)
        .to(dtype)
        .to(device),
        "aspect_ratio_ids": torch.tensor([[aspect_ratio_id]], device=device),
        "aspect_ratio_mask": torch.ones(1, 1, tiles, dtype=torch.long, device=device),
        "cross_attention_mask": cross_attention_mask.to(device),
    }


def run_steps(model, batch, steps: int, warmup: int) -> dict:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    cuda = batch["input_ids"].is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(float(loss))
    step_s = sum(times) / len(times)
    result = {
        "trainable_params": sum(p.numel() for p in params),
        "step_s": step_s,
        "tokens_per_s": batch["input_ids"].numel() / step_s,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan"),
        "losses": losses,
    }
    del optimizer
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Scaled-down config on CPU (checks the script).")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else "cuda")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    config = MllamaConfig(**(tiny_config() if args.tiny else LLAMA_32_11B_VISION))
    config._attn_implementation = "sdpa"

    start = time.perf_counter()
    # Random weights, created directly on the GPU in bf16: no 44 GB fp32 copy on the host.
    with device:
        model = MllamaForConditionalGeneration._from_config(config, dtype=dtype)
    build_s = time.perf_counter() - start
    total = sum(p.numel() for p in model.parameters())
    print(f"built {total / 1e9:.2f}B parameters on {device} in {build_s:.0f} s", flush=True)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    batch = make_batch(config, args.seq_len, device, dtype)

    results = {}
    # Cross-attention only first: LoRA wraps the model in place.
    for param in model.parameters():
        param.requires_grad_(True)
    freeze_parameters(model, vision_tower=True, language_model=True)
    results["cross_attn_only"] = run_steps(model, batch, args.steps, args.warmup)
    print("cross_attn_only", results["cross_attn_only"], flush=True)

    from peft import LoraConfig, get_peft_model

    for param in model.parameters():
        param.requires_grad_(False)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=default_lora_target_modules(model))
    model = get_peft_model(model, lora)
    model.enable_input_require_grads()
    results["lora"] = run_steps(model, batch, args.steps, args.warmup)
    print("lora", results["lora"], flush=True)

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (tiny config)"
    print(f"\nLlama 3.2 11B Vision architecture, random bf16 weights, {name}, batch 1, 1 image x 4 tiles of "
          f"{config.vision_config.image_size} px, {args.seq_len} tokens, gradient checkpointing, AdamW, "
          f"mean of {args.steps} steps after {args.warmup} warm-up\n")  # fmt: skip
    print("| recipe | trainable params | peak GPU memory (GB) | step (s) | tokens/s |")
    print("|---|---|---|---|---|")
    for recipe, r in results.items():
        print(
            f"| {recipe} | {r['trainable_params'] / 1e6:.1f}M | {r['peak_memory_gb']:.1f} | {r['step_s']:.3f} "
            f"| {r['tokens_per_s']:.0f} |"
        )
    payload = {
        "device": name,
        "total_params": total,
        "seq_len": args.seq_len,
        "tiles": config.vision_config.max_num_tiles,
        "tile_px": config.vision_config.image_size,
        "results": results,
    }
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_decoder.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
