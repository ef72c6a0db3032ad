"""The same scenarios on DBOS Transact (a peer; imported only when ``dbos`` is installed).

DBOS runs durable workflows as code: a workflow calls steps, each step's outcome is saved to the
system database (here SQLite, DBOS's defaults: rollback journal, ``synchronous=FULL``). The
benchmark flows map onto it as one workflow calling one no-op step per atom: in order for linear
and unordered flows (DBOS runs a workflow's steps one after another), in topological order with the
required values as arguments for the random DAG. DBOS has no in-memory mode.

DBOS is one launched instance per process: `session` launches it on a SQLite file and destroys it
afterwards; `DbosRun` needs one. A workflow killed halfway is recovered by the next process that
launches DBOS on the same file (`start_crashing_workflow` / `recover_workflow`); `first_step`
tells when the recovering process ran its first step (the steps done before the crash are
replayed from the database, not run).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from ferroflow.benchmarking import dbfiles, flows

#: Environment variable naming the step at which `linear_workflow` kills its own process.
CRASH_AT_ENV = "FERROFLOW_BENCH_DBOS_CRASH_AT"

_session: dict[str, Any] = {}
#: `time.monotonic` of the first step this process ran (see `first_step`).
_first_step: list[float] = []


@DBOS.step()
def noop_step() -> None:
    if not _first_step:
        _first_step.append(time.monotonic())
    return None


@DBOS.step()
def join_step(*inputs: Any) -> int:
    return 1


@DBOS.workflow()
def linear_workflow(n: int) -> int:
    crash_at = int(os.environ.get(CRASH_AT_ENV, "-1"))
    for i in range(n):
        if i == crash_at:
            os._exit(0)  # a crash: the next process that launches DBOS recovers this workflow
        noop_step()
    return n


@DBOS.workflow()
def dag_workflow(requires: list[list[int]]) -> int:
    results: list[Any] = []
    for required in requires:
        results.append(join_step(*[results[j] for j in required]))
    return len(results)


@contextlib.contextmanager
def session(db_path: Path) -> Iterator[None]:
    """DBOS launched on the SQLite file ``db_path`` for the duration of the block."""
    if _session:
        raise RuntimeError("a DBOS benchmark session is already open in this process")
    DBOS(config={"name": "ferroflow-bench", "system_database_url": f"sqlite:///{db_path}", "log_level": "WARNING"})
    DBOS.launch()
    _session["path"] = db_path
    try:
        yield
    finally:
        _session.clear()
        DBOS.destroy(destroy_registry=False)


@contextlib.contextmanager
def temporary_session(workdir: str | os.PathLike[str] | None) -> Iterator[None]:
    """`session` on a new file in ``workdir``, removed afterwards."""
    path = dbfiles.new_db_path(workdir, "dbos")
    try:
        with session(path):
            yield
    finally:
        dbfiles.remove_db(path)


class DbosRun:
    """One DBOS workflow over ``n`` no-op steps of ``shape``; phases ``build`` and ``run``.

    Needs an open `session`; its store is always ``sqlite``.
    """

    phases = ("build", "run")

    def __init__(self, shape: str, n: int, store: str = dbfiles.SQLITE, workdir: Any = None) -> None:
        if store != dbfiles.SQLITE:
            raise ValueError(f"DBOS runs on its SQLite system database only, not {store!r}")
        if not _session:
            raise RuntimeError("DbosRun needs an open dbos_peer.session()")
        self.shape, self.n, self.store = shape, n, store
        self.requires: list[list[int]] = []

    def build(self) -> None:
        if self.shape == "graph":
            self.requires = flows.dag_requires(self.n)

    def run(self) -> None:
        if self.shape == "graph":
            done = dag_workflow(self.requires)
        else:
            done = linear_workflow(self.n)
        if done != self.n:
            raise RuntimeError(f"DBOS workflow ran {done} of {self.n} steps")

    def close(self) -> None:
        self.requires = []


def start_crashing_workflow(n: int, crash_at: int) -> str:
    """Starts `linear_workflow` of ``n`` steps that kills this process at step ``crash_at``.

    Never returns normally (the process exits); meant for a child process with an open session.
    """
    os.environ[CRASH_AT_ENV] = str(crash_at)
    workflow_id = str(uuid.uuid4())
    print(workflow_id, flush=True)
    with SetWorkflowID(workflow_id):
        linear_workflow(n)
    raise RuntimeError(f"workflow {workflow_id} did not crash at step {crash_at}")


def recover_workflow(workflow_id: str, n: int) -> None:
    """Waits for the workflow that launching DBOS recovered; checks it ran all ``n`` steps."""
    os.environ.pop(CRASH_AT_ENV, None)
    result = DBOS.retrieve_workflow(workflow_id).get_result()
    if result != n:
        raise RuntimeError(f"recovered DBOS workflow {workflow_id} returned {result!r}, not {n}")


def first_step() -> float | None:
    """`time.monotonic` of the first no-op step this process ran (DBOS runs a step's body only
    when it has no saved outcome: after a crash, the first step of the recovered half), or None."""
    return _first_step[0] if _first_step else None
