"""Ownership of a flow detail on the SQLite backend: an engine running a flow holds a lease in the
store, so a second engine — in another process — refuses to run the same flow until the lease is
released, has expired, or belongs to a process of this host that no longer exists."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import resume_factories as rf
from ferroflow import engines, exceptions, states
from ferroflow.persistence import backends


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flows.db"


@pytest.fixture
def backend(db: Path):
    be = backends.fetch(f"sqlite:///{db}")
    yield be
    be.close()


@pytest.fixture
def blocked_child(tmp_path: Path, db: Path):
    """A child process running a new `rf.chain` flow, blocked inside atom ``b`` (a holds SUCCESS).

    Yields ``(process, flow uuid)``; ``release_b(tmp_path)`` lets it finish. Killed if still alive.
    """
    rf.configure(tmp_path, block=["b"])
    child = subprocess.Popen(
        rf.child_command(db, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "blocking-b").exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"child did not reach b: {child.communicate()}")
            time.sleep(0.01)
        yield child, (tmp_path / rf.FLOW_UUID).read_text()
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def release_b(workdir: Path) -> None:
    (workdir / "release-b").touch()


def _lease(backend, flow_uuid: str):
    with contextlib.closing(backend.get_connection()) as conn:
        return conn.get_lease(flow_uuid)


def _snapshot(backend, flow_uuid: str):
    fd = rf.saved(backend, flow_uuid)
    return fd.state, sorted((ad.name, ad.state, ad.intention, ad.results) for ad in fd)


def _resume(backend, flow_uuid: str):
    return engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend)


def test_flow_run_by_a_live_process_is_refused_until_that_process_finishes(
    tmp_path, backend, blocked_child, monkeypatch
) -> None:
    child, flow_uuid = blocked_child
    owner, expiry = _lease(backend, flow_uuid)
    assert owner.startswith(f"{socket.gethostname()}:{child.pid}:")
    assert expiry > time.time()
    before = _snapshot(backend, flow_uuid)
    assert before[0] == states.RUNNING

    second = _resume(backend, flow_uuid)
    with pytest.raises(exceptions.ExecutionFailure) as info:
        second.run()

    assert owner in str(info.value), "the refusal names the engine that owns the flow"
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1"], "only the owner ran anything"
    assert _snapshot(backend, flow_uuid) == before, "the refused engine wrote nothing"
    assert _lease(backend, flow_uuid)[0] == owner

    release_b(tmp_path)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, (out, err)
    assert "done SUCCESS" in out
    assert _lease(backend, flow_uuid) is None, "a normal exit releases the lease"
    assert rf.take_journal(tmp_path) == ["execute c b=b@1"]

    # Now another engine may run it (with an atom added since, so that it has work to do).
    monkeypatch.setattr(rf, "chain", functools.partial(rf.chain, names=["a", "b", "c", "d"]))
    third = _resume(backend, flow_uuid)
    third.run()
    assert rf.take_journal(tmp_path) == ["execute d c=c@1"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    assert _lease(backend, flow_uuid) is None


def test_lease_of_a_sigkilled_process_of_this_host_is_taken_over_at_once(
    tmp_path, backend, blocked_child
) -> None:
    child, flow_uuid = blocked_child
    owner, expiry = _lease(backend, flow_uuid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)  # reaped: its pid no longer exists
    assert child.returncode == -signal.SIGKILL
    assert _lease(backend, flow_uuid) == (owner, expiry), "the dead engine could not release its lease"
    assert expiry > time.time() + 10, "still far from expiring"
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1"]

    rf.configure(tmp_path, generation=2)
    started = time.monotonic()
    _resume(backend, flow_uuid).run()

    assert time.monotonic() - started < 10, "did not wait for the lease to expire"
    assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@2"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    assert _lease(backend, flow_uuid) is None


@pytest.mark.parametrize(
    "owner",
    [f"{socket.gethostname()}:{os.getpid()}:other-engine", "another-host.example:1:remote-engine"],
    ids=["live-local-process", "other-host"],
)
def test_unexpired_lease_of_another_engine_is_refused(tmp_path, backend, owner) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = engine.storage.flow_uuid
    with contextlib.closing(backend.get_connection()) as conn:
        conn.acquire_lease(flow_uuid, owner, 60)

    with pytest.raises(exceptions.ExecutionFailure, match=owner):
        engine.run()

    assert rf.take_journal(tmp_path) == []
    assert _lease(backend, flow_uuid)[0] == owner, "the holder keeps its lease"
    assert {ad.state for ad in rf.saved(backend, flow_uuid)} <= {states.PENDING}, "the refused engine wrote nothing"


def test_expired_lease_is_taken_and_its_old_owner_cannot_renew_it(tmp_path, backend) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = engine.storage.flow_uuid
    stale = f"{socket.gethostname()}:{os.getpid()}:stalled-engine"  # alive, but stopped renewing
    with contextlib.closing(backend.get_connection()) as conn:
        conn.acquire_lease(flow_uuid, stale, 0.2)
    time.sleep(0.3)

    engine.run()

    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    with contextlib.closing(backend.get_connection()) as conn, pytest.raises(exceptions.InvalidState):
        conn.renew_lease(flow_uuid, stale, 30)


def test_engine_lease_expires_when_not_renewed_and_another_engine_takes_the_flow(tmp_path, backend) -> None:
    """``lease_seconds`` bounds how long a stalled owner keeps a flow (suspended mid-step here)."""
    rf.configure(tmp_path)
    first = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = first.storage.flow_uuid
    first._persist.lease_seconds = 0.2
    steps = first.run_iter()
    next(steps)  # the first engine now owns the flow, then stalls (never resumed)
    owner = _lease(backend, flow_uuid)[0]
    second = _resume(backend, flow_uuid)
    with pytest.raises(exceptions.ExecutionFailure, match=owner):
        second.run()
    time.sleep(0.3)

    third = _resume(backend, flow_uuid)
    third.run()

    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS

    # The stalled engine wakes up: it finds its lease lost and stops without running anything.
    with pytest.raises(exceptions.InvalidState, match="lease"):
        list(steps)
    assert rf.take_journal(tmp_path) == []
    assert rf.atom_states(rf.saved(backend, flow_uuid)) == {
        name: (states.SUCCESS, states.EXECUTE) for name in "abc"
    }
