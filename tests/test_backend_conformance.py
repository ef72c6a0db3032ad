"""One conformance suite for every persistence backend, plus backend lookup and dir-specific checks.

To run the suite against another backend, add one line to BACKENDS.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
import textwrap
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

import postgres_server
from ferroflow import exceptions as exc
from ferroflow import states
from ferroflow.persistence import base, models
from ferroflow.persistence.backends import backend as backend_context
from ferroflow.persistence.backends import fetch, parse_conf
from ferroflow.persistence.backends.impl_dir import DirBackend
from ferroflow.persistence.backends.impl_memory import MemoryBackend
from ferroflow.types.failure import Failure


class BackendCase(NamedTuple):
    name: str
    #: Creates a backend storing under the given directory; called twice, it must reach the same data
    #: if ``durable``.
    factory: Callable[[Path], base.Backend]
    durable: bool = True


BACKENDS = [
    BackendCase("memory", lambda tmp: fetch("memory://"), durable=False),
    BackendCase("dir", lambda tmp: fetch(f"dir://{tmp}/store")),
    BackendCase("sqlite", lambda tmp: fetch(f"sqlite://{tmp}/store.db")),
    BackendCase("sqlite-memory", lambda tmp: fetch("sqlite://"), durable=False),
    # A database per test on a real server (tests/postgres_server.py): skipped without one, failed in CI.
    BackendCase("postgres", lambda tmp: fetch(postgres_server.uri_for(tmp))),
]


@pytest.fixture(params=BACKENDS, ids=[case.name for case in BACKENDS])
def case(request) -> BackendCase:
    return request.param


@pytest.fixture
def backend(case, tmp_path):
    be = case.factory(tmp_path)
    with be.get_connection() as conn:
        conn.upgrade()
    yield be
    be.close()


@pytest.fixture
def conn(backend):
    with backend.get_connection() as connection:
        yield connection


class BoomError(Exception):
    pass


def make_failure(message: str = "boom") -> Failure:
    try:
        raise BoomError(message)
    except BoomError as e:
        return Failure.from_exception(e)


def make_book(name: str = "book", flows: int = 1) -> models.LogBook:
    """A book with ``flows`` flow details, each holding a finished task, a failed task and a retry."""
    book = models.LogBook(name)
    book.meta = {"owner": name}
    for index in range(flows):
        fd = models.FlowDetail(f"flow-{index}")
        fd.state = states.RUNNING
        fd.meta = {"factory": {"name": "pkg.make", "args": [index], "kwargs": {"k": "v"}}}
        done = models.TaskDetail("done")
        done.put(states.SUCCESS, {"answer": 42, "items": [1, "two", None]})
        done.version = "1.0"
        failed = models.TaskDetail("failed")
        failed.put(states.FAILURE, make_failure())
        failed.intention = states.REVERT
        failed.meta = {"progress": 1.0}
        retry = models.RetryDetail("retry")
        retry.put(states.SUCCESS, "attempt-1")
        retry.results[-1][1]["failed"] = make_failure("in history")
        retry.put(states.SUCCESS, "attempt-2")
        for ad in (done, failed, retry):
            fd.add(ad)
        book.add(fd)
    return book


def json_normal(data):
    """Tuples become lists, as in any JSON-based store."""
    return json.loads(json.dumps(data))


def assert_same_atom(loaded: models.AtomDetail, expected: models.AtomDetail) -> None:
    assert type(loaded) is type(expected)
    assert json_normal(loaded.to_dict()) == json_normal(expected.to_dict())


def assert_same_flow(loaded: models.FlowDetail, expected: models.FlowDetail, with_atoms: bool = True) -> None:
    assert loaded.to_dict() == expected.to_dict()
    if with_atoms:
        assert {ad.uuid for ad in loaded} == {ad.uuid for ad in expected}
        for ad in expected:
            assert_same_atom(loaded.find(ad.uuid), ad)


def assert_same_book(loaded: models.LogBook, expected: models.LogBook, with_flows: bool = True) -> None:
    assert loaded.to_dict(marshal_time=True) == expected.to_dict(marshal_time=True)
    if with_flows:
        assert {fd.uuid for fd in loaded} == {fd.uuid for fd in expected}
        for fd in expected:
            assert_same_flow(loaded.find(fd.uuid), fd)


# -- lifecycle ---------------------------------------------------------------------------------


def test_upgrade_and_validate_are_repeatable(backend, conn):
    conn.upgrade()
    conn.validate()
    conn.upgrade()
    conn.validate()
    assert conn.backend is backend
    assert list(conn.get_logbooks()) == []


def test_backend_context_manager_upgrades_and_closes(case, tmp_path):
    be = case.factory(tmp_path)
    with backend_context(be.conf) as fetched:
        assert type(fetched) is type(be)
        with fetched.get_connection() as conn:
            conn.validate()


# -- saving and loading ------------------------------------------------------------------------


def test_save_and_get_logbook(conn):
    book = make_book(flows=2)
    saved = conn.save_logbook(book)
    assert_same_book(saved, book)
    loaded = conn.get_logbook(book.uuid)
    assert_same_book(loaded, book)
    assert loaded.updated_at == book.updated_at  # loading does not restamp the book


def test_failures_reload_as_failures_that_check_by_type(conn):
    book = make_book()
    conn.save_logbook(book)
    fd = next(iter(book))
    by_name = {ad.name: ad for ad in conn.get_atoms_for_flow(fd.uuid)}
    failure = by_name["failed"].failure
    assert isinstance(failure, Failure)
    assert failure.check(KeyError, BoomError) is BoomError
    assert failure.check(KeyError) is None
    assert failure.exception_str == "boom"
    retry = by_name["retry"]
    assert isinstance(retry, models.RetryDetail)
    assert retry.results[0][0] == "attempt-1" and retry.last_results == "attempt-2"
    assert retry.results[0][1]["failed"].check(BoomError) is BoomError
    assert by_name["done"].results == {"answer": 42, "items": [1, "two", None]}
    assert by_name["done"].version == "1.0" and by_name["failed"].intention == states.REVERT


def test_get_logbooks(conn):
    books = [make_book(f"book-{i}") for i in range(3)]
    for book in books:
        conn.save_logbook(book)
    loaded = {book.uuid: book for book in conn.get_logbooks()}
    assert set(loaded) == {book.uuid for book in books}
    for book in books:
        assert_same_book(loaded[book.uuid], book)
    assert all(len(book) == 0 for book in conn.get_logbooks(lazy=True))


def test_lazy_loading(conn):
    book = make_book(flows=2)
    conn.save_logbook(book)
    lazy_book = conn.get_logbook(book.uuid, lazy=True)
    assert len(lazy_book) == 0
    assert_same_book(lazy_book, book, with_flows=False)
    fd = next(iter(book))
    lazy_flow = conn.get_flow_details(fd.uuid, lazy=True)
    assert len(lazy_flow) == 0
    assert_same_flow(lazy_flow, fd, with_atoms=False)
    assert_same_flow(conn.get_flow_details(fd.uuid), fd)
    lazy_flows = list(conn.get_flows_for_book(book.uuid, lazy=True))
    assert {f.uuid for f in lazy_flows} == {f.uuid for f in book} and all(len(f) == 0 for f in lazy_flows)
    assert all(len(f) == 3 for f in conn.get_flows_for_book(book.uuid))


def test_children_listings(conn):
    book = make_book(flows=2)
    conn.save_logbook(book)
    assert {fd.uuid for fd in conn.get_flows_for_book(book.uuid)} == {fd.uuid for fd in book}
    fd = next(iter(book))
    atoms = list(conn.get_atoms_for_flow(fd.uuid))
    assert {ad.uuid for ad in atoms} == {ad.uuid for ad in fd}
    ad = next(iter(fd))
    assert_same_atom(conn.get_atom_details(ad.uuid), ad)


def test_loaded_objects_do_not_alias_the_store(conn):
    book = make_book()
    conn.save_logbook(book)
    fd = next(iter(book))
    done = next(ad for ad in fd if ad.name == "done")
    done.results["answer"] = -1  # the caller's object changes after saving
    loaded = conn.get_atom_details(done.uuid)
    assert loaded.results["answer"] == 42
    loaded.results["answer"] = -2
    loaded.meta["touched"] = True
    again = conn.get_atom_details(done.uuid)
    assert again.results["answer"] == 42 and "touched" not in again.meta


# -- upserts and updates -----------------------------------------------------------------------


def test_save_logbook_upserts_and_keeps_flows_not_in_the_saved_object(conn):
    book = make_book(flows=1)
    conn.save_logbook(book)
    first_fd = next(iter(book))
    # A second copy of the book (same uuid) holding only a new flow and new meta.
    again = models.LogBook("renamed", uuid=book.uuid)
    again.meta = {"owner": "someone-else"}
    new_fd = models.FlowDetail("added")
    new_fd.add(models.TaskDetail("new-task"))
    again.add(new_fd)
    saved = conn.save_logbook(again)
    assert {fd.uuid for fd in saved} == {first_fd.uuid, new_fd.uuid}
    loaded = conn.get_logbook(book.uuid)
    assert {fd.uuid for fd in loaded} == {first_fd.uuid, new_fd.uuid}
    assert loaded.meta == {"owner": "someone-else"}
    assert loaded.name == book.name  # merge keeps the stored name
    assert len(loaded.find(first_fd.uuid)) == 3 and len(loaded.find(new_fd.uuid)) == 1


def test_save_logbook_merges_changed_details(conn):
    book = make_book()
    conn.save_logbook(book)
    fd = next(iter(book))
    fd.state = states.SUCCESS
    failed = next(ad for ad in fd if ad.name == "failed")
    failed.put(states.SUCCESS, "fixed")
    conn.save_logbook(book)
    loaded = conn.get_flow_details(fd.uuid)
    assert loaded.state == states.SUCCESS
    reloaded = loaded.find(failed.uuid)
    assert (reloaded.state, reloaded.results, reloaded.failure) == (states.SUCCESS, "fixed", None)


def test_update_flow_details(conn):
    book = make_book()
    conn.save_logbook(book)
    fd = next(iter(book))
    partial = models.FlowDetail(fd.name, fd.uuid)  # carries no atoms, a new state and meta
    partial.state = states.SUCCESS
    partial.meta = {"duration": 1.5}
    added = models.TaskDetail("late-task")
    added.put(states.SUCCESS, [1])
    partial.add(added)
    updated = conn.update_flow_details(partial)
    # The result is the stored flow detail, with every atom (old ones included).
    assert updated.state == states.SUCCESS and updated.meta == {"duration": 1.5}
    assert {ad.uuid for ad in updated} == {ad.uuid for ad in fd} | {added.uuid}
    loaded = conn.get_flow_details(fd.uuid)
    assert loaded.state == states.SUCCESS and len(loaded) == 4
    assert loaded.find(added.uuid).results == [1]
    assert conn.get_atom_details(added.uuid).name == "late-task"


def test_update_atom_details(conn):
    book = make_book()
    conn.save_logbook(book)
    fd = next(iter(book))
    done = next(ad for ad in fd if ad.name == "done")
    changed = done.copy()
    changed.intention = states.REVERT
    changed.put(states.REVERTED, "reverted!")
    changed.put(states.REVERT_FAILURE, make_failure("revert went wrong"))
    changed.meta = {"progress": 0.25}
    changed.version = (2, 1)
    updated = conn.update_atom_details(changed)
    assert updated.state == states.REVERT_FAILURE and updated.revert_failure.check(BoomError) is BoomError
    loaded = conn.get_atom_details(done.uuid)
    assert loaded.state == states.REVERT_FAILURE
    assert loaded.intention == states.REVERT and loaded.meta == {"progress": 0.25} and loaded.version == "2.1"
    assert str(loaded.revert_failure.exception_str) == "revert went wrong"
    assert loaded.results is None  # cleared by put(REVERT_FAILURE)
    # The other atoms of the flow are untouched.
    others = {ad.uuid: ad for ad in conn.get_atoms_for_flow(fd.uuid) if ad.uuid != done.uuid}
    for ad in fd:
        if ad.uuid != done.uuid:
            assert_same_atom(others[ad.uuid], ad)


def test_update_retry_history(conn):
    book = make_book()
    conn.save_logbook(book)
    retry = next(ad for ad in next(iter(book)) if ad.name == "retry")
    retry.put(states.SUCCESS, "attempt-3")
    conn.update_atom_details(retry)
    loaded = conn.get_atom_details(retry.uuid)
    assert [value for value, _ in loaded.results] == ["attempt-1", "attempt-2", "attempt-3"]
    retry.reset(states.PENDING)
    conn.update_atom_details(retry)
    assert conn.get_atom_details(retry.uuid).results == []


def test_update_with_a_different_detail_type_is_refused(conn):
    book = make_book()
    conn.save_logbook(book)
    done = next(ad for ad in next(iter(book)) if ad.name == "done")
    with pytest.raises(NotImplementedError):
        conn.update_atom_details(models.RetryDetail(done.name, done.uuid))
    assert type(conn.get_atom_details(done.uuid)) is models.TaskDetail


def test_record_backends_accept_ignore_missing(conn):
    # TaskFlow's memory and dir backends (and its Storage) create details this way.
    if not isinstance(conn, base.RecordConnection):
        pytest.skip("ignore_missing is an extension of the record-based backends")
    fd = models.FlowDetail("bookless")
    ad = models.TaskDetail("bookless-task")
    fd.add(ad)
    stored = conn.update_flow_details(fd, ignore_missing=True)
    assert [a.uuid for a in stored] == [ad.uuid]
    assert len(conn.get_flow_details(fd.uuid)) == 1
    loose = models.TaskDetail("loose")
    conn.update_atom_details(loose, ignore_missing=True)
    assert conn.get_atom_details(loose.uuid).name == "loose"


# -- not found, destroy, clear -----------------------------------------------------------------


def test_not_found(conn):
    conn.save_logbook(make_book())
    missing = "b6cbb5ab-0000-4000-8000-000000000000"
    calls = [
        lambda: conn.get_logbook(missing),
        lambda: conn.get_logbook(missing, lazy=True),
        lambda: conn.destroy_logbook(missing),
        lambda: list(conn.get_flows_for_book(missing)),
        lambda: conn.get_flow_details(missing),
        lambda: list(conn.get_atoms_for_flow(missing)),
        lambda: conn.get_atom_details(missing),
        lambda: conn.update_flow_details(models.FlowDetail("nope", missing)),
        lambda: conn.update_atom_details(models.TaskDetail("nope", missing)),
    ]
    for call in calls:
        with pytest.raises(exc.NotFound, match=missing):
            call()


def test_failed_update_of_a_missing_flow_writes_nothing(conn):
    fd = models.FlowDetail("ghost")
    ad = models.TaskDetail("ghost-task")
    fd.add(ad)
    with pytest.raises(exc.NotFound):
        conn.update_flow_details(fd)
    with pytest.raises(exc.NotFound):
        conn.get_atom_details(ad.uuid)


def test_destroy_logbook_removes_its_flows_and_atoms_only(conn):
    doomed, kept = make_book("doomed"), make_book("kept")
    conn.save_logbook(doomed)
    conn.save_logbook(kept)
    conn.destroy_logbook(doomed.uuid)
    with pytest.raises(exc.NotFound):
        conn.get_logbook(doomed.uuid)
    for fd in doomed:
        with pytest.raises(exc.NotFound):
            conn.get_flow_details(fd.uuid)
        for ad in fd:
            with pytest.raises(exc.NotFound):
                conn.get_atom_details(ad.uuid)
    assert [book.uuid for book in conn.get_logbooks()] == [kept.uuid]
    assert_same_book(conn.get_logbook(kept.uuid), kept)
    with pytest.raises(exc.NotFound):
        conn.destroy_logbook(doomed.uuid)


def test_clear_all_then_reuse(conn):
    books = [make_book("a"), make_book("b")]
    for book in books:
        conn.save_logbook(book)
    conn.clear_all()
    assert list(conn.get_logbooks()) == []
    for book in books:
        with pytest.raises(exc.NotFound):
            conn.get_logbook(book.uuid)
        for fd in book:
            with pytest.raises(exc.NotFound):
                conn.get_flow_details(fd.uuid)
    conn.validate()
    fresh = make_book("fresh")
    conn.save_logbook(fresh)
    assert_same_book(conn.get_logbook(fresh.uuid), fresh)


def test_connections_share_data(backend, conn):
    book = make_book()
    conn.save_logbook(book)
    with backend.get_connection() as other:
        assert_same_book(other.get_logbook(book.uuid), book)


def test_reopened_backend_sees_the_data(case, tmp_path):
    if not case.durable:
        pytest.skip(f"{case.name} is not durable")
    book = make_book(flows=2)
    first = case.factory(tmp_path)
    with first.get_connection() as conn:
        conn.upgrade()
        conn.save_logbook(book)
        fd = next(iter(book))
        fd.state = states.SUCCESS
        conn.update_flow_details(fd)
    first.close()
    second = case.factory(tmp_path)
    assert second is not first
    with second.get_connection() as conn:
        assert_same_book(conn.get_logbook(book.uuid), book)
        assert conn.get_flow_details(fd.uuid).state == states.SUCCESS
    second.close()


# == Backend lookup (fetch) =====================================================================


def test_fetch_by_uri_and_by_conf(tmp_path):
    assert isinstance(fetch("memory://"), MemoryBackend)
    assert isinstance(fetch("memory"), MemoryBackend)
    assert isinstance(fetch({"connection": "memory"}), MemoryBackend)
    by_uri = fetch(f"dir://{tmp_path}/a")
    assert isinstance(by_uri, DirBackend) and by_uri.path == f"{tmp_path}/a"  # the path is kept
    assert fetch(f"file://{tmp_path}/b").path == f"{tmp_path}/b"
    by_conf = fetch({"connection": "dir", "path": str(tmp_path / "c")})
    assert isinstance(by_conf, DirBackend) and by_conf.path == str(tmp_path / "c")


def test_fetch_merges_uri_parts_into_conf():
    scheme, conf = parse_conf("postgresql+psycopg://user:pw@db.example:5433/flows?pool=5&opt=a&opt=b")
    assert scheme == "postgresql"
    assert conf["username"] == "user" and conf["password"] == "pw"
    assert conf["hostname"] == "db.example:5433" and conf["port"] == 5433
    assert conf["pool"] == "5" and conf["opt"] == ["a", "b"]
    assert conf["connection"].startswith("postgresql+psycopg://")
    _, conf = parse_conf({"connection": "memory://?deep_copy=false&x=1", "x": "explicit"})
    assert conf["x"] == "explicit" and conf["deep_copy"] == "false"


def test_query_parameters_reach_the_backend():
    be = fetch("memory://?deep_copy=false")
    assert be.conf["deep_copy"] == "false"
    book = make_book()
    with be.get_connection() as conn:
        conn.save_logbook(book)
        done = next(ad for ad in next(iter(book)) if ad.name == "done")
        first = conn.get_atom_details(done.uuid)
        first.results["answer"] = "shared"
        # Shallow copies only: nested values are shared with the store.
        assert conn.get_atom_details(done.uuid).results["answer"] == "shared"


def test_unknown_scheme_names_it_and_the_known_ones():
    with pytest.raises(exc.NotFound) as info:
        fetch("nosuch://x")
    message = str(info.value)
    assert "'nosuch'" in message and "memory" in message and "dir" in message and "sqlite" in message


def test_bad_conf_is_rejected():
    with pytest.raises(ValueError, match="connection"):
        fetch({"path": "/x"})
    with pytest.raises(TypeError):
        fetch(42)
    with pytest.raises(ValueError, match="Empty path"):
        fetch("dir://")


def test_third_party_backend_plugs_in_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "fake_ff_backend.py").write_text(
        textwrap.dedent("""
        from ferroflow.persistence.backends.impl_memory import MemoryBackend

        class FakeBackend(MemoryBackend):
            def __init__(self, conf=None, **kwargs):
                super().__init__(conf)
                self.kwargs = kwargs
    """)
    )
    dist_info = tmp_path / "fake_ff_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-ff-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[ferroflow.persistence]\nfake = fake_ff_backend:FakeBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    be = fetch("fake://somewhere?answer=42", extra="kw")
    assert type(be).__name__ == "FakeBackend" and type(be).__module__ == "fake_ff_backend"
    assert be.conf["answer"] == "42" and be.kwargs == {"extra": "kw"}
    with pytest.raises(exc.NotFound, match="fake"):
        fetch("fake2://x")  # the error lists the plugin among the known backends
    monkeypatch.delitem(sys.modules, "fake_ff_backend", raising=False)


def test_pyproject_entry_points_match_the_builtin_table():
    from ferroflow.persistence.backends import _BUILTIN

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    registered = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["ferroflow.persistence"]
    assert registered and all(_BUILTIN[name] == target for name, target in registered.items())


def test_entry_point_that_fails_to_import_is_not_found(tmp_path, monkeypatch):
    dist_info = tmp_path / "broken_ff_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ff-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[ferroflow.persistence]\nbroken = no_such_module_xyz:Backend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(exc.NotFound, match="no_such_module_xyz"):
        fetch("broken://")


# == Dir backend specifics ======================================================================


@pytest.fixture
def dir_conn(tmp_path):
    be = fetch({"connection": "dir", "path": str(tmp_path / "store")})
    with be.get_connection() as conn:
        conn.upgrade()
        yield conn


def test_dir_layout_is_taskflows(dir_conn, tmp_path):
    book = make_book()
    dir_conn.save_logbook(book)
    root = tmp_path / "store"
    fd = next(iter(book))
    ad = next(iter(fd))
    assert json.loads((root / "books" / book.uuid / "metadata").read_text())["name"] == "book"
    assert (root / "books" / book.uuid / fd.uuid).is_symlink()
    assert (root / "flow_details" / fd.uuid / ad.uuid).is_symlink()
    record = json.loads((root / "atom_details" / ad.uuid / "metadata").read_text())
    assert record["type"] == "TASK_DETAIL" and record["atom"]["uuid"] == ad.uuid


def test_dir_interoperates_with_taskflow(dir_conn, tmp_path):
    impl_dir = pytest.importorskip("taskflow.persistence.backends.impl_dir")
    tf_models = pytest.importorskip("taskflow.persistence.models")
    tf_failure = pytest.importorskip("taskflow.types.failure")
    theirs = impl_dir.DirBackend({"path": str(tmp_path / "store")}).get_connection()
    # TaskFlow reads what we wrote.
    book = make_book()
    dir_conn.save_logbook(book)
    fd = next(iter(book))
    their_fd = theirs.get_logbook(book.uuid).find(fd.uuid)
    failed = next(ad for ad in their_fd if ad.name == "failed")
    assert failed.failure.check("test_backend_conformance.BoomError") is not None
    # We read what TaskFlow wrote (and failures keep their type names).
    tf_book = tf_models.LogBook("from-taskflow")
    tf_fd = tf_models.FlowDetail("tf-flow", uuid="tf-flow-uuid")
    tf_ad = tf_models.TaskDetail("tf-task", uuid="tf-task-uuid")
    try:
        raise BoomError("tf")
    except BoomError:
        tf_ad.put(states.FAILURE, tf_failure.Failure())
    tf_fd.add(tf_ad)
    tf_book.add(tf_fd)
    theirs.save_logbook(tf_book)
    loaded = dir_conn.get_logbook(tf_book.uuid)
    ad = loaded.find("tf-flow-uuid").find("tf-task-uuid")
    assert ad.state == states.FAILURE and ad.failure.check(BoomError) is BoomError
    assert loaded.created_at == tf_book.created_at


def test_dir_unserializable_result_names_atom_and_type_and_keeps_old_file(dir_conn, tmp_path):
    book = make_book()
    dir_conn.save_logbook(book)
    done = next(ad for ad in next(iter(book)) if ad.name == "done")
    path = tmp_path / "store" / "atom_details" / done.uuid / "metadata"
    before = path.read_bytes()
    done.results = {"ok": 1, "bad": object()}
    with pytest.raises(TypeError) as info:
        dir_conn.update_atom_details(done)
    assert "'done'" in str(info.value) and "type object" in str(info.value)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["metadata"]  # no temporary file left behind


def test_dir_write_interrupted_before_rename_keeps_old_file(dir_conn, tmp_path, monkeypatch):
    book = make_book()
    dir_conn.save_logbook(book)
    done = next(ad for ad in next(iter(book)) if ad.name == "done")
    path = tmp_path / "store" / "atom_details" / done.uuid / "metadata"
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    done.put(states.SUCCESS, "new value")
    with pytest.raises(exc.StorageFailure, match="simulated crash"):
        dir_conn.update_atom_details(done)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["metadata"]
    assert dir_conn.get_atom_details(done.uuid).results == {"answer": 42, "items": [1, "two", None]}


def test_dir_unchanged_records_are_not_rewritten(dir_conn, tmp_path):
    book = make_book()
    dir_conn.save_logbook(book)
    fd = next(iter(book))
    paths = [tmp_path / "store" / "atom_details" / ad.uuid / "metadata" for ad in fd]
    inodes = [p.stat().st_ino for p in paths]
    dir_conn.update_flow_details(fd)
    assert [p.stat().st_ino for p in paths] == inodes  # a rewrite would replace the inode


def test_dir_corrupt_file_is_a_storage_failure(dir_conn, tmp_path):
    book = make_book()
    dir_conn.save_logbook(book)
    (tmp_path / "store" / "books" / book.uuid / "metadata").write_text('{"name": "trunc')
    with pytest.raises(exc.StorageFailure, match="Corrupt logbook"):
        dir_conn.get_logbook(book.uuid)


def test_dir_rejects_uuids_that_are_not_file_names(dir_conn):
    book = models.LogBook("b", uuid="../escape")
    with pytest.raises(ValueError, match="file name"):
        dir_conn.save_logbook(book)
    with pytest.raises(exc.NotFound):
        dir_conn.get_logbook("../escape")


def test_dir_validate_needs_upgrade(tmp_path):
    be = fetch(f"dir://{tmp_path}/never-upgraded")
    with be.get_connection() as conn:
        with pytest.raises(exc.StorageFailure, match="upgrade"):
            conn.validate()
        assert list(conn.get_logbooks()) == []
        conn.upgrade()
        conn.validate()


def test_dir_fsync_durability_mode(tmp_path):
    be = fetch(f"dir://{tmp_path}/synced?durability=fsync")
    assert be.fsync
    book = make_book()
    with be.get_connection() as conn:
        conn.save_logbook(book)
        assert_same_book(conn.get_logbook(book.uuid), book)
    with pytest.raises(ValueError, match="durability"):
        fetch(f"dir://{tmp_path}/x?durability=sometimes")


def _hammer_atom(path: str, atom_uuid: str, worker: int, rounds: int) -> None:
    conn = fetch({"connection": "dir", "path": path}).get_connection()
    for i in range(rounds):
        ad = conn.get_atom_details(atom_uuid)
        ad.put(states.SUCCESS, {"worker": worker, "round": i, "payload": "x" * 2000})
        conn.update_atom_details(ad)


def test_dir_concurrent_processes_never_see_partial_files(tmp_path):
    path = str(tmp_path / "store")
    be = fetch({"connection": "dir", "path": path})
    book = make_book()
    with be.get_connection() as conn:
        conn.upgrade()
        conn.save_logbook(book)
    atom_uuid = next(ad for ad in next(iter(book)) if ad.name == "done").uuid
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hammer_atom, args=(path, atom_uuid, w, 40)) for w in range(3)]
    for worker in workers:
        worker.start()
    with be.get_connection() as conn:
        while any(worker.is_alive() for worker in workers):
            results = conn.get_atom_details(atom_uuid).results  # would raise on a torn file
            assert "answer" in results or len(results["payload"]) == 2000
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    with be.get_connection() as conn:
        assert conn.get_atom_details(atom_uuid).results["round"] == 39


def test_dir_writers_wait_for_the_directory_lock(tmp_path):
    path = str(tmp_path / "store")
    be = fetch({"connection": "dir", "path": path})
    book = make_book()
    with be.get_connection() as conn:
        conn.upgrade()
        conn.save_logbook(book)
    atom_uuid = next(ad for ad in next(iter(book)) if ad.name == "done").uuid
    with open(os.path.join(path, ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # as another process in the middle of a call
        writer = multiprocessing.get_context("fork").Process(
            target=_hammer_atom, args=(path, atom_uuid, 0, 1)
        )
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive()  # blocked on the lock, has written nothing
        record = json.loads((tmp_path / "store" / "atom_details" / atom_uuid / "metadata").read_text())
        assert record["atom"]["results"]["answer"] == 42
        fcntl.flock(lock_file, fcntl.LOCK_UN)
    writer.join(timeout=30)
    assert writer.exitcode == 0
    with be.get_connection() as conn:
        assert conn.get_atom_details(atom_uuid).results["round"] == 0
