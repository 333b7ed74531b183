# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Finding extractor: negation, uncertainty and scope on hand-written report sentences; F1 arithmetic."""

from pathlib import Path

import numpy as np
import pytest

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation.findings import (
    ABSENT,
    PRESENT,
    UNCERTAIN,
    FindingExtractor,
    f1_stats,
    load_labelled_sentences,
    load_lexicon,
    macro_f1,
    micro_f1,
    per_finding_f1,
    per_state_precision_recall,
)


SENTENCE_TABLE = Path(__file__).parent / "data" / "finding_sentences.tsv"


@pytest.fixture(scope="module")
def extractor():
    return FindingExtractor()


# (sentence, finding, expected label); None = not mentioned.
SENTENCES = [
    ("No pleural effusion.", "pleural effusion", ABSENT),
    ("There is a small left pleural effusion.", "pleural effusion", PRESENT),
    ("Effusion is not seen.", "pleural effusion", ABSENT),
    ("Bilateral effusions are not identified.", "pleural effusion", ABSENT),
    ("Without evidence of pneumothorax.", "pneumothorax", ABSENT),
    ("There is no evidence of pneumothorax.", "pneumothorax", ABSENT),
    ("Negative for pneumothorax.", "pneumothorax", ABSENT),
    ("Cannot exclude pneumonia.", "pneumonia", UNCERTAIN),
    ("Pneumonia cannot be excluded.", "pneumonia", UNCERTAIN),
    ("Possible right lower lobe pneumonia.", "pneumonia", UNCERTAIN),
    ("Findings are suspicious for pneumonia.", "pneumonia", UNCERTAIN),
    # CheXpert reads both sides of "versus" as uncertain (post_negation_uncertainty.txt, conj:versus).
    ("Atelectasis versus pneumonia at the left base.", "atelectasis", UNCERTAIN),
    ("Atelectasis versus pneumonia at the left base.", "pneumonia", UNCERTAIN),
    # double negation affirms
    ("No evidence of absence of effusion.", "pleural effusion", PRESENT),
    ("Pneumothorax is not absent.", "pneumothorax", PRESENT),
    ("Not without a small effusion.", "pleural effusion", PRESENT),
    # negation scope ends at "but" / "however" / ";"
    ("No pleural effusion but there is a small pneumothorax.", "pneumothorax", PRESENT),
    ("No pleural effusion but there is a small pneumothorax.", "pleural effusion", ABSENT),
    ("No pneumothorax but a small effusion.", "pleural effusion", PRESENT),
    ("No consolidation; however, there is left lower lobe atelectasis.", "atelectasis", PRESENT),
    ("No edema; mild cardiomegaly.", "cardiomegaly", PRESENT),
    # negation spreads over a list
    ("No focal consolidation, pleural effusion, or pneumothorax.", "consolidation", ABSENT),
    ("No focal consolidation, pleural effusion, or pneumothorax.", "pleural effusion", ABSENT),
    ("No focal consolidation, pleural effusion, or pneumothorax.", "pneumothorax", ABSENT),
    ("No pleural effusion or pneumothorax, no consolidation.", "consolidation", ABSENT),
    ("Pleural effusion and pneumothorax are not seen.", "pleural effusion", ABSENT),
    # pseudo-negation does not negate
    ("No change in the left pleural effusion.", "pleural effusion", PRESENT),
    ("No interval change in the right upper lobe nodule.", "nodule", PRESENT),
    # phrases that state absence; other findings
    ("Heart size is normal.", "cardiomegaly", ABSENT),
    ("The heart is enlarged.", "cardiomegaly", PRESENT),
    ("There is cardiomegaly.", "cardiomegaly", PRESENT),
    ("Rib fractures are not identified.", "fracture", ABSENT),
    ("Acute fracture of the left sixth rib.", "fracture", PRESENT),
    ("Nodular opacity in the right upper lobe.", "nodule", PRESENT),
    ("Nodular opacity in the right upper lobe.", "lung opacity", None),
    ("A 1.5 cm nodule in the left lung. No mass.", "mass", ABSENT),
    ("A 1.5 cm nodule in the left lung. No mass.", "nodule", PRESENT),
    ("Small pericardial effusion.", "pleural effusion", None),
    ("Endotracheal tube in place.", "support devices", PRESENT),
    ("Mild pulmonary edema.", "edema", PRESENT),
    ("There is no pneumothorax, and the heart is enlarged.", "cardiomegaly", PRESENT),
    ("The lungs are clear.", "pneumothorax", None),
]


