"""Resumption on every durable backend: every saved state, set up by a real run, then resumed.

Each test runs once per durable backend (the ``durable_backend`` fixture: a SQLite file, a dir://
directory). It leaves a flow detail in a real store through a real run — finished, suspended,
failed, or killed by a task calling ``os._exit`` in a child process (no cleanup at all, as a
SIGKILL) — then rebuilds the flow with ``engines.load_from_detail`` in a fresh engine and checks
what ran, what was reused, the saved atom and flow states and what the run re-raised (DESIGN.md,
"Resumption semantics"). Tasks journal every call to a file, so runs in other processes are seen
too; a task's result is ``"<name>@<generation>"``, telling a reused result from a recomputed one.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import pytest

import resume_factories as rf
from ferroflow import engines, states
from ferroflow.persistence import backends

SUCCESS, PENDING, RUNNING, REVERTED = states.SUCCESS, states.PENDING, states.RUNNING, states.REVERTED
EXECUTE, REVERT = states.EXECUTE, states.REVERT
DONE = {name: (SUCCESS, EXECUTE) for name in "abcd"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def db(tmp_path: Path, durable_backend) -> str:
    """The store's URI (a SQLite file or a dir:// directory under the test's directory)."""
    return durable_backend.uri(tmp_path)


@pytest.fixture
def fresh_backend(db: str):
    """Opens a new backend on the same store each call (as a new process would); all closed after."""
    opened = []

    def make():
        backend = backends.fetch(db)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def _load_new(workdir: Path, fresh_backend, factory_kwargs: dict | None = None, **options):
    """Loads a new `rf.chain` flow in this process (not run yet)."""
    factory_kwargs = {"workdir": str(workdir), **(factory_kwargs or {})}
    return engines.load_from_factory(rf.chain, factory_kwargs=factory_kwargs, backend=fresh_backend(), **options)


def _resume(fresh_backend, flow_uuid: str, **options):
    """A fresh engine (and its own backend) for the saved flow detail, rebuilt from its factory."""
    backend = fresh_backend()
    return engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend, **options), backend


def _suspend_after(engine, atom_name: str) -> None:
    """Asks ``engine`` to suspend once ``atom_name`` succeeded (from a listener, as users do)."""

    def on_success(event_type, details):
        if details.get("task_name") == atom_name:
            engine.suspend()

    engine.atom_notifier.register(SUCCESS, on_success)


# -- atom states -------------------------------------------------------------------------------


def test_atom_added_to_the_factory_gets_a_new_detail_and_runs(workdir, fresh_backend, monkeypatch) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend)
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@1", "execute c b=b@1"]

    # The code changed: the factory now appends "d" (requiring c's result).
    monkeypatch.setattr(rf, "chain", functools.partial(rf.chain, names=["a", "b", "c", "d"]))
    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == ["execute d c=c@1"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == DONE
    assert rf.atom_results(fd) == {"a": "a@1", "b": "b@1", "c": "c@1", "d": "d@2"}


def test_success_flow_reloaded_runs_nothing_and_offers_saved_results(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend)
    engine.run()
    rf.take_journal(workdir)

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, engine.storage.flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == []
    assert resumed.storage.fetch_all() == {"a": "a@1", "b": "b@1", "c": "c@1"}
    fd = rf.saved(backend, engine.storage.flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == {name: (SUCCESS, EXECUTE) for name in "abc"}


def test_pending_atoms_run_and_successful_ones_are_reused(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend)
    _suspend_after(engine, "a")
    engine.run()  # suspended: returns without raising
    flow_uuid = engine.storage.flow_uuid
    assert rf.take_journal(workdir) == ["execute a"]
    fd = rf.saved(fresh_backend(), flow_uuid)
    assert fd.state == states.SUSPENDED
    assert rf.atom_states(fd) == {"a": (SUCCESS, EXECUTE), "b": (PENDING, EXECUTE), "c": (PENDING, EXECUTE)}

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    # a is not run again and its saved result (generation 1) feeds b.
    assert rf.take_journal(workdir) == ["execute b a=a@1", "execute c b=b@2"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_results(fd) == {"a": "a@1", "b": "b@2", "c": "c@2"}


def test_atom_running_when_its_process_died_runs_again(workdir, db, fresh_backend) -> None:
    rf.configure(workdir, generation=1, exit=["b"])
    status, output, flow_uuid = rf.run_child(db, workdir)
    assert status == rf.CRASH_STATUS, output
    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@1"]
    fd = rf.saved(fresh_backend(), flow_uuid)
    assert fd.state == RUNNING
    assert rf.atom_states(fd) == {"a": (SUCCESS, EXECUTE), "b": (RUNNING, EXECUTE), "c": (PENDING, EXECUTE)}

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == ["execute b a=a@1", "execute c b=b@2"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == {name: (SUCCESS, EXECUTE) for name in "abc"}
    assert rf.atom_results(fd) == {"a": "a@1", "b": "b@2", "c": "c@2"}


def test_unresolved_failure_is_resolved_again_by_reverting(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1, fail=["c"])
    engine = _load_new(workdir, fresh_backend, never_resolve=True)
    with pytest.raises(rf.Boom, match="c failed"):
        engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    fd = rf.saved(fresh_backend(), flow_uuid)
    assert fd.state == states.FAILURE
    assert rf.atom_states(fd) == {
        "a": (SUCCESS, EXECUTE),
        "b": (SUCCESS, EXECUTE),
        "c": (states.FAILURE, EXECUTE),
    }

    rf.configure(workdir, generation=2)  # c would now succeed: it must not be run again
    resumed, backend = _resume(fresh_backend, flow_uuid)
    with pytest.raises(Exception) as info:
        resumed.run()

    assert rf.raised_failures(info.value) == [("Boom", "c failed")]
    assert rf.take_journal(workdir) == ["revert c", "revert b", "revert a"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == REVERTED
    assert rf.atom_states(fd) == {name: (REVERTED, REVERT) for name in "abc"}


def test_revert_interrupted_by_a_crash_continues_in_reverse_order(workdir, db, fresh_backend) -> None:
    rf.configure(workdir, generation=1, fail=["c"], revert_exit=["b"])
    status, output, flow_uuid = rf.run_child(db, workdir)
    assert status == rf.CRASH_STATUS, output
    assert rf.take_journal(workdir) == [
        "execute a",
        "execute b a=a@1",
        "execute c b=b@1",
        "revert c",
        "revert b",
    ]
    fd = rf.saved(fresh_backend(), flow_uuid)
    assert fd.state == RUNNING
    assert rf.atom_states(fd) == {
        "a": (SUCCESS, REVERT),
        "b": (states.REVERTING, REVERT),
        "c": (REVERTED, REVERT),
    }

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    with pytest.raises(Exception) as info:
        resumed.run()

    # The original failure is re-raised; c (already reverted) is not reverted again.
    assert rf.raised_failures(info.value) == [("Boom", "c failed")]
    assert rf.take_journal(workdir) == ["revert b", "revert a"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == REVERTED
    assert rf.atom_states(fd) == {name: (REVERTED, REVERT) for name in "abc"}


def test_reverted_flow_restarts_from_the_beginning(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1, fail=["c"])
    engine = _load_new(workdir, fresh_backend)
    with pytest.raises(rf.Boom):
        engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert rf.take_journal(workdir)[-3:] == ["revert c", "revert b", "revert a"]
    assert rf.saved(fresh_backend(), flow_uuid).state == REVERTED

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@2", "execute c b=b@2"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_results(fd) == {"a": "a@2", "b": "b@2", "c": "c@2"}
    assert all(ad.failure is None and ad.revert_results is None for ad in fd)


def test_revert_failure_stays_failed_and_is_never_silently_rerun(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1, fail=["c"], revert_fail=["b"])
    engine = _load_new(workdir, fresh_backend)
    with pytest.raises(Exception) as info:
        engine.run()
    flow_uuid = engine.storage.flow_uuid
    # As TaskFlow: the failed revert stopped the flow, so it is what is raised.
    expected = [("RevertBoom", "b revert failed")]
    assert rf.raised_failures(info.value) == expected
    assert rf.take_journal(workdir)[-2:] == ["revert c", "revert b"]
    first = rf.saved(fresh_backend(), flow_uuid)
    assert first.state == states.FAILURE
    assert rf.atom_states(first)["b"] == (states.REVERT_FAILURE, REVERT)

    rf.configure(workdir, generation=2)  # nothing would fail now: any re-run would succeed
    for _ in range(2):  # and not on a later load either
        resumed, backend = _resume(fresh_backend, flow_uuid)
        with pytest.raises(Exception) as info:
            resumed.run()
        assert rf.raised_failures(info.value) == expected
        assert rf.take_journal(workdir) == []
        fd = rf.saved(backend, flow_uuid)
        assert fd.state == states.FAILURE
        assert rf.atom_states(fd) == rf.atom_states(first)
        assert rf.atom_results(fd) == {"a": "a@1", "b": "b@1", "c": None}


def test_atom_ignored_by_a_decider_is_skipped_on_resume(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1)
    engine = engines.load_from_factory(rf.decided, factory_kwargs={"workdir": str(workdir)}, backend=fresh_backend())
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert sorted(rf.take_journal(workdir)) == ["execute a", "execute c"], "the decider refused b"
    assert rf.atom_states(rf.saved(fresh_backend(), flow_uuid))["b"] == (states.IGNORE, states.IGNORE)

    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == []
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd)["b"] == (states.IGNORE, states.IGNORE)


def test_saved_ignore_state_is_skipped_on_resume(workdir, fresh_backend) -> None:
    """IGNORE as a TaskFlow engine saves it (its deciders), in a logbook a ferroflow engine resumes."""
    rf.configure(workdir, generation=1)
    engine = engines.load_from_factory(rf.decided, factory_kwargs={"workdir": str(workdir)}, backend=fresh_backend())
    _suspend_after(engine, "a")
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert sorted(rf.take_journal(workdir)) == ["execute a", "execute c"]
    backend = fresh_backend()
    b_detail = next(ad for ad in rf.saved(backend, flow_uuid) if ad.name == "b")
    assert b_detail.state == PENDING
    b_detail.state, b_detail.intention = states.IGNORE, states.IGNORE
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_atom_details(b_detail)

    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == []
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == {
        "a": (SUCCESS, EXECUTE),
        "b": (states.IGNORE, states.IGNORE),
        "c": (SUCCESS, EXECUTE),
    }


def test_detail_of_a_removed_atom_is_kept_as_an_orphan(workdir, fresh_backend, monkeypatch) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend)
    _suspend_after(engine, "b")
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@1"]
    before = {ad.name: ad.to_dict() for ad in rf.saved(fresh_backend(), flow_uuid)}

    # The code changed: b is gone, c now requires a.
    monkeypatch.setattr(rf, "chain", functools.partial(rf.chain, names=["a", "c"]))
    rf.configure(workdir, generation=2)
    # Still there, untouched, after the resumed run and after a second load of the finished flow.
    for expected_journal in (["execute c a=a@1"], []):
        resumed, backend = _resume(fresh_backend, flow_uuid)
        resumed.run()
        assert rf.take_journal(workdir) == expected_journal
        fd = rf.saved(backend, flow_uuid)
        assert fd.state == SUCCESS
        orphan = next(ad for ad in fd if ad.name == "b")
        assert orphan.to_dict() == before["b"]
        assert rf.atom_results(fd) == {"a": "a@1", "b": "b@1", "c": "c@2"}


# -- flow states -------------------------------------------------------------------------------


def test_suspended_flow_continues_with_only_the_remaining_atoms(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend, {"names": ["a", "b", "c", "d"]})
    run = engine.run_iter()
    seen, analyzed = [], 0
    with contextlib.suppress(StopIteration):
        state = next(run)
        while True:
            seen.append(state)
            suspend = False
            if state == states.ANALYZING:
                analyzed += 1
                suspend = analyzed == 2
            state = run.send(suspend)
    flow_uuid = engine.storage.flow_uuid
    assert seen[-1] == states.SUSPENDED
    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@1"]
    fd = rf.saved(fresh_backend(), flow_uuid)
    assert fd.state == states.SUSPENDED
    assert rf.atom_states(fd) == {
        "a": (SUCCESS, EXECUTE),
        "b": (SUCCESS, EXECUTE),
        "c": (PENDING, EXECUTE),
        "d": (PENDING, EXECUTE),
    }

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == ["execute c b=b@1", "execute d c=c@2"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_results(fd) == {"a": "a@1", "b": "b@1", "c": "c@2", "d": "d@2"}


def test_store_values_survive_a_crash_without_being_given_again(workdir, db, fresh_backend) -> None:
    rf.configure(workdir, generation=1, exit=["a"])
    status, output, flow_uuid = rf.run_child(
        db, workdir, factory_kwargs={"names": ["a", "b"], "store_names": ["x"]}, store={"x": 41}
    )
    assert status == rf.CRASH_STATUS, output
    assert rf.take_journal(workdir) == ["execute a"]

    rf.configure(workdir, generation=2)
    resumed, backend = _resume(fresh_backend, flow_uuid)  # no store= given
    resumed.run()

    assert rf.take_journal(workdir) == ["execute a", "execute b a=a@2 x=41"]
    assert resumed.storage.fetch("x") == 41
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == {"a": (SUCCESS, EXECUTE), "b": (SUCCESS, EXECUTE)}


def test_store_values_survive_a_suspension(workdir, fresh_backend) -> None:
    rf.configure(workdir, generation=1)
    engine = _load_new(workdir, fresh_backend, {"names": ["a", "b"], "store_names": ["x"]}, store={"x": "kept"})
    _suspend_after(engine, "a")
    engine.run()
    assert rf.take_journal(workdir) == ["execute a"]

    resumed, backend = _resume(fresh_backend, engine.storage.flow_uuid)
    resumed.run()

    assert rf.take_journal(workdir) == ["execute b a=a@1 x=kept"]
    assert rf.saved(backend, engine.storage.flow_uuid).state == SUCCESS
