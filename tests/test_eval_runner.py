# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl eval` end to end: outputs, compare, resume after a crash, bad input, and the `evaluate` modules."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import sacrebleu

from medvl_recipes.errors import MedvlError
from medvl_recipes.evaluation import runner
from medvl_recipes.evaluation.metrics import MetricInputs, compute_metrics
from tests.fixtures.factories import write_prepared_dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
TEXT_METRICS = ["bleu", "chrf", "rougeL", "finding_f1_micro", "finding_f1_macro"]
OUTPUTS = [
    "metrics.json", "per_sample.jsonl", "report.md", "model_index.yaml", "sample_stats.npz", "metrics.png",
]  # fmt: skip


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return write_prepared_dataset(tmp_path_factory.mktemp("eval-data") / "prepared", n_train=4, n_val=8, seed=0)


def _write_predictions(path: Path, n: int = 24, degrade: bool = False) -> Path:
    refs = [
        "No pleural effusion. Small left pneumothorax.",
        "The heart is enlarged. No focal consolidation.",
        "A nodule in the right upper zone.",
        "Cannot exclude pneumonia at the left base.",
    ]
    with path.open("w") as f:
        for i in range(n):
            ref = refs[i % 4]
            gen = "" if degrade else (ref if i % 3 else refs[(i + 1) % 4])
            f.write(json.dumps({"id": f"s{i}", "reference": ref, "generation": gen}) + "\n")
    return path


def _run(argv: list[str]) -> dict:
    assert runner.cli(argv) == 0
    out = Path(argv[argv.index("--output-dir") + 1])
    return json.loads((out / "metrics.json").read_text())


def test_per_sample_rows_leave_out_the_agreement_of_an_unscored_sample(tmp_path):
    # Neither text names a modality in s2 (Open-I style): the sample is not scored, and its row must not say 0.
    rows = [
        ("s0", "Axial CT of the head. No skull fracture.", "Axial CT of the head. No acute finding."),
        ("s1", "PA chest radiograph. No pleural effusion.", "Axial CT of the chest. No pleural effusion."),
        ("s2", "No pleural effusion. No pneumothorax.", "No pleural effusion."),
    ]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "reference": r, "generation": g}) + "\n" for i, r, g in rows))
    out = tmp_path / "run"
    payload = _run(["--predictions", str(preds), "--output-dir", str(out), "--n-resamples", "20",
                    "--metrics", "modality_agreement"])  # fmt: skip
    scores = {row["id"]: row["scores"] for row in map(json.loads, (out / "per_sample.jsonl").read_text().splitlines())}
    assert scores == {"s0": {"modality_agreement": 100.0}, "s1": {"modality_agreement": 0.0}, "s2": {}}
    assert payload["metrics"]["modality_agreement"]["value"] == 50.0


def test_predictions_run_outputs_and_compare_with_itself(tmp_path, capsys):
    preds = _write_predictions(tmp_path / "preds.jsonl")
    out = tmp_path / "run"
    payload = _run(
        ["--predictions", str(preds), "--output-dir", str(out), "--n-resamples", "50", "--metrics", *TEXT_METRICS]
    )
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {"id", "reference", "generation", "scores", "findings_generation"} <= set(rows[0])
    hyps, refs = [r["generation"] for r in rows], [[r["reference"] for r in rows]]
    assert payload["metrics"]["bleu"]["value"] == sacrebleu.corpus_bleu(hyps, refs).score
    for m in payload["metrics"].values():
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
    assert payload["data"]["num_samples"] == 24 and len(payload["data"]["fingerprint"]) == 16
    assert "model-index:" in (out / "model_index.yaml").read_text()
    report = (out / "report.md").read_text()
    assert "| bleu |" in report and "model-index" in report

    capsys.readouterr()
    assert runner.cli(["compare", str(out), str(out), "--n-resamples", "100"]) == 0
    printed = capsys.readouterr().out
    assert f"0 of {len(TEXT_METRICS)} metrics differ significantly" in printed
    rows = runner.compare_runs(out, out, n_resamples=100)
    assert all(not r["significant"] and r["p_value"] == 1.0 and r["delta"] == 0 for r in rows)

    worse = tmp_path / "worse"
    _run(
        [
            "--predictions", str(_write_predictions(tmp_path / "worse.jsonl", degrade=True)),
            "--output-dir", str(worse), "--n-resamples", "0", "--metrics", *TEXT_METRICS,
        ]
    )  # fmt: skip
    rows = {r["metric"]: r for r in runner.compare_runs(out, worse, n_resamples=200)}
    assert rows["bleu"]["significant"] and rows["bleu"]["better"] == "A"


