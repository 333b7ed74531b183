# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Can a randomly initialised vision tower learn the study type of the sample images? (issue 17 diagnosis)

Trains one vision tower plus a linear head with cross-entropy on the study (modality + region, parsed from each
training report by `evaluation.grounding.StudyParser`) of the prepared sample dataset, and prints validation
accuracy beside the majority-class share every 20 steps. This takes the language model and the cross-attention out
of the question: if the tower cannot learn the study type with a direct label, the decoder cannot learn it through
the language-model loss either.

Towers: `mllama` (the tiny Llama-3.2-Vision's vision model, as `medvl tiny-models` writes it) or `siglip` (the tiny
SigLIP's vision model). Mllama options for ablations: `--patch-size`, `--no-layernorm-pre`.

Usage (after `medvl tiny-models` and `medvl prepare` of the quickstart):
    python bench/bench_vision_probe.py --quickstart-dir outputs/quickstart --tower siglip
    python bench/bench_vision_probe.py --quickstart-dir outputs/quickstart --tower mllama --steps 100
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoProcessor, MllamaForConditionalGeneration, SiglipModel

from medvl_recipes.data.prepared import load_prepared_split
from medvl_recipes.evaluation.grounding import StudyParser


def study_labels(texts, parser: StudyParser) -> list[str]:
    return [f"{study.modality}/{study.region}" for study in map(parser.parse, texts)]


def mllama_tower(models: Path, args):
    path = models / "tiny-llama-3.2-vision"
    processor = AutoProcessor.from_pretrained(path).image_processor
    tower = MllamaForConditionalGeneration.from_pretrained(path).model.vision_model
    if args.no_layernorm_pre:
        tower.layernorm_pre = torch.nn.Identity()

    def encode(images):
        batch = processor([[image.convert("RGB")] for image in images], return_tensors="pt")
        return batch["pixel_values"], batch["aspect_ratio_ids"], batch["aspect_ratio_mask"]

    def features(pixel_values, aspect_ratio_ids, aspect_ratio_mask):
        hidden = tower(pixel_values, aspect_ratio_ids, aspect_ratio_mask)[0][:, 0]  # (B, tiles, patches, D)
        return hidden[:, :, 0].mean(1)  # the tiles' class tokens

    return tower, encode, features, tower.config.vision_output_dim


def siglip_tower(models: Path, args):
    path = models / "tiny-siglip"
    processor = AutoProcessor.from_pretrained(path).image_processor
    tower = SiglipModel.from_pretrained(path).vision_model

    def encode(images):
        return (processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"],)

    def features(pixel_values):
        return tower(pixel_values=pixel_values).pooler_output

    return tower, encode, features, tower.config.hidden_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart-dir", required=True, type=Path)
    parser.add_argument("--tower", choices=("mllama", "siglip"), default="mllama")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--no-layernorm-pre", action="store_true", help="Mllama only: drop the pre-encoder LayerNorm.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    build = mllama_tower if args.tower == "mllama" else siglip_tower
    tower, encode, features, dim = build(args.quickstart_dir / "models", args)
    train = load_prepared_split(args.quickstart_dir / "dataset", "train", columns=("image", "text"))
    val = load_prepared_split(args.quickstart_dir / "dataset", "validation", columns=("image", "text"))
    study = StudyParser()
    train_labels, val_labels = study_labels(train["text"], study), study_labels(val["text"], study)
    classes = sorted(set(train_labels))
    y_train = torch.tensor([classes.index(label) for label in train_labels])
    y_val = torch.tensor([classes.index(label) if label in classes else -1 for label in val_labels])
    x_train, x_val = encode(train["image"]), encode(val["image"])
    majority = max(val_labels.count(label) for label in set(val_labels)) / len(val_labels)
    head = torch.nn.Linear(dim, len(classes))
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=args.learning_rate)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"{args.tower}: {len(classes)} study classes, {len(y_train)} train / {len(y_val)} val, majority {majority:.3f}"
    )
    for step in range(args.steps):
        index = torch.from_numpy(rng.choice(len(y_train), args.batch_size, replace=False))
        loss = F.cross_entropy(head(features(*(x[index] for x in x_train))), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0 or step == args.steps - 1:
            with torch.no_grad():
                accuracy = (head(features(*x_val)).argmax(-1) == y_val).float().mean().item()
            elapsed = time.perf_counter() - started
            print(f"step {step:4d}  loss {loss.item():.3f}  val accuracy {accuracy:.3f}  ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
