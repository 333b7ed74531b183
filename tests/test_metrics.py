# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Metric registry against references: sacrebleu, hand-computed BLEU-n / ROUGE-L, brute-force retrieval, bootstrap."""

import math

import numpy as np
import pytest
import sacrebleu
import torch

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.bootstrap import (
    bootstrap_distribution,
    confidence_interval,
    paired_randomization_test,
)
from medvl_recipes.evaluation.metrics import (
    METRICS,
    MetricInputs,
    available_metrics,
    bleu_stats,
    compute_metrics,
    register_metric,
    retrieval_ranks,
)


CORPORA = {
    "plain": (
        ["The heart is enlarged.", "No pleural effusion or pneumothorax.", "Small nodule in the right upper lobe."],
        [["The heart is mildly enlarged.", "No effusion or pneumothorax is seen.", "Nodule in the right lobe."]],
    ),
    "empty_hypotheses": (
        ["", "No pleural effusion.", ""],
        [["Normal chest.", "No pleural effusion is seen.", "Left rib fracture."]],
    ),
    "all_empty": (["", ""], [["Normal chest.", "Cardiomegaly."]]),
    "multi_reference": (
        ["the cat sat on the mat", "there is a small left effusion", "lungs are clear"],
        [
            ["the cat is on the mat", "small left pleural effusion", "the lungs are clear"],
            ["a cat sat on the mat", "there is a small effusion on the left", "clear lungs"],
        ],
    ),
    "tokenized_and_repeated": (
        ["no acute findings .", "no acute findings .", "heart size normal ."],
        [["No acute findings.", "No acute cardiopulmonary findings.", "Heart size is normal."]],
    ),
}


def _inputs(hyps, ref_streams, **kw):
    references = [list(refs) for refs in zip(*ref_streams, strict=True)]
    return MetricInputs(generations=hyps, references=references, **kw)


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_bleu_equals_sacrebleu_corpus_bleu_exactly(corpus):
    hyps, refs = CORPORA[corpus]
    results, stats = compute_metrics(_inputs(hyps, refs), ["bleu", "bleu4", "chrf"], n_resamples=0)
    scorer = sacrebleu.BLEU()
    expected = scorer.corpus_score(hyps, refs)
    assert expected.score == sacrebleu.corpus_bleu(hyps, refs).score
    assert results["bleu"].value == expected.score
    assert results["bleu4"].value == expected.score
    assert results["chrf"].value == sacrebleu.corpus_chrf(hyps, refs).score
    assert results["bleu"].signature == str(scorer.get_signature())
    # The vectorised formula the bootstrap uses agrees with sacrebleu's own.
    assert METRICS["bleu"].aggregate(stats["bleu_stats"].sum(0)[None])[0] == pytest.approx(expected.score, abs=1e-9)


def test_bleu_resample_recomputes_the_corpus_score():
    # A bootstrap resample = a corpus with repeated sentences: the summed statistics must give sacrebleu's score on
    # exactly that corpus (not an average of sentence scores).
    hyps, refs = CORPORA["plain"]
    stats = bleu_stats(_inputs(hyps, refs))
    for counts in ([2, 0, 1], [0, 3, 0], [1, 1, 1]):
        corpus_h = [h for h, c in zip(hyps, counts, strict=True) for _ in range(c)]
        corpus_r = [[r for r, c in zip(refs[0], counts, strict=True) for _ in range(c)]]
        summed = np.asarray(counts, dtype=float) @ stats
        assert METRICS["bleu"].aggregate(summed[None])[0] == pytest.approx(
            sacrebleu.corpus_bleu(corpus_h, corpus_r).score, abs=1e-9
        )


