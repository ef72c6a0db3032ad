"""The floor: a hand-written topological loop over the same no-op callables, plus raw sqlite3
writes of the same rows (one transaction per transition, WAL). Compare with test_bench_engine's
``run-*`` groups: ferroflow's distance to these is the price of the engine. ``test_floor_phase``
puts the floor's compile and new-flow prepare in test_bench_engine's ``phase-*`` groups."""

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


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", ["linear", "graph"])
@pytest.mark.parametrize(("phase", "store"), [("compile", MEMORY), ("prepare", SQLITE)])
def test_floor_phase(benchmark, tmp_path, phase: str, store: str, shape: str, n: int) -> None:
    """The floor of compiling (successor lists and in-degrees) and of preparing a new flow on
    SQLite (its rows inserted in one transaction), in the groups of test_bench_engine's
    ``test_phase``, so each group shows ferroflow's phase beside the floor's."""
    benchmark.group = f"phase-{phase}-{store}-{shape}"
    benchmark.extra_info["atoms"] = n
    benchmark.extra_info["system"] = "floor"
    bench_phase(benchmark, lambda: FloorRun(shape, n, store, tmp_path), phase)
