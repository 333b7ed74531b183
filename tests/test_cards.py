# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import json

import pytest
import yaml
from huggingface_hub import ModelCard

from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.model_card import load_model_index, update_model_card, write_model_card


MODEL_INDEX = [
    {
        "name": "medvl-decoder",
        "results": [
            {
                "task": {"type": "image-text-to-text", "name": "Report generation"},
                "dataset": {"type": "me/medvl-sample", "name": "medvl sample (validation)", "split": "validation"},
                "metrics": [{"type": "bleu", "value": 12.5, "name": "BLEU"}, {"type": "rougeL", "value": 0.25}],
            }
        ],
    }
]
RECIPE = "# Model arguments\nmodel_name_or_path: google/siglip-base-patch16-224\n# Training arguments\nlearning_rate: 1.0e-05\n"


def test_encoder_card_metadata_and_sections(tmp_path):
    recipe = tmp_path / "config_smoke.yaml"
    recipe.write_text(RECIPE)
    path = write_model_card(
        tmp_path / "enc",
        stage="encoder",
        base_model="google/siglip-base-patch16-224",
        recipe=recipe,
        dataset="me/medvl-sample",
        metrics={"i2t_recall@1": 0.123456, "retrieval": {"t2i_recall@5": 0.5}},
        training_args={"learning_rate": 1e-5, "hub_token": "hf_secret_value", "output_dir": tmp_path},
    )
    assert path == tmp_path / "enc" / "README.md"
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "zero-shot-image-classification"
    assert data["base_model"] == "google/siglip-base-patch16-224"
    assert data["datasets"] == ["me/medvl-sample"]
    assert data["license"] == "apache-2.0"
    assert {"medical", "radiology"} <= set(data["tags"])
    # The recipe is inlined verbatim in a yaml block.
    assert "```yaml\n" + RECIPE.strip() + "\n```" in card.text
    assert "| i2t_recall@1 | 0.1235 |" in card.text
    assert "| retrieval/t2i_recall@5 | 0.5 |" in card.text
    assert "https://huggingface.co/datasets/me/medvl-sample" in card.text
    assert "Not for clinical use" in card.text
    assert "AutoModel.from_pretrained(model_id)" in card.text
    assert "hf_secret_value" not in path.read_text() and "hub_token" not in path.read_text()
    # The hyperparameter block is valid YAML with the values given.
    block = card.text.split("## Training hyperparameters\n")[1].split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(block) == {"learning_rate": 1e-5, "output_dir": str(tmp_path)}


def test_decoder_adapter_card_with_model_index_file(tmp_path):
    out = tmp_path / "lora"
    out.mkdir()
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    index_file = tmp_path / "eval" / "model_index.yaml"
    index_file.parent.mkdir()
    index_file.write_text(yaml.safe_dump(MODEL_INDEX))
    # A local base model (e.g. the tiny offline one) must not go into the `base_model` metadata.
    base = tmp_path / "tiny-llama-3.2-vision"
    base.mkdir()
    write_model_card(out, stage="decoder", base_model=str(base), model_index=index_file.parent)
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft"
    assert card.data.pipeline_tag == "image-text-to-text"
    assert card.data.license == "llama3.2"
    assert card.data.base_model is None
    assert "lora" in card.data.tags
    assert card.data.eval_results[0].metric_type == "bleu"
    assert card.data.eval_results[0].metric_value == 12.5
    assert card.data.to_dict()["model-index"][0]["results"][0]["metrics"][1] == {"type": "rougeL", "value": 0.25}
    # Without explicit metrics the table comes from the model index.
    assert "| BLEU (medvl sample (validation)) | 12.5 |" in card.text
    assert "PeftModel.from_pretrained(base, model_id)" in card.text
    assert f'AutoModelForImageTextToText.from_pretrained("{base}")' in card.text


def test_dataset_dir_licence_and_update_for_push(tmp_path):
    data_dir = tmp_path / "prepared"
    data_dir.mkdir()
    (data_dir / "README.md").write_text("---\nlicense:\n- cc-by-4.0\n- cc0-1.0\n---\n# data\n")
    out = tmp_path / "enc"
    write_model_card(out, stage="encoder", base_model="google/siglip-base-patch16-224", dataset=data_dir)
    text = (out / "README.md").read_text()
    assert "Data licence(s): `cc-by-4.0`, `cc0-1.0`" in text
    assert "No evaluation results were recorded" in text
    assert ModelCard.load(out / "README.md").data.datasets is None

    update_model_card(out, repo_id="me/medvl-encoder", dataset_id="me/medvl-data", model_index=MODEL_INDEX)
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["me/medvl-data"]
    assert card.data.eval_results[1].metric_type == "rougeL"
    assert 'model_id = "me/medvl-encoder"' in card.text
    assert card.text.lstrip().startswith("# medvl-encoder")
    assert "https://huggingface.co/datasets/me/medvl-data" in card.text
    assert "Data licence(s): `cc-by-4.0`, `cc0-1.0`" in card.text
    assert "| BLEU (medvl sample (validation)) | 12.5 |" in card.text


