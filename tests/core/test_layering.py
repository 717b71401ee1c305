"""The packages have no import circle (module-level or inside functions): every import edge
between modules of stabbench/ and perturbations/ points one way."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for package in ("stabbench", "perturbations"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in filter(None, map(owner, targets)):
                if target == module:
                    continue
                edges[module].add(target)
                parts = target.split(".")  # importing a submodule runs its packages' __init__ first
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in modules and parent != module and not module.startswith(parent + "."):
                        edges[module].add(parent)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    edges = module_graph()
    assert len(edges) > 60 and "stabbench.predictors.resolver" in edges
    assert cycles(edges) == []


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_lower_floors_do_not_import_upper_ones() -> None:
    edges = module_graph()
    lower = [m for m in edges if m.startswith(("perturbations", "stabbench.metrics", "stabbench.losses", "stabbench.flow"))]
    upper = ("stabbench.cli", "stabbench.training", "stabbench.evaluation", "stabbench.predictors", "stabbench.report")
    for module in lower:
        assert not [t for t in edges[module] if t.startswith(upper)], module
    outside = [m for m in edges if not m.startswith("stabbench.cli") and m != "stabbench.__main__"]
    assert all(not t.startswith("stabbench.cli") for m in outside for t in edges[m])
    assert Path(REPO / "stabbench" / "cli" / "__init__.py").is_file()
