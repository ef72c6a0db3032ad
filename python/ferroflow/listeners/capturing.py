"""A listener that records transitions, mainly for tests (``taskflow.listeners.capturing``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ferroflow.listeners import base


def _freeze_it(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(values) if values else frozenset()


class CaptureListener(base.Listener):
    """Appends one entry per transition to :attr:`values`.

    Entries are whatever :meth:`_format_capture` returns; by default ``(kind, state, details)`` with kind
    ``'flow'``, ``'task'`` or ``'retry'`` (as in TaskFlow).

    :param capture_flow: record flow transitions (likewise ``capture_task``, ``capture_retry``).
    :param skip_tasks: task names not to record (likewise ``skip_retries``, ``skip_flows``).
    :param values: a list to append to (a new one by default).
    """

    FLOW = "flow"
    TASK = "task"
    RETRY = "retry"

    def __init__(
        self,
        engine: Any,
        task_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] = base.DEFAULT_LISTEN_FOR,
        capture_flow: bool = True,
        capture_task: bool = True,
        capture_retry: bool = True,
        skip_tasks: Iterable[str] | None = None,
        skip_retries: Iterable[str] | None = None,
        skip_flows: Iterable[str] | None = None,
        values: list | None = None,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._capture_flow = capture_flow
        self._capture_task = capture_task
        self._capture_retry = capture_retry
        self._skip_tasks = _freeze_it(skip_tasks)
        self._skip_flows = _freeze_it(skip_flows)
        self._skip_retries = _freeze_it(skip_retries)
        self.values: list = [] if values is None else values

    @staticmethod
    def _format_capture(kind: str, state: str, details: dict) -> Any:
        """What to record for one transition (override to change it)."""
        return (kind, state, details)

    def _task_receiver(self, state: str, details: dict) -> None:
        if self._capture_task and details["task_name"] not in self._skip_tasks:
            self.values.append(self._format_capture(self.TASK, state, details))

    def _retry_receiver(self, state: str, details: dict) -> None:
        if self._capture_retry and details["retry_name"] not in self._skip_retries:
            self.values.append(self._format_capture(self.RETRY, state, details))

    def _flow_receiver(self, state: str, details: dict) -> None:
        if self._capture_flow and details["flow_name"] not in self._skip_flows:
            self.values.append(self._format_capture(self.FLOW, state, details))


_NAME_POSTFIX = {
    CaptureListener.TASK: (".t", "task_name"),
    CaptureListener.RETRY: (".r", "retry_name"),
    CaptureListener.FLOW: (".f", "flow_name"),
}


def format_capture_as_text(kind: str, state: str, details: dict) -> str:
    """``'<name>.t STATE'`` (``.r`` for retries, ``.f`` for flows), or ``'<name>.t STATE(<result>)'`` when
    the event carries a result: the notation of TaskFlow's own engine tests."""
    postfix, name_key = _NAME_POSTFIX[kind]
    name = details[name_key] + postfix
    if "result" in details:
        return f"{name} {state}({details['result']})"
    return f"{name} {state}"


class TextCaptureListener(CaptureListener):
    """A :class:`CaptureListener` recording :func:`format_capture_as_text` strings, such as
    ``'task1.t RUNNING'`` or ``'flow.f SUCCESS'`` (a ferroflow addition, handy to compare event
    sequences with TaskFlow's tests)."""

    _format_capture = staticmethod(format_capture_as_text)
