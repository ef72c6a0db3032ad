"""The PostgreSQL backend on a real server (tests/postgres_server.py; skipped without one, failed in CI).

Schema versions and upgrades, errors that name the database, leases and fencing (checked in the
write's own transaction, with a takeover by another process), group commit, and a flow whose
process is SIGKILLed, then resumed. The ownership suite of test_ownership.py runs here too, on
PostgreSQL; the Connection API is pinned by test_backend_conformance.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent import futures
from pathlib import Path

import pytest

import postgres_server
import resume_factories as rf
import test_ownership
from ferroflow import _core, engines, exceptions, states, task
from ferroflow.patterns import unordered_flow
from ferroflow.persistence import backends, models

try:
    import psycopg

    from ferroflow.persistence.backends import impl_postgres
except ImportError as error:  # without the driver: skipped locally, a failure in CI
    if postgres_server.in_ci():
        raise
    pytest.skip(f"psycopg is not installed ({error}); pip install 'ferroflow[postgres]'", allow_module_level=True)


@pytest.fixture
def uri() -> str:
    """A new, empty database."""
    return postgres_server.fresh_uri()


@pytest.fixture
def backend(uri: str):
    be = backends.fetch(uri)
    with contextlib.closing(be.get_connection()) as conn:
        conn.upgrade()
    yield be
    be.close()


@pytest.fixture
def conn(backend):
    with contextlib.closing(backend.get_connection()) as connection:
        yield connection


@contextlib.contextmanager
def sql(uri: str):
    """A plain psycopg connection to the test database (autocommit)."""
    with psycopg.connect(uri, autocommit=True) as connection:
        yield connection


def label(uri: str) -> str:
    """How the backend names the database: host:port/dbname (and never a password)."""
    info = psycopg.conninfo.conninfo_to_dict(uri)
    return f"{info['host']}:{info['port']}/{info['dbname']}"


def saved_flow(conn, atoms: int = 3) -> tuple[models.LogBook, models.FlowDetail, list[models.AtomDetail]]:
    book = models.LogBook("book")
    fd = models.FlowDetail("flow")
    book.add(fd)
    details = []
    for index in range(atoms):
        ad = models.TaskDetail(f"t{index}")
        ad.state, ad.intention = states.PENDING, states.EXECUTE
        fd.add(ad)
        details.append(ad)
    conn.save_logbook(book)
    return book, fd, details


def atom_states(conn, fd: models.FlowDetail) -> dict[str, tuple[str, object]]:
    return {ad.name: (ad.state, ad.results) for ad in conn.get_atoms_for_flow(fd.uuid)}


# -- schema ------------------------------------------------------------------------------------


def test_first_connection_creates_the_schema_with_one_version_row(uri: str) -> None:
    with sql(uri) as db:
        assert db.execute("SELECT to_regclass('ferroflow_schema')").fetchone() == (None,)
    be = backends.fetch(uri)
    with contextlib.closing(be.get_connection()) as conn:
        conn.validate()
    be.close()
    with sql(uri) as db:
        assert db.execute("SELECT version FROM ferroflow_schema").fetchall() == [(impl_postgres.LATEST_VERSION,)]
        columns = set(
            db.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            ).fetchall()
        )
    for table, names in impl_postgres.TABLE_COLUMNS.items():
        assert {(table, name) for name in names} <= columns


def test_upgrade_migrates_an_older_schema_forward_and_keeps_its_rows(uri: str, monkeypatch) -> None:
    first = backends.fetch(uri)
    with contextlib.closing(first.get_connection()) as conn:
        _, fd, _ = saved_flow(conn)
    first.close()
    v2 = "ALTER TABLE atomdetails ADD COLUMN note text NOT NULL DEFAULT 'old row'"
    monkeypatch.setattr(impl_postgres, "MIGRATIONS", [*impl_postgres.MIGRATIONS, v2])
    monkeypatch.setattr(impl_postgres, "LATEST_VERSION", 2)

    upgraded = backends.fetch(uri)
    with contextlib.closing(upgraded.get_connection()) as conn:
        conn.upgrade()  # already done by the first connection: a no-op
        conn.validate()
        assert [ad.name for ad in conn.get_atoms_for_flow(fd.uuid)] == ["t0", "t1", "t2"]
    upgraded.close()
    with sql(uri) as db:
        assert db.execute("SELECT version FROM ferroflow_schema").fetchall() == [(2,)]
        assert db.execute("SELECT DISTINCT note FROM atomdetails").fetchall() == [("old row",)]


def test_processes_upgrading_one_database_at_once_migrate_it_once(uri: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import os, sys, time
        from ferroflow.persistence import backends
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        backend = backends.fetch(sys.argv[1])
        backend.get_connection().upgrade()
        print("upgraded")
    """)
    children = [
        subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    time.sleep(0.5)  # every child is waiting for the signal
    go.touch()
    outcomes = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 6, outcomes
    with sql(uri) as db:
        assert db.execute("SELECT version FROM ferroflow_schema").fetchall() == [(impl_postgres.LATEST_VERSION,)]


def test_a_newer_schema_is_refused_naming_the_database_and_both_versions(uri: str) -> None:
    backends.fetch(uri).get_connection()  # creates the schema
    newer = impl_postgres.LATEST_VERSION + 5
    with sql(uri) as db:
        db.execute("UPDATE ferroflow_schema SET version = %s", (newer,))
    with pytest.raises(exceptions.StorageFailure) as info:
        backends.fetch(uri).get_connection()
    message = str(info.value)
    assert label(uri) in message
    assert f"schema v{newer}" in message and f"up to v{impl_postgres.LATEST_VERSION}" in message
    assert "newer ferroflow" in message
    with sql(uri) as db:  # left as it was
        assert db.execute("SELECT version FROM ferroflow_schema").fetchall() == [(newer,)]


def test_taskflow_tables_without_a_ferroflow_schema_are_refused_untouched(uri: str) -> None:
    with sql(uri) as db:
        db.execute("CREATE TABLE logbooks (uuid varchar(64) PRIMARY KEY, name varchar(255))")
    with pytest.raises(exceptions.StorageFailure, match="'logbooks' table but no ferroflow schema") as info:
        backends.fetch(uri).get_connection()
    assert label(uri) in str(info.value)
    with sql(uri) as db:
        assert db.execute("SELECT to_regclass('ferroflow_schema'), to_regclass('atomdetails')").fetchone() == (
            None,
            None,
        )


def test_a_read_only_backend_reads_and_never_writes(uri: str) -> None:
    with pytest.raises(exceptions.StorageFailure, match="no ferroflow schema and is opened read-only"):
        backends.fetch(f"{uri}?mode=ro").get_connection()
    with sql(uri) as db:
        assert db.execute("SELECT to_regclass('ferroflow_schema')").fetchone() == (None,), "nothing created"
    writer = backends.fetch(uri)
    with contextlib.closing(writer.get_connection()) as conn:
        book, fd, (t0, *_) = saved_flow(conn)
    reader = backends.fetch({"connection": uri, "read_only": True})
    with contextlib.closing(reader.get_connection()) as conn:
        conn.upgrade()  # nothing to do
        assert [ad.name for ad in conn.get_atoms_for_flow(fd.uuid)] == ["t0", "t1", "t2"]
        for write in (
            lambda: conn.save_logbook(book),
            lambda: conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.RUNNING}]),
            lambda: conn.acquire_lease(fd.uuid, "reader", 30),
            lambda: conn.clear_all(),
        ):
            with pytest.raises(exceptions.StorageFailure, match="read-only"):
                write()
        assert conn.get_atom_details(t0.uuid).state == states.PENDING
    with pytest.raises(ValueError, match="mode"):
        backends.fetch(f"{uri}?mode=sometimes")


