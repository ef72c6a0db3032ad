"""Listeners that time flows and atoms (``taskflow.listeners.timing``).

`DurationListener` saves how long each task and the flow took as ``meta['duration']`` (seconds, a float)
of their details; `PrintingDurationListener` also prints it; `EventTimeListener` saves the unix time of
every event as ``meta['<STATE>-timestamp']``. The metadata goes through ``engine.storage`` (see
`ferroflow.listeners._meta`), so it is persisted when the engine has a backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import states
from ferroflow.listeners import _meta, base

LOG = logging.getLogger(__name__)

#: Item kinds, as TaskFlow's compiler names them (they appear in messages).
TASK = "task"
FLOW = "flow"

#: States that start a timer.
STARTING_STATES = frozenset((states.RUNNING, states.REVERTING))
#: States that stop a timer and record the duration.
FINISHED_STATES = frozenset((*base.FINISH_STATES, states.REVERTED))
#: Everything a `DurationListener` listens for (PENDING drops a timer: the item was reset, e.g. retried).
WATCH_STATES = frozenset((*FINISHED_STATES, *STARTING_STATES, states.PENDING))


class _Timer:
    """A started monotonic stopwatch; `elapsed` is frozen once `stop` is called."""

    __slots__ = ("_started", "_stopped")

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._stopped: float | None = None

    def stop(self) -> None:
        self._stopped = time.monotonic()

    def elapsed(self) -> float:
        end = self._stopped if self._stopped is not None else time.monotonic()
        return max(0.0, end - self._started)


class DurationListener(base.Listener):
    """Records how long each task and the flow took to execute (or revert, or fail).

    A timer starts when the item enters RUNNING or REVERTING and stops when it reaches SUCCESS, FAILURE,
    REVERTED or REVERT_FAILURE; the seconds elapsed are saved as ``meta['duration']`` of the task detail
    (``storage.update_atom_metadata``) or of the flow detail (``storage.update_flow_metadata``). Retries
    are not timed (as in TaskFlow).
    """

    def __init__(self, engine: Any) -> None:
        super().__init__(engine, task_listen_for=WATCH_STATES, flow_listen_for=WATCH_STATES)
        self._timers: dict[str, dict[str, _Timer]] = {TASK: {}, FLOW: {}}

    def deregister(self) -> None:
        """Removes the callbacks; timers still running (items that never finished) are dropped with a
        warning."""
        super().deregister()
        for item_type, timers in self._timers.items():
            if timers:
                LOG.warning("%s %s(s) did not enter %s states", len(timers), item_type, FINISHED_STATES)
            timers.clear()

    def _record_ending(self, timer: _Timer, item_type: str, item_name: str, state: str) -> None:
        """Saves the duration (override to do more; ``state`` is the finishing state)."""
        meta_update = {"duration": timer.elapsed()}
        args = ("Failure to store duration update %s for %s %s", meta_update, item_type, item_name)
        if item_type == FLOW:
            _meta.update_flow_meta(self._engine, meta_update, LOG, *args)
        else:
            _meta.update_atom_meta(self._engine, item_name, meta_update, LOG, *args)

    def _task_receiver(self, state: str, details: dict) -> None:
        self._receiver(TASK, details["task_name"], state)

    def _flow_receiver(self, state: str, details: dict) -> None:
        self._receiver(FLOW, details["flow_name"], state)

    def _receiver(self, item_type: str, item_name: str, state: str) -> None:
        timers = self._timers[item_type]
        if state == states.PENDING:
            timers.pop(item_name, None)
        elif state in STARTING_STATES:
            timers[item_name] = _Timer()
        elif state in FINISHED_STATES:
            timer = timers.pop(item_name, None)
            if timer is not None:
                timer.stop()
                self._record_ending(timer, item_type, item_name, state)


class PrintingDurationListener(DurationListener):
    """A `DurationListener` that also prints ``"'<name>' <kind> started."`` and
    ``"It took <kind> '<name>' <seconds> seconds to finish."``.

    :param printer: called with each message (``print`` by default).
    """

    def __init__(self, engine: Any, printer: Callable[[str], Any] | None = None) -> None:
        super().__init__(engine)
        self._printer: Callable[[str], Any] = print if printer is None else printer

    def _record_ending(self, timer: _Timer, item_type: str, item_name: str, state: str) -> None:
        super()._record_ending(timer, item_type, item_name, state)
        self._printer(f"It took {item_type} '{item_name}' {timer.elapsed():0.2f} seconds to finish.")

    def _receiver(self, item_type: str, item_name: str, state: str) -> None:
        super()._receiver(item_type, item_name, state)
        if state in STARTING_STATES:
            self._printer(f"'{item_name}' {item_type} started.")


class EventTimeListener(base.Listener):
    """Saves the unix time of each event as ``meta['<STATE>-timestamp']`` of the task, retry or flow
    detail (durations can be derived from them later, e.g. ``SUCCESS-timestamp - RUNNING-timestamp``)."""

    def __init__(
        self,
        engine: Any,
        task_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )

    def _record_atom_event(self, state: str, atom_name: str) -> None:
        meta_update = {f"{state}-timestamp": time.time()}
        _meta.update_atom_meta(
            self._engine,
            atom_name,
            meta_update,
            LOG,
            "Failure to store timestamp %s for atom %s",
            meta_update,
            atom_name,
        )

    def _flow_receiver(self, state: str, details: dict) -> None:
        meta_update = {f"{state}-timestamp": time.time()}
        _meta.update_flow_meta(
            self._engine,
            meta_update,
            LOG,
            "Failure to store timestamp %s for flow %s",
            meta_update,
            details["flow_name"],
        )

    def _task_receiver(self, state: str, details: dict) -> None:
        self._record_atom_event(state, details["task_name"])

    def _retry_receiver(self, state: str, details: dict) -> None:
        self._record_atom_event(state, details["retry_name"])


__all__ = ["DurationListener", "EventTimeListener", "PrintingDurationListener"]
