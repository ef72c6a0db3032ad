"""The command line on every durable backend: ``--db`` takes a SQLite file, a ``dir://`` directory
or a PostgreSQL database (`store_cases.DURABLE_BACKENDS`). The real ``ferroflow`` executable runs
in subprocesses: a run killed part way, then ``show``, ``plan``, ``graph`` and ``check`` (which
write nothing), ``resume`` (which finishes it without running a finished atom again) and
``delete``. A store that does not exist is an error and is never created; what a backend cannot
do is refused, naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import postgres_server
from cli_support import (
    deploy,
    env,
    ferroflow,
    ferroflow_executable,
    flow_uuid_in,
    make_workdir,
    one_line_error,
    take_journal,
)
from store_cases import StoreCase


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path)


def _store_uri(case: StoreCase, workdir: Path) -> str:
    home = workdir / "stores"
    home.mkdir(exist_ok=True)
    return case.uri(home)


def _killed_run(workdir: Path, uri: str) -> str:
    """A flow whose process was SIGKILLed in atom ``c``: a and b SUCCESS, c RUNNING, d PENDING."""
    deploy(workdir, kill="c")
    result = ferroflow("run", "appflows:make", "--db", uri, "--no-progress", cwd=workdir)
    assert result.returncode == -9, (result.stdout, result.stderr)
    assert take_journal(workdir) == ["execute a", "execute b", "execute c"]
    deploy(workdir)
    return flow_uuid_in(result.stdout)


def _tree(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file and directory under ``path``: mode, modification time and content."""
    found: dict[str, tuple[int, int, bytes]] = {}
    for item in sorted(path.rglob("*")):
        info = item.lstat()
        content = item.read_bytes() if item.is_file() and not item.is_symlink() else b""
        found[str(item.relative_to(path))] = (info.st_mode, info.st_mtime_ns, content)
    return found


def _state_of_store(case: StoreCase, uri: str, flow_uuid: str) -> Any:
    """What the store holds, to compare before and after a read-only command."""
    snapshot = case.snapshot(uri, flow_uuid)
    if case.name == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        return snapshot, {p.name: p.read_bytes() for p in sorted(path.parent.glob(path.name + "*"))}
    if case.name == "dir":
        return snapshot, _tree(Path(uri.removeprefix("dir://")))
    return snapshot


# -- show, plan, graph, check, resume, delete -----------------------------------------------------


