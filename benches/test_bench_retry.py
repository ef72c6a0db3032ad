"""What retries cost when nothing fails: a flow of 10-atom subflows, each under a ``Times`` retry or not.

Both flows are a linear flow of linear 10-atom subflows of no-op tasks; the retried one adds one
``Times(2)`` per subflow (so 10 % more atoms, each also keeping a history). `test_run` times each
for the benchmark table; `test_retry_overhead_ratio` times them alternately (`RATIO_RUNS` each,
``run()`` only — compile and prepare excluded), asserts the median ratio stays under
`MAX_RATIO`, and records median, min and max of both in ``extra_info``. ``--benchmark-disable``
scales the flow down to 1,000 atoms.
"""

from __future__ import annotations

import gc
import statistics
import time

import pytest

from ferroflow import engines, retry, task
from ferroflow.patterns import linear_flow

SUBFLOW_ATOMS = 10
#: Atoms (retries not counted): measured, and with ``--benchmark-disable``.
FULL_ATOMS = 10_000
SMOKE_ATOMS = 1_000
#: Runs of each flow in the ratio test (at least 5), and with ``--benchmark-disable``.
RATIO_RUNS = 11
SMOKE_RUNS = 5
#: Rounds of each flow in `test_run`.
RUNS = 5
MAX_RATIO = 2.0


class Noop(task.Task):
    def execute(self) -> None:
        return None


def subflows(atoms: int, retried: bool) -> linear_flow.Flow:
    """``atoms`` no-op tasks in linear subflows of `SUBFLOW_ATOMS`, each under ``Times(2)`` if
    ``retried``."""
    flow = linear_flow.Flow("subflows")
    for first in range(0, atoms, SUBFLOW_ATOMS):
        attempts = retry.Times(2, name=f"r{first}") if retried else None
        sub = linear_flow.Flow(f"s{first}", retry=attempts)
        flow.add(sub.add(*[Noop(f"t{i}") for i in range(first, min(first + SUBFLOW_ATOMS, atoms))]))
    return flow


def prepared(atoms: int, retried: bool):
    engine = engines.load(subflows(atoms, retried))
    engine.compile()
    engine.prepare()
    engine.validate()
    return engine


def timed_run(atoms: int, retried: bool) -> float:
    engine = prepared(atoms, retried)
    gc.collect()  # the garbage of earlier runs is not this run's cost
    started = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - started
    assert engine.storage.get_flow_state() == "SUCCESS"
    return elapsed


def _atoms(request) -> int:
    return SMOKE_ATOMS if request.config.getoption("benchmark_disable") else FULL_ATOMS


@pytest.mark.parametrize("retried", [False, True], ids=["plain", "retried"])
def test_run(benchmark, request, retried: bool) -> None:
    atoms = _atoms(request)
    benchmark.group = "subflows-retry"
    benchmark.extra_info["atoms"] = atoms
    benchmark.extra_info["retries"] = atoms // SUBFLOW_ATOMS if retried else 0

    def setup():
        return (prepared(atoms, retried),), {}

    def run(engine) -> None:
        engine.run()
        assert engine.storage.get_flow_state() == "SUCCESS"

    benchmark.pedantic(run, setup=setup, rounds=RUNS)


def test_retry_overhead_ratio(benchmark, request) -> None:
    atoms = _atoms(request)
    runs = SMOKE_RUNS if request.config.getoption("benchmark_disable") else RATIO_RUNS
    plain: list[float] = []
    retried: list[float] = []

    def alternate() -> None:
        for _ in range(runs):
            plain.append(timed_run(atoms, retried=False))
            retried.append(timed_run(atoms, retried=True))

    benchmark.group = "subflows-retry-ratio"
    benchmark.pedantic(alternate, rounds=1)
    ratio = statistics.median(retried) / statistics.median(plain)
    info = {
        name: {"median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4), "max_s": round(max(t), 4)}
        for name, t in (("plain", plain), ("retried", retried))
    }
    benchmark.extra_info.update(atoms=atoms, runs=runs, ratio=round(ratio, 3), **info)
    figures = "; ".join(f"{name}: median {v['median_s']} s ({v['min_s']}-{v['max_s']})" for name, v in info.items())
    print(f"\n[{atoms} atoms, {atoms // SUBFLOW_ATOMS} subflows, {runs} runs] {figures}; retried/plain {ratio:.2f}")
    assert ratio <= MAX_RATIO, f"retries cost {ratio:.2f}x with no failure (at most {MAX_RATIO}x)"
