"""Helpers of the benchmarks (imported by the test modules; fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ferroflow.benchmarking import phases

#: Atoms per flow.
SIZES = [1_000, 10_000, 100_000]
#: Largest size run as a test in CI mode (--benchmark-disable).
CI_MAX_SIZE = 10_000
#: Rounds of each measured case (the median is what to read).
ROUNDS = 5
#: An fsync per commit (~5 ms on a virtual disk) makes fsync'ed SQLite slow: smaller sizes only.
FSYNC_CAP, FSYNC_CI_CAP = 10_000, 1_000


def cap(n: int, ci_mode: bool, full: int | None = None, ci: int | None = None) -> None:
    """Skips a case whose ``n`` is above the cap for this mode (a case too slow at that size)."""
    limit = ci if ci_mode else full
    if limit is not None and n > limit:
        pytest.skip(f"N={n:,} above this case's cap of {limit:,} ({'CI' if ci_mode else 'measure'} mode)")


def bench_phase(benchmark: Any, make_run: Callable[[], phases.PhasedRun], phase: str, rounds: int = ROUNDS) -> None:
    """Times ``phase`` of fresh runs from ``make_run``; the phases before it run as untimed setup."""
    current: list[phases.PhasedRun] = []

    def setup() -> tuple[tuple[phases.PhasedRun], dict[str, Any]]:
        _close(current)
        phases.collect_garbage()
        run = make_run()
        current.append(run)
        phases.run_until(run, phase)
        return (run,), {}

    try:
        benchmark.pedantic(lambda run: phases.run_phase(run, phase), setup=setup, rounds=rounds)
    finally:
        _close(current)


def _close(runs: list[phases.PhasedRun]) -> None:
    while runs:
        runs.pop().close()
