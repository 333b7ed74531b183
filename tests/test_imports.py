# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The package's imports go one way: no cycles, training never imports evaluation (but its report labelers), nothing
imports the outside.

Every `import`/`from ... import` in `src/medvl_recipes` (module level and inside functions, since lazy imports are
dependencies too) is read with `ast`, resolved to a package module, and checked.
"""

import ast
from pathlib import Path

import pytest


PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "medvl_recipes"
# Training (and everything it is built from) must not depend on the evaluation harness.
TRAINING = ("medvl_recipes.train_encoder", "medvl_recipes.train_decoder", "medvl_recipes.trainers")
# Except the report labelers, rule tables over text (numpy + yaml): the decoder's vision warm-up learns the concepts
# they read from the training reports, the same rules eval applies to generations.
SHARED_WITH_TRAINING = {
    "medvl_recipes.evaluation",
    "medvl_recipes.evaluation.findings",
    "medvl_recipes.evaluation.grounding",
}
# Top-level modules of the repository that the package must never import.
OUTSIDE = {"app", "eval", "bench", "tests", "run_eval"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    # `medvl_recipes.data.prepared.FEATURES` -> the longest prefix that is a module.
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """`(edges, outside)`: package-internal imports per module, and top-level names imported from outside."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    outside: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                top = target.split(".")[0]
                if top in OUTSIDE:
                    outside[name].add(target)
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    edges[name].add(resolved)
    return edges, outside


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or `None`. A package's `__init__` importing its own children is fine."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if node.startswith(nxt + "."):
                continue  # a module needs its parent package to be importable; not a dependency cycle
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    edges, _ = import_graph()
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


@pytest.mark.parametrize("entry", TRAINING)
def test_training_never_imports_evaluation(entry):
    edges, _ = import_graph()
    reached = _reachable(edges, entry)
    evaluation = sorted(
        m for m in reached if m.startswith("medvl_recipes.evaluation") and m not in SHARED_WITH_TRAINING
    )
    assert not evaluation, f"{entry} reaches {evaluation}"


def test_package_never_imports_app_eval_or_bench():
    _, outside = import_graph()
    offenders = {module: sorted(names) for module, names in outside.items() if names}
    assert not offenders, f"the package imports repository scripts: {offenders}"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    # The checks above can fail: a made-up graph with a cycle and a training -> evaluation edge is caught.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    edges = {"medvl_recipes.trainers": {"medvl_recipes.retrieval"}, "medvl_recipes.retrieval": {"x.evaluation"}}
    edges["x.evaluation"] = set()
    assert _reachable(edges, "medvl_recipes.trainers") == {"medvl_recipes.retrieval", "x.evaluation"}
