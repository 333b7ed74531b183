# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Baselines beside every score: the most frequent, a random and the nearest-image training report."""

import json

import numpy as np
from datasets import load_dataset

from medvl_recipes.evaluation import runner
from medvl_recipes.evaluation.baselines import baseline_generations, most_frequent_report


def test_most_frequent_report_normalises_whitespace_and_keeps_first_on_ties():
    assert most_frequent_report(["b", "a  x", "a x", "b"]) == "b"  # tie 2-2: "b" was seen first
    assert most_frequent_report(["c", "a  x", "a x"]) == "a  x"


def test_nearest_baseline_takes_the_report_of_the_most_similar_training_image():
    train_emb = np.eye(3, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.0], [0.0, 0.2, 0.98]], dtype=np.float32)
    out = baseline_generations(["r0", "r1", "r2"], 2, seed=0, train_image_emb=train_emb, image_emb=queries)
    assert out["nearest"] == ["r1", "r2"]
    assert out["most_frequent"] == ["r0", "r0"]
    assert len(out["random"]) == 2 and set(out["random"]) <= {"r0", "r1", "r2"}
    assert (
        baseline_generations(["r0", "r1", "r2"], 5, seed=3)["random"]
        == baseline_generations(["r0", "r1", "r2"], 5, seed=3)["random"]
    )


def _predictions(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _validation(prepared_dataset_dir, n=40):
    ds = load_dataset(str(prepared_dataset_dir), split="validation").select(range(n))
    return list(ds["id"]), list(ds["text"])


def test_a_constant_report_is_flagged_in_the_report(tmp_path, prepared_dataset_dir):
    ids, texts = _validation(prepared_dataset_dir)
    constant = "Chest radiograph. The lungs are clear. No pleural effusion."
    preds = _predictions(
        tmp_path / "constant.jsonl",
        [{"id": i, "reference": t, "generation": constant} for i, t in zip(ids, texts, strict=True)],
    )
    out = tmp_path / "run"
    runner.cli(["--predictions", str(preds), "--dataset", str(prepared_dataset_dir), "--output-dir", str(out),
                "--n-resamples", "200", "--metrics", "bleu", "finding_f1_micro_gt", "--plots", "false"])  # fmt: skip
    payload = json.loads((out / "metrics.json").read_text())
    assert set(payload["baselines"]) == {"most_frequent", "random"}  # no encoder: no nearest-image baseline
    tests = payload["baselines"]["most_frequent"]["vs_model"].values()
    assert any(t["delta"] <= 0 or t["p_value"] >= 0.05 for t in tests)  # a constant report is no better than one
    report = (out / "report.md").read_text()
    assert "## Baselines" in report
    assert "`most_frequent` baseline" in report.split("## Baselines")[1]  # and the report says so in words


def test_the_references_themselves_beat_every_baseline_significantly(tmp_path, prepared_dataset_dir):
    ids, texts = _validation(prepared_dataset_dir)
    preds = _predictions(
        tmp_path / "oracle.jsonl",
        [{"id": i, "reference": t, "generation": t} for i, t in zip(ids, texts, strict=True)],
    )
    out = tmp_path / "run"
    runner.cli(["--predictions", str(preds), "--dataset", str(prepared_dataset_dir), "--output-dir", str(out),
                "--n-resamples", "200", "--metrics", "bleu", "rougeL", "--plots", "false"])  # fmt: skip
    payload = json.loads((out / "metrics.json").read_text())
    for baseline in payload["baselines"].values():
        for test in baseline["vs_model"].values():
            assert test["delta"] > 0 and test["p_value"] < 0.05
    assert "The model beats every baseline on every metric." in (out / "report.md").read_text()


def test_baselines_can_be_switched_off(tmp_path, prepared_dataset_dir):
    ids, texts = _validation(prepared_dataset_dir, n=8)
    preds = _predictions(
        tmp_path / "p.jsonl", [{"id": i, "reference": t, "generation": t} for i, t in zip(ids, texts, strict=True)]
    )
    out = tmp_path / "run"
    runner.cli(["--predictions", str(preds), "--dataset", str(prepared_dataset_dir), "--output-dir", str(out),
                "--n-resamples", "0", "--metrics", "bleu", "--plots", "false", "--baselines", "false"])  # fmt: skip
    assert "baselines" not in json.loads((out / "metrics.json").read_text())
