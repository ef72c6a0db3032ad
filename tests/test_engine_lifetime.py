"""An engine that has run is freed once nothing refers to it, on every path its run takes (in
memory, persisted on SQLite through the Rust lane, `engines.resume_many` in
tests/test_resume_many.py).

A process that runs many engines (a conductor, `resume_many`) must not keep each one it ran: the
serial engine's Rust lane refers back to the engine, so the lane is dropped when the run ends
and, while it lives, shows the collector what it holds (`__traverse__`); otherwise the pair is a
cycle the collector cannot see, and every engine, its storage and its persister stay for good.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from ferroflow import _core, engines, states, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends


class Noop(task.Task):
    def execute(self) -> None:
        pass


class Progressing(task.Task):
    def execute(self) -> int:
        self.update_progress(0.5)
        return 1


def _flow(name: str = "lifetime", size: int = 5) -> linear_flow.Flow:
    return linear_flow.Flow(name).add(*(Noop(f"t{i}") for i in range(size)))


@pytest.mark.parametrize("store", ["memory", "sqlite", "sqlite-batch"])
def test_an_engine_that_ran_is_freed(tmp_path: Path, store: str) -> None:
    backend = None
    if store != "memory":
        durability = "?durability=batch" if store == "sqlite-batch" else ""
        backend = backends.fetch(f"sqlite:///{tmp_path / 'life.db'}{durability}")
    engine = engines.load(_flow(), backend=backend)
    engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS
    gone = weakref.ref(engine)
    storage = weakref.ref(engine.storage)
    del engine
    gc.collect()
    assert gone() is None, "the engine outlived its last reference"
    assert storage() is None, "the engine's storage outlived it"
    if backend is not None:
        backend.close()


def test_an_engine_with_a_live_lane_is_collectable() -> None:
    """An engine dropped while it holds its lane (as during a run) forms a cycle with it: the
    collector must see through the lane to free it."""
    engine = engines.load(_flow(size=3))
    engine.compile()
    engine.prepare()
    engine._lane = engine._make_lane()
    assert isinstance(engine._lane, _core.Lane)
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert gone() is None, "an engine held only by its own lane was never collected"


def test_a_progress_reporting_run_frees_its_engine() -> None:
    engine = engines.load(linear_flow.Flow("progress").add(Progressing("p1"), Progressing("p2")))
    engine.run()
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert gone() is None
