# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl export onnx`: the ONNX towers reproduce PyTorch's embeddings (1e-4) and retrieval ranks on the validation
split of the sample data, with any batch size; the int8 copies' recall change is measured; `generate` takes them."""

import json

import numpy as np
import onnx
import pytest

from medvl_recipes.cli import main as medvl
from medvl_recipes.export import OnnxEncoder
from medvl_recipes.inference import generate
from medvl_recipes.retrieval import TorchEncoder, retrieval_metrics, retrieval_ranks


@pytest.fixture(scope="module")
def onnx_dir(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny-siglip-onnx"
    assert medvl(["export", "onnx", str(tiny_models["siglip"]), str(out), "--quantize"]) == 0
    return out


@pytest.fixture(scope="module")
def validation(prepared_dataset_dir):
    from medvl_recipes.data.prepared import load_prepared_split

    data = load_prepared_split(prepared_dataset_dir, "validation")
    return list(data["image"]), list(data["text"])


def test_layout_and_dynamic_batch(onnx_dir):
    for name in ("config.json", "processor_config.json", "onnx/siglip_logits.json"):
        assert (onnx_dir / name).is_file(), name
    for name, input_name in (("vision_model", "pixel_values"), ("text_model", "input_ids")):
        graph = onnx.load(str(onnx_dir / "onnx" / f"{name}.onnx")).graph
        (graph_input,) = graph.input
        assert graph_input.name == input_name
        assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch_size"
        assert (onnx_dir / "onnx" / f"{name}_quantized.onnx").stat().st_size < (
            onnx_dir / "onnx" / f"{name}.onnx"
        ).stat().st_size


def test_embeddings_and_rankings_match_pytorch(onnx_dir, tiny_models, validation):
    images, texts = validation
    reference, exported = TorchEncoder(str(tiny_models["siglip"])), OnnxEncoder(onnx_dir)
    ref_img, ref_txt = reference.encode_images(images), reference.encode_texts(texts)
    onnx_img, onnx_txt = exported.encode_images(images, batch_size=5), exported.encode_texts(texts, batch_size=7)
    max_diff = max(float((ref_img - onnx_img).abs().max()), float((ref_txt - onnx_txt).abs().max()))
    assert max_diff < 1e-4, max_diff
    # Ranks are identical except where PyTorch's own scores tie within float noise (the 1e-7 embedding
    # differences may order two texts whose scores differ by less than 1e-5 either way).
    ref_scores = (ref_img @ ref_txt.T).numpy()  # (N, N)
    tol = 1e-5
    for direction, (ours, theirs) in enumerate(
        zip(retrieval_ranks(ref_img, ref_txt), retrieval_ranks(onnx_img, onnx_txt), strict=True)
    ):
        scores = ref_scores if direction == 0 else ref_scores.T
        near_tie = (np.abs(scores - np.diag(scores)[:, None]) < tol).sum(1) > 1  # a competitor within tol
        assert np.all((ours == theirs) | near_tie), np.nonzero(ours != theirs)
        assert (ours != theirs).sum() <= 2
    # Per-image neighbour order too: ONNX's order walks PyTorch's scores in the same descending sequence.
    onnx_order = (onnx_img @ onnx_txt.T).argsort(dim=1, descending=True).numpy()
    walked = np.take_along_axis(ref_scores, onnx_order, axis=1)
    np.testing.assert_allclose(walked, -np.sort(-ref_scores, axis=1), atol=tol)
    assert exported.logit_scale == pytest.approx(reference.logit_scale)
    assert exported.logit_bias == pytest.approx(reference.logit_bias)


def test_int8_recall_change_is_measured(onnx_dir, validation, tmp_path):
    images, texts = validation
    fp32, int8 = OnnxEncoder(onnx_dir), OnnxEncoder(onnx_dir, quantized=True)
    before = retrieval_metrics(fp32.encode_images(images), fp32.encode_texts(texts))
    after = retrieval_metrics(int8.encode_images(images), int8.encode_texts(texts))
    change = {key: after[key] - before[key] for key in before if "recall" in key}
    (tmp_path / "int8_recall_change.json").write_text(json.dumps(change))
    print("int8 recall change on", before["num_pairs"], "validation pairs:", change)  # noqa: T201
    # int8 weights move the embeddings a little (median cosine 0.95, the worst image 0.88 on the sample's
    # validation split); a broken graph (wrong scale, zeroed weights) moves them a lot.
    cosine = (fp32.encode_images(images) * int8.encode_images(images)).sum(-1)
    assert float(cosine.median()) > 0.9 and float(cosine.min()) > 0.8


def test_generate_takes_the_onnx_encoder(onnx_dir, tiny_models, prepared_dataset_dir, tmp_path, sample_raw_dir):
    image = next((sample_raw_dir / "rocov2_csv").rglob("*.png"))
    common = {"index_dataset": str(prepared_dataset_dir), "index_split": "validation", "k": 3, "max_new_tokens": 8}
    common |= {"dtype": "float32", "device": "cpu", "show_progress": False}
    rows = []
    for name, encoder in (("torch", tiny_models["siglip"]), ("onnx", onnx_dir)):
        out = generate([str(image)], str(tiny_models["mllama"]), tmp_path / name, encoder=str(encoder), **common)
        rows.append(json.loads(out.read_text().splitlines()[0]))
    assert [c["id"] for c in rows[0]["similar_cases"]] == [c["id"] for c in rows[1]["similar_cases"]]
    assert rows[0]["match_probability"] == pytest.approx(rows[1]["match_probability"], abs=1e-4)
