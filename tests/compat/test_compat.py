"""A TaskFlow program runs unchanged on ferroflow once its imports say ``ferroflow`` instead of ``taskflow``.

Every program under ``programs/`` is run as written (real TaskFlow) and migrated (ferroflow). Its ``main()``
returns everything observable as plain data; the two runs must agree field by field. Each program also
pins key values literally in ``EXPECTED``, so that both implementations being wrong the same way fails.

Program contract:
    main() -> dict                observations (results, states, notifications, exceptions ...)
    EXPECTED: dict                literal values some fields must have, on both implementations
    COMPARE_AS: dict[str, str]    optional; how a field is compared when its order is not part of the
                                  contract: "multiset" (any order) or "per_atom" (event strings grouped by
                                  atom, order kept within each atom). Default: exact equality.
    FIXED_IN_FERROFLOW: dict      optional; field -> (why, value ferroflow must give) where TaskFlow loses
                                  information (DESIGN.md, "Compatibility"): the field is pinned literally on
                                  ferroflow and left out of the side-by-side comparison.

Quick check of the programs themselves: ``pytest tests/compat -k taskflow_only``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import MIGRATED, ORIGINAL, Outcome, migrate_source, program_names

# TaskFlow's oslo_utils dependency warns when imported; that is not the program's doing.
pytestmark = pytest.mark.filterwarnings("ignore:eventletutils module is deprecated:DeprecationWarning")

PROGRAMS = program_names()
_MISSING = "<field missing>"
RunProgram = Callable[[str, str], Outcome]


def _per_atom(events: list[str]) -> dict[str, list[str]]:
    """Group ``"<kind> <name> <transition>..."`` strings by ``"<kind> <name>"``, keeping their order."""
    grouped: dict[str, list[str]] = {}
    for event in events:
        kind, name, rest = event.split(" ", 2)
        grouped.setdefault(f"{kind} {name}", []).append(rest)
    return grouped


def _normalise(module: Any, field: str, value: Any) -> Any:
    how = getattr(module, "COMPARE_AS", {}).get(field, "exact")
    if how == "exact" or value is None:
        return value
    if how == "multiset":
        return sorted(value, key=repr)
    if how == "per_atom":
        return _per_atom(value)
    raise ValueError(f"unknown COMPARE_AS mode {how!r} for field {field!r}")


def _fixed(module: Any) -> dict[str, tuple[str, Any]]:
    return getattr(module, "FIXED_IN_FERROFLOW", {})


def _check_expected(outcome: Outcome, name: str, flavour: str) -> dict[str, Any]:
    observed = outcome.result()
    expected = dict(outcome.module.EXPECTED)
    if flavour == MIGRATED:
        expected.update({field: value for field, (_why, value) in _fixed(outcome.module).items()})
    assert expected, f"{name} pins no literal EXPECTED values"
    wrong = []
    for field, want in expected.items():
        got = observed.get(field, _MISSING)
        if _normalise(outcome.module, field, got) != _normalise(outcome.module, field, want):
            wrong.append(f"  {field}:\n    expected: {want!r}\n    got     : {got!r}")
    assert not wrong, f"{name} on {flavour}: {len(wrong)} field(s) differ from EXPECTED\n" + "\n".join(wrong)
    return observed


@pytest.mark.parametrize("name", PROGRAMS)
def test_taskflow_only(run_program: RunProgram, name: str) -> None:
    """The program itself is right: real TaskFlow produces the literal EXPECTED values."""
    _check_expected(run_program(name, ORIGINAL), name, ORIGINAL)


@pytest.mark.parametrize("name", PROGRAMS)
def test_ferroflow_only(run_program: RunProgram, name: str) -> None:
    """The migrated program produces the literal EXPECTED values (runs even without TaskFlow installed)."""
    _check_expected(run_program(name, MIGRATED), name, MIGRATED)


@pytest.mark.parametrize("name", PROGRAMS)
def test_ferroflow_matches_original(run_program: RunProgram, name: str) -> None:
    """Every observation of the migrated program equals the original's."""
    original = run_program(name, ORIGINAL)
    migrated = run_program(name, MIGRATED)
    want, got = original.result(), migrated.result()
    wrong = []
    for field in sorted((want.keys() | got.keys()) - _fixed(original.module).keys()):
        want_value, got_value = want.get(field, _MISSING), got.get(field, _MISSING)
        if _normalise(original.module, field, want_value) != _normalise(original.module, field, got_value):
            wrong.append(f"  {field}:\n    taskflow : {want_value!r}\n    ferroflow: {got_value!r}")
    assert not wrong, f"{name}: {len(wrong)} observation(s) differ\n" + "\n".join(wrong)


def test_there_are_enough_programs() -> None:
    assert len(PROGRAMS) >= 14, PROGRAMS


def test_migration_rewrites_import_lines_only() -> None:
    source = (
        "from taskflow import engines, task\n"
        "import taskflow.exceptions as exc\n"
        "from taskflow.patterns import (\n"
        "    linear_flow as lf,\n"
        ")\n"
        "NOTE = 'taskflow stays here'\n"
    )
    assert migrate_source(source) == (
        "from ferroflow import engines, task\n"
        "import ferroflow.exceptions as exc\n"
        "from ferroflow.patterns import (\n"
        "    linear_flow as lf,\n"
        ")\n"
        "NOTE = 'taskflow stays here'\n"
    )
