"""A flow whose children run in any order, possibly in parallel (``taskflow.patterns.unordered_flow``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ferroflow import flow

if TYPE_CHECKING:
    from ferroflow.retry import Retry


class Flow(flow.Flow):
    """Children have no order between them; siblings cannot use each other's results."""

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        super().__init__(name, retry)
        self._children: dict[Any, None] = {}  # insertion-ordered set

    def add(self, *items: Any) -> Flow:
        """Adds ``items`` (atoms or flows); one already in the flow is ignored."""
        children = self._children
        for item in items:
            if item not in children:
                children[item] = None
        return self

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._children)

    def iter_links(self) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
        return iter(())

    def iter_nodes(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        for item in self._children:
            yield item, {}

    @property
    def requires(self) -> frozenset[str]:
        """Names needed by the retry or by a child and not provided by the retry (siblings do not count)."""
        requires: set[str] = set()
        retry_provides: set[str] = set()
        if self._retry is not None:
            requires.update(self._retry.requires)
            retry_provides.update(self._retry.provides)
        for item in self:
            requires.update(name for name in item.requires if name not in retry_provides)
        return frozenset(requires)
