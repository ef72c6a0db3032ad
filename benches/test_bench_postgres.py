"""ferroflow's engine on PostgreSQL: the run phase of no-op flows, per atom (issue 12's goal: at most
150 µs per atom for a linear flow of 10,000 atoms on a local server, default durability).

Groups ``run-<store>-<engine>-<shape>``, ``<store>`` being ``postgres`` (``durability=process``, the
default: asynchronous commit, each commit survives the engine's death) or ``postgres-fsync``
(``durability=fsync``: each commit waits for the server's WAL flush). The server is the tests' one
(tests/postgres_server.py: a throwaway local cluster, or ``$FERROFLOW_TEST_POSTGRES_URI``); each
round runs on a new database. Without a server these are skipped (failed when ``$CI`` is set).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest

from bench_support import FSYNC_CAP, FSYNC_CI_CAP, SIZES, bench_phase, cap
from ferroflow import states
from ferroflow.benchmarking.ferro import FerroflowRun
from ferroflow.persistence import backends

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import postgres_server

#: ``durability`` option of each store.
DURABILITY = {"postgres": "process", "postgres-fsync": "fsync"}


class PostgresRun(FerroflowRun):
    """One ferroflow run of ``n`` no-op atoms of ``shape`` on a new PostgreSQL database, phase by phase
    (the phases of `ferroflow.benchmarking.ferro.FerroflowRun`, which this is with another store)."""

    def __init__(self, shape: str, n: int, store: str = "postgres", engine: str = "serial") -> None:
        super().__init__(shape, n, engine=engine)  # (in memory: no SQLite file is made)
        self.store = store
        self.backend = backends.fetch(f"{postgres_server.fresh_uri()}?durability={DURABILITY[store]}")
        with self.backend.get_connection() as conn:
            conn.upgrade()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("shape", "engine"), [("linear", "serial"), ("graph", "serial"), ("unordered", "parallel")])
@pytest.mark.parametrize("store", list(DURABILITY))
def test_run_on_postgres(benchmark, ci_mode: bool, store: str, shape: str, engine: str, n: int) -> None:
    if store == "postgres-fsync":
        cap(n, ci_mode, full=FSYNC_CAP, ci=FSYNC_CI_CAP)
    postgres_server.server()  # skipped (failed in CI) without a server
    benchmark.group = f"run-{store}-{engine}-{shape}"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: PostgresRun(shape, n, store, engine), "run")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("phase", ["prepare"])
def test_prepare_on_postgres(benchmark, phase: str, n: int) -> None:
    """Saving a fresh flow's atom details (one statement for all of them)."""
    postgres_server.server()
    benchmark.group = "phase-prepare-postgres-linear"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: PostgresRun("linear", n), phase)


class TaskflowPostgresRun:
    """The same linear run on TaskFlow's SQLAlchemy backend on the same server (its own defaults: the
    server's synchronous commit), for comparison."""

    phases = ("build", "load", "compile", "prepare", "run")

    def __init__(self, n: int) -> None:
        from taskflow.persistence import backends as taskflow_backends

        from ferroflow.benchmarking import taskflow_peer

        self.peer, self.n = taskflow_peer, n
        uri = postgres_server.fresh_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        self.backend: Any = taskflow_backends.fetch({"connection": uri})
        with contextlib.closing(self.backend.get_connection()) as conn:
            conn.upgrade()
        self.flow: Any = None
        self.engine: Any = None

    def build(self) -> None:
        self.flow = self.peer.build("linear", self.n)

    def load(self) -> None:
        from taskflow import engines as taskflow_engines
        from taskflow.persistence import models as taskflow_models

        self.engine = taskflow_engines.load(self.flow, book=taskflow_models.LogBook("bench"), backend=self.backend)

    def compile(self) -> None:
        self.engine.compile()

    def prepare(self) -> None:
        self.engine.prepare()
        self.engine.validate()

    def run(self) -> None:
        self.engine.run()
        if self.engine.storage.get_flow_state() != states.SUCCESS:
            raise RuntimeError("TaskFlow's linear flow did not end SUCCESS on PostgreSQL")

    def close(self) -> None:
        self.engine = self.flow = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None


@pytest.mark.parametrize("n", [100, 1_000])
def test_taskflow_run_on_postgres(benchmark, ci_mode: bool, n: int) -> None:
    """TaskFlow 6.5 on the same server: about 50-85 ms per atom, growing with N (one round at 1,000)."""
    pytest.importorskip("taskflow", reason="TaskFlow is a peer: pip install 'ferroflow[compare]'")
    cap(n, ci_mode, ci=100)
    postgres_server.server()
    benchmark.group = "run-postgres-taskflow-serial-linear"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: TaskflowPostgresRun(n), "run", rounds=1 if n > 100 else 3)
