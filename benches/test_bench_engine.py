"""ferroflow's engine on no-op atoms: each phase timed apart, in memory and on SQLite.

Groups: ``run-<store>-<engine>-<shape>`` (the run phase: the engine's overhead per atom), and
``phase-<phase>-<store>-<shape>`` (build, load, compile, prepare of the same flows).
"""

from __future__ import annotations

import pytest

from bench_support import FSYNC_CAP, FSYNC_CI_CAP, SIZES, bench_phase, cap
from ferroflow.benchmarking.dbfiles import MEMORY, SQLITE, SQLITE_BATCH, SQLITE_FSYNC
from ferroflow.benchmarking.ferro import FerroflowRun


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine", ["serial", "parallel"])
@pytest.mark.parametrize("shape", ["linear", "unordered", "graph"])
def test_run_in_memory(benchmark, shape: str, engine: str, n: int) -> None:
    benchmark.group = f"run-memory-{engine}-{shape}"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: FerroflowRun(shape, n, MEMORY, engine), "run")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("shape", "engine"), [("linear", "serial"), ("graph", "serial"), ("unordered", "parallel")])
@pytest.mark.parametrize("store", [SQLITE, SQLITE_FSYNC, SQLITE_BATCH])
def test_run_on_sqlite(benchmark, tmp_path, ci_mode: bool, store: str, shape: str, engine: str, n: int) -> None:
    if store == SQLITE_FSYNC:
        cap(n, ci_mode, full=FSYNC_CAP, ci=FSYNC_CI_CAP)
    benchmark.group = f"run-{store}-{engine}-{shape}"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: FerroflowRun(shape, n, store, engine, tmp_path), "run")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", ["linear", "graph"])
@pytest.mark.parametrize("store", [MEMORY, SQLITE])
@pytest.mark.parametrize("phase", ["build", "load", "compile", "prepare"])
def test_phase(benchmark, tmp_path, phase: str, store: str, shape: str, n: int) -> None:
    benchmark.group = f"phase-{phase}-{store}-{shape}"
    benchmark.extra_info["atoms"] = n
    bench_phase(benchmark, lambda: FerroflowRun(shape, n, store, "serial", tmp_path), phase)
