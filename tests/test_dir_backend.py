"""The directory backend keeps its writes, keeps resume records, and trusts nothing planted in it.

Regression tests of issue 11 (defects 1 and 7), on real directories and real processes:

- a resumed run's work is what the store holds afterwards (the final flow-state save once wrote
  every atom detail back from copies loaded before the run), and the flow detail the user passed
  reflects the run;
- resume records (revert references, input providers) live in each atom detail's file, beside
  TaskFlow's ``atom`` and ``type``; the detail's ``meta`` stays what TaskFlow writes;
- the writes of one call are all or nothing, even when its process is killed half way;
- the store is private (0700 / 0600 whatever the umask) and a symbolic link planted in it — a
  record directory, a kind directory, a record file, the lock, the intent — is refused naming it,
  never written (or read) through.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import pytest

import resume_factories as rf
from ferroflow import engines, exceptions, migrations, states
from ferroflow.persistence import backends, models

SUCCESS, PENDING, EXECUTE = states.SUCCESS, states.PENDING, states.EXECUTE
DONE = {name: (SUCCESS, EXECUTE) for name in "abc"}


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "store"


@pytest.fixture
def backend(root: pathlib.Path):
    be = backends.fetch(f"dir://{root}")
    with contextlib.closing(be.get_connection()) as conn:
        conn.upgrade()
    yield be
    be.close()


def _suspend_after(engine, atom_name: str) -> None:
    def on_success(event_type, details):
        if details.get("task_name") == atom_name:
            engine.suspend()

    engine.atom_notifier.register(SUCCESS, on_success)


def _started(workdir: pathlib.Path, backend, names: list[str] | None = None) -> str:
    """A `rf.chain` flow run until ``a`` succeeded (then suspended): its flow detail's uuid."""
    rf.configure(workdir, generation=1)
    kwargs = {"workdir": str(workdir), **({"names": names} if names else {})}
    engine = engines.load_from_factory(rf.chain, factory_kwargs=kwargs, backend=backend)
    _suspend_after(engine, "a")
    engine.run()
    assert rf.take_journal(workdir) == ["execute a"]
    return engine.storage.flow_uuid


def _atom_file(root: pathlib.Path, fd, name: str) -> pathlib.Path:
    ad = next(ad for ad in fd if ad.name == name)
    return root / "atom_details" / ad.uuid / "metadata"


# -- defect 1: a resumed run's work is kept ------------------------------------------------------


def test_a_resumed_run_is_what_the_store_holds_and_the_next_resume_runs_nothing(tmp_path, backend) -> None:
    flow_uuid = _started(tmp_path, backend)
    fd = rf.saved(backend, flow_uuid)

    rf.configure(tmp_path, generation=2)
    engines.load_from_detail(fd, backend=backend).run()
    assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@2"]

    saved = rf.saved(backend, flow_uuid)
    assert saved.state == SUCCESS
    assert rf.atom_states(saved) == DONE, "the flow's final save wrote the atoms back from stale copies"
    assert rf.atom_results(saved) == {"a": "a@1", "b": "b@2", "c": "c@2"}
    # The flow detail the user passed reflects the run (TaskFlow's resume_from_backend example).
    assert fd.state == SUCCESS
    assert rf.atom_states(fd) == DONE and rf.atom_results(fd) == rf.atom_results(saved)

    rf.configure(tmp_path, generation=3)
    engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend).run()
    assert rf.take_journal(tmp_path) == [], "a finished flow ran again"


def test_an_added_atom_resume_keeps_every_atom_done(tmp_path, backend, monkeypatch) -> None:
    flow_uuid = _started(tmp_path, backend)
    monkeypatch.setattr(rf, "chain", functools.partial(rf.chain, names=["a", "b", "c", "d"]))
    rf.configure(tmp_path, generation=2)
    engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend).run()
    assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@2", "execute d c=c@2"]
    saved = rf.saved(backend, flow_uuid)
    assert rf.atom_states(saved) == {name: (SUCCESS, EXECUTE) for name in "abcd"}


