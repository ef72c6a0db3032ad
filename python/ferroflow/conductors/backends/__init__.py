"""Find conductors by kind (TaskFlow's ``taskflow.conductors.backends``): ``blocking`` runs one job
at a time in the calling thread, ``nonblocking`` runs ``max_simultaneous_jobs`` at once."""

from __future__ import annotations

from typing import Any

from ferroflow.conductors.executor import ExecutorConductor

__all__ = ["fetch"]


def fetch(kind: str, name: str, jobboard: Any, namespace: str | None = None, **kwargs: Any) -> ExecutorConductor:
    """A ``kind`` conductor named ``name`` working on ``jobboard`` (keyword args as TaskFlow's:
    ``persistence``, ``engine``, ``engine_options``, ``wait_timeout``, ``log``,
    ``max_simultaneous_jobs``; and ``claim_expiry``)."""
    if kind == "blocking":
        from ferroflow.conductors.backends.impl_blocking import BlockingConductor

        return BlockingConductor(name, jobboard, **kwargs)
    if kind == "nonblocking":
        from ferroflow.conductors.backends.impl_nonblocking import NonBlockingConductor

        return NonBlockingConductor(name, jobboard, **kwargs)
    raise ValueError(f"Unknown conductor kind {kind!r}: use 'blocking' or 'nonblocking'")
