# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, AutoProcessor

from medvl_recipes.collators import SiglipPairCollator
from medvl_recipes.configs import SiglipTrainingConfig
from medvl_recipes.trainers import SiglipContrastiveTrainer
from tests.ddp_siglip_worker import make_pairs, reference_grads, train_one_step


def _max_diff(grads, reference):
    assert set(grads) == set(reference)
    return max((grads[name] - reference[name]).abs().max().item() for name in reference)


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(8)


@pytest.fixture(scope="module")
def big_batch(tiny_models, pairs):
    return reference_grads(tiny_models["siglip"], pairs)


def test_accumulated_negatives_give_big_batch_gradients(tiny_models, pairs, big_batch, tmp_path):
    # 4 micro-batches of 2 through the real Trainer == one batch of 8.
    ref_loss, ref_grads = big_batch
    loss, grads, _ = train_one_step(
        tiny_models["siglip"], pairs, tmp_path, negatives="accumulated", batch_size=2, accumulation=4
    )
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-5, msg=name)
    assert "logit_scale" in grads and "logit_bias" in grads


def test_local_negatives_differ_from_big_batch(tiny_models, pairs, big_batch, tmp_path):
    # Control: plain gradient accumulation does not give the big-batch gradient, so the test above can fail.
    _, ref_grads = big_batch
    _, grads, _ = train_one_step(
        tiny_models["siglip"], pairs, tmp_path, negatives="local", batch_size=2, accumulation=4
    )
    assert _max_diff(grads, ref_grads) > 1e-4


def test_accumulated_with_one_micro_batch_equals_local(tiny_models, pairs, big_batch, tmp_path):
    ref_loss, ref_grads = big_batch
    for negatives in ("local", "accumulated"):
        loss, grads, _ = train_one_step(
            tiny_models["siglip"], pairs, tmp_path / negatives, negatives=negatives, batch_size=8, accumulation=1
        )
        assert loss == pytest.approx(ref_loss, abs=1e-5)
        assert _max_diff(grads, ref_grads) < 1e-5


def test_global_negatives_two_processes_match_one_big_batch(tiny_models, pairs, big_batch, tmp_path, repo_root):
    # 2 ranks x 2 micro-batches x 2 pairs on gloo == the 8 pairs as one batch (the loss is invariant to pair order).
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*torchrun, str(repo_root / "tests" / "ddp_siglip_worker.py"), str(tiny_models["siglip"]), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(out)
    assert saved["world_size"] == 2
    ref_loss, ref_grads = big_batch
    assert saved["loss"] == pytest.approx(ref_loss, abs=1e-5)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(saved["grads"][name], grad, rtol=1e-5, atol=1e-5, msg=name)


def test_evaluate_reports_loss_and_retrieval(tiny_models, pairs, tmp_path):
    model_dir = tiny_models["siglip"]
    args = SiglipTrainingConfig(
        output_dir=str(tmp_path), per_device_eval_batch_size=3, report_to="none", use_cpu=True, disable_tqdm=True
    )
    model = AutoModel.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    trainer = SiglipContrastiveTrainer(
        model=model, args=args, eval_dataset=pairs, data_collator=SiglipPairCollator(processor)
    )
    metrics = trainer.evaluate()
    from medvl_recipes.retrieval import encode_images, encode_texts, retrieval_metrics

    expected = retrieval_metrics(
        encode_images(model, processor, pairs["image"]), encode_texts(model, processor, pairs["text"])
    )
    for key in ("i2t_recall@1", "i2t_recall@5", "t2i_recall@10", "i2t_mean_rank", "t2i_median_rank", "num_pairs"):
        assert metrics[f"eval_{key}"] == pytest.approx(expected[key], abs=1e-6), key
    assert metrics["eval_num_pairs"] == 8
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
