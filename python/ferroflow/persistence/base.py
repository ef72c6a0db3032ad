"""The persistence interface: :class:`Backend` and :class:`Connection` (TaskFlow's API).

:class:`RecordConnection` implements the whole Connection API on top of a few primitives over
*records* (the JSON-able ``to_dict`` forms of the models, keyed by kind and uuid, with
parent -> child links), so that every record-based backend shares one set of semantics:

- ``save_logbook`` upserts the book, its flow details and their atom details, merging each into
  what is stored (``merge()``), and returns the stored book with **all** its flow details.
- ``update_flow_details`` / ``update_atom_details`` require the detail to exist (else
  :class:`~ferroflow.exceptions.NotFound`) and return the stored, merged detail; a flow detail
  comes back with all its atom details.
- ``get_*`` raise NotFound for an unknown uuid (``get_flows_for_book`` / ``get_atoms_for_flow``
  too); ``lazy=True`` skips loading the children.
- a record whose content did not change is not rewritten.
- children are written before the parent that lists them and parents are deleted before their
  children, so an interrupted write never leaves a reachable reference to a missing record.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from ferroflow import exceptions as exc
from ferroflow.persistence import models

__all__ = ["ATOM", "BOOK", "FLOW", "Backend", "Connection", "RecordConnection", "path_from_conf"]


class Backend(abc.ABC):
    """A persistence backend: configuration plus whatever resources connections share."""

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        if conf is None:
            conf = {}
        if not isinstance(conf, Mapping):
            raise TypeError(f"Configuration dictionary expected not '{conf}' ({type(conf)})")
        self._conf: dict[str, Any] = dict(conf)

    @property
    def conf(self) -> dict[str, Any]:
        """The configuration this backend was created with (URI parts already merged in)."""
        return self._conf

    @abc.abstractmethod
    def get_connection(self) -> Connection:
        """Return a new connection to this backend."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release whatever this backend holds open."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Connection(abc.ABC):
    """A connection to a backend; the API engines and users save and load details through."""

    @property
    @abc.abstractmethod
    def backend(self) -> Backend:
        """The backend this connection belongs to."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release whatever this connection holds open."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Create or migrate the backend's storage layout to the current version."""

    @abc.abstractmethod
    def validate(self) -> None:
        """Check that the backend is usable; raises StorageFailure if it is not."""

    @abc.abstractmethod
    def clear_all(self) -> None:
        """Delete every logbook, flow detail and atom detail."""

    @abc.abstractmethod
    def save_logbook(self, book: models.LogBook) -> models.LogBook:
        """Upsert ``book`` with its flow and atom details (merging into stored ones); returns it as stored."""

    @abc.abstractmethod
    def get_logbook(self, book_uuid: str, lazy: bool = False) -> models.LogBook:
        """Load a logbook (with its flow and atom details unless ``lazy``); NotFound if unknown."""

    @abc.abstractmethod
    def get_logbooks(self, lazy: bool = False) -> Iterator[models.LogBook]:
        """Iterate over every logbook (order unspecified)."""

    @abc.abstractmethod
    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a logbook with its flow and atom details; NotFound if unknown."""

    @abc.abstractmethod
    def update_flow_details(self, flow_detail: models.FlowDetail) -> models.FlowDetail:
        """Merge ``flow_detail`` and its atom details into the stored one; NotFound if unknown."""

    @abc.abstractmethod
    def update_atom_details(self, atom_detail: models.AtomDetail) -> models.AtomDetail:
        """Merge ``atom_detail`` into the stored one; NotFound if unknown."""

    @abc.abstractmethod
    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterator[models.FlowDetail]:
        """Iterate over the flow details of a logbook; NotFound if the book is unknown."""

    @abc.abstractmethod
    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> models.FlowDetail:
        """Load a flow detail (with its atom details unless ``lazy``); NotFound if unknown."""

    @abc.abstractmethod
    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[models.AtomDetail]:
        """Iterate over the atom details of a flow detail; NotFound if the flow is unknown."""

    @abc.abstractmethod
    def get_atom_details(self, ad_uuid: str) -> models.AtomDetail:
        """Load an atom detail; NotFound if unknown."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def path_from_conf(conf: Mapping[str, Any]) -> str | None:
    """The filesystem path a configuration names: ``conf['path']``, else the URI's path.

    ``dir:///abs/path`` gives ``/abs/path``; ``dir://rel/path`` gives the relative ``rel/path``.
    """
    path = conf.get("path")
    if path:
        return str(path)
    connection = conf.get("connection")
    if not isinstance(connection, str) or "://" not in connection:
        return None
    parts = urlsplit(connection)
    path = unquote(parts.netloc + parts.path)
    return path or None


