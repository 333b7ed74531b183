# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Encoder inference throughput: PyTorch vs onnxruntime (fp32) vs onnxruntime int8 (`medvl export onnx --quantize`).

Same images and texts, same batch, same thread count, preprocessing included for all three (the processor is the
same); embeddings/s is measured over `--batches` batches after one warm-up batch. Prints markdown table rows for
docs/benchmarks.md.

    python bench/bench_export.py                 # the tiny SigLIP
    python bench/bench_export.py --model base    # a random siglip-base-patch16-224-sized model (224 px, 12 layers)
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from transformers import AutoProcessor, SiglipConfig, SiglipModel

from medvl_recipes.export import OnnxEncoder, export_onnx
from medvl_recipes.retrieval import TorchEncoder
from medvl_recipes.samples.tiny_models import build_tiny_models


def make_inputs(n: int) -> tuple[list, list[str]]:
    images, texts = [], []
    for i in range(n):
        image = Image.new("RGB", (256, 256), color=(20 + i % 50, 30, 40))
        ImageDraw.Draw(image).ellipse((40 + i % 60, 60, 120 + i % 60, 140), fill=(220, 220, 220))
        images.append(image)
        texts.append(f"A nodule of {5 + i % 20} mm in the {'left' if i % 2 else 'right'} lung. No effusion.")
    return images, texts


def build_model(work: Path, size: str) -> Path:
    tiny = build_tiny_models(work / "tiny", seed=0)["siglip"]
    if size == "tiny":
        return tiny
    torch.manual_seed(0)
    # SiglipConfig's defaults are siglip-base-patch16-224's architecture; the tiny tokenizer's ids fit its vocabulary.
    model_dir = work / "siglip-base-random"
    SiglipModel(SiglipConfig()).save_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(tiny)
    processor.image_processor.size = {"height": 224, "width": 224}
    processor.save_pretrained(model_dir)
    return model_dir


def throughput(encode, inputs, batch_size: int, batches: int) -> float:
    encode(inputs[:batch_size], batch_size=batch_size)  # warm-up
    chunk = inputs[: batch_size * batches]
    start = time.perf_counter()
    encode(chunk, batch_size=batch_size)
    return len(chunk) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        model_dir = build_model(work, args.model)
        start = time.perf_counter()
        export_onnx(str(model_dir), work / "onnx-export", quantize=True)
        export_s = time.perf_counter() - start
        images, texts = make_inputs(args.batch_size * args.batches)
        backends = {
            "PyTorch fp32": TorchEncoder(str(model_dir)),
            "onnxruntime fp32": OnnxEncoder(work / "onnx-export", num_threads=args.threads),
            "onnxruntime int8": OnnxEncoder(work / "onnx-export", quantized=True, num_threads=args.threads),
        }
        rows, base = [], None
        for name, encoder in backends.items():
            image_rate = throughput(encoder.encode_images, images, args.batch_size, args.batches)
            text_rate = throughput(encoder.encode_texts, texts, args.batch_size, args.batches)
            base = base or (image_rate, text_rate)
            rows.append(
                f"| {args.model} | {name} | {args.batch_size} | {image_rate:.1f} ({image_rate / base[0]:.2f}x) "
                f"| {text_rate:.1f} ({text_rate / base[1]:.2f}x) |"
            )
        print(f"export (fp32 + int8) took {export_s:.1f} s; {args.threads} threads")
        print("| model | backend | batch | image embeddings/s (vs PyTorch) | text embeddings/s (vs PyTorch) |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
