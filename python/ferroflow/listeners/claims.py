"""`CheckingClaimListener` (TaskFlow's ``taskflow.listeners.claims``): on every task or flow event,
check that the job is still claimed by its owner; when it is not, suspend the engine (or call
``on_job_loss``).

Each event costs one jobboard round-trip. Conductors do not need it: they watch their claims
through the heartbeat that renews them (`ferroflow.jobs.claims`) and suspend the engine when a
renewal finds the claim lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ferroflow import exceptions, states
from ferroflow.listeners import base

__all__ = ["CheckingClaimListener"]

LOG = logging.getLogger(__name__)


class CheckingClaimListener(base.Listener):
    """Suspends ``engine`` (or calls ``on_job_loss(engine, state, details)``) once ``job`` is no
    longer claimed by ``owner`` on ``board``."""

    def __init__(
        self,
        engine: Any,
        job: Any,
        board: Any,
        owner: str,
        on_job_loss: Callable[[Any, str, dict], None] | None = None,
    ) -> None:
        super().__init__(engine)
        self._job = job
        self._board = board
        self._owner = owner
        self._on_job_loss: Callable[[Any, str, dict], None]
        if on_job_loss is None:
            self._on_job_loss = self._suspend_engine_on_loss
        elif not callable(on_job_loss):
            raise ValueError("Custom 'on_job_loss' handler must be callable")
        else:
            self._on_job_loss = on_job_loss

    def _suspend_engine_on_loss(self, engine: Any, state: str, details: dict) -> None:
        try:
            engine.suspend()
        except exceptions.TaskFlowException as exc:
            LOG.warning("Failed suspending engine '%s' (previously owned by '%s'): %s", engine, self._owner, exc)

    def _flow_receiver(self, state: str, details: dict) -> None:
        self._claim_checker(state, details)

    def _task_receiver(self, state: str, details: dict) -> None:
        self._claim_checker(state, details)

    def _has_been_lost(self) -> bool:
        try:
            job_state = self._job.state
            job_owner = self._board.find_owner(self._job)
        except (exceptions.NotFound, exceptions.JobFailure):
            return True
        return job_state == states.UNCLAIMED or self._owner != job_owner

    def _claim_checker(self, state: str, details: dict) -> None:
        if not self._has_been_lost():
            LOG.debug("Job '%s' is still claimed (actively owned by '%s')", self._job, self._owner)
            return
        LOG.warning("Job '%s' has lost its claim (previously owned by '%s')", self._job, self._owner)
        self._on_job_loss(self._engine, state, details)
