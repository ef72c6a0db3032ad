"""`engines.resume_many` / `Resumer`: many saved flows resumed in one go, on real store files.

Flows built alike share one build and one compilation (the factory is called once per distinct
saved record); a flow that fails or cannot be resumed does not stop the others; with
``durability=batch`` on SQLite the flows' writes are held in transactions committed on the group
bounds (`SQLiteBackend.held_writes`), and a SIGKILL mid-way loses at most the open one.
"""

from __future__ import annotations

import collections
import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import many_flows
from ferroflow import engines, exceptions
from ferroflow.persistence import backends

TESTS = Path(__file__).parent


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    journal, factory_log = tmp_path / "journal", tmp_path / "factory"
    monkeypatch.setenv(many_flows.JOURNAL_ENV, str(journal))
    monkeypatch.setenv(many_flows.FACTORY_LOG_ENV, str(factory_log))
    return journal, factory_log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _flow_states(uri: str, uuids: list[str]) -> list[str]:
    backend = backends.fetch(uri)
    try:
        with backend.get_connection() as conn:
            return [conn.get_flow_details(u).state for u in uuids]
    finally:
        backend.close()


@pytest.mark.parametrize("query", ["", "?durability=batch&batch_transitions=7"])
def test_every_flow_resumes_once_with_one_build_per_factory_record(
    tmp_path: Path, logs: tuple[Path, Path], query: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'many.db'}{query}"
    uuids = many_flows.start(uri, 30, 6)
    journal, factory_log = logs
    journal.unlink()
    factory_log.unlink()
    seen = []
    results = engines.resume_many(uuids, uri, on_result=seen.append)
    assert [r.flow_uuid for r in results] == uuids and seen == results
    assert all(r.ok and r.failure is None and r.error is None for r in results), results[:3]
    # Each flow ran its last 3 atoms, once each; the factory was called once for all 30.
    ran = collections.Counter(_lines(journal))
    assert ran == collections.Counter({f"ok s{i}": 30 for i in (3, 4, 5)})
    assert _lines(factory_log) == ["factory ok"]
    assert _flow_states(uri, uuids) == ["SUCCESS"] * 30


def test_without_sharing_each_flow_is_built_by_its_factory(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 4, 4)
    logs[1].unlink()
    results = engines.resume_many(uuids, uri, share_flows=False)
    assert all(r.ok for r in results)
    assert _lines(logs[1]) == ["factory ok"] * 4


@pytest.mark.parametrize("chunk", [None, 2])
def test_a_failing_or_unresumable_flow_does_not_stop_the_others(
    tmp_path: Path, logs: tuple[Path, Path], chunk: int | None
) -> None:
    # (flows are read, built, leased and prepared a chunk at a time)
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    good = many_flows.start(uri, 3, 4)
    failing = many_flows.start(uri, 1, 4, tag="fail")
    leased = many_flows.start(uri, 1, 4)
    backend = backends.fetch(uri)
    with backend.get_connection() as conn:
        conn.acquire_lease(leased[0], "some-host:1:other", 60.0)  # a live owner elsewhere
    order = [good[0], failing[0], "no-such-flow", leased[0], good[1], good[2]]
    results = engines.resume_many(order, backend, chunk=chunk)
    by_uuid = {r.flow_uuid: r for r in results}
    assert [r.flow_uuid for r in results] == order
    assert all(by_uuid[u].ok for u in good)
    failed = by_uuid[failing[0]]
    assert failed.state == "REVERTED" and failed.error is None
    assert failed.failure is not None and "made to fail" in str(failed.failure.exception_str)
    missing = by_uuid["no-such-flow"]
    assert missing.state is None and isinstance(missing.error, exceptions.NotFound)
    owned = by_uuid[leased[0]]
    assert owned.state is None and "other" in str(owned.error)
    assert _flow_states(uri, [leased[0]]) == ["SUSPENDED"]  # untouched
    with backend.get_connection() as conn:  # every lease taken was given back
        assert [conn.get_lease(u) for u in good + failing] == [None] * 4
        assert conn.get_lease(leased[0])[0] == "some-host:1:other"
    backend.close()


