"""What the commands read from a store and delete in it, per backend: the SQLite store's own
handle (its Rust fast path), SQL on PostgreSQL, the Connection API on a ``dir://`` store.

A SQLite store and a PostgreSQL database keep when each flow and atom detail last changed; a
``dir://`` store keeps TaskFlow's records, which have no such times (a flow is dated by its
logbook). Deleting one flow is one transaction, checked against its lease, on SQLite and
PostgreSQL; on a ``dir://`` store the command takes the flow's lease, then destroys its logbook,
so a flow that shares its logbook with others cannot be deleted there (`Unsupported`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ferroflow import exceptions

__all__ = [
    "FlowRow",
    "Unsupported",
    "atom_rows",
    "delete_flow_detail",
    "flow_rows",
    "kind_of",
    "label_of",
]

#: ``(uuid, name, state, meta text or dict, book uuid, book name, created_at, updated_at)``:
#: times are UNIX seconds (``updated_at`` is ``created_at`` for a flow never changed since), ``None``
#: where the store keeps none.
FlowRow = tuple[str, str, str | None, Any, str, str, float | None, float | None]

#: The server's clock, as the PostgreSQL backend reads it for leases.
_PG_NOW = "extract(epoch FROM clock_timestamp())::double precision"


class Unsupported(Exception):
    """The store's backend cannot do what was asked (the message names the backend and what)."""


def kind_of(backend: Any) -> str:
    """``'sqlite'``, ``'postgresql'``, ``'dir'`` or ``'other'``."""
    from ferroflow.persistence.backends import impl_sqlite

    if isinstance(backend, impl_sqlite.SQLiteBackend):
        return "sqlite"
    # (a dir:// backend exists only once its module is imported: a SQLite command never loads it)
    impl_dir = sys.modules.get("ferroflow.persistence.backends.impl_dir")
    if impl_dir is not None and isinstance(backend, impl_dir.DirBackend):
        return "dir"
    try:
        from ferroflow.persistence.backends import impl_postgres
    except ImportError:  # psycopg is not installed: no backend of this process is a PostgreSQL one
        return "other"
    if isinstance(backend, impl_postgres.PostgresBackend):
        return "postgresql"
    return "other"


def label_of(backend: Any) -> str:
    """The store as messages (and ``--db``) name it: a SQLite file's path, ``dir:///path``, a
    PostgreSQL URI without its password."""
    kind = kind_of(backend)
    if kind == "sqlite":
        return str(backend.path or ":memory:")
    if kind == "dir":
        return f"dir://{backend.path}"
    if kind == "postgresql":
        return str(backend.label)
    return str(backend.conf.get("connection", type(backend).__name__))


# -- reading ---------------------------------------------------------------------------------------


def flow_rows(backend: Any) -> list[FlowRow]:
    """Every flow detail of the store with its logbook (in no particular order)."""
    kind = kind_of(backend)
    if kind == "sqlite":
        store = backend.store()
        rows = []
        for book_uuid, book_name, *_ in store.list_logbooks():
            for uuid, _book, name, state, meta, created_at, updated_at in store.flows_for_book(book_uuid):
                rows.append((uuid, name, state, meta, book_uuid, book_name, created_at, updated_at or created_at))
        return rows
    if kind == "postgresql":
        return backend.run(
            "listing the flow details",
            lambda conn: conn.execute(
                "SELECT f.uuid, f.name, f.state, f.meta, b.uuid, b.name, f.created_at, "
                "coalesce(f.updated_at, f.created_at) "
                "FROM flowdetails f JOIN logbooks b ON b.uuid = f.parent_uuid ORDER BY f.seq"
            ).fetchall(),
            retry=True,
        )
    # The Connection API: TaskFlow's records have no times but a logbook's.
    with contextlib.closing(backend.get_connection()) as conn:
        rows = []
        for book in conn.get_logbooks(lazy=True):
            created = book.created_at.timestamp() if book.created_at is not None else None
            for fd in conn.get_flows_for_book(book.uuid, lazy=True):
                rows.append((fd.uuid, fd.name, fd.state, dict(fd.meta or {}), book.uuid, book.name, created, None))
        return rows


