"""The same scenarios on OpenStack TaskFlow (a peer; imported only when ``taskflow`` is installed).

The flows are built from TaskFlow's own patterns and tasks, with the same shapes and the same DAG
as ferroflow's (`flows.dag_requires`). In memory TaskFlow keeps its in-memory backend; on SQLite
it uses its SQLAlchemy backend (``sqlite:////abs/path.db``, SQLite's defaults: rollback journal,
``synchronous=FULL``). `build` and `small_linear` are the factories a fresh process re-imports
to resume a saved flow.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any
from urllib.parse import urlsplit

from taskflow import engines, states, task
from taskflow.patterns import graph_flow, linear_flow, unordered_flow
from taskflow.persistence import backends, models

from ferroflow.benchmarking import dbfiles, flows


class Noop(task.Task):
    """Does nothing (TaskFlow's twin of `flows.Noop`)."""

    def execute(self) -> None:
        return None


class Joiner(task.Task):
    """Requires whatever its ``requires`` says, returns a constant (TaskFlow's `flows.Joiner`)."""

    def execute(self, **inputs: Any) -> int:
        return 1


def build(shape: str, n: int) -> Any:
    """The TaskFlow flow of ``shape`` with ``n`` no-op atoms."""
    if shape == "linear":
        return linear_flow.Flow("linear").add(*[Noop(f"t{i}") for i in range(n)])
    if shape == "unordered":
        return unordered_flow.Flow("unordered").add(*[Noop(f"t{i}") for i in range(n)])
    if shape == "graph":
        atoms = [
            Joiner(f"t{i}", provides=f"v{i}", requires=[f"v{j}" for j in required])
            for i, required in enumerate(flows.dag_requires(n))
        ]
        return graph_flow.Flow("dag").add(*atoms)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(flows.SHAPES)}")


def small_linear(n: int = 10) -> Any:
    """Factory of the small resumable flows."""
    return build("linear", n)


def uri(path: Any) -> str:
    """SQLAlchemy's URI of an absolute path (four slashes)."""
    return f"sqlite:///{path}"


def conf(location: Any) -> dict[str, Any]:
    """TaskFlow's backend conf for a benchmark location: a SQLite file path (SQLAlchemy), a
    ``dir:///path`` URI (its directory backend) or a ``postgresql://`` URI (SQLAlchemy with psycopg)."""
    if not isinstance(location, str):
        return {"connection": uri(location)}
    if location.startswith("dir://"):
        return {"connection": "dir", "path": urlsplit(location).path}
    if location.startswith(("postgresql://", "postgres://")):
        return {"connection": "postgresql+psycopg://" + location.split("://", 1)[1]}
    raise ValueError(f"no TaskFlow backend for {location!r}")


def open_backend(location: Any) -> Any:
    """TaskFlow's backend at ``location`` (see `conf`), its schema created."""
    backend = backends.fetch(conf(location))
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


class TaskflowRun:
    """One TaskFlow run of ``n`` no-op atoms of ``shape``; phases like `ferro.FerroflowRun`.

    TaskFlow has one SQLite durability (its defaults): the ``sqlite`` store.
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
        if store not in (dbfiles.MEMORY, dbfiles.SQLITE):
            raise ValueError(f"TaskFlow runs in memory or on sqlite, not {store!r}")
        self.shape, self.n, self.store, self.engine_kind = shape, n, store, engine
        self.flow: Any = None
        self.engine: Any = None
        self.db_path = None
        self.backend: Any = None
        if store == dbfiles.SQLITE:
            self.db_path = dbfiles.new_db_path(workdir, f"taskflow-{shape}-{n}")
            self.backend = open_backend(self.db_path)

    def build(self) -> None:
        self.flow = build(self.shape, self.n)

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
            raise RuntimeError(f"TaskFlow {self.shape} flow of {self.n} atoms ended {state}, not SUCCESS")

    def close(self) -> None:
        self.engine = self.flow = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        dbfiles.remove_db(self.db_path)
