"""CPU-bound atoms on the parallel engine: threads (the GIL serialises them) against processes
(``executor='processes'``), and the serial engine, with as many workers as the machine has cores.

Each case records its wall time; ``test_process_speedup`` runs the three in one go and records the
speed-ups over serial in ``extra_info`` (``--benchmark-json``). ``--benchmark-disable`` runs a
scaled-down flow once.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from bench_support import ROUNDS
from ferroflow import engines, task
from ferroflow.patterns import unordered_flow

#: (atoms, loop iterations each): measured, and with ``--benchmark-disable``.
FULL = (16, 400_000)
SMOKE = (4, 20_000)
WORKERS = max(2, os.cpu_count() or 2)


class Burn(task.Task):
    """Pure-Python arithmetic (holds the GIL): returns a checksum of its loop."""

    def execute(self, iterations: int) -> int:
        total = 0
        for i in range(iterations):
            total = (total + i * i) % 1_000_003
        return total


def _flow(atoms: int) -> Any:
    return unordered_flow.Flow("burn").add(*[Burn(f"b{i}", provides=f"c{i}") for i in range(atoms)])


def _run(kind: str, atoms: int, iterations: int) -> float:
    options: dict[str, Any] = {"engine": "serial"}
    if kind != "serial":
        options = {"engine": "parallel", "executor": kind, "max_workers": WORKERS}
    engine = engines.load(_flow(atoms), store={"iterations": iterations}, **options)
    engine.compile()
    engine.prepare()
    start = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - start
    assert engine.storage.fetch("c0") == Burn().execute(iterations)
    return elapsed


@pytest.mark.parametrize("kind", ["serial", "threads", "processes"])
def test_cpu_bound(benchmark, kind: str, ci_mode: bool) -> None:
    atoms, iterations = SMOKE if ci_mode else FULL
    benchmark.group = "cpu-bound"
    benchmark.extra_info.update(atoms=atoms, iterations=iterations, workers=WORKERS, executor=kind)
    benchmark.pedantic(_run, args=(kind, atoms, iterations), rounds=1 if ci_mode else ROUNDS)


def test_process_speedup(benchmark, ci_mode: bool) -> None:
    atoms, iterations = SMOKE if ci_mode else FULL
    best = {"serial": float("inf"), "threads": float("inf"), "processes": float("inf")}

    def measure() -> None:
        for kind in best:
            best[kind] = min(best[kind], _run(kind, atoms, iterations))

    benchmark.group = "cpu-bound-speedup"
    benchmark.pedantic(measure, rounds=1 if ci_mode else 3)
    benchmark.extra_info.update(workers=WORKERS, **{f"{kind}_s": round(s, 4) for kind, s in best.items()})
    benchmark.extra_info["threads_speedup"] = round(best["serial"] / best["threads"], 2)
    benchmark.extra_info["processes_speedup"] = round(best["serial"] / best["processes"], 2)
    print("\ncpu-bound seconds:", {k: round(v, 3) for k, v in best.items()}, "workers", WORKERS)
