# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image-text retrieval (Recall@1/5/10, mean/median rank) and SigLIP image-report similarity from embeddings.

Loads offline with `evaluate.load("eval/metrics/retrieval")`; the implementation is `medvl_recipes.evaluation.metrics`
(the same code `medvl eval` runs). Embeddings come from `medvl_recipes.retrieval.encode_images` /
`encode_texts` or any encoder; pair i is image i with text i.
"""

import datasets
import evaluate
import numpy as np

from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics


_DESCRIPTION = """
Image->text and text->image Recall@K (percent) and mean/median rank of the true pair among all pairs. With
`logit_scale` and `logit_bias` (SigLIP's), also the mean image-text cosine and pair probability
sigmoid(exp(logit_scale) * cos + logit_bias) of the matched pairs.
"""

_KWARGS_DESCRIPTION = """
Args:
    image_embeds (`list[list[float]]`): image embeddings (N, D).
    text_embeds (`list[list[float]]`): text embeddings (N, D); row i pairs with image i.
    logit_scale (`float`, *optional*): SigLIP's logit scale (log space).
    logit_bias (`float`, *optional*): SigLIP's logit bias.
    n_resamples (`int`, *optional*, defaults to 0): bootstrap resamples for 95% intervals.
Returns:
    i2t_recall@{1,5,10}, t2i_recall@{1,5,10}, {i2t,t2i}_{mean,median}_rank, and siglip_image_cosine /
    siglip_image_prob when the logit parameters are given.
Examples:
    >>> metric = evaluate.load("eval/metrics/retrieval")
    >>> metric.compute(image_embeds=[[1.0, 0.0], [0.0, 1.0]], text_embeds=[[1.0, 0.1], [0.1, 1.0]])["i2t_recall@1"]
    100.0
"""

_CITATION = """
@inproceedings{zhai2023siglip, title={Sigmoid Loss for Language Image Pre-Training}, author={Zhai, Xiaohua and
Mustafa, Basil and Kolesnikov, Alexander and Beyer, Lucas}, booktitle={ICCV}, year={2023}}
"""

_RETRIEVAL = [f"{d}_recall@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)] + [
    f"{d}_{s}_rank" for d in ("i2t", "t2i") for s in ("mean", "median")
]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Retrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "image_embeds": datasets.Sequence(datasets.Value("float32")),
                    "text_embeds": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, image_embeds, text_embeds, logit_scale=None, logit_bias=None, n_resamples=0):
        image_emb = np.asarray(image_embeds, dtype=np.float64)
        text_emb = np.asarray(text_embeds, dtype=np.float64)
        image_emb /= np.linalg.norm(image_emb, axis=1, keepdims=True)
        text_emb /= np.linalg.norm(text_emb, axis=1, keepdims=True)
        inputs = MetricInputs(
            image_emb=image_emb, ref_text_emb=text_emb, logit_scale=logit_scale, logit_bias=logit_bias
        )
        names = list(_RETRIEVAL)
        if logit_scale is not None and logit_bias is not None:
            names += ["siglip_image_cosine_ref", "siglip_image_prob_ref"]
        results, _ = compute_metrics(inputs, names, n_resamples=n_resamples)
        out = {name.removesuffix("_ref"): r.value for name, r in results.items()}
        if n_resamples > 0:
            out.update({f"{name.removesuffix('_ref')}_ci": (r.ci_low, r.ci_high) for name, r in results.items()})
        return out
