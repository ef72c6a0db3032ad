"""Parallel engine: suspend lets running atoms finish and starts nothing new; priorities order ready atoms."""

from __future__ import annotations

import threading
import time
from concurrent import futures

from ferroflow import engines, states, task
from ferroflow.patterns import linear_flow, unordered_flow


class Gate(task.Task):
    """Waits until ``release`` is set; records that it ran."""

    def __init__(self, name: str, started: list[str], release: threading.Event) -> None:
        super().__init__(name)
        self._started = started
        self._release = release

    def execute(self) -> str:
        self._started.append(self.name)
        assert self._release.wait(10), f"{self.name} was never released"
        return self.name


def test_suspend_lets_running_atoms_finish_and_starts_nothing_new() -> None:
    started: list[str] = []
    release = threading.Event()
    first = unordered_flow.Flow("first").add(*[Gate(f"a{i}", started, release) for i in range(3)])
    later = unordered_flow.Flow("later").add(*[Gate(f"b{i}", started, release) for i in range(3)])
    flow = linear_flow.Flow("two-waves").add(first, later)
    with futures.ThreadPoolExecutor(max_workers=3) as pool:
        engine = engines.load(flow, engine="parallel", executor=pool)
        steps = engine.run_iter()
        for state in steps:
            if state == states.WAITING and not release.is_set():
                deadline = time.monotonic() + 10
                while len(started) < 3 and time.monotonic() < deadline:
                    time.sleep(0.001)
                engine.suspend()  # the three a* are running right now
                release.set()
        assert engine.storage.get_flow_state() == states.SUSPENDED
        assert sorted(started) == ["a0", "a1", "a2"]
        assert {name: engine.storage.get_atom_state(name) for name in ("a0", "a1", "a2", "b0")} == {
            "a0": states.SUCCESS,
            "a1": states.SUCCESS,
            "a2": states.SUCCESS,
            "b0": states.PENDING,
        }
        engine.run()  # the user's pool is still usable, and the rest runs
        assert sorted(started) == ["a0", "a1", "a2", "b0", "b1", "b2"]
        assert engine.storage.get_flow_state() == states.SUCCESS


class Recorder(task.Task):
    def __init__(self, name: str, order: list[str], priority: int) -> None:
        super().__init__(name)
        self.priority = priority
        self._order = order

    def execute(self) -> None:
        self._order.append(self.name)


def test_higher_priority_runs_first_among_ready_atoms() -> None:
    order: list[str] = []
    flow = unordered_flow.Flow("u").add(
        Recorder("low", order, 0), Recorder("high", order, 10), Recorder("mid", order, 5)
    )
    engines.run(flow)
    assert order == ["high", "mid", "low"]
