"""What every ``ferroflow`` command pays before its work: imports, and opening a store a killed
engine left. Built-in backends and engines are found without scanning the installed packages'
metadata (``importlib.metadata``: ~20 ms to import, a few more per scan); only a scheme or engine
that is not built in looks at entry points (tests/test_backend_conformance.py covers those
plugins). SQLite rebuilds the WAL index of a killed store while the command loads
(`ferroflow.cli.ahead`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def test_a_command_on_a_builtin_backend_never_imports_package_metadata(tmp_path: Path) -> None:
    sqlite, directory = tmp_path / "start.db", tmp_path / "start"
    program = textwrap.dedent(f"""
        import sys
        import ferroflow.cli
        from ferroflow import engines, task
        from ferroflow.patterns import linear_flow
        from ferroflow.persistence import backends

        class Noop(task.Task):
            def execute(self):
                pass

        for uri in ("sqlite:///{sqlite}", "dir://{directory}", "memory://"):
            backend = backends.fetch(uri)
            engines.load(linear_flow.Flow("f").add(Noop("a")), backend=backend, engine="serial").run()
            engines.load(linear_flow.Flow("g").add(Noop("b")), backend=backend, engine="parallel").run()
            backend.close()
        print(sorted(name for name in sys.modules if name.startswith("importlib.metadata")))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_command_line_imports_what_one_command_needs_only_when_it_runs() -> None:
    """Every command imports every command module and builds every command's parser: the demo's
    flow, the dir backend (delete), the benchmarks (bench), the package metadata (--version) and
    the engine (``show``, ``check`` and ``delete`` never run a flow) wait until their command
    runs."""
    program = (
        "import sys, ferroflow.cli; ferroflow.cli.build_parser(); print(sorted(set(sys.modules) & set(sys.argv[1:])))"
    )
    lazy = [
        "ferroflow.demo_flow",
        "ferroflow.persistence.backends.impl_dir",
        "ferroflow.cli.stores",
        "ferroflow.benchmarking.suite",
        "importlib.metadata",
        "ferroflow.engines",
    ]
    done = subprocess.run(
        [sys.executable, "-c", program, *lazy], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_running_a_flow_on_sqlite_loads_no_module_only_rare_paths_need(tmp_path: Path) -> None:
    """The pickle codec, the socket module (the host name comes from ``os.uname``) and time zones
    other than UTC load when used, not at every start of a program that runs a flow."""
    program = (
        "import sys\n"
        "from ferroflow import engines, task\n"
        "from ferroflow.patterns import linear_flow\n"
        "class T(task.Task):\n"
        "    def execute(self):\n"
        "        return 1\n"
        "engine = engines.load(linear_flow.Flow('f').add(T('a'), T('b')), backend=sys.argv[1])\n"
        "engine.run()\n"
        "print(engine.storage.get_flow_state(), sorted(set(sys.modules) & {'pickle', 'socket', 'zoneinfo'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, f"sqlite:///{tmp_path / 'run.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "SUCCESS []", done.stdout


def test_commands_on_sqlite_never_load_the_dir_backend(tmp_path: Path) -> None:
    """The ``dir://`` backend (with the socket, shutil and compression modules it brings, ~6 ms)
    loads only for a ``dir://`` store: listing and resuming a SQLite store's flows tell backends
    apart without it."""
    db = tmp_path / "resume.db"
    _flow_saved_by_a_child(db, atoms=2)
    program = (
        "import sys, ferroflow.cli; status = ferroflow.cli.main(sys.argv[1:]); "
        "print(status, sorted(set(sys.modules) & {'ferroflow.persistence.backends.impl_dir', 'socket'}))"
    )
    for argv in (["resume", "--db", str(db)], ["show", "--db", str(db)]):
        done = subprocess.run(
            [sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout.strip().splitlines()[-1] == "0 []", (argv, done.stdout)


def test_show_reads_a_flow_without_loading_the_engine(tmp_path: Path) -> None:
    """``ferroflow show FLOW`` (and listing) reads rows; only commands that run or plan a flow
    load the engine (its modules are ~30 ms of a command's start)."""
    db = tmp_path / "show.db"
    flow_uuid = _flow_saved_by_a_child(db, atoms=2, store={"x": 1})
    show = (
        "import sys, ferroflow.cli; status = ferroflow.cli.main(sys.argv[1:]); "
        "print(status, sorted(m for m in sys.modules if m.startswith('ferroflow.engines')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", show, "show", flow_uuid, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "0 []", done.stdout
    shown = "\n".join(lines[:-1])
    assert "a" in shown and "b" in shown and "_TaskFlow_INJECTOR" not in shown, shown


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["resume", "--db", "a.db"], None, "a.db"),
        (["resume", "--db=b.db", "FLOW"], None, "b.db"),
        (["show", "--db", "sqlite:///abs/c.db?durability=batch"], None, "/abs/c.db"),
        (["show", "--db", "sqlite://rel/d.db"], None, "rel/d.db"),
        (["show"], "e.db", "e.db"),
        (["show"], None, "ferroflow.db"),
        (["show", "--db", "postgresql://u@h/db"], None, None),
        (["show", "--db", "dir:///var/flows"], None, None),
        (["run", "f:make", "--", "--db", "x.db"], None, "ferroflow.db"),
    ],
)
def test_the_store_recovered_ahead_is_the_one_the_command_names(
    argv: list[str], env: str | None, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferroflow.cli import ahead

    if env is None:
        monkeypatch.delenv(ahead.DB_ENV, raising=False)
    else:
        monkeypatch.setenv(ahead.DB_ENV, env)
    assert ahead._sqlite_path(argv) == expected


def test_a_store_a_killed_engine_left_is_recovered_ahead_and_closed_clean(tmp_path: Path) -> None:
    """The killed writer's WAL is read by the connection `ahead` opens while the command loads;
    the command sees every committed row, and its store, the last connection to close, still
    checkpoints the WAL away (the recovering connection never does, and goes first)."""
    db = tmp_path / "killed.db"
    flow_uuid = _flow_saved_by_a_child(db, atoms=50, killed=True)
    assert (tmp_path / "killed.db-wal").stat().st_size > 0
    show = (
        "import sys, ferroflow.cli; from ferroflow.cli import ahead; "
        "started = []; real = ahead.WalRecovery.__init__; "
        "ahead.WalRecovery.__init__ = lambda self, path: (started.append(path), real(self, path))[1]; "
        "status = ferroflow.cli.main(sys.argv[1:]); print(status, started)"
    )

    def command(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", show, *argv, "--db", str(db)], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout.strip().splitlines()[-1] == f"0 [{str(db)!r}]", done.stdout
        return done.stdout

    shown = command("show", flow_uuid)
    assert "SUCCESS" in shown and "a49" in shown, shown
    # A command that opens the store to write closes it last: the WAL is checkpointed away.
    assert "nothing to resume" in command("resume")
    assert not (tmp_path / "killed.db-wal").exists()


def test_only_commands_that_open_the_store_recover_it_and_a_file_that_is_no_store_is_left_alone(
    tmp_path: Path,
) -> None:
    from ferroflow.cli import ahead

    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("not a database")
    (tmp_path / "notes.db-wal").write_text("")
    ahead.start("bench", ["bench", "--db", str(not_a_store)])
    assert ahead.current is None
    ahead.start("show", ["show", "--db", str(not_a_store)])
    assert ahead.current is not None
    ahead.release()  # (the recovery failed: nothing is held, nothing raised)
    assert ahead.current is None
    assert not_a_store.read_text() == "not a database"


def _flow_saved_by_a_child(db: Path, atoms: int, store: dict[str, int] | None = None, killed: bool = False) -> str:
    """The uuid of a flow of ``atoms`` no-op tasks ``a0``, ``a1``... run to its end by another
    process in the SQLite file ``db``; ``killed``: that process then exits as a kill would,
    closing nothing (its WAL left as it is)."""
    program = textwrap.dedent(f"""
        import os
        from ferroflow import engines, task
        from ferroflow.patterns import linear_flow
        from ferroflow.persistence import backends

        class Noop(task.Task):
            def execute(self):
                pass

        backend = backends.fetch("sqlite:///{db}")
        flow = linear_flow.Flow("f").add(*[Noop(f"a{{i}}") for i in range({atoms})])
        engine = engines.load(flow, backend=backend, store={store!r})
        engine.run()
        print(engine.storage.flow_uuid, flush=True)
        os._exit(0) if {killed!r} else backend.close()
    """)
    made = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    return made.stdout.strip().splitlines()[-1]
