# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""CPU benchmark of report generation speed on the tiny Mllama, one row per decoder inference path.

Rows (markdown, for docs/benchmarks.md), all through `generate_reports` on the same images, greedy, the same
`--max-new-tokens`; each is the median of `--repeats` timed calls after one excluded warm-up call:
- full fp32 with `attn_implementation="eager"` vs `"sdpa"` at each `--batch-sizes` (loaded with
  `AutoModelForImageTextToText.from_pretrained`, since `load_decoder` has no attention option; it gets the
  transformers default, which is SDPA for Mllama);
- a LoRA adapter (random and non-zero, on the language model's projections; no training) as a `PeftModel`
  (`load_decoder` on the adapter folder) vs the same adapter merged with `merge_adapter`, fp32, at the largest
  batch; the merged row also says how many of its reports are identical to the unmerged ones;
- bf16 (`load_decoder(dtype="bfloat16")`) and 4-bit bitsandbytes NF4 (fp32 compute and non-quantised layers; the
  row says how many `Linear4bit` layers it got), at the largest batch. A path that fails to load or generate
  prints its row with the one-line error instead of stopping the benchmark.

New tokens/s = tokens generated (padding excluded) / median wall seconds of a timed call. `generate_reports`
returns strings, and re-tokenising them over-counts a random model's output (its decoded fragments re-encode into
more tokens than it generated, 122 for 64 generated on the tiny model), so the model is handed to
`generate_reports` in a pass-through wrapper that counts each row's output ids of `model.generate` up to and
including its first end-of-sequence token. `generate_reports` has no `min_new_tokens`: a randomly initialised
model may stop before `--max-new-tokens`, paths that round differently (bf16, 4-bit) or have other weights (LoRA)
write reports of other lengths, and the count is what was actually generated. A batch runs until its longest row
ends, so ms/step (wall time over the `generate` steps, prefill and image encoding included) is the per-step cost
to compare across paths whose reports differ in length. Timings include building the inputs (PNG decoding, image
tiling) as in real use.

    python bench/bench_generation.py                      # builds the tiny model and phantom images in a temp dir
    python bench/bench_generation.py --model outputs/quickstart/models/tiny-llama-3.2-vision --data outputs/quickstart/chat
"""

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

from medvl_recipes.generation import generate_reports
from medvl_recipes.merging import merge_adapter
from medvl_recipes.modeling import default_lora_target_modules, load_decoder


def write_images(folder: Path, count: int) -> list[Path]:
    from medvl_recipes.samples.phantoms import generate_studies

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, study in enumerate(generate_studies(count, seed=0)):
        paths.append(folder / f"study-{i:03d}.png")
        study.image.save(paths[-1])
    return paths


def read_images(data: Path, split: str, count: int) -> list:
    from medvl_recipes.data.chat import load_chat_split

    return [row[0] for row in load_chat_split(data, split)["images"]][:count]


def build_adapter(model_dir: Path, adapter_dir: Path) -> Path:
    """Save a random LoRA adapter for `model_dir`; `init_lora_weights=False` makes it change the outputs, so the
    merged model's reports can be checked against the unmerged ones."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=default_lora_target_modules(model), init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(adapter_dir)
    return adapter_dir


def load_with(model_dir: Path, **kwargs):
    model = AutoModelForImageTextToText.from_pretrained(model_dir, **kwargs).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


class CountingModel:
    """Stands in for `model` in `generate_reports`, passing everything through, and counts what `generate` made.

    A row's new tokens run up to and including its first end-of-sequence token; what follows is padding, added
    while the longest row of the batch still generates. `steps` adds up the new-token length of each call.
    """

    def __init__(self, model):
        self.model = model
        eos = model.generation_config.eos_token_id
        self.eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.reset()

    def reset(self) -> None:
        self.new_tokens, self.steps = 0, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, **kwargs):
        output = self.model.generate(**kwargs)
        new = output[:, kwargs["input_ids"].shape[1] :]  # (B, new)
        is_eos = torch.isin(new, self.eos_ids.to(new.device))
        lengths = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, new.shape[1])  # (B,)
        self.new_tokens += int(lengths.sum())
        self.steps += new.shape[1]
        return output


def measure(model, processor, images: list, batch_size: int, max_new_tokens: int, repeats: int) -> dict:
    counting = CountingModel(model)
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "show_progress": False}
    generate_reports(counting, processor, images[:batch_size], **kwargs)  # warm-up: allocator, kernels, caches
    seconds = []
    for _ in range(repeats):
        counting.reset()
        start = time.perf_counter()
        reports = generate_reports(counting, processor, images, **kwargs)
        seconds.append(time.perf_counter() - start)
    wall = statistics.median(seconds)  # greedy: every repeat generates the same tokens
    return {
        "tokens": counting.new_tokens,
        "tokens_per_s": counting.new_tokens / wall,
        "s_per_report": wall / len(images),
        "ms_per_step": 1000 * wall / counting.steps,
        "reports": reports,
    }


