# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image grounding: the study parser's rules, the image-swap derangement, and a decoder that must read its images."""

import json

import numpy as np
import pytest

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation import runner
from medvl_recipes.evaluation.grounding import Study, StudyParser, swap_derangement


# (report, modality, region): phantom headers, real-report phrasings, and the traps the rules must avoid.
STUDY_TABLE = [
    ("PA chest radiograph. No pneumothorax.", "XR", "chest"),
    ("Frontal chest radiograph.", "XR", "chest"),
    ("Chest X-ray, PA view. There is cardiomegaly.", "XR", "chest"),
    ("Lateral chest radiograph. Vertebral fracture.", "XR", "chest"),
    ("PA and lateral views of the chest were obtained.", "XR", "chest"),
    ("CXR: no acute cardiopulmonary process.", "XR", None),
    ("Axial CT of the chest. Left lung nodule.", "CT", "chest"),
    ("Axial computed tomography of the chest.", "CT", "chest"),
    ("Noncontrast axial CT of the head. No skull fracture.", "CT", "head"),
    ("Head CT, axial image. Mass in the right frontal lobe.", "CT", "head"),
    ("Axial CT of the abdomen. No vertebral fracture.", "CT", "abdomen"),
    ("Abdominal CT, axial image. Mass in the liver.", "CT", "abdomen"),
    ("Axial T2 MRI of the brain. No intracranial mass.", "MR", "head"),
    ("Axial T2-weighted MR image of the brain.", "MR", "head"),
    ("Brain MRI, axial T2 image.", "MR", "head"),
    ("Sagittal MRI of the lumbar spine shows disc herniation.", "MR", "spine"),
    ("Knee X-ray, AP view. Fracture of the proximal tibia.", "XR", "knee"),
    ("AP radiograph of the knee.", "XR", "knee"),
    ("Hand X-ray, PA view. No acute fracture.", "XR", "hand"),
    ("Frontal radiograph of the hand. Fifth metacarpal fracture.", "XR", "hand"),
    ("Transabdominal ultrasound of the liver.", "US", "abdomen"),
    ("Ultrasound image of the right kidney.", "US", "abdomen"),
    ("US of the neck shows a thyroid nodule.", "US", "neck"),
    ("Doppler ultrasound of the left leg veins.", "US", None),
    ("PET/CT shows avid uptake in the mediastinum.", "PET", "chest"),
    ("Mammogram of the left breast.", "MG", "breast"),
    ("Bone scan shows uptake in the pelvis.", "NM", "pelvis"),
    ("Cerebral angiogram shows an aneurysm.", "XA", "head"),
    # Findings sections without a header (Open-I): no modality; the region from anatomy cues.
    ("Left upper zone mass is present. No pleural effusion.", None, "chest"),
    ("The cardiac silhouette is enlarged.", None, "chest"),
    ("Mass in the right kidney.", None, "abdomen"),
    ("Fracture of the distal radius.", None, "hand"),
    # Traps: lower-case words that spell abbreviations, and words containing them.
    ("Let us compare with the prior: no change.", None, None),
    ("The pet owner reports no trauma.", None, None),
    ("Contact the referring clinician.", None, None),
    ("Normal study with no acute finding.", None, None),
    ("", None, None),
]


@pytest.mark.parametrize(("text", "modality", "region"), STUDY_TABLE)
def test_study_parser_table(text, modality, region):
    assert StudyParser().parse(text) == Study(modality, region)


def test_study_parser_maps_dicom_codes_and_refuses_bad_rules(tmp_path):
    parser = StudyParser()
    assert [parser.dicom_modality(c) for c in ("CR", "dx", "CT", "MR", "US", "PT", "", None, "OT")] == [
        "XR", "XR", "CT", "MR", "US", "PET", None, None, None,
    ]  # fmt: skip
    assert parser.signature == "medvl-study-rules:1"
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nmodalities: {CT: ['(']}\nregions: {}\ndicom_modalities: {}\n")
    with pytest.raises(MedvlError, match="bad pattern"):
        StudyParser(bad)
    bad.write_text("version: 1\n")
    with pytest.raises(MedvlError, match="missing top-level key 'modalities'"):
        StudyParser(bad)


@pytest.mark.parametrize("n", [2, 3, 10, 72])
def test_swap_derangement_has_no_fixed_point_and_is_seeded(n):
    perm = swap_derangement(n, seed=0)
    assert sorted(perm.tolist()) == list(range(n))
    assert not np.any(perm == np.arange(n))
    assert np.array_equal(perm, swap_derangement(n, seed=0))
    if n > 3:
        assert not np.array_equal(perm, swap_derangement(n, seed=1))
    with pytest.raises(MedvlError, match="at least 2 samples"):
        swap_derangement(1)


def test_report_flags_a_predictions_file_with_one_constant_report(tmp_path):
    references = [text for text, modality, _ in STUDY_TABLE[:20] if modality]
    preds = tmp_path / "constant.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "reference": ref, "generation": references[0]}) + "\n"
            for i, ref in enumerate(references)
        )
    )
    out = tmp_path / "run"
    metrics = ["distinct_generations", "modality_agreement", "region_agreement", "bleu"]
    args = runner.EvalArguments(
        predictions=str(preds), output_dir=str(out), metrics=metrics, n_resamples=50, plots=False
    )
    payload = runner.run_evaluation(args)
    assert payload["metrics"]["distinct_generations"]["value"] == pytest.approx(100 / len(references))
    report = (out / "report.md").read_text()
    assert f"- **distinct generations**: 1 of {len(references)}" in report
    assert "warning: (almost) the same report for every image" in report
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert rows[0]["study_generation"] == {"modality": "XR", "region": "chest"}
    assert rows[8]["study_reference"] == {"modality": "CT", "region": "head"}
