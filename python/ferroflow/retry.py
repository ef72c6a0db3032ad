"""Retry controllers: atoms that decide how a failure in their flow is resolved (``taskflow.retry``).

A retry attached to a flow (``Flow(name, retry=...)``) runs before the flow's atoms. When one of them
fails, :meth:`Retry.on_failure` answers with a :class:`Decision`: ``RETRY`` reverts the flow's atoms and
runs them (and the retry's ``execute``) again, ``REVERT`` reverts this flow and lets the enclosing retry
decide, ``REVERT_ALL`` reverts everything. ``execute``, ``on_failure`` and ``revert`` always receive
``history``: a :class:`History` of the retry's earlier results and the failures each attempt met.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ferroflow import atom
from ferroflow import exceptions as exc

if TYPE_CHECKING:
    from ferroflow.types.failure import Failure


@enum.unique
class Decision(enum.StrEnum):
    """What to do about a failure in the flow a retry controls."""

    #: Revert the retry's flow, asking the enclosing retry (if any) first whether it prefers another
    #: resolution (with the engine option ``defer_reverts``, always follow the enclosing retry).
    REVERT = "REVERT"
    #: Revert the whole flow, whatever the enclosing retries would decide.
    REVERT_ALL = "REVERT_ALL"
    #: Revert the retry's flow, then run it again.
    RETRY = "RETRY"


REVERT = Decision.REVERT
REVERT_ALL = Decision.REVERT_ALL
RETRY = Decision.RETRY

#: Keyword argument always passed to a retry's execute/on_failure/revert.
EXECUTE_REVERT_HISTORY = "history"
#: Keyword argument of a retry's revert holding ``{atom name: Failure}``.
REVERT_FLOW_FAILURES = "flow_failures"


class History:
    """A retry's past attempts: ``[(retry result, {atom name: Failure}), …]`` oldest first.

    :param contents: the attempts.
    :param failure: the retry's own failure, if it failed itself.
    """

    def __init__(self, contents: Sequence[tuple[Any, dict[str, Failure]]], failure: Failure | None = None) -> None:
        self._contents = contents
        self._failure = failure

    @property
    def failure(self) -> Failure | None:
        """The retry's own failure, or ``None``."""
        return self._failure

    def outcomes_iter(self, index: int | None = None) -> Iterator[tuple[str, Failure]]:
        """Yields ``(atom name, Failure)`` of every attempt (or only of attempt ``index``); the retry's
        own failure is not included (see :attr:`failure`)."""
        contents = self._contents if index is None else [self._contents[index]]
        for _provided, outcomes in contents:
            yield from outcomes.items()

    def __len__(self) -> int:
        return len(self._contents)

    def provided_iter(self) -> Iterator[Any]:
        """Yields the value the retry provided on each attempt, in order."""
        for provided, _outcomes in self._contents:
            yield provided

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Failure]]:
        return self._contents[index]

    def caused_by(self, exception_cls: type | str, index: int | None = None, include_retry: bool = False) -> bool:
        """True if an attempt's failure (or, with ``include_retry``, the retry's own) was caused by
        ``exception_cls``."""
        for _name, failure in self.outcomes_iter(index=index):
            if failure.check(exception_cls):
                return True
        return bool(include_retry and self._failure is not None and self._failure.check(exception_cls))

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Failure]]]:
        return iter(self._contents)


