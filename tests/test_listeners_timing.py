"""Timing listeners: DurationListener, PrintingDurationListener and EventTimeListener.

The same programs run on ferroflow and, where installed, on TaskFlow 6.5: the metadata keys each listener
leaves on the atom and flow details, and the messages printed (timings normalised), must match. Durations
and timestamps are checked against tasks that sleep a known time, and the metadata must be readable from
a real SQLite file after the run.
"""

from __future__ import annotations

import importlib
import logging
import re
import types
from unittest import mock

import pytest

from ferroflow import exceptions, states
from ferroflow.listeners import timing
from ferroflow.persistence import backends

try:
    import taskflow  # noqa: F401

    HAVE_TASKFLOW = True
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    HAVE_TASKFLOW = False

FLAVOURS = ["ferroflow", pytest.param("taskflow", marks=pytest.mark.skipif(not HAVE_TASKFLOW, reason="no taskflow"))]
SLEEP = 0.05


def _lib(flavour: str) -> types.SimpleNamespace:
    """The modules a program needs, from ferroflow or taskflow, plus task classes built on them."""
    names = ["engines", "task", "retry", "states", "patterns.linear_flow", "patterns.unordered_flow"]
    names += ["listeners.timing", "persistence.backends"]
    mods = {name.rpartition(".")[2]: importlib.import_module(f"{flavour}.{name}") for name in names}
    lib = types.SimpleNamespace(**mods)
    task = lib.task

    class Sleepy(task.Task):
        def execute(self, sleep_for=SLEEP):
            import time

            time.sleep(sleep_for)
            return self.name

    class Boom(task.Task):
        def execute(self):
            raise RuntimeError("boom")

    class FailOnce(task.Task):
        """Fails on its first execution only (the retry then runs it again)."""

        calls = 0

        def execute(self):
            type(self).calls += 1
            if type(self).calls == 1:
                raise RuntimeError("first try fails")

    lib.Sleepy, lib.Boom, lib.FailOnce = Sleepy, Boom, FailOnce
    return lib


def _flow(lib: types.SimpleNamespace, scenario: str):
    lf = lib.linear_flow
    if scenario == "success":
        return lf.Flow("root").add(lib.Sleepy("a"), lib.Sleepy("b"))
    if scenario == "revert":
        return lf.Flow("root").add(lib.Sleepy("a"), lib.Boom("boom"))
    if scenario == "retry":
        return lf.Flow("root", retry=lib.retry.Times(2, name="times")).add(lib.Sleepy("a"), lib.FailOnce("once"))
    raise AssertionError(scenario)


def _run(engine) -> None:
    try:
        engine.run()
    except RuntimeError:
        pass


def _run_with(flavour: str, scenario: str, *listener_classes, **load):
    """Runs a scenario on a memory backend with the listeners; returns (engine, saved flow detail)."""
    lib = _lib(flavour)
    backend = lib.backends.fetch("memory://")
    engine = lib.engines.load(_flow(lib, scenario), backend=backend, **load)
    listeners = [cls(engine) for cls in listener_classes]
    for listener in listeners:
        listener.register()
    _run(engine)
    for listener in listeners:
        listener.deregister()
    fd = backend.get_connection().get_flow_details(engine.storage.flow_uuid)
    return engine, fd


def _meta_keys(fd) -> dict[str, list[str]]:
    keys = {ad.name: sorted(ad.meta) for ad in fd if not ad.name.startswith("_")}
    keys["<flow>"] = sorted(fd.meta)
    return keys