def test_bleu_n_matches_hand_computed():
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat": p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, BP = 1.
    inputs = MetricInputs(generations=["the cat sat on the mat"], references=["the cat sat on a mat"])
    results, _ = compute_metrics(inputs, ["bleu1", "bleu2", "bleu3", "bleu4"], n_resamples=0)
    p = [5 / 6, 3 / 5, 2 / 4, 1 / 3]
    for n in range(1, 5):
        assert results[f"bleu{n}"].value == pytest.approx(100 * math.prod(p[:n]) ** (1 / n), rel=1e-12)
    # Brevity penalty: "the cat" vs a 6-token reference, all n-grams match: BP = exp(1 - 6/2).
    inputs = MetricInputs(generations=["the cat"], references=["the cat sat on the mat"])
    results, _ = compute_metrics(inputs, ["bleu1", "bleu2"], n_resamples=0)
    assert results["bleu1"].value == pytest.approx(100 * math.exp(-2), rel=1e-12)
    assert results["bleu2"].value == pytest.approx(100 * math.exp(-2), rel=1e-12)


def test_rouge_l_matches_hand_computed():
    # LCS("the cat sat on the mat", "the cat is on the mat") = 5 -> P = R = F = 5/6.
    # LCS("a b c d", "a c e") = 2 -> P = 1/2, R = 2/3, F = 4/7. Corpus ROUGE-L = mean F.
    inputs = MetricInputs(
        generations=["the cat sat on the mat", "a b c d"], references=["the cat is on the mat", "a c e"]
    )
    results, _ = compute_metrics(inputs, ["rougeL"], n_resamples=0)
    np.testing.assert_allclose(results["rougeL"].per_sample, [100 * 5 / 6, 100 * 4 / 7], rtol=1e-12)
    assert results["rougeL"].value == pytest.approx(100 * (5 / 6 + 4 / 7) / 2, rel=1e-12)


def _brute_force_ranks(sims: np.ndarray) -> np.ndarray:
    ranks = []
    for i, row in enumerate(sims):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j != i))  # ties: the true match first
        ranks.append(order.index(i) + 1)
    return np.array(ranks)


@pytest.mark.parametrize("n", [1, 7, 37])
def test_recall_at_k_matches_brute_force(n):
    g = torch.Generator().manual_seed(n)
    image_emb = torch.nn.functional.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1).numpy()
    text_emb = torch.nn.functional.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1).numpy()
    if n > 3:
        text_emb[3] = text_emb[2]  # a duplicate caption: ties do not count against the true pair
    sims = image_emb @ text_emb.T
    i2t, t2i = _brute_force_ranks(sims), _brute_force_ranks(sims.T)
    np.testing.assert_array_equal(retrieval_ranks(image_emb, text_emb, chunk=5), (i2t, t2i))
    results, _ = compute_metrics(MetricInputs(image_emb=image_emb, ref_text_emb=text_emb), n_resamples=0)
    for direction, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            assert results[f"{direction}_recall@{k}"].value == pytest.approx(100 * np.mean(ranks <= k))
        assert results[f"{direction}_mean_rank"].value == pytest.approx(ranks.mean())
        assert results[f"{direction}_median_rank"].value == pytest.approx(np.median(ranks))


def test_retrieval_agrees_with_encoder_retrieval_metrics():
    from medvl_recipes.retrieval import retrieval_metrics

    g = torch.Generator().manual_seed(0)
    image_emb = torch.nn.functional.normalize(torch.randn(23, 16, generator=g), dim=-1)
    text_emb = torch.nn.functional.normalize(image_emb + 0.8 * torch.randn(23, 16, generator=g), dim=-1)
    theirs = retrieval_metrics(image_emb, text_emb)
    ours, _ = compute_metrics(MetricInputs(image_emb=image_emb.numpy(), ref_text_emb=text_emb.numpy()), n_resamples=0)
    for name, value in theirs.items():
        if name == "num_pairs":
            continue
        scale = 100.0 if "recall" in name else 1.0
        assert ours[name].value == pytest.approx(scale * value, abs=1e-4), name  # theirs is float32


def test_siglip_probability_formula():
    image_emb = np.array([[1.0, 0.0], [0.6, 0.8]])
    text_emb = np.array([[0.8, 0.6], [0.6, 0.8]])
    inputs = MetricInputs(
        image_emb=image_emb, gen_text_emb=text_emb, ref_text_emb=text_emb, logit_scale=1.5, logit_bias=-2.0
    )
    results, _ = compute_metrics(inputs, ["siglip_image_cosine_gen", "siglip_image_prob_gen"], n_resamples=0)
    cos = np.array([0.8, 1.0])
    np.testing.assert_allclose(results["siglip_image_cosine_gen"].per_sample, cos)
    np.testing.assert_allclose(
        results["siglip_image_prob_gen"].per_sample, 1 / (1 + np.exp(-(math.exp(1.5) * cos - 2.0)))
    )


