"""This process's id, for the fork checks on hot paths: handles inherited through ``fork()`` (a
store file, pooled connections, the lease heartbeat) must never be used in the child.

`os.getpid` is a system call (about 0.2 µs) and these checks run on every use of a store;
`pid` reads a value ``os.register_at_fork`` keeps up to date in a forked child.
"""

from __future__ import annotations

import os

__all__ = ["pid"]

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """This process's id (as `os.getpid`, without the system call)."""
    return _pid
