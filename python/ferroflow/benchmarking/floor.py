"""The floor: the least any engine could spend on the same work, written by hand in plain Python.

`FloorRun` calls the same no-op task objects in a topological order (Kahn's algorithm over the
same DAG), passing each the values it requires. On a SQLite store it also writes the same rows
ferroflow writes (an ``atomdetails`` row per atom, created in one transaction; then each
transition — RUNNING, then SUCCESS with the JSON result — in its own transaction) with the
standard library's ``sqlite3``, in WAL mode, ``synchronous=NORMAL`` (default durability) or
``FULL`` (fsync). ferroflow's distance to it is the price of being an engine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections import deque
from typing import Any

from ferroflow.benchmarking import dbfiles, flows

# As the store's schema (v5) names a flow in its atoms' rows: by the flow's integer key.
_SCHEMA = """
CREATE TABLE flowdetails (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE);
CREATE TABLE atomdetails (
    uuid TEXT PRIMARY KEY NOT NULL, flow_id INTEGER NOT NULL REFERENCES flowdetails(id), name TEXT NOT NULL,
    atom_type TEXT NOT NULL, state TEXT, intention TEXT NOT NULL, results TEXT NOT NULL,
    failure TEXT, revert_results TEXT NOT NULL, revert_failure TEXT, version TEXT,
    meta TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL
);
CREATE INDEX atomdetails_flow ON atomdetails(flow_id);
"""
_FLOW = "INSERT INTO flowdetails (uuid) VALUES (?)"
_INSERT = (
    "INSERT INTO atomdetails VALUES (?, ?, ?, 'TASK_DETAIL', 'PENDING', 'EXECUTE', 'null', NULL, "
    "'null', NULL, '1.0', '{}', ?, NULL)"
)
_RUNNING = "UPDATE atomdetails SET state = 'RUNNING', updated_at = ? WHERE uuid = ?"
_SUCCESS = "UPDATE atomdetails SET state = 'SUCCESS', results = ?, updated_at = ? WHERE uuid = ?"
# (raw sqlite3 has no group commit: its floor for ferroflow's batch durability commits each atom)
_SYNCHRONOUS = {dbfiles.SQLITE: "NORMAL", dbfiles.SQLITE_FSYNC: "FULL", dbfiles.SQLITE_BATCH: "NORMAL"}


def requires_of(shape: str, n: int) -> list[list[int]]:
    """For each atom, the atoms it waits for (linear: the one before; unordered: none)."""
    if shape == "linear":
        return [[]] + [[i - 1] for i in range(1, n)]
    if shape == "unordered":
        return [[] for _ in range(n)]
    if shape == "graph":
        return flows.dag_requires(n)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(flows.SHAPES)}")


class FloorRun:
    """The hand-written loop over ``n`` no-op atoms of ``shape``; phases like `ferro.FerroflowRun`.

    ``build`` makes the task objects and the DAG, ``compile`` the successor lists and in-degrees,
    ``prepare`` (SQLite) the rows, ``run`` the loop.
    """

    phases = ("build", "compile", "prepare", "run")

    def __init__(
        self, shape: str, n: int, store: str = dbfiles.MEMORY, workdir: str | os.PathLike[str] | None = None
    ) -> None:
        self.shape, self.n, self.store = shape, n, dbfiles.check_store(store)
        self.atoms: list[Any] = []
        self.requires: list[list[int]] = []
        #: Per atom, the ``(argument, atom)`` pairs whose values it receives (graph only).
        self.inputs: list[list[tuple[str, int]]] = []
        self.successors: list[list[int]] = []
        self.indegree: list[int] = []
        self.results: list[Any] = []
        self.db_path = None
        self.conn: sqlite3.Connection | None = None
        self.uuids: list[str] = []
        if store != dbfiles.MEMORY:
            self.db_path = dbfiles.new_db_path(workdir, f"floor-{shape}-{n}")
            self.conn = sqlite3.connect(self.db_path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[store]}")
            self.conn.executescript(_SCHEMA)

    def build(self) -> None:
        self.requires = requires_of(self.shape, self.n)
        if self.shape == "graph":
            self.atoms = [
                flows.Joiner(f"t{i}", provides=f"v{i}", requires=[f"v{j}" for j in required])
                for i, required in enumerate(self.requires)
            ]
            self.inputs = [[(f"v{j}", j) for j in required] for required in self.requires]
        else:
            self.atoms = [flows.Noop(f"t{i}") for i in range(self.n)]
            self.inputs = [[] for _ in range(self.n)]

    def compile(self) -> None:
        self.successors = [[] for _ in range(self.n)]
        self.indegree = [len(required) for required in self.requires]
        for atom, required in enumerate(self.requires):
            for before in required:
                self.successors[before].append(atom)

    def prepare(self) -> None:
        self.results = [None] * self.n
        if self.conn is None:
            return
        flow_uuid = str(uuid.uuid4())
        self.uuids = [str(uuid.uuid4()) for _ in range(self.n)]
        now = time.time()
        self.conn.execute("BEGIN")
        flow_id = self.conn.execute(_FLOW, (flow_uuid,)).lastrowid
        self.conn.executemany(_INSERT, ((self.uuids[i], flow_id, f"t{i}", now) for i in range(self.n)))
        self.conn.execute("COMMIT")

    def run(self) -> None:
        if self.conn is None:
            self._run_in_memory()
        else:
            self._run_on_sqlite(self.conn)
        if len(self.results) != self.n or self.indegree.count(0) != self.n:
            raise RuntimeError(f"the floor loop did not run all {self.n} atoms")

    def _run_in_memory(self) -> None:
        atoms, inputs, successors, indegree, results = (
            self.atoms,
            self.inputs,
            self.successors,
            self.indegree,
            self.results,
        )
        ready = deque(i for i in range(self.n) if not indegree[i])
        while ready:
            atom = ready.popleft()
            needs = inputs[atom]
            results[atom] = (
                atoms[atom].execute(**{arg: results[j] for arg, j in needs}) if needs else atoms[atom].execute()
            )
            for after in successors[atom]:
                indegree[after] -= 1
                if not indegree[after]:
                    ready.append(after)

    def _run_on_sqlite(self, conn: sqlite3.Connection) -> None:
        atoms, inputs, successors, indegree, results, uuids = (
            self.atoms,
            self.inputs,
            self.successors,
            self.indegree,
            self.results,
            self.uuids,
        )
        execute, dumps, now = conn.execute, json.dumps, time.time
        ready = deque(i for i in range(self.n) if not indegree[i])
        while ready:
            atom = ready.popleft()
            execute("BEGIN")
            execute(_RUNNING, (now(), uuids[atom]))
            execute("COMMIT")
            needs = inputs[atom]
            results[atom] = (
                atoms[atom].execute(**{arg: results[j] for arg, j in needs}) if needs else atoms[atom].execute()
            )
            execute("BEGIN")
            execute(_SUCCESS, (dumps(results[atom]), now(), uuids[atom]))
            execute("COMMIT")
            for after in successors[atom]:
                indegree[after] -= 1
                if not indegree[after]:
                    ready.append(after)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        dbfiles.remove_db(self.db_path)
