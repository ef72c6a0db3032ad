"""SQLite backend (``sqlite:///abs/path.db``): the native Rust store, one file, WAL, transactional.

URIs: ``sqlite:///abs/path.db`` (absolute; SQLAlchemy's ``sqlite:////abs/path.db`` also works),
``sqlite://rel/path.db`` (relative to the working directory), ``sqlite://`` or
``sqlite:///:memory:`` (a private in-memory store shared by this backend's connections, gone when
the backend is closed). Unlike SQLAlchemy, three slashes mean an absolute path, as for ``dir://``.
Configuration: ``path`` (instead of the URI path), ``durability`` and ``mode``.
``durability`` is one of:

- ``process`` (default): a committed write survives the process being killed at any instant
  (``kill -9``); a power loss may lose the last commits, never corrupting the file.
- ``fsync``: every commit is also fsync'ed, so it survives power loss and OS crashes.
- ``batch``: the engine's transitions are committed in groups, at most ``batch_transitions``
  atom rows (default 256) and ``batch_ms`` milliseconds (default 10) apart, at every flow state
  change, and before any other write: a transition no longer costs a commit. A kill loses at most
  the open group: the atoms whose transitions it held run again on resume (at-least-once, as for
  an atom killed while RUNNING), bounded by both settings. A committed group is never lost, the
  store always holds a state it passed through, and the file is never corrupted. While a group is
  open the backend holds the file's write lock, so other writers wait for at most ``batch_ms``.
  ``engine.run()`` returns with everything committed (the flow's final state commits its group).

``mode`` is ``rw`` (default) or ``ro`` (``sqlite:///path.db?mode=ro``, or ``read_only=True`` in
the conf): a read-only backend opens an existing store with ``SQLITE_OPEN_READONLY`` and never
writes to it: no WAL switch, no schema upgrade (a store of an older schema is read as it is;
:meth:`SQLiteConnection.upgrade` does nothing), and every write raises
:class:`~ferroflow.exceptions.StorageFailure`. ``ferroflow show`` and ``ferroflow plan`` use it.

Only a store that does not exist yet is created (a read-write backend creates it on first use),
readable and writable by its owner only (mode 0600, whatever the umask; SQLite's ``-wal`` and
``-shm`` files get the same mode). Any other file that is not a ferroflow store (an empty file,
another application's SQLite database, a text file), and a file written by a newer ferroflow,
is refused with :class:`~ferroflow.exceptions.StorageFailure` naming the path, its bytes untouched:
it is checked before anything is written to it. Several backends, threads and
processes may share one file; each flow detail carries an owner lease
(:meth:`SQLiteConnection.acquire_lease`) so that two engines never run the same flow at once.

The Connection API keeps TaskFlow's semantics: ``update_*`` read the stored detail, ``merge()``
the given one into it and write what changed (each write method commits its rows in at most two
transactions). Engines write through the fast path :meth:`SQLiteConnection.apply` instead: one
transaction per batch of transitions, touching only the changed columns of the changed rows.

Payloads are JSON (results, meta, failures as :meth:`Failure.to_dict` forms, a retry's history as
``[[value, {atom: failure dict}], ...]``); versions are strings. Differences from the other
backends: timestamps are stored as UTC seconds, so a logbook's time-zone-aware ``created_at`` /
``updated_at`` comes back as naive UTC (and a missing ``created_at`` as the time of the first save);
``update_*`` have no ``ignore_missing`` (a flow detail belongs to a logbook, an atom detail to a
flow detail).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ferroflow import _core
from ferroflow import exceptions as exc
from ferroflow.persistence import base, models, saved
from ferroflow.persistence.columns import atom_row as _atom_row
from ferroflow.persistence.columns import book_row as _book_row
from ferroflow.persistence.columns import datetime_of as _datetime
from ferroflow.persistence.columns import dumps as _dumps
from ferroflow.persistence.columns import encode_change, encode_transition
from ferroflow.persistence.columns import flow_row as _flow_row
from ferroflow.persistence.columns import missing as _missing
from ferroflow.persistence.columns import same_atom as _same_atom
from ferroflow.persistence.columns import same_book as _same_book
from ferroflow.persistence.columns import same_flow as _same_flow
from ferroflow.persistence.saved import SavedAtoms
from ferroflow.types.failure import Failure
from ferroflow.utils import forks

if TYPE_CHECKING:
    from ferroflow._core import AtomRow, FlowRow
    from ferroflow._core import LogBookRow as BookRow

__all__ = ["DURABILITIES", "MODES", "SQLiteBackend", "SQLiteConnection"]

#: Accepted values of the ``durability`` option.
DURABILITIES = ("process", "fsync", "batch")
#: Accepted values of the ``mode`` option: read-write (the default) and read-only.
MODES = ("rw", "ro")


_MEMORY_PATHS = frozenset({":memory:", "/:memory:"})
# Store handles inherited through fork(): never used nor closed in the child (SQLite forbids both).
_FORKED_AWAY: list[Any] = []


# -- models <-> rows ----------------------------------------------------------------------------


def _book_from(row: BookRow) -> models.LogBook:
    uuid, name, meta, created_at, updated_at = row
    book = models.LogBook(name, uuid=uuid)
    book.meta = saved.decode_meta(meta, f"logbook '{uuid}' ({name!r})")
    book.created_at = _datetime(created_at)
    book.updated_at = _datetime(updated_at)
    return book


def _flow_from(row: FlowRow) -> models.FlowDetail:
    fd = models.FlowDetail(row[2], uuid=row[0])
    fd.state = row[3]
    fd.meta = saved.decode_meta(row[4], f"flow detail '{row[0]}' ({row[2]!r})")
    return fd


def _atom_from(row: AtomRow) -> models.AtomDetail:
    what = f"atom detail '{row[0]}' ({row[2]!r})"
    data = {
        "uuid": row[0],
        "name": row[2],
        "state": row[4],
        "intention": row[5],
        "results": saved.decode_json(row[6], what, "results"),
        "failure": saved.decode_json(row[7], what, "failure"),
        "revert_results": saved.decode_json(row[8], what, "revert_results"),
        "revert_failure": saved.decode_json(row[9], what, "revert_failure"),
        "version": row[10],
        "meta": saved.decode_meta(row[11], what),
    }
    for field in ("failure", "revert_failure"):
        if data[field] is not None and not isinstance(data[field], dict):
            raise saved.damaged(what, field, f"holds a JSON {type(data[field]).__name__}, not a failure's dict form")
    try:
        return models.atom_detail_class(row[3]).from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        problem = f"does not have the saved form ({type(e).__name__}: {e})"
        raise saved.damaged(what, _misshapen_field(data), problem) from None


def _misshapen_field(data: dict[str, Any]) -> str:
    """Which of an atom row's failures (else its results: a retry's history) is not in saved form."""
    for field in ("failure", "revert_failure"):
        if data[field] is not None:
            try:
                Failure.from_dict(data[field])
            except (ValueError, TypeError, KeyError, AttributeError):
                return field
    return "results"


# -- backend ------------------------------------------------------------------------------------


def _positive(value: Any, key: str, kind: type) -> Any:
    """A conf value (or its URI query text) as a positive ``kind``; ValueError naming ``key``."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a positive number, not {value!r}") from None
    if not number > 0 or number != number or (kind is float and number > 60_000):
        most = " of at most 60000" if kind is float else ""
        raise ValueError(f"{key} must be a positive number{most}, not {value!r}")
    return number


