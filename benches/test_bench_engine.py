"""Engine overhead per atom: build, compile, run — in memory and on SQLite.

Run with ``pytest benches`` (release build: ``maturin develop --release``); CI runs every case once
with ``--benchmark-disable``.
"""

from __future__ import annotations

import pytest

from bench_flows import linear, random_dag, unordered
from ferroflow import engines

SIZES = [1_000, 10_000]
SHAPES = {"linear": linear, "unordered": unordered, "graph": random_dag}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_run_in_memory(benchmark, shape: str, n: int) -> None:
    benchmark.group = f"run-memory-{shape}"
    benchmark.extra_info["atoms"] = n

    def setup():
        engine = engines.load(SHAPES[shape](n))
        engine.compile()
        engine.prepare()
        engine.validate()
        return (engine,), {}

    def run(engine):
        engine.run()
        assert engine.storage.get_flow_state() == "SUCCESS"

    benchmark.pedantic(run, setup=setup, rounds=3)


@pytest.mark.parametrize("n", SIZES)
def test_compile(benchmark, n: int) -> None:
    benchmark.group = "compile-graph"
    benchmark.extra_info["atoms"] = n
    flow = random_dag(n)

    def compile_once():
        engines.load(flow).compile()

    benchmark.pedantic(compile_once, rounds=3)


@pytest.mark.parametrize("durability", ["process", "fsync"])
def test_run_on_sqlite(benchmark, tmp_path, durability: str) -> None:
    n = 1_000
    benchmark.group = f"run-sqlite-{durability}"
    benchmark.extra_info["atoms"] = n
    counter = iter(range(1_000_000))

    def setup():
        uri = f"sqlite:///{tmp_path}/bench-{next(counter)}.db?durability={durability}"
        engine = engines.load(linear(n), backend=uri)
        engine.compile()
        engine.prepare()
        engine.validate()
        return (engine,), {}

    def run(engine):
        engine.run()
        assert engine.storage.get_flow_state() == "SUCCESS"

    benchmark.pedantic(run, setup=setup, rounds=3)
