# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The SigLIP pairwise sigmoid loss.

Zhai, Mustafa, Kolesnikov, Beyer, "Sigmoid Loss for Language Image Pre-Training", ICCV 2023
(https://arxiv.org/abs/2303.15343). Every image-text pair of the batch is an independent binary
classification: the matching pair is a positive, all others are negatives, so unlike the softmax (CLIP)
loss no normalisation over the batch is needed.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SigLipLoss(nn.Module):
    """SigLIP sigmoid loss on L2-normalised embeddings.

    `logits = exp(t) * image_emb @ text_emb.T + b`, `labels = 2 * I - 1`,
    `loss = -sum(logsigmoid(labels * logits)) / N`, where `t` and `b` are the model's learnable `logit_scale`
    and `logit_bias` (the paper initialises them to `log(10)` and `-10`). This is the same value as
    `SiglipModel(..., return_loss=True).loss` (the mean over images of the per-image sum).

    Args:
        normalize (`bool`, *optional*, defaults to `False`):
            L2-normalise the embeddings inside `forward`. `SiglipModel` already returns normalised
            `image_embeds` / `text_embeds`; set this for raw `pooler_output` features.

    Example:
        ```python
        >>> loss_fn = SigLipLoss()
        >>> out = model(**batch)  # a SiglipModel
        >>> loss = loss_fn(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias)
        ```
    """

    def __init__(self, normalize: bool = False):
        super().__init__()
        self.normalize = normalize

    def get_logits(
        self, image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
    ) -> torch.Tensor:
        """`exp(logit_scale) * image_emb @ text_emb.T + logit_bias`, shape `(N_images, N_texts)`."""
        return logit_scale.exp() * image_emb @ text_emb.T + logit_bias

    def get_ground_truth(
        self, num_images: int, num_texts: int | None = None, *, device=None, dtype=torch.float32
    ) -> torch.Tensor:
        """`+1` on the diagonal (image i matches text i), `-1` elsewhere; shape `(num_images, num_texts)`."""
        num_texts = num_images if num_texts is None else num_texts
        return 2 * torch.eye(num_images, num_texts, device=device, dtype=dtype) - 1

    def forward(
        self, image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
    ) -> torch.Tensor:
        """The loss of a batch.

        Args:
            image_emb (`torch.Tensor` of shape `(N, D)`):
                Image embeddings, L2-normalised unless `normalize=True`.
            text_emb (`torch.Tensor` of shape `(N, D)`):
                Text embeddings; row i pairs with image row i.
            logit_scale (`torch.Tensor`):
                The log temperature `t` (a scalar or shape `(1,)`).
            logit_bias (`torch.Tensor`):
                The bias `b` (a scalar or shape `(1,)`).
        """
        if self.normalize:
            image_emb = F.normalize(image_emb, dim=-1)
            text_emb = F.normalize(text_emb, dim=-1)
        # Compute in float32: bf16 logits near -10 lose the small positive-pair margins.
        logits = self.get_logits(image_emb.float(), text_emb.float(), logit_scale.float(), logit_bias.float())
        labels = self.get_ground_truth(logits.shape[0], logits.shape[1], device=logits.device, dtype=logits.dtype)
        return -F.logsigmoid(labels * logits).sum() / image_emb.shape[0]
