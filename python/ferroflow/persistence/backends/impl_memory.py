"""In-process, non-durable backend (``memory://``): records kept in dicts.

Records are copied in and out (``copy.deepcopy`` by default; ``deep_copy=False`` makes shallow
copies, as TaskFlow's option does), so objects handed to or returned by a connection never
alias what is stored. Results need not be serializable, only copyable.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ferroflow.persistence import base

__all__ = ["MemoryBackend", "MemoryConnection"]


def _as_bool(value: Any) -> bool:
    # URI query parameters arrive as strings.
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class _Store:
    """Records by kind and uuid, plus ordered child links of books and flows."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            base.BOOK: {},
            base.FLOW: {},
            base.ATOM: {},
            base.LEASE: {},
        }
        # Dicts used as insertion-ordered sets.
        self.links: dict[str, dict[str, dict[str, None]]] = {base.BOOK: {}, base.FLOW: {}}
        self.lock = threading.Lock()


class MemoryBackend(base.Backend):
    """A backend whose data lives in this process only; conf key ``deep_copy`` (default true)."""

    #: The conf keys it reads (besides those every backend takes): others are refused by
    #: `ferroflow.persistence.backends.fetch`.
    conf_keys = frozenset({"deep_copy"})

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        deep = _as_bool(self._conf.get("deep_copy", True))
        self._copy: Callable[[Any], Any] = copy.deepcopy if deep else copy.copy
        self._data = _Store()

    def get_connection(self) -> MemoryConnection:
        return MemoryConnection(self)

    def close(self) -> None:
        """Nothing to release; the data stays for connections made later."""


class MemoryConnection(base.RecordConnection):
    """A connection to a :class:`MemoryBackend`; all connections share the backend's data."""

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(backend)
        self._data = backend._data
        self._copy = backend._copy

    def upgrade(self) -> None:
        """Nothing to create."""

    def validate(self) -> None:
        """Always usable."""

    def close(self) -> None:
        """Nothing to release."""

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        # One lock for readers and writers: every call is short and in-process.
        with self._data.lock:
            yield

    def _read(self, kind: str, uuid: str) -> dict[str, Any] | None:
        record = self._data.records[kind].get(uuid)
        return None if record is None else self._copy(record)

    def _write(self, kind: str, uuid: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        if record == old:
            return
        self._data.records[kind][uuid] = self._copy(record)
        if kind in self._data.links:
            self._data.links[kind].setdefault(uuid, {})

    def _children(self, kind: str, uuid: str) -> list[str] | None:
        if uuid not in self._data.records[kind]:
            return None
        return list(self._data.links[kind].get(uuid, ()))

    def _link(self, kind: str, uuid: str, child_uuid: str) -> None:
        self._data.links[kind].setdefault(uuid, {})[child_uuid] = None

    def _book_uuids(self) -> list[str]:
        return list(self._data.records[base.BOOK])

    def _delete(self, kind: str, uuid: str) -> None:
        self._data.records[kind].pop(uuid, None)
        if kind in self._data.links:
            self._data.links[kind].pop(uuid, None)

    def _delete_all(self) -> None:
        for records in self._data.records.values():
            records.clear()
        for links in self._data.links.values():
            links.clear()
