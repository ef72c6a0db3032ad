"""Listeners that log transitions (``taskflow.listeners.logging``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import states, task
from ferroflow.listeners import base
from ferroflow.types import failure

LOG = logging.getLogger(__name__)


class LoggingListener(base.DumpingListener):
    """Logs every flow and task transition at one level (``DEBUG`` by default).

    :param log: the logger (defaults to the class attribute ``_LOGGER``, then this module's logger).
    :param level: the level to log at.
    """

    _LOGGER: logging.Logger | None = None

    def __init__(
        self,
        engine: Any,
        task_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        log: logging.Logger | None = None,
        level: int = logging.DEBUG,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._logger = _pick_logger(log, self._LOGGER)
        self._level = level

    def _dump(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._logger.log(self._level, message, *args, **kwargs)


def _pick_logger(*candidates: logging.Logger | None) -> logging.Logger:
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return LOG


def _make_matcher(task_name: str) -> Callable[[Any], bool]:
    """A matcher of compilation-tree nodes holding the task named ``task_name`` (for formatters)."""

    def _task_matcher(node: Any) -> bool:
        item = getattr(node, "item", None)
        return isinstance(item, task.Task) and item.name == task_name

    return _task_matcher


class DynamicLoggingListener(base.Listener):
    """Logs transitions, choosing the level from the outcome.

    Flow FAILURE/REVERTED and task FAILURE/REVERTED/RETRYING/REVERT_FAILURE are logged at
    ``failure_level`` (``WARNING``); a task whose result is a Failure is always logged at
    ``failure_level`` with its traceback; everything else at ``level`` (``DEBUG``).

    :param fail_formatter: an object with ``format(failure, matcher) -> (exc_info, text)`` describing a
        failure in context; without one, the failure's traceback is logged.
    :param hide_inputs_outputs_of: task names whose results are never logged.
    :param mask_inputs_keys: passed on to formatters (accepted for compatibility).
    :param mask_outputs_keys: passed on to formatters (accepted for compatibility).
    """

    _LOGGER: logging.Logger | None = None

    def __init__(
        self,
        engine: Any,
        task_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        log: logging.Logger | None = None,
        failure_level: int = logging.WARNING,
        level: int = logging.DEBUG,
        hide_inputs_outputs_of: Iterable[str] = (),
        fail_formatter: Any = None,
        mask_inputs_keys: Iterable[str] = (),
        mask_outputs_keys: Iterable[str] = (),
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._failure_level = failure_level
        self._level = level
        self._task_log_levels = {
            states.FAILURE: failure_level,
            states.REVERTED: failure_level,
            states.RETRYING: failure_level,
            states.REVERT_FAILURE: failure_level,
        }
        self._flow_log_levels = {states.FAILURE: failure_level, states.REVERTED: failure_level}
        self._hide_inputs_outputs_of = frozenset(hide_inputs_outputs_of)
        self._mask_inputs_keys = frozenset(mask_inputs_keys)
        self._mask_outputs_keys = frozenset(mask_outputs_keys)
        self._logger = _pick_logger(log, self._LOGGER)
        self._fail_formatter = fail_formatter

    def _flow_receiver(self, state: str, details: dict) -> None:
        self._logger.log(
            self._flow_log_levels.get(state, self._level),
            "Flow '%s' (%s) transitioned into state '%s' from state '%s'",
            details["flow_name"],
            details["flow_uuid"],
            state,
            details.get("old_state"),
        )

    def _format_failure(self, result: failure.Failure, task_name: str) -> tuple[Any, str | None]:
        if self._fail_formatter is not None:
            return self._fail_formatter.format(result, _make_matcher(task_name))
        if result.exc_info:
            return tuple(result.exc_info), None
        return None, result.pformat(traceback=True)

    def _task_receiver(self, state: str, details: dict) -> None:
        task_name = details["task_name"]
        task_uuid = details["task_uuid"]
        level = self._task_log_levels.get(state, self._level)
        if "result" not in details or state not in base.FINISH_STATES:
            self._logger.log(
                level,
                "Task '%s' (%s) transitioned into state '%s' from state '%s'",
                task_name,
                task_uuid,
                state,
                details["old_state"],
            )
            return
        result = details["result"]
        if isinstance(result, failure.Failure):
            exc_info, fail_details = self._format_failure(result, task_name)
            message = "Task '%s' (%s) transitioned into state '%s' from state '%s'"
            args: tuple = (task_name, task_uuid, state, details["old_state"])
            if fail_details:
                message += "%s%s"
                args += (os.linesep, fail_details)
            self._logger.log(self._failure_level, message, *args, exc_info=exc_info)
            return
        show_result = self._logger.isEnabledFor(self._level) or state == states.FAILURE
        if show_result and task_name not in self._hide_inputs_outputs_of:
            self._logger.log(
                level,
                "Task '%s' (%s) transitioned into state '%s' from state '%s' with result '%s'",
                task_name,
                task_uuid,
                state,
                details["old_state"],
                result,
            )
        else:
            self._logger.log(
                level,
                "Task '%s' (%s) transitioned into state '%s' from state '%s'",
                task_name,
                task_uuid,
                state,
                details["old_state"],
            )
