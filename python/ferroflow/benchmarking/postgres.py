"""Runs of no-op flows on a PostgreSQL server: ferroflow's store and TaskFlow's SQLAlchemy backend
side by side (shared by ``benches/test_bench_postgres.py`` and ``ferroflow bench --board``).

Each run gets a new database on the server (`new_database`), dropped by ``close``. ferroflow runs
with ``durability=process`` (its default: asynchronous commit, each commit survives the engine's
death) or ``fsync``; TaskFlow with its own defaults (the server's synchronous commit).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ferroflow import states
from ferroflow.benchmarking import phases
from ferroflow.benchmarking.ferro import FerroflowRun

__all__ = ["FerroflowPostgresRun", "TaskflowPostgresRun", "drop_database", "new_database", "run_us_per_atom"]

#: ``durability`` option of each store name.
DURABILITY = {"postgres": "process", "postgres-fsync": "fsync"}


def _with_dbname(uri: str, dbname: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))


def new_database(uri: str, prefix: str = "ferroflow_bench") -> str:
    """Creates a new database on the server of ``uri`` (whose role may create databases); its URI."""
    import psycopg

    dbname = f"{prefix}_{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return _with_dbname(uri, dbname)


def drop_database(admin_uri: str, uri: str) -> None:
    """Drops the database of ``uri`` (connected through ``admin_uri``'s database)."""
    import psycopg

    dbname = urlsplit(uri).path.lstrip("/")
    with contextlib.suppress(Exception), psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class FerroflowPostgresRun(FerroflowRun):
    """One ferroflow run of ``n`` no-op atoms of ``shape`` on a new database of the server of
    ``server_uri``, phase by phase (the phases of `FerroflowRun`, with another store)."""

    def __init__(self, server_uri: str, shape: str, n: int, store: str = "postgres", engine: str = "serial") -> None:
        from ferroflow.persistence import backends

        super().__init__(shape, n, engine=engine)  # (in memory: no SQLite file is made)
        self.store = store
        self.server_uri = server_uri
        self.db_uri = new_database(server_uri)
        self.backend = backends.fetch(f"{self.db_uri}?durability={DURABILITY[store]}")
        with self.backend.get_connection() as conn:
            conn.upgrade()

    def close(self) -> None:
        super().close()
        drop_database(self.server_uri, self.db_uri)


class TaskflowPostgresRun:
    """The same linear run on TaskFlow's SQLAlchemy backend (``postgresql+psycopg://``) on a new
    database of the same server, with its own defaults."""

    phases = ("build", "load", "compile", "prepare", "run")

    def __init__(self, server_uri: str, n: int) -> None:
        from taskflow.persistence import backends as taskflow_backends

        from ferroflow.benchmarking import taskflow_peer

        self.peer, self.n = taskflow_peer, n
        self.server_uri = server_uri
        self.db_uri = new_database(server_uri, "taskflow_bench")
        uri = self.db_uri.replace("postgresql://", "postgresql+psycopg://", 1)
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
        drop_database(self.server_uri, self.db_uri)


def run_us_per_atom(make_run: Any, n: int, rounds: int) -> list[float]:
    """The run phase of ``rounds`` fresh runs (``make_run()``), in µs per atom each."""
    costs = []
    for _ in range(rounds):
        run = make_run()
        try:
            phases.collect_garbage()
            phases.run_until(run, "run")
            started = time.perf_counter()
            phases.run_phase(run, "run")
            costs.append((time.perf_counter() - started) / n * 1e6)
        finally:
            run.close()
    return costs
