"""On SQLite the serial engine's Rust lane writes the steps it runs itself (`Persister.lane_writer`),
with either durability. What it writes is exactly what the engine's own path writes (taken when
someone listens to the atoms); atoms it cannot write that way go back to the engine; a lost lease
stops it before the next atom."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ferroflow import engines, exceptions, task
from ferroflow.patterns import linear_flow, unordered_flow
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


def _run(path: Path, durability: str, unsaveable: bool = False, lane: bool = True) -> Any:
    engine = engines.load(_flow(unsaveable), backend=f"sqlite:///{path}?durability={durability}")
    if not lane:  # someone listening: the engine's own path runs and writes every atom
        engine.atom_notifier.register("FAILURE", lambda *_: None)
    try:
        engine.run()
    except Exception:
        pass
    return engine


@pytest.mark.parametrize("durability", ["process", "batch"])
def test_the_lane_writes_what_the_engine_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    _run(tmp_path / "engine.db", durability, lane=False)
    calls = _count_python_steps(monkeypatch)
    engine = _run(tmp_path / "lane.db", durability)
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert _rows(tmp_path / "lane.db") == _rows(tmp_path / "engine.db")
    # The 20 plain atoms (and a, b, c) were written from Rust: the engine wrote only the atoms
    # it completed itself (d: a revert to record; e: a functor task; f: reported progress).
    assert calls[0] <= 8, calls


@pytest.mark.parametrize("durability", ["process", "batch"])
def test_a_result_that_cannot_be_saved_fails_the_atom_as_on_the_engine_path(tmp_path: Path, durability: str) -> None:
    by_engine = _run(tmp_path / "engine.db", durability, unsaveable=True, lane=False)
    by_lane = _run(tmp_path / "lane.db", durability, unsaveable=True)
    assert by_lane.storage.get_flow_state() == by_engine.storage.get_flow_state() == "REVERTED"
    assert _rows(tmp_path / "lane.db") == _rows(tmp_path / "engine.db")


class LosesTheLease(task.Task):
    engine: Any = None

    def execute(self) -> None:
        lease = LosesTheLease.engine._persist.lease
        lease.lost = exceptions.LeaseLost("taken over (test)")


class Counted(task.Task):
    runs = 0

    def execute(self) -> None:
        Counted.runs += 1


@pytest.mark.parametrize("durability", ["process", "batch"])
def test_a_lost_lease_stops_the_lane_before_the_next_atom(tmp_path: Path, durability: str) -> None:
    flow = linear_flow.Flow("lease").add(Plain("a"), LosesTheLease("lose"), *[Counted(f"c{i}") for i in range(5)])
    engine = engines.load(flow, backend=f"sqlite:///{tmp_path}/lease.db?durability={durability}")
    LosesTheLease.engine = engine
    Counted.runs = 0
    with pytest.raises(exceptions.LeaseLost):
        engine.run()
    assert Counted.runs == 0


class Journaled(task.Task):
    executed: list[str] = []

    def execute(self) -> None:
        Journaled.executed.append(self.name)


class Checker(task.Task):
    db = ""
    seen: tuple[list[str], list[str]] = ([], [])

    def execute(self) -> None:
        with sqlite3.connect(Checker.db) as db:
            saved = sorted(name for (name,) in db.execute("SELECT name FROM atomdetails WHERE state = 'SUCCESS'"))
        Checker.seen = (sorted(Journaled.executed), saved)


def test_each_completion_is_committed_before_the_next_atom_runs(tmp_path: Path) -> None:
    # One round of 9 atoms: a kill while one runs loses at most that one (as on the engine path).
    Checker.db = str(tmp_path / "round.db")
    Journaled.executed = []
    flow = unordered_flow.Flow("round").add(*[Journaled(f"j{i}") for i in range(8)], Checker("check"))
    engine = engines.load(flow, backend=f"sqlite:///{Checker.db}")
    engine.run()
    executed, saved = Checker.seen
    assert executed and saved == executed