def test_bad_inputs_raise_medvl_error(tmp_path):
    with pytest.raises(MedvlError, match="unknown stage 'vision'"):
        write_model_card(tmp_path, stage="vision", base_model="x")
    with pytest.raises(MedvlError, match="does not exist"):
        load_model_index(tmp_path / "missing.yaml")
    bad = tmp_path / "model_index.yaml"
    bad.write_text(yaml.safe_dump([{"name": "m", "results": [{"metrics": [{"type": "bleu", "value": 1}]}]}]))
    with pytest.raises(MedvlError, match=r"model_index.yaml: invalid model-index"):
        load_model_index(bad)
    with pytest.raises(MedvlError, match="has no README.md"):
        update_model_card(tmp_path / "nowhere", repo_id="me/x")


@pytest.mark.parametrize("with_context", [False, True], ids=["prompt", "retrieval-context"])
def test_decoder_card_snippet_reproduces_medvl_generate_token_for_token(
    tiny_models, sample_raw_dir, tmp_path, monkeypatch, with_context
):
    import contextlib
    import io
    import shutil

    from PIL import Image

    from medvl_recipes.inference import generate
    from medvl_recipes.prompts import PROMPT_FILE
    from medvl_recipes.retrieval_context import build_retrieval_context, write_retrieval_context

    checkpoint = tmp_path / "decoder"
    shutil.copytree(tiny_models["mllama"], checkpoint)
    # A checkpoint that stores its training prompt: the card must use it, system turn included.
    stored = {"instruction": "Describe the imaging findings.", "system_prompt": "You are a radiologist."}
    (checkpoint / PROMPT_FILE).write_text(json.dumps(stored))
    if with_context:
        # ... and one trained with a retrieval context: the card asks with it, as `medvl generate` does.
        train = sorted((sample_raw_dir / "rocov2_csv").rglob("*.png"))[1:9]
        images = [Image.open(path).convert("RGB") for path in train]
        reports = [f"Report of study {i}. There is a mass in the right lung." for i in range(len(train))]
        context = build_retrieval_context(str(tiny_models["siglip"]), images, [p.stem for p in train], reports, k=2)
        write_retrieval_context(checkpoint, context)
    write_model_card(checkpoint, stage="decoder", base_model="meta-llama/Llama-3.2-11B-Vision-Instruct")
    snippet = ModelCard.load(checkpoint / "README.md").text.split("## How to load\n")[1].split("```python\n")[1]
    snippet = snippet.split("```")[0]
    assert "add_special_tokens=False" in snippet and stored["system_prompt"] in snippet
    image = next((sample_raw_dir / "rocov2_csv").rglob("*.png"))
    monkeypatch.chdir(tmp_path)
    shutil.copy(image, tmp_path / "chest_xray.png")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "model-card-snippet", "exec"), {})
    out = generate(
        [str(tmp_path / "chest_xray.png")],
        str(checkpoint),
        tmp_path / "gen",
        max_new_tokens=128,
        dtype="float32",
        device="cpu",
        show_progress=False,
    )
    assert printed.getvalue().rstrip("\n") == json.loads(out.read_text().splitlines()[0])["report"]


def test_merged_card_records_an_absolute_base_and_the_training_prompt(tiny_models, tmp_path, monkeypatch):
    import os
    import shutil

    from medvl_recipes.configs import DecoderModelConfig
    from medvl_recipes.merging import merge_adapter
    from medvl_recipes.modeling import get_decoder
    from medvl_recipes.prompts import PROMPT_FILE

    # An adapter trained from a relative base path, merged from another directory.
    shutil.copytree(tiny_models["mllama"], tmp_path / "run" / "base")
    monkeypatch.chdir(tmp_path / "run")
    model = get_decoder(DecoderModelConfig(model_name_or_path="base", use_peft=True, lora_r=4, lora_alpha=8))
    model.save_pretrained(tmp_path / "run" / "adapter")
    (tmp_path / "run" / "adapter" / PROMPT_FILE).write_text(
        json.dumps({"instruction": "Describe this medical image."})
    )
    os.chdir(tmp_path)
    with pytest.raises(MedvlError, match="base"):
        # From elsewhere the relative base cannot be found: one clear line, not a Hub lookup traceback.
        merge_adapter(tmp_path / "run" / "adapter", tmp_path / "merged-bad")
    merged = merge_adapter(
        tmp_path / "run" / "adapter", tmp_path / "merged", base_model=str(tmp_path / "run" / "base")
    )
    assert (merged / PROMPT_FILE).is_file()
    assert f"`{tmp_path / 'run' / 'base'}`" in (merged / "README.md").read_text()
    hub_card = write_model_card(
        tmp_path / "m2", stage="decoder", base_model="meta-llama/Llama-3.2-11B-Vision-Instruct"
    )
    assert ModelCard.load(hub_card).data.base_model == "meta-llama/Llama-3.2-11B-Vision-Instruct"
