"""Flows for the crash tests, rebuilt by name in every child process (``FlowDetail.meta['factory']``).

Each atom ``aNNN`` computes a deterministic value from the values of the atoms it requires
(`value_of`), so the test recomputes every expected result (`expected_values`) without running
anything. Before returning, ``execute`` appends ``"execute <name> <value>"`` to the journal and
``revert`` appends ``"revert <name>"``. A line is one ``write()`` on an ``O_APPEND`` descriptor:
once the call returns the line is in the kernel's page cache, so it survives a SIGKILL of the
process (not a power loss, which these tests do not simulate — hence no ``fsync``, which would cost
milliseconds per atom and stretch the runs the kills must land in). The journal is therefore a
superset of what the store can know: the store records an outcome only after the task returned.

Small random pauses before and after the journal line widen the windows a kill can land in: mid
task (nothing journaled) and between the journal line and the commit (journaled, not recorded).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferroflow import retry, task
from ferroflow.patterns import graph_flow, linear_flow

LINEAR = "linear"
GRAPH = "graph"
KINDS = (LINEAR, GRAPH)
#: Most atoms one graph atom requires.
MAX_INPUTS = 3
#: A graph atom requires atoms among this many predecessors (keeps the DAG both deep and wide:
#: about 30 levels, up to a dozen atoms ready at once).
INPUT_WINDOW = 30
_MODULUS = 1_000_000_007


#: Atoms this close (by index) to the failing one are slow (see `build`).
SLOW_BAND = 15
SLOW_PAUSE_US = 20_000


class Boom(Exception):
    """The failure of the atom a revert scenario makes fail."""


def atom_name(index: int) -> str:
    return f"a{index:03d}"


def value_name(index: int) -> str:
    return f"v{index:03d}"


def atom_inputs(kind: str, n: int, seed: int) -> list[list[int]]:
    """For each atom, the indexes of the atoms whose values it requires (always lower indexes)."""
    if kind == LINEAR:
        return [[] if i == 0 else [i - 1] for i in range(n)]
    if kind != GRAPH:
        raise ValueError(f"unknown flow kind {kind!r}; expected one of {KINDS}")
    rng = random.Random(seed)
    inputs = []
    for i in range(n):
        window = range(max(0, i - INPUT_WINDOW), i)
        # At least one input (a000 aside): many roots would make the serial engine's first batch
        # of ready atoms so wide that most kills land before anything of it is committed.
        count = rng.randint(min(1, len(window)), min(MAX_INPUTS, len(window)))
        inputs.append(sorted(rng.sample(window, count)))
    return inputs


def value_of(index: int, input_values: list[int]) -> int:
    """What atom ``index`` returns given its inputs' values (bounded, order-insensitive)."""
    return (sum(input_values) * 31 + index + 1) % _MODULUS


def expected_values(inputs: list[list[int]]) -> list[int]:
    """Every atom's correct result, computed in index order (inputs always come first)."""
    values: list[int] = []
    for index, needs in enumerate(inputs):
        values.append(value_of(index, [values[j] for j in needs]))
    return values


class _Journal:
    """Appends whole lines to a file from any thread (one ``write`` each, so lines never mix)."""

    _fds: dict[str, int] = {}
    _lock = threading.Lock()

    @classmethod
    def append(cls, path: str, line: str) -> None:
        fd = cls._fds.get(path)
        if fd is None:
            with cls._lock:
                fd = cls._fds.get(path)
                if fd is None:
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    cls._fds[path] = fd
        data = (line + "\n").encode()
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to journal {path}")


def _pause(max_pause_us: int) -> None:
    if max_pause_us > 0:
        time.sleep(random.randint(0, max_pause_us) / 1e6)