def test_the_users_flow_detail_reflects_the_run_on_every_durable_backend(tmp_path, durable_backend) -> None:
    """A flow detail holding its atom details (loaded whole) is brought up to date in place."""
    be = backends.fetch(durable_backend.uri(tmp_path))
    try:
        flow_uuid = _started(tmp_path, be)
        fd = rf.saved(be, flow_uuid)
        b_detail = next(ad for ad in fd if ad.name == "b")
        engines.load_from_detail(fd, backend=be).run()
        assert rf.take_journal(tmp_path) == ["execute b a=a@1", "execute c b=b@1"]
        assert fd.state == SUCCESS and rf.atom_states(fd) == DONE
        assert (b_detail.state, b_detail.results) == (SUCCESS, "b@1"), "the user's own objects are updated"
        assert rf.atom_states(rf.saved(be, flow_uuid)) == DONE
    finally:
        be.close()


def test_details_load_in_the_order_they_were_first_saved(tmp_path, backend) -> None:
    names = [f"n{i:02d}" for i in range(40)]
    flow_uuid = _started(tmp_path, backend, names=["a", *names])
    assert [ad.name for ad in rf.saved(backend, flow_uuid)] == ["a", *names]


# -- resume records ----------------------------------------------------------------------------------


def test_resume_records_sit_beside_taskflows_keys_and_meta_stays_taskflows(tmp_path, backend, root) -> None:
    flow_uuid = _started(tmp_path, backend)
    fd = rf.saved(backend, flow_uuid)
    record = json.loads(_atom_file(root, fd, "a").read_text())
    assert {"atom", "type"} <= set(record) and record["type"] == "TASK_DETAIL"
    assert record["atom"]["meta"] == {"progress": 1.0}, "the detail's meta is what TaskFlow writes"
    assert "resume_factories.Step" in record["resume"]
    with contextlib.closing(backend.get_connection()) as conn:
        (uuid, _inputs, kind, name), *_ = conn.resume_summaries(flow_uuid)
        assert (uuid, kind, name) == (record["atom"]["uuid"], "class", "resume_factories.Step")
        assert conn.resume_record(uuid) == record["resume"]
        # A plain update keeps the record; TaskFlow's models read the file as theirs.
        ad = conn.get_atom_details(uuid)
        ad.meta["note"] = "kept"
        conn.update_atom_details(ad)
        assert conn.resume_record(uuid) == record["resume"]
    again = json.loads(_atom_file(root, fd, "a").read_text())
    assert models.atom_detail_class(again["type"]).from_dict(again["atom"]).meta["note"] == "kept"


def test_an_orphan_without_a_resume_record_stops_the_rollback_naming_it(tmp_path, backend, root, monkeypatch) -> None:
    """A detail saved by TaskFlow's dir backend (no ``resume`` key) cannot be reverted once its
    atom is gone: the rollback stops with an error naming it, never skips it."""
    flow_uuid = _started(tmp_path, backend)
    path = _atom_file(root, rf.saved(backend, flow_uuid), "a")
    record = json.loads(path.read_text())
    del record["resume"]
    path.write_text(json.dumps(record))
    monkeypatch.setattr(rf, "chain", functools.partial(rf.chain, names=["b", "c"]))  # a removed
    rf.configure(tmp_path, generation=2, fail=["c"])
    engine = engines.load_from_detail(rf.saved(backend, flow_uuid), backend=backend)
    assert engine.plan().actions()["a"] == "orphan"
    with pytest.raises(migrations.OrphanRevertError, match=r"Cannot revert orphan 'a'.*no revert reference"):
        engine.run()
    assert rf.saved(backend, flow_uuid).state == states.FAILURE


