"""Timing helpers: phases of a run timed apart, summaries of repeated rounds, peak memory.

Every system's run object (`ferro.FerroflowRun`, `floor.FloorRun`, ...) follows `PhasedRun`: it
lists its ``phases`` in order, has one method per phase, and ``close()``. `time_phases` runs them
all and times each one; pytest benchmarks run the earlier phases as setup and time one phase.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class PhasedRun(Protocol):
    """One run of one scenario on one system, split into phases run in order."""

    #: Names of the phases, in the order they must run; each is a method of the run.
    phases: tuple[str, ...]

    def close(self) -> None:
        """Releases what the run holds (databases, temporary files)."""


def run_phase(run: PhasedRun, phase: str) -> None:
    """Runs one phase of ``run`` (its method of that name)."""
    getattr(run, phase)()


def run_until(run: PhasedRun, phase: str) -> None:
    """Runs the phases of ``run`` that come before ``phase`` (setup for timing ``phase`` alone)."""
    if phase not in run.phases:
        raise ValueError(f"{type(run).__name__} has no phase {phase!r} (phases: {', '.join(run.phases)})")
    for earlier in run.phases[: run.phases.index(phase)]:
        run_phase(run, earlier)


def time_phases(run: PhasedRun) -> dict[str, float]:
    """Runs every phase of ``run`` in order; seconds each took. Closes the run."""
    timings: dict[str, float] = {}
    try:
        for phase in run.phases:
            started = time.perf_counter()
            run_phase(run, phase)
            timings[phase] = time.perf_counter() - started
    finally:
        run.close()
    return timings


def collect_garbage() -> None:
    """Frees what the previous round left, so that it is not collected during the next one."""
    gc.collect()


@dataclass(frozen=True)
class Summary:
    """Median, minimum and maximum of repeated measurements."""

    median: float
    min: float
    max: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        data = list(values)
        if not data:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(data), min(data), max(data), len(data))

    def scaled(self, factor: float) -> Summary:
        """The same summary multiplied by ``factor`` (``1e6 / n`` gives microseconds per atom)."""
        return Summary(self.median * factor, self.min * factor, self.max * factor, self.count)

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max, "count": self.count}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss``, it starts afresh at
    ``exec``, so a child started by a big benchmarking process does not inherit its peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (None where it cannot be read)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / (1024 * 1024)


def seconds(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
