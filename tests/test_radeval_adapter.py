# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The optional RadEval adapter: one line when RadEval is missing, its numbers in metrics.json when it runs.

RadEval itself needs torchvision, which this project never installs, so the "runs" case is exercised with a
stand-in module of the same interface (`RadEval(metrics=[...])(refs, hyps) -> {name: float}`); with the real
package installed, `test_real_radeval_lexical_metrics` checks its BLEU against sacrebleu's.
"""

import json
import sys
import types

import pytest

from medvl_recipes.evaluation import runner
from medvl_recipes.evaluation.radeval_adapter import radeval_scores


def test_missing_radeval_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "radeval", None)  # import fails like an uninstalled package
    out = radeval_scores(["No effusion."], ["No effusion."], ["bleu"])
    assert "`radeval` package is not installed" in out["missing"] and "\n" not in out["missing"]
    assert "unknown RadEval metrics" in radeval_scores(["a"], ["a"], ["radgraf"])["missing"]


def test_radeval_numbers_reach_metrics_json_and_report(tmp_path, monkeypatch):
    calls = []

    class FakeRadEval:
        def __init__(self, metrics, show_progress=True):
            calls.append(metrics)

        def __call__(self, refs, hyps):
            return {"radgraph_partial": sum(r == h for r, h in zip(refs, hyps, strict=True)) / len(refs)}

    monkeypatch.setitem(sys.modules, "radeval", types.SimpleNamespace(RadEval=FakeRadEval))
    preds = tmp_path / "p.jsonl"
    rows = [{"id": str(i), "reference": f"Report {i}.", "generation": f"Report {i % 2}."} for i in range(4)]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    runner.cli(["--predictions", str(preds), "--output-dir", str(out), "--n-resamples", "0", "--metrics", "bleu",
                "--plots", "false", "--radeval", "radgraph"])  # fmt: skip
    payload = json.loads((out / "metrics.json").read_text())
    assert calls == [["radgraph"]]
    assert payload["radeval"]["scores"] == {"radgraph_partial": 0.5}
    assert "| radgraph_partial | 0.5000 |" in (out / "report.md").read_text()


def test_real_radeval_lexical_metrics():
    pytest.importorskip("radeval", reason="radeval needs torchvision, which this project does not install")
    import sacrebleu

    refs, hyps = ["No pleural effusion.", "Mild cardiomegaly."], ["No pleural effusion.", "Heart is enlarged."]
    out = radeval_scores(refs, hyps, ["bleu"])
    assert out["scores"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score / 100, rel=0.2)
