# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Encoder training throughput: `SiglipContrastiveTrainer` vs a plain PyTorch loop, and `accumulated` vs `local`.

Same model, data, collator, batch size, optimizer (AdamW) and precision everywhere; samples/s is measured over
the steps after `--warmup` optimizer steps. Prints markdown table rows for docs/benchmarks.md.

    python bench/bench_encoder.py                       # tiny SigLIP on CPU
    python bench/bench_encoder.py --model base --bf16   # a random siglip-base-patch16-224-sized model on a GPU
"""

import argparse
import tempfile
import time

import torch
from datasets import Dataset
from PIL import Image, ImageDraw
from transformers import AutoModel, AutoProcessor, SiglipConfig, SiglipModel, TrainerCallback

from medvl_recipes.collators import SiglipPairCollator
from medvl_recipes.configs import SiglipTrainingConfig
from medvl_recipes.losses import SigLipLoss
from medvl_recipes.trainers import SiglipContrastiveTrainer


def make_dataset(n: int) -> Dataset:
    images, texts = [], []
    for i in range(n):
        image = Image.new("RGB", (96, 96), color=(20 + i % 50, 30, 40))
        ImageDraw.Draw(image).ellipse((10 + i % 40, 20, 40 + i % 40, 50), fill=(220, 220, 220))
        images.append(image)
        texts.append(f"A nodule of {5 + i % 20} mm in the {'left' if i % 2 else 'right'} lung, case {i}.")
    return Dataset.from_dict({"image": images, "text": texts})


def load_model(model_dir, size: str):
    if size == "base":
        torch.manual_seed(0)
        # SiglipConfig's defaults are siglip-base-patch16-224's architecture; the tokenizer only needs the ids to fit.
        config = SiglipConfig()
        config.text_config.vocab_size = max(config.text_config.vocab_size, 4096)
        return SiglipModel(config)
    return AutoModel.from_pretrained(model_dir)


class StepTimer(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end, self.steps = time.perf_counter(), state.global_step - self.warmup


def bench_plain(model, dataset, collator, batch_size, steps, warmup, device, bf16) -> float:
    model.to(device).train()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=collator, drop_last=True
    )
    # Same optimizer as the Trainer's default (`optim=adamw_torch_fused`).
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0, fused=True)
    loss_fn, start, done = SigLipLoss(), None, 0
    iterator = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(**batch)
        loss = loss_fn(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done += batch_size
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (done - warmup * batch_size) / (time.perf_counter() - start)


def bench_trainer(model, dataset, collator, batch_size, accumulation, negatives, steps, warmup, device, bf16) -> float:
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as output_dir:
        args = SiglipTrainingConfig(
            output_dir=output_dir,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            max_steps=warmup + steps,
            learning_rate=1e-5,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            max_grad_norm=1.0,
            negatives=negatives,
            bf16=bf16,
            use_cpu=device.type == "cpu",
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10_000,
            report_to="none",
            disable_tqdm=True,
            dataloader_drop_last=True,
        )
        SiglipContrastiveTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[timer]
        ).train()
    return timer.steps * batch_size * accumulation / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--model-dir", help="A SigLIP checkpoint (for its processor, and weights with --model tiny).")
    parser.add_argument("--repeats", type=int, default=1, help="Run each setting this many times, keep the best.")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.model_dir is None:
        from medvl_recipes.samples.tiny_models import build_tiny_siglip
    model_dir = args.model_dir or build_tiny_siglip(tempfile.mkdtemp(prefix="bench-siglip-"))
    processor = AutoProcessor.from_pretrained(model_dir)
    image_size = 224 if args.model == "base" else None
    collator = SiglipPairCollator(processor, max_length=64, image_size=image_size)
    dataset = make_dataset(args.batch_size * args.accumulation * (args.steps + args.warmup) + args.batch_size)
    name = f"{args.model} SigLIP, {device.type}{' ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}"
    b, k = args.batch_size, args.accumulation

    def best(fn):
        return max(fn() for _ in range(args.repeats))

    plain = best(
        lambda: bench_plain(
            load_model(model_dir, args.model), dataset, collator, b, args.steps * k, args.warmup, device, args.bf16
        )
    )
    ours = best(
        lambda: bench_trainer(
            load_model(model_dir, args.model),
            dataset,
            collator,
            b,
            1,
            "local",
            args.steps * k,
            args.warmup,
            device,
            args.bf16,
        )
    )
    local = best(
        lambda: bench_trainer(
            load_model(model_dir, args.model),
            dataset,
            collator,
            b,
            k,
            "local",
            args.steps,
            args.warmup,
            device,
            args.bf16,
        )
    )
    accumulated = best(
        lambda: bench_trainer(
            load_model(model_dir, args.model),
            dataset,
            collator,
            b,
            k,
            "accumulated",
            args.steps,
            args.warmup,
            device,
            args.bf16,
        )
    )
    print("| setup | model, device | micro-batch x accumulation | samples/s | ratio |")
    print("|---|---|---|---|---|")
    print(f"| plain PyTorch loop | {name} | {b} x 1 | {plain:.1f} | 1.00 |")
    print(
        f"| SiglipContrastiveTrainer, local | {name} | {b} x 1 | {ours:.1f} | {plain / ours:.2f}x time per sample vs plain |"
    )
    print(f"| trainer, negatives=local | {name} | {b} x {k} | {local:.1f} | 1.00 |")
    print(
        f"| trainer, negatives=accumulated | {name} | {b} x {k} | {accumulated:.1f} | {local / accumulated:.2f}x time per sample vs local |"
    )


if __name__ == "__main__":
    main()