# -- configuration and errors --------------------------------------------------------------------


def test_uri_forms_conf_dicts_and_durability(uri: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(uri)
    host, port, dbname = info["host"], info["port"], info["dbname"]
    forms = [
        uri,
        uri.replace("postgresql://", "postgres://", 1),
        uri.replace("postgresql://", "postgresql+psycopg://", 1),
        {"connection": uri},
        {"connection": "postgresql", "host": host, "port": port, "user": "postgres", "dbname": dbname},
    ]
    book = None
    for form in forms:
        be = backends.fetch(form)
        assert type(be) is impl_postgres.PostgresBackend
        with contextlib.closing(be.get_connection()) as conn:
            if book is None:
                book, _, _ = saved_flow(conn)
            assert conn.get_logbook(book.uuid).name == "book", form
        be.close()

    def synchronous_commit(be) -> str:
        return be.run("reading a setting", lambda c: c.execute("SHOW synchronous_commit").fetchone()[0])

    assert synchronous_commit(backends.fetch(uri)) == "off", "process durability: the server has each commit"
    assert synchronous_commit(backends.fetch(f"{uri}?durability=fsync")) == "on", "fsync: flushed at each commit"
    with pytest.raises(ValueError, match="durability"):
        backends.fetch(f"{uri}?durability=sometimes")
    with pytest.raises(ValueError, match="busy_wait_us"):
        backends.fetch(f"{uri}?busy_wait_us=-1")
    never_spins = backends.fetch(f"{uri}?busy_wait_us=0")
    with contextlib.closing(never_spins.get_connection()) as conn:
        ad = next(iter(conn.get_logbook(book.uuid).find(next(iter(book)).uuid)))
        conn.apply(atom_changes=[{"uuid": ad.uuid, "state": states.RUNNING}])  # libpq's blocking call
        assert conn.get_atom_details(ad.uuid).state == states.RUNNING
    with pytest.raises(ValueError, match="'durabilty' \\(did you mean 'durability'\\?\\)"):
        backends.fetch(f"{uri}?durabilty=fsync")
    # TaskFlow's SQLAlchemy options are accepted (unused), never passed to libpq.
    taskflow_conf = backends.fetch({"connection": f"{uri}?max_overflow=5", "pool_recycle": 3600, "sslmode": "disable"})
    with contextlib.closing(taskflow_conf.get_connection()) as conn:
        conn.validate()


def test_connection_failures_name_the_database_and_never_the_password(uri: str) -> None:
    secret = "s3cret-Pa55word"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(exceptions.StorageFailure) as info:
        backends.fetch(f"postgresql://alice:{secret}@127.0.0.1:{closed_port}/flows").get_connection()
    message = str(info.value)
    assert f"127.0.0.1:{closed_port}/flows" in message and "alice" in message
    assert secret not in message and secret not in repr(info.value)

    info_ = psycopg.conninfo.conninfo_to_dict(uri)
    unknown_role = f"postgresql://nobody:{secret}@{info_['host']}:{info_['port']}/{info_['dbname']}"
    with pytest.raises(exceptions.StorageFailure, match="nobody") as info:
        backends.fetch(unknown_role).get_connection()
    assert secret not in str(info.value)


def test_sql_errors_and_corrupt_rows_are_storage_failures_naming_the_database(uri: str, backend, conn) -> None:
    _, _, details = saved_flow(conn)
    with sql(uri) as db:
        db.execute("UPDATE atomdetails SET results = '{not json' WHERE uuid = %s", (details[0].uuid,))
    with pytest.raises(exceptions.StorageFailure, match=f"Corrupt atom detail '{details[0].uuid}'") as info:
        conn.get_atom_details(details[0].uuid)
    assert label(uri) in str(info.value)

    with sql(uri) as db:
        db.execute("ALTER TABLE atomdetails RENAME COLUMN meta TO meta_gone")
    with pytest.raises(exceptions.StorageFailure, match="meta") as info:
        conn.get_atom_details(details[1].uuid)
    assert label(uri) in str(info.value)
    with pytest.raises(exceptions.StorageFailure, match="lacks column"):
        conn.validate()


# -- leases and fencing ------------------------------------------------------------------------


def test_lease_acquire_extend_refuse_expire_take_over_and_release(conn) -> None:
    _, fd, _ = saved_flow(conn)
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (
        lambda: conn.acquire_lease(missing, "a", 5),
        lambda: conn.get_lease(missing),
        lambda: conn.release_lease(missing, "a"),
    ):
        with pytest.raises(exceptions.NotFound, match=missing):
            call()
    assert conn.get_lease(fd.uuid) is None

    assert conn.acquire_lease(fd.uuid, "a", 0.3) == 1
    owner, until, epoch = conn.get_lease(fd.uuid)
    assert (owner, epoch) == ("a", 1) and until > time.time()
    assert conn.acquire_lease(fd.uuid, "a", 30) == 1, "extended by its holder, at the same epoch"
    assert conn.get_lease(fd.uuid)[1] > until
    conn.acquire_lease(fd.uuid, "a", 0.3)
    with pytest.raises(exceptions.InvalidState, match="owned by 'a'"):
        conn.acquire_lease(fd.uuid, "b", 30)
    with pytest.raises(exceptions.LeaseLost, match="held by 'a'"):
        conn.renew_lease(fd.uuid, "b", 1, 30)
    assert conn.release_lease(fd.uuid, "b") is False
    assert conn.get_lease(fd.uuid)[0] == "a"

    time.sleep(0.4)  # a's lease ends
    assert conn.acquire_lease(fd.uuid, "b", 30) == 2, "taken over: the epoch is raised"
    with pytest.raises(exceptions.LeaseLost, match=r"'a' lost the lease .* held by 'b' \(epoch 2\)"):
        conn.renew_lease(fd.uuid, "a", 1, 30)
    assert conn.release_lease(fd.uuid, "a") is False
    conn.renew_lease(fd.uuid, "b", 2, 30)
    assert conn.release_lease(fd.uuid, "b") is True
    assert conn.get_lease(fd.uuid) is None
    assert conn.acquire_lease(fd.uuid, "a", 30) == 3
    with pytest.raises(exceptions.InvalidState, match="lease needs a positive"):
        conn.acquire_lease(fd.uuid, "a", 0)


def test_every_write_of_a_fenced_owner_that_lost_its_lease_is_refused_whole(backend, conn) -> None:
    book, fd, (t0, t1, _) = saved_flow(conn)
    epoch = conn.acquire_lease(fd.uuid, "a", 0.2)
    conn.fence((fd.uuid, "a", epoch))
    conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.RUNNING, "intention": states.EXECUTE}])
    time.sleep(0.3)
    with contextlib.closing(backend.get_connection()) as successor:
        assert successor.acquire_lease(fd.uuid, "b", 30) == epoch + 1
    before = atom_states(conn, fd), conn.get_flow_details(fd.uuid, lazy=True).to_dict()

    t0.put(states.SUCCESS, "late")
    fd.state = states.SUCCESS
    writes = {
        "apply (the engine's lane)": lambda: conn.apply(
            atom_changes=[
                {"uuid": t0.uuid, "state": states.SUCCESS, "results": "late"},
                {"uuid": t1.uuid, "state": states.RUNNING},
            ],
            resume_records=[(t0.uuid, "x\x1d\x1d")],
        ),
        "apply (a general batch)": lambda: conn.apply(
            atom_updates=[(t0, ("state", "results"))], flow_state=(fd.uuid, states.SUCCESS)
        ),
        "update_atom_details": lambda: conn.update_atom_details(t0),
        "update_flow_details": lambda: conn.update_flow_details(fd),
        "update_flow_row": lambda: conn.update_flow_row(fd),
        "save_logbook": lambda: conn.save_logbook(book),
    }
    for what, write in writes.items():
        with pytest.raises(exceptions.LeaseLost, match=r"'a' lost the lease .* held by 'b'"):
            write()
        assert (atom_states(conn, fd), conn.get_flow_details(fd.uuid, lazy=True).to_dict()) == before, what
    assert conn.resume_record(t0.uuid) is None

    conn.fence((fd.uuid, "b", epoch + 1))  # the successor's writes go through
    conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.SUCCESS, "results": "b's"}])
    assert atom_states(conn, fd)["t0"] == (states.SUCCESS, "b's")