@pytest.mark.parametrize(("sentence", "finding", "expected"), SENTENCES)
def test_negation_table(extractor, sentence, finding, expected):
    assert extractor.extract(sentence).get(finding) == expected


def test_table_is_large_enough():
    assert len(SENTENCES) >= 30


def test_no_finding_is_derived(extractor):
    assert extractor.extract("No acute cardiopulmonary process.")["no finding"] == PRESENT
    assert extractor.extract("No pleural effusion. Endotracheal tube in place.")["no finding"] == PRESENT
    assert extractor.extract("Cannot exclude pneumonia.")["no finding"] == ABSENT
    assert extractor.extract("")["no finding"] == PRESENT


def test_report_level_aggregation_prefers_present(extractor):
    labels = extractor.extract("No right pleural effusion. Small left pleural effusion. Possible pneumonia.")
    assert labels["pleural effusion"] == PRESENT
    assert labels["pneumonia"] == UNCERTAIN


def test_positive_and_ground_truth_matrices(extractor):
    names = extractor.names
    pos = extractor.positive_matrix(["Cannot exclude pneumonia.", "No effusion."])
    assert pos[0, names.index("pneumonia")] and not pos[0, names.index("no finding")]
    assert pos[1, names.index("no finding")] and not pos[1, names.index("pleural effusion")]
    gt = extractor.ground_truth_matrix(
        [
            [{"finding": "pleural effusion", "site": "left", "present": True}],
            [],
            [{"finding": "nodule", "present": False}],
        ]
    )
    assert gt[0, names.index("pleural effusion")] and not gt[0, names.index("no finding")]
    assert gt[1, names.index("no finding")] and gt[2, names.index("no finding")]
    with pytest.raises(MedvlError, match="not in the lexicon"):
        extractor.ground_truth_matrix([[{"finding": "dragon", "present": True}]])


def test_f1_hand_computed():
    # Two findings, three samples. Finding 0: tp=1, fp=1, fn=0 -> F1 2/3. Finding 1: tp=1, fp=0, fn=1 -> F1 2/3.
    predicted = np.array([[1, 1], [1, 0], [0, 0]], dtype=bool)
    target = np.array([[1, 1], [0, 1], [0, 0]], dtype=bool)
    summed = f1_stats(predicted, target).sum(0)
    np.testing.assert_array_equal(summed, [1, 1, 1, 0, 0, 1])
    assert micro_f1(summed[None])[0] == pytest.approx(100 * 4 / 6)
    assert macro_f1(summed[None])[0] == pytest.approx(100 * 2 / 3)
    assert per_finding_f1(summed, ["a", "b"]) == pytest.approx({"a": 100 * 2 / 3, "b": 100 * 2 / 3})
    # A finding that never occurs is left out of the macro average.
    summed3 = f1_stats(np.c_[predicted, np.zeros(3, bool)], np.c_[target, np.zeros(3, bool)]).sum(0)
    assert macro_f1(summed3[None])[0] == pytest.approx(100 * 2 / 3)


def test_custom_lexicon(tmp_path):
    path = tmp_path / "lexicon.yaml"
    path.write_text(
        'findings:\n  hernia: {synonyms: [hiatal hernia, hernia]}\nnegation: {pre: ["no"], post: [not seen]}\n'
        "termination: [but]\n"
    )
    extractor = FindingExtractor(path)
    assert extractor.names == ["hernia"]
    assert extractor.extract("No hiatal hernia.") == {"hernia": ABSENT}
    assert extractor.extract("Small hernias.") == {"hernia": PRESENT}
    bad = tmp_path / "bad.yaml"
    bad.write_text("findings:\n  hernia: {synonyms: [hernia]}\nnegation: {pre: [no]}\n")
    with pytest.raises(MedvlError, match="quote"):
        load_lexicon(bad)
    with pytest.raises(MedvlError, match="does not exist"):
        load_lexicon(tmp_path / "missing.yaml")


