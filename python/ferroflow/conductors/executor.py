"""The conductors' loop: claim the next job, run it, consume, abandon or trash it.

- **Claim.** `~ferroflow.jobs.sql_board.SqlJobBoard.claim_next` takes the most urgent, oldest
  job (releasing expired claims first). With no job, the conductor sleeps until the board
  announces a change (a post, a release) or the earliest claim expires; ``wait_timeout`` only
  bounds that sleep.
- **Run.** The job's flow detail is loaded with `ferroflow.engines.load_from_detail` and run step
  by step; when the conductor stops or the claim is lost, the engine is asked to suspend
  (running atoms finish, nothing new starts).
- **Finish.** Consume on success or when the flow failed; abandon when it was suspended, or on a
  storage or execution failure (including `~ferroflow.exceptions.LeaseLost`): another conductor
  resumes it. Trash when the job cannot be dispatched at all (no such flow detail, a factory
  that cannot be imported or is not trusted), logging why; the conductor keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ferroflow import exceptions, states
from ferroflow.conductors import base
from ferroflow.jobs.base import Job
from ferroflow.persistence import ownership

__all__ = ["ExecutorConductor"]

LOG = logging.getLogger(__name__)

CONSUME, ABANDON, TRASH, LOST = "consume", "abandon", "trash", "lost"
# Why an attempt ended: done (consume), failed, suspended, or busy (the flow owned by another engine).
DONE, FAILED, SUSPENDED, BUSY = "done", "failed", "suspended", "busy"
#: Seconds between attempts at a flow whose lease another engine still holds.
RETRY_BUSY = 0.25


class ExecutorConductor(base.Conductor):
    """Runs up to ``max_simultaneous_jobs`` jobs at once (each on a worker thread, or inline when 1)."""

    #: Longest sleep without any announcement from the board (seconds).
    WAIT_TIMEOUT = 5.0
    MAX_SIMULTANEOUS_JOBS = 1
    #: Failures after which the job is abandoned (another conductor may succeed), not consumed.
    NO_CONSUME_EXCEPTIONS: tuple[type[BaseException], ...] = (exceptions.ExecutionFailure, exceptions.StorageFailure)
    EVENTS_EMITTED = (
        "compilation_start",
        "compilation_end",
        "preparation_start",
        "preparation_end",
        "validation_start",
        "validation_end",
        "running_start",
        "running_end",
        "job_consumed",
        "job_abandoned",
        "job_trashed",
    )

    def __init__(
        self,
        name: str,
        jobboard: Any,
        persistence: Any = None,
        engine: str | None = None,
        engine_options: dict[str, Any] | None = None,
        wait_timeout: float | None = None,
        log: logging.Logger | None = None,
        max_simultaneous_jobs: int | None = None,
        claim_expiry: float | None = None,
    ) -> None:
        super().__init__(name, jobboard, persistence=persistence, engine=engine, engine_options=engine_options)
        self._wait_timeout = float(self.WAIT_TIMEOUT if wait_timeout is None else wait_timeout)
        self._log = log or LOG
        jobs = self.MAX_SIMULTANEOUS_JOBS if max_simultaneous_jobs is None else int(max_simultaneous_jobs)
        if jobs <= 0:
            raise ValueError(f"max_simultaneous_jobs must be at least 1, got {max_simultaneous_jobs!r}")
        self._max_jobs = jobs
        self._claim_expiry = claim_expiry
        self._stopping = threading.Event()
        self._dead = threading.Event()
        self._dead.set()
        self._slots = threading.Condition()
        self._running: dict[str, Any] = {}  # job uuid -> engine (None while it loads)
        #: Counts of finished jobs by outcome (for a status line).
        self.counts = {CONSUME: 0, ABANDON: 0, TRASH: 0, LOST: 0}

    # -- control -------------------------------------------------------------------------------
    @property
    def dispatching(self) -> bool:
        """Whether the loop is running."""
        return not self._dead.is_set()

    @property
    def running_jobs(self) -> int:
        return len(self._running)

    def stop(self) -> None:
        """Stops claiming; running jobs finish their current atoms, are suspended and abandoned.

        Returns at once (safe from a signal handler); `wait` for the loop to end.
        """
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        self._jobboard.interrupt()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for `run` to return; False when ``timeout`` passed first."""
        return self._dead.wait(timeout)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, max_dispatches: int | None = None) -> None:
        """Claims and runs jobs until `stop` (or ``max_dispatches`` jobs were dispatched and done)."""
        self._stopping.clear()
        self._dead.clear()
        board = self._jobboard
        try:
            self.connect()
            board.register_entity(self.conductor)
            dispatched = 0
            backoff = 0.1
            while not self._stopping.is_set():
                if max_dispatches is not None and 0 <= max_dispatches <= dispatched:
                    break
                if not self._wait_for_slot():
                    break
                token = board._change_token()
                try:
                    job = board.claim_next(self._name, expiry=self._claim_expiry)
                    wake = None if job is not None else board._next_wake(self._wait_timeout)
                except exceptions.JobFailure as exc:
                    self._log.warning(
                        "conductor %s: the board failed (retrying in %.1f s): %s", self._name, backoff, exc
                    )
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                if job is None:
                    board._wait_for_change(token, wake)
                    continue
                dispatched += 1
                self._start(job)
            self._drain()
        finally:
            self._dead.set()

    def _wait_for_slot(self) -> bool:
        with self._slots:
            while len(self._running) >= self._max_jobs:
                if self._stopping.is_set():
                    return False
                self._slots.wait()
        return not self._stopping.is_set()

    def _drain(self) -> None:
        with self._slots:
            while self._running:
                self._slots.wait(0.5)

    def _start(self, job: Job) -> None:
        with self._slots:
            self._running[job.uuid] = None
        self._submit(lambda: self._work(job))

    def _submit(self, work: Callable[[], None]) -> None:
        work()

    def _work(self, job: Job) -> None:
        try:
            outcome = self._dispatch_job(job)
            self._finish(job, outcome)
        except BaseException:
            self._log.exception("conductor %s: job %s ended in an unexpected error", self._name, job.uuid)
            raise
        finally:
            with self._slots:
                self._running.pop(job.uuid, None)
                self._slots.notify_all()

    # -- one job -------------------------------------------------------------------------------
    def _dispatch_job(self, job: Job) -> str:
        """Runs the job's flow; returns what to do with the job (consume, abandon, trash or lost).

        A flow still owned by another engine (its lease not yet expired: a conductor that died
        or lost its store a moment ago) is tried again, holding the claim, until that lease
        ends. A job abandoned on a failure is abandoned after a short pause, so that a
        conductor whose store is failing does not spin on claiming and abandoning it.
        """
        claim = self._jobboard.claim_of(job)
        lost = threading.Event()
        if claim is not None:
            claim.on_lost(lambda _claim: lost.set())
        deadline = time.monotonic() + ownership.lease_seconds_from(self._engine_options.get("lease_seconds")) + 1.0
        while True:
            outcome, why = self._dispatch_once(job, lost)
            if why != BUSY or lost.is_set() or self._stopping.is_set() or time.monotonic() >= deadline:
                break
            self._stopping.wait(RETRY_BUSY)
        if lost.is_set():
            return LOST
        if outcome == ABANDON and why != SUSPENDED:
            self._stopping.wait(min(1.0, claim.seconds / 3 if claim is not None else 1.0))
        return outcome

    def _dispatch_once(self, job: Job, lost: threading.Event) -> tuple[str, str]:
        """One attempt: ``(outcome, why)``, ``why`` saying whether the flow was busy, failed or suspended."""
        try:
            engine = self._engine_from_job(job)
        except (exceptions.StorageFailure, exceptions.JobFailure) as exc:
            self._log.warning(
                "conductor %s: job %s (%s) could not be loaded, abandoned: %s", self._name, job.uuid, job.name, exc
            )
            return ABANDON, FAILED
        except Exception as exc:
            self._log.error(
                "conductor %s: job %s (%s) cannot be dispatched, trashed: %s: %s",
                self._name,
                job.uuid,
                job.name,
                type(exc).__name__,
                exc,
            )
            return TRASH, FAILED
        with self._slots:
            self._running[job.uuid] = engine
        listeners = self._listeners_from_job(job, engine)
        for listener in listeners:
            listener.register()
        details = {"job": job, "engine": engine, "conductor": self}
        notify = self._notifier.notify
        why = DONE
        event = ""
        try:
            for stage, event in (
                (engine.compile, "compilation"),
                (engine.prepare, "preparation"),
                (engine.validate, "validation"),
                (lambda: self._run_engine(engine, job, lost), "running"),
            ):
                notify(f"{event}_start", details)
                stage()
                notify(f"{event}_end", details)
        except exceptions.WrappedFailure as exc:
            consume = not all(failure.check(*self.NO_CONSUME_EXCEPTIONS) for failure in exc)
            self._log.warning(
                "conductor %s: job %s failed (%s): %s",
                self._name,
                job.uuid,
                "consumed" if consume else "abandoned",
                exc,
            )
            outcome, why = (CONSUME, DONE) if consume else (ABANDON, FAILED)
        except self.NO_CONSUME_EXCEPTIONS as exc:
            outcome, why = ABANDON, FAILED
            if isinstance(exc, exceptions.InvalidState) and event == "preparation":
                why = BUSY  # the flow's lease is another engine's: tried again until it ends
                self._log.info("conductor %s: job %s: %s", self._name, job.uuid, exc)
            else:
                self._log.warning(
                    "conductor %s: job %s stopped on %s, abandoned: %s", self._name, job.uuid, type(exc).__name__, exc
                )
        except Exception as exc:
            self._log.warning(
                "conductor %s: job %s failed, consumed: %s: %s", self._name, job.uuid, type(exc).__name__, exc
            )
            outcome = CONSUME
        else:
            if engine.storage.get_flow_state() == states.SUSPENDED:
                self._log.info("conductor %s: job %s suspended", self._name, job.uuid)
                outcome, why = ABANDON, SUSPENDED
            else:
                outcome = CONSUME
        finally:
            for listener in listeners:
                listener.deregister()
        return outcome, why

    def _run_engine(self, engine: Any, job: Job, lost: threading.Event) -> None:
        suspended = False
        for _state in engine.run_iter():
            if not suspended and (self._stopping.is_set() or lost.is_set()):
                why = "the conductor is stopping" if self._stopping.is_set() else "its claim was lost"
                self._log.info("conductor %s: suspending job %s: %s", self._name, job.uuid, why)
                engine.suspend()
                suspended = True

    def _finish(self, job: Job, outcome: str) -> None:
        board = self._jobboard
        if outcome == LOST:
            self._log.warning(
                "conductor %s: lost the claim on job %s; another conductor resumes it", self._name, job.uuid
            )
            self.counts[LOST] += 1
            return
        action, event = {
            CONSUME: (board.consume, "job_consumed"),
            ABANDON: (board.abandon, "job_abandoned"),
            TRASH: (board.trash, "job_trashed"),
        }[outcome]
        claim = board.claim_of(job)
        deadline = time.monotonic() + (claim.seconds if claim is not None else 5.0)
        delay = 0.1
        while True:
            try:
                action(job, self._name)
                break
            except (exceptions.NotFound, exceptions.UnclaimableJob) as exc:
                self._log.warning("conductor %s: could not %s job %s: %s", self._name, outcome, job.uuid, exc)
                self.counts[LOST] += 1
                return
            except exceptions.JobFailure as exc:
                stale = claim is not None and claim.lost is not None
                if stale or "no longer held" in str(exc) or time.monotonic() + delay > deadline:
                    self._log.warning("conductor %s: could not %s job %s: %s", self._name, outcome, job.uuid, exc)
                    self.counts[LOST] += 1
                    return
                self._log.warning(
                    "conductor %s: %s of job %s failed (retrying): %s", self._name, outcome, job.uuid, exc
                )
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.counts[outcome] += 1
        self._notifier.notify(event, {"job": job, "conductor": self, "persistence": self._persistence})
