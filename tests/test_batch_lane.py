"""``durability=batch`` on SQLite: the serial engine's Rust lane writes the steps it runs itself
(`Persister.lane_writer`). What it writes is exactly what the engine's own path writes; atoms it
cannot write that way go back to the engine; a lost lease stops it before the next atom."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ferroflow import engines, exceptions, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence.backends import impl_sqlite

_COLUMNS = "name, atom_type, state, intention, results, failure IS NOT NULL, revert_results, meta, version, resume"


class Plain(task.Task):
    def execute(self) -> None:
        return None


class Valued(task.Task):
    def execute(self, **inputs: Any) -> dict[str, Any]:
        return {"n": len(self.name), "inputs": sorted(inputs)}


class WithRevert(task.Task):
    def execute(self) -> int:
        return 3

    def revert(self, **kwargs: Any) -> None:
        pass


class Reporting(task.Task):
    def execute(self) -> int:
        self.update_progress(0.5)
        return 4


class Unsaveable(task.Task):
    def execute(self) -> object:
        return object()


def _flow(unsaveable: bool = False) -> linear_flow.Flow:
    atoms: list[task.Task] = [
        Plain("a"),
        Valued("b", provides="b_out"),
        Valued("c", requires=["b_out"]),
        WithRevert("d"),
        task.FunctorTask(lambda: 5, name="e"),
        Reporting("f"),
        *[Plain(f"p{i}") for i in range(20)],
    ]
    if unsaveable:
        atoms.append(Unsaveable("u"))
    return linear_flow.Flow("lane").add(*atoms)


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT {_COLUMNS} FROM atomdetails ORDER BY rowid").fetchall()


def _count_python_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = impl_sqlite.SQLiteConnection.apply_steps

    def counted(self: Any, steps: Any) -> None:
        calls[0] += 1
        original(self, steps)

    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "apply_steps", counted)
    return calls


def _run(path: Path, durability: str, unsaveable: bool = False) -> Any:
    engine = engines.load(_flow(unsaveable), backend=f"sqlite:///{path}?durability={durability}")
    try:
        engine.run()
    except Exception:
        pass
    return engine


def test_the_lane_writes_what_the_engine_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(tmp_path / "process.db", "process")
    calls = _count_python_steps(monkeypatch)
    engine = _run(tmp_path / "batch.db", "batch")
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert _rows(tmp_path / "batch.db") == _rows(tmp_path / "process.db")
    # The 20 plain atoms (and a, b, c) were written from Rust: the engine wrote only the atoms
    # it completed itself (d: a revert to record; e: a functor task; f: reported progress).
    assert calls[0] <= 8, calls


def test_a_result_that_cannot_be_saved_fails_the_atom_as_on_the_engine_path(tmp_path: Path) -> None:
    process = _run(tmp_path / "process.db", "process", unsaveable=True)
    batch = _run(tmp_path / "batch.db", "batch", unsaveable=True)
    assert batch.storage.get_flow_state() == process.storage.get_flow_state() == "REVERTED"
    assert _rows(tmp_path / "batch.db") == _rows(tmp_path / "process.db")


class LosesTheLease(task.Task):
    engine: Any = None

    def execute(self) -> None:
        lease = LosesTheLease.engine._persist.lease
        lease.lost = exceptions.LeaseLost("taken over (test)")


class Counted(task.Task):
    runs = 0

    def execute(self) -> None:
        Counted.runs += 1


def test_a_lost_lease_stops_the_lane_before_the_next_atom(tmp_path: Path) -> None:
    flow = linear_flow.Flow("lease").add(Plain("a"), LosesTheLease("lose"), *[Counted(f"c{i}") for i in range(5)])
    engine = engines.load(flow, backend=f"sqlite:///{tmp_path}/lease.db?durability=batch")
    LosesTheLease.engine = engine
    Counted.runs = 0
    with pytest.raises(exceptions.LeaseLost):
        engine.run()
    assert Counted.runs == 0
