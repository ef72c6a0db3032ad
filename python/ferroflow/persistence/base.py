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
- an atom record is TaskFlow's ``{"atom": ..., "type": ...}`` plus, for the engine, the detail's
  *resume record* (``resume``: who provided its inputs, how to revert it once its code is gone)
  and when it was first saved (``order``: details load in that order); updates keep both.
- engines write through ``update_flow_row`` (the flow's own record, never its atoms: they are
  saved as they change) and ``save_flow_changes`` (a batch of details, the flow record and resume
  records in one call), and read ``resume_summaries`` / ``resume_record`` — the calls the SQLite
  store offers too.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from ferroflow import exceptions as exc
from ferroflow.persistence import models

__all__ = ["ATOM", "BOOK", "FLOW", "LEASE", "Backend", "Connection", "RecordConnection", "path_from_conf"]


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
#: The record of a flow detail's lease (`ferroflow.persistence.ownership`), keyed by the flow's uuid:
#: ``{"owner": str | None, "until": unix seconds, "epoch": int}``.
LEASE = "lease"

_WHAT = {BOOK: "logbook", FLOW: "flow details", ATOM: "atom details"}
#: The key of an atom record holding the detail's *resume record*, beside TaskFlow's ``atom`` and
#: ``type`` (never in the detail's meta, which stays what TaskFlow writes): the text
#: `ferroflow.engines.revert_refs.encode_record` makes when the atom completes.
RESUME = "resume"
#: Separates the fields of a resume record (``rust/store``'s ``RESUME_FIELD_END``).
RESUME_FIELD_END = "\x1d"
#: The key of an atom record holding when it was first saved (nanoseconds, strictly increasing
#: within a process): a flow's atom details load in that order whatever order the backend lists
#: them in (a directory's listing has none). Records without it (written by TaskFlow) come first.
ORDER = "order"
_KEEP: Any = object()
_last_order = 0
_order_lock = threading.Lock()


def _next_order() -> int:
    global _last_order
    with _order_lock:
        _last_order = max(time.time_ns(), _last_order + 1)
        return _last_order


def _order_of(record: dict[str, Any]) -> int:
    order = record.get(ORDER)
    return order if isinstance(order, int) else 0


def _not_found(kind: str, uuid: str) -> exc.NotFound:
    return exc.NotFound(f"No {_WHAT[kind]} found with uuid '{uuid}'")


def _book_record(book: models.LogBook) -> dict[str, Any]:
    return book.to_dict(marshal_time=True)


def _flow_record(fd: models.FlowDetail) -> dict[str, Any]:
    return fd.to_dict()


def _atom_record(ad: models.AtomDetail, resume: str | None = None, order: int | None = None) -> dict[str, Any]:
    # TaskFlow's path-based layout: the atom's dict plus its type tag (TaskFlow's readers ignore
    # other keys), the detail's resume record, if any, and when it was first saved.
    record: dict[str, Any] = {"atom": ad.to_dict(), "type": models.atom_detail_type(ad)}
    if resume is not None:
        record[RESUME] = resume
    if order is not None:
        record[ORDER] = order
    return record


def _resume_of(record: dict[str, Any] | None) -> str | None:
    resume = None if record is None else record.get(RESUME)
    return resume if isinstance(resume, str) else None


