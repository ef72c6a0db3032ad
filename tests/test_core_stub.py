"""The hand-written stub ``ferroflow/_core.pyi`` must list exactly what the extension exports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import ferroflow
from ferroflow import _core

STUB = Path(ferroflow.__file__).with_name("_core.pyi")


def _stub_tree() -> dict[str, set[str] | None]:
    """Top-level names of the stub; classes map to their member names."""
    names: dict[str, set[str] | None] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                # Public members only, as `_public` compares (constructors and dunders are not).
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
            }
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def _public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_lists_every_export_and_nothing_else() -> None:
    stub = _stub_tree()
    exported = {n for n in _public(_core) if not inspect.ismodule(getattr(_core, n))} | {"__version__"}
    assert set(stub) - {"AtomTuple", "Transitions"} == exported


def test_stub_classes_have_the_same_members() -> None:
    for name, members in _stub_tree().items():
        if members is None:
            continue
        assert members == _public(getattr(_core, name)), name
