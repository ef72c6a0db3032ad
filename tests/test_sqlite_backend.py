"""Behaviour only the sqlite backend has: the file itself, schema and corruption checks, durability
options, owner leases and the engine's group-commit fast path ``apply()``.

The semantics every backend shares are tested by test_backend_conformance.py.
"""

from __future__ import annotations

import datetime
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ferroflow import _core, states
from ferroflow import exceptions as exc
from ferroflow.persistence import models
from ferroflow.persistence.backends import fetch
from ferroflow.persistence.backends.impl_sqlite import SQLiteBackend
from ferroflow.types.failure import Failure


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flows.db"


@pytest.fixture
def backend(db: Path):
    be = fetch(f"sqlite://{db}")
    yield be
    be.close()


@pytest.fixture
def conn(backend):
    with backend.get_connection() as connection:
        yield connection


def make_failure(message: str = "boom") -> Failure:
    try:
        raise KeyError(message)
    except KeyError as e:
        return Failure.from_exception(e)


def save_flow(conn, atoms: int = 2) -> tuple[models.LogBook, models.FlowDetail, list[models.TaskDetail]]:
    """A saved book holding one RUNNING flow of ``atoms`` PENDING tasks ``t0``, ``t1``..."""
    book = models.LogBook("book")
    fd = models.FlowDetail("flow")
    fd.state = states.RUNNING
    details = []
    for i in range(atoms):
        ad = models.TaskDetail(f"t{i}")
        ad.state = states.PENDING
        fd.add(ad)
        details.append(ad)
    book.add(fd)
    conn.save_logbook(book)
    return book, fd, details


def pages_of(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        return raw.execute("PRAGMA page_count").fetchone()[0]


# -- configuration -----------------------------------------------------------------------------


def test_uri_forms(tmp_path, monkeypatch):
    assert fetch(f"sqlite://{tmp_path}/a.db").path == str(tmp_path / "a.db")
    # SQLAlchemy's four-slash absolute form names the same file.
    assert fetch(f"sqlite:///{tmp_path}/a.db").path == str(tmp_path / "a.db")
    assert fetch({"connection": "sqlite", "path": str(tmp_path / "b.db")}).path == str(tmp_path / "b.db")
    monkeypatch.chdir(tmp_path)
    assert fetch("sqlite://rel/c.db").path == str(tmp_path / "rel" / "c.db")
    for memory in ("sqlite://", "sqlite:///:memory:", {"connection": "sqlite"}):
        be = fetch(memory)
        assert isinstance(be, SQLiteBackend) and be.path is None


def test_durability_option(tmp_path, db):
    assert fetch(f"sqlite://{db}").durability == "process"
    synced = fetch(f"sqlite://{db}?durability=fsync")
    assert synced.durability == "fsync"
    assert fetch({"connection": f"sqlite://{db}", "durability": "FSYNC"}).durability == "fsync"
    book = models.LogBook("synced")
    with synced.get_connection() as conn:
        conn.save_logbook(book)
    synced.close()
    # The durability is a property of the connection, not of the file.
    with fetch(f"sqlite://{db}").get_connection() as conn:
        assert conn.get_logbook(book.uuid).name == "synced"
    with pytest.raises(ValueError, match="durability"):
        fetch(f"sqlite://{db}?durability=sometimes")
    with pytest.raises(ValueError, match="durability"):
        _core.SqliteStore(str(tmp_path / "x.db"), "sometimes")


# -- the file ----------------------------------------------------------------------------------


def test_file_is_in_wal_mode(backend, conn, db):
    save_flow(conn)
    assert backend.store().journal_mode() == "wal"
    with sqlite3.connect(db) as raw:  # WAL is recorded in the file itself
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.with_name(db.name + "-wal").exists()


def test_reopened_file_sees_every_kind_of_write(db):
    first = fetch(f"sqlite://{db}")
    with first.get_connection() as conn:
        book, fd, (t0, t1) = save_flow(conn)
        t0.state = states.SUCCESS
        t0.results = {"answer": 42}
        conn.apply(atom_updates=[(t0, ("state", "results"))], flow_state=(fd.uuid, states.SUCCESS))
        t1.put(states.FAILURE, make_failure())
        conn.update_atom_details(t1)
        conn.acquire_lease(fd.uuid, "engine-a", 60)
    first.close()
    second = fetch(f"sqlite://{db}")
    with second.get_connection() as conn:
        loaded = conn.get_logbook(book.uuid).find(fd.uuid)
        assert loaded.state == states.SUCCESS
        assert loaded.find(t0.uuid).results == {"answer": 42}
        assert loaded.find(t1.uuid).failure.check(KeyError) is KeyError
        assert conn.get_lease(fd.uuid)[0] == "engine-a"
    second.close()


def test_integrity_check_of_a_sound_file(conn):
    save_flow(conn, atoms=50)
    assert conn.integrity_check() == "ok"
    conn.validate()


def test_newer_schema_is_refused_and_left_untouched(db):
    with fetch(f"sqlite://{db}").get_connection() as conn:
        book, _, _ = save_flow(conn)
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(exc.StorageFailure) as info:
        fetch(f"sqlite://{db}").get_connection()
    message = str(info.value)
    assert str(db) in message and "newer ferroflow" in message and "v99" in message
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 99
        assert raw.execute("SELECT name FROM logbooks WHERE uuid = ?", (book.uuid,)).fetchone() == ("book",)


def test_taskflow_sqlalchemy_database_is_refused(db):
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE logbooks (uuid VARCHAR PRIMARY KEY, name VARCHAR)")
    with pytest.raises(exc.StorageFailure, match="not written by ferroflow"):
        fetch(f"sqlite://{db}").get_connection()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x8f\x00garbage" * 1000, "not a SQLite database"),
        (b"hello", "too short"),
        (b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 2000, "shorter than its first"),
    ],
    ids=["garbage", "tiny", "truncated"],
)
def test_files_that_are_not_stores_are_refused(db, content, reason):
    db.write_bytes(content)
    be = fetch(f"sqlite://{db}")
    with pytest.raises(exc.StorageFailure, match=reason) as info:
        be.get_connection()
    assert str(db) in str(info.value)
    assert db.read_bytes() == content  # never "repaired" by overwriting


