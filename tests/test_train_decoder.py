# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl train-decoder`: the smoke recipe learns, LoRA and freezing touch the right weights, DDP runs, recipes parse."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, TrlParser

from medvl_recipes.cli import main as medvl
from medvl_recipes.configs import DecoderModelConfig, DecoderScriptArguments
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.errors import MedvlError
from medvl_recipes.generation import log_sample_generations
from medvl_recipes.modeling import get_decoder, get_processor
from tests.fixtures.factories import write_chat_dataset


REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "llama-3.2-11b-vision" / "decoder"
SMOKE = RECIPES / "config_smoke.yaml"


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return write_chat_dataset(tmp_path_factory.mktemp("chat"), n_train=24, n_val=8, seed=0)


def smoke_args(tiny_models, chat_dir, output_dir, *extra):
    return [
        "train-decoder",
        "--config",
        str(SMOKE),
        "--model_name_or_path",
        str(tiny_models["mllama"]),
        "--dataset_name",
        str(chat_dir),
        "--output_dir",
        str(output_dir),
        # The recipe's warm-up with the fixture's (untrained) encoder swapped in, and fewer steps.
        "--vision_warmup_encoder",
        str(tiny_models["siglip"]),
        "--vision_warmup_steps",
        "20",
        *extra,
    ]


def test_smoke_recipe_loss_falls_and_bleu_rises(tiny_models, chat_dir, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_models["mllama"])
    untrained = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    validation = load_chat_split(chat_dir, "validation")
    # The same length as the recipe's own sample generations (`sample_max_new_tokens`), which log `validation_bleu`.
    max_new_tokens = yaml.safe_load(SMOKE.read_text())["sample_max_new_tokens"]
    before = log_sample_generations(untrained, processor, validation, max_new_tokens=max_new_tokens)["bleu"]

    out = tmp_path / "decoder"
    assert medvl(smoke_args(tiny_models, chat_dir, out, "--num_train_epochs", "5")) == 0
    losses = [
        entry["loss"]
        for entry in json.loads((out / "trainer_state.json").read_text())["log_history"]
        if "loss" in entry
    ]
    assert losses[-1] < 0.6 * losses[0]
    logged = [
        entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in entry
    ]
    assert all(0 < entry["label_token_share"] < 1 and entry["tokens_per_second"] > 0 for entry in logged)
    after = json.loads((out / "train_results.json").read_text())["validation_bleu"]
    assert after > before + 10, (before, after)
    for name in ("model.safetensors", "generation_config.json", "processor_config.json", "run_args.json", "README.md"):
        assert (out / name).is_file(), name
    # The saved folder reloads and reproduces the logged score.
    trained = AutoModelForImageTextToText.from_pretrained(out)
    reloaded = log_sample_generations(
        trained, AutoProcessor.from_pretrained(out), validation, max_new_tokens=max_new_tokens
    )
    assert reloaded["bleu"] == pytest.approx(after)


def test_lora_touches_no_vision_tower_parameter(tiny_models, chat_dir, tmp_path):
    model = get_decoder(DecoderModelConfig(model_name_or_path=str(tiny_models["mllama"]), use_peft=True))
    lora_modules = {name.rsplit(".lora_", 1)[0] for name, _ in model.named_parameters() if ".lora_" in name}
    assert lora_modules and not any("vision_model" in name for name in lora_modules)
    assert all("language_model.layers." in name and ("self_attn." in name or "mlp." in name) for name in lora_modules)
    # Every self-attention and MLP projection of the language model got an adapter.
    assert len(lora_modules) == 2 * 4 + 4 * 3  # 2 self-attention layers x (q,k,v,o) + 4 layers x (gate,up,down)
    assert all(".lora_" in name for name, p in model.named_parameters() if p.requires_grad)

    out = tmp_path / "lora"
    args = [
        "--use_peft",
        "true",
        "--vision_warmup_steps",
        "0",
        "--max_steps",
        "2",
        "--num_sample_generations",
        "0",
        "--learning_rate",
        "0.05",
    ]
    assert medvl(smoke_args(tiny_models, chat_dir, out, *args)) == 0
    saved = load_file(out / "adapter_model.safetensors")
    assert saved and not any("vision_model" in key for key in saved)
    assert any(value.abs().sum() > 0 for key, value in saved.items() if "lora_B" in key)  # it did train


