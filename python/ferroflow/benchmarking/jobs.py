"""Conductor throughput: jobs of no-op atoms posted on a board, run by 1, 2 or 4 conductor
processes (``ferroflow conductor``), measured from the board's own consume times.

Shared by ``benches/test_bench_jobs.py`` and ``ferroflow bench --board URI``. Each measurement
uses a board name of its own (``bench-<random>``), so it can run on a board that holds other
jobs, and its store is the board's database unless another is given.

The rate counts the jobs consumed after the first, over the time from the first consume to the
last: process start-up and posting are not in it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JobsResult", "measure_conductors", "open_board", "post_jobs", "start_conductor", "stop_conductors"]

#: The flow factory of the jobs: a linear flow of N no-op atoms.
FACTORY = "ferroflow.benchmarking.flows.linear"
#: Modules the conductors may import the factory from.
TRUSTED = "ferroflow.benchmarking"
#: Conductor counts and atoms per job measured by default.
DEFAULT_CONDUCTORS = (1, 2, 4)
DEFAULT_ATOMS = (1, 20)


def default_jobs(atoms: int) -> int:
    """Jobs per measurement: 2,000 one-atom jobs, fewer of more atoms (at least 200)."""
    return max(200, 2000 // atoms)


@dataclass
class JobsResult:
    """One measurement: ``jobs`` jobs of ``atoms`` atoms run by ``conductors`` processes."""

    conductors: int
    atoms: int
    jobs: int
    jobs_per_second: float
    seconds: float

    @property
    def atoms_per_second(self) -> float:
        return self.jobs_per_second * self.atoms


def open_board(board_uri: str, store_uri: str, board_name: str, **conf: Any) -> tuple[Any, Any]:
    """The store (schema upgraded) and the connected board ``board_name``."""
    from ferroflow.jobs import backends
    from ferroflow.persistence import backends as persistence_backends

    store = persistence_backends.fetch(store_uri)
    with contextlib.closing(store.get_connection()) as conn:
        conn.upgrade()
    board = backends.fetch(board_name, {"board": board_uri, **conf}, persistence=store)
    board.connect()
    return store, board


def post_jobs(board: Any, store: Any, jobs: int, atoms: int, factory: str = FACTORY, args: Sequence[Any] = ()) -> None:
    """Posts ``jobs`` jobs, each a flow of ``factory(atoms, *args)`` (saved in ``store``)."""
    from ferroflow.jobs import posting

    for _ in range(jobs):
        posting.post_flow(board, store, factory, (atoms, *args))


def start_conductor(
    board_uri: str,
    store_uri: str,
    board_name: str,
    name: str,
    log: str | os.PathLike[str],
    *extra: str,
    trust: str = TRUSTED,
    cwd: str | os.PathLike[str] | None = None,
    pythonpath: str | None = None,
) -> subprocess.Popen[bytes]:
    """A ``ferroflow conductor`` process, its output in ``log``."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, "-m", "ferroflow", "conductor", "--board", board_uri, "--board-name", board_name]
    argv += ["--store", store_uri, "--name", name, "--trust", trust, "--no-progress", *extra]
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def stop_conductors(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL what did not stop within ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_done(board: Any, procs: Sequence[subprocess.Popen[bytes]], timeout: float, logs: Sequence[Path]) -> None:
    """Waits until the board has no job left (RuntimeError naming the logs if a conductor died)."""
    deadline = time.monotonic() + timeout
    while board.job_count:
        dead = [(proc, log) for proc, log in zip(procs, logs, strict=True) if proc.poll() is not None]
        if dead:
            proc, log = dead[0]
            tail = Path(log).read_text()[-2000:] if Path(log).exists() else ""
            raise RuntimeError(f"a conductor exited ({proc.returncode}) before the jobs were done:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the jobs were not done within {timeout:g} s ({board.job_count} left)")
        time.sleep(0.1)


def consume_rate(board: Any) -> tuple[float, float]:
    """``(jobs/s, seconds)`` from the consume times of the board's finished jobs."""
    consumed = sorted(job.last_modified for job in board.list_all())
    seconds = consumed[-1] - consumed[0]
    if len(consumed) < 2 or seconds <= 0:
        raise RuntimeError(f"too few jobs to measure a rate ({len(consumed)})")
    return (len(consumed) - 1) / seconds, seconds


def measure_conductors(
    board_uri: str,
    conductors: int,
    jobs: int,
    atoms: int = 1,
    store_uri: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    extra: Sequence[str] = (),
    timeout: float = 600.0,
) -> JobsResult:
    """Posts ``jobs`` jobs of ``atoms`` no-op atoms on a new board name, runs ``conductors``
    conductor processes until every job is consumed, and returns the rate."""
    name = f"bench-{uuid.uuid4().hex[:12]}"
    store, board = open_board(board_uri, store_uri or board_uri, name)
    with contextlib.ExitStack() as stack:
        stack.callback(board.close)
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ferroflow-bench-jobs-"))
        post_jobs(board, store, jobs, atoms)
        logs = [Path(workdir) / f"{name}-c{n}.log" for n in range(conductors)]
        procs = [
            start_conductor(board_uri, store_uri or board_uri, name, f"{name}-c{n}", logs[n], *extra)
            for n in range(conductors)
        ]
        try:
            wait_until_done(board, procs, timeout, logs)
        finally:
            stop_conductors(procs)
        rate, seconds = consume_rate(board)
    with contextlib.suppress(Exception):
        store.close()
    return JobsResult(conductors, atoms, jobs, rate, seconds)
