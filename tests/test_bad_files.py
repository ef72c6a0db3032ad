"""Files that are not ferroflow stores are refused untouched; read-only commands write nothing;
new stores are private (issue 11: "Bad files are refused untouched", "Private by default").

Real files throughout, and the command line as real processes (``python -m ferroflow``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ferroflow import _core, engines
from ferroflow import exceptions as exc
from ferroflow.persistence import backends

FLOWS = """
from ferroflow import task
from ferroflow.patterns import linear_flow


class Step(task.Task):
    def execute(self, total):
        with open("executions.log", "a") as log:
            log.write(self.name + "\\n")
        return total + 1


def chain(n):
    flow = linear_flow.Flow("chain")
    flow.add(Step("step-0", inject={"total": 0}, provides="t0"))
    for i in range(1, n):
        flow.add(Step(f"step-{i}", rebind={"total": f"t{i - 1}"}, provides=f"t{i}"))
    return flow
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "badflows.py").write_text(textwrap.dedent(FLOWS))
    return tmp_path


def ferroflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FERROFLOW_DB"}
    return subprocess.run(
        [sys.executable, "-m", "ferroflow", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], result.stderr
    return lines[0]


def state_of(path: Path) -> tuple[str, int, list[str]]:
    """What "untouched" compares: the bytes' hash, the modification time, the directory's names
    (no -wal, -shm or temporary file may appear)."""
    names = sorted(p.name for p in path.parent.iterdir() if p.name not in ("badflows.py", "__pycache__"))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, names


def _foreign(journal: str, user_version: int = 0) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA journal_mode = {journal}")
            db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
            db.execute("INSERT INTO contacts (name) VALUES ('Ada')")
            db.execute(f"PRAGMA user_version = {user_version}")
        db.close()

    return make


NOT_STORES: dict[str, tuple[Callable[[Path], None], str]] = {
    "zero-byte": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "text": (lambda p: p.write_text("just some notes\n" * 20), "not a SQLite database"),
    "app-sqlite": (_foreign("delete"), "without a ferroflow schema"),
    "app-sqlite-wal": (_foreign("wal"), "without a ferroflow schema"),
    "app-sqlite-versioned": (_foreign("wal", user_version=3), "has no 'logbooks' table"),
}


@pytest.fixture(params=sorted(NOT_STORES))
def not_a_store(request, workdir: Path) -> tuple[Path, str]:
    make, expected = NOT_STORES[request.param]
    path = workdir / f"{request.param}.db"
    make(path)
    # An mtime written now would differ from the one read after the commands below.
    past = time.time() - 60
    os.utime(path, (past, past))
    return path, expected


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["show", "--json"],
        ["show", "0123"],
        ["plan"],
        ["resume"],
        ["run", "badflows:chain", "--arg", "2"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_every_command_refuses_a_file_that_is_not_a_store_and_leaves_it_untouched(
    not_a_store: tuple[Path, str], workdir: Path, command: list[str]
) -> None:
    path, expected = not_a_store
    before = state_of(path)
    result = ferroflow(*command, "--db", str(path), cwd=workdir)
    one_line_error(result, str(path), expected)
    assert state_of(path) == before, "the file was changed, or -wal/-shm/temporary files were left"
    assert not (workdir / "executions.log").exists(), "a flow ran"


@pytest.mark.parametrize("conf", [{}, {"mode": "ro"}, {"read_only": True}], ids=["rw", "mode=ro", "read_only"])
def test_the_backend_refuses_a_file_that_is_not_a_store_in_every_mode(
    not_a_store: tuple[Path, str], conf: dict[str, object]
) -> None:
    path, expected = not_a_store
    before = state_of(path)
    with pytest.raises(exc.StorageFailure) as info:
        with backends.backend({"connection": f"sqlite:///{path}", **conf}):
            pass
    assert str(path) in str(info.value) and expected in str(info.value)
    with pytest.raises(exc.StorageFailure):
        _core.SqliteStore(path)
    assert state_of(path) == before


# -- read-only opening ---------------------------------------------------------------------------


def _run_chain(workdir: Path, db: Path, n: int = 3) -> str:
    result = ferroflow("run", "badflows:chain", "--arg", str(n), "--db", str(db), cwd=workdir)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def test_show_and_plan_open_read_only_and_write_nothing(workdir: Path) -> None:
    db = workdir / "flows.db"
    flow_uuid = _run_chain(workdir, db)
    os.chmod(db, 0o400)  # a writer would fail: the commands below must not need to write
    try:
        before = hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns
        for command in (["show"], ["show", flow_uuid], ["show", flow_uuid, "--json"], ["plan", flow_uuid]):
            result = ferroflow(*command, "--db", str(db), cwd=workdir)
            assert result.returncode == 0, (command, result.stderr)
        assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == before
    finally:
        os.chmod(db, 0o600)


def test_a_read_only_backend_reads_refuses_writes_and_never_creates(workdir: Path) -> None:
    db = workdir / "flows.db"
    flow_uuid = _run_chain(workdir, db, 2)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with backends.backend(f"sqlite:///{db}?mode=ro") as backend:
        assert backend.read_only and backend.store().read_only
        with backend.get_connection() as conn:
            fd = conn.get_flow_details(flow_uuid)
            assert [ad.state for ad in fd] == ["SUCCESS", "SUCCESS"]
            fd.meta["note"] = "changed"
            with pytest.raises(exc.StorageFailure, match="readonly"):
                conn.update_flow_details(fd)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before

    missing = workdir / "missing.db"
    with pytest.raises(exc.StorageFailure, match="no such file"):
        with backends.backend(f"sqlite:///{missing}?mode=ro"):
            pass
    assert not missing.exists()
    with pytest.raises(ValueError, match="Unknown mode 'sometimes'"):
        backends.fetch(f"sqlite:///{db}?mode=sometimes")
    with pytest.raises(ValueError, match="in-memory"):
        backends.fetch("sqlite://?mode=ro")


def _downgrade(db: Path, version: int) -> None:
    """Makes ``db`` a store as ferroflow's schema ``version`` (2 to 4) wrote it: before v5 an atom
    named its flow by the flow's uuid (the tables are rebuilt so, keeping every rowid); before v4
    rows had no reserve, before v3 flows no lease epoch."""
    epoch = ", lease_epoch INTEGER NOT NULL DEFAULT 0" if version >= 3 else ""
    reserve = ", reserve BLOB" if version >= 4 else ""
    flow_columns = "uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until" + (
        ", lease_epoch" if epoch else ""
    )
    atom_columns = (
        "name, atom_type, state, intention, results, failure, revert_results, revert_failure, version, meta, "
        "created_at, updated_at, resume" + (", reserve" if reserve else "")
    )
    raw = sqlite3.connect(db, isolation_level=None)  # (foreign keys off: the tables are rebuilt)
    raw.executescript(f"""
        BEGIN;
        CREATE TABLE old_flows (
            uuid TEXT PRIMARY KEY NOT NULL, parent_uuid TEXT NOT NULL REFERENCES logbooks(uuid) ON DELETE CASCADE,
            name TEXT NOT NULL, state TEXT, meta TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL,
            owner TEXT, lease_until REAL{epoch});
        INSERT INTO old_flows (rowid, {flow_columns}) SELECT id, {flow_columns} FROM flowdetails;
        CREATE TABLE old_atoms (
            uuid TEXT PRIMARY KEY NOT NULL, parent_uuid TEXT NOT NULL REFERENCES flowdetails(uuid) ON DELETE CASCADE,
            name TEXT NOT NULL, atom_type TEXT NOT NULL CHECK (atom_type IN ('TASK_DETAIL', 'RETRY_DETAIL')),
            state TEXT, intention TEXT NOT NULL, results TEXT NOT NULL, failure TEXT, revert_results TEXT NOT NULL,
            revert_failure TEXT, version TEXT, meta TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL,
            resume TEXT{reserve});
        INSERT INTO old_atoms (rowid, uuid, parent_uuid, {atom_columns})
            SELECT a.rowid, a.uuid, f.uuid, {", ".join(f"a.{c}" for c in atom_columns.split(", "))}
            FROM atomdetails AS a JOIN flowdetails AS f ON f.id = a.flow_id;
        DROP TABLE atomdetails;
        DROP TABLE flowdetails;
        ALTER TABLE old_flows RENAME TO flowdetails;
        ALTER TABLE old_atoms RENAME TO atomdetails;
        CREATE INDEX flowdetails_parent ON flowdetails(parent_uuid);
        CREATE INDEX atomdetails_parent ON atomdetails(parent_uuid);
        PRAGMA user_version = {version};
        COMMIT;
    """)
    raw.close()


def _rows(db: Path, query: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as raw:
        rows = raw.execute(query, params).fetchall()
    raw.close()
    return rows


def test_a_store_of_an_older_schema_is_shown_without_being_upgraded(workdir: Path) -> None:
    db = workdir / "old.db"
    flow_uuid = _run_chain(workdir, db, 2)
    _downgrade(db, 2)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    listing = ferroflow("show", "--db", str(db), cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    assert flow_uuid in listing.stdout and "2: 2 SUCCESS" in listing.stdout
    atoms = ferroflow("show", flow_uuid, "--db", str(db), cwd=workdir)
    assert atoms.returncode == 0 and "step-1" in atoms.stdout, atoms.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (2,)
    raw.close()
    # A command that writes upgrades it.
    assert ferroflow("resume", "--db", str(db), cwd=workdir).returncode == 0
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (_core.SqliteStore.in_memory().schema_version(),)
    raw.close()


def test_a_v4_store_is_upgraded_by_a_writer_and_its_flow_resumes(workdir: Path) -> None:
    db = workdir / "v4.db"
    flow_uuid = _run_chain(workdir, db, 3)
    _downgrade(db, 4)
    # Stopped after its first step, as a v4 ferroflow left it.
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE flowdetails SET state = 'SUSPENDED' WHERE uuid = ?", (flow_uuid,))
        raw.execute(
            "UPDATE atomdetails SET state = 'PENDING', results = 'null', resume = NULL "
            "WHERE parent_uuid = ? AND name != 'step-0'",
            (flow_uuid,),
        )
    raw.close()
    atoms = _rows(db, "SELECT rowid, uuid, name FROM atomdetails ORDER BY rowid")
    assert [name for _, _, name in atoms] == ["step-0", "step-1", "step-2"]
    (workdir / "executions.log").unlink()
    shown = ferroflow("show", flow_uuid, "--db", str(db), cwd=workdir)
    assert shown.returncode == 0 and "step-2" in shown.stdout, shown.stderr
    assert _rows(db, "PRAGMA user_version") == [(4,)], "a reader does not upgrade"
    resumed = ferroflow("resume", "--db", str(db), cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert (workdir / "executions.log").read_text().split() == ["step-1", "step-2"]
    assert _rows(db, "PRAGMA user_version") == [(_core.SqliteStore.in_memory().schema_version(),)]
    assert _rows(db, "SELECT rowid, uuid, name FROM atomdetails ORDER BY rowid") == atoms, "every row keeps its rowid"
    assert _rows(db, "SELECT state FROM flowdetails WHERE uuid = ?", flow_uuid) == [("SUCCESS",)]
    assert _rows(
        db,
        "SELECT a.name, a.state, a.results FROM atomdetails AS a JOIN flowdetails AS f ON f.id = a.flow_id "
        "WHERE f.uuid = ? ORDER BY a.rowid",
        flow_uuid,
    ) == [("step-0", "SUCCESS", "1"), ("step-1", "SUCCESS", "2"), ("step-2", "SUCCESS", "3")]
    assert _rows(db, "PRAGMA foreign_key_check") == []


# -- private by default --------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_created_0600_under_umask_022(workdir: Path) -> None:
    db = workdir / "private.db"
    previous = os.umask(0o022)
    try:
        subprocess_db = workdir / "cli.db"
        assert ferroflow("run", "badflows:chain", "--arg", "2", "--db", str(subprocess_db), cwd=workdir).returncode == 0
        assert _mode(subprocess_db) == 0o600
        engine = engines.load(_chain(3), backend=f"sqlite:///{db}")
        steps = engine.run_iter()
        next(steps)  # the store is open and written, its -wal and -shm files exist
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert (_mode(db), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
        for _ in steps:
            pass
    finally:
        os.umask(previous)
    leftovers = [p.name for p in workdir.iterdir() if p.name.endswith(".new")]
    assert leftovers == []


def _chain(n: int):
    from ferroflow import task
    from ferroflow.patterns import linear_flow

    class Add(task.Task):
        def execute(self, total):
            return total + 1

    flow = linear_flow.Flow("chain")
    flow.add(Add("a0", inject={"total": 0}, provides="t0"))
    for i in range(1, n):
        flow.add(Add(f"a{i}", rebind={"total": f"t{i - 1}"}, provides=f"t{i}"))
    return flow


def test_a_write_ahead_log_left_without_its_store_is_never_replayed_into_a_new_one(tmp_path) -> None:
    """A store deleted without its ``-wal`` (left by a process that exited without closing it):
    creating a new store at that path would make SQLite replay the old log into it and damage it,
    so it is refused, naming both files, and nothing is created; with the log removed, a new
    store is made."""
    db = tmp_path / "flows.db"
    leave_a_log = (
        "import os\n"
        "from ferroflow import engines\n"
        "from ferroflow.persistence import backends\n"
        "from ferroflow.benchmarking import flows\n"
        f"backend = backends.fetch('sqlite:///{db}')\n"
        "for _ in range(5):\n"
        "    engines.load(flows.small_linear(10), backend=backend).run()\n"
        "os._exit(0)  # (no close: the log stays)\n"
    )
    subprocess.run([sys.executable, "-c", leave_a_log], check=True, capture_output=True)
    wal = tmp_path / "flows.db-wal"
    assert wal.stat().st_size > 0
    db.unlink()

    backend = backends.fetch(f"sqlite:///{db}")
    with pytest.raises(exc.StorageFailure, match=r"flows\.db-wal' is there without it.*remove"):
        backend.get_connection()
    assert not db.exists()
    backend.close()

    wal.unlink()
    (tmp_path / "flows.db-shm").unlink(missing_ok=True)
    backend = backends.fetch(f"sqlite:///{db}")
    conn = backend.get_connection()
    assert list(conn.get_logbooks()) == []
    conn.close()
    backend.close()
