"""Sizing batches of work by the pace measured so far (the parallel engine's chunks of atoms,
`engines.resume_many`'s chunks of flows)."""

from __future__ import annotations


def next_size(current: int, size: int, seconds: float, budget: float) -> int:
    """The batch size after a batch of ``size`` items took ``seconds``: as many as fit in
    ``budget`` seconds at that pace, at most twice ``size`` (a slow start: one quick batch does
    not allow a huge one), at least one; when too quick to measure, twice ``size`` (or
    ``current``, if larger)."""
    if seconds <= 0.0:
        return max(current, 2 * size)
    return max(1, min(2 * size, int(budget * size / seconds)))
