"""Fixtures of the benchmarks: CI mode, and the sizes it leaves out.

``pytest benches`` measures (use a release build); ``pytest benches --benchmark-disable`` (CI) runs
every case once as a test, without the 100,000-atom sizes and with smaller caps where a case would
take long (fsync'ed SQLite, peers).
"""

from __future__ import annotations

import pytest

from bench_support import CI_MAX_SIZE


@pytest.fixture
def ci_mode(request: pytest.FixtureRequest) -> bool:
    """True when benchmarks run once as tests (``--benchmark-disable``)."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(autouse=True)
def _small_sizes_in_ci(request: pytest.FixtureRequest) -> None:
    """Skips cases whose ``n`` is above `CI_MAX_SIZE` in CI mode."""
    callspec = getattr(request.node, "callspec", None)
    n = callspec.params.get("n") if callspec is not None else None
    if n is not None and request.config.getoption("benchmark_disable") and n > CI_MAX_SIZE:
        pytest.skip(f"N={n:,} is measured, not run in CI mode (--benchmark-disable)")
