# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Trainer callbacks: training statistics in the logs (throughput, label share, peak memory); run identity in checkpoints."""

import logging
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from medvl_recipes.checkpoints import write_run_identity
from medvl_recipes.collators import IGNORE_INDEX


logger = logging.getLogger(__name__)


def peak_memory_gb() -> float:
    """Peak memory of this process in GB: CUDA peak allocated where there is a GPU, peak RSS otherwise."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


class TrainingStatsCallback(TrainerCallback):
    """Add `tokens_per_second`, `label_token_share` and `peak_memory_gb` to every training log.

    Tokens are counted by a forward pre-hook on the model (so it works whatever the collator and however many
    dataloader workers): `attention_mask` ones are tokens, `labels != -100` are trained tokens. Throughput is the
    tokens of all processes (this process's count times the world size) over the wall time since the last log.
    `label_token_share` shows at a glance what `loss_on` and the masking leave to learn from.

    Use `add_to(trainer)` so the values are in the logs before the reporting integrations see them.
    """

    def __init__(self) -> None:
        self._tokens = 0
        self._label_tokens = 0
        self._since = None
        self._handle = None

    def add_to(self, trainer) -> "TrainingStatsCallback":
        """Register this callback first on `trainer`, ahead of the reporting integrations, and return it.

        Args:
            trainer (`transformers.Trainer`):
                The trainer whose logs get the statistics.
        """
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def _count(self, module, args, kwargs):
        if not module.training:
            return
        attention_mask, labels = kwargs.get("attention_mask"), kwargs.get("labels")
        if attention_mask is not None:
            self._tokens += int(attention_mask.sum())
        elif kwargs.get("input_ids") is not None:
            self._tokens += kwargs["input_ids"].numel()
        if labels is not None:
            self._label_tokens += int((labels != IGNORE_INDEX).sum())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and self._handle is None:
            self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._since = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self._since is None:
            return
        now = time.perf_counter()
        stats = {"peak_memory_gb": round(peak_memory_gb(), 3)}
        if self._tokens:
            stats["tokens_per_second"] = round(self._tokens * args.world_size / max(now - self._since, 1e-9), 1)
            stats["label_token_share"] = round(self._label_tokens / self._tokens, 4)
        logs.update(stats)
        # `Trainer.log` stored a copy of `logs` before calling the callbacks.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(stats)
        self._tokens, self._label_tokens, self._since = 0, 0, now


class RunIdentityCallback(TrainerCallback):
    """Write the run's identity (`checkpoints.run_identity`) into every checkpoint the Trainer saves.

    `on_save` fires after the Trainer has written the checkpoint's weights, optimizer, scheduler, RNG states and
    `trainer_state.json`, so a checkpoint holding `run_identity.json` is complete; `resume_from_checkpoint` only
    resumes from such checkpoints, and only from this run's.

    A decoder run also gives each checkpoint what asking it as trained needs, so `medvl eval --decoder
    .../checkpoint-N` asks like the final model does: its `prompt.json` and its retrieval context.

    Args:
        identity (`dict`): The run's `run_identity(script_args, training_args, model_args)`.
        prompt (`tuple`, *optional*): `(instruction, system_prompt)` the decoder trains with (`prompts.write_prompt`).
        context (`RetrievalContext`, *optional*): Its retrieval context (`retrieval_context.write_retrieval_context`).
    """

    def __init__(self, identity: dict, prompt: tuple[str, str] | None = None, context=None) -> None:
        self.identity, self.prompt, self.context = identity, prompt, context

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if checkpoint.is_dir():
                if self.prompt is not None:
                    from medvl_recipes.prompts import write_prompt
                    from medvl_recipes.retrieval_context import write_retrieval_context

                    write_prompt(checkpoint, *self.prompt)
                    write_retrieval_context(checkpoint, self.context)
                write_run_identity(checkpoint, self.identity)
