"""The blocking conductor: one job at a time, run in the thread that called ``run``."""

from __future__ import annotations

from typing import Any

from ferroflow.conductors.executor import ExecutorConductor

__all__ = ["BlockingConductor"]


class BlockingConductor(ExecutorConductor):
    """Runs one job at a time in the calling thread."""

    def __init__(self, name: str, jobboard: Any, **kwargs: Any) -> None:
        kwargs.pop("max_simultaneous_jobs", None)
        super().__init__(name, jobboard, max_simultaneous_jobs=1, **kwargs)