# -- DurationListener ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["success", "revert", "retry"])
@pytest.mark.skipif(not HAVE_TASKFLOW, reason="no taskflow")
def test_meta_keys_match_taskflow(scenario):
    """Duration and event-time listeners together leave the same meta keys as on TaskFlow."""
    seen = {}
    for flavour in ("taskflow", "ferroflow"):
        mod = importlib.import_module(f"{flavour}.listeners.timing")
        _, fd = _run_with(flavour, scenario, mod.DurationListener, mod.EventTimeListener)
        seen[flavour] = _meta_keys(fd)
    assert seen["ferroflow"] == seen["taskflow"]
    assert "duration" in seen["ferroflow"]["<flow>"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_duration_of_tasks_and_flow(flavour):
    mod = importlib.import_module(f"{flavour}.listeners.timing")
    _, fd = _run_with(flavour, "success", mod.DurationListener)
    durations = {ad.name: ad.meta["duration"] for ad in fd if ad.name in ("a", "b")}
    assert all(SLEEP <= d < SLEEP + 2.0 for d in durations.values()), durations
    assert fd.meta["duration"] >= sum(durations.values())
    assert isinstance(fd.meta["duration"], float)


def test_duration_of_failed_and_reverted_task_is_the_last_phase():
    """A failed task is timed from RUNNING to FAILURE, then again from REVERTING to REVERTED (the
    revert's duration is what remains)."""
    recorded: list[tuple[str, str, float]] = []

    class Recording(timing.DurationListener):
        def _record_ending(self, timer, item_type, item_name, state):
            super()._record_ending(timer, item_type, item_name, state)
            recorded.append((item_name, state, timer.elapsed()))

    _, fd = _run_with("ferroflow", "revert", Recording)
    assert [(name, state) for name, state, _ in recorded] == [
        ("a", states.SUCCESS),
        ("boom", states.FAILURE),
        ("boom", states.REVERTED),
        ("a", states.REVERTED),
        ("root", states.REVERTED),
    ]
    saved = {ad.name: ad.meta.get("duration") for ad in fd}
    assert saved["a"] == recorded[3][2] and saved["boom"] == recorded[2][2]
    assert recorded[0][2] >= SLEEP > saved["a"]  # the revert (no sleep) overwrote the execute's duration
    assert fd.meta["duration"] == recorded[4][2]


def test_retried_task_timer_restarts_at_pending():
    """A task reset to PENDING by its retry drops its timer; its next run is timed afresh."""
    timers_at_pending = []

    class Watching(timing.DurationListener):
        def _receiver(self, item_type, item_name, state):
            super()._receiver(item_type, item_name, state)
            if state == states.PENDING:
                timers_at_pending.append(dict(self._timers[item_type]))

    _, fd = _run_with("ferroflow", "retry", Watching)
    assert timers_at_pending and all("once" not in t and "a" not in t for t in timers_at_pending)
    durations = {ad.name: ad.meta.get("duration") for ad in fd}
    assert durations["a"] >= SLEEP and durations["once"] is not None
    assert durations["times"] is None  # retries are not timed


def test_duration_without_backend_is_kept_in_storage():
    """Without a backend the flow metadata still holds the duration (TaskFlow's ``storage.flow_meta``)."""
    lib = _lib("ferroflow")
    engine = lib.engines.load(_flow(lib, "success"))
    with timing.DurationListener(engine):
        engine.run()
    assert engine.storage.flow_meta["duration"] >= 2 * SLEEP


def test_parallel_engine_times_each_task():
    lib = _lib("ferroflow")
    backend = backends.fetch("memory://")
    flow = lib.unordered_flow.Flow("root").add(*(lib.Sleepy(f"t{i}") for i in range(4)))
    engine = lib.engines.load(flow, backend=backend, engine="parallel", max_workers=4)
    with timing.DurationListener(engine):
        engine.run()
    fd = backend.get_connection().get_flow_details(engine.storage.flow_uuid)
    durations = [ad.meta["duration"] for ad in fd if ad.name.startswith("t")]
    assert len(durations) == 4 and min(durations) >= SLEEP
    assert fd.meta["duration"] < sum(durations)  # they overlapped


def test_storage_failure_is_logged_not_raised():
    lib = _lib("ferroflow")
    engine = lib.engines.load(lib.linear_flow.Flow("root").add(lib.Sleepy("test-1")))
    listener = timing.DurationListener(engine)
    with (
        mock.patch.object(timing.LOG, "warning") as warning,
        mock.patch.object(
            type(engine.storage), "update_atom_metadata", side_effect=exceptions.StorageFailure("Woot!"), create=True
        ),
        listener,
    ):
        engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS
    warning.assert_called_once_with(mock.ANY, mock.ANY, "task", "test-1", exc_info=True)
    assert warning.call_args.args[0] == "Failure to store duration update %s for %s %s"


def test_deregister_warns_about_unfinished_items(caplog):
    """A flow suspended mid-run never finishes: its timer is dropped with a warning."""
    lib = _lib("ferroflow")
    engine = lib.engines.load(_flow(lib, "success"))
    listener = timing.DurationListener(engine)
    listener.register()
    for state in engine.run_iter():
        if state == states.WAITING:
            engine.suspend()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    with caplog.at_level(logging.WARNING, logger=timing.LOG.name):
        listener.deregister()
    assert [r.getMessage() for r in caplog.records if r.name == timing.LOG.name] == [
        f"1 flow(s) did not enter {timing.FINISHED_STATES} states",
    ]
    assert listener._timers == {timing.TASK: {}, timing.FLOW: {}}


# -- PrintingDurationListener ----------------------------------------------------------------------


def _normalised(messages: list[str]) -> list[str]:
    return [re.sub(r"\d+\.\d\d seconds", "N seconds", m) for m in messages]


@pytest.mark.parametrize("scenario", ["success", "revert"])
def test_printing_duration_messages(scenario):
    printed = {}
    for flavour in ("ferroflow", "taskflow") if HAVE_TASKFLOW else ("ferroflow",):
        mod = importlib.import_module(f"{flavour}.listeners.timing")
        out: list[str] = []
        _run_with(flavour, scenario, lambda e, mod=mod, out=out: mod.PrintingDurationListener(e, printer=out.append))
        printed[flavour] = out
    ours = printed["ferroflow"]
    assert ours[0] == "'root' flow started." and ours[-1].startswith("It took flow 'root' ")
    assert re.fullmatch(r"It took task 'a' (\d+\.\d\d) seconds to finish\.", ours[2])
    assert float(ours[2].split()[4]) >= SLEEP - 0.005
    if "taskflow" in printed:
        assert _normalised(ours) == _normalised(printed["taskflow"])


def test_printing_duration_defaults_to_print(capsys):
    lib = _lib("ferroflow")
    engine = lib.engines.load(lib.linear_flow.Flow("f").add(lib.Sleepy("only")))
    with timing.PrintingDurationListener(engine):
        engine.run()
    lines = _normalised(capsys.readouterr().out.splitlines())
    assert lines == [
        "'f' flow started.",
        "'only' task started.",
        "It took task 'only' N seconds to finish.",
        "It took flow 'f' N seconds to finish.",
    ]


# -- EventTimeListener -----------------------------------------------------------------------------


def test_event_timestamps_are_ordered_and_span_the_work():
    _, fd = _run_with("ferroflow", "revert", timing.EventTimeListener)
    by_name = {ad.name: ad.meta for ad in fd}
    a, boom = by_name["a"], by_name["boom"]
    order = ["RUNNING", "SUCCESS", "REVERTING", "REVERTED"]
    stamps = [a[f"{s}-timestamp"] for s in order]
    assert stamps == sorted(stamps)
    assert stamps[1] - stamps[0] >= SLEEP - 0.005
    assert boom["RUNNING-timestamp"] <= boom["FAILURE-timestamp"] <= boom["REVERTING-timestamp"]
    assert a["SUCCESS-timestamp"] <= boom["RUNNING-timestamp"]
    assert fd.meta["RUNNING-timestamp"] <= a["RUNNING-timestamp"] <= a["REVERTED-timestamp"]
    assert a["REVERTED-timestamp"] <= fd.meta["REVERTED-timestamp"]


def test_event_time_records_retry_events():
    _, fd = _run_with("ferroflow", "retry", timing.EventTimeListener)
    retry_meta = next(ad.meta for ad in fd if ad.name == "times")
    assert {"RUNNING-timestamp", "SUCCESS-timestamp", "RETRYING-timestamp"} <= set(retry_meta)


def test_event_time_listen_for_restricts_events():
    lib = _lib("ferroflow")
    backend = backends.fetch("memory://")
    engine = lib.engines.load(_flow(lib, "success"), backend=backend)
    with timing.EventTimeListener(engine, task_listen_for=[states.SUCCESS], flow_listen_for=()):
        engine.run()
    fd = backend.get_connection().get_flow_details(engine.storage.flow_uuid)
    assert {ad.name: sorted(ad.meta) for ad in fd if ad.name in ("a", "b")} == {
        "a": ["SUCCESS-timestamp", "progress"],
        "b": ["SUCCESS-timestamp", "progress"],
    }
    assert not any(key.endswith("-timestamp") for key in fd.meta)


def test_event_time_storage_failure_is_logged():
    lib = _lib("ferroflow")
    engine = lib.engines.load(lib.linear_flow.Flow("root").add(lib.Sleepy("t")))
    with (
        mock.patch.object(timing.LOG, "warning") as warning,
        mock.patch.object(
            type(engine.storage), "update_flow_metadata", side_effect=exceptions.StorageFailure("x"), create=True
        ),
        timing.EventTimeListener(engine),
    ):
        engine.run()
    assert [c.args[0] for c in warning.call_args_list] == ["Failure to store timestamp %s for flow %s"] * 2
    assert [c.args[2] for c in warning.call_args_list] == ["root", "root"]


# -- persistence -----------------------------------------------------------------------------------


def test_meta_persisted_in_sqlite_file(tmp_path):
    """After the run, a fresh backend on the same file sees every listener's metadata (and the
    engine's own ``progress`` key beside it: updates merge)."""
    lib = _lib("ferroflow")
    uri = f"sqlite:///{tmp_path / 'timing.db'}"
    engine = lib.engines.load(_flow(lib, "revert"), backend=uri)
    with timing.DurationListener(engine), timing.EventTimeListener(engine):
        _run(engine)
    backend = backends.fetch(uri)
    try:
        with backend.get_connection() as conn:
            fd = conn.get_flow_details(engine.storage.flow_uuid)
    finally:
        backend.close()
    assert fd.state == states.REVERTED
    assert {"duration", "RUNNING-timestamp", "REVERTED-timestamp"} <= set(fd.meta)
    metas = {ad.name: ad.meta for ad in fd}
    for name in ("a", "boom"):
        assert {"duration", "progress", "RUNNING-timestamp", "REVERTED-timestamp"} <= set(metas[name]), name
    assert "FAILURE-timestamp" in metas["boom"] and "SUCCESS-timestamp" in metas["a"]
    assert isinstance(metas["a"]["duration"], float)
    assert metas["a"]["SUCCESS-timestamp"] - metas["a"]["RUNNING-timestamp"] >= SLEEP - 0.005


def test_module_exports_match_taskflow():
    assert timing.__all__ == ["DurationListener", "EventTimeListener", "PrintingDurationListener"]
    assert issubclass(timing.PrintingDurationListener, timing.DurationListener)
    if HAVE_TASKFLOW:
        from taskflow.listeners import timing as tf_timing

        assert timing.WATCH_STATES == tf_timing.WATCH_STATES
        assert timing.STARTING_STATES == tf_timing.STARTING_STATES
        assert timing.FINISHED_STATES == tf_timing.FINISHED_STATES
