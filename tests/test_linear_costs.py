"""Costs grow linearly, counted in operations and rows, not in seconds.

A linear flow of N no-op atoms is suspended halfway, then resumed by a fresh engine on a fresh
backend, with every call to the SQLite store handle counted: how many calls of each method, how
many rows they read and how many they wrote. For N = 100, 200, 400, each count is an exact
linear function of N (the same increment from 100 to 200 as from 200 to 400, per 100 atoms), and
its slope is small: resuming reads each saved atom row a bounded number of times, writes each
atom it runs a bounded number of times, and no step of the run re-reads the flow (which would be
quadratic). (Today each saved row is read three times: a bound for this test, and room for
the resume path to shrink.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ferroflow import _core, engines, states, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from ferroflow.persistence.backends import impl_sqlite

#: Reads that return rows (counted per row), and writes (counted per row written).
_ROW_READS = frozenset({"atoms_for_flow", "atom_columns", "resume_rows", "resume_summaries", "flows_for_book"})


class _Counting:
    """Forwards every call to a store handle, counting calls and rows."""

    def __init__(self, store: Any, counts: Counter[str]) -> None:
        self._store, self._counts = store, counts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        counts = self._counts

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[f"calls {name}"] += 1
            result = attr(*args, **kwargs)
            if name in _ROW_READS:
                counts["rows read"] += len(result[0]) if name == "atom_columns" else len(result)
            return result

        return counted


class Step(task.Task):
    def execute(self) -> int:
        return 1


class SuspendHere(task.Task):
    engine: Any = None

    def execute(self) -> int:
        SuspendHere.engine.suspend()
        return 1


def _chain(n: int) -> linear_flow.Flow:
    half = n // 2
    return linear_flow.Flow("chain").add(
        *[Step(f"s{i}") for i in range(half - 1)], SuspendHere(f"s{half - 1}"), *[Step(f"s{i}") for i in range(half, n)]
    )


def _resume_counts(tmp_path, n: int, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    uri = f"sqlite:///{tmp_path}/n{n}.db"
    engine = engines.load(_chain(n), backend=uri)
    SuspendHere.engine = engine
    engine.run()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    flow_uuid = engine.storage.flow_uuid

    counts: Counter[str] = Counter()
    original = impl_sqlite.SQLiteBackend.store
    monkeypatch.setattr(impl_sqlite.SQLiteBackend, "store", lambda self: _Counting(original(self), counts))
    plan_stored = _core.resume_plan_stored

    def counted_plan(store: _Counting, flow_uuid: str, *args: Any, **kwargs: Any) -> Any:
        # (reads the flow's rows in Rust, once: counted as the rows it reads)
        counts["calls resume_plan_stored"] += 1
        counts["rows read"] += len(store._store.atom_columns(flow_uuid)[0])
        return plan_stored(store._store, flow_uuid, *args, **kwargs)

    monkeypatch.setattr(_core, "resume_plan_stored", counted_plan)
    # The serial engine's lane writes from Rust, into the store itself (its writes are counted by
    # the store's own `rows_written`, as the engine's are).
    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "lane_parts", lambda conn: (conn._store._store, conn._fence))
    backend = backends.fetch(uri)
    try:
        detail = backend.get_connection().get_flow_details(flow_uuid)
        counts.clear()  # (the caller's own read of the flow detail is not the engine's)
        written = original(backend).rows_written
        resumed = engines.load(_chain(n), flow_detail=detail, backend=backend)
        resumed.run()
        counts["rows written"] = original(backend).rows_written - written
        assert resumed.storage.get_flow_state() == states.SUCCESS
    finally:
        backend.close()
        monkeypatch.undo()
    return counts


def test_resuming_costs_grow_linearly_in_calls_and_rows(tmp_path, monkeypatch) -> None:
    by_n = {n: _resume_counts(tmp_path, n, monkeypatch) for n in (100, 200, 400)}
    for key in sorted(set().union(*by_n.values())):
        first, second, third = (by_n[n][key] for n in (100, 200, 400))
        # Exactly linear: per 100 atoms, the increment from 200 to 400 is that from 100 to 200.
        assert third - second == 2 * (second - first), (key, first, second, third)
        per_atom = (third - second) / 200
        assert per_atom <= 3, f"{key}: {per_atom} per atom"
    counts = by_n[400]
    # Each saved row is read twice (by the resume plan in Rust, which reads the payloads prepare
    # restores in the same pass, and for the caller's flow detail brought up to date at the
    # end), each atom run written once per transition (RUNNING, SUCCESS), and the flow read a
    # constant number of times.
    assert counts["rows read"] <= 2 * 400, counts
    assert counts["calls atom_columns"] == 0, counts
    assert counts["rows written"] <= 2 * 200 + 2, counts
    assert counts["calls get_flow_detail"] + counts["calls atoms_for_flow"] + counts["calls atom_columns"] <= 6, counts
