# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl push` against the local Hub stand-in in `tests/hub_server.py`, then reading everything back.

Pushes run in-process (with huggingface_hub's endpoint patched to the server); the read-back runs in a fresh
Python process whose `HF_ENDPOINT` points at the server, exactly as a user's would.
"""

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, SpaceCard, constants

from medvl_recipes.cli import main as medvl
from medvl_recipes.hub.model_card import write_model_card
from tests.fixtures.factories import write_chat_dataset, write_prepared_dataset
from tests.hub_server import HubServer


TOKEN = "hf_medvlTestToken9f3a1cDoNotLeak"
MODEL_INDEX = [
    {
        "name": "medvl-decoder",
        "results": [
            {
                "task": {"type": "image-text-to-text"},
                "dataset": {"type": "tester/medvl-data", "name": "medvl data (validation)"},
                "metrics": [{"type": "bleu", "value": 3.25}],
            }
        ],
    }
]

READ_BACK = r"""
import json, sys
from pathlib import Path
import torch
from datasets import load_dataset
from huggingface_hub import snapshot_download
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

out, enc_dir, dec_dir, data_dir = (Path(p) for p in sys.argv[1:5])
result = {"snapshots": {}}
for name, repo_type, revision in [
    ("tester/medvl-encoder", "model", None), ("tester/medvl-decoder", "model", "v1"),
    ("tester/medvl-data", "dataset", None), ("tester/medvl-demo", "space", None),
]:
    result["snapshots"][name] = snapshot_download(
        name, repo_type=repo_type, revision=revision, local_dir=out / name.split("/")[1]
    )

torch.manual_seed(0)
pixel_values = torch.rand(2, 3, 32, 32)
outputs = {}
for tag, source, kwargs in [("local", enc_dir, {}), ("hub", "tester/medvl-encoder", {})]:
    model = AutoModel.from_pretrained(source, **kwargs).eval()
    processor = AutoProcessor.from_pretrained(source, **kwargs)
    size = processor.image_processor.size
    ids = processor(text=["left pleural effusion", "no finding"], padding="max_length", return_tensors="pt")
    pixels = torch.nn.functional.interpolate(pixel_values, size=(size["height"], size["width"]))
    with torch.no_grad():
        outputs[f"encoder_{tag}"] = model(input_ids=ids["input_ids"], pixel_values=pixels).logits_per_image
for tag, source, kwargs in [("local", dec_dir, {}), ("hub", "tester/medvl-decoder", {"revision": "v1"})]:
    model = AutoModelForImageTextToText.from_pretrained(source, **kwargs).eval()
    processor = AutoProcessor.from_pretrained(source, **kwargs)
    input_ids = processor.tokenizer("A nodule in the left upper zone.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        outputs[f"decoder_{tag}"] = model(input_ids=input_ids).logits
        outputs[f"generate_{tag}"] = model.generate(input_ids=input_ids, max_new_tokens=8, do_sample=False)
torch.save(outputs, out / "outputs.pt")

local = load_dataset(str(data_dir))
hub = load_dataset("tester/medvl-data")
# Arrow rows hold the encoded image bytes, so equal rows mean byte-identical images too.
result["dataset"] = {
    split: {"equal": local[split].with_format("arrow")[:].to_pylist() == hub[split].with_format("arrow")[:].to_pylist(),
            "rows": len(hub[split])}
    for split in local
}
(out / "result.json").write_text(json.dumps(result))
"""


@pytest.fixture
def hub(monkeypatch):
    server = HubServer(token=TOKEN).start()
    # huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import time (conftest imported it offline).
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    yield server
    server.stop()


def _trained_dirs(tiny_models, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    encoder = tmp_path / "encoder"
    decoder = tmp_path / "decoder"
    shutil.copytree(tiny_models["siglip"], encoder)
    shutil.copytree(tiny_models["mllama"], decoder)
    data_dir = write_prepared_dataset(tmp_path / "dataset", n_train=6, n_val=3)
    (data_dir / "README.md").write_text("---\nlicense: cc-by-4.0\npretty_name: medvl fixture\n---\n# fixture data\n")
    recipe = tmp_path / "config_smoke.yaml"
    recipe.write_text("# Model arguments\nmodel_name_or_path: tiny\n# Training arguments\nlearning_rate: 1.0e-3\n")
    write_model_card(
        encoder,
        stage="encoder",
        base_model="google/siglip-base-patch16-224",
        recipe=recipe,
        dataset=data_dir,
        metrics={"i2t_recall@1": 0.5},
        training_args={"hub_token": TOKEN},
    )
    write_model_card(decoder, stage="decoder", base_model="meta-llama/Llama-3.2-11B-Vision-Instruct", dataset=data_dir)
    # Trainer leftovers that must not be pushed; training_args.bin can pickle the token.
    (decoder / "training_args.bin").write_bytes(b"pickled " + TOKEN.encode())
    (decoder / "checkpoint-2").mkdir()
    (decoder / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    eval_dir = _eval_dir_of(decoder, tmp_path / "eval")
    return encoder, decoder, data_dir, eval_dir


def _eval_dir_of(decoder: Path, eval_dir: Path) -> Path:
    """A `medvl eval` output folder of `decoder`: its model_index.yaml and the models entry of its metrics.json."""
    from transformers import MllamaForConditionalGeneration

    from medvl_recipes.evaluation.runner import _model_info

    eval_dir.mkdir()
    (eval_dir / "model_index.yaml").write_text(yaml.safe_dump(MODEL_INDEX))
    # What the runner records for the decoder it evaluated (`metrics.json`, payload["models"]["decoder"]).
    models = {
        "decoder": _model_info(str(decoder), MllamaForConditionalGeneration.__new__(MllamaForConditionalGeneration))
    }
    (eval_dir / "metrics.json").write_text(json.dumps({"metrics": {}, "models": models}))
    return eval_dir


def test_push_model_dataset_space_and_read_back(hub, tiny_models, tmp_path, capfd, caplog):
    encoder, decoder, data_dir, eval_dir = _trained_dirs(tiny_models, tmp_path)
    caplog.set_level(logging.DEBUG)
    assert (
        medvl(
            [
                "push",
                "model",
                str(encoder),
                "--repo-id",
                "tester/medvl-encoder",
                "--private",
                "--dataset-id",
                "tester/medvl-data",
            ]
        )
        == 0
    )
    assert (
        medvl(
            [
                "push",
                "model",
                str(decoder),
                "--repo-id",
                "tester/medvl-decoder",
                "--revision",
                "v1",
                "--dataset-id",
                "tester/medvl-data",
                "--eval-dir",
                str(eval_dir),
            ]
        )
        == 0
    )
    assert medvl(["push", "dataset", str(data_dir), "--repo-id", "tester/medvl-data", "--private"]) == 0
    assert (
        medvl(
            [
                "push",
                "space",
                "--repo-id",
                "tester/medvl-demo",
                "--decoder-id",
                "tester/medvl-decoder",
                "--encoder-id",
                "tester/medvl-encoder",
                "--dataset-id",
                "tester/medvl-data",
            ]
        )
        == 0
    )
    logs = capfd.readouterr()

    # Visibility, branch and the exact file sets.
    assert hub.repos[("model", "tester/medvl-encoder")].private
    assert hub.repos[("dataset", "tester/medvl-data")].private
    assert not hub.repos[("model", "tester/medvl-decoder")].private
    assert hub.files("model", "tester/medvl-decoder", "main") == {}  # pushed to the v1 branch only
    decoder_files = hub.files("model", "tester/medvl-decoder", "v1")
    expected = {p.name for p in decoder.iterdir() if p.is_file()} - {"training_args.bin"}
    assert set(decoder_files) == expected
    assert f"Pushed {len(expected)} files to model tester/medvl-decoder" in logs.out
    space_files = hub.files("space", "tester/medvl-demo")
    assert {"app.py", "README.md", "requirements.txt", "demo_config.json", "medvl_recipes/demo/__init__.py"} <= set(
        space_files
    )
    assert json.loads(space_files["demo_config.json"])["decoder"] == "tester/medvl-decoder"

    # Cards: repo id, dataset link, eval results, Space metadata pointing at the pushed models.
    decoder_card = ModelCard(decoder_files["README.md"].decode())
    assert decoder_card.data.datasets == ["tester/medvl-data"]
    assert decoder_card.data.eval_results[0].metric_value == 3.25
    assert 'model_id = "tester/medvl-decoder"' in decoder_card.text
    space_card = SpaceCard(space_files["README.md"].decode())
    assert space_card.data.sdk == "gradio" and space_card.data.app_file == "app.py"
    assert space_card.data.models == ["tester/medvl-decoder", "tester/medvl-encoder"]
    assert "Not for clinical use" in space_card.text

    # The token never reaches a log line, the console or any uploaded file.
    assert TOKEN not in logs.out + logs.err + caplog.text
    for repo in hub.repos.values():
        for commit in repo.commits.values():
            assert all(TOKEN.encode() not in content for content in commit["files"].values())

    # Read back from a fresh process, as a user would.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    out = tmp_path / "read-back"
    proc = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(out), str(encoder), str(decoder), str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert TOKEN not in proc.stdout + proc.stderr
    result = json.loads((out / "result.json").read_text())
    for name, repo_type, revision in [
        ("tester/medvl-encoder", "model", "main"),
        ("tester/medvl-decoder", "model", "v1"),
        ("tester/medvl-data", "dataset", "main"),
        ("tester/medvl-demo", "space", "main"),
    ]:
        uploaded = hub.files(repo_type, name, revision)
        snapshot = Path(result["snapshots"][name])
        downloaded = {
            p.relative_to(snapshot).as_posix(): p.read_bytes()
            for p in snapshot.rglob("*")
            if p.is_file() and ".cache" not in p.parts
        }
        assert downloaded == uploaded, name
    # Everything but the card is byte-identical to what training wrote.
    for rel, content in decoder_files.items():
        if rel != "README.md":
            assert content == (decoder / rel).read_bytes(), rel
    for split, info in result["dataset"].items():
        assert info["equal"], split
        assert info["rows"] == {"train": 6, "validation": 3}[split]
    outputs = torch.load(out / "outputs.pt")
    for name in ("encoder", "decoder", "generate"):
        torch.testing.assert_close(outputs[f"{name}_hub"], outputs[f"{name}_local"], rtol=0, atol=0)


def test_dry_run_stages_exact_files_and_uploads_nothing(hub, tiny_models, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    encoder, _, _, _ = _trained_dirs(tiny_models, tmp_path)
    staged = tmp_path / "staged"
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc", "--dry-run", str(staged)]) == 0
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()[1:]]
    on_disk = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert printed == on_disk == sorted(p.name for p in encoder.iterdir() if p.is_file())
    assert 'model_id = "tester/enc"' in (staged / "README.md").read_text()
    assert hub.repos == {} and hub.requests == []
    # A non-empty dry-run folder is refused rather than mixed with old files.
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc", "--dry-run", str(staged)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_push_refuses_token_in_files_and_missing_token(hub, tiny_models, tmp_path, monkeypatch, capsys):
    encoder, _, _, _ = _trained_dirs(tiny_models, tmp_path)
    (encoder / "notes.txt").write_text(f"export HF_TOKEN={TOKEN}\n")
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt contains your Hugging Face token" in err and TOKEN not in err
    assert hub.repos == {}

    # Any token, not only the one in use: a pasted `hf_` + 34 letters/digits is refused as well.
    (encoder / "notes.txt").write_text("old token: hf_" + "aB3" * 11 + "z\n")
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt contains what looks like a Hugging Face token" in err and "aB3aB3" not in err
    assert hub.repos == {}
    # Shorter `hf_` words (identifiers, prose) are not tokens.
    (encoder / "notes.txt").write_text("see hf_hub_download and hf_" + "x" * 29 + "\n")
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc", "--dry-run", str(tmp_path / "s")]) == 0
    capsys.readouterr()

    (encoder / "notes.txt").unlink()
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc"]) == 2
    assert "no Hugging Face token: set HF_TOKEN" in capsys.readouterr().err
    assert hub.repos == {}


def test_wrong_token_is_one_line_naming_the_repo(hub, tiny_models, tmp_path, monkeypatch, capsys):
    encoder, _, _, _ = _trained_dirs(tiny_models, tmp_path)
    wrong = "hf_" + "w" * 34
    monkeypatch.setenv("HF_TOKEN", wrong)
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and wrong not in err
    (line,) = [line for line in err.splitlines() if ": error: " in line]
    assert "the Hub refused the push to model tester/enc (HTTP 401)" in line and "write access" in line
    assert hub.repos == {}


def test_server_rejects_writes_without_the_token(hub):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(token="hf_wrong").create_repo("tester/x")
    assert hub.repos == {}


def test_dry_run_lora_adapter_gets_a_peft_card(hub, tiny_models, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_models["mllama"])
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    staged = tmp_path / "staged"
    assert medvl(["push", "model", str(adapter), "--repo-id", "tester/lora", "--dry-run", str(staged)]) == 0
    card = ModelCard.load(staged / "README.md")
    # PEFT's own card template is replaced by ours.
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "image-text-to-text"
    assert "medvl-recipes" in card.text and "PeftModel.from_pretrained(base, model_id)" in card.text
    assert 'model_id = "tester/lora"' in card.text
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in staged.iterdir()}
    assert hub.repos == {}


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 6, 7, 64, 4096])
def test_token_scan_finds_needles_across_chunk_borders(tmp_path, chunk_size):
    from medvl_recipes.hub.push import _file_contains

    rng = np.random.default_rng(chunk_size)
    data = rng.integers(0, 4, size=300, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    for start in range(0, 290, 7):
        for length in (1, 3, 6):
            needle = data[start : start + length]
            assert _file_contains(path, needle, chunk_size)
    for needle in (b"\x05", b"\x00\x01\x02\x03\x00\x01\x02\x03\x00\x01\x02"):
        assert _file_contains(path, needle, chunk_size) == (needle in data)


def test_training_runs_push_once_and_never_the_token(hub, tiny_models, tmp_path, monkeypatch, capfd):
    """`--push_to_hub true --hub_token T` on both trainers: the card and weights arrive, T is in no file anywhere."""
    # Only --hub_token authenticates (the trainers move it to HF_TOKEN; monkeypatch restores it afterwards).
    monkeypatch.setenv("HF_TOKEN", "")
    smoke = Path(__file__).resolve().parents[1] / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"
    pairs = write_prepared_dataset(tmp_path / "pairs", n_train=4, n_val=2)
    chat = write_chat_dataset(tmp_path / "chat", n_train=4, n_val=2)
    common = ["--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1", "--hub_strategy", "every_save"]
    common += ["--push_to_hub", "true", "--hub_token", TOKEN, "--report_to", "none", "--disable_tqdm", "true"]
    runs = {
        "tester/enc": [
            "train-encoder",
            *("--model_name_or_path", str(tiny_models["siglip"]), "--dataset_name", str(pairs)),
            *("--output_dir", str(tmp_path / "enc"), "--use_cpu", "true", "--per_device_train_batch_size", "2"),
            *("--eval_strategy", "no", "--retrieval_eval", "false"),
        ],
        "tester/dec": [
            "train-decoder",
            *("--config", str(smoke), "--model_name_or_path", str(tiny_models["mllama"])),
            *("--dataset_name", str(chat), "--output_dir", str(tmp_path / "dec"), "--num_sample_generations", "0"),
            "--per_device_train_batch_size",
            "2",
            *("--vision_warmup_encoder", str(tiny_models["siglip"]), "--vision_warmup_steps", "2"),
        ],
    }
    for repo_id, argv in runs.items():
        assert medvl([*argv, *common, "--hub_model_id", repo_id]) == 0, repo_id
    logs = capfd.readouterr()
    assert TOKEN not in logs.out + logs.err

    for repo_id in runs:
        repo = hub.repos[("model", repo_id)]
        # One commit: the staged, token-scanned push at the end; the Trainer's own pushes never ran.
        assert [c["message"] for c in repo.commits.values()] == ["initial commit", "End of training"]
        files = hub.files("model", repo_id)
        assert "README.md" in files and "model.safetensors" in files and "config.json" in files
        assert (
            "medvl-recipes" in files["README.md"].decode() and f'model_id = "{repo_id}"' in files["README.md"].decode()
        )
        for name, content in files.items():
            assert TOKEN.encode() not in content, name
            if name.endswith(".bin"):
                torch.load(io.BytesIO(content), weights_only=False)  # would fail on anything but a pickle
        assert not [name for name in files if name.endswith("training_args.bin") or "checkpoint-" in name]
        assert "run_identity.json" not in files  # it names local paths
        # No absolute local path is published: the run's records name Hub ids or folder names instead.
        for name in ("run_args.json", "trainer_state.json"):
            if name in files:
                assert (
                    str(tmp_path).encode() not in files[name]
                    and str(tiny_models["mllama"]).encode() not in files[name]
                ), name
        if "run_args.json" in files:  # it named the local model, data and output folders
            assert json.loads(files["run_args.json"])["_medvl_local_paths_replaced"]["keys"]
        # (the tiny models sit in pytest's session folder `.../tiny-models0/`)
        leaking = [n for n, c in files.items() if str(tmp_path).encode() in c or re.search(rb"/tiny-models\d", c)]
        assert not leaking, f"{repo_id}: local paths in {leaking}: " + "; ".join(
            line
            for n in leaking
            for line in files[n].decode(errors="replace").splitlines()
            if str(tmp_path) in line or "/tiny-models" in line
        )
    pushed_args = json.loads(hub.files("model", "tester/dec")["run_args.json"])
    assert pushed_args["training_args"]["output_dir"] == "tester/dec"
    assert pushed_args["script_args"]["dataset_name"] == "chat"
    # The local record is untouched: merge-adapter and resume read the real paths from it.
    local_args = json.loads((tmp_path / "dec" / "run_args.json").read_text())
    assert local_args["model_args"]["model_name_or_path"] == str(tiny_models["mllama"])
    assert "_medvl_local_paths_replaced" not in local_args
    # What stays on disk is token-free too: every training_args.bin the Trainer pickled, final and per checkpoint.
    pickles = sorted(tmp_path.glob("*/**/training_args.bin"))
    assert len(pickles) == 2 * 3  # (final + checkpoint-1 + checkpoint-2) x 2 runs
    for path in pickles:
        args = torch.load(path, weights_only=False)
        assert args.hub_token is None and TOKEN not in repr(vars(args)), path
        assert TOKEN.encode() not in path.read_bytes(), path
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_push_refuses_an_eval_of_another_checkpoint(hub, tiny_models, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    encoder, decoder, _, eval_dir = _trained_dirs(tiny_models, tmp_path)
    # Another training of the same recipe: same files, one weight changed.
    other = tmp_path / "other-decoder"
    shutil.copytree(decoder, other)
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()

    assert medvl(["push", "model", str(other), "--repo-id", "tester/dec", "--eval-dir", str(eval_dir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    line = err.strip()
    from medvl_recipes.checkpoints import model_fingerprint

    assert f"evaluated decoder {decoder} ({model_fingerprint(str(decoder))}), not {other}" in line
    assert f"({model_fingerprint(str(other))})" in line and model_fingerprint(str(other)) != model_fingerprint(
        str(decoder)
    )
    # An encoder pushed with the decoder's eval, and an eval folder that records no model, are refused too.
    assert medvl(["push", "model", str(encoder), "--repo-id", "tester/enc", "--eval-dir", str(eval_dir)]) == 2
    assert "metrics.json records no encoder" in capsys.readouterr().err
    (eval_dir / "metrics.json").unlink()
    assert medvl(["push", "model", str(decoder), "--repo-id", "tester/dec", "--eval-dir", str(eval_dir)]) == 2
    assert "records no decoder" in capsys.readouterr().err
    assert hub.repos == {}
    # The checkpoint the eval ran on is accepted (a moved copy is the same weights).
    eval_dir = _eval_dir_of(decoder, tmp_path / "eval-2")
    moved = tmp_path / "moved"
    shutil.copytree(decoder, moved)
    assert medvl(["push", "model", str(moved), "--repo-id", "tester/dec", "--eval-dir", str(eval_dir)]) == 0
    assert "bleu" in hub.files("model", "tester/dec")["README.md"].decode()


def test_publishable_record_replaces_absolute_paths_only(tmp_path):
    from medvl_recipes.hub.push import publishable_record

    # The Hugging Face cache layout (huggingface_hub docs, "Manage the cache"): <cache>/models--<owner>--<name>/
    # snapshots/<commit>/ for a model, datasets--<owner>--<name> for a dataset.
    cached = "/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.2-11B-Vision-Instruct/snapshots/19b5c1"
    record = {
        "model_args": {"model_name_or_path": cached, "lora_r": 16, "lora_target_modules": ["q_proj"]},
        "script_args": {"dataset_name": "/data/run7/chat", "recipe": "recipes/x.yaml"},
        "training_args": {"output_dir": "/srv/me/outputs/decoder", "logging_dir": "/srv/me/outputs/decoder/runs/a"},
        "paths": ["/abs/one", "relative/two"],
    }
    path = tmp_path / "run_args.json"
    path.write_text(json.dumps(record))
    replaced = publishable_record(path, hub_ids={"dataset_name": "me/data", "output_dir": "me/dec"})
    out = json.loads(path.read_text())
    assert out["model_args"] == {
        "model_name_or_path": "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "lora_r": 16,
        "lora_target_modules": ["q_proj"],
    }
    assert out["script_args"] == {"dataset_name": "me/data", "recipe": "recipes/x.yaml"}
    assert out["training_args"] == {"output_dir": "me/dec", "logging_dir": "a"}
    assert out["paths"] == ["one", "relative/two"]
    assert (
        sorted(replaced)
        == sorted(out["_medvl_local_paths_replaced"]["keys"])
        == sorted(
            [
                "model_args.model_name_or_path",
                "script_args.dataset_name",
                "training_args.output_dir",
                "training_args.logging_dir",
                "paths[0]",
            ]
        )
    )
    # The card: paths in prose, code spans and YAML go; URLs and markup stay.
    from medvl_recipes.hub.push import publishable_text

    card = tmp_path / "README.md"
    card.write_text(f"from `/srv/me/models/tiny`.\n\n```yaml\noutput_dir: /srv/me/out\nbase: {cached}\n```\n"
                    "[x](https://huggingface.co/a/b) </details> and/or\n")  # fmt: skip
    assert publishable_text(card) == 3
    assert card.read_text() == (
        "from `tiny`.\n\n```yaml\noutput_dir: out\nbase: meta-llama/Llama-3.2-11B-Vision-Instruct\n```\n"
        "[x](https://huggingface.co/a/b) </details> and/or\n"
    )
    # Nothing to replace: the file is left byte for byte.
    path.write_text('{"a": "b/c", "n": 1}')
    assert publishable_record(path, hub_ids={}) == [] and path.read_text() == '{"a": "b/c", "n": 1}'