def _resume_summary(record: str) -> tuple[str | None, str | None, str | None]:
    """``(inputs, revert kind, revert name)`` of a resume record; a malformed one reads as nothing
    recorded (as the SQLite store reads it)."""
    fields = record.split(RESUME_FIELD_END, 3)
    if len(fields) < 3:
        return None, None, None
    return fields[0], fields[1] or None, fields[2] or None


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
        self._fence: tuple[str, str, int] | None = None

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

    def _atom_records(self, fd_uuid: str) -> list[tuple[str, dict[str, Any]]]:
        """``(uuid, record)`` of a flow's atom details, in the order they were first saved."""
        uuids = self._children(FLOW, fd_uuid)
        if uuids is None:
            raise _not_found(FLOW, fd_uuid)
        records = []
        for uuid in uuids:
            record = self._read(ATOM, uuid)
            if record is None:
                raise _not_found(ATOM, uuid)
            records.append((uuid, record))
        records.sort(key=lambda item: _order_of(item[1]))  # stable: a listing's order among equals
        return records

    def _load_atoms(self, fd_uuid: str) -> list[models.AtomDetail]:
        return [_atom_from(record) for _, record in self._atom_records(fd_uuid)]

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

    def _save_atom(self, ad: models.AtomDetail, must_exist: bool, resume: str | None = _KEEP) -> models.AtomDetail:
        """Upsert ``ad``, merged into the stored detail; its resume record is kept unless
        ``resume`` replaces it."""
        old = self._read(ATOM, ad.uuid)
        if old is None and must_exist:
            raise _not_found(ATOM, ad.uuid)
        return self._put_atom(ad, old, resume)

    def _put_atom(self, ad: models.AtomDetail, old: dict[str, Any] | None, resume: str | None) -> models.AtomDetail:
        stored = ad if old is None else _atom_from(old).merge(ad)
        if resume is _KEEP:
            resume = _resume_of(old)
        order = _next_order() if old is None else old.get(ORDER)
        self._write(ATOM, ad.uuid, _atom_record(stored, resume, order), old)
        return stored

    def _save_flow_record(self, fd: models.FlowDetail) -> None:
        """The flow detail's own record (name, state, meta), merged into the stored one."""
        old = self._read(FLOW, fd.uuid)
        if old is None:
            raise _not_found(FLOW, fd.uuid)
        self._write(FLOW, fd.uuid, _flow_record(models.FlowDetail.from_dict(old).merge(fd)), old)

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
        with self._writing():
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
                self._delete(LEASE, fd_uuid)
                for ad_uuid in ad_uuids:
                    self._delete(ATOM, ad_uuid)

    def update_flow_details(self, flow_detail: models.FlowDetail, ignore_missing: bool = False) -> models.FlowDetail:
        """As :meth:`Connection.update_flow_details`; ``ignore_missing`` creates an unknown flow detail
        (outside any book), as TaskFlow's memory and dir backends allow."""
        with self._writing():
            return self._save_flow(flow_detail, must_exist=not ignore_missing)

    def update_atom_details(self, atom_detail: models.AtomDetail, ignore_missing: bool = False) -> models.AtomDetail:
        """As :meth:`Connection.update_atom_details`; ``ignore_missing`` creates an unknown atom detail."""
        with self._writing():
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

    # -- the engine's writes and resume records ------------------------------------------------

    def update_flow_row(self, flow_detail: models.FlowDetail) -> None:
        """Writes the flow detail's own record (name, state, meta) and nothing of its atoms, where
        `update_flow_details` merges every atom detail the object holds.

        :raises NotFound: the flow detail does not exist.
        """
        with self._writing():
            self._save_flow_record(flow_detail)

    def save_flow_changes(
        self,
        flow_uuid: str,
        atom_details: Iterable[models.AtomDetail] = (),
        new_atom_details: Iterable[models.AtomDetail] = (),
        flow_detail: models.FlowDetail | None = None,
        resume_records: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Writes what an engine changed in one flow, in one call: all or nothing where the
        backend can (dir: through its intent file; memory: checked before anything is written).

        :param atom_details: details of the flow, merged into the stored ones.
        :param new_atom_details: details upserted and linked under the flow.
        :param flow_detail: whose own record (state, meta) is written, not its atom details.
        :param resume_records: ``(atom uuid, record text)`` pairs replacing those details' resume
            records (kept beside the details, never in their meta).
        :raises NotFound: the flow detail or one of ``atom_details`` / ``resume_records``'s
            details does not exist (nothing is written).
        """
        records = dict(resume_records)
        new = list(new_atom_details)
        with self._writing():
            # (The flow's links are listed only to link new details: an engine's step touches
            # a few details of a flow that may have many.)
            linked = self._children(FLOW, flow_uuid) if new else []
            if linked is None:
                raise _not_found(FLOW, flow_uuid)
            # Everything read (and checked) first, so that a refusal writes nothing.
            updates = [(ad, self._read(ATOM, ad.uuid)) for ad in atom_details]
            for ad, old in updates:
                if old is None:
                    raise _not_found(ATOM, ad.uuid)
            olds = {ad.uuid: self._read(ATOM, ad.uuid) for ad in new}
            given = {ad.uuid for ad, _ in updates} | olds.keys()
            others = {uuid: self._read(ATOM, uuid) for uuid in records if uuid not in given}
            for uuid, old in others.items():
                if old is None:
                    raise _not_found(ATOM, uuid)
            for ad, old in updates:
                self._put_atom(ad, old, records.get(ad.uuid, _KEEP))
            for ad in new:
                self._put_atom(ad, olds[ad.uuid], records.get(ad.uuid, _KEEP))
            for uuid, old in others.items():
                assert old is not None
                self._write(ATOM, uuid, {**old, RESUME: records[uuid]}, old)
            if flow_detail is not None:
                self._save_flow_record(flow_detail)
            already = set(linked)
            for ad in new:
                if ad.uuid not in already:
                    self._link(FLOW, flow_uuid, ad.uuid)

    def resume_summaries(self, flow_uuid: str) -> list[tuple[str, str | None, str | None, str | None]]:
        """``(atom uuid, inputs, revert kind, revert name)`` of the flow's atom details that have a
        resume record, in the order they were first saved (none for an unknown flow)."""
        with self._locked(write=False):
            try:
                records = self._atom_records(flow_uuid)
            except exc.NotFound:
                return []
        found = []
        for uuid, record in records:
            resume = _resume_of(record)
            if resume is not None:
                found.append((uuid, *_resume_summary(resume)))
        return found

    def resume_record(self, atom_uuid: str) -> str | None:
        """The resume record of an atom detail, as written (``None`` when it has none).

        :raises NotFound: there is no such atom detail.
        """
        with self._locked(write=False):
            record = self._read(ATOM, atom_uuid)
        if record is None:
            raise _not_found(ATOM, atom_uuid)
        return _resume_of(record)

    # -- ownership (see ferroflow.persistence.ownership) --------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock of one public call, refused first when this connection is fenced and
        its owner no longer holds the flow's lease (the check and the write share the lock)."""
        with self._locked(write=True):
            if self._fence is not None:
                self._check_fence(self._fence)
            yield

    def _check_fence(self, fence: tuple[str, str, int]) -> None:
        flow_uuid, owner, epoch = fence
        lease = self._read(LEASE, flow_uuid)
        if lease is not None and lease.get("owner") == owner and lease.get("epoch") == epoch:
            return
        if lease is None or lease.get("owner") is None:
            holder = "nobody (it was released)"
        else:
            holder = f"'{lease['owner']}' (epoch {lease.get('epoch')})"
        raise exc.LeaseLost(
            f"'{owner}' lost the lease of flow detail '{flow_uuid}' (epoch {epoch}) and cannot write: it is held by "
            f"{holder}; the flow continues under its current owner"
        )

    def fence(self, fence: tuple[str, str, int] | None) -> None:
        """Makes this connection's writes commit only while ``(flow uuid, owner, epoch)`` holds the
        flow's lease (:class:`~ferroflow.exceptions.LeaseLost` otherwise); ``None`` stops it."""
        self._fence = fence

    def acquire_lease(self, flow_uuid: str, owner: str, seconds: float) -> int:
        """Make ``owner`` the owner of the flow detail for ``seconds`` and return the lease's
        fencing epoch (raised whenever the lease changes hands).

        :raises InvalidState: another owner holds an unexpired lease (the message names it).
        :raises NotFound: the flow detail does not exist.
        """
        seconds = _lease_seconds(seconds)
        with self._locked(write=True):
            if self._read(FLOW, flow_uuid) is None:
                raise _not_found(FLOW, flow_uuid)
            now = time.time()
            old = self._read(LEASE, flow_uuid)
            lease = dict(old or {"owner": None, "until": None, "epoch": 0})
            holder = lease.get("owner")
            if holder is not None and holder != owner and (lease.get("until") or 0) > now:
                raise exc.InvalidState(
                    f"Flow detail '{flow_uuid}' is owned by '{holder}' until {lease['until'] - now:.1f} s from now; "
                    f"'{owner}' cannot run it before that lease is released or expires"
                )
            if holder != owner:
                lease["epoch"] = int(lease.get("epoch") or 0) + 1
            lease["owner"], lease["until"] = owner, now + seconds
            self._write(LEASE, flow_uuid, lease, old)
            return int(lease["epoch"])

    def renew_lease(self, flow_uuid: str, owner: str, epoch: int, seconds: float) -> None:
        """Extend the lease ``owner`` took at ``epoch`` to ``seconds`` from now.

        :raises LeaseLost: ``owner`` no longer holds it.
        """
        seconds = _lease_seconds(seconds)
        with self._locked(write=True):
            self._check_fence((flow_uuid, owner, epoch))
            old = self._read(LEASE, flow_uuid)
            self._write(LEASE, flow_uuid, {**(old or {}), "until": time.time() + seconds}, old)

    def release_lease(self, flow_uuid: str, owner: str) -> bool:
        """Give up ``owner``'s lease; returns whether it held it (another owner's is never touched)."""
        with self._locked(write=True):
            old = self._read(LEASE, flow_uuid)
            if old is None or old.get("owner") != owner:
                if old is None and self._read(FLOW, flow_uuid) is None:
                    raise _not_found(FLOW, flow_uuid)
                return False
            self._write(LEASE, flow_uuid, {**old, "owner": None, "until": None}, old)
            return True

    def get_lease(self, flow_uuid: str) -> tuple[str, float, int] | None:
        """``(owner, expiry as unix seconds, epoch)`` of the flow's lease, expired or not; ``None``
        if unowned."""
        with self._locked(write=False):
            lease = self._read(LEASE, flow_uuid)
            if lease is None and self._read(FLOW, flow_uuid) is None:
                raise _not_found(FLOW, flow_uuid)
        if lease is None or lease.get("owner") is None:
            return None
        return lease["owner"], float(lease.get("until") or 0.0), int(lease.get("epoch") or 0)


def _lease_seconds(seconds: float) -> float:
    if not (isinstance(seconds, int | float) and 0 < seconds < float("inf")):
        raise exc.InvalidState(f"a lease needs a positive, finite duration (got {seconds!r})")
    return float(seconds)