def test_freeze_language_model_trains_only_cross_attention(tiny_models):
    model = get_decoder(DecoderModelConfig(model_name_or_path=str(tiny_models["mllama"]), freeze_language_model=True))
    cross_layers = model.config.text_config.cross_attention_layers
    for name, param in model.named_parameters():
        in_cross_layer = any(f"language_model.layers.{i}." in name for i in cross_layers)
        expected = in_cross_layer or "multi_modal_projector" in name
        assert param.requires_grad == expected, name


def test_tile_count_other_than_the_models_is_refused(tiny_models):
    args = DecoderModelConfig(model_name_or_path=str(tiny_models["mllama"]), max_image_tiles=4)
    with pytest.raises(MedvlError, match=r"max_image_tiles=4, but .* takes exactly 1 tile\(s\)"):
        get_processor(args)
    args.max_image_tiles = 1
    assert get_processor(args).image_processor.max_image_tiles == 1


def test_bad_dataset_row_is_named(tiny_models, tmp_path, capsys):
    chat_dir = write_chat_dataset(tmp_path / "chat", n_train=3, n_val=1)
    lines = (chat_dir / "train.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["messages"] = row["messages"][:2]
    lines[2] = json.dumps(row)
    (chat_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    assert medvl(smoke_args(tiny_models, chat_dir, tmp_path / "out")) == 2
    assert "train.jsonl line 3 (sample 2): the chat has no (non-empty) assistant turn" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda path: path.name)
def test_recipes_parse(recipe):
    parser = TrlParser((DecoderScriptArguments, SFTConfig, DecoderModelConfig))
    # transformers refuses bf16 where no GPU supports it, so the GPU recipes are parsed with it overridden here.
    cpu_override = [] if torch.cuda.is_available() or "use_cpu" in recipe.read_text() else ["--bf16", "false"]
    script_args, training_args, model_args = parser.parse_args_and_config(
        args=["--config", str(recipe), *cpu_override]
    )
    assert training_args.remove_unused_columns is False
    assert training_args.dataset_kwargs == {"skip_prepare_dataset": True}
    assert script_args.dataset_name and model_args.model_name_or_path


def test_ddp_two_cpu_processes(tiny_models, chat_dir, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "medvl_recipes.train_decoder", *smoke_args(tiny_models, chat_dir, out)[1:],
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--num_sample_generations", "0",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # 2 steps x 2 processes x 2 samples of the 24 training samples.
    assert state["epoch"] == pytest.approx(8 / 24, abs=1e-3)


@pytest.mark.slow
def test_smoke_recipe_on_the_sample_data_chain(tiny_models, chat_dataset_dir, tmp_path):
    """The smoke recipe as `make quickstart` runs it, on `medvl sample-data | prepare | to-chat` output."""
    processor = AutoProcessor.from_pretrained(tiny_models["mllama"])
    untrained = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    validation = load_chat_split(chat_dataset_dir, "validation")
    before = log_sample_generations(untrained, processor, validation, max_new_tokens=64, batch_size=16)["bleu"]
    out = tmp_path / "decoder"
    assert medvl(smoke_args(tiny_models, chat_dataset_dir, out)) == 0
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert losses[-1] < 0.5 * losses[0]
    after = json.loads((out / "train_results.json").read_text())["validation_bleu"]
    assert after > before + 10, (before, after)


def _trl_rows(chat_dir: Path, split: str) -> list[dict]:
    """The rows of `chat_dir/{split}.jsonl` in TRL's vision SFT layout, with the images as PIL images.

    Mirrors HuggingFaceH4/llava-instruct-mix-vsft (README.md dataset_info at 4c04c83, the dataset TRL's VLM
    examples train on): `messages` is a list of `{content: [{index, text, type}], role}`, `images` a list of
    images; in its parquet files an image part is `{"index": 0, "text": None, "type": "image"}`.
    """
    from PIL import Image

    rows = []
    for line in (chat_dir / f"{split}.jsonl").read_text().splitlines():
        example = json.loads(line)
        messages = [
            {
                "role": message["role"],
                "content": [
                    {"index": 0 if part["type"] == "image" else None, "text": part.get("text"), "type": part["type"]}
                    for part in message["content"]
                ],
            }
            for message in example["messages"]
        ]
        images = [Image.open(chat_dir / path).convert("RGB") for path in example["images"]]
        rows.append({"messages": messages, "images": images})
    return rows


def _trl_dataset(chat_dir: Path):
    from datasets import Dataset, DatasetDict, Features, Image, List, Value

    part = {"index": Value("int64"), "text": Value("string"), "type": Value("string")}
    features = Features({"messages": List({"content": List(part), "role": Value("string")}), "images": List(Image())})
    return DatasetDict(
        {
            name: Dataset.from_list(_trl_rows(chat_dir, split), features=features)
            for name, split in (("train", "train"), ("test", "validation"))
        }  # fmt: skip
    )


def _losses(out: Path) -> list[float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def test_trl_format_datasets_train_like_the_chat_folder(tiny_models, tmp_path):
    """The same samples as a `medvl to-chat` folder, a `save_to_disk` folder and Hub-style parquet files."""
    chat_dir = write_chat_dataset(tmp_path / "chat", n_train=8, n_val=4, seed=0)
    trl = _trl_dataset(chat_dir)
    trl.save_to_disk(str(tmp_path / "trl-disk"))
    for split, dataset in trl.items():  # the layout of a Hub dataset's data/ folder
        (tmp_path / "trl-parquet" / "data").mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(tmp_path / "trl-parquet" / "data" / f"{split}-00000-of-00001.parquet"))
    steps = ["--max_steps", "3", "--logging_steps", "1", "--per_device_train_batch_size", "2"]
    steps += ["--num_sample_generations", "1", "--sample_max_new_tokens", "4"]
    losses = {}
    for name, test_split in (("chat", "validation"), ("trl-disk", "test"), ("trl-parquet", "test")):
        out = tmp_path / f"out-{name}"
        argv = smoke_args(tiny_models, tmp_path / name, out, *steps, "--dataset_test_split", test_split)
        assert medvl(argv) == 0, name
        losses[name] = _losses(out)
        assert (out / "model.safetensors").is_file() and (out / "prompt.json").is_file()
    # Same pixels, same chats, same order: the three layouts train to the same losses.
    assert len(losses["chat"]) == 3
    assert losses["trl-disk"] == pytest.approx(losses["chat"], rel=1e-5)
    assert losses["trl-parquet"] == pytest.approx(losses["chat"], rel=1e-5)


def test_unknown_dataset_layouts_are_one_line(tiny_models, tmp_path, capsys):
    from tests.fixtures.factories import write_prepared_dataset

    prepared = write_prepared_dataset(tmp_path / "prepared", n_train=3, n_val=1)
    with pytest.raises(MedvlError, match=r"unknown layout, columns .*'image'.*convert it with `medvl to-chat`"):
        load_chat_split(prepared, "train")
    trl = _trl_dataset(write_chat_dataset(tmp_path / "chat", n_train=2, n_val=1))
    trl.save_to_disk(str(tmp_path / "trl"))
    with pytest.raises(MedvlError, match=r"Unknown split 'validation'.*\['test', 'train'\].*--dataset_test_split"):
        load_chat_split(tmp_path / "trl", "validation")
    # A TRL row whose messages have no image part for its image is named by split and row.
    broken = trl["train"].map(lambda row, i: {"messages": row["messages"][:1] + row["messages"][2:]} if i == 1 else {},
                              with_indices=True)  # fmt: skip
    broken.save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(MedvlError, match=r"broken split train row 1: the messages have 0 image placeholder"):
        load_chat_split(tmp_path / "broken", "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert medvl(smoke_args(tiny_models, empty, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"dataset_name {empty}" in err and "medvl to-chat" in err