def test_default_lexicon_has_chexpert_and_extra_findings():
    names = load_lexicon().names
    for name in ["no finding", "cardiomegaly", "lung opacity", "pleural effusion", "support devices", "fracture"]:
        assert name in names
    assert {"nodule", "mass"} <= set(names)
    assert len(names) == 16


def test_extractor_agrees_with_phantom_ground_truth(prepared_dataset_dir):
    # The sample data's reports are written from known findings: reading them back must recover those findings.
    from datasets import load_dataset

    ds = load_dataset(str(prepared_dataset_dir))["train"].remove_columns(["image"])
    rows = [(text, findings) for text, findings in zip(ds["text"], ds["findings"], strict=True) if findings]
    assert len(rows) >= 20
    extractor = FindingExtractor()
    predicted = extractor.positive_matrix([text for text, _ in rows])
    target = extractor.ground_truth_matrix([findings for _, findings in rows])
    summed = f1_stats(predicted, target).sum(0)
    assert micro_f1(summed[None])[0] >= 95.0
    assert macro_f1(summed[None])[0] >= 90.0


def test_sentence_table_exact_labels(extractor):
    rows = load_labelled_sentences(SENTENCE_TABLE)
    assert len(rows) >= 300
    predicted = [extractor.extract(text) for text, _, _ in rows]
    scores = per_state_precision_recall(predicted, [expected for _, expected, _ in rows], extractor.names)
    # Shown with `pytest -s`; bench/bench_findings.py prints the same table.
    print(f"\n{len(rows)} sentences, {extractor.signature}")  # noqa: T201
    for state, s in scores.items():
        print(f"{state:>14}: precision {s['precision']:6.2f}  recall {s['recall']:6.2f}  support {s['support']}")  # noqa: T201
    wrong = [
        (text, got, expected) for (text, expected, _), got in zip(rows, predicted, strict=True) if got != expected
    ]
    assert not wrong, "\n".join(f"{t!r}: got {g}, expected {e}" for t, g, e in wrong[:20])


def test_sentence_table_covers_every_observation_and_state():
    rows = load_labelled_sentences(SENTENCE_TABLE)
    seen = {(name, state) for _, expected, _ in rows for name, state in expected.items()}
    for name in load_lexicon().names:
        states = ["present", "absent"] if name == "no finding" else ["present", "absent", "uncertain"]
        for state in states:
            assert (name, state) in seen, (name, state)


# One test per defect of issue 15; each failed on the v1 extractor (checked by running it against the v1 file).
def _labels(extractor, text):
    return {k: v for k, v in extractor.extract(text).items() if k != "no finding"}


def test_defect_plurals_match(extractor):
    assert _labels(extractor, "Bibasilar opacities.") == {"lung opacity": PRESENT}
    assert _labels(extractor, "Cavities in the right upper lobe.") == {"lung lesion": PRESENT}


def test_defect_separate_negations_do_not_cancel(extractor):
    assert extractor.extract("No acute disease, no pneumonia.") == {"pneumonia": ABSENT, "no finding": PRESENT}
    assert _labels(extractor, "No pneumothorax, no effusion.") == {"pneumothorax": ABSENT, "pleural effusion": ABSENT}


def test_defect_numbered_impressions_are_split(extractor):
    text = "1. No pneumothorax.2. Right lower lobe pneumonia."
    assert _labels(extractor, text) == {"pneumothorax": ABSENT, "pneumonia": PRESENT}
    assert _labels(extractor, "1) No effusion 2) Left basilar atelectasis") == {
        "pleural effusion": ABSENT,
        "atelectasis": PRESENT,
    }