def count_4bit_layers(model) -> str:
    layers = sum(type(module).__name__ == "Linear4bit" for module in model.modules())
    return f"{layers} Linear4bit layers"


def describe_machine(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    versions = []
    for package in ("torch", "transformers", "peft", "bitsandbytes"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} not installed")
    load = os.getloadavg()
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {threads} torch threads, load average {load[0]:.1f}/{load[1]:.1f}/"
        f"{load[2]:.1f}; {', '.join(versions)}"
    )


def error_line(err: Exception) -> str:
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0] if message else ''}".replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="Full Mllama checkpoint folder (default: tiny, built in a temp dir)."
    )
    parser.add_argument("--data", type=Path, help="Chat folder to take images from (default: phantom PNGs).")
    parser.add_argument("--split", default="validation", help="Split of --data to take images from.")
    parser.add_argument("--num-reports", type=int, default=16, help="Images per timed call.")
    parser.add_argument("--batch-sizes", default="1,8", help="Comma-separated; the largest is used for rows 2-4.")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls per row; the median is reported.")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch_sizes = sorted({int(size) for size in args.batch_sizes.split(",")})
    largest = batch_sizes[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    try:
        if args.model is None:
            from medvl_recipes.samples.tiny_models import build_tiny_mllama

            args.model = build_tiny_mllama(work / "tiny-mllama")
        model_dir = args.model.resolve()
        if args.data is None:
            images = write_images(work / "images", args.num_reports)
        else:
            images = read_images(args.data, args.split, args.num_reports)
        adapter_dir = work / "lora-adapter"
        merged_dir = work / "lora-merged"

        def merged():
            merge_adapter(adapter_dir, merged_dir, dtype="float32")
            return load_decoder(str(merged_dir), dtype="float32")

        nf4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        unmerged = "LoRA adapter, unmerged (PeftModel)"
        # name: (loader, batch sizes, the row whose reports it must reproduce, what to report about the loaded model)
        paths = {
            "fp32, eager": (
                lambda: load_with(model_dir, dtype=torch.float32, attn_implementation="eager"),
                batch_sizes,
                None,
                None,
            ),
            "fp32, sdpa": (
                lambda: load_with(model_dir, dtype=torch.float32, attn_implementation="sdpa"),
                batch_sizes,
                None,
                None,
            ),
            unmerged: (
                lambda: load_decoder(str(build_adapter(model_dir, adapter_dir)), dtype="float32"),
                [largest],
                None,
                None,
            ),
            "LoRA adapter, merged (merge_adapter)": (merged, [largest], unmerged, None),
            "bf16 (load_decoder dtype=bfloat16)": (
                lambda: load_decoder(str(model_dir), dtype="bfloat16"),
                [largest],
                None,
                None,
            ),
            "4-bit NF4 (bitsandbytes)": (
                lambda: load_with(model_dir, dtype=torch.float32, quantization_config=nf4, device_map={"": "cpu"}),
                [largest],
                None,
                count_4bit_layers,
            ),
        }
        results = {}  # (name, batch size) -> measurement, or the error line
        for name, (load, sizes, _, describe) in paths.items():
            try:
                model, processor = load()
            except Exception as err:  # one broken path (e.g. bf16 or 4-bit on this CPU) must not hide the others
                results.update({(name, size): f"failed to load: {error_line(err)}" for size in sizes})
                continue
            note = describe(model) if describe else ""
            for size in sizes:
                try:
                    results[name, size] = measure(model, processor, images, size, args.max_new_tokens, args.repeats)
                    results[name, size]["note"] = note
                except Exception as err:
                    results[name, size] = f"failed to generate: {error_line(err)}"
            del model
        rows = []
        for (name, size), result in results.items():
            if isinstance(result, str):
                rows.append(f"| {name} | {size} | {result} | | | | | |")
                continue
            baseline = results.get(("fp32, sdpa", size))
            speed_up = (
                f"{result['tokens_per_s'] / baseline['tokens_per_s']:.2f}x" if isinstance(baseline, dict) else "-"
            )
            notes = [result["note"]] if result["note"] else []
            reference = results.get((paths[name][2], size))
            if isinstance(reference, dict):
                same = sum(a == b for a, b in zip(result["reports"], reference["reports"], strict=True))
                notes.append(f"{same}/{len(images)} reports identical to unmerged")
            rows.append(
                f"| {name} | {size} | {result['tokens']} | {result['tokens_per_s']:.1f} | {result['s_per_report']:.3f} "
                f"| {result['ms_per_step']:.1f} | {speed_up} | {'; '.join(notes)} |"
            )
        print(f"\n{describe_machine(torch.get_num_threads())}")
        print(
            f"{len(images)} reports, greedy, max_new_tokens={args.max_new_tokens}, median of {args.repeats} timed "
            f"calls after a warm-up; model {'tiny Mllama' if args.model.parent == work else model_dir}\n"
        )
        print(
            "| decoder path | batch | new tokens | new tokens/s | s/report | ms/step | tokens/s vs fp32 sdpa | check |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
