"""Machinery of the compatibility suite: load a TaskFlow program as-is or migrated to ferroflow.

A program is a module under ``programs/`` written once against ``taskflow``. Migrating it is what a user
would do: replace ``taskflow`` by ``ferroflow`` on its import lines and nothing else. Each load executes
the source in a fresh module namespace, so both flavours can run in one interpreter.
"""

from __future__ import annotations

import copy
import importlib
import io
import re
import tokenize
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROGRAMS_DIR = Path(__file__).parent / "programs"
# The programs import their observation helper relatively, so they run as members of this package.
PROGRAMS_PACKAGE = __name__.rpartition(".")[0] + ".programs"

ORIGINAL = "taskflow"
MIGRATED = "ferroflow"
FLAVOURS = (ORIGINAL, MIGRATED)

_IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+taskflow\b")


def program_names() -> list[str]:
    """Every program module (``pNN_*.py``), in numeric order."""
    return sorted(path.stem for path in PROGRAMS_DIR.glob("p[0-9][0-9]_*.py"))


def migrate_source(source: str) -> str:
    """Rewrite the import lines of a TaskFlow program to ferroflow, exactly as a migrating user would."""
    lines = source.splitlines(keepends=True)
    migrated = [line.replace(ORIGINAL, MIGRATED) if _IMPORT_LINE.match(line) else line for line in lines]
    return "".join(migrated)


def _check_only_imports_name_taskflow(source: str, name: str) -> None:
    """Refuse programs that would need more than an import rewrite (a fair test rewrites nothing else)."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.NAME, tokenize.STRING) and ORIGINAL in token.string:
            raise ValueError(
                f"program {name} mentions {ORIGINAL!r} outside its import lines (line {token.start[0]}: "
                f"{token.line.strip()!r}); migration would not be a pure import rewrite"
            )


def _roots_of_globals(namespace: dict[str, Any]) -> set[str]:
    """Top-level package of every module, class or function a program imported."""
    roots = set()
    for value in namespace.values():
        if isinstance(value, types.ModuleType):
            roots.add(value.__name__.partition(".")[0])
        elif isinstance(value, type | types.FunctionType):
            roots.add(getattr(value, "__module__", "").partition(".")[0])
    return roots


def require_flavour(flavour: str) -> None:
    """Skip when TaskFlow is absent; FAIL (never skip) when ferroflow cannot be imported."""
    if flavour == ORIGINAL:
        pytest.importorskip(
            "taskflow.engines",
            reason="TaskFlow is not installed: comparison against the original is impossible "
            "(pip install 'ferroflow[compare]')",
        )
        return
    try:
        importlib.import_module("ferroflow.engines")
    except Exception as exc:  # any import-time error means the migrated program cannot run
        pytest.fail(f"ferroflow.engines cannot be imported, so no migrated program can run: {exc!r}")


def load_program(name: str, flavour: str) -> types.ModuleType:
    """Execute program ``name`` in a fresh namespace, migrated to ferroflow when asked."""
    path = PROGRAMS_DIR / f"{name}.py"
    source = path.read_text()
    if flavour == MIGRATED:
        source = migrate_source(source)
        _check_only_imports_name_taskflow(source, name)
    # Same ``__name__`` for both flavours: default atom names embed the defining module's name.
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__package__ = PROGRAMS_PACKAGE
    exec(compile(source, str(path), "exec"), module.__dict__)
    other = MIGRATED if flavour == ORIGINAL else ORIGINAL
    leaked = other in _roots_of_globals(module.__dict__)
    assert not leaked, f"program {name} run as {flavour} imported something from {other}"
    return module


@dataclass(frozen=True)
class Outcome:
    """What one run of a program produced: its observations, or the exception ``main()`` escaped with."""

    module: types.ModuleType
    observed: dict[str, Any] | None
    error: BaseException | None

    def result(self) -> dict[str, Any]:
        """The observations (a copy, so assertions may not disturb the cache); re-raises a crash."""
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.observed)


@pytest.fixture(scope="session")
def run_program() -> Callable[[str, str], Outcome]:
    """Run each program once per flavour per session; the comparison test reuses the single-flavour runs."""
    cache: dict[tuple[str, str], Outcome] = {}

    def run(name: str, flavour: str) -> Outcome:
        require_flavour(flavour)
        key = (name, flavour)
        if key not in cache:
            module = load_program(name, flavour)
            try:
                observed, error = module.main(), None
            except Exception as exc:  # kept, then re-raised by every test asking for this run
                observed, error = None, exc
            cache[key] = Outcome(module, observed, error)
        return cache[key]

    return run
