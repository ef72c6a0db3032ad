"""The base of flow patterns (``taskflow.flow``).

A flow groups atoms and other flows and defines how they are ordered; the patterns are in
:mod:`ferroflow.patterns`. Links between children carry a metadata dict with the ``LINK_*`` keys below.
"""

from __future__ import annotations

import abc
import contextlib
import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferroflow.retry import Retry

#: The link is implied by the pattern (linear order) and cannot be removed.
LINK_INVARIANT = "invariant"
#: The link was made with ``graph_flow.Flow.link()``.
LINK_MANUAL = "manual"
#: The link goes from a retry to what it controls.
LINK_RETRY = "retry"
#: The set of symbols that made ``graph_flow`` infer the link.
LINK_REASONS = "reasons"
#: A callable deciding at run time whether the link's target runs.
LINK_DECIDER = "decider"
#: The :class:`~ferroflow.deciders.Depth` of a decider's "no".
LINK_DECIDER_DEPTH = "decider_depth"

_CHOP_PREFIX = "ferroflow.patterns."


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector while building large acyclic structures.

    Building 100,000 atoms' worth of containers otherwise triggers repeated full collections over every
    live object, which costs more than the building itself. Nothing built under it holds cycles, so
    nothing is leaked; the collector's previous state is restored.

    What was built is meant to last (flows, their lowered form, loaded state), so on the way out it is
    moved straight to the oldest generation (with the few young objects made before): otherwise the
    first young collections would each walk all of it once more (a 100,000-atom lowering: ~0.15 s).
    ``gc.freeze()`` then ``gc.unfreeze()`` does that by splicing lists, without a walk; it is skipped
    when something else keeps objects frozen (a running engine), as unfreezing would release them.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


class Flow(abc.ABC):
    """A named group of atoms and flows, ordered by its pattern.

    :param name: a human-readable name (need not be unique).
    :param retry: a :class:`~ferroflow.retry.Retry` controlling the atoms inside this flow (those not
        controlled by a deeper retry). An unnamed retry is named ``"<name>_retry"``.
    """

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        self._name = str(name)
        self._retry = retry
        if retry is not None and retry.name is None:
            retry.name = self._name + "_retry"

    @property
    def name(self) -> str:
        """The flow's (not necessarily unique) name."""
        return self._name

    @property
    def retry(self) -> Retry | None:
        """The retry controlling this flow's atoms, or ``None``."""
        return self._retry

    @abc.abstractmethod
    def add(self, *items: Any) -> Flow:
        """Adds atoms and/or flows; returns the flow."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many children the flow has."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Any]:
        """Iterates over the children."""

    @abc.abstractmethod
    def iter_links(self) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
        """Yields ``(u, v, meta)``: child ``v`` runs after child ``u``."""

    @abc.abstractmethod
    def iter_nodes(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields ``(child, meta)`` for every child."""

    def __str__(self) -> str:
        cls = type(self)
        cls_name = f"{cls.__module__}.{cls.__name__}"
        if cls_name.startswith(_CHOP_PREFIX):
            cls_name = cls_name[len(_CHOP_PREFIX) :]
        return f'"{cls_name}: {self.name}(len={len(self)})"'

    @property
    def provides(self) -> frozenset[str]:
        """Every name provided by the flow's retry and children."""
        provides: set[str] = set()
        if self._retry is not None:
            provides.update(self._retry.provides)
        for item in self:
            provides.update(item.provides)
        return frozenset(provides)

    @property
    @abc.abstractmethod
    def requires(self) -> frozenset[str]:
        """The names the flow needs that none of its own members provide."""
