"""The parallel engine on a wide graph of sleeping atoms: how close to the ideal schedule it gets.

The flow is a layered random DAG: level ``l`` holds 1 to `MAX_WIDTH` atoms, each requiring 1 to 3
atoms of level ``l - 1`` (and maybe more from earlier levels), so the critical path is exactly the
number of levels, and no level is wider than 8 threads. Every atom sleeps the same time and returns
a value computed from its inputs (checked against the serial engine's results).

With ``p`` threads no schedule beats ``max(critical path, total work / p)`` (the *ideal*): with 8
threads that is the critical path, with 2 the total work halved. Each case asserts the engine
stays within `SLACK` of it and records wall time, critical path, ideal and the serial engine's
time in ``extra_info`` (``--benchmark-json``). ``--benchmark-disable`` runs a scaled-down flow once.
"""

from __future__ import annotations

import random
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import pytest

from ferroflow import engines, task
from ferroflow.patterns import graph_flow

MAX_WIDTH = 8
SEED = 11
#: (atoms, seconds each atom sleeps): measured, and with ``--benchmark-disable``.
FULL = (1_000, 0.005)
SMOKE = (150, 0.002)
#: The wall time may exceed the ideal by this factor (engine overhead, a shared machine) ...
SLACK = 1.35
#: ... plus this (thread pool start-up, first scheduling round).
GRACE = 0.05
_MODULUS = 1_000_003


class Sleeper(task.Task):
    """Sleeps ``seconds``, returns a value of its inputs (order-insensitive)."""

    def __init__(self, name: str, requires: list[str], seconds: float) -> None:
        super().__init__(name=name, provides=f"v_{name}", requires=requires)
        self._seconds = seconds

    def execute(self, **inputs: int) -> int:
        time.sleep(self._seconds)
        return (sum(inputs.values()) * 31 + len(self.name)) % _MODULUS


@dataclass(frozen=True)
class Dag:
    """A layered DAG: ``levels[l]`` lists the atom names of level ``l``; ``requires`` the inputs."""

    levels: list[list[str]]
    requires: dict[str, list[str]]

    @property
    def atoms(self) -> int:
        return sum(map(len, self.levels))

    @property
    def critical_path(self) -> int:
        """Atoms on the longest path: one per level, as each atom requires one of the level before."""
        return len(self.levels)


def layered_dag(n: int, seed: int = SEED) -> Dag:
    rng = random.Random(seed)
    levels: list[list[str]] = []
    requires: dict[str, list[str]] = {}
    made = 0
    while made < n:
        width = min(rng.randint(1, MAX_WIDTH), n - made)
        level = [f"t{made + i}" for i in range(width)]
        for name in level:
            inputs: list[str] = []
            if levels:
                inputs = rng.sample(levels[-1], rng.randint(1, min(3, len(levels[-1]))))
                earlier = [a for lv in levels[-4:-1] for a in lv]
                if earlier and rng.random() < 0.3:
                    inputs.append(rng.choice(earlier))
            requires[name] = [f"v_{a}" for a in inputs]
        levels.append(level)
        made += width
    return Dag(levels, requires)


def build(dag: Dag, seconds: float) -> graph_flow.Flow:
    flow = graph_flow.Flow("sleepers")
    return flow.add(*[Sleeper(name, dag.requires[name], seconds) for level in dag.levels for name in level])


def run_once(dag: Dag, seconds: float, **options: Any) -> tuple[float, dict[str, Any]]:
    """Builds, prepares, then times ``run()`` alone; returns (seconds, results)."""
    engine = engines.load(build(dag, seconds), **options)
    engine.compile()
    engine.prepare()
    engine.validate()
    started = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - started
    assert engine.storage.get_flow_state() == "SUCCESS"
    return wall, engine.storage.fetch_all()


@pytest.fixture(scope="module")
def case(request) -> tuple[Dag, float]:
    n, seconds = SMOKE if request.config.getoption("benchmark_disable") else FULL
    return layered_dag(n), seconds


@pytest.fixture(scope="module")
def serial(case) -> tuple[float, dict[str, Any]]:
    """The serial engine's time and results (one run: it takes the total work's time)."""
    dag, seconds = case
    return run_once(dag, seconds, engine="serial")


@pytest.mark.parametrize(
    ("threads", "pool"), [(2, "max_workers"), (8, "max_workers"), (8, "user executor")], ids=["2", "8", "8-user-pool"]
)
def test_parallel_reaches_the_ideal_schedule(benchmark, case, serial, threads: int, pool: str) -> None:
    dag, seconds = case
    serial_wall, serial_results = serial
    critical_path = dag.critical_path * seconds
    ideal = max(critical_path, dag.atoms * seconds / threads)
    walls: list[float] = []
    results: list[dict[str, Any]] = []

    def run() -> None:
        if pool == "user executor":
            with futures.ThreadPoolExecutor(max_workers=threads) as executor:
                wall, values = run_once(dag, seconds, engine="parallel", executor=executor)
        else:
            wall, values = run_once(dag, seconds, engine="parallel", max_workers=threads)
        walls.append(wall)
        results.append(values)

    benchmark.group = "parallel-sleepers"
    benchmark.pedantic(run, rounds=3)
    best = min(walls)
    benchmark.extra_info.update(
        atoms=dag.atoms,
        levels=dag.critical_path,
        sleep_s=seconds,
        threads=threads,
        wall_s=[round(w, 4) for w in walls],
        critical_path_s=round(critical_path, 4),
        ideal_s=round(ideal, 4),
        serial_s=round(serial_wall, 4),
        best_over_ideal=round(best / ideal, 3),
        speedup_over_serial=round(serial_wall / best, 2),
    )
    print(
        f"\n[{threads} threads, {pool}] {dag.atoms} atoms x {seconds * 1e3:g} ms, {dag.critical_path} levels: "
        f"wall {', '.join(f'{w:.3f}' for w in walls)} s; critical path {critical_path:.3f} s, ideal {ideal:.3f} s, "
        f"serial {serial_wall:.3f} s (best/ideal {best / ideal:.2f}, speed-up {serial_wall / best:.1f}x)"
    )
    assert all(values == serial_results for values in results), "the parallel engine's results differ from serial"
    assert best <= SLACK * ideal + GRACE, f"best wall {best:.3f} s vs ideal {ideal:.3f} s"
