"""What every ``ferroflow`` command pays before its work: imports. Built-in backends and engines
are found without scanning the installed packages' metadata (``importlib.metadata``: ~20 ms to
import, a few more per scan); only a scheme or engine that is not built in looks at entry points
(tests/test_backend_conformance.py covers those plugins)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


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


def test_show_reads_a_flow_without_loading_the_engine(tmp_path: Path) -> None:
    """``ferroflow show FLOW`` (and listing) reads rows; only commands that run or plan a flow
    load the engine (its modules are ~30 ms of a command's start)."""
    db = tmp_path / "show.db"
    make = textwrap.dedent(f"""
        from ferroflow import engines, task
        from ferroflow.patterns import linear_flow
        from ferroflow.persistence import backends

        class Noop(task.Task):
            def execute(self):
                pass

        backend = backends.fetch("sqlite:///{db}")
        engine = engines.load(linear_flow.Flow("f").add(Noop("a"), Noop("b")), backend=backend, store={{"x": 1}})
        engine.run()
        print(engine.storage.flow_uuid)
        backend.close()
    """)
    made = subprocess.run([sys.executable, "-c", make], capture_output=True, text=True, timeout=120, check=True)
    flow_uuid = made.stdout.strip().splitlines()[-1]
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
