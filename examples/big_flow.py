"""Builds and runs a flow of a few thousand atoms, then prints what happened.

Usage: python examples/big_flow.py [--atoms N] [--engine serial|parallel]
"""

from __future__ import annotations

import argparse
import time

from ferroflow import engines, task
from ferroflow.listeners import capturing
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Add(task.Task):
    """Adds its two inputs."""

    def execute(self, left: int, right: int) -> int:
        return left + right


def make_flow(stages: int, width: int) -> linear_flow.Flow:
    """``stages`` linear stages, each an unordered fan-out of ``width`` adders feeding a graph join."""
    root = linear_flow.Flow("pipeline")
    previous = "seed"
    for stage in range(stages):
        fan = unordered_flow.Flow(f"stage-{stage}")
        for lane in range(width):
            fan.add(
                Add(f"s{stage}-lane{lane}", rebind={"left": previous, "right": "one"}, provides=f"s{stage}-out{lane}")
            )
        join = graph_flow.Flow(f"join-{stage}")
        join.add(
            Add(f"s{stage}-join", rebind={"left": f"s{stage}-out{width - 1}", "right": "one"}, provides=f"s{stage}-sum")
        )
        root.add(fan, join)
        previous = f"s{stage}-sum"
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--atoms", type=int, default=3000, help="approximate number of atoms")
    parser.add_argument("--engine", default="serial", choices=["serial", "parallel"])
    args = parser.parse_args()
    width = 9
    stages = max(1, args.atoms // (width + 1))
    started = time.perf_counter()
    flow = make_flow(stages, width)
    built = time.perf_counter()
    engine = engines.load(flow, store={"seed": 0, "one": 1}, engine=args.engine)
    with capturing.CaptureListener(engine, capture_flow=True, capture_task=False) as listener:
        engine.run()
    finished = time.perf_counter()
    atoms = stages * (width + 1)
    print(f"flow {flow.name!r}: {atoms} atoms in {stages} stages of {width} parallel adders + a join")
    print(
        f"built in {built - started:.3f}s, ran on the {args.engine} engine in {finished - built:.3f}s "
        f"({(finished - built) / atoms * 1e6:.1f} µs per atom)"
    )
    print(f"flow states: {' -> '.join(state for _kind, state, _details in listener.values)}")
    print(f"final sum: {engine.storage.fetch(f's{stages - 1}-sum')} (expected {2 * stages})")


if __name__ == "__main__":
    main()
