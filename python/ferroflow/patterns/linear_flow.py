"""A flow whose children run one after another (``taskflow.patterns.linear_flow``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ferroflow import flow

if TYPE_CHECKING:
    from ferroflow.retry import Retry


class Flow(flow.Flow):
    """Children run in the order they were added and are reverted in the reverse order.

    Adding a child that is already in the flow does nothing.
    """

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        super().__init__(name, retry)
        self._children: dict[Any, None] = {}  # insertion-ordered set

    def add(self, *items: Any) -> Flow:
        """Appends ``items`` (atoms or flows) after the current last child."""
        children = self._children
        for item in items:
            if item not in children:
                children[item] = None
        return self

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._children)

    @property
    def requires(self) -> frozenset[str]:
        """Names needed by the retry or by a child, and not provided by the retry or an earlier child."""
        requires: set[str] = set()
        prior_provides: set[str] = set()
        if self._retry is not None:
            requires.update(self._retry.requires)
            prior_provides.update(self._retry.provides)
        for item in self:
            requires.update(name for name in item.requires if name not in prior_provides)
            prior_provides.update(item.provides)
        return frozenset(requires)

    def iter_nodes(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        for item in self._children:
            yield item, {}

    def iter_links(self) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
        previous = _NO_ITEM
        for item in self._children:
            if previous is not _NO_ITEM:
                yield previous, item, {flow.LINK_INVARIANT: True}
            previous = item


_NO_ITEM = object()