def test_held_writes_commit_on_the_bounds_and_all_at_the_end(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    path = tmp_path / "many.db"
    uuids = many_flows.start(f"sqlite:///{path}", 40, 4)
    uri = f"sqlite:///{path}?durability=batch&batch_transitions=20&batch_ms=60000"
    # Another process's view (a read-only handle) while the flows run.
    watcher = backends.fetch(f"sqlite:///{path}")
    watch = watcher.get_connection()
    seen_done = []

    def look(result: engines.FlowResult) -> None:
        seen_done.append(sum(state == "SUCCESS" for state in (watch.get_flow_details(u).state for u in uuids)))

    backend = backends.fetch(uri)
    results = engines.resume_many(uuids, backend, on_result=look)
    assert all(r.ok for r in results)
    # Held: a finished flow is not committed at once; committed in steps along the way (about
    # every 10 flows of 2 writes each: its lease taken; its last steps, state and release), not
    # only at the end...
    assert any(done < i + 1 for i, done in enumerate(seen_done)), seen_done
    assert len(set(seen_done)) >= 3 and seen_done == sorted(seen_done), seen_done
    # ...and all of it once resume_many returned.
    assert _flow_states(f"sqlite:///{path}", uuids) == ["SUCCESS"] * 40
    assert not backend.store().holding
    backend.close()
    watcher.close()


def test_held_writes_are_only_for_batch_durability(tmp_path: Path) -> None:
    process = backends.fetch(f"sqlite:///{tmp_path / 'p.db'}")
    with process.held_writes() as held:
        assert held is False
    batch = backends.fetch(f"sqlite:///{tmp_path / 'b.db'}?durability=batch")
    with batch.held_writes() as held, batch.held_writes() as inner:
        assert held is True and inner is False  # the outer hold ends it
        assert batch.store().holding
    assert not batch.store().holding
    process.close()
    batch.close()


def test_sigkill_during_held_writes_loses_at_most_the_open_transaction(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    path = tmp_path / "many.db"
    flows, atoms, bound = 300, 6, 8
    uuids = many_flows.start(f"sqlite:///{path}", flows, atoms)
    journal = logs[0]
    journal.unlink()
    uri = f"sqlite:///{path}?durability=batch&batch_transitions={bound}&batch_ms=60000"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(TESTS / "many_flows.py"), "resume", uri, json.dumps(uuids)], env=env)
    deadline = time.monotonic() + 60
    while len(_lines(journal)) < flows * atoms // 4 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert child.poll() is None, "the resuming process ended before it could be killed: make the run longer"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before_kill = collections.Counter(_lines(journal))
    states = _flow_states(f"sqlite:///{path}", uuids)
    assert 0 < states.count("SUCCESS") < flows, "the kill was to land mid-way"

    resumed = subprocess.run(
        [sys.executable, str(TESTS / "many_flows.py"), "resume", uri, json.dumps(uuids)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert resumed.stdout.strip() == str(flows)  # (finished flows resume as SUCCESS at once)
    assert _flow_states(f"sqlite:///{path}", uuids) == ["SUCCESS"] * flows
    ran = collections.Counter(_lines(journal))
    # Every atom of the second half ran; those whose completion was in the lost transaction ran
    # twice, and there are at most as many as one held transaction can hold: `bound` writes of at
    # most `bound` transitions each.
    assert set(ran) == {f"ok s{i}" for i in range(atoms // 2, atoms)}
    again = sum(ran.values()) - flows * (atoms - atoms // 2)
    print("re-run after the kill:", again, "flows done before:", states.count("SUCCESS"))
    assert 0 <= again <= bound * bound, (again, before_kill)
    store = backends.fetch(f"sqlite:///{path}")
    assert store.store().integrity_check() == "ok"
    store.close()


@pytest.mark.parametrize("query", ["", "?durability=batch"])
def test_cli_resume_all_counts_flows_on_one_line(tmp_path: Path, logs: tuple[Path, Path], query: str) -> None:
    from cli_support import env, ferroflow

    path = tmp_path / "many.db"
    uuids = many_flows.start(f"sqlite:///{path}", 5, 4)
    logs[1].unlink()
    environ = env(**{many_flows.FACTORY_LOG_ENV: str(logs[1]), "PYTHONPATH": str(TESTS)})
    done = ferroflow("resume", "--all", "--db", f"sqlite:///{path}{query}", cwd=tmp_path, environ=environ)
    assert done.returncode == 0, done.stderr
    for flow_uuid in uuids:
        assert f"flow {flow_uuid} (small-ok): SUCCESS" in done.stdout
    # One line counting flows (not one per flow counting its atoms), and one factory call.
    assert "resume: 5/5 flows (100%)" in done.stderr and " atoms (" not in done.stderr
    assert _lines(logs[1]) == ["factory ok"]
    assert _flow_states(f"sqlite:///{path}", uuids) == ["SUCCESS"] * 5


def test_every_durable_backend_resumes_many_flows(tmp_path: Path, logs: tuple[Path, Path], durable_backend) -> None:
    uri = durable_backend.uri(tmp_path)
    uuids = many_flows.start(uri, 4, 4)
    logs[0].unlink()
    results = engines.resume_many(uuids, uri)
    assert [(r.flow_uuid, r.state, r.error) for r in results] == [(u, "SUCCESS", None) for u in uuids]
    assert collections.Counter(_lines(logs[0])) == collections.Counter({"ok s2": 4, "ok s3": 4})
    assert _flow_states(uri, uuids) == ["SUCCESS"] * 4


def test_resumed_engines_are_not_kept(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    """Live objects after resuming 150 more flows are what resuming 10 left: nothing per flow
    (each engine used to stay, held in a cycle with its Rust lane the collector could not see)."""
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 160, 4)
    backend = backends.fetch(uri)
    engines.resume_many(uuids[:10], backend)
    gc.collect()
    before = len(gc.get_objects())
    results = engines.resume_many(uuids[10:], backend)
    assert all(r.ok for r in results), results[:3]
    del results
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 150, f"{grown} more live objects after resuming 150 flows: their engines are kept"
    backend.close()


def test_flows_built_alike_do_not_each_look_at_every_atom_for_version_policies(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What depends only on the compilation and the options (the atoms' own version policies) is
    # decided once for all the flows sharing it, not once per flow.
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 12, 6)
    reads: collections.Counter[str] = collections.Counter()

    def no_policy(atom: many_flows.Step) -> None:
        reads[atom.name] += 1

    monkeypatch.setattr(many_flows.Step, "on_version_change", property(no_policy), raising=False)
    results = engines.resume_many(uuids, uri)
    assert all(r.ok for r in results), results[:2]
    assert set(reads) == {f"s{i}" for i in range(6)}
    assert max(reads.values()) < len(uuids), reads


def _chunk_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each chunk `resume_many` takes from now on."""
    sizes: list[int] = []
    prepare_chunk = engines.many._prepare_chunk

    def recorded(resumer: Any, conn: Any, items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        return prepare_chunk(resumer, conn, items)

    monkeypatch.setattr(engines.many, "_prepare_chunk", recorded)
    return sizes


def test_chunks_grow_while_flows_are_quick_and_long_flows_are_leased_one_at_a_time(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk's leases are held from its start, idle until each flow's turn: quick flows are taken
    # many at a time (up to CHUNK), flows longer than LEASE_AHEAD_SECONDS one at a time, so the
    # flows not started yet stay free for other processes.
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    quick = many_flows.start(uri, 100, 4)
    slow = many_flows.start(uri, 4, 4, tag="slow")
    assert 2 * many_flows.SLOW_SECONDS > engines.many.LEASE_AHEAD_SECONDS  # (2 atoms run per flow)
    sizes = _chunk_sizes(monkeypatch)
    assert all(r.ok for r in engines.resume_many(quick, uri))
    assert sizes[0] == 1 and sum(sizes) == 100
    assert all(after <= 2 * before for before, after in itertools.pairwise(sizes))
    assert 8 <= max(sizes) <= engines.many.CHUNK, sizes
    sizes.clear()
    assert all(r.ok for r in engines.resume_many(slow, uri))
    assert sizes == [1, 1, 1, 1]


def test_a_fixed_chunk_size_is_kept_and_a_bad_one_refused(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 7, 4)
    sizes = _chunk_sizes(monkeypatch)
    assert all(r.ok for r in engines.resume_many(uuids, uri, chunk=3))
    assert sizes == [3, 3, 1]
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="chunk must be a positive number of flows"):
            engines.resume_many(uuids, uri, chunk=bad)


@pytest.mark.parametrize("collector_on", [True, False])
def test_the_collector_is_paused_only_while_a_chunk_is_prepared(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, collector_on: bool
) -> None:
    """A chunk's engines are built, leased and prepared with the cyclic collector off (all that
    is acyclic: young collections would only walk it again and again); the atoms run with the
    collector as the caller had it, and it is back as it was after, even when a step failed."""
    from ferroflow.engines import helpers

    uri = f"sqlite:///{tmp_path / 'many.db'}"
    good = many_flows.start(uri, 3, 2)
    leased = many_flows.start(uri, 1, 2)
    backend = backends.fetch(uri)
    with backend.get_connection() as conn:
        conn.acquire_lease(leased[0], "some-host:1:other", 60.0)  # its read fails
    while_loading: list[bool] = []
    while_running: list[bool] = []
    build, execute = helpers.build, many_flows.Step.execute

    def build_recorded(engine_cls: Any, flow: Any, options: Any, **kwargs: Any) -> Any:
        while_loading.append(gc.isenabled())
        if kwargs["flow_detail"].uuid == good[1]:
            raise RuntimeError("its engine cannot be made")
        return build(engine_cls, flow, options, **kwargs)

    monkeypatch.setattr(helpers, "build", build_recorded)
    monkeypatch.setattr(many_flows.Step, "execute", lambda self: while_running.append(gc.isenabled()) or execute(self))
    if not collector_on:
        gc.disable()
    try:
        results = engines.resume_many([good[0], leased[0], *good[1:]], backend, chunk=4)
        assert gc.isenabled() is collector_on
    finally:
        gc.enable()
    assert [r.ok for r in results] == [True, False, False, True]
    assert "cannot be made" in str(results[2].error)
    assert while_loading == [False] * 3
    assert while_running == [collector_on] * 2  # (each flow was suspended after its first atom)
    with backend.get_connection() as conn:  # the lease read with the flow was given back
        assert conn.get_lease(good[1]) is None
    backend.close()


def test_each_flows_row_is_read_once_with_its_lease(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a flow's lease is taken before it is read: the row the lease comes back with is
    the flow detail the engine is built from and prepared with, never read again."""
    from ferroflow.persistence.backends import impl_sqlite

    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 5, 4)
    reads: list[str] = []
    read_row = impl_sqlite.SQLiteConnection._flow_row
    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "_flow_row", lambda *a: reads.append(a[2]) or read_row(*a))
    results = engines.resume_many(uuids, uri)
    assert [r.state for r in results] == ["SUCCESS"] * 5 and [r.flow_name for r in results] == ["small-ok"] * 5
    assert reads == []


def test_a_persister_adopts_only_a_held_lease_of_its_own_flow(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    from ferroflow.persistence import ownership

    uri = f"sqlite:///{tmp_path / 'many.db'}"
    first, second = many_flows.start(uri, 2, 2)
    backend = backends.fetch(uri)
    conn = backend.get_connection()
    engine = engines.Resumer(backend).load(conn.get_flow_details(first, lazy=True))
    other = ownership.Lease(conn, second, 30.0, "me")
    other.acquire()
    with pytest.raises(ValueError, match="held lease of its own flow detail"):
        engine._persist.adopt(other)  # another flow's
    other.release()
    with pytest.raises(ValueError, match="held lease"):
        engine._persist.adopt(ownership.Lease(conn, first, 30.0, "me"))  # not taken
    backend.close()


def test_a_run_stopped_by_a_lost_lease_reports_the_error_not_a_state(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    """One flow given twice in one chunk: both engines are prepared under one owner, the first
    runs it to SUCCESS and gives the lease up with its last write, so the second's first write
    is refused. Its result says so (``error``, no state): not the RUNNING its engine had reached,
    nor a failure of the flow; no atom ran twice and the store holds the first run's end."""
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    (flow,) = many_flows.start(uri, 1, 4)
    logs[0].unlink()
    first, second = engines.resume_many([flow, flow], uri, chunk=2)
    assert (first.state, first.error, first.failure) == ("SUCCESS", None, None)
    assert second.state is None and second.failure is None
    assert isinstance(second.error, exceptions.LeaseLost) and flow in str(second.error)
    assert _lines(logs[0]) == ["ok s2", "ok s3"]
    assert _flow_states(uri, [flow]) == ["SUCCESS"]


def test_the_leases_of_a_chunks_flows_not_given_out_are_given_back_when_the_caller_stops(
    tmp_path: Path, logs: tuple[Path, Path]
) -> None:
    """`prepare_in_chunks` leases a chunk's flows before handing out the first: a caller that
    stops part way (an exception, a break) leaves no idle lease behind on the flows it was not
    given, so other processes can take them at once; the one it holds stays its own."""
    uri = f"sqlite:///{tmp_path / 'many.db'}"
    uuids = many_flows.start(uri, 4, 4)
    backend = backends.fetch(uri)
    resumer = engines.Resumer(backend)
    with backend.get_connection() as conn:
        chunks = engines.many.prepare_in_chunks(resumer, conn, uuids, chunk=4)
        result, engine = next(chunks)
        assert (result.flow_uuid, result.error) == (uuids[0], None) and engine is not None
        assert all(conn.get_lease(u) is not None for u in uuids)  # (the whole chunk leased ahead)
        chunks.close()
        assert [conn.get_lease(u) is None for u in uuids] == [False, True, True, True]
        engine._persist.release()
    backend.close()


def test_cli_resume_all_reads_each_flow_once_with_its_lease_and_goes_on_past_one_it_cannot_resume(
    tmp_path: Path, logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ferroflow resume --all` resumes as `resume_many` does (flows read with their leases, a
    chunk prepared before it runs): no flow's row is read a second time, and a flow another live
    engine owns is reported by name while the others finish."""
    from ferroflow.cli import main
    from ferroflow.persistence.backends import impl_sqlite

    path = tmp_path / "many.db"
    uuids = many_flows.start(f"sqlite:///{path}", 4, 4)
    backend = backends.fetch(f"sqlite:///{path}")
    with backend.get_connection() as conn:
        conn.acquire_lease(uuids[1], "some-host:1:other", 60.0)  # a live owner elsewhere
    backend.close()
    monkeypatch.syspath_prepend(str(TESTS))
    reads: list[str] = []
    read_row = impl_sqlite.SQLiteConnection._flow_row
    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "_flow_row", lambda *a: reads.append(a[2]) or read_row(*a))
    status = main(["resume", "--all", "--db", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert status == 1
    assert [u for u in uuids if f"flow {u} (small-ok): SUCCESS" in out] == [uuids[0], *uuids[2:]]
    assert f"cannot resume flow {uuids[1]} (small-ok): " in err and "some-host:1:other" in err
    assert reads == []
    assert _flow_states(f"sqlite:///{path}", uuids) == ["SUCCESS", "SUSPENDED", "SUCCESS", "SUCCESS"]
