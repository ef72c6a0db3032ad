"""How far a graph-flow decider's "no" reaches (``taskflow.deciders``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Depth(enum.StrEnum):
    """The atoms ignored when a decider on a link ``u -> v`` returns False."""

    #: ``v`` and every successor of it, nested flows included (the default).
    ALL = "ALL"
    #: ``v`` and the successor tasks in the same flow (not those of nested flows).
    FLOW = "FLOW"
    #: ``v`` and its direct successor tasks only.
    NEIGHBORS = "NEIGHBORS"
    #: ``v`` only.
    ATOM = "ATOM"

    @classmethod
    def translate(cls, desired_depth: Depth | str) -> Depth:  # type: ignore[override]
        """A :class:`Depth` from itself or its (case-insensitive) name.

        :raises TypeError: not a string. :raises ValueError: not a depth's name.
        """
        if isinstance(desired_depth, cls):
            return desired_depth
        if not isinstance(desired_depth, str):
            raise TypeError(f"Unexpected desired depth type, string type expected, not {type(desired_depth)}")
        try:
            return cls(desired_depth.upper())
        except ValueError:
            pretty = sorted(depth.name for depth in cls)
            raise ValueError(
                f"Unexpected decider depth value, one of {pretty} (case-insensitive) is expected"
                f" and not '{desired_depth}'"
            ) from None


# Widest influence first.
_ORDERING = (Depth.ALL, Depth.FLOW, Depth.NEIGHBORS, Depth.ATOM)


def pick_widest(depths: Iterable[Depth]) -> Depth:
    """The depth with the widest influence among ``depths``."""
    return _ORDERING[min(_ORDERING.index(d) for d in depths)]
