"""TaskFlow's conductors beside ferroflow's: the same one-atom jobs on TaskFlow 6.5's Redis jobboard,
their flows in TaskFlow's SQLAlchemy backend on the same PostgreSQL server, run by N
``blocking`` conductor processes (imported only when ``taskflow`` and ``redis`` are installed).

`redis_server` starts a private ``redis-server`` (no persistence) on a free port when the binary
is installed (``apt-get install redis-server``). Each conductor process appends the time of
each ``job_consumed`` event to a file; the rate is measured as ferroflow's (jobs consumed after
the first, over the time from the first consume to the last).

Run as ``python -m ferroflow.benchmarking.taskflow_jobs HOST PORT NAMESPACE STORE_URI NAME OUT``
for one conductor (what `measure_conductors` starts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ferroflow.benchmarking import jobs as bench_jobs

__all__ = ["available", "measure_conductors", "redis_server"]


def available() -> str | None:
    """Why TaskFlow's conductors cannot be measured here (None when they can)."""
    import importlib.util

    for module in ("taskflow", "redis", "sqlalchemy"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'ferroflow[compare]' redis)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A private redis-server on 127.0.0.1 (no persistence), stopped on exit: ``(host, port)``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ferroflow-redis-") as workdir:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _board(host: str, port: int, namespace: str, persistence: Any) -> Any:
    from taskflow.jobs import backends

    board = backends.fetch(
        "bench", {"board": "redis", "host": host, "port": port, "namespace": namespace}, persistence=persistence
    )
    board.connect()
    return board


def _persistence(store_uri: str) -> Any:
    from taskflow.persistence import backends

    backend = backends.fetch({"connection": store_uri.replace("postgresql://", "postgresql+psycopg://", 1)})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def post_jobs(board: Any, persistence: Any, jobs: int, atoms: int) -> None:
    """Posts ``jobs`` jobs as TaskFlow programs do: a logbook with one flow detail whose factory is
    saved (`taskflow_peer.build`), the job naming it."""
    from taskflow import engines
    from taskflow.persistence import models

    from ferroflow.benchmarking import taskflow_peer

    for i in range(jobs):
        book = models.LogBook(f"job-{i}")
        flow_detail = models.FlowDetail(f"flow-{i}", str(uuid.uuid4()))
        book.add(flow_detail)
        with contextlib.closing(persistence.get_connection()) as conn:
            conn.save_logbook(book)
        engines.save_factory_details(flow_detail, taskflow_peer.build, ("linear", atoms), {}, backend=persistence)
        board.post(f"job-{i}", book=book, details={"flow_uuid": flow_detail.uuid, "store": {}})


def measure_conductors(
    store_server_uri: str, conductors: int, jobs: int, atoms: int = 1, timeout: float = 600.0
) -> bench_jobs.JobsResult:
    """``jobs`` jobs of ``atoms`` no-op atoms on a private Redis board, their flows in a new
    database of the PostgreSQL server of ``store_server_uri``, run by ``conductors`` TaskFlow
    conductor processes."""
    from ferroflow.benchmarking import postgres

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    store_uri = postgres.new_database(store_server_uri, "taskflow_jobs")
    try:
        with redis_server() as (host, port), tempfile.TemporaryDirectory(prefix="ferroflow-tf-jobs-") as workdir:
            persistence = _persistence(store_uri)
            board = _board(host, port, namespace, persistence)
            try:
                post_jobs(board, persistence, jobs, atoms)
                outs = [Path(workdir) / f"c{n}.times" for n in range(conductors)]
                logs = [Path(workdir) / f"c{n}.log" for n in range(conductors)]
                procs = []
                for n in range(conductors):
                    with open(logs[n], "w") as log:
                        argv = [sys.executable, "-m", __name__, host, str(port), namespace, store_uri, f"c{n}"]
                        procs.append(subprocess.Popen([*argv, str(outs[n])], stdout=log, stderr=subprocess.STDOUT))
                try:
                    deadline = time.monotonic() + timeout
                    while sum(_count(out) for out in outs) < jobs:
                        dead = [proc for proc in procs if proc.poll() is not None]
                        if dead or time.monotonic() > deadline:
                            tail = logs[procs.index(dead[0])].read_text()[-2000:] if dead else ""
                            raise RuntimeError(f"TaskFlow's conductors did not consume the {jobs} jobs: {tail}")
                        time.sleep(0.1)
                finally:
                    bench_jobs.stop_conductors(procs, timeout=15)
                times = sorted(float(line) for out in outs for line in out.read_text().split())
            finally:
                board.close()
                persistence.close()
    finally:
        postgres.drop_database(store_server_uri, store_uri)
    seconds = times[-1] - times[0]
    return bench_jobs.JobsResult(conductors, atoms, jobs, (len(times) - 1) / seconds, seconds)


def _count(path: Path) -> int:
    try:
        return len(path.read_text().split())
    except FileNotFoundError:
        return 0


def _conductor_main(host: str, port: str, namespace: str, store_uri: str, name: str, out: str) -> None:
    """One TaskFlow blocking conductor until SIGTERM; appends each consume's time to ``out``."""
    from taskflow.conductors import backends

    persistence = _persistence(store_uri)
    board = _board(host, int(port), namespace, persistence)
    conductor = backends.fetch("blocking", name, board, persistence=persistence, engine="serial")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    conductor.notifier.register("job_consumed", lambda *args, **kwargs: os.write(fd, f"{time.time()!r}\n".encode()))
    signal.signal(signal.SIGTERM, lambda *_: conductor.stop())
    try:
        conductor.run()
    finally:
        os.close(fd)
        board.close()
        persistence.close()


if __name__ == "__main__":
    _conductor_main(*sys.argv[1:7])
