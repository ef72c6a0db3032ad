"""Notifier and listeners: registration, dispatch and the values listeners record."""

from __future__ import annotations

import io
import logging

import pytest

from ferroflow import states
from ferroflow.listeners import base, capturing, printing
from ferroflow.listeners import logging as logging_listeners
from ferroflow.types import notifier as nt
from ferroflow.types.failure import Failure

try:
    from taskflow.listeners import capturing as tf_capturing
    from taskflow.types import notifier as tf_nt
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    tf_capturing = None

needs_taskflow = pytest.mark.skipif(tf_capturing is None, reason="taskflow is not installed")


def test_register_and_notify():
    n = nt.Notifier()
    assert not n.has_listeners() and len(n) == 0
    n.notify("RUNNING", {"x": 1})  # nothing registered: a no-op
    seen = []
    n.register(
        "RUNNING",
        lambda event, *args, details, **kw: seen.append((event, args, details, kw)),
        args=[1],
        kwargs={"k": 2},
    )
    n.register(nt.Notifier.ANY, lambda event, details: seen.append(("any", event)))
    assert n.has_listeners() and len(n) == 2
    n.notify("RUNNING", {"x": 1})
    n.notify("SUCCESS", None)
    assert seen == [("any", "RUNNING"), ("RUNNING", (1,), {"x": 1}, {"k": 2}), ("any", "SUCCESS")]
    seen.clear()
    n.notify(nt.Notifier.ANY, {})  # '*' itself never triggers
    assert seen == []


def test_each_listener_gets_its_own_details_copy():
    n = nt.Notifier()
    seen = []

    def mutate(event, details):
        details["touched"] = True

    n.register("E", mutate)
    n.register("E", lambda event, details: seen.append(dict(details)))
    original = {"a": 1}
    n.notify("E", original)
    assert original == {"a": 1} and seen == [{"a": 1}]


def test_details_filter_and_duplicates():
    n = nt.Notifier()
    seen = []

    def cb(event, details):
        seen.append(details["v"])

    def only_odd(details):
        return details["v"] % 2

    n.register("E", cb, details_filter=only_odd)
    n.register("E", cb)  # same callback, different filter: allowed
    with pytest.raises(ValueError, match="already registered"):
        n.register("E", cb, details_filter=only_odd)
    with pytest.raises(ValueError, match="must be callable"):
        n.register("E", 1)
    with pytest.raises(ValueError, match="must be callable"):
        n.register("E", cb, details_filter=1)
    with pytest.raises(KeyError, match="Reserved key"):
        n.register("F", cb, kwargs={"details": 1})
    n.notify("E", {"v": 1})
    n.notify("E", {"v": 2})
    assert seen == [1, 1, 2]
    assert n.is_registered("E", cb) and n.is_registered("E", cb, details_filter=only_odd)
    assert n.deregister("E", cb, details_filter=only_odd)
    assert not n.deregister("E", cb, details_filter=only_odd)
    assert [event for event, _listeners in n.listeners_iter()] == ["E"]
    assert n.deregister_event("E") == 1
    assert not n.has_listeners()


def test_bound_methods_are_equivalent():
    class Receiver:
        def __init__(self):
            self.seen = []

        def on(self, event, details):
            self.seen.append(event)

    r = Receiver()
    n = nt.Notifier()
    n.register("E", r.on)
    assert n.is_registered("E", r.on)
    n.notify("E", {})
    assert n.deregister("E", r.on) and r.seen == ["E"]


def test_listener_errors_are_logged_and_swallowed(caplog):
    n = nt.Notifier()
    seen = []

    def broken(event, details):
        raise RuntimeError("boom")

    n.register("E", broken)
    n.register("E", lambda event, details: seen.append(event))
    with caplog.at_level(logging.WARNING, logger="ferroflow.types.notifier"):
        n.notify("E", {})
    assert seen == ["E"]
    assert "Failure calling listener" in caplog.text


