"""The benchmark flows: no-op atoms in a line, unordered, or a random DAG with a fixed seed.

Every system runs the same work: `dag_requires` gives the DAG (each atom requires up to 3 earlier
ones) that `random_dag` builds for ferroflow, and that the floor and the peers build for themselves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ferroflow import task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow

#: The seed of the random DAG: every system runs the same graph.
DAG_SEED = 7
#: The shapes of flow a scenario can run.
SHAPES = ("linear", "unordered", "graph")


class Noop(task.Task):
    """Does nothing: what is measured is the engine around it."""

    def execute(self) -> None:
        return None


class Joiner(task.Task):
    """Requires whatever its ``requires`` says, returns a constant (for the random DAG)."""

    def execute(self, **inputs: Any) -> int:
        return 1


def dag_requires(n: int, seed: int = DAG_SEED) -> list[list[int]]:
    """For each atom ``i``, the earlier atoms it requires (up to 3, drawn with a fixed seed)."""
    rng = random.Random(seed)
    requires: list[list[int]] = [[]]
    for i in range(1, n):
        requires.append(rng.sample(range(i), min(i, rng.randint(0, 3))))
    return requires[:n]


def linear(n: int) -> linear_flow.Flow:
    """``n`` no-op tasks, each after the one before."""
    return linear_flow.Flow("linear").add(*[Noop(f"t{i}") for i in range(n)])


def unordered(n: int) -> unordered_flow.Flow:
    """``n`` independent no-op tasks."""
    return unordered_flow.Flow("unordered").add(*[Noop(f"t{i}") for i in range(n)])


def random_dag(n: int, seed: int = DAG_SEED) -> graph_flow.Flow:
    """``n`` tasks; each requires the values of up to 3 earlier ones (`dag_requires`)."""
    flow = graph_flow.Flow("dag")
    atoms = [
        Joiner(f"t{i}", provides=f"v{i}", requires=[f"v{j}" for j in required])
        for i, required in enumerate(dag_requires(n, seed))
    ]
    flow.add(*atoms)
    return flow


BUILDERS: dict[str, Callable[[int], Any]] = {"linear": linear, "unordered": unordered, "graph": random_dag}


def build(shape: str, n: int) -> Any:
    """The ferroflow flow of ``shape`` with ``n`` atoms."""
    try:
        builder = BUILDERS[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}") from None
    return builder(n)


def small_linear(n: int = 10) -> linear_flow.Flow:
    """Factory of the small resumable flows (importable by name, so a fresh process rebuilds it)."""
    return linear(n)


def halfway(n: int) -> int:
    """Atoms done before a benchmark suspends a flow of ``n`` atoms."""
    return n // 2
