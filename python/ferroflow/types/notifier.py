"""Publish/subscribe of engine events (``taskflow.types.notifier``).

A callback registered for an event is called as ``callback(event_type, *args, details=dict, **kwargs)``;
one registered for :attr:`Notifier.ANY` receives every event. Exceptions raised by callbacks are logged
and swallowed: a listener can never break the engine.

The engine notifies on hot paths, so :meth:`Notifier.notify` returns at once when nothing is
registered, and :meth:`Notifier.has_listeners` lets a caller skip building ``details`` altogether.
Registration replaces the per-event lists instead of mutating them, so a ``notify`` running in another
thread always sees a consistent list.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

from ferroflow import _core

LOG = logging.getLogger(__name__)


def _is_same_callback(a: Callable | None, b: Callable | None) -> bool:
    # Bound methods are recreated on every attribute access, so compare by equality, not identity.
    return a is b or a == b


class Listener:
    """An immutable registration: a callback, its extra arguments and an optional details filter.

    :param callback: called as ``callback(event_type, *args, details=details, **kwargs)``.
    :param args: extra positional arguments.
    :param kwargs: extra keyword arguments (``details`` is reserved).
    :param details_filter: called with ``details`` first; a falsy answer skips the callback.
    """

    __slots__ = ("_args", "_callback", "_details_filter", "_kwargs")

    def __init__(
        self,
        callback: Callable,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        details_filter: Callable[[dict], Any] | None = None,
    ) -> None:
        self._callback = callback
        self._details_filter = details_filter
        self._args = tuple(args) if args else ()
        self._kwargs = dict(kwargs) if kwargs else {}

    @property
    def callback(self) -> Callable:
        """The callback called with the event and its details."""
        return self._callback

    @property
    def details_filter(self) -> Callable[[dict], Any] | None:
        """The callback deciding, from the details, whether to call :attr:`callback` (or ``None``)."""
        return self._details_filter

    @property
    def kwargs(self) -> dict[str, Any]:
        """A copy of the extra keyword arguments."""
        return dict(self._kwargs)

    @property
    def args(self) -> tuple:
        """The extra positional arguments."""
        return self._args

    def __call__(self, event_type: str, details: dict) -> None:
        if self._details_filter is not None and not self._details_filter(details):
            return
        self._callback(event_type, *self._args, details=details, **self._kwargs)

    def __repr__(self) -> str:
        text = f"<{type(self).__name__} object at 0x{id(self):x} calling into '{self._callback!r}'"
        if self._details_filter is not None:
            text += f" using details filter '{self._details_filter!r}'"
        return text + ">"

    def is_equivalent(self, callback: Callable, details_filter: Callable | None = None) -> bool:
        """True if this listener has the same callback and the same details filter (or both none)."""
        if not _is_same_callback(self._callback, callback):
            return False
        if details_filter is None:
            return self._details_filter is None
        return self._details_filter is not None and _is_same_callback(self._details_filter, details_filter)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Listener):
            return NotImplemented
        return self.is_equivalent(other._callback, details_filter=other._details_filter)

    __hash__ = None  # type: ignore[assignment]


class Notifier:
    """A registry of callbacks per event type.

    Registering is not thread-safe against other registrations; notifying is safe at any time.
    """

    RESERVED_KEYS = ("details",)
    #: The event type whose listeners receive every event.
    ANY = "*"

    _DISALLOWED_NOTIFICATION_EVENTS = frozenset({ANY})

    def __init__(self) -> None:
        # event type -> listeners; lists are replaced, never mutated, and empty ones are removed
        # (set directly, not through the `_topics` setter: every engine makes two notifiers).
        self._topic_map: dict[str, list[Listener]] = {}
        self._listening = _core.Flag()

    @property
    def _topics(self) -> dict[str, list[Listener]]:
        return self._topic_map

    @_topics.setter
    def _topics(self, topics: dict[str, list[Listener]]) -> None:
        # Every change replaces the dict, so this keeps `_listening` true: the engine's Rust lane
        # reads that flag between atoms instead of looking up this attribute.
        self._topic_map = topics
        listening = self.__dict__.get("_listening")
        if listening is None:
            listening = self._listening = _core.Flag()
        listening.set(bool(topics))

    def __len__(self) -> int:
        """How many callbacks are registered (over all event types)."""
        return sum(len(listeners) for listeners in self._topics.values())

    def has_listeners(self) -> bool:
        """True if any callback is registered (cheap; lets callers skip building event details)."""
        return bool(self._topics)

    def is_registered(self, event_type: str, callback: Callable, details_filter: Callable | None = None) -> bool:
        """True if ``callback`` (with an equivalent ``details_filter``) is registered for ``event_type``."""
        return any(
            listener.is_equivalent(callback, details_filter=details_filter)
            for listener in self._topics.get(event_type, ())
        )

    def reset(self) -> None:
        """Forgets every registered callback."""
        self._topics = {}

    def notify(self, event_type: str, details: dict | None) -> None:
        """Calls every callback registered for ``event_type`` or :attr:`ANY`.

        Each callback gets its own shallow copy of ``details``. Event types that cannot trigger
        notifications (:attr:`ANY` itself) are dropped silently, and callback exceptions are logged.
        """
        topics = self._topics
        if not topics:
            return
        if not self.can_trigger_notification(event_type):
            LOG.debug("Event type '%s' is not allowed to trigger notifications", event_type)
            return
        listeners = topics.get(self.ANY, [])
        specific = topics.get(event_type)
        if specific:
            listeners = listeners + specific
        if not listeners:
            return
        if not details:
            details = {}
        for listener in listeners:
            try:
                listener(event_type, details.copy())
            except Exception:
                LOG.warning(
                    "Failure calling listener %s to notify about event %s, details: %s",
                    listener,
                    event_type,
                    details,
                    exc_info=True,
                )

    def register(
        self,
        event_type: str,
        callback: Callable,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        details_filter: Callable[[dict], Any] | None = None,
    ) -> None:
        """Registers ``callback`` for ``event_type`` (or :attr:`ANY` for every event).

        :raises ValueError: the callback or filter is not callable, the event type cannot be registered,
            or an equivalent registration exists.
        :raises KeyError: ``kwargs`` uses a reserved key (``details``).
        """
        if not callable(callback):
            raise ValueError("Event callback must be callable")
        if details_filter is not None and not callable(details_filter):
            raise ValueError("Details filter must be callable")
        if not self.can_be_registered(event_type):
            raise ValueError(f"Disallowed event type '{event_type}' can not have a callback registered")
        if self.is_registered(event_type, callback, details_filter=details_filter):
            raise ValueError("Event callback already registered with equivalent details filter")
        if kwargs:
            for key in self.RESERVED_KEYS:
                if key in kwargs:
                    raise KeyError(f"Reserved key '{key}' not allowed in kwargs")
        listener = Listener(callback, args=args, kwargs=kwargs, details_filter=details_filter)
        self._topics = {**self._topics, event_type: [*self._topics.get(event_type, ()), listener]}

    def deregister(self, event_type: str, callback: Callable, details_filter: Callable | None = None) -> bool:
        """Removes one registration of ``callback`` for ``event_type``; True if one was removed."""
        listeners = self._topics.get(event_type)
        if not listeners:
            return False
        for i, listener in enumerate(listeners):
            if listener.is_equivalent(callback, details_filter=details_filter):
                remaining = listeners[:i] + listeners[i + 1 :]
                topics = dict(self._topics)
                if remaining:
                    topics[event_type] = remaining
                else:
                    del topics[event_type]
                self._topics = topics
                return True
        return False

    def deregister_event(self, event_type: str) -> int:
        """Removes every registration for ``event_type``; returns how many there were."""
        if event_type not in self._topics:
            return 0
        topics = dict(self._topics)
        removed = topics.pop(event_type)
        self._topics = topics
        return len(removed)

    def copy(self) -> Self:
        """A copy with the same registrations (later changes to either do not affect the other)."""
        clone = copy.copy(self)
        clone._topics = {event: list(listeners) for event, listeners in self._topics.items()}
        return clone

    def __copy__(self) -> Self:
        # A shallow copy shares the (never mutated) topics but needs its own listening flag: each
        # side's registrations change only its own.
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._listening = _core.Flag(bool(self._topic_map))
        return clone

    def listeners_iter(self) -> Iterator[tuple[str, list[Listener]]]:
        """Yields ``(event_type, listeners)`` for every event type with registrations."""
        for event_type, listeners in self._topics.items():
            if listeners:
                yield event_type, listeners

    def can_be_registered(self, event_type: str) -> bool:
        """True if callbacks may be registered for ``event_type`` (always, on this class)."""
        return True

    def can_trigger_notification(self, event_type: str) -> bool:
        """True if ``event_type`` may be notified (anything but :attr:`ANY`)."""
        return event_type not in self._DISALLOWED_NOTIFICATION_EVENTS


class RestrictedNotifier(Notifier):
    """A notifier that accepts registrations only for the given event types (plus :attr:`ANY` if
    ``allow_any``)."""

    def __init__(self, watchable_events: Iterable[str], allow_any: bool = True) -> None:
        super().__init__()
        self._watchable_events = frozenset(watchable_events)
        self._allow_any = allow_any

    def events_iter(self) -> Iterator[str]:
        """Yields the event types that can be registered (not :attr:`ANY`)."""
        yield from self._watchable_events

    def can_be_registered(self, event_type: str) -> bool:
        """True if ``event_type`` is watchable, or is :attr:`ANY` and that is allowed."""
        return event_type in self._watchable_events or (event_type == self.ANY and self._allow_any)


@contextlib.contextmanager
def register_deregister(
    notifier: Notifier,
    event_type: str,
    callback: Callable | None = None,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    details_filter: Callable | None = None,
) -> Iterator[None]:
    """Registers ``callback`` for the duration of the ``with`` block (nothing when it is ``None``)."""
    if callback is None:
        yield
        return
    notifier.register(event_type, callback, args=args, kwargs=kwargs, details_filter=details_filter)
    try:
        yield
    finally:
        notifier.deregister(event_type, callback, details_filter=details_filter)
