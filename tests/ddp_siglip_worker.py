# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Helpers for the encoder trainer tests, and a worker that `test_trainers.py` launches under torchrun.

`torchrun --standalone --nproc_per_node 2 tests/ddp_siglip_worker.py MODEL_DIR OUT.pt` runs one optimizer step of
`SiglipContrastiveTrainer(negatives="global")` on 2 CPU processes (gloo) and saves the loss and the gradients
(after DDP's all-reduce, before the optimizer step) from rank 0. `test_launch.py` runs the same worker as
2 machines x 1 process through `accelerate launch --num_machines 2 --rdzv_backend c10d` on 127.0.0.1.
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModel, AutoProcessor, TrainerCallback  # noqa: E402

from medvl_recipes.collators import SiglipPairCollator  # noqa: E402
from medvl_recipes.configs import SiglipTrainingConfig  # noqa: E402
from medvl_recipes.losses import SigLipLoss  # noqa: E402
from medvl_recipes.trainers import SiglipContrastiveTrainer  # noqa: E402
from tests.fixtures.factories import _record  # noqa: E402


def make_pairs(n: int, seed: int = 0) -> Dataset:
    """`n` image-text pairs with an `image` and a `text` column (drawn blobs and captions)."""
    rows = [_record(i, seed) for i in range(n)]
    # Make every caption distinct so that the pairs are distinguishable.
    return Dataset.from_dict(
        {"image": [r["image"] for r in rows], "text": [f"{r['text']} Case {i}." for i, r in enumerate(rows)]}
    )


class GradCapture(TrainerCallback):
    """Copies every parameter's gradient right before the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def reference_grads(model_dir, dataset: Dataset) -> tuple[float, dict]:
    """Loss and gradients of one forward/backward on the whole dataset as a single batch."""
    model = AutoModel.from_pretrained(model_dir)
    collator = SiglipPairCollator(AutoProcessor.from_pretrained(model_dir))
    batch = collator(list(dataset))
    out = model(**batch)
    loss = SigLipLoss()(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias)
    loss.backward()
    return loss.item(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def train_one_step(model_dir, dataset: Dataset, output_dir, *, negatives: str, batch_size: int, accumulation: int):
    """One optimizer step of the real trainer; returns `(logged loss, gradients before the optimizer step)`."""
    args = SiglipTrainingConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=1e-3,
        max_grad_norm=0.0,
        negatives=negatives,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    model = AutoModel.from_pretrained(model_dir)
    capture = GradCapture()
    trainer = SiglipContrastiveTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=SiglipPairCollator(AutoProcessor.from_pretrained(model_dir)),
        callbacks=[capture],
    )
    trainer.train()
    loss = next(log["loss"] for log in trainer.state.log_history if "loss" in log)
    return loss, capture.grads, trainer


if __name__ == "__main__":
    model_dir, out_path = sys.argv[1], sys.argv[2]
    loss, grads, trainer = train_one_step(
        model_dir, make_pairs(8), Path(out_path).parent / "ddp-run", negatives="global", batch_size=2, accumulation=2
    )
    if trainer.accelerator.is_main_process:
        torch.save({"loss": loss, "grads": grads, "world_size": trainer.accelerator.num_processes}, out_path)
    if torch.distributed.is_initialized():
        # Tear the gloo group down before the interpreter exits: a rank whose group is still alive at exit can abort
        # ("terminate called without an active exception") after a correct run, failing the test under load.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
