# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import importlib
import subprocess
import sys

from medvl_recipes.cli import COMMANDS, main


def test_help_lists_every_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in COMMANDS.items():
        lines = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1 and help_text in lines[0]


def test_every_command_module_has_a_cli_entry():
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(getattr(module, "cli", None)), f"{module_name} (medvl {name}) has no cli(argv)"


def test_unknown_command_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "medvl_recipes.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "tiny-models" in result.stdout
