"""Ownership of a flow detail, on every durable backend: an engine running a flow holds a lease with
a fencing epoch, renewed by a heartbeat that does not depend on rounds. A second engine (another
process) refuses to run the flow until the lease is released, expires, or belongs to a process of
this host that no longer exists; an owner that lost its lease (paused past it, then taken over)
writes nothing more and stops with `LeaseLost`."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import resume_factories as rf
from ferroflow import engines, exceptions, migrations, states
from ferroflow.persistence import backends

STORES = ["sqlite", "dir"]


@pytest.fixture(params=STORES)
def uri(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    return f"dir:///{tmp_path / 'flows'}"


@pytest.fixture
def backend(uri: str):
    be = backends.fetch(uri)
    with contextlib.closing(be.get_connection()) as conn:
        conn.upgrade()
    yield be
    be.close()


def start_child(tmp_path: Path, uri: str, block: str = "b", **options) -> tuple[subprocess.Popen, str]:
    """A child process running a new `rf.chain` flow, blocked inside atom ``block``."""
    rf.configure(tmp_path, block=[block])
    child = subprocess.Popen(
        rf.child_command(uri, tmp_path, options=options), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / f"blocking-{block}").exists():
        if child.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"child did not reach {block}: {child.communicate()}")
        time.sleep(0.01)
    return child, (tmp_path / rf.FLOW_UUID).read_text()


@pytest.fixture
def children():
    started: list[subprocess.Popen] = []
    yield started
    for child in started:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGCONT)
            child.kill()
        child.communicate()


def release(workdir: Path, name: str = "b") -> None:
    (workdir / f"release-{name}").touch()


def _lease(backend, flow_uuid: str):
    with contextlib.closing(backend.get_connection()) as conn:
        return conn.get_lease(flow_uuid)


def _snapshot(backend, flow_uuid: str):
    fd = rf.saved(backend, flow_uuid)
    return fd.state, sorted((ad.name, ad.state, ad.intention, ad.results) for ad in fd)


def _resume(backend, flow_uuid: str, **options):
    return engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend, **options)


def test_flow_run_by_a_live_process_is_refused_until_that_process_finishes(
    tmp_path, uri, backend, children, monkeypatch
) -> None:
    child, flow_uuid = start_child(tmp_path, uri)
    children.append(child)
    owner, expiry, epoch = _lease(backend, flow_uuid)
    assert owner.startswith(f"{socket.gethostname()}:{child.pid}:")
    assert expiry > time.time()
    assert epoch >= 1
    before = _snapshot(backend, flow_uuid)
    assert before[0] == states.RUNNING

    second = _resume(backend, flow_uuid)
    with pytest.raises(exceptions.ExecutionFailure) as info:
        second.run()

    assert owner in str(info.value), "the refusal names the engine that owns the flow"
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1"], "only the owner ran anything"
    assert _snapshot(backend, flow_uuid) == before, "the refused engine wrote nothing"
    assert _lease(backend, flow_uuid)[0] == owner

    release(tmp_path)
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


def test_lease_of_a_sigkilled_process_of_this_host_is_taken_over_at_once(tmp_path, uri, backend, children) -> None:
    child, flow_uuid = start_child(tmp_path, uri)
    children.append(child)
    owner, expiry, _ = _lease(backend, flow_uuid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)  # reaped: its pid no longer exists
    assert child.returncode == -signal.SIGKILL
    assert _lease(backend, flow_uuid)[:2] == (owner, expiry), "the dead engine could not release its lease"
    assert expiry > time.time() + 10, "still far from expiring"
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1"]

    rf.configure(tmp_path, generation=2)
    started = time.monotonic()
    _resume(backend, flow_uuid).run()

    assert time.monotonic() - started < 10, "did not wait for the lease to expire"
    assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@2"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    assert _lease(backend, flow_uuid) is None


def test_a_long_atom_keeps_its_lease_through_the_heartbeat(tmp_path, uri, backend, children) -> None:
    """A 2 s lease and an atom of three times that: a resume tried meanwhile is refused, and the
    atom runs once (issue: the lease was renewed only between rounds)."""
    child, flow_uuid = start_child(tmp_path, uri, lease_seconds=2)
    children.append(child)
    owner, _, epoch = _lease(backend, flow_uuid)
    for _ in range(3):
        time.sleep(2.0)
        with pytest.raises(exceptions.InvalidState, match=owner):
            _resume(backend, flow_uuid).run()
        held = _lease(backend, flow_uuid)
        assert held[0] == owner and held[2] == epoch, "the same owner, at the same epoch"
        assert held[1] > time.time(), "renewed while the atom runs"

    release(tmp_path)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, (out, err)
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"], "b ran once"
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS


@pytest.mark.parametrize("engine", ["serial", "parallel"])
def test_a_paused_owner_that_was_taken_over_writes_nothing_when_it_wakes(
    tmp_path, uri, backend, children, engine
) -> None:
    """SIGSTOP past the lease, a takeover by another process, then SIGCONT: the paused owner's
    writes are fenced off and it stops with LeaseLost."""
    child, flow_uuid = start_child(tmp_path, uri, lease_seconds=1, engine=engine)
    children.append(child)
    old_owner, _, old_epoch = _lease(backend, flow_uuid)
    os.kill(child.pid, signal.SIGSTOP)
    time.sleep(1.5)  # its lease ends while it cannot renew it
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1"]

    rf.configure(tmp_path, generation=2)
    taker = subprocess.run(
        [*rf.child_command(uri, tmp_path), "--resume", flow_uuid], capture_output=True, text=True, timeout=60
    )
    assert taker.returncode == 0, taker
    assert "done SUCCESS" in taker.stdout
    assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@2"]
    after_takeover = _snapshot(backend, flow_uuid)
    assert after_takeover[0] == states.SUCCESS

    release(tmp_path)  # its atom b returns as soon as it runs again
    os.kill(child.pid, signal.SIGCONT)
    out, err = child.communicate(timeout=30)

    assert child.returncode == 1, (out, err)
    assert out.startswith("raised LeaseLost"), (out, err)
    assert old_owner in out
    assert rf.take_journal(tmp_path) == [], "the old owner started nothing after it woke"
    assert _snapshot(backend, flow_uuid) == after_takeover, "and wrote nothing"
    lease = _lease(backend, flow_uuid)
    assert lease is None or lease[2] > old_epoch


def test_unexpired_lease_of_another_engine_is_refused(tmp_path, backend) -> None:
    for owner in (f"{socket.gethostname()}:{os.getpid()}:other-engine", "another-host.example:1:remote-engine"):
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


def test_expired_lease_is_taken_and_its_old_owner_can_neither_renew_nor_write(tmp_path, backend) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = engine.storage.flow_uuid
    stale = f"{socket.gethostname()}:{os.getpid()}:stalled-engine"  # alive, but stopped renewing
    with contextlib.closing(backend.get_connection()) as conn:
        stale_epoch = conn.acquire_lease(flow_uuid, stale, 0.2)
    time.sleep(0.3)

    engine.run()

    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == states.SUCCESS
    with contextlib.closing(backend.get_connection()) as conn:
        with pytest.raises(exceptions.LeaseLost, match=stale):
            conn.renew_lease(flow_uuid, stale, stale_epoch, 30)
        # A write fenced with the stale owner's epoch is refused whole.
        conn.fence((flow_uuid, stale, stale_epoch))
        ad = fd.find_by_name("a") if hasattr(fd, "find_by_name") else next(a for a in fd if a.name == "a")
        ad.state = states.FAILURE
        with pytest.raises(exceptions.LeaseLost):
            conn.update_atom_details(ad) if not hasattr(conn, "apply") else conn.apply(atom_updates=[(ad, ("state",))])
    assert rf.atom_states(rf.saved(backend, flow_uuid))["a"] == (states.SUCCESS, states.EXECUTE)


def test_an_engine_whose_lease_expires_finds_it_lost_and_stops(tmp_path, backend) -> None:
    """A stalled engine (suspended mid-run here, so its heartbeat keeps nothing alive once the
    lease is given short and the heartbeat is stopped) whose lease was taken stops with LeaseLost."""
    rf.configure(tmp_path)
    first = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend, lease_seconds=0.3)
    flow_uuid = first.storage.flow_uuid
    steps = first.run_iter()
    next(steps)  # the first engine now owns the flow
    owner = _lease(backend, flow_uuid)[0]
    second = _resume(backend, flow_uuid)
    with pytest.raises(exceptions.ExecutionFailure, match=owner):
        second.run()
    # Stall it: its heartbeat stops renewing (as a paused process's would).
    from ferroflow.persistence import ownership

    ownership._HEARTBEAT.discard(first._persist.lease)
    time.sleep(0.45)

    third = _resume(backend, flow_uuid)
    third.run()
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS

    # The stalled engine goes on: its next write is refused and it runs nothing.
    with pytest.raises(exceptions.LeaseLost, match="lease"):
        list(steps)
    assert rf.take_journal(tmp_path) == []
    assert rf.atom_states(rf.saved(backend, flow_uuid)) == {name: (states.SUCCESS, states.EXECUTE) for name in "abc"}


def test_a_refused_prepare_releases_the_lease(tmp_path, backend) -> None:
    """A resume refused by a version policy leaves no lease behind (another host is not blocked)."""
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = engine.storage.flow_uuid
    engine.run()
    rf.take_journal(tmp_path)

    flow = rf.chain(str(tmp_path))
    for atom in flow:
        atom.version = "2.0"
    refused = engines.load(flow, flow_detail=rf.saved(backend, flow_uuid), backend=backend, on_version_change="fail")
    with pytest.raises(migrations.VersionMismatch):
        refused.compile()
        refused.prepare()
    assert _lease(backend, flow_uuid) is None
    assert rf.take_journal(tmp_path) == []

    refused_migration = engines.load(
        rf.chain(str(tmp_path)),
        flow_detail=rf.saved(backend, flow_uuid),
        backend=backend,
        migrations=[migrations.Rename("nowhere", "a")],
    )
    refused_migration.compile()
    with pytest.raises(migrations.MigrationError):
        refused_migration.prepare()
    assert _lease(backend, flow_uuid) is None


def test_sqlite_reads_the_flow_row_with_the_lease_and_never_serves_it_stale(tmp_path) -> None:
    """Taking a lease on SQLite reads the flow's row in the same statement, for the engine's
    prepare to use instead of reading it again: once, and never after a write changed it."""
    backend = backends.fetch(f"sqlite:///{tmp_path / 'flows.db'}")
    engine = engines.load(rf.chain(tmp_path), backend=backend)
    flow_uuid = engine.storage.flow_uuid
    with contextlib.closing(backend.get_connection()) as conn:
        conn.acquire_lease(flow_uuid, "me", 30.0)
        assert conn.get_flow_details(flow_uuid, lazy=True).state is None  # (saved before any run)
        conn.acquire_lease(flow_uuid, "me", 30.0)
        conn.fence((flow_uuid, "me", 1))
        conn.apply(flow_state=(flow_uuid, states.RUNNING))  # a write drops the row read with the lease
        assert conn.get_flow_details(flow_uuid, lazy=True).state == states.RUNNING
        conn.acquire_lease(flow_uuid, "me", 30.0)
        with contextlib.closing(backend.get_connection()) as other:
            other.apply(flow_state=(flow_uuid, states.SUSPENDED))
        # Only the next lazy read of that same flow takes it (a full read always reads the store).
        assert conn.get_flow_details(flow_uuid).state == states.SUSPENDED
        assert conn.get_flow_details(flow_uuid, lazy=True).state == states.SUSPENDED
    backend.close()


def test_sqlite_prepare_takes_the_flow_row_read_with_the_lease(tmp_path, monkeypatch) -> None:
    """An engine's prepare on SQLite reads its flow's row once: with the lease."""
    from ferroflow.persistence.backends import impl_sqlite

    backend = backends.fetch(f"sqlite:///{tmp_path / 'flows.db'}")
    first = engines.load(rf.chain(tmp_path), backend=backend)
    engine = engines.load(rf.chain(tmp_path), flow_detail=first._flow_detail, backend=backend)
    flow_uuid = engine.storage.flow_uuid
    engine.compile()
    reads = []
    read_row = impl_sqlite.SQLiteConnection._flow_row
    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "_flow_row", lambda *a: reads.append(a[2]) or read_row(*a))
    engine.prepare()
    assert reads == [] and _lease(backend, flow_uuid)[0] == engine._persist.owner
    engine._persist.release()
    backend.close()


@pytest.mark.parametrize("durability", ["", "?durability=batch"])
def test_sqlite_gives_the_lease_up_with_the_runs_final_state(tmp_path, monkeypatch, durability: str) -> None:
    """On SQLite a run's last write carries its release: the final state and the lease given up
    commit together, not as a second write. With a listener on the flow, the lease is still held
    while it is told of the final state, and given up after."""
    from ferroflow.persistence.backends import impl_sqlite

    backend = backends.fetch(f"sqlite:///{tmp_path / 'flows.db'}{durability}")
    releases: list[str] = []
    release = impl_sqlite.SQLiteConnection.release_lease
    monkeypatch.setattr(
        impl_sqlite.SQLiteConnection,
        "release_lease",
        lambda conn, flow, owner: releases.append(flow) or release(conn, flow, owner),
    )
    engine = engines.load(rf.chain(tmp_path), backend=backend)
    flow_uuid = engine.storage.flow_uuid
    engine.run()
    assert releases == [] and _lease(backend, flow_uuid) is None
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    assert engine._persist.lease.epoch is None  # (forgotten here too: nothing left to renew)

    watched = engines.load(rf.chain(tmp_path), backend=backend)
    seen = []
    watched.notifier.register(states.SUCCESS, lambda state, details: seen.append(_lease(backend, details["flow_uuid"])))
    watched.run()
    assert [holder for holder, _, _ in seen] == [watched._persist.owner]
    assert releases == [watched.storage.flow_uuid] and _lease(backend, watched.storage.flow_uuid) is None
    backend.close()


def test_sqlite_final_state_of_an_owner_that_lost_its_lease_is_refused(tmp_path, monkeypatch) -> None:
    """The write that ends a run and gives the lease up checks the lease first: an owner that lost
    it writes neither its final state nor the release, and the new holder keeps the flow."""
    from ferroflow.engines import persist

    backend = backends.fetch(f"sqlite:///{tmp_path / 'flows.db'}")
    engine = engines.load(rf.chain(tmp_path), backend=backend)
    flow_uuid = engine.storage.flow_uuid
    save = persist.Persister.save_flow_state
    asked = []

    def taken_over_first(persister, engine, state, release=False):
        if state == states.SUCCESS:
            asked.append(release)
            with contextlib.closing(backend.get_connection()) as conn:
                conn.release_lease(flow_uuid, persister.owner)
                conn.acquire_lease(flow_uuid, "another-host.example:1:thief", 60)
        return save(persister, engine, state, release)

    monkeypatch.setattr(persist.Persister, "save_flow_state", taken_over_first)
    with pytest.raises(exceptions.LeaseLost, match="thief"):
        engine.run()
    assert asked == [True]
    assert rf.saved(backend, flow_uuid).state == states.RUNNING
    assert _lease(backend, flow_uuid)[0] == "another-host.example:1:thief"
    backend.close()


def test_memory_backend_has_the_same_ownership_in_process(tmp_path) -> None:
    backend = backends.fetch("memory://")
    rf.configure(tmp_path, block=["b"])
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    flow_uuid = engine.storage.flow_uuid
    import threading

    runner = threading.Thread(target=engine.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "blocking-b").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(exceptions.InvalidState, match="owned by"):
            _resume(backend, flow_uuid).run()
    finally:
        release(tmp_path)
        runner.join(30)
    assert rf.saved(backend, flow_uuid).state == states.SUCCESS
    assert _lease(backend, flow_uuid) is None


def test_lease_seconds_is_checked_at_load(tmp_path, backend) -> None:
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(ValueError, match="lease_seconds"):
            engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend, lease_seconds=bad)


def test_the_heartbeat_can_be_reentered_while_it_holds_its_lock() -> None:
    """A collection while the heartbeat holds its lock (inside `add`) may run a dropped lease's
    finalizer, which comes back to the heartbeat (`forget_dead`): that must not deadlock."""
    import threading

    from ferroflow.persistence import ownership

    heartbeat = ownership._HEARTBEAT
    reentered = threading.Event()

    def while_held() -> None:
        with heartbeat._lock:
            heartbeat.forget_dead()
            reentered.set()

    worker = threading.Thread(target=while_held, daemon=True)
    worker.start()
    assert reentered.wait(10), "the heartbeat's lock is not re-entrant"
    worker.join(10)


def test_a_lease_given_up_with_the_runs_last_write_is_not_released_again() -> None:
    """`released` (the store gave the lease up with the final state) forgets the lease; the
    engine's `release` after it then makes no call at all."""
    from ferroflow.persistence import ownership

    calls: list[Any] = []

    class Connection:
        def acquire_lease(self, flow_uuid: str, owner: str, seconds: float) -> int:
            return 3

        def fence(self, fence: Any) -> None:
            calls.append(("fence", fence))

        def release_lease(self, flow_uuid: str, owner: str) -> None:
            calls.append(("release", flow_uuid, owner))

    lease = ownership.Lease(Connection(), "flow", 30.0, "me")
    lease.acquire()
    assert calls == [("fence", ("flow", "me", 3))]
    lease.released()
    assert calls[1:] == [("fence", None)] and not lease.held
    lease.release()
    assert calls[2:] == []
    lease.acquire()  # and it can be taken again
    lease.release()
    assert calls[2:] == [("fence", ("flow", "me", 3)), ("fence", None), ("release", "flow", "me")]