def test_compare_refuses_other_references_and_other_signatures(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(["--predictions", str(_write_predictions(tmp_path / "a.jsonl")), "--output-dir", str(a),
          "--n-resamples", "0", "--metrics", *TEXT_METRICS, "--plots", "false"])  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    rows[3]["reference"] = "A different reference."
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _run(["--predictions", str(tmp_path / "b.jsonl"), "--output-dir", str(b), "--n-resamples", "0",
          "--metrics", *TEXT_METRICS, "--plots", "false"])  # fmt: skip
    with pytest.raises(MedvlError, match="different data|different references"):
        runner.compare_runs(a, b, n_resamples=10)
    payload = json.loads((a / "metrics.json").read_text())
    payload["metrics"]["finding_f1_micro"]["signature"] = "medvl-findings:v1|uncertain_as=negative"
    (b / "metrics.json").write_text(json.dumps(payload))
    (b / "per_sample.jsonl").write_text((a / "per_sample.jsonl").read_text())
    (b / "sample_stats.npz").write_bytes((a / "sample_stats.npz").read_bytes())
    with pytest.raises(MedvlError, match="finding_f1_micro was computed differently"):
        runner.compare_runs(a, b, n_resamples=10)


def test_bad_input_gives_clear_errors(tmp_path, dataset_dir):
    preds = _write_predictions(tmp_path / "preds.jsonl", n=4)
    out = str(tmp_path / "out")
    with pytest.raises(MedvlError, match="no split 'test'"):
        runner.cli(
            ["--predictions", str(preds), "--dataset", str(dataset_dir), "--split", "test", "--output-dir", out]
        )
    with pytest.raises(MedvlError, match="nothing to evaluate"):
        runner.cli(["--dataset", str(dataset_dir), "--output-dir", out])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "reference": "x", "generation": "y"}\n{"id": "b", "reference": "x"}\n')
    with pytest.raises(MedvlError, match=r"bad.jsonl:2: missing field 'generation'"):
        runner.cli(["--predictions", str(bad), "--output-dir", out])
    bad.write_text('{"id": "a", "reference": "x", "generation": "y"}\nnot json\n')
    with pytest.raises(MedvlError, match=r"bad.jsonl:2: not valid JSON"):
        runner.cli(["--predictions", str(bad), "--output-dir", out])
    no_processor = tmp_path / "ckpt"
    no_processor.mkdir()
    (no_processor / "config.json").write_text("{}")
    with pytest.raises(MedvlError, match="no processor"):
        runner.cli(["--encoder", str(no_processor), "--dataset", str(dataset_dir), "--output-dir", out])
    with pytest.raises(MedvlError, match="compare runs on the same split|not found"):
        runner.compare_runs(tmp_path / "nope", tmp_path / "nope")