def test_truncated_store_is_refused(db):
    with fetch(f"sqlite://{db}").get_connection() as conn:
        save_flow(conn, atoms=200)
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[:1000])
    with pytest.raises(exc.StorageFailure, match="truncated"):
        fetch(f"sqlite://{db}").get_connection()


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(exc.StorageFailure, match="directory"):
        fetch(f"sqlite://{tmp_path}").get_connection()


def test_corrupt_pages_give_storage_failure_never_a_crash(db):
    with fetch(f"sqlite://{db}").get_connection() as conn:
        book, fd, _ = save_flow(conn, atoms=300)
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = 4096
    assert pages_of(db) > 3
    with db.open("r+b") as f:  # keep page 1 (header and schema), scramble every table page
        f.seek(page_size)
        f.write(b"\xa5\x5a" * (db.stat().st_size - page_size))
    be = fetch(f"sqlite://{db}")
    with be.get_connection() as conn:
        try:
            report = conn.integrity_check()
        except exc.StorageFailure as e:  # too damaged for the check to run to the end
            report = str(e)
        assert report != "ok" and report
        for read in (
            lambda: list(conn.get_logbooks()),
            lambda: conn.get_logbook(book.uuid),
            lambda: conn.get_flow_details(fd.uuid),
        ):
            with pytest.raises(exc.StorageFailure, match="malformed"):
                read()
    be.close()


def test_unreadable_payload_is_a_storage_failure_naming_the_row(conn, db):
    _, fd, (t0, _) = save_flow(conn)
    with sqlite3.connect(db) as raw:  # as another tool, or a disk error inside a page, could leave it
        raw.execute("UPDATE atomdetails SET results = '{\"trunc' WHERE uuid = ?", (t0.uuid,))
        raw.execute("UPDATE flowdetails SET meta = 'not json' WHERE uuid = ?", (fd.uuid,))
    with pytest.raises(exc.StorageFailure, match=f"atom detail '{t0.uuid}' .*'results' field is not valid JSON"):
        conn.get_atom_details(t0.uuid)
    with pytest.raises(exc.StorageFailure, match=f"flow detail '{fd.uuid}' .*'meta' field is not valid JSON"):
        conn.get_flow_details(fd.uuid, lazy=True)


# -- in-memory and handle lifetime -------------------------------------------------------------


def test_memory_store_is_shared_by_connections_and_dropped_on_close():
    be = fetch("sqlite:///:memory:")
    with be.get_connection() as first:
        book, _, _ = save_flow(first)
    with be.get_connection() as second:
        assert second.get_logbook(book.uuid).name == "book"
        assert be.store().journal_mode() == "memory"
    be.close()
    with be.get_connection() as again:
        assert list(again.get_logbooks()) == []