@pytest.mark.parametrize(
    ("text", "finding", "expected"),
    [
        ("Patient denied pneumonia.", "pneumonia", ABSENT),
        ("Sputum culture for pneumonia was negative.", "pneumonia", ABSENT),
        ("-ve for pneumothorax.", "pneumothorax", ABSENT),
        ("Low suspicion for pneumonia.", "pneumonia", UNCERTAIN),
        ("Suspect early pneumonia in the left lower lobe.", "pneumonia", UNCERTAIN),
        ("Findings may reflect atelectasis.", "atelectasis", UNCERTAIN),
        ("Pneumothorax: none.", "pneumothorax", ABSENT),
        ("No further evidence of pneumothorax.", "pneumothorax", ABSENT),
    ],
)
def test_defect_missing_triggers(extractor, text, finding, expected):
    assert extractor.extract(text).get(finding) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The cardiac silhouette is mildly enlarged.", {"cardiomegaly": PRESENT}),
        ("Heart size within normal limits.", {"cardiomegaly": ABSENT}),
        ("Cardiomediastinal contours are normal.", {"enlarged cardiomediastinum": ABSENT}),
        ("Blunting of the right costophrenic angle.", {"pleural effusion": UNCERTAIN}),
        ("Findings consistent with CHF.", {"edema": PRESENT, "cardiomegaly": UNCERTAIN}),
        ("Increased interstitial markings.", {"lung opacity": PRESENT}),
    ],
)
def test_defect_missing_synonyms(extractor, text, expected):
    assert _labels(extractor, text) == expected


@pytest.mark.parametrize(
    ("text", "no_finding"),
    [
        ("Urinary tract infection.", ABSENT),
        ("Left ventricular cavity is dilated.", PRESENT),
        ("Vertebral collapse at T12.", ABSENT),
    ],
)
def test_defect_too_broad_synonyms(extractor, text, no_finding):
    assert extractor.extract(text) == {"no finding": no_finding}


def test_defect_sections_are_not_findings(extractor):
    assert extractor.extract("Indication: pneumonia. Findings: The lungs are clear.") == {"no finding": PRESENT}
    assert extractor.extract("History: pneumothorax. Impression: No pneumothorax.") == {
        "pneumothorax": ABSENT,
        "no finding": PRESENT,
    }


def test_defect_hypotheticals_are_not_findings(extractor):
    assert extractor.extract("Evaluation for pneumothorax is limited.") == {"no finding": PRESENT}
    assert extractor.extract("Rule out pneumothorax.") == {"no finding": PRESENT}


def test_defect_outside_abnormality_is_not_no_finding(extractor):
    # CheXpert stages/aggregate.py: a positive no_finding.txt phrase (emphysema, scoliosis) blocks "No Finding".
    assert extractor.extract("Emphysema.") == {"no finding": ABSENT}
    assert extractor.extract("Thoracic scoliosis.") == {"no finding": ABSENT}
    assert extractor.extract("No emphysema.") == {"no finding": PRESENT}


def test_impression_only():
    text = "FINDINGS: Mild cardiomegaly. Small left effusion.\nIMPRESSION: Small left effusion."
    assert FindingExtractor(impression_only=True).extract(text) == {"pleural effusion": PRESENT, "no finding": ABSENT}
    assert FindingExtractor().extract(text)["cardiomegaly"] == PRESENT
    # Without an impression the whole report is read.
    assert FindingExtractor(impression_only=True).extract("Mild cardiomegaly.")["cardiomegaly"] == PRESENT


def test_uncertain_policy_and_signature():
    texts = ["Possible pneumonia.", "Right lower lobe pneumonia.", "No pneumonia."]
    column = FindingExtractor().names.index("pneumonia")
    ones = FindingExtractor(uncertain_as="positive")
    zeros = FindingExtractor(uncertain_as="negative")
    own = FindingExtractor(uncertain_as="own_class", impression_only=True)
    assert ones.positive_matrix(texts)[:, column].tolist() == [True, True, False]
    assert zeros.positive_matrix(texts)[:, column].tolist() == [False, True, False]
    assert own.label_matrix(texts)[:, column].tolist() == [-1.0, 1.0, 0.0]
    assert np.isnan(own.label_matrix(["No pneumonia."])[0, own.names.index("pneumothorax")])
    with pytest.raises(MedvlError, match="own_class"):
        own.positive_matrix(texts)
    with pytest.raises(MedvlError, match="uncertain_as"):
        FindingExtractor(uncertain_as="maybe")
    assert FindingExtractor().signature == "findings:v2|uncertain_as=positive|impression_only=false"
    assert own.signature == "findings:v2|uncertain_as=own_class|impression_only=true"


def test_unversioned_lexicon_signature_names_its_content(tmp_path):
    path = tmp_path / "lexicon.yaml"
    path.write_text("findings:\n  hernia: {synonyms: [hernia]}\n")
    assert FindingExtractor(path).signature.startswith("findings:custom-")
