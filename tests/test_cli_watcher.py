"""The CLI's engine watcher: what a run did, read from storage, without listening to every atom."""

from __future__ import annotations

import io

import pytest

from ferroflow import engines, states, task
from ferroflow.cli.progress import EngineWatcher, ProgressLine
from ferroflow.patterns import linear_flow


class Note(task.Task):
    def execute(self) -> int:
        return 1


class Boom(task.Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def _engine(*atoms: task.Task):
    engine = engines.load(linear_flow.Flow("watched").add(*atoms))
    engine.compile()
    engine.prepare()
    return engine


@pytest.mark.parametrize("follow_events", [False, True])
def test_watcher_sees_ran_atoms_and_the_failure(follow_events: bool) -> None:
    engine = _engine(Note("a"), Boom("b"), Note("c"))
    with EngineWatcher(engine, follow_events=follow_events) as watcher:
        with pytest.raises(RuntimeError):
            engine.run()
        watcher.collect()
        assert watcher.first_failure is not None
    assert engine.storage.get_flow_state() == states.REVERTED
    assert watcher.ran == {"a", "b"}  # c never ran
    assert watcher.first_failure[0] == "b"
    assert "boom" in str(watcher.first_failure[1])


def test_watcher_registers_no_listener_by_default() -> None:
    # A listener would make the engine publish every transition and commit completions alone.
    engine = _engine(Note("a"), Note("b"))
    seen = []
    with EngineWatcher(engine, ProgressLine("run", 2, stream=io.StringIO())) as watcher:
        seen.append(engine.atom_notifier.has_listeners())
        engine.run()
    assert seen == [False]
    assert watcher.ran == {"a", "b"} and watcher.completed == 2 and watcher.first_failure is None


def test_watcher_does_not_count_atoms_done_before() -> None:
    engine = _engine(Note("a"), Note("b"))
    engine.storage.set_atom_state("a", states.SUCCESS)
    engine.storage.save("a", 1)
    with EngineWatcher(engine) as watcher:
        engine.run()
    assert watcher.ran == {"b"}


def test_progress_line_is_refreshed_from_the_counts() -> None:
    stream = io.StringIO()
    engine = _engine(Note("a"), Note("b"), Note("c"))
    with EngineWatcher(engine, ProgressLine("run", 3, stream=stream)):
        engine.run()
    assert stream.getvalue().splitlines()[-1].startswith("run: 3/3 atoms (100%)")


def test_watchers_of_many_engines_share_their_tables_and_start_no_thread_unless_shown() -> None:
    """`ferroflow resume --all` watches an engine per flow: the code tables are made once, and a
    watcher whose progress line is off (several flows, or --no-progress) starts no poller."""
    import threading

    first, second = _engine(Note("a")), _engine(Note("b"))
    threads = threading.active_count()
    with EngineWatcher(first, ProgressLine("run", 1, stream=io.StringIO(), enabled=False)) as one:
        assert threading.active_count() == threads
        first.run()
    with EngineWatcher(second) as other:
        second.run()
    assert one._executed is other._executed and one._not_success is other._not_success
    assert one.ran == {"a"} and other.ran == {"b"}
