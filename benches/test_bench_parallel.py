"""The parallel engine on a wide graph of sleeping atoms: how close to the ideal schedule it gets.

The flow is a layered random DAG: level ``l`` holds 1 to `MAX_WIDTH` atoms, each requiring 1 to 3
atoms of level ``l - 1`` (and maybe more from earlier levels), so the critical path is exactly the
number of levels, and no level is wider than 8 threads. Every atom sleeps the same time and returns
a value computed from its inputs (checked against the serial engine's results).

With ``p`` threads no schedule beats ``max(critical path, total work / p)`` (the *ideal*): with 8
threads that is the critical path, with 2 the total work halved. Each case asserts the engine
stays within `SLACK` of it and records wall time, critical path, ideal and the serial engine's
time in ``extra_info`` (``--benchmark-json``). ``--benchmark-disable`` runs a scaled-down flow once.

The engine's own cost on `GOAL_WORKERS` threads (issue 15, goal 5) is measured on an unordered flow:
``test_parallel_noop_overhead`` times no-op atoms (goal: at most `NOOP_GOAL_US` µs per atom, wall
and CPU of all threads), ``test_parallel_sleep_speedup`` atoms that sleep 1 ms (goal: at least
`SPEEDUP_GOAL` times faster than the serial engine), each with the engine's own threads
(``max_workers``) and with a caller's ``ThreadPoolExecutor``; the serial engine is timed in the
same run and the ratios go in ``extra_info``.
"""

from __future__ import annotations

import random
import statistics
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import pytest

from ferroflow import engines, task
from ferroflow.patterns import graph_flow, unordered_flow

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


# -- the engine's own cost on 4 threads (issue 15, goal 5) -----------------------------------------

GOAL_WORKERS = 4
#: (atoms measured, atoms with ``--benchmark-disable``).
NOOP_ATOMS = (20_000, 2_000)
SLEEP_ATOMS = (400, 40)
SLEEP_S = 0.001
NOOP_GOAL_US = 5.0
SPEEDUP_GOAL = 3.5
#: What the measured mode asserts (the goals, with room for a shared 2-core machine).
NOOP_FLOOR_CPU_US = NOOP_GOAL_US
SPEEDUP_FLOOR = 3.0
POOLS = ["max_workers", "user executor"]


class Noop(task.Task):
    def execute(self) -> None:
        return None


class Nap(task.Task):
    def execute(self) -> None:
        time.sleep(SLEEP_S)


def _prepared(cls: type[task.Task], n: int, **options: Any) -> Any:
    flow = unordered_flow.Flow("wide").add(*[cls(f"t{i}") for i in range(n)])
    engine = engines.load(flow, **options)
    engine.compile()
    engine.prepare()
    engine.validate()
    return engine


def _timed_run(engine: Any) -> tuple[float, float]:
    """(wall, CPU of every thread of the process) of ``engine.run()``."""
    started, cpu = time.perf_counter(), time.process_time()
    engine.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert engine.storage.get_flow_state() == "SUCCESS"
    return wall, cpu


def _serial(cls: type[task.Task], n: int, rounds: int = 3) -> float:
    return min(_timed_run(_prepared(cls, n, engine="serial"))[0] for _ in range(rounds))


def _parallel_rounds(benchmark: Any, cls: type[task.Task], n: int, pool: str) -> list[tuple[float, float]]:
    """Times ``run()`` of fresh parallel engines on `GOAL_WORKERS` threads (build, compile and
    prepare are untimed setup)."""
    timings: list[tuple[float, float]] = []
    with futures.ThreadPoolExecutor(max_workers=GOAL_WORKERS, thread_name_prefix="caller") as executor:
        options: dict[str, Any] = {"executor": executor} if pool == "user executor" else {"max_workers": GOAL_WORKERS}

        def setup() -> tuple[tuple[Any], dict[str, Any]]:
            return (_prepared(cls, n, engine="parallel", **options),), {}

        benchmark.pedantic(lambda engine: timings.append(_timed_run(engine)), setup=setup, rounds=5)
    return timings


@pytest.mark.parametrize("pool", POOLS)
def test_parallel_noop_overhead(benchmark, ci_mode: bool, pool: str) -> None:
    n = NOOP_ATOMS[1] if ci_mode else NOOP_ATOMS[0]
    serial = _serial(Noop, n)
    benchmark.group = "parallel-noop"
    timings = _parallel_rounds(benchmark, Noop, n, pool)
    wall_us = statistics.median(w for w, _ in timings) / n * 1e6
    cpu_us = statistics.median(c for _, c in timings) / n * 1e6
    serial_us = serial / n * 1e6
    benchmark.extra_info.update(
        atoms=n,
        workers=GOAL_WORKERS,
        pool=pool,
        us_per_atom=round(wall_us, 2),
        cpu_us_per_atom=round(cpu_us, 2),
        serial_us_per_atom=round(serial_us, 2),
        ratio_to_serial=round(wall_us / serial_us, 1),
        goal_us_per_atom=NOOP_GOAL_US,
        meets_goal=wall_us <= NOOP_GOAL_US,
    )
    print(
        f"\n[no-op, {GOAL_WORKERS} workers, {pool}] {n} atoms: {wall_us:.2f} us/atom wall, {cpu_us:.2f} CPU "
        f"(serial {serial_us:.2f}: x{wall_us / serial_us:.1f}; goal <= {NOOP_GOAL_US:g})"
    )
    if not ci_mode:
        assert cpu_us <= NOOP_FLOOR_CPU_US, f"{cpu_us:.2f} us of CPU per no-op atom"


@pytest.mark.parametrize("pool", POOLS)
def test_parallel_sleep_speedup(benchmark, ci_mode: bool, pool: str) -> None:
    n = SLEEP_ATOMS[1] if ci_mode else SLEEP_ATOMS[0]
    serial = _serial(Nap, n, rounds=1)
    benchmark.group = "parallel-sleep-1ms"
    timings = _parallel_rounds(benchmark, Nap, n, pool)
    wall = statistics.median(w for w, _ in timings)
    speedup = serial / wall
    benchmark.extra_info.update(
        atoms=n,
        workers=GOAL_WORKERS,
        pool=pool,
        sleep_s=SLEEP_S,
        wall_s=round(wall, 4),
        serial_s=round(serial, 4),
        ideal_s=round(n * SLEEP_S / GOAL_WORKERS, 4),
        speedup_over_serial=round(speedup, 2),
        goal_speedup=SPEEDUP_GOAL,
        meets_goal=speedup >= SPEEDUP_GOAL,
    )
    print(
        f"\n[sleep {SLEEP_S * 1e3:g} ms, {GOAL_WORKERS} workers, {pool}] {n} atoms: {wall:.3f} s, "
        f"serial {serial:.3f} s: speed-up {speedup:.2f}x (goal >= {SPEEDUP_GOAL:g})"
    )
    if not ci_mode:
        assert speedup >= SPEEDUP_FLOOR, f"speed-up {speedup:.2f}x over serial"
