"""Compiling a built flow: ``engine.compile()`` — lowering the pattern tree to plain data in Python
(``ferroflow._lower``), then the Rust compiler (``ferroflow._core.compile``) — on a linear flow of
no-op tasks, a linear chain (each atom requires the value the one before provides) and the random
DAG of the other benchmarks (a graph flow, each atom requiring up to 3 earlier ones).

Each round compiles a freshly built flow (building it is untimed setup). Read
``extra_info["us_per_atom"]``, and ``lower_us_per_atom`` / ``core_us_per_atom`` for the two parts
(timed apart on another fresh flow of the same round). The bar for 100,000 atoms is 0.2 s. The
Rust part alone, without Python: ``cargo test --release --lib -- --ignored --nocapture
bench_compile`` (``rust/graph/compile.rs``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bench_support import ROUNDS, SIZES
from ferroflow import _core, _lower, engines, task
from ferroflow.benchmarking import flows as bench_flows
from ferroflow.benchmarking import phases
from ferroflow.patterns import linear_flow

#: Compiling 100,000 atoms must take at most this long.
BUDGET_SECONDS = 0.2


class Step(task.Task):
    def execute(self, **inputs: Any) -> int:
        return 1


def chain(n: int) -> linear_flow.Flow:
    """``n`` tasks in a line, each requiring what the one before provides."""
    return linear_flow.Flow("chain").add(
        *[Step(f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else None) for i in range(n)]
    )


SHAPES: dict[str, Callable[[int], Any]] = {
    "linear-noop": bench_flows.linear,
    "linear-chain": chain,
    "dag": bench_flows.random_dag,
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_compile(benchmark: Any, shape: str, n: int) -> None:
    build = SHAPES[shape]
    parts: list[tuple[float, float]] = []
    totals: list[float] = []

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        phases.collect_garbage()
        # The two parts, on a flow of their own (a flow compiles once).
        lowered_flow = build(n)
        started = time.perf_counter()
        lowered = _lower.lower(lowered_flow)
        lowered_at = time.perf_counter()
        _core.compile(lowered.spec_atoms, lowered.root)
        parts.append((lowered_at - started, time.perf_counter() - lowered_at))
        del lowered, lowered_flow
        phases.collect_garbage()
        return (engines.load(build(n)),), {}

    def compile_engine(engine: Any) -> Any:
        started = time.perf_counter()
        engine.compile()
        totals.append(time.perf_counter() - started)
        return engine

    benchmark.group = f"compile-{shape}"
    engine = benchmark.pedantic(compile_engine, setup=setup, rounds=ROUNDS)
    assert len(engine.compilation.atoms) == n
    best = min(totals)
    benchmark.extra_info.update(
        atoms=n,
        best_seconds=best,
        us_per_atom=round(best * 1e6 / n, 3),
        lower_us_per_atom=round(min(lower for lower, _ in parts) * 1e6 / n, 3),
        core_us_per_atom=round(min(core for _, core in parts) * 1e6 / n, 3),
        budget_seconds_at_100k=BUDGET_SECONDS,
    )
