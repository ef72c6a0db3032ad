"""Shared flow builders for the benchmarks (no-op atoms, fixed seeds)."""

from __future__ import annotations

import random

from ferroflow import task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Noop(task.Task):
    def execute(self):
        return None


class Joiner(task.Task):
    """Requires whatever its ``requires`` says, returns a constant."""

    def execute(self, **inputs):
        return 1


def linear(n: int) -> linear_flow.Flow:
    return linear_flow.Flow("linear").add(*[Noop(f"t{i}") for i in range(n)])


def unordered(n: int) -> unordered_flow.Flow:
    return unordered_flow.Flow("unordered").add(*[Noop(f"t{i}") for i in range(n)])


def random_dag(n: int, seed: int = 7) -> graph_flow.Flow:
    """Each atom requires up to 3 earlier ones (by the names they provide)."""
    rng = random.Random(seed)
    flow = graph_flow.Flow("dag")
    atoms = []
    for i in range(n):
        requires = [f"v{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))] if i else []
        atoms.append(Joiner(f"t{i}", provides=f"v{i}", requires=requires))
    flow.add(*atoms)
    return flow
