"""Thread helpers TaskFlow programs use (``taskflow.utils.threading_utils``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["daemon_thread", "get_ident", "get_optimal_thread_count", "is_alive", "no_op"]


def is_alive(thread: threading.Thread) -> bool:
    """Whether ``thread`` is running."""
    return thread.is_alive()


def get_ident() -> int:
    """The calling thread's identifier."""
    return threading.get_ident()


def get_optimal_thread_count(default: int = 2) -> int:
    """A pool size for I/O-bound work: one more than the CPUs (``default`` when unknown)."""
    count = os.cpu_count()
    return count + 1 if count else default


def daemon_thread(target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """A daemon thread (not started) running ``target(*args, **kwargs)``."""
    thread = threading.Thread(target=target, args=args, kwargs=kwargs)
    thread.daemon = True
    return thread


def no_op(*args: Any, **kwargs: Any) -> None:
    """Does nothing (a default callback)."""
