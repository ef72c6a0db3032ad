"""The same runs on TaskFlow 6.5 and DBOS, when installed (``pip install 'ferroflow[compare]'``).

Their groups are the ferroflow groups' (``run-<store>-serial-<shape>``), so pytest-benchmark shows
them side by side; sizes are capped where one run would take more than about a minute (TaskFlow's
scheduler is quadratic; both fsync every commit on SQLite).
"""

from __future__ import annotations

import pytest

from bench_support import bench_phase, cap
from ferroflow.benchmarking.dbfiles import MEMORY, SQLITE

PEER_SIZES = [20, 100, 1_000]


@pytest.fixture(scope="module")
def dbos_session(tmp_path_factory):
    pytest.importorskip("dbos")
    from ferroflow.benchmarking import dbos_peer

    with dbos_peer.temporary_session(tmp_path_factory.mktemp("dbos")):
        yield


@pytest.mark.parametrize("n", PEER_SIZES)
@pytest.mark.parametrize("shape", ["linear", "unordered", "graph"])
@pytest.mark.parametrize("store", [MEMORY, SQLITE])
def test_taskflow_run(benchmark, tmp_path, ci_mode: bool, store: str, shape: str, n: int) -> None:
    pytest.importorskip("taskflow")
    from ferroflow.benchmarking.taskflow_peer import TaskflowRun

    if store == SQLITE:
        cap(n, ci_mode, full=100, ci=20)
    else:
        cap(n, ci_mode, full=1_000, ci=100)
    benchmark.group = f"run-{store}-serial-{shape}"
    benchmark.extra_info["atoms"] = n
    benchmark.extra_info["system"] = "taskflow"
    bench_phase(benchmark, lambda: TaskflowRun(shape, n, store, "serial", tmp_path), "run", rounds=1)


@pytest.mark.parametrize("n", PEER_SIZES)
@pytest.mark.parametrize("shape", ["linear", "graph"])
def test_dbos_run(benchmark, dbos_session, ci_mode: bool, shape: str, n: int) -> None:
    from ferroflow.benchmarking.dbos_peer import DbosRun

    cap(n, ci_mode, ci=100)
    benchmark.group = f"run-sqlite-serial-{shape}"
    benchmark.extra_info["atoms"] = n
    benchmark.extra_info["system"] = "dbos"
    bench_phase(benchmark, lambda: DbosRun(shape, n, SQLITE), "run", rounds=3)