def test_closed_store_handle_raises_and_backend_reopens(backend, db):
    with backend.get_connection() as conn:
        book, _, _ = save_flow(conn)
    store = backend.store()
    store.close()
    store.close()  # harmless
    assert store.closed
    with pytest.raises(exc.StorageFailure, match="closed"):
        store.get_logbook(book.uuid)
    backend.close()
    with backend.get_connection() as conn:
        assert conn.get_logbook(book.uuid).name == "book"


def test_threads_share_one_backend(backend, conn):
    _, fd, details = save_flow(conn, atoms=8)
    errors: list[BaseException] = []

    def work(mine: list[models.TaskDetail]) -> None:
        try:
            with backend.get_connection() as own:
                for round_ in range(25):
                    for ad in mine:
                        ad.put(states.SUCCESS, round_)
                        own.update_atom_details(ad)
                        own.apply(atom_updates=[(ad, ("results",))])
                        assert len(list(own.get_atoms_for_flow(fd.uuid))) == 8
        except BaseException as e:  # re-raised by the test below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(details[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    assert [ad.results for ad in conn.get_atoms_for_flow(fd.uuid)] == [24] * 8


def test_aware_timestamps_come_back_as_naive_utc(conn):
    book = models.LogBook("tz")
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    book.created_at = datetime.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=plus_two)
    conn.save_logbook(book)
    assert conn.get_logbook(book.uuid).created_at == datetime.datetime(2024, 5, 1, 10, 30, 15, 123456)


def test_unserializable_result_names_the_atom_and_keeps_the_stored_row(conn):
    _, _, (t0, _) = save_flow(conn)
    t0.put(states.SUCCESS, {"bad": object()})
    with pytest.raises(TypeError) as info:
        conn.update_atom_details(t0)
    assert "'t0'" in str(info.value) and "object" in str(info.value) and "results" in str(info.value)
    stored = conn.get_atom_details(t0.uuid)
    assert stored.state == states.PENDING and stored.results is None


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_failure_whose_exception_args_json_cannot_hold_is_still_saved(conn):
    _, fd, (t0, _) = save_flow(conn)
    try:
        raise KeyError(Opaque(), {(1, 2): "tuple key"})
    except KeyError as e:
        failure = Failure.from_exception(e)
    t0.put(states.FAILURE, failure)
    conn.update_atom_details(t0)
    loaded = conn.get_atom_details(t0.uuid).failure
    assert loaded.check(KeyError) is KeyError and loaded.exception_str == failure.exception_str
    retry = models.RetryDetail("retry")
    retry.put(states.SUCCESS, "attempt-1")
    retry.results[-1][1]["t0"] = failure
    conn.apply(new_atom_details=[(fd.uuid, retry)])
    assert conn.get_atom_details(retry.uuid).results[0][1]["t0"].check(KeyError) is KeyError


def test_large_flow_keeps_atom_order(conn):
    _, fd, _ = save_flow(conn, atoms=0)
    details = [models.TaskDetail(f"atom-{i}") for i in range(5000)]
    conn.apply(new_atom_details=[(fd.uuid, ad) for ad in details])
    assert [ad.name for ad in conn.get_atoms_for_flow(fd.uuid)] == [ad.name for ad in details]


# -- leases ------------------------------------------------------------------------------------


def test_lease_is_refused_naming_the_owner_and_its_expiry(backend, conn, db):
    _, fd, _ = save_flow(conn)
    conn.acquire_lease(fd.uuid, "engine-a", 30)
    other = fetch(f"sqlite://{db}")  # another backend, as another process would have
    with other.get_connection() as theirs:
        with pytest.raises(exc.InvalidState) as info:
            theirs.acquire_lease(fd.uuid, "engine-b", 30)
    other.close()
    message = str(info.value)
    assert "'engine-a'" in message and "'engine-b'" in message
    assert "UTC" in message and "s from now" in message
    owner, until, epoch = conn.get_lease(fd.uuid)
    assert owner == "engine-a" and time.time() + 25 < until <= time.time() + 30 and epoch == 1
    conn.acquire_lease(fd.uuid, "engine-a", 60)  # the holder may take it again (extends it)
    assert conn.get_lease(fd.uuid)[1] > time.time() + 55


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_renew(conn):
    _, fd, _ = save_flow(conn)
    epoch_a = conn.acquire_lease(fd.uuid, "engine-a", 0.2)
    conn.renew_lease(fd.uuid, "engine-a", epoch_a, 0.2)
    time.sleep(0.3)
    epoch_b = conn.acquire_lease(fd.uuid, "engine-b", 30)
    assert epoch_b == epoch_a + 1
    with pytest.raises(exc.LeaseLost, match="engine-b"):
        conn.renew_lease(fd.uuid, "engine-a", epoch_a, 30)
    assert conn.release_lease(fd.uuid, "engine-a") is False  # never releases another owner's lease
    assert conn.get_lease(fd.uuid)[0] == "engine-b"
    assert conn.release_lease(fd.uuid, "engine-b") is True
    assert conn.get_lease(fd.uuid) is None
    with pytest.raises(exc.LeaseLost, match="nobody"):
        conn.renew_lease(fd.uuid, "engine-b", epoch_b, 30)