class Retry(atom.Atom):
    """Base of retry controllers.

    Unlike tasks, retries take no ``inject``/``revert_rebind``/``revert_requires``. If ``name`` is None,
    the flow the retry is attached to names it ``"<flow name>_retry"``.
    """

    def __init__(
        self,
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        *,
        on_version_change: Any = None,
    ) -> None:
        super().__init__(
            name=name,
            provides=provides,
            requires=requires,
            rebind=rebind,
            auto_extract=auto_extract,
            ignore_list=[EXECUTE_REVERT_HISTORY],
            on_version_change=on_version_change,
        )

    @property
    def name(self) -> str | None:
        """The retry's name (settable: flows name unnamed retries)."""
        return self._name

    @name.setter
    def name(self, name: str | None) -> None:
        self._name = name

    @abc.abstractmethod
    def execute(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Runs before (each attempt of) the controlled flow; the result is saved in the history and
        under :attr:`provides`, so it can parametrize the flow's atoms."""

    def revert(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Called when the controlled flow is reverted for good (also gets ``flow_failures``)."""

    @abc.abstractmethod
    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        """Decides how to resolve a failure in the controlled flow: ``RETRY``, ``REVERT`` or
        ``REVERT_ALL``."""


class AlwaysRevert(Retry):
    """Reverts its flow on any failure (and lets the enclosing retry decide)."""

    def on_failure(self, *args: Any, **kwargs: Any) -> Decision:
        return REVERT

    def execute(self, *args: Any, **kwargs: Any) -> None:
        pass


class AlwaysRevertAll(Retry):
    """Reverts the whole flow on any failure."""

    def on_failure(self, **kwargs: Any) -> Decision:  # type: ignore[override]  # TaskFlow signature
        return REVERT_ALL

    def execute(self, **kwargs: Any) -> None:  # type: ignore[override]
        pass


class Times(Retry):
    """Runs its flow up to ``attempts`` times in all; ``execute`` returns the attempt number (1-based).

    :param revert_all: when attempts run out, revert everything (``REVERT_ALL``) instead of this flow.
    """

    def __init__(
        self,
        attempts: int = 1,
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        revert_all: bool = False,
    ) -> None:
        super().__init__(name, provides, requires, auto_extract, rebind)
        self._attempts = attempts
        self._revert_action = REVERT_ALL if revert_all else REVERT

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        if len(history) < self._attempts:
            return RETRY
        return self._revert_action

    def execute(self, history: History, *args: Any, **kwargs: Any) -> int:
        return len(history) + 1


def _remaining(values: Sequence[Any], tried: Iterator[Any]) -> list[Any]:
    """``values`` minus one occurrence of each tried value, in order (works for unhashable values)."""
    remaining = list(values)
    for value in tried:
        try:
            remaining.remove(value)
        except ValueError:
            pass
    return remaining


class ForEachBase(Retry):
    """Base of retries that try the values of a collection one after another."""

    def __init__(
        self,
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        revert_all: bool = False,
    ) -> None:
        super().__init__(name, provides, requires, auto_extract, rebind)
        self._revert_action = REVERT_ALL if revert_all else REVERT

    def _get_next_value(self, values: Sequence[Any], history: History) -> Any:
        remaining = _remaining(values, history.provided_iter())
        if not remaining:
            raise exc.NotFound(f"No elements left in collection of iterable retry controller {self.name}")
        return remaining[0]

    def _on_failure(self, values: Sequence[Any], history: History) -> Decision:
        try:
            self._get_next_value(values, history)
        except exc.NotFound:
            return self._revert_action
        return RETRY


class ForEach(ForEachBase):
    """Provides the values of ``values`` one per attempt; reverts when they are exhausted.

    :param values: the values to try, in order.
    :param revert_all: when values run out, revert everything (``REVERT_ALL``) instead of this flow.
    """

    def __init__(
        self,
        values: Sequence[Any],
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        revert_all: bool = False,
    ) -> None:
        super().__init__(name, provides, requires, auto_extract, rebind, revert_all)
        self._values = values

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        return self._on_failure(self._values, history)

    def execute(self, history: History, *args: Any, **kwargs: Any) -> Any:
        return self._get_next_value(self._values, history)


class ParameterizedForEach(ForEachBase):
    """Like :class:`ForEach`, with the values taken from storage (the required argument ``values``);
    constructed like :class:`ForEachBase`."""

    def on_failure(  # type: ignore[override]  # TaskFlow: values first
        self, values: Sequence[Any], history: History, *args: Any, **kwargs: Any
    ) -> Decision:
        return self._on_failure(values, history)

    def execute(  # type: ignore[override]
        self, values: Sequence[Any], history: History, *args: Any, **kwargs: Any
    ) -> Any:
        return self._get_next_value(values, history)
