# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Bad input to the real `medvl` CLI: each case ends in one `medvl <command>: error: ...` line naming what is wrong,
exit code 2, and no traceback.

Cases are grouped by stage and class (`CLASSES` counts them); each builds its own broken file or folder.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medvl_recipes.cli import main as medvl
from tests.fixtures.factories import write_chat_dataset, write_prepared_dataset


REPO = Path(__file__).resolve().parents[1]
DECODER_SMOKE = REPO / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
OTHER_TOKEN = "hf_" + "Zq7" * 11 + "x"  # token-shaped, and not the token in use


@pytest.fixture(scope="module")
def ctx(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    return {
        "siglip": str(tiny_models["siglip"]),
        "mllama": str(tiny_models["mllama"]),
        "pairs": write_prepared_dataset(root / "pairs", n_train=4, n_val=2),
        "chat": write_chat_dataset(root / "chat", n_train=2, n_val=1),
    }


# Builders: (ctx, tmp) -> argv. Each writes what it needs under tmp.


def recipe(command: str, text: str):
    def build(ctx, tmp):
        path = tmp / "recipe.yaml"
        path.write_text(text.format(**ctx))
        return [command, "--config", str(path)]

    return build


def encoder(*extra, setup=None):
    def build(ctx, tmp):
        values = setup(ctx, tmp) if setup else {}
        argv = [
            "train-encoder", "--model_name_or_path", ctx["siglip"], "--dataset_name", str(ctx["pairs"]),
            "--output_dir", str(tmp / "out"), "--use_cpu", "true", "--report_to", "none", "--max_steps", "1",
            "--eval_strategy", "no", "--retrieval_eval", "false", "--per_device_train_batch_size", "2",
        ]  # fmt: skip
        return argv + [str(arg).format(**ctx, **values, tmp=tmp) for arg in extra]

    return build


def decoder(*extra, setup=None):
    def build(ctx, tmp):
        values = setup(ctx, tmp) if setup else {}
        argv = [
            "train-decoder", "--config", str(DECODER_SMOKE), "--model_name_or_path", ctx["mllama"],
            "--dataset_name", str(ctx["chat"]), "--output_dir", str(tmp / "out"), "--max_steps", "1",
            "--num_sample_generations", "0", "--per_device_train_batch_size", "2",
            "--vision_warmup_encoder", ctx["siglip"], "--vision_warmup_steps", "0",
        ]  # fmt: skip
        return argv + [str(arg).format(**ctx, **values, tmp=tmp) for arg in extra]

    return build


def chat_with(edit):
    """A copy of the chat fixture whose train.jsonl lines went through `edit(lines) -> lines` (raw strings)."""

    def setup(ctx, tmp):
        chat = tmp / "chat"
        shutil.copytree(ctx["chat"], chat)
        lines = (chat / "train.jsonl").read_text().splitlines()
        (chat / "train.jsonl").write_text("".join(line + "\n" for line in edit(lines, chat)))
        return {"chat_dir": chat}

    return setup


def edit_first(change):
    def edit(lines, chat):
        first = json.loads(lines[0])
        change(first, chat)
        return [json.dumps(first), *lines[1:]]

    return edit


def fake_output(identity: dict | None, files=("model.safetensors",), checkpoint: bool = False):
    def setup(ctx, tmp):
        out = tmp / "out"
        folder = out / "checkpoint-1" if checkpoint else out
        folder.mkdir(parents=True)
        for name in files:
            (folder / name).write_bytes(b"weights")
        if checkpoint:
            (folder / "trainer_state.json").write_text("{}")
        if identity is not None:
            (folder / "run_identity.json").write_text(json.dumps(identity))
        return {"checkpoint": folder}

    return setup


def prepared_with(change):
    """A copy of the prepared fixture whose train parquet went through `change(table) -> table`."""

    def build_dataset(ctx, tmp):
        dataset = tmp / "dataset"
        shutil.copytree(ctx["pairs"], dataset)
        path = next((dataset / "data").glob("train-*.parquet"))
        pq.write_table(change(pq.read_table(path)), path)
        return dataset

    return build_dataset


def set_column(name, values_of):
    def change(table):
        values = table.column(name).to_pylist()
        values = values_of(values)
        field = table.schema.field(name)
        return table.set_column(table.schema.get_field_index(name), field, pa.array(values, type=field.type))

    return change


def to_chat(dataset_builder=None, out=None):
    def build(ctx, tmp):
        dataset = dataset_builder(ctx, tmp) if dataset_builder else ctx["pairs"]
        output = out(tmp) if out else tmp / "chat"
        return ["to-chat", "--dataset", str(dataset), "--output-dir", str(output)]

    return build


def predictions(*lines, extra=()):
    def build(ctx, tmp):
        path = tmp / "predictions.jsonl"
        path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
        return ["eval", "--predictions", str(path), "--output-dir", str(tmp / "eval"), "--n-resamples", "0", *extra]

    return build


def evaluate(*extra):
    def build(ctx, tmp):
        return ["eval", "--output-dir", str(tmp / "eval"), "--n-resamples", "0"] + [
            str(arg).format(**ctx, tmp=tmp) for arg in extra
        ]

    return build


def push(kind, setup):
    def build(ctx, tmp):
        return ["push", kind, *setup(ctx, tmp)]

    return build


def model_dir(ctx, tmp, with_file=None):
    folder = tmp / "model"
    shutil.copytree(ctx["siglip"], folder)
    if with_file:
        (folder / with_file[0]).write_text(with_file[1])
    return folder


GOOD = {"role": "assistant", "content": [{"type": "text", "text": "A nodule."}]}

# (class, id, builder, what the error line must say)
CASES = [
    # --- train-encoder / train-decoder: recipe files
    ("recipe: unknown key", "enc-learning_rat", recipe("train-encoder", "learning_rat: 0.1\n"),
     "unknown key 'learning_rat' (did you mean 'learning_rate'?)"),
    ("recipe: unknown key", "enc-negative", recipe("train-encoder", "negative: local\n"),
     "did you mean 'negatives'?"),
    ("recipe: unknown key", "enc-per_device_batch_size", recipe("train-encoder", "per_device_batch_size: 8\n"),
     "unknown key 'per_device_batch_size' (did you mean"),
    ("recipe: unknown key", "enc-no-suggestion", recipe("train-encoder", "zzzz: 1\n"), "unknown key 'zzzz';"),
    ("recipe: unknown key", "dec-loss_onn", recipe("train-decoder", "loss_onn: all\n"), "did you mean 'loss_on'?"),
    ("recipe: unknown key", "dec-lora_rank", recipe("train-decoder", "lora_rank: 8\n"), "unknown key 'lora_rank'"),
    ("recipe: unknown key", "dec-gradient_accumulation", recipe("train-decoder", "gradient_accumulation: 4\n"),
     "did you mean 'gradient_accumulation_steps'?"),
    ("recipe: bad value", "enc-negatives", recipe("train-encoder", "model_name_or_path: x\nnegatives: foo\n"),
     "negatives='foo' is not supported"),
    ("recipe: bad value", "dec-loss_on", recipe("train-decoder", "model_name_or_path: x\nloss_on: everything\n"),
     "loss_on='everything' is not supported"),
    ("recipe: bad value", "dec-too_long", recipe("train-decoder", "model_name_or_path: x\ntoo_long: cut\n"),
     "too_long='cut' is not supported"),
    ("recipe: wrong type", "enc-max_length-bool", recipe("train-encoder", "max_length: true\n"),
     "max_length must be int, got True"),
    ("recipe: wrong type", "enc-seed-float", recipe("train-encoder", "seed: 1.5\n"), "seed must be int, got 1.5"),
    ("recipe: wrong type", "enc-learning_rate-text", recipe("train-encoder", "learning_rate: abc\n"),
     "invalid float value: 'abc'"),
    ("recipe: wrong type", "dec-max_length-text", recipe("train-decoder", "max_length: long\n"),
     "invalid int value: 'long'"),
    ("recipe: wrong type", "dec-use_peft-number", recipe("train-decoder", "use_peft: 3\n"),
     "use_peft must be bool, got 3"),
    ("recipe: not a recipe", "enc-yaml-syntax", recipe("train-encoder", "learning_rate: [1, 2\n"),
     "not valid YAML at line"),
    ("recipe: not a recipe", "enc-yaml-list", recipe("train-encoder", "- learning_rate\n- seed\n"),
     "must be a mapping"),
    ("recipe: not a recipe", "dec-env-not-mapping", recipe("train-decoder", "env: 3\n"), "`env` must be a mapping"),
    ("recipe: not a recipe", "enc-missing-file", lambda ctx, tmp: ["train-encoder", "--config", str(tmp / "no.yaml")],
     "no.yaml: no such file"),
    # --- command-line flags
    ("flag: unknown", "enc-learning_rrate", encoder("--learning_rrate", "3"),
     "unknown option --learning_rrate; did you mean --learning_rate?"),
    ("flag: unknown", "dec-lora_rr", decoder("--lora_rr", "8"), "did you mean --lora_r?"),
    ("flag: unknown", "dec-freeze-vision", decoder("--freeze_vision", "true"),
     "unknown option --freeze_vision; did you mean --freeze_vision_tower?"),
    ("flag: bad value", "enc-negatives-flag", encoder("--negatives", "foo"), "invalid choice: 'foo'"),
    ("flag: bad value", "enc-max_length-0", encoder("--max_length", "0"), "max_length must be a positive"),
    ("flag: bad value", "enc-image_size-negative", encoder("--image_size", "-3"), "image_size must be a positive"),
    ("flag: bad value", "enc-max_steps-text", encoder("--max_steps", "abc"), "invalid int value: 'abc'"),
    ("flag: bad value", "dec-loss_on-flag", decoder("--loss_on", "everything"), "loss_on='everything'"),
    ("flag: bad value", "dec-too_long-flag", decoder("--too_long", "cut"), "too_long='cut'"),
    ("flag: bad value", "dec-use_peft-maybe", decoder("--use_peft", "maybe"), "argument --use_peft"),
    # --- training data and model
    ("train: data", "enc-dataset-missing", encoder("--dataset_name", "{tmp}/nope"), "nope"),
    ("train: data", "enc-text_column", encoder("--text_column", "caption"), "no column(s) ['caption']"),
    ("train: data", "enc-test-split", encoder("--dataset_test_split", "test", "--retrieval_eval", "true"),
     "has no split 'test'"),
    ("train: model", "enc-max_length-too-long", encoder("--max_length", "128"),
     "max_length=128 exceeds the text tower's 64 positions"),
    ("train: model", "enc-model-missing", encoder("--model_name_or_path", "{tmp}/nope"),
     "nope: no such folder"),
    ("train: model", "dec-model-missing", decoder("--model_name_or_path", "{tmp}/nope"), "nope: no such folder"),
    ("train: model", "dec-model-not-a-checkpoint", decoder("--model_name_or_path", "{tmp}"), "no config.json"),
    ("train: data", "dec-dataset_name-empty", decoder("--dataset_name", ""), "dataset_name is not set"),
    ("train: data", "dec-dataset-missing", decoder("--dataset_name", "{tmp}/nope"), "train.jsonl: no such file"),
    ("train: data", "dec-line-not-json", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(lambda lines, chat: [lines[0], "{not json", *lines[1:]])), "train.jsonl:2: not valid JSON"),
    ("train: data", "dec-line-not-object", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(lambda lines, chat: ["[1, 2]", *lines])), "train.jsonl:1: a list, not a JSON object"),
    ("train: data", "dec-no-messages", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row.pop("messages")))), "no `messages` list"),
    ("train: data", "dec-no-assistant", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row["messages"].pop()))), "no (non-empty) assistant turn"),
    ("train: data", "dec-empty-assistant", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row["messages"][-1]["content"][0].update(text=" ")))),
     "no (non-empty) assistant turn"),
    ("train: data", "dec-no-images", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row.update(images=[])))), "has no image"),
    ("train: data", "dec-two-images-one-placeholder", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row["images"].append(row["images"][0])))),
     "1 image placeholder(s)"),
    ("train: data", "dec-missing-image-file", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(edit_first(lambda row, chat: row.update(images=["images/gone.png"])))), "gone.png does not exist"),
    ("train: data", "dec-empty-split", decoder("--dataset_name", "{chat_dir}",
     setup=chat_with(lambda lines, chat: [])), "no samples"),
    ("train: model", "dec-load_in_8bit", decoder("--load_in_8bit", "true"), "load_in_8bit is not supported"),
    ("train: model", "dec-4bit-without-peft", decoder("--load_in_4bit", "true"), "set use_peft: true"),
    ("train: model", "dec-peft-and-freeze", decoder("--use_peft", "true", "--freeze_language_model", "true"),
     "choose one"),
    ("train: model", "dec-max_image_tiles", decoder("--max_image_tiles", "4"), "takes exactly 1 tile(s)"),
    ("train: model", "dec-vision-warmup-lora", decoder("--vision_warmup_steps", "5", "--use_peft", "true"),
     "a LoRA adapter does not save"),
    ("train: model", "dec-vision-warmup-missing", decoder("--vision_warmup_steps", "5", "--vision_warmup_encoder", "{tmp}/nope"),
     "nope: no such folder"),
    ("train: model", "dec-retrieval-context-no-encoder", decoder("--retrieval_context_k", "3"),
     "retrieval_context_k > 0 needs retrieval_context_encoder"),
    ("train: model", "dec-retrieval-context-missing", decoder("--retrieval_context_k", "3",
     "--retrieval_context_encoder", "{tmp}/nope"), "nope: no such folder"),
    ("train: model", "dec-retrieval-context-negative", decoder("--retrieval_context_k", "-1"),
     "retrieval_context_k must be 0 (no context) or positive, got -1"),
    # --- output folders and resume
    ("train: output/resume", "enc-resume-last-none", encoder("--resume_from_checkpoint", "last"),
     "no complete checkpoint-N folder"),
    ("train: output/resume", "dec-resume-true-none", decoder("--resume_from_checkpoint", "true"),
     "no complete checkpoint-N folder"),
    ("train: output/resume", "enc-resume-not-a-checkpoint", encoder("--resume_from_checkpoint", "{tmp}"),
     "is not a checkpoint folder"),
    ("train: output/resume", "dec-resume-other-run", decoder("--resume_from_checkpoint", "{checkpoint}",
     setup=fake_output({"model": "other/model", "model_fingerprint": "hub:other/model@main", "args": {}},
                       checkpoint=True)), "belongs to another run (model other/model (hub:other/model@main) ->"),
    ("train: output/resume", "enc-resume-no-identity", encoder("--resume_from_checkpoint", "{checkpoint}",
     setup=fake_output(None, checkpoint=True)), "has no run_identity.json"),
    ("train: output/resume", "enc-output-other-run", encoder(
     setup=fake_output({"model_fingerprint": "x", "data": "x", "args": {"seed": 1}})), "holds another run's output"),
    ("train: output/resume", "dec-output-unknown-run", decoder(
     setup=fake_output(None, files=("adapter_config.json", "adapter_model.safetensors"))),
     "no run_identity.json"),
    # --- to-chat
    ("to-chat", "chat-no-dataset", to_chat(lambda ctx, tmp: tmp / "missing"), "no data/<split>-*.parquet files"),
    ("to-chat", "chat-missing-column", to_chat(prepared_with(lambda t: t.drop_columns(["text"]))),
     "missing column(s) ['text']"),
    ("to-chat", "chat-no-image-bytes", to_chat(prepared_with(set_column("image", lambda v: [None, *v[1:]]))),
     "row 1 (id 'fixture:0:00000'): field `image` has no image bytes"),
    ("to-chat", "chat-empty-text", to_chat(prepared_with(set_column("text", lambda v: [*v[:-1], ""]))),
     "row 4 (id 'fixture:0:00003'): field `text` is empty"),
    ("to-chat", "chat-null-id", to_chat(prepared_with(set_column("id", lambda v: [None, *v[1:]]))),
     "field `id` must be a non-empty string"),
    ("to-chat", "chat-output-is-a-file", to_chat(out=lambda tmp: (tmp / "f.txt", (tmp / "f.txt").write_text(""))[0]),
     "is a file"),
    ("to-chat", "chat-output-holds-other-files",
     to_chat(out=lambda tmp: ((tmp / "o").mkdir(), (tmp / "o" / "notes.md").write_text(""), tmp / "o")[-1]),
     "not a `medvl to-chat` output (notes.md)"),
    ("to-chat", "chat-bad-prompt-set", lambda ctx, tmp: [*to_chat()(ctx, tmp), "--prompt-set", "nope"], "nope"),
    # --- eval
    ("eval: arguments", "nothing-to-evaluate", evaluate("--dataset", "{pairs}"), "nothing to evaluate"),
    ("eval: arguments", "eval-no-dataset", evaluate("--encoder", "{siglip}"), "pass --dataset DIR"),
    ("eval: arguments", "dataset-missing", evaluate("--encoder", "{siglip}", "--dataset", "{tmp}/nope"),
     "no such folder"),
    ("eval: arguments", "split-missing", evaluate("--encoder", "{siglip}", "--dataset", "{pairs}", "--split", "test"),
     "test"),
    ("eval: arguments", "unknown-flag", evaluate("--dataset", "{pairs}", "--batchsize", "2"), "batchsize"),
    ("eval: predictions", "missing-file", evaluate("--predictions", "{tmp}/none.jsonl"), "no such file"),
    ("eval: predictions", "missing-generation", predictions({"id": "a", "reference": "x"}),
     "predictions.jsonl:1: missing field 'generation'"),
    ("eval: predictions", "not-json", predictions({"id": "a", "reference": "x", "generation": "y"}, "nope"),
     "predictions.jsonl:2: not valid JSON"),
    ("eval: predictions", "reference-empty-list", predictions({"id": "a", "reference": [], "generation": "y"}),
     "predictions.jsonl:1: `reference` is a list, so it needs one or more reference strings"),
    ("eval: predictions", "reference-list-of-numbers", predictions({"id": "a", "reference": [1], "generation": "y"}),
     "predictions.jsonl:1: `reference` is a list"),
    ("eval: predictions", "generation-number", predictions({"id": "a", "reference": "x", "generation": 5}),
     "`generation` must be a string"),
    ("eval: predictions", "duplicate-ids", predictions(*[{"id": "a", "reference": "x", "generation": "y"}] * 2),
     "duplicate ids"),
    ("eval: predictions", "image-on-some-lines", predictions(
        {"id": "a", "reference": "x", "generation": "y", "image": "a.png"},
        {"id": "b", "reference": "x", "generation": "y"}), "set it on all lines or none"),
    ("eval: predictions", "empty-file", predictions(), "no samples to evaluate"),
    # --- push
    ("push", "model-missing", push("model", lambda ctx, tmp: [str(tmp / "nope"), "--repo-id", "me/x"]),
     "does not exist"),
    ("push", "model-no-config", push("model", lambda ctx, tmp: [str(tmp), "--repo-id", "me/x"]),
     "neither config.json nor adapter_config.json"),
    ("push", "dry-run-not-empty", push("model", lambda ctx, tmp: [
        str(model_dir(ctx, tmp)), "--repo-id", "me/x", "--dry-run", str(model_dir(ctx, tmp / "d"))]),
     "is not empty"),
    ("push", "dataset-no-data", push("dataset", lambda ctx, tmp: [str(tmp), "--repo-id", "me/x"]), "no data/ folder"),
    ("push", "dataset-no-card", push("dataset", lambda ctx, tmp: [str(ctx["pairs"]), "--repo-id", "me/x"]),
     "no README.md dataset card"),
    ("push", "space-no-app", push("space", lambda ctx, tmp: [
        "--repo-id", "me/s", "--decoder-id", "me/d", "--encoder-id", "me/e", "--dataset-id", "me/ds",
        "--app-file", str(tmp / "app.py")]), "app.py is missing"),
    ("push", "token-in-file", push("model", lambda ctx, tmp: [
        str(model_dir(ctx, tmp, ("notes.txt", f"HF_TOKEN={OTHER_TOKEN}"))), "--repo-id", "me/x"]),
     "notes.txt contains what looks like a Hugging Face token"),
]  # fmt: skip

CLASSES = Counter(case[0] for case in CASES)


@pytest.mark.parametrize(("kind", "case_id", "build", "expected"), CASES, ids=[case[1] for case in CASES])
def test_bad_input_is_one_line_exit_2(kind, case_id, build, expected, ctx, tmp_path, capsys, monkeypatch):
    # A token so that push reaches its checks; the scan refuses before any request is sent.
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 34)
    argv = build(ctx, tmp_path)
    capsys.readouterr()
    code = medvl(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("medvl ") and ": error: " in line]
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    assert len(errors) == 1, err[-2000:]
    assert expected in errors[0], errors[0]


def test_the_table_is_big_enough():
    assert len(CASES) >= 60 and len({case[1] for case in CASES}) == len(CASES)
