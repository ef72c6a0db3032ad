"""Flows for the jobboard, conductor and takeover tests (importable by name in conductor processes).

`journaled(job, atoms, seconds, journal)` builds a linear flow of ``atoms`` tasks; each appends
``start <job> <atom> <pid> <time>`` to ``journal`` before it sleeps ``seconds`` and ``end ...``
after, and returns ``"<pid>:<start time>"``, so a test can tell which execution's result was saved.
"""

from __future__ import annotations

import os
import time

from ferroflow import task
from ferroflow.patterns import linear_flow


def _append(journal: str, line: str) -> None:
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Journaling(task.Task):
    def __init__(self, name: str, job: str, journal: str, seconds: float) -> None:
        super().__init__(name=name)
        self.job, self.journal, self.seconds = job, journal, seconds

    def execute(self) -> str:
        start = time.time()
        _append(self.journal, f"start {self.job} {self.name} {os.getpid()} {start:.6f}")
        if self.seconds:
            time.sleep(self.seconds)
        _append(self.journal, f"end {self.job} {self.name} {os.getpid()} {time.time():.6f}")
        return f"{os.getpid()}:{start:.6f}"


def journaled(job: str, atoms: int, seconds: float, journal: str) -> linear_flow.Flow:
    flow = linear_flow.Flow(f"job-{job}")
    flow.add(*(Journaling(f"a{i:02d}", job, journal, seconds) for i in range(atoms)))
    return flow


class Needs(task.Task):
    def execute(self, greeting: str) -> str:
        return greeting.upper()


def needs_store() -> linear_flow.Flow:
    """A flow whose only task needs ``greeting`` from the job's store."""
    return linear_flow.Flow("needs-store").add(Needs("shout"))


class Fails(task.Task):
    def execute(self) -> None:
        raise RuntimeError("this task always fails")


def failing() -> linear_flow.Flow:
    return linear_flow.Flow("failing").add(Fails("fails"))
