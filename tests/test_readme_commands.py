# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The README's commands, run as written.

- The quickstart table (`make quickstart`): every row's command runs literally, in order, in a fresh folder that
  holds only links to `recipes/` and `eval/` (so the README's relative paths resolve), with `QS=outputs/quickstart`
  as the table header says; each row's outputs must exist afterwards. The same commands must be the Makefile's.
- Every other `medvl ...` command of the README (the command table, the real-data and publishing blocks) needs
  GPUs, real datasets, gated Hub models or a Hub token: each is checked against its `--help` instead (the command
  exists, every flag the README shows is one it takes) and every repository file it names exists.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medvl_recipes.cli import COMMANDS, TRL_COMMANDS, main


REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
QUICKSTART_HEADER = "command (as `make quickstart` runs it"
QS = "outputs/quickstart"
_OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
# Repository files a README command names (`recipes/...yaml`, `eval/configs/...`, `accelerate_configs/...`).
_REPO_FILE = re.compile(r"(?<![\w/$.-])((?:recipes|eval|accelerate_configs)/[\w./-]+\.ya?ml)")


def _cells(line: str) -> list[str]:
    # Split a Markdown table row on the `|` that are not inside a code span (`medvl push model|dataset|space`).
    cells, current, in_code = [], "", False
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    return cells + [current.strip()]


def quickstart_rows() -> list[tuple[str, str, list[str]]]:
    """`(step, command, output paths)` of the README's quickstart table, in order."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if QUICKSTART_HEADER in line)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        step, command, outputs = _cells(line)
        rows.append((step, command.strip("`"), re.findall(r"`([^`]+)`", outputs)))
    return rows


def readme_medvl_commands() -> list[str]:
    """Every `medvl ...` command of the README: code spans of its text and tables, and lines of its code blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    text = re.sub(r"```.*?```", "", README, flags=re.S)
    commands = [span for span in re.findall(r"`([^`\n]+)`", text) if span.startswith("medvl ")]
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#")[0].strip()
            if command.startswith("medvl "):
                commands.append(" ".join(command.split()))
    return commands


def _expand(path: str) -> list[str]:
    match = re.search(r"\{([^}]*)\}", path)
    if not match:
        return [path]
    return [p for alt in match.group(1).split(",") for p in _expand(path[: match.start()] + alt + path[match.end() :])]


def _help(argv: list[str], capsys) -> str:
    try:
        code = main(argv)
    except SystemExit as exit_:  # TrlParser's --help-all is argparse's, which exits
        code = exit_.code
    out = capsys.readouterr().out
    assert code == 0, f"`medvl {' '.join(argv)}` exited {code}"
    return out


def test_the_readme_has_the_tables_this_test_reads():
    steps = [step for step, _, _ in quickstart_rows()]
    assert steps[0] == "tiny models" and steps[-1] == "generate" and len(steps) >= 8
    assert len(readme_medvl_commands()) > 20


def test_quickstart_table_is_what_make_quickstart_runs():
    makefile = (REPO_ROOT / "Makefile").read_text().replace("\\\n", " ")
    recipe = makefile.split("\nquickstart:")[1].split("\n\n")[0]
    made = [
        " ".join(line.replace("$(OFFLINE) $(BIN)/", "").replace("$(QS)", "$QS").split())
        for line in recipe.splitlines()
        if "$(BIN)/medvl " in line
    ]
    for step, command, _ in quickstart_rows():
        assert command in made, f"README row {step!r}: `{command}` is not a command of `make quickstart`"


@pytest.mark.parametrize("command", sorted(set(readme_medvl_commands())), ids=lambda c: c[:70])
def test_readme_command_exists_and_takes_its_flags(command, capsys):
    # Run as `--help`: the commands of the tables and blocks need real data, GPUs or the Hub (or are the quickstart
    # chain, run for real below); --help proves the command and every flag the README shows exist today.
    words = shlex.split(command.replace("|", " "))[1:]
    name = words[0]
    if name.startswith("-") or "<" in name or "*" in name:  # `medvl --help`, `medvl <command> --debug`, `train-*`
        names = list(COMMANDS) if name.startswith("<") or "*" in name else []
        names = [n for n in names if re.fullmatch(name.replace("*", ".*"), n)] if "*" in name else names
        helps = [_help(["--help"], capsys)] + [_help([n, "--help"], capsys) for n in names]
        assert main(["no-such-command", "--debug"]) == 2  # `--debug` is taken anywhere
        return
    assert name in COMMANDS, f"`{command}`: no command `medvl {name}`"
    kinds = [w for w in words[1:3] if w in {"model", "dataset", "space", "onnx", "compare", "stats"}]
    flags = ["--help", "--help-all"] if name in TRL_COMMANDS else ["--help"]
    helps = [_help([name, *kind, flag], capsys) for kind in ([[k] for k in kinds] or [[]]) for flag in flags]
    known = {option.replace("_", "-") for text in helps for option in _OPTION.findall(text)}
    for option in _OPTION.findall(command):
        if option not in ("--help", "--debug"):
            assert option.replace("_", "-") in known, f"`{command}`: `medvl {name}` has no option {option}"
    for path in _REPO_FILE.findall(command):
        assert "/X." in path or (REPO_ROOT / path).is_file(), f"`{command}`: {path} does not exist"


def test_real_data_block_names_files_and_commands_that_exist():
    # `accelerate launch` of the real recipes needs GPUs and the gated Llama weights: check what it names instead.
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S) if "accelerate launch" in b)
    for path in _REPO_FILE.findall(block):
        assert (REPO_ROOT / path).is_file(), f"{path} (README real-data block) does not exist"
    for module in re.findall(r"-m (medvl_recipes\.\w+)", block):
        assert (REPO_ROOT / "src" / (module.replace(".", "/") + ".py")).is_file()
    assert "hf auth login" in block
    hf = Path(sys.executable).parent / "hf"
    if hf.exists():  # the huggingface_hub CLI of this environment: `login` is a subcommand of `hf auth`
        assert subprocess.run([str(hf), "auth", "login", "--help"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_quickstart_table_runs_as_written(tmp_path):
    """The whole chain: about 5 min on a quiet 2-core machine (`make quickstart`'s time, docs/benchmarks.md), over
    15 min on a loaded one, so it is marked slow (`make test-slow`)."""
    for folder in ("recipes", "eval"):
        (tmp_path / folder).symlink_to(REPO_ROOT / folder)
    env = dict(os.environ, QS=QS, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")])
    # `medvl` is this interpreter's package, whichever `medvl` script is first on PATH.
    prelude = f'medvl() {{ {shlex.quote(sys.executable)} -m medvl_recipes.cli "$@"; }}\n'
    for step, command, outputs in quickstart_rows():
        result = subprocess.run(
            ["bash", "-c", prelude + command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000
        )
        assert result.returncode == 0, f"README row {step!r} failed: `{command}`\n{result.stderr[-3000:]}"
        if step == "new images":
            _copy_new_images(tmp_path / QS)
        for output in (o for pattern in outputs if "/" in pattern for o in _expand(pattern)):
            assert (tmp_path / QS / output).exists(), f"README row {step!r}: {QS}/{output} was not written"
    reports = (tmp_path / QS / "generate" / "reports.jsonl").read_text().splitlines()
    assert len(reports) == 3


def _copy_new_images(qs: Path) -> None:
    # What `make quickstart` does after its "new images" row (Makefile, "Reports for three new, unlabelled
    # images"), which the README's table describes in words: a JPEG, a PNG and an extension-less DICOM.
    raw, new = qs / "new_raw", qs / "new_images"
    new.mkdir(parents=True)
    shutil.copy(sorted((raw / "roco/data/train/radiology/images").glob("*.jpg"))[0], new / "radiograph.jpg")
    shutil.copy(sorted((raw / "rocov2_csv/train").glob("*.png"))[0], new / "scan.png")
    shutil.copy(sorted((raw / "dicom").glob("phantom_*.dcm"))[0], new / "IM000001")