# -- all or nothing ----------------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from ferroflow.persistence import backends
    from ferroflow.persistence.backends import impl_dir

    root, flow_uuid = sys.argv[1], sys.argv[2]
    real = impl_dir.DirConnection._replace_file
    written = []

    def dying(self, dir_fd, name, data):
        real(self, dir_fd, name, data)
        written.append(name)
        if written.count("metadata") == 2:  # the intent and two record files are on disk
            os.kill(os.getpid(), 9)

    impl_dir.DirConnection._replace_file = dying
    conn = backends.fetch("dir://" + root).get_connection()
    fd = conn.get_flow_details(flow_uuid)
    for ad in fd:
        ad.state, ad.results = "SUCCESS", "changed"
    conn.save_flow_changes(flow_uuid, atom_details=list(fd))
    """
)


def test_a_call_killed_half_way_is_seen_whole_and_finished_by_the_next_writer(tmp_path, backend, root) -> None:
    flow_uuid = _started(tmp_path, backend)
    before = {ad.name: ad.results for ad in rf.saved(backend, flow_uuid)}
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(root), flow_uuid], capture_output=True)
    assert done.returncode == -9, done.stderr.decode()
    assert (root / ".intent").exists()
    on_disk = [json.loads(p.read_text())["atom"]["results"] for p in (root / "atom_details").glob("*/metadata")]
    assert sorted(map(str, on_disk)).count("changed") == 2 and len(before) == 3, "killed half way"
    # A reader sees the whole call (through the intent), and writes nothing.
    reader = backends.fetch({"connection": "dir", "path": str(root)}).get_connection()
    assert {ad.name: ad.results for ad in reader.get_flow_details(flow_uuid)} == dict.fromkeys("abc", "changed")
    assert (root / ".intent").exists()
    # The next writer replays it, then removes it.
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_flow_row(conn.get_flow_details(flow_uuid, lazy=True))
    assert not (root / ".intent").exists()
    on_disk = [json.loads(p.read_text())["atom"]["results"] for p in (root / "atom_details").glob("*/metadata")]
    assert on_disk == ["changed"] * 3


def test_a_refused_call_writes_nothing(tmp_path, backend, root) -> None:
    flow_uuid = _started(tmp_path, backend)
    fd = rf.saved(backend, flow_uuid)
    files = {p: p.read_bytes() for p in root.rglob("metadata")}
    stranger = models.TaskDetail("stranger")
    for ad in fd:
        ad.results = "changed"
    with contextlib.closing(backend.get_connection()) as conn:
        with pytest.raises(exceptions.NotFound, match=stranger.uuid):
            conn.save_flow_changes(flow_uuid, atom_details=[*fd, stranger])
    assert {p: p.read_bytes() for p in root.rglob("metadata")} == files


# -- defect 7: private, and no planted link followed ---------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_store_is_private_whatever_the_umask(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        be = backends.fetch(f"dir://{tmp_path}/new/store")
        flow_uuid = _started(tmp_path, be)
    finally:
        os.umask(old)
    root = tmp_path / "new" / "store"
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in [root, *root.rglob("*")]}
    dirs = {path: mode for path, mode in modes.items() if path.is_dir() and not path.is_symlink()}
    files = {path: mode for path, mode in modes.items() if path.is_file() and not path.is_symlink()}
    assert set(dirs.values()) == {0o700}, dirs
    assert set(files.values()) == {0o600}, files
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700, "a parent it made is private too"
    assert len([p for p in files if p.name == "metadata"]) >= 5 and flow_uuid


def _planted(elsewhere: pathlib.Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()}


def test_a_planted_record_directory_link_is_refused_and_not_written_through(tmp_path, backend, root) -> None:
    flow_uuid = _started(tmp_path, backend)
    saved = rf.saved(backend, flow_uuid)
    flow_dir = root / "flow_details" / flow_uuid
    elsewhere = tmp_path / "elsewhere"
    flow_dir.rename(elsewhere)
    flow_dir.symlink_to(elsewhere)
    before = _planted(elsewhere)
    with contextlib.closing(backend.get_connection()) as conn:
        fd = models.FlowDetail("chain", uuid=flow_uuid)
        fd.state = states.FAILURE
        with pytest.raises(exceptions.StorageFailure, match=f"flow_details/{flow_uuid}.*symbolic link"):
            conn.update_flow_row(fd)
        with pytest.raises(exceptions.StorageFailure, match=f"flow_details/{flow_uuid}.*symbolic link"):
            conn.get_flow_details(flow_uuid)
    assert _planted(elsewhere) == before, "written through the link"
    rf.configure(tmp_path, generation=2)
    with pytest.raises(exceptions.StorageFailure, match="symbolic link"):
        engines.load_from_detail(saved, backend=backend).run()
    assert _planted(elsewhere) == before and rf.take_journal(tmp_path) == []


def test_planted_links_to_a_kind_directory_or_a_record_file_are_refused(tmp_path, backend, root) -> None:
    flow_uuid = _started(tmp_path, backend)
    fd = rf.saved(backend, flow_uuid)
    secret = tmp_path / "secret"
    secret.write_text('{"atom": {}, "type": "TASK_DETAIL"}')
    target = _atom_file(root, fd, "b")
    target.unlink()
    target.symlink_to(secret)
    with contextlib.closing(backend.get_connection()) as conn:
        with pytest.raises(exceptions.StorageFailure, match=f"{target}.*symbolic link"):
            conn.get_flow_details(flow_uuid)
    assert secret.read_text() == '{"atom": {}, "type": "TASK_DETAIL"}'
    books = root / "books"
    books.rename(tmp_path / "books-elsewhere")
    books.symlink_to(tmp_path / "books-elsewhere")
    before = _planted(tmp_path / "books-elsewhere")
    with contextlib.closing(backend.get_connection()) as conn:
        with pytest.raises(exceptions.StorageFailure, match=f"{books}.*symbolic link"):
            conn.validate()
        with pytest.raises(exceptions.StorageFailure, match=f"{books}.*symbolic link"):
            list(conn.get_logbooks())
        with pytest.raises(exceptions.StorageFailure, match=f"{books}.*symbolic link"):
            conn.save_logbook(models.LogBook("new"))
    assert _planted(tmp_path / "books-elsewhere") == before
    assert len(list((tmp_path / "books-elsewhere").iterdir())) == 1, "a book written through the link"


@pytest.mark.parametrize("name", [".lock", ".intent"])
def test_a_dangling_link_in_place_of_the_lock_or_intent_creates_nothing_outside(tmp_path, name) -> None:
    root = tmp_path / "store"
    root.mkdir()
    outside = tmp_path / "outside" / "created-by-the-store"
    (tmp_path / "outside").mkdir()
    (root / name).symlink_to(outside)
    be = backends.fetch(f"dir://{root}")
    with contextlib.closing(be.get_connection()) as conn:
        with pytest.raises(exceptions.StorageFailure, match=f"{root / name}.*symbolic link"):
            conn.upgrade()
        with pytest.raises(exceptions.StorageFailure, match=f"{root / name}.*symbolic link"):
            conn.save_logbook(models.LogBook("book"))
        with pytest.raises(exceptions.StorageFailure, match=f"{root / name}.*symbolic link"):
            list(conn.get_logbooks())
    assert not outside.exists() and not outside.is_symlink()
    assert os.listdir(tmp_path / "outside") == []


def test_the_root_itself_may_be_a_link(tmp_path) -> None:
    real = tmp_path / "real"
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    real.mkdir()
    be = backends.fetch(f"dir://{tmp_path / 'link'}")
    flow_uuid = _started(tmp_path, be)
    assert (real / "flow_details" / flow_uuid / "metadata").is_file()