def atom_rows(backend: Any, flow_uuid: str) -> Iterator[tuple[str, str | None, float | None]]:
    """``(name, state, updated_at)`` of each atom detail of a flow (``updated_at`` ``None`` where
    the store keeps no time)."""
    kind = kind_of(backend)
    if kind == "sqlite":
        for row in backend.store().atoms_for_flow(flow_uuid):
            yield row[2], row[4], row[13]
        return
    if kind == "postgresql":
        yield from backend.run(
            "loading the atom states of a flow",
            lambda conn: conn.execute(
                "SELECT name, state, updated_at FROM atomdetails WHERE parent_uuid = %s ORDER BY seq", (flow_uuid,)
            ).fetchall(),
            retry=True,
        )
        return
    with contextlib.closing(backend.get_connection()) as conn:
        details = list(conn.get_atoms_for_flow(flow_uuid))
    for ad in details:
        yield ad.name, ad.state, None


# -- deleting --------------------------------------------------------------------------------------


def delete_flow_detail(backend: Any, flow_uuid: str, book_uuid: str, now: float, owner_gone: str | None) -> str | None:
    """Deletes the flow detail with its atom details, and its logbook when no other flow is left
    in it, unless an owner other than ``owner_gone`` (one known to be dead) holds an unexpired
    lease on it: then nothing is deleted and that owner is returned.

    :raises Unsupported: the backend cannot delete this flow alone (see the module docstring).
    """
    kind = kind_of(backend)
    if kind == "sqlite":
        return backend.store().delete_flow_detail(flow_uuid, now, owner_gone)
    if kind == "postgresql":
        return backend.run("deleting a flow detail", lambda conn: _pg_delete(conn, flow_uuid, owner_gone))
    return _delete_under_lease(backend, flow_uuid, book_uuid, owner_gone)


def _pg_delete(conn: Any, flow_uuid: str, owner_gone: str | None) -> str | None:
    """One transaction: the flow's row locked, its lease checked (by the server's clock, as
    leases are kept), then the flow (its atoms cascade) and its emptied logbook deleted."""
    with conn.transaction():
        row = conn.execute(
            f"SELECT parent_uuid, owner, lease_until, {_PG_NOW} FROM flowdetails WHERE uuid = %s FOR UPDATE",
            (flow_uuid,),
        ).fetchone()
        if row is None:
            raise exceptions.NotFound(f"No flow details found with uuid '{flow_uuid}'")
        book, owner, until, server_now = row
        if owner is not None and until is not None and until > server_now and owner != owner_gone:
            return owner
        conn.execute("DELETE FROM flowdetails WHERE uuid = %s", (flow_uuid,))
        conn.execute(
            "DELETE FROM logbooks WHERE uuid = %s AND NOT EXISTS (SELECT 1 FROM flowdetails WHERE parent_uuid = %s)",
            (book, book),
        )
    return None


def _delete_under_lease(backend: Any, flow_uuid: str, book_uuid: str, owner_gone: str | None) -> str | None:
    """Record backends have no call deleting one flow detail: the flow's lease is taken (so no
    engine starts on it meanwhile), then its logbook, which must hold no other flow, is destroyed."""
    from ferroflow.persistence import ownership

    with contextlib.closing(backend.get_connection()) as conn:
        others = [fd.uuid for fd in conn.get_flows_for_book(book_uuid, lazy=True) if fd.uuid != flow_uuid]
        if others:
            raise Unsupported(
                f"a {label_of(backend).partition(':')[0]}:// store cannot delete one flow of a logbook that holds "
                f"others (logbook {book_uuid} also holds {len(others)} more: {', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); delete them together with the Python API "
                "(Connection.destroy_logbook), or use a SQLite or PostgreSQL store"
            )
        me = ownership.new_owner_id()
        try:
            conn.acquire_lease(flow_uuid, me, ownership.DEFAULT_LEASE_SECONDS)
        except exceptions.InvalidState:
            lease = conn.get_lease(flow_uuid)
            holder = lease[0] if lease else None
            if holder is not None and holder != owner_gone:
                return holder
            if holder is not None:
                conn.release_lease(flow_uuid, holder)
            conn.acquire_lease(flow_uuid, me, ownership.DEFAULT_LEASE_SECONDS)
        try:
            conn.destroy_logbook(book_uuid)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.release_lease(flow_uuid, me)
            raise
    return None