def test_lease_errors(conn):
    _, fd, _ = save_flow(conn)
    with pytest.raises(exc.NotFound):
        conn.acquire_lease("no-such-flow", "engine-a", 30)
    with pytest.raises(exc.InvalidState, match="positive"):
        conn.acquire_lease(fd.uuid, "engine-a", 0)
    assert conn.get_lease(fd.uuid) is None


def _race_for_lease(path: str, flow_uuid: str, owner: str, start, results) -> None:
    be = fetch(f"sqlite://{path}")
    with be.get_connection() as conn:
        start.wait()
        try:
            conn.acquire_lease(flow_uuid, owner, 30)
            results.put(owner)
        except exc.InvalidState:
            results.put(None)
    be.close()


def test_only_one_of_several_processes_gets_the_lease(conn, db):
    _, fd, _ = save_flow(conn)
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_race_for_lease, args=(str(db), fd.uuid, f"engine-{i}", start, results))
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    winners = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    owners = [w for w in winners if w is not None]
    assert len(owners) == 1
    assert conn.get_lease(fd.uuid)[0] == owners[0]


def _finish_in_child(backend, atom: models.TaskDetail) -> None:
    # Uses the handle inherited through fork(): the backend must open its own.
    with backend.get_connection() as conn:
        atom.put(states.SUCCESS, "from the child")
        conn.update_atom_details(atom)
    backend.close()


def test_backend_inherited_through_fork_keeps_working(backend, conn):
    _, _, (t0, t1) = save_flow(conn)
    child = multiprocessing.get_context("fork").Process(target=_finish_in_child, args=(backend, t0))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert conn.get_atom_details(t0.uuid).results == "from the child"
    t1.put(states.SUCCESS, "from the parent")  # the parent's handle survived the child's exit
    conn.update_atom_details(t1)
    assert conn.get_atom_details(t1.uuid).results == "from the parent"


# -- apply(): the engine's group commit --------------------------------------------------------


def test_apply_commits_new_atoms_updates_and_the_flow_state_together(conn):
    _, fd, (t0, t1) = save_flow(conn)
    late = models.TaskDetail("late")
    late.state = states.PENDING
    t0.state, t0.intention = states.RUNNING, states.EXECUTE
    t1.state = states.SUCCESS
    t1.results = [1, "two"]
    conn.apply(
        new_atom_details=[(fd.uuid, late)],
        atom_updates=[(t0, ("state", "intention")), (t1, ("state", "results"))],
        flow_state=(fd.uuid, states.SUCCESS),
    )
    loaded = conn.get_flow_details(fd.uuid)
    assert loaded.state == states.SUCCESS
    assert [ad.name for ad in loaded] == ["t0", "t1", "late"]
    assert loaded.find(t0.uuid).state == states.RUNNING
    assert (loaded.find(t1.uuid).state, loaded.find(t1.uuid).results) == (states.SUCCESS, [1, "two"])


def test_apply_is_all_or_nothing(conn):
    _, fd, (t0, _) = save_flow(conn)
    late = models.TaskDetail("late")
    t0.state = states.RUNNING
    ghost = models.TaskDetail("ghost")  # never saved
    ghost.state = states.RUNNING
    with pytest.raises(exc.NotFound, match=ghost.uuid):
        conn.apply(
            new_atom_details=[(fd.uuid, late)],
            atom_updates=[(t0, ("state",)), (ghost, ("state",))],
            flow_state=(fd.uuid, states.SUCCESS),
        )
    loaded = conn.get_flow_details(fd.uuid)
    assert loaded.state == states.RUNNING
    assert loaded.find(late.uuid) is None and loaded.find(t0.uuid).state == states.PENDING
    with pytest.raises(exc.NotFound):
        conn.apply(atom_updates=[(t0, ("state",))], flow_state=("no-such-flow", states.SUCCESS))
    assert conn.get_atom_details(t0.uuid).state == states.PENDING


