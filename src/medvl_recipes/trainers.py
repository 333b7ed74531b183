# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`SiglipContrastiveTrainer`: `transformers.Trainer` with the SigLIP sigmoid loss and large-batch negatives.

The sigmoid loss of a batch is not the sum of its micro-batches' losses: every image is contrasted with every
text of the batch. Plain gradient accumulation therefore trains on small batches. With `negatives="accumulated"`
this trainer computes the loss of the whole accumulation window with GradCache (Gao et al. 2021,
https://arxiv.org/abs/2101.06983; open_clip's `--accum-freq`):

1. a no-grad forward of every micro-batch of the window caches its embeddings (`(B, D)` each, no activations);
2. the loss of the window on the cached embeddings gives `dL/d(embeddings)` and `dL/d(logit_scale, logit_bias)`;
3. each micro-batch is re-forwarded with grad and back-propagates `sum(embeddings * cached_grad)`, whose gradient
   w.r.t. the parameters is exactly the window's.

Peak memory is one micro-batch's activations; the cost is one extra forward (~1.3x). `negatives="global"` also
all-gathers the cached embeddings across data-parallel ranks, so the gradient is that of the global batch.
"""

import logging

import torch
from torch import nn
from transformers import Trainer

from medvl_recipes.losses import SigLipLoss
from medvl_recipes.retrieval import needs_pos_interpolation, retrieval_metrics


logger = logging.getLogger(__name__)


class _RngStates:
    """CPU (and CUDA) RNG states, so a re-forward draws the same dropout masks as the cached forward."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = (
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        )

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class SiglipContrastiveTrainer(Trainer):
    """`Trainer` for SigLIP image-text pairs with the sigmoid loss (`SigLipLoss`).

    The batches come from `SiglipPairCollator` (`input_ids`, `pixel_values`); `args.negatives` (see
    `SiglipTrainingConfig`) chooses the negatives: `"local"` (each micro-batch), `"accumulated"` (the gradient
    accumulation window, exact big-batch gradients via GradCache) or `"global"` (the window of every rank).
    With `args.retrieval_eval`, evaluation adds image->text and text->image Recall@1/5/10 and mean/median rank
    (`eval_i2t_recall@1`, ...) to `eval_loss`, so `metric_for_best_model` can select on them.

    Args:
        loss_fn (`nn.Module`, *optional*):
            Called as `loss_fn(image_emb, text_emb, logit_scale, logit_bias)`; defaults to `SigLipLoss()`.
        *args, **kwargs:
            As for `transformers.Trainer`; `args` should be a `SiglipTrainingConfig`.
    """

    # compute_loss already divides by the number of micro-batches of the window (see `_windowed_loss`).
    loss_is_scaled_for_ga = True

    def __init__(self, *args, loss_fn: nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn if loss_fn is not None else SigLipLoss()
        self.negatives = getattr(self.args, "negatives", "local")
        self._window: list | None = None
        self._window_pos = 0
        self._window_cache: dict | None = None
        self._eval_embeddings: list | None = None

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # The Trainer fetches all micro-batches of an optimizer step up front; keep them for the cached pass.
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._window, self._window_pos, self._window_cache = batch_samples, 0, None
        return batch_samples, num_items_in_batch

    def _needs_window_cache(self) -> bool:
        if self.negatives == "local" or self._window is None:
            return False
        # One micro-batch on one rank is already the whole batch: skip the extra no-grad forward.
        return len(self._window) > 1 or (self.negatives == "global" and self.accelerator.num_processes > 1)

    def _forward(self, model: nn.Module, inputs: dict) -> tuple[torch.Tensor, ...]:
        """`(image_emb, text_emb, logit_scale, logit_bias)` of one forward of the (possibly wrapped) model.

        The embeddings are normalised, `(B, D)` each. The scale and bias are taken while the model runs, by a
        forward hook that goes first: DeepSpeed ZeRO-3 gathers a module's parameters for its forward only (its own
        forward hook partitions them again), so `model.logit_scale` read afterwards is an empty tensor. The copies
        stay in the autograd graph: the loss's gradient reaches the parameters as if they had been used directly.
        """
        unwrapped = self.accelerator.unwrap_model(model)
        taken = []

        def take_logit_params(module, args, output):
            taken.extend((module.logit_scale.clone(), module.logit_bias.clone()))

        handle = unwrapped.register_forward_hook(take_logit_params, prepend=True)
        try:
            outputs = model(
                **inputs,
                return_loss=False,
                interpolate_pos_encoding=needs_pos_interpolation(unwrapped, inputs["pixel_values"]),
            )
        finally:
            handle.remove()
        return outputs.image_embeds, outputs.text_embeds, *taken

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self._needs_window_cache():
            loss = self._windowed_loss(model, inputs)
            return (loss, None) if return_outputs else loss
        image_emb, text_emb, logit_scale, logit_bias = self._forward(model, inputs)  # (B, D), (B, D), (1,), (1,)
        loss = self.loss_fn(image_emb, text_emb, logit_scale, logit_bias)
        if model.training:
            loss = loss / self.current_gradient_accumulation_steps
        elif self._eval_embeddings is not None:
            # gather_for_metrics drops the samples that even_batches duplicated on the last batch.
            pair = self.accelerator.gather_for_metrics((image_emb.detach().float(), text_emb.detach().float()))
            self._eval_embeddings.append(pair)
        return (loss, {"image_embeds": image_emb, "text_embeds": text_emb}) if return_outputs else loss

    def _cache_window(self, model: nn.Module) -> dict:
        """No-grad pass over the window, then the window loss and its gradients w.r.t. the cached embeddings."""
        rng_states, image_chunks, text_chunks = [], [], []
        with torch.no_grad():
            for micro_batch in self._window:
                rng_states.append(_RngStates())
                image_emb, text_emb, *logit_params = self._forward(model, self._prepare_inputs(micro_batch))
                image_chunks.append(image_emb.float())
                text_chunks.append(text_emb.float())
        sizes = [chunk.shape[0] for chunk in image_chunks]
        image_emb, text_emb = torch.cat(image_chunks), torch.cat(text_chunks)  # (K*B, D)
        world, offset = 1, 0
        if self.negatives == "global" and self.accelerator.num_processes > 1:
            world = self.accelerator.num_processes
            local = torch.tensor([image_emb.shape[0]], device=image_emb.device)
            if (self.accelerator.gather(local) != local).any():
                raise RuntimeError("negatives='global' needs equal batch sizes on every rank (keep even_batches on)")
            offset = self.accelerator.process_index * image_emb.shape[0]
            # Plain all-gather without autograd: the gradient w.r.t. our own slice is taken below.
            image_emb, text_emb = self.accelerator.gather(image_emb), self.accelerator.gather(text_emb)
        # The window's scale and bias (one optimizer step: the same in every micro-batch), as leaves of the window
        # loss; `requires_grad` is the parameters' own flag (a frozen scale or bias gets no gradient).
        unwrapped = self.accelerator.unwrap_model(model)
        flags = (unwrapped.logit_scale.requires_grad, unwrapped.logit_bias.requires_grad)
        logit_scale, logit_bias = (
            p.detach().requires_grad_(flag) for p, flag in zip(logit_params, flags, strict=True)
        )
        image_emb.requires_grad_(True)
        text_emb.requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss_fn(image_emb, text_emb, logit_scale, logit_bias)
            wrt = [image_emb, text_emb] + [p for p in (logit_scale, logit_bias) if p.requires_grad]
            grads = list(torch.autograd.grad(loss, wrt))
        image_grad, text_grad = (g[offset : offset + sum(sizes)] for g in grads[:2])
        return {
            "loss": loss.detach(),
            "rng_states": rng_states,
            "image_grads": image_grad.split(sizes),
            "text_grads": text_grad.split(sizes),
            "logit_grads": grads[2:],
            # With "global" every rank computes the same global loss and DDP averages the ranks' gradients, so the
            # embedding gradient of each rank's own samples is scaled back up by the world size.
            "world": world,
        }

    def _windowed_loss(self, model: nn.Module, inputs: dict) -> torch.Tensor:
        if self._window_pos == 0:
            self._window_cache = self._cache_window(model)
        cache, i = self._window_cache, self._window_pos
        self._window_pos += 1
        cache["rng_states"][i].restore()
        image_emb, text_emb, *logit_params = self._forward(model, inputs)  # with grad
        surrogate = cache["world"] * (
            (image_emb.float() * cache["image_grads"][i]).sum() + (text_emb.float() * cache["text_grads"][i]).sum()
        )
        if i == len(self._window) - 1:
            # The logit scale and bias get their window gradient once, with the last micro-batch.
            # (`logit_params` come out of this forward: under ZeRO-3 the parameters themselves are empty here.)
            params = [p for p in logit_params if p.requires_grad]
            surrogate = surrogate + sum((p * g).sum() for p, g in zip(params, cache["logit_grads"], strict=True))
            self._window, self._window_cache = None, None
        # The value reported per micro-batch sums to the window loss; the gradient is the surrogate's.
        return surrogate - surrogate.detach() + cache["loss"] / len(cache["image_grads"])

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Only the loss (and the embeddings collected in compute_loss) matter; the (B, B) logits are not gathered.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        if not getattr(self.args, "retrieval_eval", False):
            return super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        self._eval_embeddings = []
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
            pairs = self._eval_embeddings
        finally:
            self._eval_embeddings = None
        if pairs:
            image_emb = torch.cat([p[0] for p in pairs]).cpu()
            text_emb = torch.cat([p[1] for p in pairs]).cpu()
            for key, value in retrieval_metrics(image_emb, text_emb).items():
                output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output
