"""Listeners that log transitions (``taskflow.listeners.logging``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import formatters, states, task
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
    """A matcher of nodes holding the task named ``task_name`` (for `FailureFormatter.format`); it
    carries the name as ``atom_name`` so the formatter can check that one atom instead of scanning."""

    def _task_matcher(node: Any) -> bool:
        item = getattr(node, "item", None)
        return isinstance(item, task.Task) and item.name == task_name

    _task_matcher.atom_name = task_name  # type: ignore[attr-defined]
    return _task_matcher


class DynamicLoggingListener(base.Listener):
    """Logs flow and task transitions, choosing the level from the outcome.

    Flow FAILURE/REVERTED and task FAILURE/REVERTED/RETRYING/REVERT_FAILURE are logged at
    ``failure_level`` (``WARNING``), everything else at ``level`` (``DEBUG``). A task whose result is a
    `Failure` is always logged at ``failure_level``, with the failure's traceback (``exc_info``) and
    the ``fail_formatter``'s details (by default a `~ferroflow.formatters.FailureFormatter`: the failed
    task's predecessors with their states, intentions, requires and provides).

    :param log: the logger (defaults to the class attribute ``_LOGGER``, then this module's logger).
    :param hide_inputs_outputs_of: task names whose results are never logged (nor their requires and
        provides shown by the default formatter).
    :param fail_formatter: an object with ``format(failure, atom_matcher) -> (exc_info, details)``.
    :param mask_inputs_keys: keys whose values the default formatter shows as ``'***'`` in requires.
    :param mask_outputs_keys: keys whose values the default formatter shows as ``'***'`` in provides;
        they are masked in logged task results too (a ferroflow addition: TaskFlow logs results as
        they are).
    """

    _LOGGER: logging.Logger | None = None

    #: States which are triggered under some type of failure.
    _FAILURE_STATES = (states.FAILURE, states.REVERT_FAILURE)

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
        if fail_formatter is None:
            fail_formatter = formatters.FailureFormatter(
                engine,
                hide_inputs_outputs_of=self._hide_inputs_outputs_of,
                mask_inputs_keys=self._mask_inputs_keys,
                mask_outputs_keys=self._mask_outputs_keys,
            )
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

    def _task_receiver(self, state: str, details: dict) -> None:
        task_name = details["task_name"]
        args: tuple[Any, ...] = (task_name, details["task_uuid"], state, details["old_state"])
        message = "Task '%s' (%s) transitioned into state '%s' from state '%s'"
        if "result" not in details or state not in base.FINISH_STATES:
            self._logger.log(self._task_log_levels.get(state, self._level), message, *args)
            return
        result = details["result"]
        if isinstance(result, failure.Failure):
            exc_info, fail_details = self._fail_formatter.format(result, _make_matcher(task_name))
            if fail_details:
                message += "%s%s"
                args += (os.linesep, fail_details)
            self._logger.log(self._failure_level, message, *args, exc_info=exc_info)
            return
        level = self._task_log_levels.get(state, self._level)
        show_result = self._logger.isEnabledFor(self._level) or state == states.FAILURE
        if show_result and task_name not in self._hide_inputs_outputs_of:
            if self._mask_outputs_keys:
                result = formatters.mask_keys(result, self._mask_outputs_keys)
            self._logger.log(level, message + " with result '%s'", *args, result)
        else:
            self._logger.log(level, message, *args)
