"""The base of engine listeners (``taskflow.listeners.base``).

A listener registers callbacks on ``engine.notifier`` (flow events) and ``engine.atom_notifier`` (task and
retry events, told apart by their details: ``task_name``/``task_uuid`` or ``retry_name``/``retry_uuid``).
Use it as a context manager, or call :meth:`Listener.register` / :meth:`Listener.deregister`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import states
from ferroflow.types import failure
from ferroflow.types import notifier as nt

LOG = logging.getLogger(__name__)

#: Atom states after which an atom's result (or failure) is known.
FINISH_STATES = (states.FAILURE, states.SUCCESS, states.REVERTED, states.REVERT_FAILURE)

#: Listen for every event.
DEFAULT_LISTEN_FOR = (nt.Notifier.ANY,)


def _task_matcher(details: dict | None) -> bool:
    """True for the details of a task event."""
    return details is not None and "task_name" in details and "task_uuid" in details


def _retry_matcher(details: dict | None) -> bool:
    """True for the details of a retry event."""
    return details is not None and "retry_name" in details and "retry_uuid" in details


def _bulk_deregister(notifier: nt.Notifier, registered: list, details_filter: Callable | None = None) -> None:
    while registered:
        state, callback = registered.pop()
        notifier.deregister(state, callback, details_filter=details_filter)


def _bulk_register(
    watch_states: Iterable[str],
    notifier: nt.Notifier,
    callback: Callable,
    details_filter: Callable | None = None,
) -> list[tuple[str, Callable]]:
    """Registers ``callback`` for each state; all or nothing."""
    registered: list[tuple[str, Callable]] = []
    try:
        for state in watch_states:
            if not notifier.is_registered(state, callback, details_filter=details_filter):
                notifier.register(state, callback, details_filter=details_filter)
                registered.append((state, callback))
    except ValueError:
        _bulk_deregister(notifier, registered, details_filter=details_filter)
        raise
    return registered


class Listener:
    """Base class of listeners; override :meth:`_flow_receiver`, :meth:`_task_receiver` and/or
    :meth:`_retry_receiver` (each called as ``(state, details)``).

    :param engine: the engine to listen to (needs ``notifier`` and ``atom_notifier``).
    :param task_listen_for: task states (events) to receive; ``('*',)`` = all.
    :param flow_listen_for: flow states to receive.
    :param retry_listen_for: retry states to receive.
    """

    def __init__(
        self,
        engine: Any,
        task_listen_for: Iterable[str] = DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] = DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] = DEFAULT_LISTEN_FOR,
    ) -> None:
        self._listen_for = {
            "task": list(task_listen_for or ()),
            "retry": list(retry_listen_for or ()),
            "flow": list(flow_listen_for or ()),
        }
        self._engine = engine
        self._registered: dict[str, list[tuple[str, Callable]]] = {}

    def _flow_receiver(self, state: str, details: dict) -> None:
        """Called on flow events."""

    def _task_receiver(self, state: str, details: dict) -> None:
        """Called on task events."""

    def _retry_receiver(self, state: str, details: dict) -> None:
        """Called on retry events."""

    def deregister(self) -> None:
        """Removes this listener's callbacks from the engine's notifiers."""
        if "task" in self._registered:
            _bulk_deregister(self._engine.atom_notifier, self._registered.pop("task"), _task_matcher)
        if "retry" in self._registered:
            _bulk_deregister(self._engine.atom_notifier, self._registered.pop("retry"), _retry_matcher)
        if "flow" in self._registered:
            _bulk_deregister(self._engine.notifier, self._registered.pop("flow"))

    def register(self) -> None:
        """Adds this listener's callbacks to the engine's notifiers (once)."""
        if "task" not in self._registered:
            self._registered["task"] = _bulk_register(
                self._listen_for["task"], self._engine.atom_notifier, self._task_receiver, _task_matcher
            )
        if "retry" not in self._registered:
            self._registered["retry"] = _bulk_register(
                self._listen_for["retry"], self._engine.atom_notifier, self._retry_receiver, _retry_matcher
            )
        if "flow" not in self._registered:
            self._registered["flow"] = _bulk_register(
                self._listen_for["flow"], self._engine.notifier, self._flow_receiver
            )

    def __enter__(self) -> Listener:
        self.register()
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        try:
            self.deregister()
        except Exception:
            LOG.warning("Failed deregistering listeners from engine %s", self._engine, exc_info=True)


class DumpingListener(Listener, metaclass=abc.ABCMeta):
    """A listener that writes a line per flow and task transition through :meth:`_dump`."""

    @abc.abstractmethod
    def _dump(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Writes ``message % args`` somewhere; ``kwargs`` may hold ``exc_info``."""

    def _flow_receiver(self, state: str, details: dict) -> None:
        self._dump(
            "%s has moved flow '%s' (%s) into state '%s' from state '%s'",
            self._engine,
            details["flow_name"],
            details["flow_uuid"],
            state,
            details["old_state"],
        )

    def _task_receiver(self, state: str, details: dict) -> None:
        if state not in FINISH_STATES:
            self._dump(
                "%s has moved task '%s' (%s) into state '%s' from state '%s'",
                self._engine,
                details["task_name"],
                details["task_uuid"],
                state,
                details["old_state"],
            )
            return
        result = details.get("result")
        exc_info = None
        was_failure = isinstance(result, failure.Failure)
        if isinstance(result, failure.Failure) and result.exc_info:
            exc_info = tuple(result.exc_info)
        self._dump(
            "%s has moved task '%s' (%s) into state '%s' from state '%s' with result '%s' (failure=%s)",
            self._engine,
            details["task_name"],
            details["task_uuid"],
            state,
            details["old_state"],
            result,
            was_failure,
            exc_info=exc_info,
        )
