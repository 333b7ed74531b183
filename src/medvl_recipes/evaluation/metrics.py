# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Named metric registry: BLEU, chrF, ROUGE-L, finding F1, grounding, embedding similarity and retrieval.

A metric is registered with `@register_metric(name, higher_is_better=..., stats=..., requires=...)` on its
aggregation function. `stats(inputs)` returns per-sample sufficient statistics (N, K), shared between metrics that
use the same function (BLEU and BLEU-1..4 tokenize once). The aggregation maps summed statistics (B, K) to scores
(B,), so corpus-level metrics (BLEU, chrF, F1) are computed from corpus sums, never averaged per example, and the
bootstrap (`bootstrap.py`) recomputes them on each resample with one matrix product. Metrics flagged
`decomposable=False` (median rank) aggregate a resample's raw statistics instead.

Scales: BLEU, chrF, ROUGE-L, F1 and Recall@K are percentages (0-100, as sacrebleu reports); cosines are in
[-1, 1], probabilities in [0, 1], ranks start at 1.
"""

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.bootstrap import bootstrap_distribution, confidence_interval, resample_counts
from medvl_recipes.evaluation.findings import FindingExtractor, f1_stats, macro_f1, micro_f1
from medvl_recipes.evaluation.grounding import StudyParser, agreement_stats, distinct_share, distinct_stats
from medvl_recipes.retrieval import match_probability, retrieval_ranks


logger = logging.getLogger(__name__)

RETRIEVAL_KS = (1, 5, 10)


@dataclass
class MetricInputs:
    """Everything metrics are computed from; a metric runs only when the fields it `requires` are set.

    Args:
        generations (`list[str]`, *optional*): generated reports.
        references (`list[list[str]]`, *optional*): per sample one or more reference reports.
        ground_truth (`list[list[dict]]`, *optional*): structured findings per sample (empty list = unknown).
        image_emb (`np.ndarray` (N, D), *optional*): L2-normalised SigLIP image embeddings.
        ref_text_emb, gen_text_emb (`np.ndarray` (N, D), *optional*): L2-normalised SigLIP text embeddings of the
            first reference / the generation.
        ref_sent_emb, gen_sent_emb (`np.ndarray` (N, D), *optional*): L2-normalised sentence-transformers
            embeddings of the first reference / the generation.
        logit_scale, logit_bias (`float`, *optional*): SigLIP's learned temperature (log) and bias.
        extractor (`FindingExtractor`, *optional*): finding extractor (the default lexicon when None).
        swap_generations (`list[str]`, *optional*): the image-swap control: sample i's report generated from
            another sample's image (`grounding.image_swap_generations`).
        dataset_modalities (`list[str | None]`, *optional*): the dataset's DICOM `modality` column, used where the
            reference names no modality.
        study_parser (`StudyParser`, *optional*): modality/region rules (the packaged default when None).
    """

    generations: list[str] | None = None
    references: list[list[str]] | None = None
    ground_truth: list[list[dict]] | None = None
    image_emb: np.ndarray | None = None
    ref_text_emb: np.ndarray | None = None
    gen_text_emb: np.ndarray | None = None
    ref_sent_emb: np.ndarray | None = None
    gen_sent_emb: np.ndarray | None = None
    logit_scale: float | None = None
    logit_bias: float | None = None
    extractor: FindingExtractor | None = None
    swap_generations: list[str] | None = None
    dataset_modalities: list[str | None] | None = None
    study_parser: StudyParser | None = None
    _signatures: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.references is not None:
            self.references = [[r] if isinstance(r, str) else list(r) for r in self.references]
        lengths = {
            name: len(value)
            for name in (
                "generations",
                "references",
                "ground_truth",
                "image_emb",
                "ref_text_emb",
                "gen_text_emb",
                "ref_sent_emb",
                "gen_sent_emb",
                "swap_generations",
                "dataset_modalities",
            )  # fmt: skip
            if (value := getattr(self, name)) is not None
        }
        if len(set(lengths.values())) > 1:
            raise MedvlError(
                f"metric inputs have mismatched lengths {lengths}; every field needs one entry per sample"
            )
        for name in ("generations", "swap_generations"):
            value = getattr(self, name)
            if value is not None and not all(isinstance(v, str) for v in value):
                raise MedvlError(f"{name} must all be strings; found {sorted({type(v).__name__ for v in value})}")
        if self.extractor is None:
            self.extractor = FindingExtractor()
        if self.study_parser is None:
            self.study_parser = StudyParser()

    def has(self, name: str) -> bool:
        value = getattr(self, name)
        if name == "ground_truth":
            return value is not None and any(value)
        return value is not None

    def __len__(self) -> int:
        for name in ("references", "generations", "image_emb", "ref_text_emb", "gen_text_emb", "gen_sent_emb"):
            if getattr(self, name) is not None:
                return len(getattr(self, name))
        return 0


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Args:
        name (`str`): registry name (used in task YAMLs, `metrics.json`, plots).
        higher_is_better (`bool`): direction of improvement.
        stats (`Callable[[MetricInputs], np.ndarray]`): per-sample sufficient statistics (N, K).
        aggregate (`Callable[[np.ndarray], np.ndarray]`): summed stats (B, K) -> scores (B,); or, when
            `decomposable=False`, one resample's stats (N, K) -> scalar.
        requires (`tuple[str, ...]`): `MetricInputs` fields that must be set.
        decomposable (`bool`): whether `aggregate` takes summed statistics.
        point (`Callable`, *optional*): exact point estimate from summed stats (sacrebleu's own code for BLEU).
        per_sample (`bool`): whether to write the per-sample value to `per_sample.jsonl`.
        scale (`str`): "percent", "cosine", "probability" or "rank" (plots group metrics by scale).
        signature (`Callable[[MetricInputs], str]`, *optional*): a reproducibility signature.
        per_sample_score (`Callable[[MetricInputs, np.ndarray], np.ndarray]`, *optional*): the per-sample value
            written to `per_sample.jsonl`, from the inputs and the per-sample stats, when the corpus formula applied to
            one sample is not the right sentence-level score (BLEU: sacrebleu's sentence BLEU with effective order;
            agreements: none where the sample is not scored). NaN leaves the sample's value out.
    """

    name: str
    higher_is_better: bool
    stats: Callable[[MetricInputs], np.ndarray]
    aggregate: Callable[[np.ndarray], np.ndarray]
    requires: tuple[str, ...]
    decomposable: bool = True
    point: Callable[[np.ndarray], float] | None = None
    per_sample: bool = True
    scale: str = "percent"
    signature: Callable[[MetricInputs], str] | None = None
    per_sample_score: Callable[[MetricInputs, np.ndarray], np.ndarray] | None = None


METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    stats: Callable[[MetricInputs], np.ndarray],
    requires: Sequence[str],
    **kwargs,
) -> Callable:
    """Register the decorated aggregation function as metric `name` (see `MetricSpec` for the arguments)."""

    def decorator(aggregate: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = MetricSpec(
            name=name,
            higher_is_better=higher_is_better,
            stats=stats,
            aggregate=aggregate,
            requires=tuple(requires),
            **kwargs,
        )
        return aggregate

    return decorator


TEXT = ("generations", "references")


def _reference_streams(inputs: MetricInputs) -> list[list[str]]:
    counts = {len(r) for r in inputs.references}
    if len(counts) > 1:
        raise MedvlError(f"every sample needs the same number of references for BLEU/chrF; found counts {counts}")
    return [list(stream) for stream in zip(*inputs.references, strict=True)]


def _sacrebleu_bleu():
    from sacrebleu.metrics import BLEU

    return BLEU()


def _bleu_stats_of(inputs: MetricInputs, texts: list[str]) -> np.ndarray:
    # Corpus BLEU is a function of per-sentence statistics summed over sentences, so the statistics of each sentence,
    # read from sacrebleu's public `corpus_score` of that one sentence, give the corpus score and its bootstrap exactly.
    bleu = _sacrebleu_bleu()
    rows = []
    for hypothesis, references in zip(texts, inputs.references, strict=True):
        score = bleu.corpus_score([hypothesis], [[reference] for reference in references])
        rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    inputs._signatures["bleu"] = str(bleu.get_signature())
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), 10)


def bleu_stats(inputs: MetricInputs) -> np.ndarray:
    """sacrebleu's per-sentence BLEU statistics `[hyp_len, ref_len, correct_1..4, total_1..4]` (N, 10)."""
    return _bleu_stats_of(inputs, inputs.generations)


