"""The floor: a hand-written topological loop over the same no-op callables, plus raw sqlite3
writes of the same rows (one transaction per transition, WAL). Compare with test_bench_engine's
``run-*`` groups: ferroflow's distance to these is the price of the engine."""

from __future__ import annotations

import pytest

from bench_support import FSYNC_CAP, FSYNC_CI_CAP, SIZES, bench_phase, cap
from ferroflow.benchmarking.dbfiles import MEMORY, SQLITE, SQLITE_FSYNC
from ferroflow.benchmarking.floor import FloorRun


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", ["linear", "unordered", "graph"])
@pytest.mark.parametrize("store", [MEMORY, SQLITE, SQLITE_FSYNC])
def test_floor_run(benchmark, tmp_path, ci_mode: bool, store: str, shape: str, n: int) -> None:
    if store == SQLITE_FSYNC:
        cap(n, ci_mode, full=FSYNC_CAP, ci=FSYNC_CI_CAP)
    benchmark.group = f"run-{store}-serial-{shape}"
    benchmark.extra_info["atoms"] = n
    benchmark.extra_info["system"] = "floor"
    bench_phase(benchmark, lambda: FloorRun(shape, n, store, tmp_path), "run")
