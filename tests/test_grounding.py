# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image grounding: the study parser's rules, the image-swap derangement, and a decoder that must read its images."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw

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


# A decoder that must read its images: "code images" (the study type and each present finding drawn as a bright
# block at a fixed place) with phantom reports, trained in the test session through the real stack (chat JSONL,
# VisionSFTCollator, SFTTrainer with the smoke recipe, generation, `medvl eval` with the image-swap control). The
# images are easy on purpose: this guards the pipeline (each sample trained and generated with its own image), not
# what a tiny vision tower can learn from realistic phantoms (see bench/bench_grounding.py).
GROUNDING_TYPES = ("chest_xr_pa", "head_ct", "knee_xr", "chest_ct")
GROUNDING_TRAIN, GROUNDING_VAL, GROUNDING_EPOCHS = 64, 24, 20


def _code_image(spec) -> Image.Image:
    from medvl_recipes.samples.phantoms import PHANTOM_FINDINGS

    image = Image.new("L", (112, 112), 0)
    draw = ImageDraw.Draw(image)
    t = GROUNDING_TYPES.index(spec.study_type)
    draw.rectangle([4 + 26 * t, 4, 26 + 26 * t, 30], fill=255)  # the study type: a block on the top row
    for finding in spec.present:
        k = PHANTOM_FINDINGS.index(finding["finding"])
        x, y = 4 + 26 * (k % 4), 40 + 36 * (k // 4)
        draw.rectangle([x, y, x + 22, y + 30], fill=255)  # each present finding: a block of its own below
    return image.convert("RGB")


def _write_code_image_data(root, n_train: int, n_val: int):
    import datasets

    from medvl_recipes.data.prepared import FEATURES
    from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, PROMPT_SETS
    from medvl_recipes.samples.phantoms import sample_spec

    chat, prepared = root / "chat", root / "prepared"
    (chat / "images").mkdir(parents=True)
    (prepared / "data").mkdir(parents=True)
    for split, start, count in (("train", 0, n_train), ("validation", 10_000, n_val)):
        rows = []
        with (chat / f"{split}.jsonl").open("w") as f:
            for i in range(start, start + count):
                spec = sample_spec(i, GROUNDING_TYPES[i % len(GROUNDING_TYPES)])
                image = _code_image(spec)
                image.save(chat / "images" / f"{i}.png")
                messages = [
                    {"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]},
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": PROMPT_SETS["default"][0]}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": spec.report}]},
                ]
                f.write(json.dumps({"id": f"c{i}", "messages": messages, "images": [f"images/{i}.png"]}) + "\n")
                rows.append(
                    {
                        "image": image, "text": spec.report, "source": "code", "id": f"c{i}", "group_id": f"c{i}",
                        "license": "CC0", "modality": spec.modality, "findings": spec.findings,
                    }
                )  # fmt: skip
        columns = {key: [row[key] for row in rows] for key in FEATURES}
        datasets.Dataset.from_dict(columns, features=FEATURES).to_parquet(
            str(prepared / "data" / f"{split}-00000-of-00001.parquet")
        )
    constant = Counter(sample_spec(i, GROUNDING_TYPES[i % 4]).report for i in range(n_train)).most_common(1)[0][0]
    return chat, prepared, constant


def test_trained_decoder_reads_its_images(tmp_path, tiny_models, repo_root):
    from medvl_recipes.cli import main as medvl
    from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics

    chat, prepared, constant = _write_code_image_data(tmp_path, n_train=GROUNDING_TRAIN, n_val=GROUNDING_VAL)
    decoder = tmp_path / "decoder"
    recipe = repo_root / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
    assert medvl([
        "train-decoder", "--config", str(recipe), "--model_name_or_path", str(tiny_models["mllama"]),
        "--dataset_name", str(chat), "--output_dir", str(decoder), "--num_train_epochs", str(GROUNDING_EPOCHS),
        "--num_sample_generations", "0", "--vision_warmup_encoder", str(tiny_models["siglip"]),
    ]) == 0  # fmt: skip
    out = tmp_path / "eval"
    metrics = ["finding_f1_micro_gt", "finding_f1_micro_gt_swapped", "finding_f1_micro_gt_swap_drop",
               "modality_agreement", "distinct_generations"]  # fmt: skip
    payload = runner.run_evaluation(
        runner.EvalArguments(
            decoder=str(decoder), dataset=str(prepared), output_dir=str(out), metrics=metrics, n_resamples=200,
            max_new_tokens=64, plots=False, device="cpu",
        )
    )  # fmt: skip
    m = {name: payload["metrics"][name] for name in metrics}
    validation = runner.load_split(str(prepared), "validation")
    baseline = MetricInputs(
        generations=[constant] * len(validation.ids),
        references=validation.references,
        ground_truth=validation.findings,
    )
    constant_f1 = compute_metrics(baseline, ["finding_f1_micro_gt"], n_resamples=0)[0]["finding_f1_micro_gt"].value
    summary = {name: round(v["value"], 1) for name, v in m.items()} | {"constant_f1": round(constant_f1, 1)}
    assert m["finding_f1_micro_gt"]["value"] > constant_f1 + 10, summary
    assert m["finding_f1_micro_gt_swap_drop"]["ci_low"] > 0, summary
    assert m["finding_f1_micro_gt_swapped"]["value"] < 0.85 * m["finding_f1_micro_gt"]["value"], summary
    assert m["modality_agreement"]["value"] >= 80, summary