def sentence_bleu(inputs: MetricInputs, stats: np.ndarray) -> np.ndarray:
    """Per-sample BLEU: sacrebleu's `sentence_score` with effective order (no zero for a short exact match)."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU(effective_order=True)
    return np.array(
        [
            scorer.sentence_score(h, list(refs)).score
            for h, refs in zip(inputs.generations, inputs.references, strict=True)
        ]
    )


def _bleu_vectorised(summed: np.ndarray, max_order: int) -> np.ndarray:
    # Mirrors sacrebleu.BLEU.compute_bleu with smooth_method="exp" (its default) over rows of summed statistics.
    summed = np.atleast_2d(summed)
    sys_len, ref_len = summed[:, 0], summed[:, 1]
    correct, total = summed[:, 2:6], summed[:, 6:10]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        smooth = np.ones(len(summed))
        valid = np.ones(len(summed), dtype=bool)
        log_sum = np.zeros(len(summed))
        for n in range(max_order):
            valid &= total[:, n] > 0
            zero = correct[:, n] == 0
            smooth = np.where(valid & zero, smooth * 2, smooth)
            precision = np.where(zero, 100.0 / (smooth * total[:, n]), 100.0 * correct[:, n] / total[:, n])
            precision = np.where(valid, precision, 0.0)
            log_sum += np.where(precision > 0, np.log(np.where(precision > 0, precision, 1.0)), -9999999999)
        score = bp * np.exp(log_sum / max_order)
    return np.where(correct.sum(1) > 0, score, 0.0)


def _bleu_point(max_order: int) -> Callable[[np.ndarray], float]:
    def point(summed: np.ndarray) -> float:
        from sacrebleu.metrics import BLEU

        stats = [int(x) for x in summed]
        return BLEU.compute_bleu(
            correct=stats[2:6], total=stats[6:10], sys_len=stats[0], ref_len=stats[1],
            smooth_method="exp", max_ngram_order=max_order,
        ).score  # fmt: skip

    return point


@register_metric(
    "bleu", higher_is_better=True, stats=bleu_stats, requires=TEXT, point=_bleu_point(4),
    signature=lambda inputs: inputs._signatures.get("bleu", ""), per_sample_score=sentence_bleu,
)  # fmt: skip
def bleu(summed: np.ndarray) -> np.ndarray:
    """sacrebleu corpus BLEU (13a tokenizer, exp smoothing, up to 4-grams)."""
    return _bleu_vectorised(summed, 4)


def _bleu_n(n: int) -> Callable[[np.ndarray], np.ndarray]:
    # BLEU-n: brevity penalty times the geometric mean of the 1..n-gram precisions (cumulative, like the COCO caption
    # toolkit's Bleu_1..4) from the same sacrebleu statistics: sacrebleu's 13a tokenisation and exp smoothing, so the
    # numbers are NOT comparable with COCO-toolkit BLEU-n (PTB tokeniser, no smoothing); BLEU-4 equals `bleu`.
    return lambda summed: _bleu_vectorised(summed, n)


def _bleu_n_signature(n: int) -> Callable[[MetricInputs], str]:
    return lambda inputs: inputs._signatures.get("bleu", "") + f"|max-ngram-order:{n}|sacrebleu-tokenised-not-coco"


_BLEU_N = {"higher_is_better": True, "stats": bleu_stats, "requires": TEXT, "per_sample": False}
register_metric("bleu1", point=_bleu_point(1), signature=_bleu_n_signature(1), **_BLEU_N)(_bleu_n(1))
register_metric("bleu2", point=_bleu_point(2), signature=_bleu_n_signature(2), **_BLEU_N)(_bleu_n(2))
register_metric("bleu3", point=_bleu_point(3), signature=_bleu_n_signature(3), **_BLEU_N)(_bleu_n(3))
register_metric("bleu4", point=_bleu_point(4), signature=_bleu_n_signature(4), **_BLEU_N)(_bleu_n(4))


def chrf_stats(inputs: MetricInputs) -> np.ndarray:
    """sacrebleu's per-sentence chrF statistics (N, 3 * char_order)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    stats = chrf._extract_corpus_statistics(inputs.generations, _reference_streams(inputs))
    inputs._signatures["chrf"] = str(chrf.get_signature())
    return np.asarray(stats, dtype=np.float64).reshape(len(inputs.generations), -1)


