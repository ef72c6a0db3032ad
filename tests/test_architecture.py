"""The package reads as layers: resolving trusted names and persisting sit below the engine, and the
engine's modules import each other without a circle (lazy imports inside functions count too), so
that a jobboard or a conductor can build on them without reaching inside."""

from __future__ import annotations

import ast
from pathlib import Path

import ferroflow

PACKAGE = Path(ferroflow.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ferroflow module → the ferroflow modules it imports, anywhere in its code."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ferroflow"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.append(child if child in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names if alias.name.startswith("ferroflow"))
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_engine_modules_import_each_other_without_a_circle() -> None:
    engine_cycles = [c for c in cycles(import_graph()) if any(m.startswith("ferroflow.engines") for m in c)]
    assert engine_cycles == []


def test_trust_and_persistence_sit_below_the_engine() -> None:
    graph = import_graph()
    lower = [m for m in graph if m == "ferroflow.trust" or m.startswith("ferroflow.persistence")]
    assert lower, "the layers exist"
    reaching_up = {m: sorted(t for t in graph[m] if t.startswith("ferroflow.engines")) for m in lower}
    assert {m: t for m, t in reaching_up.items() if t} == {}