class SQLiteBackend(base.Backend):
    """A backend storing everything in one SQLite file (see the module docstring).

    The store is opened on the first :meth:`get_connection` and shared by every connection of
    this backend (calls are serialized by the store and run without the GIL).
    """

    #: The conf keys it reads (besides those every backend takes), then those TaskFlow's
    #: SQLAlchemy backend reads, accepted (and unused) so that a TaskFlow configuration works:
    #: others are refused by `ferroflow.persistence.backends.fetch`.
    conf_keys = frozenset({"path", "durability", "mode", "read_only", "batch_transitions", "batch_ms"}) | frozenset(
        {
            "engine_args",
            "echo",
            "pool_size",
            "max_pool_size",
            "max_overflow",
            "pool_timeout",
            "pool_recycle",
            "idle_timeout",
            "connection_debug",
            "connection_trace",
            "max_retries",
            "retry_interval",
            "validate",
            "isolation_level",
            "sqlite_synchronous",
            "checkout_retry",
        }
    )

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        path = base.path_from_conf(self._conf)
        if path is None or path in _MEMORY_PATHS:
            self._path: str | None = None
        else:
            if path.startswith("//"):  # SQLAlchemy's sqlite:////abs/path form
                path = "/" + path.lstrip("/")
            self._path = os.path.abspath(path)
        durability = str(self._conf.get("durability", "process")).lower()
        if durability not in DURABILITIES:
            raise ValueError(f"Unknown durability {durability!r}; expected one of {', '.join(DURABILITIES)}")
        self.durability = durability
        #: ``durability="batch"``: the most atom rows, and milliseconds, a group holds.
        self.batch_transitions = _positive(self._conf.get("batch_transitions", 256), "batch_transitions", int)
        self.batch_ms = _positive(self._conf.get("batch_ms", 10.0), "batch_ms", float)
        mode = str(self._conf.get("mode", "rw")).lower()
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        read_only = self._conf.get("read_only", False)
        if isinstance(read_only, str):  # from a URI query: ?read_only=1
            read_only = read_only.lower() in ("1", "true", "yes", "on")
        #: Opened read-only (``mode=ro`` or ``read_only=True``): nothing is ever written.
        self.read_only = mode == "ro" or bool(read_only)
        if self.read_only and self._path is None:
            raise ValueError("A read-only SQLite backend needs the path of an existing store, not an in-memory one")
        self._store: _core.SqliteStore | None = None
        self._read_ahead = False  # (whether `read_ahead` ever started a read)
        self._pid = forks.pid()
        self._open_lock = threading.Lock()
        #: Held by each read-merge-write call, so threads of this process never interleave them.
        self.write_lock = threading.Lock()

    @property
    def path(self) -> str | None:
        """The absolute path of the store file (``None`` for an in-memory store)."""
        return self._path

    def store(self) -> _core.SqliteStore:
        """The shared store handle, opened (and, unless read-only, its schema upgraded) on first use.

        :raises StorageFailure: the file is not a ferroflow store, is corrupt or is newer (or, read-only, is missing).
        """
        store = self._store
        if store is not None and self._pid == forks.pid():
            return store
        with self._open_lock:
            if self._store is not None and self._pid != forks.pid():
                # Inherited through fork(). A file handle is set aside (SQLite forbids using or
                # closing it here) and the file reopened; an in-memory store is this process's copy.
                if self._path is not None:
                    _FORKED_AWAY.append(self._store)
                    self._store = None
                self._pid = forks.pid()
            if self._store is None:
                if self._path is None:
                    self._store = _core.SqliteStore.in_memory()
                else:
                    self._store = _core.SqliteStore(
                        self._path,
                        self.durability,
                        read_only=self.read_only,
                        batch_transitions=self.batch_transitions,
                        batch_ms=self.batch_ms,
                    )
                self._pid = forks.pid()
            return self._store

    def get_connection(self) -> SQLiteConnection:
        return SQLiteConnection(self)

    def read_ahead(self, flow_uuid: str, *, restoring: bool = True) -> bool:
        """Starts reading the saved atom details of flow ``flow_uuid`` on a thread of the store's
        own while the caller builds and compiles the flow (a factory of many atoms takes a
        while): the engine's prepare (``restoring``) or its plan (not ``restoring``) then takes
        what was read instead of reading, when nothing else committed to the file and this
        backend changed no row but leases in between (else it reads again: never stale).
        Returns whether a read started (not for an in-memory store)."""
        started = self.store().read_ahead(flow_uuid, restoring)
        self._read_ahead = self._read_ahead or started
        return started

    def forget_read_ahead(self) -> None:
        """Drops a read ahead nobody took (each prepare's plan asks: nothing to do, and no call
        into the store, on a backend that never started one)."""
        if self._read_ahead:
            self.store().forget_read_ahead()

    @contextlib.contextmanager
    def held_writes(self) -> Iterator[bool]:
        """With ``durability=batch``: inside, every write (flow states, leases, the engines'
        groups of transitions) joins one open transaction, committed once it is ``batch_ms`` old
        or holds ``batch_transitions`` writes, and on leaving, instead of committing one by one.
        A kill loses at most the open transaction, as it loses an open group; each write stays
        all or nothing. Yields whether writes are held: False on another durability, or inside
        another ``held_writes`` (nothing changes then)."""
        store = self.store()
        if store.holding or not store.begin_hold():
            yield False
            return
        try:
            yield True
        finally:
            store.end_hold()

    def close(self) -> None:
        """Close the store file (an in-memory store is discarded); a later connection reopens it."""
        with self._open_lock:
            store, self._store = self._store, None
            if store is not None and self._pid != forks.pid():
                _FORKED_AWAY.append(store)  # inherited through fork(): not ours to close
                store = None
        if store is not None:
            store.close()


