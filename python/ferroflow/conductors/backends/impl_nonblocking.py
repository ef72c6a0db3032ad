"""The non-blocking conductor: up to ``max_simultaneous_jobs`` jobs at once, each on a worker thread.

A worker that finishes frees its slot at once: the loop claims the next job without waiting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent import futures
from typing import Any

from ferroflow.conductors.executor import ExecutorConductor

__all__ = ["NonBlockingConductor"]


class NonBlockingConductor(ExecutorConductor):
    """Runs several jobs at once on a thread pool (``executor_factory`` may give another executor)."""

    MAX_SIMULTANEOUS_JOBS = min(32, (os.cpu_count() or 1) * 4)

    def __init__(
        self, name: str, jobboard: Any, executor_factory: Callable[[], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name, jobboard, **kwargs)
        self._executor_factory = executor_factory
        self._executor: Any = None

    def run(self, max_dispatches: int | None = None) -> None:
        factory = self._executor_factory or (
            lambda: futures.ThreadPoolExecutor(self._max_jobs, thread_name_prefix=f"conductor-{self._name}")
        )
        self._executor = factory()
        try:
            super().run(max_dispatches)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _submit(self, work: Callable[[], None]) -> None:
        self._executor.submit(work)
