"""Building the flow: constructing N tasks with ``requires``/``provides`` (each requires the value the
one before provides, as in a chain), against TaskFlow's Task and a pure-Python floor (a plain class
setting the same attributes in ``__init__``), plus adding them to a linear and a graph flow, and
compiling the linear one (the argument mappings of atoms built with the common arguments are made
when first read: by lowering, see ``ferroflow.atom._LazyMappings``).

Read ``extra_info["us_per_atom"]`` of each case; ``test_build_ratios`` times the systems in one
run (best of `ROUNDS`, garbage collection on, as users build) and records the ratios:
``pytest benches/test_bench_build.py --benchmark-json out.json``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import pytest
from taskflow import task as tf_task

from bench_support import ROUNDS, SIZES
from ferroflow import engines, task
from ferroflow.patterns import graph_flow, linear_flow


class Step(task.Task):
    def execute(self, **inputs: Any) -> int:
        return 1


class TfStep(tf_task.Task):
    def execute(self, **inputs: Any) -> int:
        return 1


class Floor:
    """The same attributes, set as they are given."""

    def __init__(self, name: str, provides: str, requires: list[str]) -> None:
        self.name = name
        self.provides = provides
        self.requires = requires
        self.rebind = self.save_as = self.optional = self.inject = None


def _step(**inputs: Any) -> int:
    return 1


def build_ferroflow(n: int) -> list:
    return [Step(f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"]) for i in range(n)]


def build_functor(n: int) -> list:
    return [task.FunctorTask(_step, name=f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"]) for i in range(n)]


def build_taskflow(n: int) -> list:
    return [TfStep(f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"]) for i in range(n)]


def build_floor(n: int) -> list:
    return [Floor(f"t{i}", f"v{i}", [f"v{i - 1}"]) for i in range(n)]


def build_linear(n: int) -> Any:
    return linear_flow.Flow("chain").add(*build_ferroflow(n))


def build_graph(n: int) -> Any:
    return graph_flow.Flow("chain").add(*build_ferroflow(n))


def build_and_compile(n: int) -> Any:
    """Building, adding and compiling: what the mappings not made at build cost later (lowering
    reads them, under a paused collector)."""
    engine = engines.load(build_linear(n))
    engine.compile()
    return engine


BUILDERS: dict[str, Callable[[int], Any]] = {
    "ferroflow": build_ferroflow,
    "ferroflow-functor": build_functor,
    "taskflow": build_taskflow,
    "floor": build_floor,
    "ferroflow-linear-add": build_linear,
    "ferroflow-graph-add": build_graph,
    "ferroflow-linear-compile": build_and_compile,
}


def _collect() -> None:
    gc.collect()


def _timed(build: Callable[[int], Any], n: int) -> float:
    """Seconds of one build of ``n`` (what it made is freed before the next)."""
    gc.collect()
    start = time.perf_counter()
    made = build(n)
    elapsed = time.perf_counter() - start
    del made
    return elapsed


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("system", list(BUILDERS))
def test_build(benchmark, system: str, n: int, ci_mode: bool) -> None:
    if system == "taskflow" and n > 10_000 and ci_mode:
        pytest.skip("TaskFlow at this size is measured, not run in CI mode")
    build = BUILDERS[system]
    benchmark.group = f"build-{n}"
    benchmark.extra_info.update(atoms=n, system=system)
    benchmark.pedantic(lambda: build(n), setup=_collect, rounds=1 if ci_mode else ROUNDS)
    if not ci_mode:
        benchmark.extra_info["us_per_atom"] = benchmark.stats.stats.min / n * 1e6


def test_build_ratios(benchmark, ci_mode: bool) -> None:
    """The build costs measured in one run, interleaved, and their ratios (µs per atom)."""
    n = 10_000 if ci_mode else 100_000
    systems = ["ferroflow", "ferroflow-functor", "taskflow", "floor"]
    best = dict.fromkeys(systems, float("inf"))

    def measure() -> None:
        for system in systems:
            best[system] = min(best[system], _timed(BUILDERS[system], n))

    benchmark.group = "build-ratios"
    benchmark.pedantic(measure, rounds=1 if ci_mode else ROUNDS)
    us = {system: seconds / n * 1e6 for system, seconds in best.items()}
    benchmark.extra_info.update({f"{system}_us_per_atom": round(value, 3) for system, value in us.items()})
    for system in ("ferroflow", "ferroflow-functor"):
        benchmark.extra_info[f"{system}_vs_taskflow"] = round(us[system] / us["taskflow"], 3)
        benchmark.extra_info[f"{system}_vs_floor"] = round(us[system] / us["floor"], 3)
    print("\nbuild µs/atom:", {k: round(v, 2) for k, v in us.items()})
