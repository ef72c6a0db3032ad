"""An immutable set that keeps insertion order (``taskflow.types.sets.OrderedSet``)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Set
from typing import Any


class OrderedSet(Set, Hashable):
    """A read-only, hashable set that iterates in first-insertion order.

    Usable wherever a ``frozenset`` is; set operators (``-``, ``|``, ``&``) keep the left operand's order.
    """

    __slots__ = ("_data",)

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self._data: dict[Any, None] = dict.fromkeys(iterable) if iterable is not None else {}

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> OrderedSet:
        return cls(it)

    def __hash__(self) -> int:
        return self._hash()

    def __contains__(self, value: object) -> bool:
        return value in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __getstate__(self) -> tuple:
        return tuple(self._data)

    def __setstate__(self, items: tuple) -> None:
        self._data = dict.fromkeys(items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._data)})"

    def copy(self) -> OrderedSet:
        """A shallow copy."""
        return self._from_iterable(self._data)

    def union(self, *sets: Iterable[Any]) -> OrderedSet:
        """Items of this set then of ``sets``, in order, without repeats."""
        data = dict(self._data)
        for s in sets:
            data.update(dict.fromkeys(s))
        return self._from_iterable(data)

    def intersection(self, *sets: Iterable[Any]) -> OrderedSet:
        """Items of this set found in every one of ``sets``."""
        others = [s if isinstance(s, Set) else set(s) for s in sets]
        return self._from_iterable(v for v in self._data if all(v in s for s in others))

    def difference(self, *sets: Iterable[Any]) -> OrderedSet:
        """Items of this set found in none of ``sets``."""
        others = [s if isinstance(s, Set) else set(s) for s in sets]
        return self._from_iterable(v for v in self._data if not any(v in s for s in others))

    def issubset(self, other: Iterable[Any]) -> bool:
        """True if every item of this set is in ``other``."""
        other = other if isinstance(other, Set) else set(other)
        return all(v in other for v in self._data)

    def issuperset(self, other: Iterable[Any]) -> bool:
        """True if every item of ``other`` is in this set."""
        return all(v in self._data for v in other)
