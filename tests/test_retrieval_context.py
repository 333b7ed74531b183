# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The retrieval context: each prompt gets the reports of the training images nearest to its image by the fine-tuned
SigLIP, in training (never the sample's own report), `medvl eval` (its image-swap control too), `medvl generate` and
the demo, from the index the checkpoint stores."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medvl_recipes.cli import main as medvl
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.generation import generate_reports
from medvl_recipes.modeling import load_decoder
from medvl_recipes.prompts import CONTEXT_HEADER, assistant_text, build_messages, read_prompt, with_context
from medvl_recipes.retrieval import TorchEncoder
from medvl_recipes.retrieval_context import (
    CONTEXT_DIR,
    ReportIndex,
    load_retrieval_context,
    write_retrieval_context,
)
from tests.fixtures.factories import write_chat_dataset, write_prepared_dataset
from tests.test_train_decoder import smoke_args


def test_neighbours_leave_out_every_row_with_the_queries_report_and_rank_by_cosine():
    generator = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(12, 8, generator=generator), dim=-1)
    # Rows 0, 5 and 9 carry one report (as two views of one study do), spelled with other case and spacing.
    reports = [f"report {i}" for i in range(12)]
    reports[5], reports[9] = "REPORT  0", " report 0 "
    index = ReportIndex(emb, [f"id{i}" for i in range(12)], reports)

    got = index.neighbours(emb, k=4, query_reports=reports)

    scores = emb.numpy() @ emb.numpy().T
    same = [{0, 5, 9} if i in (0, 5, 9) else {i} for i in range(12)]
    for i, row in enumerate(got):
        expected = [j for j in np.argsort(-scores[i], kind="stable") if j not in same[i]][:4]
        assert [j for j, _ in row] == expected
        assert [s for _, s in row] == pytest.approx([scores[i, j] for j in expected], abs=1e-6)
    # A query from outside the index (inference) may retrieve any row, its best match first.
    assert [j for j, _ in index.neighbours(emb[:1], k=1)[0]] == [0]
    # Fewer eligible rows than k: only those.
    assert len(ReportIndex(emb[:3], ["a", "b", "c"], ["x", "x", "y"]).neighbours(emb[:1], 5, ["x"])[0]) == 1


def test_the_context_enters_the_user_turn_between_image_and_instruction(tiny_models):
    from transformers import AutoProcessor

    context = ["Chest X-ray. No acute finding.", "Chest X-ray. There is cardiomegaly."]
    trained = with_context(build_messages("Describe this medical image.", report="Axial CT."), context)
    assert trained == build_messages("Describe this medical image.", report="Axial CT.", context=context)
    assert build_messages(context=[]) == build_messages()
    # A plain-string user turn (TRL allows one) gets the same text.
    plain = with_context([{"role": "user", "content": "Describe."}], context)
    assert plain[0]["content"] == build_messages("Describe.", "", context=context)[0]["content"][1]["text"]

    processor = AutoProcessor.from_pretrained(tiny_models["mllama"])
    text = processor.apply_chat_template(build_messages(context=context), add_generation_prompt=True)
    positions = [text.index(s) for s in ("<|image|>", CONTEXT_HEADER, *context, "Describe this medical image.")]
    assert positions == sorted(positions)


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """A tiny decoder trained 3 steps with a 2-report retrieval context (the tiny SigLIP finds it), checkpoint-2 saved."""
    root = tmp_path_factory.mktemp("retrieval-context")
    chat_dir = write_chat_dataset(root / "chat", n_train=24, n_val=8, seed=0)
    prepared = write_prepared_dataset(root / "prepared", n_train=24, n_val=8, seed=0)
    out = root / "decoder"
    extra = ["--max_steps", "3", "--num_sample_generations", "2", "--vision_warmup_steps", "0"]
    extra += ["--save_strategy", "steps", "--save_steps", "2"]
    extra += ["--retrieval_context_k", "2", "--retrieval_context_encoder", str(tiny_models["siglip"])]
    assert medvl(smoke_args(tiny_models, chat_dir, out, *extra)) == 0
    return {"decoder": out, "chat": chat_dir, "prepared": prepared}


def _images(chat_dir, split):
    return [Image.open(row[0]).convert("RGB") for row in load_chat_split(chat_dir, split)["images"]]


