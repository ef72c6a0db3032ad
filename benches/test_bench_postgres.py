"""ferroflow's engine on PostgreSQL: the run phase of no-op flows, per atom (issue 12's goal: at most
150 µs per atom for a linear flow of 10,000 atoms on a local server, default durability).

Groups ``run-<store>-<engine>-<shape>``, ``<store>`` being ``postgres`` (``durability=process``, the
default: asynchronous commit, each commit survives the engine's death) or ``postgres-fsync``
(``durability=fsync``: each commit waits for the server's WAL flush). The server is the tests' one
(tests/postgres_server.py: a throwaway local cluster, or ``$FERROFLOW_TEST_POSTGRES_URI``); each
round runs on a new database. Without a server these are skipped (failed when ``$CI`` is set).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench_support import FSYNC_CAP, FSYNC_CI_CAP, SIZES, bench_phase, cap
from ferroflow.benchmarking.postgres import DURABILITY, FerroflowPostgresRun, TaskflowPostgresRun

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import postgres_server


def postgres_run(shape: str, n: int, store: str = "postgres", engine: str = "serial") -> FerroflowPostgresRun:
    """A ferroflow run on a new database of the tests' server
    (`ferroflow.benchmarking.postgres.FerroflowPostgresRun`)."""
    return FerroflowPostgresRun(postgres_server.server().admin_uri, shape, n, store, engine)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("shape", "engine"), [("linear", "serial"), ("graph", "serial"), ("unordered", "parallel")])
@pytest.mark.parametrize("store", list(DURABILITY))
def test_run_on_postgres(benchmark, ci_mode: bool, store: str, shape: str, engine: str, n: int) -> None:
    if store == "postgres-fsync":
        cap(n, ci_mode, full=FSYNC_CAP, ci=FSYNC_CI_CAP)
    postgres_server.server()  # skipped (failed in CI) without a server
    benchmark.group = f"run-{store}-{engine}-{shape}"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: postgres_run(shape, n, store, engine), "run")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("phase", ["prepare"])
def test_prepare_on_postgres(benchmark, phase: str, n: int) -> None:
    """Saving a fresh flow's atom details (one statement for all of them)."""
    postgres_server.server()
    benchmark.group = "phase-prepare-postgres-linear"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: postgres_run("linear", n), phase)


@pytest.mark.parametrize("n", [100, 1_000])
def test_taskflow_run_on_postgres(benchmark, ci_mode: bool, n: int) -> None:
    """TaskFlow 6.5 on the same server: about 50-85 ms per atom, growing with N (one round at 1,000)."""
    pytest.importorskip("taskflow", reason="TaskFlow is a peer: pip install 'ferroflow[compare]'")
    cap(n, ci_mode, ci=100)
    postgres_server.server()
    benchmark.group = "run-postgres-taskflow-serial-linear"
    benchmark.extra_info["atoms"] = n
    bench_phase(
        benchmark, lambda: TaskflowPostgresRun(postgres_server.server().admin_uri, n), "run", rounds=1 if n > 100 else 3
    )