def test_restricted_notifier_copy_and_context_manager():
    n = nt.RestrictedNotifier(["a"])
    assert n.can_be_registered("a") and n.can_be_registered("*") and not n.can_be_registered("b")
    assert not nt.RestrictedNotifier(["a"], allow_any=False).can_be_registered("*")
    assert list(n.events_iter()) == ["a"]
    with pytest.raises(ValueError, match="Disallowed event type"):
        n.register("b", lambda event, details: None)
    seen = []
    with nt.register_deregister(n, "a", lambda event, details: seen.append(event)):
        clone = n.copy()
        n.notify("a", {})
    n.notify("a", {})
    assert seen == ["a"]
    assert len(clone) == 1 and len(n) == 0
    with nt.register_deregister(n, "a"):
        pass


def test_the_listening_flag_follows_registrations_and_copies_keep_their_own():
    """The engine's Rust lane reads ``_listening`` instead of ``_topics``: it must follow every change."""
    import copy
    import pickle

    callback = print  # (picklable)
    n = nt.Notifier()
    assert not n._listening
    n.register("a", callback)
    assert n._listening
    shallow, clone, deep = copy.copy(n), n.copy(), copy.deepcopy(n)
    assert shallow._listening is not n._listening and clone._listening is not n._listening
    assert shallow._listening and clone._listening and deep._listening
    assert n.deregister("a", callback)
    assert not n._listening and shallow._listening and clone._listening, "each copy keeps its own"
    assert len(shallow) == 1
    n.register("b", callback)
    assert n.deregister_event("b") == 1 and not n._listening
    n.register("c", callback)
    n.reset()
    assert not n._listening
    assert bool(pickle.loads(pickle.dumps(clone))._listening)


def test_a_listener_registered_by_a_running_task_sees_the_next_atoms(tmp_path):
    """The lane checks the listening flag between atoms: a listener added mid-run sees what follows."""
    from ferroflow import engines, task
    from ferroflow.patterns import linear_flow

    seen: list[str] = []

    class Subscribe(task.Task):
        def execute(self):
            ENGINE.atom_notifier.register(states.SUCCESS, lambda event, details: seen.append(details["task_name"]))

    class Noop(task.Task):
        def execute(self):
            return None

    flow = linear_flow.Flow("f").add(Noop("a"), Subscribe("s"), Noop("b"), Noop("c"))
    ENGINE = engines.load(flow, backend=f"sqlite:///{tmp_path / 'l.db'}")
    ENGINE.run()
    assert seen == ["s", "b", "c"]


# -- listeners ------------------------------------------------------------------------------------------


class FakeEngine:
    """Just the notifiers a listener needs."""

    def __init__(self, notifier_cls=nt.Notifier):
        self.notifier = notifier_cls()
        self.atom_notifier = notifier_cls()

    def emit(self):
        """The events of a run: flow RUNNING, a task and a retry, flow SUCCESS."""
        self.notifier.notify(states.RUNNING, {"flow_name": "f", "flow_uuid": "fu", "old_state": states.PENDING})
        self.atom_notifier.notify(states.RUNNING, {"retry_name": "r", "retry_uuid": "ru", "old_state": states.PENDING})
        self.atom_notifier.notify(
            states.SUCCESS, {"retry_name": "r", "retry_uuid": "ru", "old_state": states.RUNNING, "result": 1}
        )
        self.atom_notifier.notify(states.RUNNING, {"task_name": "t", "task_uuid": "tu", "old_state": states.PENDING})
        self.atom_notifier.notify(
            states.SUCCESS, {"task_name": "t", "task_uuid": "tu", "old_state": states.RUNNING, "result": 5}
        )
        self.notifier.notify(states.SUCCESS, {"flow_name": "f", "flow_uuid": "fu", "old_state": states.RUNNING})


