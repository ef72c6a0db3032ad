"""The serial engine's fast lane (`ferroflow._core.Lane`) runs plain rounds from Rust when nothing
observes a run. It must be invisible: every flow ends exactly as on the general path (forced here
by closing the lane), and whatever the lane cannot do goes back to the engine at the right atom."""

from __future__ import annotations

import random

import pytest

from ferroflow import engines, retry, states, task
from ferroflow.engines.engine import SerialActionEngine
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Add(task.Task):
    def execute(self, **inputs: int) -> int:
        return sum(inputs.values()) + 1


class Pair(task.Task):
    default_provides = ("left", "right")

    def execute(self) -> tuple[int, int]:
        return 3, 4


class Keyed(task.Task):
    def execute(self) -> dict[str, int]:
        return {"k1": 10, "k2": 20}


class Optional(task.Task):
    def execute(self, base: int, extra: int = 100) -> int:
        return base + extra


class Boom(task.Task):
    def execute(self) -> None:
        raise ValueError(f"{self.name} failed")


REVERTED: list[str] = []


class Undoable(task.Task):
    def execute(self) -> str:
        return self.name

    def revert(self, **kwargs) -> None:
        REVERTED.append(self.name)


class Hooked(task.Task):
    def pre_execute(self) -> None:
        self.seen = True

    def execute(self, left: int) -> int:
        return left * 2


