# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""CPU benchmark of the decoder stage on the tiny Mllama: our collator vs TRL's, batched vs one-by-one generation.

Rows (markdown, for docs/benchmarks.md):
- collate time and full training step time (collate + forward + backward + AdamW) per batch, and the share of
  tokens that carry a loss, for `VisionSFTCollator` and TRL's `DataCollatorForVisionLanguageModeling`. TRL's
  collator labels the `<|image|>` token, whose id lies outside Mllama's output vocabulary, so a training step with
  its batches fails (cross-entropy target out of bounds); its step time is measured with that one label masked
  by hand.
- generation time per report with `generate_reports` at batch size 8 vs 1.

    python bench/bench_decoder.py                   # builds the tiny model and fixture data in a temp dir
    python bench/bench_decoder.py --data outputs/quickstart/chat --model outputs/quickstart/models/tiny-llama-3.2-vision
"""

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medvl_recipes.collators import VisionSFTCollator  # noqa: E402
from medvl_recipes.data.chat import load_chat_split  # noqa: E402
from medvl_recipes.generation import generate_reports  # noqa: E402


def batches(rows, batch_size, count):
    return [rows[(i * batch_size) % len(rows) :][:batch_size] for i in range(count)]


def time_collators(collators, model, examples, steps, image_token_id):
    """Interleave the collators step by step, each with its own copy of the model, so that load from others on a
    shared machine hits both alike."""
    state = {}
    for name in collators:
        copied = copy.deepcopy(model).train()
        state[name] = {"model": copied, "optimizer": torch.optim.AdamW(copied.parameters(), lr=1e-3)}
        state[name].update(collate=[], step=[], share=[], note="")
    for i, batch_examples in enumerate(examples[: steps + 1]):
        for name, collator in collators.items():
            entry = state[name]
            start = time.perf_counter()
            batch = collator(copy.deepcopy(batch_examples))
            collated = time.perf_counter()
            labels = batch["labels"]
            entry["share"].append(float((labels != -100).sum() / batch["attention_mask"].sum()))
            if (labels == image_token_id).any():
                entry["note"] = "labels the <|image|> token (IndexError in the loss); masked by hand to time it"
                batch["labels"] = labels.masked_fill(labels == image_token_id, -100)
            loss = entry["model"](**batch).loss
            loss.backward()
            entry["optimizer"].step()
            entry["optimizer"].zero_grad()
            if i > 0:  # the first step warms up the allocator and kernels
                entry["collate"].append(collated - start)
                entry["step"].append(time.perf_counter() - start)
    return [
        {
            "name": name,
            "collate_ms": 1000 * statistics.median(entry["collate"]),
            "step_ms": 1000 * statistics.median(entry["step"]),
            "label_share": statistics.mean(entry["share"]),
            "note": entry["note"],
        }
        for name, entry in state.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Tiny Mllama folder (default: built in a temp dir).")
    parser.add_argument("--data", type=Path, help="Chat folder (default: fixture data written to a temp dir).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--num-reports", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    tmp = Path(tempfile.mkdtemp(prefix="bench-decoder-"))
    if args.model is None:
        from medvl_recipes.samples.tiny_models import build_tiny_mllama

        args.model = build_tiny_mllama(tmp / "tiny-mllama")
    if args.data is None:
        from tests.fixtures.factories import write_chat_dataset

        args.data = write_chat_dataset(tmp / "chat", n_train=32, n_val=args.num_reports)
    processor = AutoProcessor.from_pretrained(args.model)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(args.model)
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image|>")

    train = load_chat_split(args.data, "train")
    # Both collators get decoded PIL images, so image decoding is not part of the comparison.
    rows = [
        {"messages": row["messages"], "images": [Image.open(path).convert("RGB") for path in row["images"]]}
        for row in train
    ]
    examples = batches(rows, args.batch_size, args.steps + 1)
    collators = {
        "VisionSFTCollator (ours)": VisionSFTCollator(processor),
        "TRL DataCollatorForVisionLanguageModeling": DataCollatorForVisionLanguageModeling(processor),
    }
    results = time_collators(collators, model, examples, args.steps, image_token_id)
    print(
        f"\nTiny Mllama, CPU ({torch.get_num_threads()} threads), batch {args.batch_size}, median of {args.steps} steps\n"
    )
    print("| collator | collate (ms/batch) | train step (ms/batch) | tokens with loss | note |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['collate_ms']:.1f} | {r['step_ms']:.0f} | {r['label_share']:.1%} | {r['note']} |")
    collate_ratio = results[0]["collate_ms"] / results[1]["collate_ms"]
    step_ratio = results[0]["step_ms"] / results[1]["step_ms"]
    print(f"\nours / TRL: collate {collate_ratio:.2f}x, train step {step_ratio:.2f}x")

    validation = load_chat_split(args.data, "validation")
    images = [row[0] for row in validation["images"]][: args.num_reports]
    model.eval()
    timings = {}
    for batch_size in (8, 1):
        generate_reports(model, processor, images[:2], max_new_tokens=4, batch_size=batch_size, show_progress=False)
        start = time.perf_counter()
        generate_reports(
            model, processor, images, max_new_tokens=args.max_new_tokens, batch_size=batch_size, show_progress=False
        )
        timings[batch_size] = (time.perf_counter() - start) / len(images)
    print(f"\n{len(images)} reports, greedy, {args.max_new_tokens} new tokens\n")
    print("| generation | s/report | speed-up |")
    print("|---|---|---|")
    for batch_size, seconds in timings.items():
        print(f"| generate_reports batch_size={batch_size} | {seconds:.3f} | {timings[1] / seconds:.1f}x |")


if __name__ == "__main__":
    main()