def test_crash_mid_run_loses_no_generations(tmp_path, dataset_dir, monkeypatch):
    monkeypatch.setattr(
        "medvl_recipes.modeling.load_decoder", lambda *a, **k: (SimpleNamespace(config=SimpleNamespace()), None)
    )
    out = tmp_path / "run"
    argv = [
        "--decoder", "fake", "--dataset", str(dataset_dir), "--output-dir", str(out), "--batch-size", "3",
        "--n-resamples", "0", "--metrics", "bleu", "--plots", "false",
    ]  # fmt: skip
    calls = []

    def crashing(model, processor, images, args, context=None):
        calls.append(len(images))
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return [f"first run report {len(calls)}"] * len(images)

    monkeypatch.setattr(runner, "_generate", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        runner.cli(argv)
    partial = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(partial) == 6  # the two finished batches are on disk

    requested = []

    def resumed(model, processor, images, args, context=None):
        requested.append(len(images))
        return ["second run report"] * len(images)

    monkeypatch.setattr(runner, "_generate", resumed)
    runner.cli([*argv, "--resume"])
    assert sum(requested) == 2 + 8  # 8 samples - 6 already generated, then the 8 of the image-swap control
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == ["first run report 1"] * 3 + ["first run report 2"] * 3 + [
        "second run report"
    ] * 2
    # Resuming a finished run generates nothing.
    requested.clear()
    runner.cli([*argv, "--resume"])
    assert requested == []


def test_resume_reuses_only_generations_of_the_same_decoder_data_and_prompt(tmp_path, dataset_dir, monkeypatch):
    monkeypatch.setattr(
        "medvl_recipes.modeling.load_decoder", lambda *a, **k: (SimpleNamespace(config=SimpleNamespace()), None)
    )
    # Two decoders of one recipe: same file names and sizes, different weights.
    decoders = {}
    for name, fill in (("a", b"\x01"), ("b", b"\x02")):
        decoders[name] = tmp_path / f"decoder-{name}"
        decoders[name].mkdir()
        (decoders[name] / "config.json").write_text("{}")
        (decoders[name] / "model.safetensors").write_bytes(fill * 4096)
    # The same ids with one reference changed: another dataset version.
    other_data = tmp_path / "other-data"
    shutil.copytree(dataset_dir, other_data)
    split_file = next((other_data / "data").glob("validation-*.parquet"))
    table = pq.read_table(split_file)
    texts = table.column("text").to_pylist()
    texts[0] = "A corrected report."
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", [texts]), split_file)
    out = tmp_path / "run"

    def argv(decoder="a", dataset=dataset_dir, *extra):
        return [
            "--decoder", str(decoders[decoder]), "--dataset", str(dataset), "--output-dir", str(out),
            "--n-resamples", "0", "--metrics", "bleu", "--plots", "false", "--image-swap-control", "false", *extra,
        ]  # fmt: skip

    calls = []
    monkeypatch.setattr(
        runner, "_generate", lambda m, p, images, a, context=None: calls.append(len(images)) or ["r"] * len(images)
    )
    runner.cli(argv())
    assert sum(calls) == 8 and (out / runner.GENERATION_IDENTITY_FILE).is_file()
    cases = [
        (argv("b"), "decoder_revision"),
        (argv("a", other_data), "dataset"),
        (argv("a", dataset_dir, "--prompt", "Describe the image."), "prompt None -> 'Describe the image.'"),
        (argv("a", dataset_dir, "--max-new-tokens", "16"), "max_new_tokens 128 -> 16"),
    ]
    for bad, difference in cases:
        with pytest.raises(MedvlError, match="made by another run") as err:
            runner.cli([*bad, "--resume"])
        assert difference in str(err.value)
    calls.clear()
    runner.cli([*argv(), "--resume"])
    assert calls == []  # same decoder, data and prompt: everything reused
    # Generations nobody can vouch for are not reused either.
    (out / runner.GENERATION_IDENTITY_FILE).unlink()
    with pytest.raises(MedvlError, match="no generation_identity.json"):
        runner.cli([*argv(), "--resume"])
    # Without --resume another decoder simply generates again.
    runner.cli(argv("b"))
    assert sum(calls) == 8


def test_eval_on_tiny_checkpoints_writes_everything(tmp_path, dataset_dir, tiny_models, capsys):
    out = tmp_path / "run"
    payload = _run(
        [
            "--config", str(REPO_ROOT / "eval" / "configs" / "smoke.yaml"),
            "--decoder", str(tiny_models["mllama"]), "--encoder", str(tiny_models["siglip"]),
            "--dataset", str(dataset_dir), "--output-dir", str(out), "--max-samples", "8", "--max-new-tokens", "4",
            "--n-resamples", "50", "--batch-size", "4",
        ]
    )  # fmt: skip
    for name in [*OUTPUTS, "recall_at_k.png", "similarity_histograms.png"]:
        assert (out / name).is_file(), name
    assert not (out / "generations.jsonl").exists()
    metrics = payload["metrics"]
    for name in ["bleu", "bleu1", "chrf", "rougeL", "embedding_cosine", "siglip_text_cosine", "siglip_image_prob_gen",
                 "siglip_image_prob_ref", "i2t_recall@1", "t2i_median_rank", "finding_f1_micro_gt"]:  # fmt: skip
        assert name in metrics, name
        assert np.isfinite(metrics[name]["value"])
    assert payload["models"]["decoder"]["class"] == "MllamaForConditionalGeneration"
    assert payload["models"]["encoder"]["class"] == "SiglipModel"
    assert payload["data"]["split"] == "validation" and payload["data"]["num_samples"] == 8
    assert payload["config"]["max_new_tokens"] == 4
    capsys.readouterr()
    runner.cli(["compare", str(out), str(out), "--n-resamples", "50"])
    assert f"0 of {len(metrics)} metrics differ significantly" in capsys.readouterr().out

    # Encoder alone: retrieval and image-reference similarity, no generation metrics.
    enc_out = tmp_path / "encoder-only"
    payload = _run(
        [
            "--encoder", str(tiny_models["siglip"]), "--dataset", str(dataset_dir), "--output-dir", str(enc_out),
            "--n-resamples", "20", "--device", "cpu",
        ]
    )  # fmt: skip
    assert "i2t_recall@5" in payload["metrics"] and "siglip_image_cosine_ref" in payload["metrics"]
    assert "bleu" not in payload["metrics"]


def test_help_and_run_eval_script_entry():
    with pytest.raises(SystemExit) as info:
        runner.cli(["--help"])
    assert info.value.code == 0
    assert "from medvl_recipes.evaluation.runner import cli" in (REPO_ROOT / "eval" / "run_eval.py").read_text()


def test_evaluate_modules_load_offline_and_match(tmp_path):
    evaluate = pytest.importorskip("evaluate")
    preds = ["Small left pleural effusion.", "No pneumothorax.", "Heart size is normal."]
    refs = ["Left pleural effusion.", "Pneumothorax.", "Cardiomegaly."]
    module = evaluate.load(str(REPO_ROOT / "eval" / "metrics" / "finding_f1"))
    got = module.compute(predictions=preds, references=refs)
    ours, _ = compute_metrics(MetricInputs(generations=preds, references=refs), ["finding_f1_micro"], n_resamples=0)
    assert got["finding_f1_micro"] == ours["finding_f1_micro"].value
    assert got["per_finding"]["pleural effusion"] == 100.0

    rng = np.random.default_rng(0)
    image_emb, text_emb = rng.normal(size=(12, 6)), rng.normal(size=(12, 6))
    module = evaluate.load(str(REPO_ROOT / "eval" / "metrics" / "retrieval"))
    got = module.compute(image_embeds=image_emb.tolist(), text_embeds=text_emb.tolist())
    sims = (image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)) @ (
        text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    ).T
    i2t_ranks = 1 + (sims > np.diag(sims)[:, None]).sum(1)
    assert got["i2t_recall@5"] == pytest.approx(100 * np.mean(i2t_ranks <= 5), abs=1e-4)

    module = evaluate.load(str(REPO_ROOT / "eval" / "metrics" / "embedding_similarity"))
    got = module.compute(
        predictions=["No pleural effusion.", "xyz"], references=["No pleural effusion.", "Cardiomegaly."]
    )
    assert got["scores"][0] == pytest.approx(1.0, abs=1e-5) and got["scores"][1] < 0.9