def _dag(n: int, seed: int) -> graph_flow.Flow:
    rng = random.Random(seed)
    flow = graph_flow.Flow("dag")
    for i in range(n):
        requires = [f"v{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))] if i else []
        flow.add(Add(f"t{i}", provides=f"v{i}", requires=requires))
    return flow


def _outcome(flow, store=None, general: bool = False, monkeypatch=None):
    if general:
        monkeypatch.setattr(SerialActionEngine, "_lane_open", lambda self: False)
    engine = engines.load(flow, store=store)
    try:
        engine.run()
        error = None
    except Exception as exc:  # compared between both paths
        error = (type(exc).__name__, str(exc))
    finally:
        if general:
            monkeypatch.undo()
    names = [atom.name for atom in engine.compilation.atoms]
    atoms = {n: engine.storage.get_atom_state(n) for n in names}
    return engine.storage.get_flow_state(), atoms, engine.storage.fetch_all(), error, engine.statistics["completed"]


@pytest.fixture(autouse=True)
def _clear() -> None:
    REVERTED.clear()


def _mixed() -> linear_flow.Flow:
    return linear_flow.Flow("mixed").add(
        Pair("pair"),
        Keyed("keyed", provides={"k1", "k2"}),
        Add("from_pair", provides="a", rebind={"x": "left", "y": "right"}),
        Add("from_keys", provides="b", rebind={"x": "k1", "y": "k2"}),
        Optional("optional", provides="c", rebind={"base": "a"}),
        Add("stored", provides="d", requires=["s"]),
        Hooked("hooked", provides="h"),
        unordered_flow.Flow("fan").add(*[Add(f"f{i}", provides=f"fan{i}", requires=["a"]) for i in range(5)]),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_dags_end_the_same_on_both_paths(seed, monkeypatch) -> None:
    assert _outcome(_dag(300, seed)) == _outcome(_dag(300, seed), general=True, monkeypatch=monkeypatch)


def test_keys_store_values_optional_arguments_and_hooks_end_the_same(monkeypatch) -> None:
    lane = _outcome(_mixed(), store={"s": 5, "right": 40})
    general = _outcome(_mixed(), store={"s": 5, "right": 40}, general=True, monkeypatch=monkeypatch)
    assert lane == general
    values = lane[2]
    assert values["a"] == 3 + 40 + 1  # the store wins over the provider of "right"
    assert values["b"] == 31 and values["c"] == 144 and values["d"] == 6 and values["h"] == 6


def test_the_lane_runs_plain_atoms_without_the_python_call_path(monkeypatch) -> None:
    called: list[int] = []
    original = SerialActionEngine._call

    def spy(self, index, kind):
        called.append(index)
        return original(self, index, kind)

    monkeypatch.setattr(SerialActionEngine, "_call", spy)
    engine = engines.load(linear_flow.Flow("plain").add(*[Add(f"p{i}") for i in range(50)]))
    engine.run()
    assert called == []
    assert engine.statistics["completed"] == 50
    assert engine.storage.get_flow_state() == states.SUCCESS


def test_a_failure_in_the_lane_reverts_as_on_the_general_path(monkeypatch) -> None:
    def flow() -> linear_flow.Flow:
        return linear_flow.Flow("fails").add(Undoable("u1"), Undoable("u2"), Boom("boom"), Undoable("never"))

    lane = _outcome(flow())
    lane_reverted = list(REVERTED)
    REVERTED.clear()
    general = _outcome(flow(), general=True, monkeypatch=monkeypatch)
    assert lane == general
    assert lane[0] == states.REVERTED and lane[3] == ("ValueError", "boom failed")
    assert lane_reverted == REVERTED == ["u2", "u1"]


def test_retries_and_deciders_go_to_the_engine_and_end_the_same(monkeypatch) -> None:
    attempts: list[int] = []

    class Flaky(task.Task):
        def execute(self) -> int:
            attempts.append(1)
            if len(attempts) < 3:
                raise RuntimeError("not yet")
            return 7

    def flow() -> graph_flow.Flow:
        attempts.clear()
        inner = linear_flow.Flow("retried", retry=retry.Times(5)).add(Add("before"), Flaky("flaky", provides="z"))
        gate = Add("gate", provides="g")
        skipped = Add("skipped", provides="q")
        g = graph_flow.Flow("g").add(inner, gate, skipped, Add("after", requires=["z"]))
        g.link(gate, skipped, decider=lambda history: False)
        return g

    lane = _outcome(flow())
    general = _outcome(flow(), general=True, monkeypatch=monkeypatch)
    assert lane == general
    assert lane[0] == states.SUCCESS and lane[2]["z"] == 7
    assert lane[1]["skipped"] == states.IGNORE


def test_a_suspend_asked_by_a_task_stops_the_lane_and_the_flow_resumes(monkeypatch) -> None:
    engine_box: list = []

    class Suspender(task.Task):
        def execute(self) -> int:
            engine_box[0].suspend()
            return 1

    flow = linear_flow.Flow("s").add(Add("a1"), Suspender("stop"), Add("a2"), Add("a3"))
    engine = engines.load(flow)
    engine_box.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    assert engine.storage.get_atom_state("stop") == states.SUCCESS
    assert engine.storage.get_atom_state("a2") == states.PENDING
    engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS


def test_progress_reported_in_the_lane_is_stored_and_a_listener_registered_mid_run_hears_the_rest() -> None:
    heard: list[tuple[str, str]] = []
    engine_box: list = []

    class Reporter(task.Task):
        def execute(self) -> int:
            self.update_progress(0.5)
            engine_box[0].atom_notifier.register("SUCCESS", lambda state, details: heard.append(details["task_name"]))
            return 1

    flow = linear_flow.Flow("p").add(Add("a1"), Reporter("rep"), Add("a2"), Add("a3"))
    engine = engines.load(flow)
    engine_box.append(engine)
    engine.run()
    assert engine.storage.get_task_progress("a1") == 1.0
    assert engine.storage.get_task_progress("rep") == 1.0  # the engine's 1.0 replaces the task's 0.5
    assert heard == ["rep", "a2", "a3"]


def test_keyboard_interrupt_in_a_task_leaves_the_run() -> None:
    class Interrupting(task.Task):
        def execute(self) -> None:
            raise KeyboardInterrupt

    engine = engines.load(linear_flow.Flow("k").add(Add("a"), Interrupting("stop"), Add("b")))
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    assert engine.storage.get_atom_state("a") == states.SUCCESS
    assert engine.storage.get_atom_state("b") == states.PENDING


def test_progress_reaches_the_running_task_only_and_nested_runs_keep_their_own() -> None:
    bystander = Add("bystander")
    inner_progress: list[float] = []

    class Outer(task.Task):
        def execute(self) -> int:
            bystander.update_progress(0.3)  # not running here: nothing is recorded for it
            inner = engines.load(linear_flow.Flow("inner").add(Add("i1"), Reporting("i2")))
            inner.run()
            inner_progress.append(inner.storage.get_task_progress("i2"))
            self.update_progress(0.7)  # after the nested run: still this engine's task
            return 1

    class Reporting(task.Task):
        def execute(self) -> int:
            self.update_progress(0.4)
            return 2

    engine = engines.load(linear_flow.Flow("outer").add(Outer("outer"), Add("last")))
    seen: list[tuple[str, float]] = []
    original = engine.storage.report_progress

    def spy(index: int, progress: float) -> None:
        seen.append((engine.compilation.atoms[index].name, progress))
        original(index, progress)

    engine.storage.report_progress = spy  # type: ignore[method-assign]
    engine.run()
    assert seen == [("outer", 0.7)]
    assert inner_progress == [1.0]  # the inner engine's own 1.0 once i2 succeeded
    assert engine.storage.get_flow_state() == states.SUCCESS