def test_capture_listener_records_tuples():
    engine = FakeEngine()
    with capturing.CaptureListener(engine) as listener:
        engine.emit()
    assert [(kind, state) for kind, state, _details in listener.values] == [
        ("flow", "RUNNING"),
        ("retry", "RUNNING"),
        ("retry", "SUCCESS"),
        ("task", "RUNNING"),
        ("task", "SUCCESS"),
        ("flow", "SUCCESS"),
    ]
    assert listener.values[4][2]["result"] == 5
    # Deregistered on exit.
    assert not engine.notifier.has_listeners() and not engine.atom_notifier.has_listeners()


@needs_taskflow
def test_capture_listener_matches_taskflow():
    ours, theirs = FakeEngine(), FakeEngine(tf_nt.Notifier)
    kwargs = {"skip_tasks": ["x"], "capture_retry": True, "task_listen_for": [states.SUCCESS]}
    with capturing.CaptureListener(ours, **kwargs) as a, tf_capturing.CaptureListener(theirs, **kwargs) as b:
        ours.emit()
        theirs.emit()
    assert a.values == b.values


def test_text_capture_listener_and_filters():
    engine = FakeEngine()
    with capturing.TextCaptureListener(engine, skip_flows=["f"], flow_listen_for=[states.SUCCESS]) as listener:
        engine.emit()
    assert listener.values == ["r.r RUNNING", "r.r SUCCESS(1)", "t.t RUNNING", "t.t SUCCESS(5)"]
    values = []
    with capturing.TextCaptureListener(engine, capture_task=False, retry_listen_for=(), values=values):
        engine.emit()
    assert values == ["f.f RUNNING", "f.f SUCCESS"]


def test_register_is_idempotent_and_all_or_nothing():
    engine = FakeEngine()
    listener = capturing.CaptureListener(engine)
    listener.register()
    listener.register()
    assert len(engine.atom_notifier) == 2 and len(engine.notifier) == 1
    listener.deregister()
    assert len(engine.atom_notifier) == 0
    engine.atom_notifier = nt.RestrictedNotifier(["RUNNING"], allow_any=False)
    with pytest.raises(ValueError):
        base.Listener(engine, task_listen_for=["RUNNING", "SUCCESS"]).register()
    assert len(engine.atom_notifier) == 0


def test_printing_and_logging_listeners(caplog):
    engine = FakeEngine()
    out = io.StringIO()
    listener = printing.PrintingListener(engine)
    listener._file = out
    with listener:
        engine.emit()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # 2 flow + 2 task transitions (retries are not dumped)
    assert "has moved task 't' (tu) into state 'SUCCESS' from state 'RUNNING' with result '5'" in lines[2]

    with caplog.at_level(logging.DEBUG, logger="ferroflow.listeners.logging"):
        with logging_listeners.LoggingListener(engine):
            engine.emit()
    assert "has moved flow 'f' (fu) into state 'RUNNING'" in caplog.text


def test_dynamic_logging_listener_logs_failures_as_warnings(caplog):
    engine = FakeEngine()
    try:
        raise ValueError("bad")
    except ValueError:
        failed = Failure()
    with caplog.at_level(logging.DEBUG, logger="ferroflow.listeners.logging"):
        with logging_listeners.DynamicLoggingListener(engine):
            engine.atom_notifier.notify(
                states.FAILURE, {"task_name": "t", "task_uuid": "tu", "old_state": states.RUNNING, "result": failed}
            )
            engine.notifier.notify(states.REVERTED, {"flow_name": "f", "flow_uuid": "fu", "old_state": states.RUNNING})
            engine.emit()
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][0] == logging.WARNING and "Task 't' (tu) transitioned into state 'FAILURE'" in records[0][1]
    assert caplog.records[0].exc_info is not None
    assert records[1][0] == logging.WARNING
    assert (
        logging.DEBUG,
        "Task 't' (tu) transitioned into state 'SUCCESS' from state 'RUNNING' with result '5'",
    ) in records
    assert base.FINISH_STATES == (states.FAILURE, states.SUCCESS, states.REVERTED, states.REVERT_FAILURE)
