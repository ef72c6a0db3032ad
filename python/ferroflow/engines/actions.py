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


#: Per task class: whether it overrides ``pre_execute`` or ``post_execute`` (most do not, and
#: calling the empty hooks costs as much as the rest of running a no-op atom).
_EXECUTE_HOOKS: dict[type, bool] = {}


def has_execute_hooks(cls: type) -> bool:
    """Whether task class ``cls`` overrides ``pre_execute`` or ``post_execute``."""
    hooks = _EXECUTE_HOOKS.get(cls)
    if hooks is None:
        from ferroflow.atom import Atom

        hooks = _EXECUTE_HOOKS[cls] = (
            cls.pre_execute is not Atom.pre_execute or cls.post_execute is not Atom.post_execute
        )
    return hooks


def execute_task(task: Any, kwargs: dict[str, Any]) -> tuple[bool, Any]:
    if not has_execute_hooks(type(task)):  # hooks are the class's (as TaskFlow's are, in practice)
        try:
            return True, task.execute(**kwargs)
        except Exception:
            return False, Failure()
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