@register_metric(
    "chrf", higher_is_better=True, stats=chrf_stats, requires=TEXT,
    signature=lambda inputs: inputs._signatures.get("chrf", ""),
)  # fmt: skip
def chrf(summed: np.ndarray) -> np.ndarray:
    """sacrebleu corpus chrF (character 6-grams, beta 2)."""
    from sacrebleu.metrics import CHRF

    scorer = CHRF()
    return np.array([scorer._compute_f_score(list(row)) for row in np.atleast_2d(summed)])


def _mean_stats(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.stack([values, np.ones_like(values)], axis=1)  # (N, 2): sum of column 0 / count


def _mean(summed: np.ndarray) -> np.ndarray:
    summed = np.atleast_2d(summed)
    return summed[:, 0] / np.maximum(summed[:, 1], 1)


def rouge_l_stats(inputs: MetricInputs) -> np.ndarray:
    """Per-sample ROUGE-L F-measure (percent; best over references), as mean statistics (N, 2)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [
        scorer.score_multi(refs, hyp)["rougeL"].fmeasure * 100.0
        for hyp, refs in zip(inputs.generations, inputs.references, strict=True)
    ]
    return _mean_stats(scores)


register_metric(
    "rougeL", higher_is_better=True, stats=rouge_l_stats, requires=TEXT,
    signature=lambda inputs: f"rouge-score:{version('rouge-score')}|rougeL|stemmer:yes|fmeasure|mean",
)(_mean)  # fmt: skip


def _first_references(inputs: MetricInputs) -> list[str]:
    return [refs[0] if refs else "" for refs in inputs.references]


def finding_stats_vs_reference(inputs: MetricInputs) -> np.ndarray:
    """Finding F1 statistics of the generated report against the reference report (N, 3F)."""
    return f1_stats(
        inputs.extractor.positive_matrix(inputs.generations),
        inputs.extractor.positive_matrix(_first_references(inputs)),
    )


def _gt_stats(inputs: MetricInputs, texts: list[str]) -> np.ndarray:
    stats = f1_stats(
        inputs.extractor.positive_matrix(texts), inputs.extractor.ground_truth_matrix(inputs.ground_truth)
    )
    known = np.array([bool(items) for items in inputs.ground_truth])
    return stats * known[:, None]  # samples without ground truth add nothing to the sums


def finding_stats_vs_ground_truth(inputs: MetricInputs) -> np.ndarray:
    """Finding F1 statistics of the generated report against the structured ground truth (N, 3F)."""
    return _gt_stats(inputs, inputs.generations)


def finding_stats_reference_vs_ground_truth(inputs: MetricInputs) -> np.ndarray:
    """Finding F1 of the reference report against the ground truth: the extractor's own accuracy (N, 3F)."""
    return _gt_stats(inputs, _first_references(inputs))


def _lexicon_signature(inputs: MetricInputs) -> str:
    return f"medvl-{inputs.extractor.signature}|findings:{len(inputs.extractor.names)}"


_VS_REF = {"stats": finding_stats_vs_reference, "requires": TEXT}
_VS_GT = {"stats": finding_stats_vs_ground_truth, "requires": ("generations", "ground_truth")}
_REF_VS_GT = {"stats": finding_stats_reference_vs_ground_truth, "requires": ("references", "ground_truth")}
_F1 = {"higher_is_better": True, "signature": _lexicon_signature}
register_metric("finding_f1_micro", **_VS_REF, **_F1)(micro_f1)
register_metric("finding_f1_macro", per_sample=False, **_VS_REF, **_F1)(macro_f1)
register_metric("finding_f1_micro_gt", **_VS_GT, **_F1)(micro_f1)
register_metric("finding_f1_macro_gt", per_sample=False, **_VS_GT, **_F1)(macro_f1)
register_metric("finding_f1_micro_reference_vs_gt", **_REF_VS_GT, **_F1)(micro_f1)
register_metric("finding_f1_macro_reference_vs_gt", per_sample=False, **_REF_VS_GT, **_F1)(macro_f1)


# Grounding: does the generation depend on the image? (see `grounding.py`)


def distinct_generation_stats(inputs: MetricInputs) -> np.ndarray:
    """`[generation id, sample index]` per sample (N, 2); equal ids are the same (normalised) text."""
    return distinct_stats(inputs.generations)


register_metric(
    "distinct_generations", higher_is_better=True, stats=distinct_generation_stats, requires=("generations",),
    decomposable=False, per_sample=False,
    signature=lambda inputs: "distinct-share|normalise:lowercase+whitespace|bootstrap:mean-inverse-count",
)(lambda stats: 100.0 * distinct_share(stats))  # fmt: skip


def _agreement(inputs: MetricInputs, field_: str) -> np.ndarray:
    return agreement_stats(
        inputs.study_parser, inputs.generations, _first_references(inputs), inputs.dataset_modalities, field=field_
    )


def modality_agreement_stats(inputs: MetricInputs) -> np.ndarray:
    """`[agrees, scored]` per sample (N, 2): the generation names the reference's modality class."""
    return _agreement(inputs, "modality")


def region_agreement_stats(inputs: MetricInputs) -> np.ndarray:
    """`[agrees, scored]` per sample (N, 2): the generation names the reference's body region."""
    return _agreement(inputs, "region")


def study_agreement_stats(inputs: MetricInputs) -> np.ndarray:
    """`[agrees, scored]` per sample (N, 2): modality and region both right (scored where both are)."""
    modality, region = _agreement(inputs, "modality"), _agreement(inputs, "region")
    scored = modality[:, 1] * region[:, 1]
    return np.stack([modality[:, 0] * region[:, 0] * scored, scored], axis=1)


def _percent_mean(summed: np.ndarray) -> np.ndarray:
    return 100.0 * _mean(summed)


def _study_signature(inputs: MetricInputs) -> str:
    return inputs.study_parser.signature + "|reference-text-then-dataset-modality|percent-of-scored"


def _percent_where_scored(inputs: MetricInputs, stats: np.ndarray) -> np.ndarray:
    # The per-sample value of an agreement: 100 or 0 where the sample is scored, NaN (left out of per_sample.jsonl)
    # where it is not, so that an unscored sample does not read as a disagreement.
    return np.where(stats[:, 1] > 0, 100.0 * stats[:, 0], np.nan)


_AGREE = {
    "higher_is_better": True,
    "requires": TEXT,
    "signature": _study_signature,
    "per_sample_score": _percent_where_scored,
}
register_metric("modality_agreement", stats=modality_agreement_stats, **_AGREE)(_percent_mean)
register_metric("region_agreement", stats=region_agreement_stats, **_AGREE)(_percent_mean)
register_metric("study_agreement", stats=study_agreement_stats, **_AGREE)(_percent_mean)


def swap_finding_stats_vs_ground_truth(inputs: MetricInputs) -> np.ndarray:
    """Finding F1 statistics vs the ground truth with the own images, then with swapped images (N, 2 * 3F)."""
    return np.concatenate([_gt_stats(inputs, inputs.generations), _gt_stats(inputs, inputs.swap_generations)], 1)


def swap_finding_stats_vs_reference(inputs: MetricInputs) -> np.ndarray:
    """Finding F1 statistics vs the reference with the own images, then with swapped images (N, 2 * 3F)."""
    reference = inputs.extractor.positive_matrix(_first_references(inputs))
    own = f1_stats(inputs.extractor.positive_matrix(inputs.generations), reference)
    swapped = f1_stats(inputs.extractor.positive_matrix(inputs.swap_generations), reference)
    return np.concatenate([own, swapped], 1)


def swap_bleu_stats(inputs: MetricInputs) -> np.ndarray:
    """BLEU statistics with the own images, then with swapped images (N, 20)."""
    return np.concatenate(
        [_bleu_stats_of(inputs, inputs.generations), _bleu_stats_of(inputs, inputs.swap_generations)], 1
    )


def _halves(score: Callable[[np.ndarray], np.ndarray], part: str) -> Callable[[np.ndarray], np.ndarray]:
    # Statistics of the own-image and swapped-image generations sit side by side; score one half or own - swapped.
    def aggregate(summed: np.ndarray) -> np.ndarray:
        summed = np.atleast_2d(summed)
        half = summed.shape[1] // 2
        own, swapped = score(summed[:, :half]), score(summed[:, half:])
        return swapped if part == "swapped" else own - swapped

    return aggregate


def _bleu_swap_point(part: str) -> Callable[[np.ndarray], float]:
    point = _bleu_point(4)
    return lambda summed: point(summed[10:]) if part == "swapped" else point(summed[:10]) - point(summed[10:])


_SWAP = ("generations", "swap_generations")
_SWAP_GT = {"stats": swap_finding_stats_vs_ground_truth, "requires": (*_SWAP, "ground_truth")}
_SWAP_REF = {"stats": swap_finding_stats_vs_reference, "requires": (*_SWAP, "references")}
_SWAP_BLEU = {
    "stats": swap_bleu_stats, "requires": (*_SWAP, "references"), "per_sample": False,
    "signature": lambda inputs: inputs._signatures.get("bleu", "") + "|image-swap:derangement",
}  # fmt: skip
_SWAP_F1_SIG = {"signature": lambda inputs: _lexicon_signature(inputs) + "|image-swap:derangement"}
# A grounded decoder scores worse with another sample's image: the swapped score is better low, the drop high.
register_metric("finding_f1_micro_gt_swapped", higher_is_better=False, **_SWAP_GT, **_SWAP_F1_SIG)(
    _halves(micro_f1, "swapped")
)
register_metric("finding_f1_micro_gt_swap_drop", higher_is_better=True, **_SWAP_GT, **_SWAP_F1_SIG)(
    _halves(micro_f1, "drop")
)
register_metric("finding_f1_micro_swapped", higher_is_better=False, **_SWAP_REF, **_SWAP_F1_SIG)(
    _halves(micro_f1, "swapped")
)
register_metric("finding_f1_micro_swap_drop", higher_is_better=True, **_SWAP_REF, **_SWAP_F1_SIG)(
    _halves(micro_f1, "drop")
)
register_metric("bleu_swapped", higher_is_better=False, point=_bleu_swap_point("swapped"), **_SWAP_BLEU)(
    _halves(lambda s: _bleu_vectorised(s, 4), "swapped")
)
register_metric("bleu_swap_drop", higher_is_better=True, point=_bleu_swap_point("drop"), **_SWAP_BLEU)(
    _halves(lambda s: _bleu_vectorised(s, 4), "drop")
)


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def _sigmoid_probability(cosine: np.ndarray, inputs: MetricInputs) -> np.ndarray:
    return match_probability(cosine, inputs.logit_scale, inputs.logit_bias)


def register_similarity(name: str, requires: tuple[str, ...], score: Callable[[MetricInputs], np.ndarray], scale: str):
    """Register metric `name`: the mean over samples of the per-sample similarity `score(inputs)`.

    The mean is decomposable, so bootstrap intervals come from summed statistics like the other metrics.
    """

    def stats(inputs: MetricInputs) -> np.ndarray:
        return _mean_stats(score(inputs))

    stats.__name__ = f"{name}_stats"  # statistics are computed once per function name and shared
    model = "sentence_model" if name == "embedding_cosine" else "encoder"
    register_metric(
        name,
        higher_is_better=True,
        stats=stats,
        requires=requires,
        scale=scale,
        signature=_model_signature(name, model),
    )(_mean)


def _model_signature(name: str, role: str) -> Callable[[MetricInputs], str]:
    # An embedding metric is only comparable across runs with the same embedding model (set by the runner).
    return lambda inputs: f"medvl-{name}|{role}:{inputs._signatures.get(role, 'unknown')}|mean-over-samples"


def _image_prob(text_emb: str) -> Callable[[MetricInputs], np.ndarray]:
    return lambda x: _sigmoid_probability(_rowwise_cosine(x.image_emb, getattr(x, text_emb)), x)


_LOGIT = ("logit_scale", "logit_bias")
register_similarity(
    "embedding_cosine",
    ("gen_sent_emb", "ref_sent_emb"),
    lambda x: _rowwise_cosine(x.gen_sent_emb, x.ref_sent_emb),
    "cosine",
)
register_similarity(
    "siglip_text_cosine",
    ("gen_text_emb", "ref_text_emb"),
    lambda x: _rowwise_cosine(x.gen_text_emb, x.ref_text_emb),
    "cosine",
)
register_similarity(
    "siglip_image_cosine_gen",
    ("image_emb", "gen_text_emb"),
    lambda x: _rowwise_cosine(x.image_emb, x.gen_text_emb),
    "cosine",
)
register_similarity(
    "siglip_image_cosine_ref",
    ("image_emb", "ref_text_emb"),
    lambda x: _rowwise_cosine(x.image_emb, x.ref_text_emb),
    "cosine",
)
register_similarity(
    "siglip_image_prob_gen", ("image_emb", "gen_text_emb", *_LOGIT), _image_prob("gen_text_emb"), "probability"
)
register_similarity(
    "siglip_image_prob_ref", ("image_emb", "ref_text_emb", *_LOGIT), _image_prob("ref_text_emb"), "probability"
)


def retrieval_stats(inputs: MetricInputs) -> np.ndarray:
    """Per-pair retrieval statistics: `[i2t_rank, t2i_rank, i2t_hit@k..., t2i_hit@k...]` (N, 2 + 2 * len(KS)).

    Bootstrap resamples are over queries with the gallery held fixed (the full evaluation set).
    """
    i2t, t2i = retrieval_ranks(inputs.image_emb, inputs.ref_text_emb)
    hits = [(i2t <= k) for k in RETRIEVAL_KS] + [(t2i <= k) for k in RETRIEVAL_KS]
    return np.stack([i2t, t2i, *hits], axis=1).astype(np.float64)


def retrieval_stats_with_count(inputs: MetricInputs) -> np.ndarray:
    """`retrieval_stats` plus a trailing column of ones (the number of queries once summed)."""
    stats = retrieval_stats(inputs)
    return np.concatenate([stats, np.ones((len(stats), 1))], axis=1)


def _recall_at(column: int) -> Callable[[np.ndarray], np.ndarray]:
    # Percent of queries whose true match ranks in the top k (column: that k's hit column of `retrieval_stats`).
    return lambda summed: 100.0 * np.atleast_2d(summed)[:, column] / np.atleast_2d(summed)[:, -1]


def _mean_rank(column: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda summed: np.atleast_2d(summed)[:, column] / np.atleast_2d(summed)[:, -1]


def _median_rank(column: int) -> Callable[[np.ndarray], float]:
    # The median is not a function of sums: it is computed on each resample's per-query ranks.
    return lambda stats: float(np.median(stats[:, column]))


# Columns of `retrieval_stats`: i2t rank, t2i rank, i2t hit@1/5/10, t2i hit@1/5/10 (RETRIEVAL_KS = (1, 5, 10)).
_RETRIEVAL_SIGNATURE = _model_signature("retrieval", "encoder")
_RECALL = {
    "signature": lambda inputs: _RETRIEVAL_SIGNATURE(inputs) + "|cosine|ties:strictly-higher|gallery:whole-split",
    "higher_is_better": True,
    "stats": retrieval_stats_with_count,
    "requires": ("image_emb", "ref_text_emb"),
    "per_sample": False,
}
_RANK = {
    "signature": _RECALL["signature"],
    "higher_is_better": False,
    "stats": retrieval_stats_with_count,
    "requires": ("image_emb", "ref_text_emb"),
    "scale": "rank",
}
_MEDIAN = {"decomposable": False, "per_sample": False}
register_metric("i2t_recall@1", **_RECALL)(_recall_at(2))
register_metric("i2t_recall@5", **_RECALL)(_recall_at(3))
register_metric("i2t_recall@10", **_RECALL)(_recall_at(4))
register_metric("i2t_mean_rank", **_RANK)(_mean_rank(0))
register_metric("i2t_median_rank", **_RANK, **_MEDIAN)(_median_rank(0))
register_metric("t2i_recall@1", **_RECALL)(_recall_at(5))
register_metric("t2i_recall@5", **_RECALL)(_recall_at(6))
register_metric("t2i_recall@10", **_RECALL)(_recall_at(7))
register_metric("t2i_mean_rank", **_RANK)(_mean_rank(1))
register_metric("t2i_median_rank", **_RANK, **_MEDIAN)(_median_rank(1))


def available_metrics(inputs: MetricInputs, names: Sequence[str] | None = None) -> list[str]:
    """Names of the metrics (all registered, or `names`) whose required inputs are present."""
    if names:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise MedvlError(f"unknown metrics {unknown}; registered metrics are {sorted(METRICS)}")
    return [n for n in (names or METRICS) if all(inputs.has(field_) for field_ in METRICS[n].requires)]


@dataclass
class MetricResult:
    """The outcome of one metric: point estimate, bootstrap interval and what is needed to compare runs."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    higher_is_better: bool
    scale: str
    signature: str
    stats_key: str
    per_sample: np.ndarray | None


def _compute_one(name, inputs, stats_cache, counts, n_resamples, seed, confidence) -> "MetricResult":
    # One metric: its per-sample statistics (shared between metrics through `stats_cache`), point, interval.
    spec = METRICS[name]
    key = spec.stats.__name__
    if key not in stats_cache:
        stats_cache[key] = np.asarray(spec.stats(inputs), dtype=np.float64)
    stats = stats_cache[key]
    if not np.isfinite(stats).all():
        raise MedvlError(
            f"metric {name!r} got non-finite per-sample values (NaN/inf) at rows "
            f"{np.where(~np.isfinite(stats).all(1))[0][:10].tolist()}; check the model outputs/embeddings"
        )
    if spec.decomposable:
        summed = stats.sum(0)
        value = float(spec.point(summed) if spec.point else spec.aggregate(summed[None])[0])
    else:
        value = float(spec.aggregate(stats))
    if not math.isfinite(value):
        raise MedvlError(f"metric {name!r} is {value}; check its inputs (empty references? NaN embeddings?)")
    if n_resamples > 0:
        samples = bootstrap_distribution(
            stats, spec.aggregate, n_resamples=n_resamples, seed=seed, decomposable=spec.decomposable,
            counts=counts if spec.decomposable else None,
        )  # fmt: skip
        low, high = confidence_interval(samples, confidence)
    else:
        low = high = value
    per_sample = None
    if spec.per_sample_score is not None:
        per_sample = np.asarray(spec.per_sample_score(inputs, stats), dtype=np.float64)
    elif spec.per_sample:
        per_sample = np.asarray(spec.aggregate(stats), dtype=np.float64)
    return MetricResult(
        name=name,
        value=value,
        ci_low=low,
        ci_high=high,
        higher_is_better=spec.higher_is_better,
        scale=spec.scale,
        signature=spec.signature(inputs) if spec.signature else "",
        stats_key=key,
        per_sample=per_sample,
    )


def compute_metrics(
    inputs: MetricInputs,
    names: Sequence[str] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[dict[str, MetricResult], dict[str, np.ndarray]]:
    """Compute metrics with bootstrap confidence intervals.

    Args:
        inputs (`MetricInputs`):
            The data; metrics whose inputs are missing are skipped (logged).
        names (`Sequence[str]`, *optional*):
            Metric names; all registered metrics when None.
        n_resamples (`int`, *optional*, defaults to 1000):
            Bootstrap resamples (0 disables the intervals: they equal the point estimate).
        seed (`int`, *optional*, defaults to 0):
            Bootstrap seed (the same resamples for every metric).
        confidence (`float`, *optional*, defaults to 0.95):
            Interval coverage.

    Returns:
        `(results, stats)`: metric name -> `MetricResult`, and stats key -> per-sample statistics (N, K) (saved
        so that `medvl eval compare` can test differences without recomputing).

    Raises:
        `MedvlError`: when a metric's value is NaN or infinite (e.g. NaN embeddings).
    """
    if len(inputs) == 0:
        raise MedvlError("no samples to evaluate; check --split/--max-samples or the predictions file")
    selected = available_metrics(inputs, names)
    skipped = [n for n in (names or METRICS) if n not in selected]
    if skipped:
        logger.info("Skipping metrics without their inputs: %s", ", ".join(skipped))
    stats_cache: dict[str, np.ndarray] = {}
    # Draw the resamples once for all metrics when they fit in memory (10k samples x 1000 resamples = 40 MB).
    counts = resample_counts(len(inputs), n_resamples, seed) if 0 < len(inputs) * n_resamples <= 20_000_000 else None
    results = {}
    for name in selected:
        results[name] = _compute_one(name, inputs, stats_cache, counts, n_resamples, seed, confidence)
    return results, stats_cache
