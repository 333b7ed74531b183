# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl to-chat`: TRL conversational vision JSONL from a prepared dataset."""

import json
from collections import Counter

import pyarrow.parquet as pq
from PIL import Image

from medvl_recipes.data.chat import pick_prompt, write_chat_dataset
from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT, PROMPT_SETS
from tests.fixtures.factories import write_prepared_dataset


def test_to_chat_writes_the_contract_format(tmp_path):
    dataset = write_prepared_dataset(tmp_path / "ds", n_train=40, n_val=8, seed=0)
    out = write_chat_dataset(dataset, tmp_path / "chat", show_progress=False)
    source = {
        split: pq.read_table(next((dataset / "data").glob(f"{split}-*.parquet"))).to_pylist()
        for split in ("train", "validation")
    }
    for split, rows in source.items():
        lines = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert [line["id"] for line in lines] == [row["id"] for row in rows]
        for line, row in zip(lines, rows, strict=True):
            assert set(line) == {"id", "messages", "images", "findings"}
            system, user, assistant = line["messages"]
            assert system == {"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]}
            assert user["role"] == "user" and user["content"][0] == {"type": "image"}
            assert user["content"][1]["text"] == pick_prompt(PROMPT_SETS["default"], row["id"], 0)
            assert assistant == {"role": "assistant", "content": [{"type": "text", "text": row["text"]}]}
            assert line["findings"] == (row.get("findings") or [])
            (image_path,) = line["images"]
            assert image_path.startswith("images/")
            assert (out / image_path).read_bytes() == row["image"]["bytes"]
            Image.open(out / image_path).verify()
    # Phrasings vary across samples but not across runs.
    used = Counter(json.loads(line)["messages"][1]["content"][1]["text"] for line in (out / "train.jsonl").open())
    assert len(used) > 1
    again = write_chat_dataset(dataset, tmp_path / "again", show_progress=False)
    assert (again / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()


def test_to_chat_prompt_set_and_system_prompt(tmp_path):
    dataset = write_prepared_dataset(tmp_path / "ds", n_train=6, n_val=2, seed=1)
    out = write_chat_dataset(
        dataset, tmp_path / "chat", prompt_set="single", system_prompt="Be brief.", show_progress=False
    )
    for line in (out / "validation.jsonl").open():
        messages = json.loads(line)["messages"]
        assert messages[0]["content"][0]["text"] == "Be brief."
        assert messages[1]["content"][1]["text"] == PROMPT_SETS["single"][0]


def test_to_chat_cli(tmp_path):
    from medvl_recipes.cli import main

    dataset = write_prepared_dataset(tmp_path / "ds", n_train=4, n_val=2, seed=2)
    assert (
        main(["to-chat", "--dataset", str(dataset), "--output-dir", str(tmp_path / "c"), "--prompt-set", "nope"]) == 2
    )
    assert main(["to-chat", "--dataset", str(dataset), "--output-dir", str(tmp_path / "c")]) == 0
    assert len((tmp_path / "c" / "train.jsonl").read_text().splitlines()) == 4


def test_to_chat_failure_leaves_the_previous_output_whole(tmp_path, capsys):
    from medvl_recipes.cli import main

    good = write_prepared_dataset(tmp_path / "good", n_train=4, n_val=2, seed=3)
    out = tmp_path / "chat"
    assert main(["to-chat", "--dataset", str(good), "--output-dir", str(out)]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # A prepared dataset whose last validation row lost its text: the run fails after writing the train split.
    bad = write_prepared_dataset(tmp_path / "bad", n_train=6, n_val=3, seed=4)
    path = next((bad / "data").glob("validation-*.parquet"))
    table = pq.read_table(path)
    texts = table.column("text").to_pylist()
    texts[-1] = None
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", [texts]), path)
    capsys.readouterr()
    assert main(["to-chat", "--dataset", str(bad), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert "Traceback" not in err and len(errors) == 1
    assert "validation-00000-of-00001.parquet row 3" in errors[0] and "field `text` is empty" in errors[0]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "chat", "good"]  # no temporary folder left
    # A successful rerun replaces the whole folder: no stale images or splits of the old output survive.
    (out / "test.jsonl").write_text("")
    texts[-1] = "Restored report."
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", [texts]), path)
    assert main(["to-chat", "--dataset", str(bad), "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["train.jsonl", "validation.jsonl"]
    assert len(list((out / "images").iterdir())) == 9
    # A folder holding anything else is never replaced.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["to-chat", "--dataset", str(bad), "--output-dir", str(other)]) == 2
    assert "not a `medvl to-chat` output (keep.txt)" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "mine"