def test_show_plan_resume_and_delete_on_each_backend(durable_backend: StoreCase, workdir: Path) -> None:
    uri = _store_uri(durable_backend, workdir)
    flow_uuid = _killed_run(workdir, uri)
    before = _state_of_store(durable_backend, uri, flow_uuid)

    listed = ferroflow("show", "--db", uri, cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert flow_uuid in listed.stdout and "RUNNING (dead: " in listed.stdout
    assert "4: 2 SUCCESS, 1 RUNNING, 1 PENDING" in listed.stdout and "appflows.make" in listed.stdout
    as_json = json.loads(ferroflow("show", "--db", uri, "--json", cwd=workdir).stdout)
    assert [(flow["uuid"], flow["state"], flow["atoms"]) for flow in as_json] == [
        (flow_uuid, "RUNNING", {"SUCCESS": 2, "RUNNING": 1, "PENDING": 1})
    ]
    assert as_json[0]["owner"]["live"] is False
    atoms = json.loads(ferroflow("show", flow_uuid[:8], "--db", uri, "--json", cwd=workdir).stdout)["atoms"]
    assert [(atom["name"], atom["state"], atom["results"]) for atom in atoms] == [
        ("a", "SUCCESS", 1),
        ("b", "SUCCESS", 2),
        ("c", "RUNNING", None),
        ("d", "PENDING", None),
    ]

    plan = ferroflow("plan", "--db", uri, "--json", cwd=workdir)
    assert plan.returncode == 0, plan.stderr
    actions = {entry["name"]: entry["action"] for entry in json.loads(plan.stdout)["entries"]}
    assert actions == {"a": "reuse", "b": "reuse", "c": "rerun", "d": "run"}
    graph = ferroflow("graph", flow_uuid, "--db", uri, cwd=workdir)
    assert graph.returncode == 0 and graph.stdout.startswith(f"// flow {flow_uuid}"), graph.stderr
    check = ferroflow("check", "--db", uri, cwd=workdir)
    assert check.returncode == 1 and f"flow {flow_uuid} (app, RUNNING): dead-owner" in check.stdout, check.stderr
    dry = ferroflow("prune", "--state", "RUNNING", "--older-than", "0", "--dry-run", "--db", uri, cwd=workdir)
    assert dry.returncode == 0 and f"would delete flow {flow_uuid}" in dry.stdout, dry.stderr
    # Nothing ran, and the reading commands wrote nothing (not even a lock file or a schema).
    assert take_journal(workdir) == []
    assert _state_of_store(durable_backend, uri, flow_uuid) == before

    resumed = ferroflow("resume", "--db", uri, "--no-progress", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "SUCCESS" in resumed.stdout and "2 of 4 atoms reused" in resumed.stdout
    assert take_journal(workdir) == ["execute c", "execute d"]
    finished = ferroflow("show", flow_uuid, "--db", uri, "--json", cwd=workdir)
    assert json.loads(finished.stdout)["state"] == "SUCCESS"
    assert [atom["results"] for atom in json.loads(finished.stdout)["atoms"]] == [1, 2, 3, 4]
    nothing = ferroflow("resume", "--db", uri, cwd=workdir)
    assert nothing.returncode == 0 and "nothing to resume" in nothing.stdout
    rewound = ferroflow("rewind", flow_uuid, "--to", "b", "--db", uri, "--no-progress", cwd=workdir)
    assert rewound.returncode == 0 and "rewound to b: 2 atoms run again" in rewound.stdout, rewound.stderr
    assert take_journal(workdir) == ["revert d", "revert c", "execute c", "execute d"]

    deleted = ferroflow("delete", flow_uuid, "--db", uri, cwd=workdir)
    assert deleted.returncode == 0 and f"deleted flow {flow_uuid}" in deleted.stdout, deleted.stderr
    empty = ferroflow("show", "--db", uri, cwd=workdir)
    assert empty.returncode == 0 and empty.stdout.startswith("no flows in "), empty.stderr
    with durable_backend.connection(uri) as conn:
        assert list(conn.get_logbooks()) == []


def test_a_flow_held_by_a_live_engine_is_not_deleted_until_that_engine_dies(
    durable_backend: StoreCase, workdir: Path
) -> None:
    uri = _store_uri(durable_backend, workdir)
    deploy(workdir, sleep=30)
    process = subprocess.Popen(
        [*ferroflow_executable(), "run", "appflows:make", "--db", uri, "--no-progress"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert process.stdout is not None
        flow_uuid = flow_uuid_in(process.stdout.readline())
        deadline = time.monotonic() + 60
        while "execute a" not in ((workdir / "journal").read_text() if (workdir / "journal").exists() else ""):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        listed = ferroflow("show", "--db", uri, cwd=workdir)
        assert "RUNNING (live: owner " in listed.stdout, listed.stdout
        refused = ferroflow("delete", flow_uuid, "--db", uri, cwd=workdir)
        assert refused.returncode == 1
        one_line_error(refused.stderr, "cannot delete", flow_uuid, "live engine")
    finally:
        process.kill()
        process.wait()
    # Its process is gone: the lease no longer protects the flow.
    deleted = ferroflow("delete", flow_uuid, "--db", uri, cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert ferroflow("show", "--db", uri, "--json", cwd=workdir).stdout.strip() == "[]"


# -- no such store: an error, nothing created -------------------------------------------------------


def test_a_missing_dir_store_is_an_error_and_is_not_created(workdir: Path) -> None:
    missing = workdir / "nowhere" / "store"
    for command in (["show"], ["plan"], ["check"], ["graph", "0000"], ["resume"], ["delete", "0000"]):
        result = ferroflow(*command, "--db", f"dir://{missing}", cwd=workdir)
        assert result.returncode == 2, (command, result.stderr)
        one_line_error(result.stderr, "no store at", f"dir://{missing}", "does not exist")
    made = ferroflow("run", "appflows:make", "--db", f"dir://{missing}", cwd=workdir)
    assert made.returncode == 2
    one_line_error(made.stderr, "cannot create the store", str(missing.parent))
    assert not missing.parent.exists()
    # A directory that is not a store is not made one.
    other = workdir / "other"
    other.mkdir()
    result = ferroflow("resume", "--db", f"dir://{other}", cwd=workdir)
    assert result.returncode == 2
    one_line_error(result.stderr, "is not a ferroflow dir:// store")
    assert list(other.iterdir()) == []


def test_a_missing_postgres_database_is_an_error_and_is_not_created(workdir: Path) -> None:
    server = postgres_server.server()
    name = f"ff_missing_{os.getpid()}_{os.urandom(4).hex()}"
    uri = server.uri(name)
    with_password = uri.replace("postgres@", "postgres:sekret-pw@", 1)
    for command in (["show"], ["plan"], ["check"], ["resume"], ["delete", "0000"], ["run", "appflows:make"]):
        result = ferroflow(*command, "--db", with_password, cwd=workdir)
        assert result.returncode == 2, (command, result.stderr)
        line = one_line_error(result.stderr, "no database", name, "does not exist")
        assert "sekret-pw" not in line
    assert server.execute("SELECT 1 FROM pg_database WHERE datname = %s", name) == []


def test_a_postgres_database_without_a_store_is_refused_and_left_empty(workdir: Path) -> None:
    import psycopg

    uri = postgres_server.fresh_uri()
    for command in (["show"], ["plan"], ["graph", "0000"], ["check"], ["resume"], ["delete", "0000"]):
        result = ferroflow(*command, "--db", uri, cwd=workdir)
        assert result.returncode == 2, (command, result.stderr)
        one_line_error(result.stderr, "no ferroflow store in", uri.rpartition("/")[2])
    with psycopg.connect(uri) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchall() == []
    # `run` creates the tables in an existing database.
    deploy(workdir)
    made = ferroflow("run", "appflows:make", "--db", uri, "--no-progress", cwd=workdir)
    assert made.returncode == 0, made.stderr
    assert "SUCCESS" in ferroflow("show", "--db", uri, cwd=workdir).stdout


def test_other_schemes_are_refused_naming_what_the_command_line_takes(workdir: Path) -> None:
    for uri, words in (
        ("memory://", ["memory:// store lives and dies with one process", "dir:///path", "postgresql://"]),
        ("redis://localhost/0", ["the command line takes", "sqlite:///path", "'redis://localhost/0'"]),
    ):
        result = ferroflow("show", "--db", uri, cwd=workdir)
        assert result.returncode == 2
        one_line_error(result.stderr, *words)
    by_env = ferroflow("show", cwd=workdir, environ=env(FERROFLOW_DB=f"dir://{workdir / 'none'}"))
    assert by_env.returncode == 2
    one_line_error(by_env.stderr, "no store at", "$FERROFLOW_DB")


# -- what a dir:// store cannot do ----------------------------------------------------------------


def test_a_dir_store_refuses_pruning_by_age_and_deleting_one_flow_of_a_shared_logbook(workdir: Path) -> None:
    store = workdir / "store"
    uri = f"dir://{store}"
    deploy(workdir)
    assert ferroflow("run", "appflows:make", "--db", uri, "--no-progress", cwd=workdir).returncode == 0
    aged = ferroflow("prune", "--state", "SUCCESS", "--older-than", "7d", "--db", uri, cwd=workdir)
    assert aged.returncode == 2
    one_line_error(aged.stderr, "--older-than", "dir:// store", "--older-than 0")

    # Two flows saved in one logbook (as the Python API may): neither can be deleted alone.
    script = (
        "from ferroflow import engines; from ferroflow.persistence import backends, models\n"
        f"backend, book = backends.fetch({uri!r}), models.LogBook('shared')\n"
        "for _ in range(2):\n"
        "    print(engines.load_from_factory('appflows.make', backend=backend, book=book).storage.flow_uuid)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    shared = done.stdout.split()
    refused = ferroflow("delete", shared[0], "--db", uri, cwd=workdir)
    assert refused.returncode == 1
    one_line_error(refused.stderr, "cannot delete", shared[0], "dir:// store", "logbook", "SQLite or PostgreSQL")
    listed = json.loads(ferroflow("show", "--db", uri, "--json", cwd=workdir).stdout)
    assert {flow["uuid"] for flow in listed} >= set(shared)
    assert {flow["updated_at"] for flow in listed} == {None}  # the store keeps no such time

    pruned = ferroflow("prune", "--state", "SUCCESS", "--older-than", "0", "--db", uri, cwd=workdir)
    assert pruned.returncode == 0 and "deleted 1 flow in state SUCCESS" in pruned.stdout, pruned.stderr


def test_a_dir_store_opened_read_only_refuses_every_write_and_creates_nothing(tmp_path: Path) -> None:
    from ferroflow import exceptions
    from ferroflow.cli import readonly_dir
    from ferroflow.persistence import backends, models

    root = tmp_path / "store"
    with backends.backend(f"dir://{root}") as backend, backend.get_connection() as conn:
        book = models.LogBook("book")
        book.add(models.FlowDetail("flow", uuid="f1"))
        conn.save_logbook(book)
    before = _tree(root)
    reader = readonly_dir.ReadOnlyDirBackend({"connection": f"dir://{root}"})
    with reader.get_connection() as conn:
        conn.upgrade()  # only checks the layout
        assert [fd.uuid for fd in conn.get_flows_for_book(book.uuid)] == ["f1"]
        for write in (
            lambda: conn.save_logbook(models.LogBook("other")),
            lambda: conn.update_flow_details(models.FlowDetail("flow", uuid="f1")),
            lambda: conn.acquire_lease("f1", "me", 30),
            lambda: conn.destroy_logbook(book.uuid),
            conn.clear_all,
        ):
            with pytest.raises(exceptions.StorageFailure, match="opened read-only"):
                write()
    assert _tree(root) == before
    missing = readonly_dir.ReadOnlyDirBackend({"connection": f"dir://{tmp_path / 'missing'}"})
    with missing.get_connection() as conn, pytest.raises(exceptions.StorageFailure, match="Missing required"):
        conn.upgrade()
    assert not (tmp_path / "missing").exists()


def test_sqlite_options_in_the_db_uri_reach_the_store(workdir: Path) -> None:
    """``--db 'sqlite:///path?durability=batch'``: the run and the resume write with group commit
    (a kill in ``c`` loses at most the open group: here ``a`` and ``b`` run again), and a
    read-only command opens the same file without the options; a bad option is a usage error."""
    db = workdir / "batch.db"
    uri = f"sqlite:///{db}?durability=batch&batch_transitions=1000&batch_ms=60000"
    deploy(workdir, kill="c")
    killed = ferroflow("run", "appflows:make", "--db", uri, "--no-progress", cwd=workdir)
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    assert take_journal(workdir) == ["execute a", "execute b", "execute c"]
    deploy(workdir)
    uuid = flow_uuid_in(killed.stdout)
    shown = ferroflow("show", uuid, "--db", uri, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    # Nothing of the run was committed: the open group (a, b, c's transitions) died with it.
    from ferroflow.persistence import backends

    with backends.backend(f"sqlite:///{db}?mode=ro") as backend, backend.get_connection() as conn:
        saved = {ad.name: ad.state for ad in conn.get_flow_details(uuid) if not ad.name.startswith("_")}
    assert saved == {"a": "PENDING", "b": "PENDING", "c": "PENDING", "d": "PENDING"}
    resumed = ferroflow("resume", uuid, "--db", uri, "--no-progress", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert take_journal(workdir) == ["execute a", "execute b", "execute c", "execute d"]

    bad = ferroflow("show", "--db", f"sqlite:///{db}?durability=whenever", cwd=workdir)
    assert bad.returncode == 0, bad.stderr  # read-only: writes nothing, so takes no write options
    bad = ferroflow("resume", uuid, "--db", f"sqlite:///{db}?durability=whenever", cwd=workdir)
    assert bad.returncode == 2, bad.stderr
    one_line_error(bad.stderr, "Unknown durability 'whenever'")