def test_model_index_copy_is_yaml(tmp_path):
    yaml = pytest.importorskip("yaml")
    preds = _write_predictions(tmp_path / "preds.jsonl", n=8)
    out = tmp_path / "run"
    _run(["--predictions", str(preds), "--output-dir", str(out), "--n-resamples", "0", "--metrics", "bleu", "rougeL",
          "--model-name", "my-model", "--dataset-name", "medvl/sample"])  # fmt: skip
    index = yaml.safe_load((out / "model_index.yaml").read_text())["model-index"]
    assert index[0]["name"] == "my-model"
    result = index[0]["results"][0]
    assert result["dataset"]["type"] == "medvl/sample"
    assert {m["name"] for m in result["metrics"]} == {"bleu", "rougeL"}
    shutil.rmtree(out)


def test_predictions_joined_with_dataset_get_ground_truth_scores(tmp_path, dataset_dir):
    from datasets import load_dataset

    split = load_dataset(str(dataset_dir))["validation"]
    preds = tmp_path / "preds.jsonl"
    with preds.open("w") as f:
        for row_id, text in zip(split["id"], split["text"], strict=True):
            f.write(json.dumps({"id": row_id, "reference": text, "generation": text}) + "\n")
    out = tmp_path / "run"
    payload = _run(
        ["--predictions", str(preds), "--dataset", str(dataset_dir), "--output-dir", str(out), "--n-resamples", "20",
         "--metrics", "finding_f1_micro", "finding_f1_micro_gt", "bleu"]
    )  # fmt: skip
    # Generations equal to the references: perfect agreement with them, and BLEU 100.
    assert payload["metrics"]["finding_f1_micro"]["value"] == 100.0
    assert payload["metrics"]["bleu"]["value"] == pytest.approx(100.0)
    assert "finding_f1_micro_gt" in payload["metrics"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "not-in-dataset", "reference": "x", "generation": "y"}) + "\n")
    with pytest.raises(MedvlError, match="not in the dataset split"):
        runner.cli(["--predictions", str(bad), "--dataset", str(dataset_dir), "--output-dir", str(out)])


@pytest.mark.parametrize("config", sorted((REPO_ROOT / "eval" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_eval_configs_parse(config):
    args = runner.parse_args(["--config", str(config), "--split", "train"])
    assert isinstance(args, runner.EvalArguments)
    assert args.split == "train"  # flags after --config override the YAML


def test_eval_of_a_lora_adapter_equals_eval_of_its_merged_model(tmp_path, dataset_dir, tiny_models):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from medvl_recipes.merging import merge_adapter

    base = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    common = ["--dataset", str(dataset_dir), "--max-samples", "4", "--max-new-tokens", "6", "--n-resamples", "20",
              "--metrics", "bleu", "chrf", "--no_plots"]  # fmt: skip
    adapter = _run(["--decoder", str(tmp_path / "adapter"), "--output-dir", str(tmp_path / "a"), *common])
    merged = _run(["--decoder", str(tmp_path / "merged"), "--output-dir", str(tmp_path / "m"), *common])
    generations = [json.loads(line)["generation"] for line in (tmp_path / "a" / "per_sample.jsonl").open()]
    assert generations == [json.loads(line)["generation"] for line in (tmp_path / "m" / "per_sample.jsonl").open()]
    assert adapter["metrics"]["bleu"]["value"] == merged["metrics"]["bleu"]["value"]
