# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Readable units: no function in the package runs over 80 lines of code (its docstring not counted).

A function that must stay one piece says why in a comment on the line above its `def` that starts with
`# One piece:`.
"""

import ast
from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "medvl_recipes"
MAX_LINES = 80


def long_functions(package_dir: Path = PACKAGE_DIR, max_lines: int = MAX_LINES) -> list[str]:
    """`path:line name (N lines)` for every function longer than `max_lines` without a `# One piece:` comment."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                length -= body[0].end_lineno - body[0].lineno + 1  # the docstring
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            justified = first >= 2 and lines[first - 2].strip().startswith("# One piece:")
            if length > max_lines and not justified:
                found.append(f"{path.relative_to(package_dir)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_over_80_lines():
    assert long_functions() == []


def test_the_check_finds_a_long_function_and_honours_the_reason(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "m.py").write_text(f"def f():\n    '''Doc.'''\n{body}\n\n\n# One piece: a table.\ndef g():\n{body}\n")
    assert long_functions(tmp_path) == ["m.py:1 f (82 lines)"]
