"""The flow ``ferroflow demo`` runs, kills and resumes: a checksum pipeline of a few thousand atoms.

Shape (a common one for batch jobs): a ``seed`` task, then linear *stages*; each stage is an
unordered fan-out of *shard* tasks, each hashing the previous stage's checksum with its own shard
number, feeding a *merge* task that folds the shard digests into the stage's checksum. The last
merge provides :data:`RESULT_NAME`. Every task does a little real work (a chain of SHA-256
rounds), so a run lasts long enough to be killed part way, and the final checksum depends on every
task's result, so :func:`expected_checksum` (the same arithmetic without an engine) checks that a
resumed run computed the right thing.

:func:`make_pipeline` is importable by name, as a flow factory must be for the flow to be rebuilt
after a crash (``ferroflow run ferroflow.demo_flow:make_pipeline --arg 3000``).
"""

from __future__ import annotations

import hashlib

from ferroflow import task
from ferroflow.patterns import linear_flow, unordered_flow

#: The name the final checksum is provided under.
RESULT_NAME = "checksum"
#: Shards per stage (the fan-out width) when the flow is big enough.
DEFAULT_WIDTH = 24
#: SHA-256 rounds per shard task: about half a millisecond of work.
DEFAULT_ROUNDS = 800
#: The smallest flow: the seed, one shard and one merge.
MIN_ATOMS = 3
_MASK = (1 << 64) - 1


def shard_digest(previous: int, stage: int, shard: int, rounds: int) -> int:
    """The work of one shard: ``rounds`` chained SHA-256 of the inputs, as a 64-bit integer."""
    digest = f"{previous}:{stage}:{shard}".encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return int.from_bytes(digest[:8], "little")


def merge_digests(digests: list[int]) -> int:
    """Folds shard digests into a stage checksum (order-independent, as shards run unordered)."""
    return sum(digests) & _MASK


def stage_widths(atoms: int, width: int = DEFAULT_WIDTH) -> list[int]:
    """Shards per stage so that the seed plus every stage's shards and merge make exactly ``atoms``."""
    if atoms < MIN_ATOMS:
        raise ValueError(f"the demo pipeline needs at least {MIN_ATOMS} atoms, not {atoms}")
    if width < 1:
        raise ValueError(f"the fan-out width must be at least 1, not {width}")
    stages = max(1, (atoms - 1) // (width + 1))
    shards = atoms - 1 - stages  # one merge per stage
    base, extra = divmod(shards, stages)
    return [base + (1 if stage < extra else 0) for stage in range(stages)]


class Seed(task.Task):
    """Provides the pipeline's initial checksum."""

    def execute(self, seed: int) -> int:
        return seed


class Shard(task.Task):
    """Hashes the previous stage's checksum with this shard's number."""

    def execute(self, previous: int, stage: int, shard: int, rounds: int) -> int:
        return shard_digest(previous, stage, shard, rounds)


class Merge(task.Task):
    """Folds the stage's shard digests (its ``requires``, passed by name) into one checksum."""

    def execute(self, **digests: int) -> int:
        return merge_digests(list(digests.values()))


def make_pipeline(atoms: int = 3000, rounds: int = DEFAULT_ROUNDS, seed: int = 1) -> linear_flow.Flow:
    """The demo flow with exactly ``atoms`` atoms (see the module docstring)."""
    root = linear_flow.Flow("checksum-pipeline")
    previous = "seed.checksum"
    root.add(Seed("seed", inject={"seed": seed}, provides=previous))
    widths = stage_widths(atoms)
    for stage, width in enumerate(widths):
        name = f"stage-{stage:04d}"
        fan_out = unordered_flow.Flow(f"{name}.shards")
        outputs = []
        for shard in range(width):
            output = f"{name}.shard-{shard:03d}"
            fan_out.add(
                Shard(
                    output,
                    rebind={"previous": previous},
                    inject={"stage": stage, "shard": shard, "rounds": rounds},
                    provides=output,
                )
            )
            outputs.append(output)
        checksum = RESULT_NAME if stage == len(widths) - 1 else f"{name}.checksum"
        root.add(fan_out, Merge(f"{name}.merge", requires=outputs, provides=checksum))
        previous = checksum
    return root


def expected_checksum(atoms: int = 3000, rounds: int = DEFAULT_ROUNDS, seed: int = 1) -> int:
    """What the pipeline computes, without an engine."""
    checksum = seed
    for stage, width in enumerate(stage_widths(atoms)):
        checksum = merge_digests([shard_digest(checksum, stage, shard, rounds) for shard in range(width)])
    return checksum


__all__ = ["RESULT_NAME", "expected_checksum", "make_pipeline", "stage_widths"]
