"""Running one atom: its ``execute`` or ``revert`` with the TaskFlow calling conventions.

These functions run on the engine thread (serial engine, retries) or on an executor's thread
(parallel engine). They never touch the scheduler or storage: they only call user code and
return ``(ok, value)`` where value is the result or a captured `Failure`.
"""

from __future__ import annotations

from typing import Any

from ferroflow.types.failure import Failure

REVERT_RESULT = "result"
REVERT_FLOW_FAILURES = "flow_failures"
HISTORY = "history"


def execute_task(task: Any, kwargs: dict[str, Any]) -> tuple[bool, Any]:
    try:
        task.pre_execute()
        try:
            return True, task.execute(**kwargs)
        finally:
            task.post_execute()
    except Exception:
        return False, Failure()


def revert_task(task: Any, kwargs: dict[str, Any], result: Any, flow_failures: dict[str, Failure]) -> tuple[bool, Any]:
    kwargs = dict(kwargs)
    kwargs[REVERT_RESULT] = result
    kwargs[REVERT_FLOW_FAILURES] = flow_failures
    try:
        task.pre_revert()
        try:
            return True, task.revert(**kwargs)
        finally:
            task.post_revert()
    except Exception:
        return False, Failure()


def execute_retry(retry: Any, kwargs: dict[str, Any], history: Any) -> tuple[bool, Any]:
    kwargs = dict(kwargs)
    kwargs[HISTORY] = history
    try:
        return True, retry.execute(**kwargs)
    except Exception:
        return False, Failure()


def revert_retry(
    retry: Any, kwargs: dict[str, Any], history: Any, flow_failures: dict[str, Failure]
) -> tuple[bool, Any]:
    kwargs = dict(kwargs)
    kwargs[HISTORY] = history
    kwargs[REVERT_FLOW_FAILURES] = flow_failures
    try:
        return True, retry.revert(**kwargs)
    except Exception:
        return False, Failure()
