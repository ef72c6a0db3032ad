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
from typing import Any

from ferroflow import task
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


def build(kind: str, n: int, seed: int, journal: str, fail_at: int = -1, max_pause_us: int = 2000) -> Any:
    """The flow factory: ``n`` `Step` atoms, linear or a seeded random DAG; atom ``fail_at`` raises.

    Atoms whose index is within `SLOW_BAND` of ``fail_at`` pause up to `SLOW_PAUSE_US`: in a
    parallel run, those scheduled alongside the failing atom are then still running for a while
    after the failure is resolved, so kills right after it find atoms saved RUNNING with the REVERT
    intention (a state a resume must handle by reverting them).
    """
    inputs = atom_inputs(kind, n, seed)
    steps = [
        Step(i, needs, journal, _pause_of(i, fail_at, max_pause_us), i == fail_at) for i, needs in enumerate(inputs)
    ]
    flow = linear_flow.Flow(f"crash-{kind}") if kind == LINEAR else graph_flow.Flow(f"crash-{kind}")
    return flow.add(*steps)


def _pause_of(index: int, fail_at: int, max_pause_us: int) -> int:
    if fail_at >= 0 and index != fail_at and abs(index - fail_at) <= SLOW_BAND:
        return max(max_pause_us, SLOW_PAUSE_US)
    return max_pause_us