#: Record kinds.
BOOK, FLOW, ATOM = "book", "flow", "atom"

_WHAT = {BOOK: "logbook", FLOW: "flow details", ATOM: "atom details"}


def _not_found(kind: str, uuid: str) -> exc.NotFound:
    return exc.NotFound(f"No {_WHAT[kind]} found with uuid '{uuid}'")


def _book_record(book: models.LogBook) -> dict[str, Any]:
    return book.to_dict(marshal_time=True)


def _flow_record(fd: models.FlowDetail) -> dict[str, Any]:
    return fd.to_dict()


def _atom_record(ad: models.AtomDetail) -> dict[str, Any]:
    # TaskFlow's path-based layout: the atom's dict plus its type tag.
    return {"atom": ad.to_dict(), "type": models.atom_detail_type(ad)}


def _atom_from(record: dict[str, Any]) -> models.AtomDetail:
    return models.atom_detail_class(record["type"]).from_dict(record["atom"])


def _attach_flows(book: models.LogBook, flows: list[models.FlowDetail]) -> None:
    # LogBook.add() stamps updated_at; loading must not change what was stored.
    updated_at = book.updated_at
    for fd in flows:
        book.add(fd)
    book.updated_at = updated_at


class RecordConnection(Connection):
    """The Connection API over record primitives; subclasses implement the ``_`` methods below.

    Every public method takes :meth:`_locked` exactly once, so primitives need no locking of
    their own and the lock need not be re-entrant.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def backend(self) -> Backend:
        return self._backend

    # -- primitives ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _locked(self, write: bool) -> contextlib.AbstractContextManager[None]:
        """Exclusive (``write``) or shared access for the duration of one public call."""

    @abc.abstractmethod
    def _read(self, kind: str, uuid: str) -> dict[str, Any] | None:
        """The record, or ``None`` if absent. The caller may keep and mutate it."""

    @abc.abstractmethod
    def _write(self, kind: str, uuid: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Create or replace a record (the store keeps its own copy).

        ``old`` is what :meth:`_read` returned for it; when ``record`` has the same content,
        implementations should skip the write.
        """

    @abc.abstractmethod
    def _children(self, kind: str, uuid: str) -> list[str] | None:
        """Uuids linked under a book or flow record, or ``None`` if that record is absent."""

    @abc.abstractmethod
    def _link(self, kind: str, uuid: str, child_uuid: str) -> None:
        """Link a child under a (written) book or flow record; linking twice is harmless."""

    @abc.abstractmethod
    def _book_uuids(self) -> list[str]:
        """The uuids of every book."""

    @abc.abstractmethod
    def _delete(self, kind: str, uuid: str) -> None:
        """Delete a record and its links (not the linked records); absent records are ignored."""

    @abc.abstractmethod
    def _delete_all(self) -> None:
        """Delete every record and link."""

    # -- loading ------------------------------------------------------------------------------

    def _load_atom(self, uuid: str) -> models.AtomDetail:
        record = self._read(ATOM, uuid)
        if record is None:
            raise _not_found(ATOM, uuid)
        return _atom_from(record)

    def _load_atoms(self, fd_uuid: str) -> list[models.AtomDetail]:
        uuids = self._children(FLOW, fd_uuid)
        if uuids is None:
            raise _not_found(FLOW, fd_uuid)
        return [self._load_atom(uuid) for uuid in uuids]

    def _load_flow(self, uuid: str, lazy: bool) -> models.FlowDetail:
        record = self._read(FLOW, uuid)
        if record is None:
            raise _not_found(FLOW, uuid)
        fd = models.FlowDetail.from_dict(record)
        if not lazy:
            for ad in self._load_atoms(uuid):
                fd.add(ad)
        return fd

    def _load_flows(self, book_uuid: str, lazy: bool) -> list[models.FlowDetail]:
        uuids = self._children(BOOK, book_uuid)
        if uuids is None:
            raise _not_found(BOOK, book_uuid)
        return [self._load_flow(uuid, lazy) for uuid in uuids]

    def _load_book(self, uuid: str, lazy: bool) -> models.LogBook | None:
        record = self._read(BOOK, uuid)
        if record is None:
            return None
        book = models.LogBook.from_dict(record, unmarshal_time=True)
        if not lazy:
            _attach_flows(book, self._load_flows(uuid, lazy=False))
        return book

    # -- saving -------------------------------------------------------------------------------

    def _save_atom(self, ad: models.AtomDetail, must_exist: bool) -> models.AtomDetail:
        old = self._read(ATOM, ad.uuid)
        if old is None:
            if must_exist:
                raise _not_found(ATOM, ad.uuid)
            stored = ad
        else:
            stored = _atom_from(old).merge(ad)
        self._write(ATOM, ad.uuid, _atom_record(stored), old)
        return stored

    def _save_flow(self, fd: models.FlowDetail, must_exist: bool, book_uuid: str | None = None) -> models.FlowDetail:
        """Upsert ``fd`` and its atoms (linking it under ``book_uuid`` if given); returns it as stored."""
        old = self._read(FLOW, fd.uuid)
        if old is None:
            if must_exist:
                raise _not_found(FLOW, fd.uuid)
            stored, linked = fd.copy(retain_contents=False), set()
        else:
            stored = models.FlowDetail.from_dict(old).merge(fd)
            linked = set(self._children(FLOW, fd.uuid) or ())
        # Atoms before the flow record and links that make them reachable.
        for ad in fd:
            stored.add(self._save_atom(ad, must_exist=False))
        self._write(FLOW, fd.uuid, _flow_record(stored), old)
        for ad in fd:
            if ad.uuid not in linked:
                self._link(FLOW, fd.uuid, ad.uuid)
        if book_uuid is not None:
            self._link(BOOK, book_uuid, fd.uuid)
        for uuid in linked:
            if stored.find(uuid) is None:
                stored.add(self._load_atom(uuid))
        return stored

    # -- Connection API -----------------------------------------------------------------------

    def save_logbook(self, book: models.LogBook) -> models.LogBook:
        with self._locked(write=True):
            old = self._read(BOOK, book.uuid)
            if old is None:
                stored, linked = book.copy(retain_contents=False), []
            else:
                stored = models.LogBook.from_dict(old, unmarshal_time=True).merge(book)
                linked = self._children(BOOK, book.uuid) or []
            # The book record first: flow links need it to exist.
            self._write(BOOK, book.uuid, _book_record(stored), old)
            already_linked = set(linked)
            flows = [
                self._save_flow(fd, must_exist=False, book_uuid=None if fd.uuid in already_linked else book.uuid)
                for fd in book
            ]
            saved = {fd.uuid for fd in flows}
            flows.extend(self._load_flow(uuid, lazy=False) for uuid in linked if uuid not in saved)
            _attach_flows(stored, flows)
            return stored

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> models.LogBook:
        with self._locked(write=False):
            book = self._load_book(book_uuid, lazy)
        if book is None:
            raise _not_found(BOOK, book_uuid)
        return book

    def get_logbooks(self, lazy: bool = False) -> Iterator[models.LogBook]:
        with self._locked(write=False):
            # A book whose first save was interrupted before its record was written is skipped.
            books = [self._load_book(uuid, lazy) for uuid in self._book_uuids()]
        return iter([book for book in books if book is not None])

    def destroy_logbook(self, book_uuid: str) -> None:
        with self._locked(write=True):
            flows = self._children(BOOK, book_uuid)
            if flows is None:
                raise _not_found(BOOK, book_uuid)
            atoms = {fd_uuid: self._children(FLOW, fd_uuid) or [] for fd_uuid in flows}
            # Parents first: an interruption leaves unreachable records, never dangling links.
            self._delete(BOOK, book_uuid)
            for fd_uuid, ad_uuids in atoms.items():
                self._delete(FLOW, fd_uuid)
                for ad_uuid in ad_uuids:
                    self._delete(ATOM, ad_uuid)

    def update_flow_details(self, flow_detail: models.FlowDetail, ignore_missing: bool = False) -> models.FlowDetail:
        """As :meth:`Connection.update_flow_details`; ``ignore_missing`` creates an unknown flow detail
        (outside any book), as TaskFlow's memory and dir backends allow."""
        with self._locked(write=True):
            return self._save_flow(flow_detail, must_exist=not ignore_missing)

    def update_atom_details(self, atom_detail: models.AtomDetail, ignore_missing: bool = False) -> models.AtomDetail:
        """As :meth:`Connection.update_atom_details`; ``ignore_missing`` creates an unknown atom detail."""
        with self._locked(write=True):
            return self._save_atom(atom_detail, must_exist=not ignore_missing)

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterator[models.FlowDetail]:
        with self._locked(write=False):
            return iter(self._load_flows(book_uuid, lazy))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> models.FlowDetail:
        with self._locked(write=False):
            return self._load_flow(fd_uuid, lazy)

    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[models.AtomDetail]:
        with self._locked(write=False):
            return iter(self._load_atoms(fd_uuid))

    def get_atom_details(self, ad_uuid: str) -> models.AtomDetail:
        with self._locked(write=False):
            return self._load_atom(ad_uuid)

    def clear_all(self) -> None:
        with self._locked(write=True):
            self._delete_all()