def _synthetic_inputs(n: int, seed: int) -> MetricInputs:
    rng = np.random.default_rng(seed)
    words = ["effusion", "no", "the", "heart", "is", "enlarged", "small", "left", "pneumothorax", "clear"]
    refs = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    hyps = [" ".join(w if rng.random() < 0.6 else rng.choice(words) for w in r.split()) for r in refs]
    emb = rng.normal(size=(n, 4))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    noisy = emb + 0.5 * rng.normal(size=emb.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return MetricInputs(generations=hyps, references=refs, gen_sent_emb=noisy, ref_sent_emb=emb)


def test_bootstrap_ci_contains_point_and_shrinks_with_more_samples():
    names = ["bleu", "chrf", "rougeL", "embedding_cosine", "finding_f1_micro"]
    small, _ = compute_metrics(_synthetic_inputs(40, 0), names, n_resamples=300, seed=0)
    large, _ = compute_metrics(_synthetic_inputs(640, 0), names, n_resamples=300, seed=0)
    for name in names:
        for res in (small[name], large[name]):
            assert res.ci_low <= res.value <= res.ci_high, name
        if name != "finding_f1_micro":  # random words rarely mention findings; width there is degenerate
            assert large[name].ci_high - large[name].ci_low < small[name].ci_high - small[name].ci_low, name
    again, _ = compute_metrics(_synthetic_inputs(40, 0), names, n_resamples=300, seed=0)
    assert again["bleu"].ci_low == small["bleu"].ci_low  # seeded


def test_bootstrap_vectorised_matches_explicit_resamples():
    rng = np.random.default_rng(3)
    stats = np.stack([rng.random(50), np.ones(50)], axis=1)
    mean = METRICS["rougeL"].aggregate
    fast = bootstrap_distribution(stats, mean, n_resamples=2000, seed=1)
    slow = bootstrap_distribution(stats, lambda s: s[:, 0].mean(), n_resamples=2000, seed=1, decomposable=False)
    # Different random streams, same distribution: the intervals agree closely.
    np.testing.assert_allclose(confidence_interval(fast), confidence_interval(slow), atol=0.02)


def test_paired_randomization_test():
    inputs = _synthetic_inputs(200, 1)
    _, stats = compute_metrics(inputs, ["bleu", "rougeL"], n_resamples=0)
    delta, p = paired_randomization_test(
        stats["bleu_stats"], stats["bleu_stats"], METRICS["bleu"].aggregate, n_resamples=200
    )
    assert delta == 0 and p == 1.0
    worse = MetricInputs(generations=["the"] * 200, references=inputs.references)
    _, stats_worse = compute_metrics(worse, ["rougeL"], n_resamples=0)
    delta, p = paired_randomization_test(
        stats["rouge_l_stats"], stats_worse["rouge_l_stats"], METRICS["rougeL"].aggregate, n_resamples=200
    )
    assert delta > 0 and p < 0.01


def test_bad_inputs_raise_medvl_error():
    with pytest.raises(MedvlError, match="mismatched lengths"):
        MetricInputs(generations=["a", "b"], references=["a"])
    nan_emb = np.full((2, 3), np.nan)
    with pytest.raises(MedvlError, match="non-finite"):
        compute_metrics(MetricInputs(gen_sent_emb=nan_emb, ref_sent_emb=nan_emb), ["embedding_cosine"], n_resamples=0)
    with pytest.raises(MedvlError, match="unknown metrics"):
        available_metrics(MetricInputs(generations=["a"], references=["a"]), ["bleu", "nope"])
    with pytest.raises(MedvlError, match="no samples"):
        compute_metrics(MetricInputs(generations=[], references=[]), ["bleu"])


def test_registry_names_and_direction():
    assert {"bleu", "bleu1", "chrf", "rougeL", "finding_f1_micro", "embedding_cosine", "i2t_recall@1"} <= set(METRICS)
    assert METRICS["i2t_mean_rank"].higher_is_better is False
    assert METRICS["bleu"].higher_is_better is True
    with pytest.raises(ValueError, match="already registered"):
        register_metric("bleu", higher_is_better=True, stats=bleu_stats, requires=())(lambda s: s)
    # Only metrics whose inputs exist run.
    assert available_metrics(MetricInputs(generations=["a"], references=["a"])) == [
        n for n in METRICS if set(METRICS[n].requires) <= {"generations", "references"}
    ]


def test_per_sample_bleu_is_sacrebleus_sentence_bleu_with_effective_order():
    from sacrebleu.metrics import BLEU

    hyps = ["No pleural effusion.", "Small left pleural effusion.", "Normal chest."]
    refs = ["No pleural effusion.", "Large right pleural effusion.", "The heart is enlarged."]
    results, _ = compute_metrics(MetricInputs(generations=hyps, references=refs), ["bleu"], n_resamples=0)
    expected = [BLEU(effective_order=True).sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
    np.testing.assert_allclose(results["bleu"].per_sample, expected)
    assert results["bleu"].per_sample[0] == pytest.approx(
        100.0
    )  # a short exact match is not zeroed by missing 4-grams


# Grounding metrics (`grounding.py`): distinct share, study agreement, image-swap control.

PHANTOM_REPORTS = [
    "Axial CT of the head. Right frontal lobe mass is present. No skull fracture.",
    "PA chest radiograph. There is a small left pleural effusion. No pneumothorax.",
    "Axial T2 MRI of the brain. No intracranial mass. No acute finding.",
    "Knee X-ray, AP view. A fracture of the proximal tibia is seen.",
    "Axial CT of the abdomen. There is a mass in the liver. No vertebral fracture.",
    "Chest CT, axial image. Left lung nodule is present. No pleural effusion.",
]


def test_constant_generations_have_distinct_share_one_over_n():
    n = len(PHANTOM_REPORTS)
    constant = MetricInputs(generations=[PHANTOM_REPORTS[1]] * n, references=PHANTOM_REPORTS)
    results, _ = compute_metrics(constant, ["distinct_generations"], n_resamples=200)
    assert results["distinct_generations"].value == pytest.approx(100.0 / n)
    # Every sample carries 1 / (samples with its text): a resample keeps the share at 1 / n.
    assert results["distinct_generations"].ci_high <= 100.0 / 2
    own = MetricInputs(generations=PHANTOM_REPORTS, references=PHANTOM_REPORTS)
    results, _ = compute_metrics(own, ["distinct_generations"], n_resamples=200)
    assert results["distinct_generations"].value == 100.0
    assert results["distinct_generations"].ci_low == 100.0  # distinct samples are never counted as repeats
    # Case and whitespace do not make a report distinct.
    near = MetricInputs(generations=["No acute finding.", "no  acute FINDING."], references=["a", "b"])
    assert compute_metrics(near, ["distinct_generations"], n_resamples=0)[0]["distinct_generations"].value == 50.0


def test_distinct_share_interval_holds_its_value():
    # The quickstart's shape: 72 samples, 7 texts, one of them written for 60 samples. Counting distinct texts per
    # resample put the interval above the value (9.72 [10.64, 16.67]).
    generations = [PHANTOM_REPORTS[0]] * 60 + [PHANTOM_REPORTS[1]] * 6 + [f"Report {i}." for i in range(6)]
    inputs = MetricInputs(generations=generations, references=["x"] * len(generations))
    result = compute_metrics(inputs, ["distinct_generations"], n_resamples=1000)[0]["distinct_generations"]
    assert result.value == pytest.approx(100.0 * 8 / 72)
    assert result.ci_low <= result.value <= result.ci_high


def test_modality_and_region_agreement_against_hand_labels():
    references = PHANTOM_REPORTS
    generations = [
        "Axial CT of the head. No skull fracture.",  # CT head: both right
        "Axial CT of the chest. No pneumothorax.",  # CT vs XR: modality wrong, region right
        "Axial T2 MRI of the brain. Mass in the left frontal lobe.",  # MR brain -> head: both right
        "PA radiograph of the hand. No fracture.",  # XR right, hand vs knee wrong
        "Axial CT of the head. No acute finding.",  # CT right, head vs abdomen wrong
        "Left lung nodule is present.",  # no modality named (reference has CT): wrong; region cue lung -> chest
    ]
    inputs = MetricInputs(generations=generations, references=references)
    results, stats = compute_metrics(
        inputs, ["modality_agreement", "region_agreement", "study_agreement"], n_resamples=0
    )
    assert stats["modality_agreement_stats"].tolist() == [[1, 1], [0, 1], [1, 1], [1, 1], [1, 1], [0, 1]]
    assert stats["region_agreement_stats"].tolist() == [[1, 1], [1, 1], [1, 1], [0, 1], [0, 1], [1, 1]]
    assert results["modality_agreement"].value == pytest.approx(100 * 4 / 6)
    assert results["region_agreement"].value == pytest.approx(100 * 4 / 6)
    assert results["study_agreement"].value == pytest.approx(100 * 2 / 6)


def test_modality_agreement_falls_back_to_the_dataset_modality_column():
    # Open-I style findings name no modality; the DICOM column ("CR") decides. Where neither text names one, the
    # sample is not scored; an unknown column value leaves it unscored too.
    references = ["No pleural effusion.", "No pneumothorax.", "No cardiomegaly.", "No nodule."]
    generations = ["PA chest radiograph. No effusion.", "Axial CT of the chest.", "No pleural effusion.", "X-ray."]
    inputs = MetricInputs(generations=generations, references=references, dataset_modalities=["CR", "DX", "CR", "??"])
    results, stats = compute_metrics(inputs, ["modality_agreement"], n_resamples=0)
    assert stats["modality_agreement_stats"].tolist() == [[1, 1], [0, 1], [0, 0], [0, 0]]
    # per_sample.jsonl: an unscored sample has no value, not a disagreement (NaN is left out by the runner).
    per_sample = results["modality_agreement"].per_sample
    assert per_sample[:2].tolist() == [100.0, 0.0] and np.isnan(per_sample[2:]).all()


def _swap_inputs(generate, n_rounds: int = 3) -> MetricInputs:
    from medvl_recipes.evaluation.findings import FindingExtractor
    from medvl_recipes.evaluation.grounding import image_swap_generations

    references = PHANTOM_REPORTS * n_rounds
    extractor = FindingExtractor()
    ground_truth = [
        [{"finding": name, "site": None, "present": label != "absent"} for name, label in extractor.extract(r).items()]
        for r in references
    ]
    images = list(range(len(references)))  # a sample's "image" is its index: the fake decoder reads it
    swapped, perm = image_swap_generations(generate, images, seed=0, batch_size=4)
    assert sorted(perm.tolist()) == images and all(perm[i] != i for i in images)
    return MetricInputs(
        generations=generate(images), swap_generations=swapped, references=references, ground_truth=ground_truth
    )


def test_image_swap_control_drops_for_an_image_reading_generator_and_not_for_a_blind_one():
    names = ["finding_f1_micro_gt", "finding_f1_micro_gt_swapped", "finding_f1_micro_gt_swap_drop", "bleu_swap_drop"]
    reads_image = _swap_inputs(lambda images: [(PHANTOM_REPORTS * 3)[i] for i in images])
    results, _ = compute_metrics(reads_image, names, n_resamples=200)
    assert results["finding_f1_micro_gt"].value == 100.0
    assert results["finding_f1_micro_gt_swapped"].value < 50.0
    drop = results["finding_f1_micro_gt_swap_drop"]
    assert drop.value == pytest.approx(100.0 - results["finding_f1_micro_gt_swapped"].value)
    assert drop.value > 50.0 and drop.ci_low > 0
    assert results["bleu_swap_drop"].value > 30.0

    blind = _swap_inputs(lambda images: [PHANTOM_REPORTS[1]] * len(images))
    results, _ = compute_metrics(blind, names, n_resamples=200)
    assert results["finding_f1_micro_gt_swap_drop"].value == 0.0
    assert results["finding_f1_micro_gt_swap_drop"].ci_low == results["finding_f1_micro_gt_swap_drop"].ci_high == 0.0
    assert results["bleu_swap_drop"].value == 0.0