def test_the_checkpoint_stores_the_index_of_the_training_images(tiny_models, trained):
    context = load_retrieval_context(str(trained["decoder"]))
    assert context.settings == {"k": 2, "encoder": str(tiny_models["siglip"]), "num_reports": 24}
    train = load_chat_split(trained["chat"], "train")
    assert context.index.ids == list(train["id"])
    assert context.index.reports == [assistant_text(m) for m in train["messages"]]
    # The embeddings are the fine-tuned encoder's own, and the stored encoder copy embeds new images the same way.
    reference = TorchEncoder(str(tiny_models["siglip"])).encode_images(_images(trained["chat"], "train"))
    torch.testing.assert_close(context.index.image_emb, reference)
    torch.testing.assert_close(context.encoder.encode_images(_images(trained["chat"], "train")[:4]), reference[:4])
    # An intermediate checkpoint is asked as the final model is.
    in_checkpoint = load_retrieval_context(str(trained["decoder"] / "checkpoint-2"))
    assert in_checkpoint.settings == context.settings and in_checkpoint.index.ids == context.index.ids
    assert read_prompt(str(trained["decoder"] / "checkpoint-2")) == read_prompt(str(trained["decoder"]))
    # No training prompt shows the sample its own report.
    for own, shown in zip(context.index.reports, context.training_contexts(), strict=True):
        assert len(shown) == 2 and own.lower() not in {report.lower() for report in shown}


def test_generation_asks_each_image_with_its_own_neighbours_reports(trained, monkeypatch):
    model, processor = load_decoder(str(trained["decoder"]))
    context = load_retrieval_context(str(trained["decoder"]))
    images = _images(trained["chat"], "validation")
    prompts = []
    generate = model.generate

    def recording_generate(**kwargs):
        prompts.extend(processor.batch_decode(kwargs["input_ids"], skip_special_tokens=True))
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", recording_generate)
    generate_reports(model, processor, images, context=context, max_new_tokens=2, batch_size=3, show_progress=False)

    expected = context.reports_for(images)
    assert len(prompts) == len(images)
    for prompt, reports in zip(prompts, expected, strict=True):
        assert CONTEXT_HEADER in prompt and all(report in prompt for report in reports)
    assert len({tuple(r) for r in expected}) > 1, "every image got the same context"


def test_eval_and_generate_ask_with_the_stored_context_and_eval_can_ask_without(trained, tmp_path):
    base = ["eval", "--decoder", str(trained["decoder"]), "--dataset", str(trained["prepared"]), "--max_samples", "4"]
    base += ["--n_resamples", "0", "--baselines", "false", "--plots", "false", "--max_new_tokens", "8"]
    assert medvl([*base, "--output_dir", str(tmp_path / "with")]) == 0
    assert medvl([*base, "--output_dir", str(tmp_path / "without"), "--retrieval_context", "false"]) == 0
    with_context_run = json.loads((tmp_path / "with" / "metrics.json").read_text())
    without = json.loads((tmp_path / "without" / "metrics.json").read_text())
    settings = load_retrieval_context(str(trained["decoder"])).settings
    assert with_context_run["models"]["decoder"]["retrieval_context"] == settings
    assert without["models"]["decoder"]["retrieval_context"] is None
    identity = json.loads((tmp_path / "with" / "generation_identity.json").read_text())
    assert identity["retrieval_context"] == settings

    assert medvl(["generate", str(trained["chat"] / "images"), "--decoder", str(trained["decoder"]),
                  "--output-dir", str(tmp_path / "gen"), "--max-samples", "3", "--max-new-tokens", "4"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "gen" / "reports.jsonl").read_text().splitlines()]
    train_ids = set(load_retrieval_context(str(trained["decoder"])).index.ids)
    assert len(rows) == 3
    assert all(
        len(row["retrieval_context"]) == 2 and {c["id"] for c in row["retrieval_context"]} <= train_ids for row in rows
    )


def test_a_run_without_context_into_the_same_folder_removes_the_old_one(trained, tmp_path):
    context = load_retrieval_context(str(trained["decoder"]))
    folder = write_retrieval_context(tmp_path, context)
    assert folder == tmp_path / CONTEXT_DIR and load_retrieval_context(str(tmp_path)).index.ids == context.index.ids
    assert write_retrieval_context(tmp_path, None) is None
    assert not (tmp_path / CONTEXT_DIR).exists() and load_retrieval_context(str(tmp_path)) is None