def test_a_fenced_write_and_a_takeover_are_ordered_by_the_flow_row_lock(uri: str, backend, conn) -> None:
    """The fence is checked inside the write's transaction with the flow's row locked: a takeover
    in progress holds that row, so the write waits for it and is then refused, never committed
    alongside it."""
    _, fd, (t0, *_rest) = saved_flow(conn)
    epoch = conn.acquire_lease(fd.uuid, "a", 30)
    conn.fence((fd.uuid, "a", epoch))
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.SUCCESS, "results": "stale"}])
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    with psycopg.connect(uri) as takeover:  # a transaction, not committed yet
        takeover.execute(
            "UPDATE flowdetails SET owner = 'b', lease_epoch = lease_epoch + 1 WHERE uuid = %s", (fd.uuid,)
        )
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive(), "the write waits for the flow's row"
        takeover.commit()
    writer.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], exceptions.LeaseLost), outcome
    assert atom_states(conn, fd)["t0"] == (states.PENDING, None)


# -- the engine's batches ----------------------------------------------------------------------


class Quick(task.Task):
    def execute(self) -> str:
        return self.name


class InlineExecutor(futures.Executor):
    """Runs each submitted call at once, so that every future is done before the engine waits."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: futures.Future = futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_atoms_finishing_together_are_committed_in_one_transaction(uri: str, backend) -> None:
    names = [f"t{i}" for i in range(6)]
    flow = unordered_flow.Flow("fan").add(*[Quick(name) for name in names])
    engine = engines.load(flow, backend=backend, engine="parallel", executor=InlineExecutor())
    engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS
    uuids = [engine.storage.get_atom_uuid(name) for name in names]
    with sql(uri) as db:
        rows = db.execute(
            "SELECT state, results, xmin::text FROM atomdetails WHERE uuid = ANY(%s)", (uuids,)
        ).fetchall()
    assert sorted((state, results) for state, results, _ in rows) == sorted((states.SUCCESS, f'"{n}"') for n in names)
    assert len({xmin for _, _, xmin in rows}) == 1, "one transaction wrote every SUCCESS"


def test_a_batch_is_all_or_nothing(conn) -> None:
    _, fd, details = saved_flow(conn, atoms=40)
    missing = "00000000-0000-4000-8000-00000000000f"
    before = atom_states(conn, fd)
    small = [{"uuid": details[0].uuid, "state": states.RUNNING}, {"uuid": missing, "state": states.RUNNING}]
    large = [{"uuid": ad.uuid, "state": states.SUCCESS, "results": 1} for ad in details] + [
        {"uuid": missing, "state": states.SUCCESS, "results": 1}
    ]
    for changes in (small, large):
        with pytest.raises(exceptions.NotFound, match=missing):
            conn.apply(atom_changes=changes, flow_state=(fd.uuid, states.SUCCESS))
        assert atom_states(conn, fd) == before
        assert conn.get_flow_details(fd.uuid, lazy=True).state is None
    with pytest.raises(exceptions.NotFound, match=missing):
        conn.apply(resume_records=[(details[0].uuid, "r\x1d\x1d"), (missing, "r\x1d\x1d")])
    assert conn.resume_record(details[0].uuid) is None
    with pytest.raises(TypeError, match=f"atom detail '{details[1].uuid}'.*results"):
        conn.apply(
            atom_changes=[{"uuid": details[0].uuid, "state": "SUCCESS"}, {"uuid": details[1].uuid, "results": {1j}}]
        )
    assert atom_states(conn, fd) == before

    # Large batches (arrays) and a fresh detail changed in the batch that creates it.
    conn.apply(atom_changes=large[:-1], flow_state=(fd.uuid, states.SUCCESS))
    assert set(atom_states(conn, fd).values()) == {(states.SUCCESS, 1)}
    fresh = "00000000-0000-4000-8000-0000000000aa"
    conn.apply(
        fresh_atoms=(fd.uuid, _core.FreshRows([fresh], ["late"], [False], ["2.0"])),
        atom_changes=[{"uuid": fresh, "state": states.SUCCESS, "results": [1, 2]}],
        resume_records=[(fresh, "in\x1dtask\x1dlate")],
    )
    late = conn.get_atom_details(fresh)
    assert (late.name, late.state, late.results, late.version) == ("late", states.SUCCESS, [1, 2], "2.0")
    assert conn.resume_summaries(fd.uuid) == [(fresh, "in", "task", "late")]


def test_a_large_result_goes_through_the_engine_lane(conn) -> None:
    _, _, (t0, *_) = saved_flow(conn)
    big = "x" * 8_000_000  # more than a socket buffer: sent in pieces
    conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.SUCCESS, "results": {"big": big}}])
    assert conn.get_atom_details(t0.uuid).results == {"big": big}


def test_saved_atoms_are_columns_of_what_is_stored(conn) -> None:
    _, fd, details = saved_flow(conn)
    retry = models.RetryDetail("r")
    retry.put(states.SUCCESS, "first")
    fd.add(retry)
    conn.update_flow_details(fd)
    saved = conn.saved_atoms(fd.uuid)
    assert saved.raw and saved.uuids == [*(ad.uuid for ad in details), retry.uuid]
    assert saved.retries == [False, False, False, True]
    assert saved.states == [states.PENDING] * 3 + [states.SUCCESS]
    loaded = saved.detail(3)
    assert isinstance(loaded, models.RetryDetail) and loaded.last_results == "first"
    assert conn.saved_atoms("00000000-0000-4000-8000-000000000000").uuids == []


def test_a_flow_run_keeps_resume_records_beside_its_details(tmp_path: Path, backend, conn) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    engine.run()
    assert rf.take_journal(tmp_path) == ["execute a", "execute b a=a@1", "execute c b=b@1"]
    flow_uuid = engine.storage.flow_uuid
    fd = conn.get_flow_details(flow_uuid)
    assert fd.state == states.SUCCESS
    by_uuid = {ad.uuid: ad.name for ad in fd}
    recorded = {by_uuid[uuid] for uuid, *_ in conn.resume_summaries(flow_uuid)}
    assert {"a", "b", "c"} <= recorded
    assert all("resume" not in ad.meta for ad in fd), "kept beside the details, not in their meta"
    assert conn.get_lease(flow_uuid) is None


# -- crashes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("killed_in", ["a", "b", "c"])
def test_a_sigkilled_run_resumes_from_postgresql(tmp_path: Path, uri: str, backend, killed_in: str) -> None:
    rf.configure(tmp_path, block=[killed_in])
    child = subprocess.Popen(rf.child_command(uri, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / f"blocking-{killed_in}").exists():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    flow_uuid = (tmp_path / rf.FLOW_UUID).read_text()
    ran = rf.take_journal(tmp_path)
    done = ran[:-1]
    saved = rf.atom_states(rf.saved(backend, flow_uuid))
    assert saved[killed_in] == (states.RUNNING, states.EXECUTE), "saved RUNNING before it started"
    assert all(saved[line.split()[1]] == (states.SUCCESS, states.EXECUTE) for line in done)

    rf.configure(tmp_path, generation=2)
    resumed = engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend)
    resumed.run()
    again = rf.take_journal(tmp_path)
    assert [line.split()[1] for line in again] == ["a", "b", "c"][len(done) :], "no finished atom ran again"
    fd = rf.saved(backend, flow_uuid)
    assert fd.state == states.SUCCESS
    results = rf.atom_results(fd)
    for name in "abc":
        assert results[name] == f"{name}@{1 if name in [line.split()[1] for line in done] else 2}"


def test_a_server_restart_is_survived(uri: str, backend, conn) -> None:
    server = postgres_server.server()
    if server.cluster is None:
        pytest.skip(f"restarting needs the tests' own cluster, not ${postgres_server.ENV_URI}")
    _, fd, (t0, *_) = saved_flow(conn)
    epoch = conn.acquire_lease(fd.uuid, "a", 60)
    conn.fence((fd.uuid, "a", epoch))
    conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.RUNNING}])
    server.restart()
    # The pooled connections the restart closed are found closed before use: nothing fails.
    conn.apply(atom_changes=[{"uuid": t0.uuid, "state": states.SUCCESS, "results": 7}])
    conn.renew_lease(fd.uuid, "a", epoch, 60)
    assert atom_states(conn, fd)["t0"] == (states.SUCCESS, 7)
    assert conn.get_lease(fd.uuid)[:3:2] == ("a", epoch)


# -- the ownership suite, on PostgreSQL ---------------------------------------------------------

# test_ownership's tests take `uri` and `backend` fixtures: collected here, they get this
# module's (a PostgreSQL database), so the same ownership semantics are checked on this backend.
for _name, _test in vars(test_ownership).items():
    if _name.startswith("test_") and callable(_test) and "memory" not in _name:
        globals()[f"{_name}_on_postgres"] = _test
children = test_ownership.children
