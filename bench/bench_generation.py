# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Decoder generation throughput (new tokens/s) on the tiny Mllama: attention implementation x batch size x dtype.

Each configuration loads the model with `attn_implementation` (`eager` or `sdpa`) and `dtype`, builds the inputs
exactly as `generation.generate_reports` does (chat template, left padding, one image per report) and times greedy
`generate` with `min_new_tokens = max_new_tokens`, so every configuration writes the same number of tokens. Reports
the median of `--repeats` timed runs after one warm-up run. Prints a markdown table for docs/benchmarks.md.

    python bench/bench_generation.py                  # builds the tiny model in a temp dir
    python bench/bench_generation.py --model outputs/quickstart/decoder --new-tokens 64 --threads 1
"""

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from medvl_recipes.generation import _model_inputs, _pad_token_id  # noqa: E402


def images(count: int, seed: int = 0) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(count, 96, 112, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return [Image.fromarray(p) for p in pixels]


@torch.inference_mode()
def tokens_per_second(model, processor, batch_size: int, new_tokens: int, repeats: int) -> tuple[float, float]:
    """`(new tokens/s, seconds per generate call)` of greedy generation for `batch_size` images."""
    inputs = _model_inputs(model, processor, images(batch_size), None, None)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    kwargs["pad_token_id"] = _pad_token_id(processor)
    model.generate(**inputs, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.generate(**inputs, **kwargs)
        times.append(time.perf_counter() - start)
        assert out.shape[1] - inputs["input_ids"].shape[1] == new_tokens
    seconds = statistics.median(times)
    return batch_size * new_tokens / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A decoder folder (default: build the tiny model).")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--attn", default="eager,sdpa")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = args.model
    if model_dir is None:
        from medvl_recipes.samples.tiny_models import build_tiny_models

        model_dir = build_tiny_models(Path(tempfile.mkdtemp(prefix="bench-gen-")), seed=0)["mllama"]
    processor = AutoProcessor.from_pretrained(model_dir)
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, {args.new_tokens} new tokens, median of {args.repeats}\n"
    )
    print("| attention | dtype | batch | s/generate | new tokens/s | vs eager fp32 same batch |")
    print("|---|---|---|---|---|---|")
    baseline = {}
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        for dtype in args.dtypes.split(","):
            for attn in args.attn.split(","):
                model = AutoModelForImageTextToText.from_pretrained(
                    model_dir, attn_implementation=attn, dtype=getattr(torch, dtype)
                ).eval()
                rate, seconds = tokens_per_second(model, processor, batch_size, args.new_tokens, args.repeats)
                baseline.setdefault(batch_size, rate)
                print(
                    f"| {attn} | {dtype} | {batch_size} | {seconds:.3f} | {rate:.0f} | "
                    f"{rate / baseline[batch_size]:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
