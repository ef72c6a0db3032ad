"""An engine that has run is freed once nothing refers to it, on every path its run takes (in
memory, persisted on SQLite through the Rust lane, `engines.resume_many` in
tests/test_resume_many.py).

A process that runs many engines (a conductor, `resume_many`) must not keep each one it ran: the
serial engine's Rust lane refers back to the engine, so the lane is dropped when the run ends
and, while it lives, shows the collector what it holds (`__traverse__`); otherwise the pair is a
cycle the collector cannot see, and every engine, its storage and its persister stay for good.

Beyond that, an engine that has run holds no reference cycle at all, so it is freed by reference
counting the moment it is dropped: every run freezes the collector's objects (``gc.freeze()``)
and unfreezes them into the oldest generation, which the collector then seldom walks, so cyclic
garbage of each engine would pile up in a process running thousands of them (10,000 resumed flows
left ~45 objects each and a 0.7 s collection at exit).
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


class Suspender(task.Task):
    def execute(self) -> None:
        self._engine_to_suspend.suspend()


@pytest.mark.parametrize("store", ["memory", "dir", "sqlite", "sqlite-batch", "sqlite-resumed"])
def test_an_engine_that_ran_holds_no_reference_cycle(tmp_path: Path, store: str) -> None:
    """With the cyclic collector off, dropping the last reference frees the engine, its storage,
    its persister and the saved atoms its prepare read."""
    backend = None
    if store == "dir":
        backend = backends.fetch(f"dir://{tmp_path / 'cycles'}")
    elif store != "memory":
        durability = "?durability=batch" if store == "sqlite-batch" else ""
        backend = backends.fetch(f"sqlite:///{tmp_path / 'cycles.db'}{durability}")
    flow = _flow("cycles")
    if store == "sqlite-resumed":  # a flow suspended halfway, resumed by a new engine
        pause = Suspender("pause")
        flow.add(pause, *(Noop(f"after{i}") for i in range(3)))
        first = engines.load(flow, backend=backend)
        pause._engine_to_suspend = first
        first.run()
        assert first.storage.get_flow_state() == states.SUSPENDED
        flow_detail = first.storage._flowdetail
        pause._engine_to_suspend = None
        del first
        engine = engines.load(flow, flow_detail=flow_detail, backend=backend)
    else:
        engine = engines.load(flow, backend=backend)
    gc.collect()
    gc.disable()
    try:
        engine.run()
        assert engine.storage.get_flow_state() == states.SUCCESS
        engine.storage.update_atom_metadata("t0", {"seen": True})  # (the meta writer's path)
        assert engine.storage.get_atom_metadata("t0")["seen"] is True
        gone, storage = weakref.ref(engine), weakref.ref(engine.storage)
        del engine
        assert gone() is None, "the engine was left to the cyclic collector"
        assert storage() is None, "the engine's storage was left to the cyclic collector"
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            assert gc.collect() == 0, "the run left cyclic garbage"
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    finally:
        gc.enable()
        if backend is not None:
            backend.close()
