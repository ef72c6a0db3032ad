"""ferroflow's runs: a flow of no-op atoms built, loaded, compiled, prepared and run, phase by phase."""

from __future__ import annotations

import os
from typing import Any

from ferroflow import engines, states
from ferroflow.benchmarking import dbfiles, flows
from ferroflow.persistence import models

#: Engines a run can use.
ENGINES = ("serial", "parallel")


class FerroflowRun:
    """One ferroflow run of ``n`` no-op atoms of ``shape``, in memory or on a fresh SQLite file.

    Phases: ``build`` (the flow objects), ``load`` (`engines.load`: engine and, on SQLite, the flow
    detail saved), ``compile``, ``prepare`` (with ``validate``; on SQLite, the atom details
    written) and ``run``. The database is opened before the first phase and removed by ``close``.
    """

    phases = ("build", "load", "compile", "prepare", "run")

    def __init__(
        self,
        shape: str,
        n: int,
        store: str = dbfiles.MEMORY,
        engine: str = "serial",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
        self.shape, self.n, self.store, self.engine_kind = shape, n, dbfiles.check_store(store), engine
        self.flow: Any = None
        self.engine: Any = None
        self.db_path = None
        self.backend: Any = None
        if store != dbfiles.MEMORY:
            from ferroflow.persistence import backends

            self.db_path = dbfiles.new_db_path(workdir, f"ferroflow-{shape}-{n}")
            self.backend = backends.fetch(dbfiles.ferroflow_uri(self.db_path, store))
            with self.backend.get_connection() as conn:
                conn.upgrade()

    def build(self) -> None:
        self.flow = flows.build(self.shape, self.n)

    def load(self) -> None:
        book = models.LogBook("bench") if self.backend is not None else None
        self.engine = engines.load(self.flow, book=book, backend=self.backend, engine=self.engine_kind)

    def compile(self) -> None:
        self.engine.compile()

    def prepare(self) -> None:
        self.engine.prepare()
        self.engine.validate()

    def run(self) -> None:
        self.engine.run()
        state = self.engine.storage.get_flow_state()
        if state != states.SUCCESS:
            raise RuntimeError(f"ferroflow {self.shape} flow of {self.n} atoms ended {state}, not SUCCESS")

    def close(self) -> None:
        self.engine = self.flow = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        dbfiles.remove_db(self.db_path)