def test_apply_refuses_unserializable_values_before_writing(conn):
    _, fd, (t0, t1) = save_flow(conn)
    late = models.TaskDetail("late")
    t0.state = states.RUNNING
    t1.put(states.SUCCESS, {1, 2})
    with pytest.raises(TypeError, match=r"'t1'.*set"):
        conn.apply([(fd.uuid, late)], [(t0, ("state",)), (t1, ("state", "results"))])
    assert conn.get_flow_details(fd.uuid).find(late.uuid) is None
    assert conn.get_atom_details(t0.uuid).state == states.PENDING


def test_apply_writes_only_the_named_fields(conn):
    _, _, (t0, _) = save_flow(conn)
    t0.put(states.SUCCESS, "kept in memory only")
    t0.meta["progress"] = 1.0
    conn.apply(atom_updates=[(t0, ("state",))])
    stored = conn.get_atom_details(t0.uuid)
    assert (stored.state, stored.results, stored.meta) == (states.SUCCESS, None, {})
    t0.put(states.FAILURE, make_failure("went wrong"))
    conn.apply(atom_updates=[(t0, ("state", "failure", "meta"))])
    stored = conn.get_atom_details(t0.uuid)
    assert stored.failure.check(KeyError) is KeyError and stored.meta == {"progress": 1.0}
    t0.failure = None
    conn.apply(atom_updates=[(t0, ("failure",))])
    assert conn.get_atom_details(t0.uuid).failure is None
    with pytest.raises(ValueError, match="version"):
        conn.apply(atom_updates=[(t0, ("version",))])
    t0.state = None
    with pytest.raises(ValueError, match="cannot clear the state"):
        conn.apply(atom_updates=[(t0, ("state",))])


def test_apply_keeps_a_retry_history_with_its_failures(conn):
    _, fd, _ = save_flow(conn, atoms=0)
    retry = models.RetryDetail("retry")
    retry.state = states.PENDING
    conn.apply(new_atom_details=[(fd.uuid, retry)])
    retry.put(states.SUCCESS, "attempt-1")
    retry.results[-1][1]["t0"] = make_failure("first try")
    retry.put(states.SUCCESS, "attempt-2")
    conn.apply(atom_updates=[(retry, ("state", "results"))])
    loaded = conn.get_atom_details(retry.uuid)
    assert isinstance(loaded, models.RetryDetail)
    assert [value for value, _ in loaded.results] == ["attempt-1", "attempt-2"]
    assert loaded.results[0][1]["t0"].check(KeyError) is KeyError


# -- the extension class directly --------------------------------------------------------------


def test_core_store_rejects_malformed_rows(tmp_path):
    store = _core.SqliteStore(tmp_path / "core.db")
    assert store.schema_version() >= 1 and store.path == str(tmp_path / "core.db")
    store.save_logbook(("b", "book", "{}", 1.0, None))
    store.save_flow_detail(("f", "b", "flow", None, "{}", 1.0, None))
    head = ("a", "f", "atom", "TASK_DETAIL", None, "EXECUTE")
    row = (*head, "null", None, "null", None, None, "{}", 1.0, None)
    store.upsert_atom_details([row])
    assert store.get_atom_detail("a") == row
    with pytest.raises(ValueError, match="14 fields"):
        store.upsert_atom_details([row[:13]])
    with pytest.raises(ValueError, match="unknown atom type"):
        store.upsert_atom_details([(*row[:3], "BOGUS", *row[4:])])
    with pytest.raises(ValueError, match="unknown transition field"):
        store.apply_transitions([{"uuid": "a", "colour": "red"}])
    with pytest.raises(ValueError, match="'uuid'"):
        store.apply_transitions([{"state": "RUNNING"}])
    store.apply_transitions([{"uuid": "a", "state": "FAILURE", "failure": '{"x": 1}'}])
    assert store.get_atom_detail("a")[4:8] == ("FAILURE", "EXECUTE", "null", '{"x": 1}')
    store.apply_transitions([{"uuid": "a", "failure": None}])  # a present None clears
    assert store.get_atom_detail("a")[7] is None
    store.close()