class Step(task.Task):
    """Atom ``index``: returns `value_of` its inputs, journaling every execute and revert."""

    def __init__(self, index: int, needs: list[int], journal: str, max_pause_us: int, fails: bool) -> None:
        super().__init__(name=atom_name(index), provides=value_name(index), requires=[value_name(j) for j in needs])
        self._index = index
        self._needs = needs
        self._journal = journal
        self._max_pause_us = max_pause_us
        self._fails = fails

    def execute(self, **kwargs: Any) -> int:
        value = value_of(self._index, [kwargs[value_name(j)] for j in self._needs])
        _pause(self._max_pause_us // 2)
        _Journal.append(self._journal, f"execute {self.name} {value}")
        _pause(self._max_pause_us // 2)
        if self._fails:
            raise Boom(f"{self.name} fails on purpose")
        return value

    def revert(self, **kwargs: Any) -> None:
        _pause(self._max_pause_us // 2)
        _Journal.append(self._journal, f"revert {self.name}")
        _pause(self._max_pause_us // 2)


class ForwardStep(Step):
    """A `Step` whose revert is the default no-op: a flow that never fails needs none, and a task
    without one is what the serial engine's lane writes itself under ``durability=batch``."""

    revert = task.Task.revert


def build(kind: str, n: int, seed: int, journal: str, fail_at: int = -1, max_pause_us: int = 2000) -> Any:
    """The flow factory: ``n`` `Step` atoms, linear or a seeded random DAG; atom ``fail_at`` raises.

    Atoms whose index is within `SLOW_BAND` of ``fail_at`` pause up to `SLOW_PAUSE_US`: in a
    parallel run, those scheduled alongside the failing atom are then still running for a while
    after the failure is resolved, so kills right after it find atoms saved RUNNING with the REVERT
    intention (a state a resume must handle by reverting them).

    The kinds in `SEMANTIC_KINDS` (retries, deciders) are built by `build_semantics` instead.
    """
    if kind in SEMANTIC_KINDS:
        return build_semantics(kind, n, journal, fail_at, max_pause_us)
    inputs = atom_inputs(kind, n, seed)
    step = Step if fail_at >= 0 else ForwardStep  # (a flow that never fails never reverts)
    steps = [
        step(i, needs, journal, _pause_of(i, fail_at, max_pause_us), i == fail_at) for i, needs in enumerate(inputs)
    ]
    flow = linear_flow.Flow(f"crash-{kind}") if kind == LINEAR else graph_flow.Flow(f"crash-{kind}")
    return flow.add(*steps)


def _pause_of(index: int, fail_at: int, max_pause_us: int) -> int:
    if fail_at >= 0 and index != fail_at and abs(index - fail_at) <= SLOW_BAND:
        return max(max_pause_us, SLOW_PAUSE_US)
    return max_pause_us


# -- retries and deciders (tests/crash/test_crash_retries.py) ----------------------------------------

#: A ``Times(TIMES_ATTEMPTS)`` retry around a linear subflow whose `Flaky` atom fails every attempt
#: but the last.
TIMES = "retry-times"
#: A `ForEach` retry over `FOR_EACH_VALUES` around a linear subflow whose `Flaky` atom always fails.
FOR_EACH = "retry-foreach"
#: A graph flow whose decider ignores one branch and lets another run (see `decider_layout`).
DECIDER = "decider"
SEMANTIC_KINDS = (TIMES, FOR_EACH, DECIDER)
TIMES_ATTEMPTS = 3
#: Deliberately neither sorted nor consecutive: the attempt a task sees is the value, not a count.
FOR_EACH_VALUES = (7, 3, 9)
RETRY_NAME = "retry"
#: What the retry provides to the subflow: `Flaky` takes it as its ``attempt`` argument.
ATTEMPT = "attempt"
#: Journal line kind `Flaky` appends first thing in each execute: ``start <name> <attempt>``.
START = "start"
#: Most `Flaky` pauses after its ``start`` line: kills land inside its execute (the attempt must
#: then run again, as the same attempt).
FLAKY_PAUSE_US = 20_000
#: The retries pause this long before deciding: kills land after the failure was saved (in the
#: retry's history too) and before the revert it decides.
DECIDE_PAUSE = 0.01


def retried_range(kind: str, n: int) -> range:
    """Indexes of the atoms inside the retried subflow: all but ``a000`` before it and, for
    `TIMES`, the last atom after it (`FOR_EACH` never gets past its subflow)."""
    return range(1, n - 1) if kind == TIMES else range(1, n)


@dataclass(frozen=True)
class DeciderLayout:
    """Index ranges of the decider flow: ``head`` runs first; the links from its last atom (the
    *gate*) to ``skipped`` and to ``taken`` have deciders checking the gate's result, the first
    saying no, the second yes."""

    head: range
    skipped: range
    taken: range


def decider_layout(n: int) -> DeciderLayout:
    skipped = max(1, n // 8)
    head = (n - skipped) // 2
    return DeciderLayout(range(head), range(head, head + skipped), range(head + skipped, n))


def semantic_inputs(kind: str, n: int) -> list[list[int]]:
    """Like `atom_inputs`: each atom requires its predecessor's value, except the first atom of
    each decider branch (ordered after the head by the decided link alone)."""
    inputs = atom_inputs(LINEAR, n, 0)
    if kind == DECIDER:
        layout = decider_layout(n)
        inputs[layout.skipped.start] = []
        inputs[layout.taken.start] = []
    return inputs


class Flaky(Step):
    """A `Step` that also takes the retry's value as ``attempt``: journals ``start <name> <attempt>``
    before anything else (so an execute a kill interrupts is counted too), pauses up to
    `FLAKY_PAUSE_US`, journals its execute line like a `Step`, then at once returns its value —
    or raises `Boom` naming the attempt unless ``attempt`` is ``succeeds_on`` (None: never): a
    kill soon after that line finds the failure saved rather than the execute still running."""

    def __init__(self, index: int, needs: list[int], journal: str, max_pause_us: int, succeeds_on: int | None) -> None:
        super().__init__(index, needs, journal, max_pause_us, fails=False)
        self._succeeds_on = succeeds_on

    def execute(self, attempt: int, **kwargs: Any) -> int:  # type: ignore[override]
        _Journal.append(self._journal, f"{START} {self.name} {attempt}")
        _pause(FLAKY_PAUSE_US)
        value = value_of(self._index, [kwargs[value_name(j)] for j in self._needs])
        _Journal.append(self._journal, f"execute {self.name} {value}")
        if attempt != self._succeeds_on:
            raise Boom(f"{self.name} fails on attempt {attempt}")
        return value


class _SlowToDecide(retry.Retry):
    """Pauses `DECIDE_PAUSE` before the retry's own decision."""

    def on_failure(self, *args: Any, **kwargs: Any) -> retry.Decision:
        time.sleep(DECIDE_PAUSE)
        return super().on_failure(*args, **kwargs)


class SlowTimes(_SlowToDecide, retry.Times):
    """`retry.Times`, slow to decide."""


class SlowForEach(_SlowToDecide, retry.ForEach):
    """`retry.ForEach`, slow to decide."""


def build_semantics(kind: str, n: int, journal: str, fail_at: int, max_pause_us: int) -> Any:
    """The flows of the retry and decider scenarios: ``n`` atoms in one index space whose values
    follow `semantic_inputs`; ``fail_at`` is the `Flaky` atom (retry kinds, inside `retried_range`)."""
    inputs = semantic_inputs(kind, n)

    def step(i: int) -> Step:
        if kind != DECIDER and i == fail_at:
            return Flaky(i, inputs[i], journal, max_pause_us, TIMES_ATTEMPTS if kind == TIMES else None)
        return Step(i, inputs[i], journal, max_pause_us, fails=False)

    if kind == DECIDER:
        return _decider_flow(n, step)
    inner = retried_range(kind, n)
    if fail_at not in inner:
        raise ValueError(f"the flaky atom {fail_at} must be inside the retried subflow {inner}")
    retry_ = (
        SlowTimes(TIMES_ATTEMPTS, name=RETRY_NAME, provides=ATTEMPT)
        if kind == TIMES
        else SlowForEach(list(FOR_EACH_VALUES), name=RETRY_NAME, provides=ATTEMPT)
    )
    subflow = linear_flow.Flow(f"{kind}-attempts", retry=retry_).add(*[step(i) for i in inner])
    outer = [step(i) for i in range(n) if i not in inner]
    return linear_flow.Flow(f"crash-{kind}").add(outer[0], subflow, *outer[1:])


def _decider_flow(n: int, step: Callable[[int], Step]) -> Any:
    layout = decider_layout(n)
    # The deciders see the results of the link's source atom only (a flow as the source would give
    # them an empty history, as in TaskFlow): the head's last atom is a node of the graph itself.
    gate = step(layout.head[-1])
    gate_value = expected_values(semantic_inputs(DECIDER, n))[layout.head[-1]]

    def head_done_right(history: dict[str, Any]) -> bool:
        return history.get(gate.name) == gate_value

    def part(indexes: range, name: str) -> Any:
        return linear_flow.Flow(name).add(*[step(i) for i in indexes])

    head = part(layout.head[:-1], "head")  # linked to the gate by the value the gate requires
    skipped, taken = part(layout.skipped, "skipped"), part(layout.taken, "taken")
    flow = graph_flow.Flow(f"crash-{DECIDER}").add(head, gate, skipped, taken)
    flow.link(gate, skipped, decider=lambda history: not head_done_right(history))
    flow.link(gate, taken, decider=head_done_right)
    return flow