class SQLiteConnection(base.Connection):
    """A connection to a :class:`SQLiteBackend`."""

    #: :meth:`apply` takes ``release_lease`` (the fenced lease given up in its transaction) and
    #: ``grouped`` (a run's start joining the open group of steps).
    apply_run_options = True

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend
        self._fence: tuple[str, str, int] | None = None
        #: The flow row the last lease acquired came with: the engine's prepare reads it next
        #: (`get_flow_details`, lazily) instead of reading the row again. Only the very next use of
        #: this connection may take it: any other use of the store drops it (`_store`).
        self._next_flow_row: FlowRow | None = None
        backend.store()  # fail here, not on first use, if the file is unusable

    @property
    def backend(self) -> SQLiteBackend:
        return self._backend

    @property
    def _store(self) -> _core.SqliteStore:
        self._next_flow_row = None
        return self._backend.store()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release: the store belongs to the backend."""

    def upgrade(self) -> None:
        """Migrate the schema to the current version (opening the store already did). A read-only
        backend never migrates: an older store is read as it is."""
        if self._backend.read_only:
            self._store  # noqa: B018 (opens the store: fails here if the file is unusable)
            return
        self._store.upgrade()

    def validate(self) -> None:
        """StorageFailure unless the file holds the current schema with every table and column."""
        self._store.validate()

    def integrity_check(self) -> str:
        """Read the whole file and return SQLite's report: ``'ok'``, or one problem per line.

        :raises StorageFailure: the file is too damaged for the check to run to the end.
        """
        return self._store.integrity_check()

    def clear_all(self) -> None:
        self._store.clear_all()

    # -- loading ------------------------------------------------------------------------------

    def _book_row(self, store: _core.SqliteStore, uuid: str) -> BookRow | None:
        try:
            return store.get_logbook(uuid)
        except exc.NotFound:
            return None

    def _flow_row(self, store: _core.SqliteStore, uuid: str) -> FlowRow | None:
        try:
            return store.get_flow_detail(uuid)
        except exc.NotFound:
            return None

    def _with_atoms(self, store: _core.SqliteStore, fd: models.FlowDetail) -> models.FlowDetail:
        for row in store.atoms_for_flow(fd.uuid):
            fd.add(_atom_from(row))
        return fd

    def _flows(self, store: _core.SqliteStore, book_uuid: str, lazy: bool) -> list[models.FlowDetail]:
        flows = [_flow_from(row) for row in store.flows_for_book(book_uuid)]
        if not lazy:
            for fd in flows:
                self._with_atoms(store, fd)
        return flows

    def _book(self, store: _core.SqliteStore, row: BookRow, lazy: bool) -> models.LogBook:
        book = _book_from(row)
        if not lazy:
            base._attach_flows(book, self._flows(store, book.uuid, lazy=False))
        return book

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> models.LogBook:
        store = self._store
        row = self._book_row(store, book_uuid)
        if row is None:
            raise _missing("logbook", book_uuid)
        return self._book(store, row, lazy)

    def get_logbooks(self, lazy: bool = False) -> Iterator[models.LogBook]:
        store = self._store
        return iter([self._book(store, row, lazy) for row in store.list_logbooks()])

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterator[models.FlowDetail]:
        store = self._store
        if self._book_row(store, book_uuid) is None:
            raise _missing("logbook", book_uuid)
        return iter(self._flows(store, book_uuid, lazy))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> models.FlowDetail:
        ahead = self._next_flow_row
        store = self._store  # (drops it)
        row = ahead if lazy and ahead is not None and ahead[0] == fd_uuid else self._flow_row(store, fd_uuid)
        if row is None:
            raise _missing("flow details", fd_uuid)
        fd = _flow_from(row)
        return fd if lazy else self._with_atoms(store, fd)

    def saved_atoms(self, fd_uuid: str) -> SavedAtoms:
        """The atom details of a flow as columns (`ferroflow.persistence.saved.SavedAtoms`):
        what an engine's prepare reads, without a model per row, read when first used. An
        unknown flow has none."""
        store = self._store

        def make_detail(saved: SavedAtoms, position: int) -> models.AtomDetail:
            return _atom_from(store.get_atom_detail(saved.uuid(position)))

        return SavedAtoms(None, make_detail=make_detail, read_columns=lambda: store.atom_columns(fd_uuid))

    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[models.AtomDetail]:
        store = self._store
        if self._flow_row(store, fd_uuid) is None:
            raise _missing("flow details", fd_uuid)
        return iter([_atom_from(row) for row in store.atoms_for_flow(fd_uuid)])

    def get_atom_details(self, ad_uuid: str) -> models.AtomDetail:
        try:
            row = self._store.get_atom_detail(ad_uuid)
        except exc.NotFound:
            raise _missing("atom details", ad_uuid) from None
        return _atom_from(row)

    # -- saving (read, merge, write what changed) ---------------------------------------------

    def destroy_logbook(self, book_uuid: str) -> None:
        try:
            self._store.destroy_logbook(book_uuid)
        except exc.NotFound:
            raise _missing("logbook", book_uuid) from None

    def save_logbook(self, book: models.LogBook) -> models.LogBook:
        with self._backend.write_lock:
            store = self._store
            old = self._book_row(store, book.uuid)
            if old is None:
                stored = book.copy(retain_contents=False)
                linked: dict[str, FlowRow] = {}
            else:
                stored = _book_from(old).merge(book)
                linked = {row[0]: row for row in store.flows_for_book(book.uuid)}
            row = _book_row(stored)
            flow_uuids = {fd.uuid for fd in book}
            if old is None or not _same_book(row, old):
                # The book first: its flow details reference it.
                store.save_logbook(row)
            flows = [
                self._save_flow(store, fd, book.uuid, linked.get(fd.uuid) or self._flow_row(store, fd.uuid))
                for fd in book
            ]
            for uuid, flow_row in linked.items():
                if uuid not in flow_uuids:
                    flows.append(self._with_atoms(store, _flow_from(flow_row)))
            base._attach_flows(stored, flows)
            return stored

    def update_flow_row(self, flow_detail: models.FlowDetail) -> None:
        """Writes the flow detail's own row (name, state, meta) and nothing of its atoms: O(1),
        where `update_flow_details` merges every atom."""
        if self._fence is not None and self._fence[0] == flow_detail.uuid:
            # An owned flow's row changes through a fenced batch (its name never changes here).
            now = time.time()
            meta = _dumps(dict(flow_detail.meta or {}), "meta")
            state = [(flow_detail.uuid, flow_detail.state, now)] if flow_detail.state is not None else []
            self._store.apply([], [], state, [(flow_detail.uuid, meta, now)], [], None, self._fence)
            return
        with self._backend.write_lock:
            store = self._store
            old = self._flow_row(store, flow_detail.uuid)
            if old is None:
                raise _missing("flow details", flow_detail.uuid)
            row = _flow_row(flow_detail, old[1], time.time())
            store.update_flow_detail((*row[:5], old[5], row[6]))

    def update_flow_details(self, flow_detail: models.FlowDetail) -> models.FlowDetail:
        with self._backend.write_lock:
            store = self._store
            old = self._flow_row(store, flow_detail.uuid)
            if old is None:
                raise _missing("flow details", flow_detail.uuid)
            return self._save_flow(store, flow_detail, old[1], old)

    def _save_flow(
        self, store: _core.SqliteStore, fd: models.FlowDetail, book_uuid: str, old: FlowRow | None
    ) -> models.FlowDetail:
        """Upsert ``fd`` (stored as ``old``, if at all) under ``book_uuid`` with its atoms.

        Returns the flow detail as stored, with every atom detail (stored ones not in ``fd`` too).
        """
        now = time.time()
        if old is None:
            stored, stored_atoms = fd.copy(retain_contents=False), {}
        else:
            stored = _flow_from(old).merge(fd)
            # One query for the whole flow (as TaskFlow's SQL backend, an atom is matched within its flow).
            stored_atoms = {row[0]: row for row in store.atoms_for_flow(fd.uuid)}
        # Every row is built (and serialized) before anything is written.
        changed: list[AtomRow] = []
        for ad in fd:
            old_atom = stored_atoms.get(ad.uuid)
            merged = ad if old_atom is None else _atom_from(old_atom).merge(ad)
            atom_row = _atom_row(merged, fd.uuid, now)
            if old_atom is None or not _same_atom(atom_row, old_atom):
                changed.append(atom_row)
            stored.add(merged)
        flow_row = _flow_row(stored, book_uuid, now)
        if old is None:
            store.save_flow_detail(flow_row)  # the flow first: its atoms reference it
            store.upsert_atom_details(changed)
        elif _same_flow(flow_row, old):
            store.upsert_atom_details(changed)
        elif flow_row[3] is not None and (flow_row[1], flow_row[2], flow_row[4]) == (old[1], old[2], old[4]):
            # Only the state changed: one transaction for the atoms and the flow (the common case).
            store.apply(changed, [], [(fd.uuid, flow_row[3], now)])
        else:
            store.upsert_atom_details(changed)
            store.save_flow_detail(flow_row)
        for uuid, atom_row in stored_atoms.items():
            if stored.find(uuid) is None:
                stored.add(_atom_from(atom_row))
        return stored

    def update_atom_details(self, atom_detail: models.AtomDetail) -> models.AtomDetail:
        with self._backend.write_lock:
            store = self._store
            try:
                old = store.get_atom_detail(atom_detail.uuid)
            except exc.NotFound:
                raise _missing("atom details", atom_detail.uuid) from None
            stored = _atom_from(old).merge(atom_detail)
            row = _atom_row(stored, old[1], time.time())
            if not _same_atom(row, old):
                store.upsert_atom_details([row])
            return stored

    # -- the engine's fast path ---------------------------------------------------------------

    def apply(
        self,
        new_atom_details: Iterable[tuple[str, models.AtomDetail]] = (),
        atom_updates: Iterable[tuple[models.AtomDetail, Iterable[str]]] = (),
        flow_state: tuple[str, str] | None = None,
        flow_meta: tuple[str, Mapping[str, Any]] | None = None,
        resume_records: Iterable[tuple[str, str]] = (),
        fresh_atoms: tuple[str, _core.FreshRows] | None = None,
        atom_changes: Iterable[Mapping[str, Any]] = (),
        release_lease: bool = False,
        grouped: bool = False,
    ) -> None:
        """Write a batch of engine transitions in one transaction (group commit): all or nothing.

        No read and no merge: what is given is written as is, so each transition costs O(1) rows
        whatever the flow's size.

        :param new_atom_details: ``(flow uuid, atom detail)`` pairs, inserted whole (an existing
            detail with the same uuid is replaced, keeping its ``created_at``).
        :param atom_updates: ``(atom detail, field names)`` pairs: only those columns of the stored
            row are overwritten, from the detail's current values. Fields: ``state``,
            ``intention``, ``results``, ``failure``, ``revert_results``, ``revert_failure``,
            ``meta``.
        :param flow_state: ``(flow uuid, state)`` to set in the same transaction.
        :param flow_meta: ``(flow uuid, meta dict)`` to write as the flow detail's meta in the same
            transaction (resumption records migrations this way, with the details they changed).
        :param resume_records: ``(atom uuid, record text)`` pairs replacing those atoms' resume
            records, kept beside the details, not in their meta (see :meth:`resume_record`).
        :param fresh_atoms: ``(flow uuid, rows)``: new details (PENDING, to EXECUTE, nothing
            saved yet) given as columns made in Rust (`_core.FreshRows`, e.g. from
            ``CompiledFlow.fresh_rows``; taken over: written once), inserted without a model or a
            row tuple each (a fresh 100,000-atom flow).
        :param atom_changes: dicts of an atom's ``uuid`` and the values to write: ``state``,
            ``intention``, ``results`` (a task's), ``history`` (a retry's results),
            ``failure``, ``revert_results``, ``revert_failure`` (Failure or None), ``meta`` (a
            dict, or its JSON text) — the engine's transitions without a model per atom.
        :param release_lease: the owner of the connection's fence (:meth:`fence`) gives the
            flow's lease up in the same transaction (a run's last write); the fence is kept (the
            caller clears it).
        :param grouped: with ``durability="batch"``, ``flow_state`` may join the open group of
            steps, committed with the steps after it (a run starting), instead of committing the
            group and itself at once.
        :raises NotFound: an updated atom detail or the flow detail does not exist (nothing is
            written).
        :raises TypeError: a value cannot be serialized (nothing is written).
        :raises ValueError: ``release_lease`` without a fence.
        """
        now = time.time()
        if flow_state is not None and flow_meta is None and fresh_atoms is None:
            if not (new_atom_details or atom_updates or resume_records or atom_changes):
                # (a flow's state alone: what an engine writes as a run starts and ends)
                flows = ((flow_state[0], flow_state[1], now),)
                self._store.apply((), (), flows, (), (), None, self._fence, release_lease, grouped)
                return
        rows = [_atom_row(ad, flow_uuid, now) for flow_uuid, ad in new_atom_details]
        changes = [encode_transition(ad, fields, {"uuid": ad.uuid, "updated_at": now}) for ad, fields in atom_updates]
        changes += [encode_change(change, {"uuid": change["uuid"], "updated_at": now}) for change in atom_changes]
        flows = [] if flow_state is None else [(flow_state[0], flow_state[1], now)]
        metas = [] if flow_meta is None else [(flow_meta[0], _dumps(dict(flow_meta[1]), "meta"), now)]
        records = []
        if resume_records:
            # The record of an atom that also changes here rides in its UPDATE (one statement).
            by_uuid = {change["uuid"]: change for change in changes}
            for uuid, record in resume_records:
                change = by_uuid.get(uuid)
                if change is not None:
                    change["resume"] = record
                else:
                    records.append((uuid, record))
        fresh = None if fresh_atoms is None else (fresh_atoms[0], now, fresh_atoms[1])
        self._store.apply(rows, changes, flows, metas, records, fresh, self._fence, release_lease, grouped)

    def lane_parts(self) -> tuple[Any, tuple[str, str, int]]:
        """``(store handle, fence)`` for an engine that writes its steps from Rust
        (`ferroflow._core.Lane`): each batch is a transaction, or joins the open group with
        ``durability="batch"``, as `apply_steps` does."""
        return self._store, self._fence

    def apply_steps(self, steps: Iterable[tuple[str, str, str, str | None, str | None, str | None]]) -> None:
        """Write the commonest engine transitions in one transaction, as :meth:`apply` would: each
        step is ``(atom uuid, state, intention, results, meta, resume record)`` with the payloads
        as JSON text. ``results`` set (a task succeeding) also clears the atom's failure; a
        ``None`` keeps that column (a task starting sets its state and intention only).

        :raises NotFound: an atom detail does not exist (nothing is written).
        """
        self._store.apply_steps(list(steps), time.time(), self._fence)

    # -- resumption records ---------------------------------------------------------------------

    def resume_summaries(self, flow_uuid: str) -> list[tuple[str, str | None, str | None, str | None]]:
        """``(atom uuid, inputs, revert kind, revert name)`` of the flow's atom details that have a
        resume record (what resuming across code changes keeps beside each detail)."""
        return self._store.resume_summaries(flow_uuid)

    def resume_record(self, atom_uuid: str) -> str | None:
        """The resume record of an atom detail, as written (``None`` when it has none): who
        provided its inputs and how to revert it once its code is gone
        (`ferroflow.engines.revert_refs.encode_record`).

        :raises NotFound: there is no such atom detail.
        """
        try:
            return self._store.resume_record(atom_uuid)
        except exc.NotFound:
            raise _missing("atom details", atom_uuid) from None

    def flush(self) -> None:
        """Commit the open group of engine transitions now (``durability="batch"``; otherwise
        every write is already committed and this does nothing)."""
        self._store.flush()

    # -- ownership (see ferroflow.persistence.ownership) ----------------------------------------

    def fence(self, fence: tuple[str, str, int] | None) -> None:
        """Makes this connection's engine writes (:meth:`apply`, :meth:`update_flow_row`) commit
        only while ``(flow uuid, owner, epoch)`` holds the flow's lease (checked inside their
        transaction; :class:`~ferroflow.exceptions.LeaseLost` otherwise); ``None`` stops it."""
        self._fence = fence

    def acquire_lease(self, flow_uuid: str, owner: str, seconds: float) -> int:
        """Make ``owner`` the owner of the flow detail for ``seconds`` (atomically, across processes)
        and return the lease's fencing epoch.

        Succeeds when the flow is unowned, its lease expired or ``owner`` already holds it (then
        the lease is extended, at the same epoch).

        :raises InvalidState: another owner holds an unexpired lease; the message names it and
            when the lease expires.
        :raises NotFound: the flow detail does not exist.
        """
        store = self._store
        epoch, holder, self._next_flow_row = store.acquire_lease(flow_uuid, owner, seconds, time.time())
        if holder is None:
            return epoch
        lease = store.lease(flow_uuid)
        until = ""
        if lease is not None and lease[0] == holder:
            expiry = datetime.datetime.fromtimestamp(lease[1], datetime.UTC)
            until = f" until {expiry:%Y-%m-%d %H:%M:%S.%f} UTC ({lease[1] - time.time():.1f} s from now)"
        raise exc.InvalidState(
            f"Flow detail '{flow_uuid}' of store '{self._backend.path or ':memory:'}' is owned by '{holder}'{until}; "
            f"'{owner}' cannot run it before that lease is released or expires"
        )

    def renew_lease(self, flow_uuid: str, owner: str, epoch: int, seconds: float) -> None:
        """Extend the lease ``owner`` took at ``epoch`` to ``seconds`` from now.

        :raises LeaseLost: ``owner`` no longer holds it (it expired and was taken, or was released).
        """
        self._store.renew_lease(flow_uuid, owner, epoch, seconds, time.time())

    def release_lease(self, flow_uuid: str, owner: str) -> bool:
        """Give up ``owner``'s lease; returns whether it held it (another owner's is never touched)."""
        return self._store.release_lease(flow_uuid, owner)

    def get_lease(self, flow_uuid: str) -> tuple[str, float, int] | None:
        """``(owner, expiry as unix seconds, epoch)`` of the flow's lease, expired or not; ``None``
        if unowned."""
        return self._store.lease(flow_uuid)
