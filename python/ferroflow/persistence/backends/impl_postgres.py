"""PostgreSQL backend (``postgresql://user:password@host:port/dbname``): one database shared by many
processes and hosts, with the SQLite store's model and semantics.

URIs: ``postgresql://…`` or ``postgres://…`` (``postgresql+psycopg://…`` too, as SQLAlchemy
spells it), or a conf dict whose ``connection`` is such a URI, as TaskFlow's SQLAlchemy backend
takes it; ``host``, ``port``, ``user`` (or ``username``), ``password``, ``dbname`` (or
``database``) and the other libpq keywords (``sslmode``, ``options``, ``connect_timeout``, …) may
also be given as conf keys or URI query parameters. Options of ferroflow's own:

- ``durability``: ``process`` (default) commits asynchronously on the server
  (``synchronous_commit = off``): a committed write survives the engine being killed at any
  instant, since the server has it; a crash of the *server* or its host may lose the writes of the
  last moments (at most three ``wal_writer_delay``, 0.6 s by default), never corrupting anything —
  the guarantee of the SQLite store's default. ``fsync`` waits, at every commit, for the server to
  flush its write-ahead log (``synchronous_commit = on``): it survives power loss.
- ``pool_size``: how many idle server connections the backend keeps for reuse (default 4).
- ``busy_wait_us``: how long an engine's write waits for the server's answer spinning (yielding
  the CPU and the GIL) before it sleeps (default 300 µs; 0 never spins). On a virtual machine a
  sleeping thread is woken 50-80 µs late when the server runs on another CPU: spinning keeps a
  local round trip near 30 µs, at the cost of a busy engine thread while a write is in flight.
- ``mode``: ``rw`` (default) or ``ro`` (``?mode=ro``, or ``read_only=True``): every transaction is
  read-only (``default_transaction_read_only``), the schema is neither created nor upgraded, and
  any write fails with :class:`~ferroflow.exceptions.StorageFailure`.

Driver: psycopg 3 (``pip install 'ferroflow[postgres]'``). Each call borrows a connection from the
backend's pool (a connection found closed by the server, after a restart for instance, is replaced
on the next call), so a connection object may be used from several threads at once (the lease
heartbeat renews from its own thread).

Schema: tables ``logbooks``, ``flowdetails`` (with the lease: ``owner``, ``lease_until``,
``lease_epoch``) and ``atomdetails`` (with the ``resume`` record), a row in ``ferroflow_schema``
holding the schema version, and forward migrations (:data:`MIGRATIONS`). The first connection of a
backend creates or upgrades the schema (:meth:`PostgresConnection.upgrade`: one transaction under
an advisory lock, so processes starting together upgrade once); a schema written by a newer
ferroflow, or TaskFlow's own tables without a ferroflow schema, are refused with
:class:`~ferroflow.exceptions.StorageFailure` naming the database. Tables are created in the
connection's current schema (``options=-c search_path=…`` selects another).

Payloads are JSON text encoded as the SQLite store encodes them (results, meta, failures in their
dict form, a retry's history as ``[[value, {atom: failure dict}], ...]``); timestamps are UTC
seconds (a logbook's time-zone-aware ``created_at`` comes back naive UTC); lease expiries are the
*server's* clock, so hosts need not agree on the time. Errors of the server or the connection are
:class:`~ferroflow.exceptions.StorageFailure` naming the database (never its password).

The Connection API keeps TaskFlow's semantics (``update_*`` merge the given detail into the stored
one, each call one transaction that locks the rows it merges into). Engines write through
:meth:`PostgresConnection.apply`: a batch of transitions in one statement (one round trip, one
commit), whose lease check — when the connection is fenced — locks the flow detail's row in that
same transaction.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import psycopg
    from psycopg import conninfo as pg_conninfo
    from psycopg import errors as pg_errors
    from psycopg.pq import ExecStatus, TransactionStatus
except ImportError as _error:  # fetch() reports it as a backend that could not be loaded
    raise ImportError(
        f"the PostgreSQL backend needs psycopg 3 ({_error}); install it with: pip install 'ferroflow[postgres]'"
    ) from _error

from ferroflow import exceptions as exc
from ferroflow.persistence import base, models
from ferroflow.persistence.columns import UPDATABLE_FIELDS, encode_change, encode_transition
from ferroflow.persistence.columns import atom_row as _atom_row
from ferroflow.persistence.columns import book_row as _book_row
from ferroflow.persistence.columns import column as _column
from ferroflow.persistence.columns import datetime_of as _datetime
from ferroflow.persistence.columns import dumps as _dumps
from ferroflow.persistence.columns import flow_row as _flow_row
from ferroflow.persistence.columns import loads as _loads
from ferroflow.persistence.columns import missing as _missing
from ferroflow.persistence.columns import same_atom as _same_atom
from ferroflow.persistence.columns import same_book as _same_book
from ferroflow.persistence.columns import same_flow as _same_flow
from ferroflow.persistence.columns import unsaveable as _unsaveable
from ferroflow.persistence.saved import SavedAtoms
from ferroflow.utils import forks

__all__ = ["DURABILITIES", "LATEST_VERSION", "MIGRATIONS", "MODES", "PostgresBackend", "PostgresConnection"]

#: Accepted values of the ``durability`` option.
DURABILITIES = ("process", "fsync")
#: Accepted values of the ``mode`` option: read-write (the default) and read-only.
MODES = ("rw", "ro")
#: How long an engine's write spins for the server's answer before it sleeps (``busy_wait_us``).
DEFAULT_BUSY_WAIT_US = 300
_SYNCHRONOUS_COMMIT = {"process": "off", "fsync": "on"}


# -- schema -------------------------------------------------------------------------------------

#: v1: TaskFlow's three tables, the lease of a flow detail (owner, expiry, fencing epoch), the
#: resume record of an atom detail, and the function statements call to refuse a batch whole.
#: ``seq`` keeps the order rows were first saved in (SQLite's rowid). Rows of details, updated at
#: each transition, leave room in their pages for their new versions (HOT updates: no index write).
V1 = """
CREATE TABLE logbooks (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    uuid        text PRIMARY KEY,
    name        text NOT NULL,
    meta        text NOT NULL,
    created_at  double precision NOT NULL,
    updated_at  double precision
);
CREATE TABLE flowdetails (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    uuid        text PRIMARY KEY,
    parent_uuid text NOT NULL REFERENCES logbooks(uuid) ON DELETE CASCADE,
    name        text NOT NULL,
    state       text,
    meta        text NOT NULL,
    created_at  double precision NOT NULL,
    updated_at  double precision,
    owner       text,
    lease_until double precision,
    lease_epoch bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE INDEX flowdetails_parent ON flowdetails (parent_uuid, seq);
CREATE TABLE atomdetails (
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    uuid           text PRIMARY KEY,
    parent_uuid    text NOT NULL REFERENCES flowdetails(uuid) ON DELETE CASCADE,
    name           text NOT NULL,
    atom_type      text NOT NULL CHECK (atom_type IN ('TASK_DETAIL', 'RETRY_DETAIL')),
    state          text,
    intention      text NOT NULL,
    results        text NOT NULL,
    failure        text,
    revert_results text NOT NULL,
    revert_failure text,
    version        text,
    meta           text NOT NULL,
    created_at     double precision NOT NULL,
    updated_at     double precision,
    resume         text
) WITH (fillfactor = 70);
-- Not UNIQUE (parent_uuid, name): orphaned details of removed atoms may share a name with new ones.
CREATE INDEX atomdetails_parent ON atomdetails (parent_uuid, seq);
CREATE FUNCTION ferroflow_fail(code text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = 'ferroflow refused the batch (' || code || ')';
END
$$;
"""

#: ``MIGRATIONS[i]`` takes a database from schema version ``i`` to ``i + 1``: a new version appends
#: one entry and never edits an old one.
MIGRATIONS: list[str] = [V1]
#: The newest schema version this code writes.
LATEST_VERSION = len(MIGRATIONS)

#: Tables and the columns the backend reads and writes (`PostgresConnection.validate` checks them).
TABLE_COLUMNS = {
    "logbooks": ("seq", "uuid", "name", "meta", "created_at", "updated_at"),
    "flowdetails": (
        *("seq", "uuid", "parent_uuid", "name", "state", "meta", "created_at", "updated_at"),
        *("owner", "lease_until", "lease_epoch"),
    ),
    "atomdetails": (
        *("seq", "uuid", "parent_uuid", "name", "atom_type", "state", "intention", "results", "failure"),
        *("revert_results", "revert_failure", "version", "meta", "created_at", "updated_at", "resume"),
    ),
}
_SCHEMA_TABLE = "ferroflow_schema"
#: Key of the advisory lock schema upgrades hold (``b"ferroflo"``).
_UPGRADE_LOCK = 0x666572726F666C6F
#: SQLSTATEs raised by ``ferroflow_fail``: the fence no longer holds the lease; a row is missing.
_LEASE_LOST, _MISSING = "ZF001", "ZF002"

_BOOK_COLUMNS = "uuid, name, meta, created_at, updated_at"
_FLOW_COLUMNS = "uuid, parent_uuid, name, state, meta, created_at, updated_at"
_ATOM_COLUMNS = (
    "uuid, parent_uuid, name, atom_type, state, intention, results, failure, revert_results, revert_failure, "
    "version, meta, created_at, updated_at"
)
_BOOK_UPSERT = (
    f"INSERT INTO logbooks ({_BOOK_COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (uuid) DO UPDATE SET "
    "name = excluded.name, meta = excluded.meta, updated_at = excluded.updated_at"
)
_FLOW_UPSERT = (
    f"INSERT INTO flowdetails ({_FLOW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uuid) DO UPDATE SET "
    "parent_uuid = excluded.parent_uuid, name = excluded.name, state = excluded.state, meta = excluded.meta, "
    "updated_at = excluded.updated_at"
)
_ATOM_UPDATE_ALL = (
    "parent_uuid = excluded.parent_uuid, name = excluded.name, atom_type = excluded.atom_type, "
    "state = excluded.state, intention = excluded.intention, results = excluded.results, failure = excluded.failure, "
    "revert_results = excluded.revert_results, revert_failure = excluded.revert_failure, version = excluded.version, "
    "meta = excluded.meta, updated_at = excluded.updated_at"
)
_ATOM_UPSERT = (
    f"INSERT INTO atomdetails ({_ATOM_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}) "
    f"ON CONFLICT (uuid) DO UPDATE SET {_ATOM_UPDATE_ALL}"
)
_NOW = "extract(epoch FROM clock_timestamp())::double precision"

# -- connection settings ------------------------------------------------------------------------

#: Configuration keys of ferroflow's own (never passed to libpq).
#: Configuration keys TaskFlow's SQLAlchemy backend reads: accepted (and unused, but for
#: ``pool_size``) so that a TaskFlow configuration works, never passed to libpq.
_TASKFLOW_KEYS = frozenset(
    {
        *("engine_args", "echo", "pool_size", "max_pool_size", "max_overflow", "pool_timeout", "pool_recycle"),
        *("idle_timeout", "connection_debug", "connection_trace", "max_retries", "retry_interval", "validate"),
        *("isolation_level", "checkout_retry"),
    }
)
_OWN_KEYS = _TASKFLOW_KEYS | frozenset(
    {
        *("connection", "codec", "durability", "pool_size", "busy_wait_us", "mode", "read_only", "hostname"),
        *("username", "database", "path"),
    }
)
#: libpq keywords read from the configuration (beside those of the URI).
_LIBPQ_KEYS = frozenset(
    {
        *("host", "hostaddr", "port", "dbname", "user", "password", "passfile", "connect_timeout", "options"),
        *("application_name", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword"),
        *("target_session_attrs", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"),
        *("tcp_user_timeout", "gssencmode", "krbsrvname", "service", "channel_binding", "client_encoding"),
    }
)
_DEFAULTS = {"connect_timeout": "10", "application_name": "ferroflow"}


def _conninfo(conf: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """``(libpq conninfo, label naming the database without its password, password)`` of a conf."""
    connection = conf.get("connection")
    params: dict[str, Any] = {}
    if isinstance(connection, str) and "://" in connection:
        parts = urlsplit(connection)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OWN_KEYS]
        uri = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))
        try:
            params.update(pg_conninfo.conninfo_to_dict(uri))
        except psycopg.Error as e:
            raise ValueError(f"Invalid PostgreSQL URI: {_scrub(str(e), parts.password)}") from None
    for key, value in conf.items():
        if value is None or value == "" or key in _OWN_KEYS or key not in _LIBPQ_KEYS:
            continue
        params[key] = value
    if conf.get("username") and "user" not in conf:
        params["user"] = conf["username"]
    if conf.get("database") and "dbname" not in conf:
        params["dbname"] = conf["database"]
    hostname = conf.get("hostname")
    if hostname and "host" not in params:  # "host" or "host:port" (as `backends.fetch` merges a URI's)
        host, colon, port = str(hostname).rpartition(":")
        if not colon or not port.isdigit():
            host, port = str(hostname), ""
        params["host"] = host
        if port:
            params.setdefault("port", port)
    for key, value in _DEFAULTS.items():
        params.setdefault(key, value)
    params = {key: str(value) for key, value in params.items()}
    password = params.get("password")
    user = params.get("user") or os.environ.get("PGUSER") or ""
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    label = f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"
    return pg_conninfo.make_conninfo(**params), label, password


def _scrub(text: str, password: str | None) -> str:
    """``text`` without the password (error messages may quote a connection string)."""
    if password:
        text = text.replace(password, "***")
    return text.strip()


_PREPARED_MAX = 256


class _Link:
    """A pooled server connection, with the statements it prepared for :meth:`execute`."""

    __slots__ = ("conn", "pid", "prefix", "prepared", "spin")

    def __init__(self, conn: psycopg.Connection[Any], spin: float = 0.0, prefix: str = "ferroflow_") -> None:
        self.conn = conn
        #: Names of the statements it prepares: prefix and a number (never psycopg's ``_pg3_``).
        self.prefix = prefix
        self.prepared: dict[str, bytes] = {}
        self.pid = forks.pid()
        #: Seconds `execute_values` spins for its answer before it sleeps.
        self.spin = spin

    @property
    def usable(self) -> bool:
        conn = self.conn
        return not conn.closed and conn.pgconn.transaction_status == TransactionStatus.IDLE

    def alive(self) -> bool:
        """Whether an idle connection still looks usable, checked without a round trip: an idle
        connection has nothing to read unless the server closed it (a restart, an idle timeout)
        or sent a notice."""
        if not self.usable:
            return False
        try:
            readable = _wait(self.conn.fileno(), write=False, timeout=0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        try:  # something arrived while idle: a termination message, most likely
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def execute(self, sql: str, params: list[Any]) -> None:
        """Runs ``sql`` (``%s`` placeholders, scalar parameters: str, int, float, None) as a
        prepared statement through libpq directly: the hot path, without psycopg's per-call work.

        :raises psycopg.Error: as psycopg would raise it.
        """
        self.execute_values(sql, [_param(value) for value in params])

    def rows(self, sql: str, params: list[Any]) -> list[tuple[str | None, ...]]:
        """`execute` of a statement returning rows: its rows, each column as text (None for NULL)."""
        result = self.execute_values(sql, [_param(value) for value in params])
        columns = range(result.nfields)
        value = result.get_value
        return [
            tuple(None if (cell := value(row, column)) is None else cell.decode() for column in columns)
            for row in range(result.ntuples)
        ]

    def execute_values(self, sql: str, values: list[bytes | None]) -> Any:
        """`execute` with the parameters already in PostgreSQL's text format; the result.

        psycopg deallocates every prepared statement of its connection when a transaction of its
        own rolls back (``DEALLOCATE ALL``): a statement found gone is prepared again, once.
        """
        try:
            return self._execute_prepared(sql, values)
        except pg_errors.InvalidSqlStatementName:
            if self.conn.pgconn.transaction_status != TransactionStatus.IDLE:
                raise
            self.prepared.clear()
            return self._execute_prepared(sql, values)

    def _execute_prepared(self, sql: str, values: list[bytes | None]) -> Any:
        pgconn = self.conn.pgconn
        name = self.prepared.get(sql)
        if name is None:
            if len(self.prepared) >= _PREPARED_MAX:  # a rare shape: not kept
                result = pgconn.exec_params(_numbered(sql), values)  # type: ignore[arg-type]
                _check(result)
                return result
            name = f"{self.prefix}{len(self.prepared)}".encode()
            _check(pgconn.prepare(name, _numbered(sql)))
            self.prepared[sql] = name
        if self.spin <= 0:
            result = pgconn.exec_prepared(name, values)  # type: ignore[arg-type]
            _check(result)
            return result
        pgconn.send_query_prepared(name, values)  # type: ignore[arg-type]
        fileno = pgconn.socket
        while pgconn.flush():  # parameters larger than the socket's buffer
            _wait(fileno, write=True)
            pgconn.consume_input()
        # Spin (yielding the CPU and the GIL) while the answer is due: on a virtual machine, a
        # thread that sleeps in poll() is woken 50-80 µs late when the server runs on another
        # CPU, which is most of a local round trip. After ``spin`` seconds, wait in poll().
        deadline = time.perf_counter() + self.spin
        pgconn.consume_input()
        while pgconn.is_busy():
            if time.perf_counter() < deadline:
                os.sched_yield()
            else:
                _wait(fileno, write=False)
            pgconn.consume_input()
        result, error = None, None
        while (next_result := pgconn.get_result()) is not None:
            result = next_result
            if next_result.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK) and error is None:
                error = next_result
        _check(error or result)
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _wait(fileno: int, write: bool, timeout: float | None = None) -> bool:
    """Waits until the socket is readable (or writable, with ``write``) or ``timeout`` seconds
    passed; whether it is. ``poll``, not ``select``: a descriptor may be above 1024."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | (select.POLLOUT if write else 0))
    return bool(poller.poll(None if timeout is None else timeout * 1000))


def _numbered(sql: str) -> bytes:
    """``sql`` with its ``%s`` placeholders as ``$1, $2, ...`` (libpq's)."""
    pieces = sql.split("%s")
    out = [pieces[0]]
    for number, piece in enumerate(pieces[1:], start=1):
        out.append(f"${number}{piece}")
    return "".join(out).encode()


def _param(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format."""
    if value is None:
        return None
    if type(value) is str:
        return value.encode()
    if type(value) is float:
        return repr(value).encode()
    if type(value) is bool:
        return b"t" if value else b"f"
    return str(value).encode()


def _check(result: Any) -> None:
    if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
        raise pg_errors.error_from_result(result, encoding="utf-8")


def _close_links(links: list[_Link]) -> None:
    """Closes pooled connections this process opened (a child's copies of its parent's are left)."""
    pid = forks.pid()
    for link in links[:]:
        if link.pid == pid:
            link.close()
    links.clear()


# Connections inherited through fork(): never used nor closed in the child (closing one would end
# the parent's session).
_FORKED_AWAY: list[Any] = []


# -- backend ------------------------------------------------------------------------------------


class PostgresBackend(base.Backend):
    """A backend storing everything in one PostgreSQL database (see the module docstring).

    It keeps a small pool of server connections shared by its :class:`PostgresConnection` objects;
    the schema is checked (created or upgraded) when the first one is opened.
    """

    #: The conf keys it reads (besides those every backend takes): its own, libpq's, and those of
    #: TaskFlow's SQLAlchemy backend (accepted, unused); others are refused by
    #: `ferroflow.persistence.backends.fetch`.
    conf_keys = (
        frozenset({"durability", "pool_size", "busy_wait_us", "mode", "read_only", "database"})
        | _LIBPQ_KEYS
        | _TASKFLOW_KEYS
    )

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        durability = str(self._conf.get("durability", "process")).lower()
        if durability not in DURABILITIES:
            raise ValueError(f"Unknown durability {durability!r}; expected one of {', '.join(DURABILITIES)}")
        self.durability = durability
        try:
            busy_wait = float(self._conf.get("busy_wait_us", DEFAULT_BUSY_WAIT_US))
        except (TypeError, ValueError):
            busy_wait = -1.0
        if not 0 <= busy_wait < float("inf"):
            raise ValueError(
                f"busy_wait_us must be microseconds (0 to never spin), got {self._conf.get('busy_wait_us')!r}"
            )
        #: Seconds an engine's write spins for the server's answer before it sleeps (`_Link`).
        self.busy_wait = busy_wait / 1e6
        mode = str(self._conf.get("mode", "rw")).lower()
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        read_only = self._conf.get("read_only", False)
        if isinstance(read_only, str):  # from a URI query: ?read_only=1
            read_only = read_only.lower() in ("1", "true", "yes", "on")
        #: Opened read-only (``mode=ro`` or ``read_only=True``): nothing is ever written.
        self.read_only = mode == "ro" or bool(read_only)
        try:
            self.pool_size = int(self._conf.get("pool_size", 4))
        except (TypeError, ValueError):
            raise ValueError(
                f"pool_size must be a number of connections, got {self._conf.get('pool_size')!r}"
            ) from None
        self._conninfo, self._label, self._password = _conninfo(self._conf)
        self._idle: list[_Link] = []
        # A backend dropped without close() closes its idle connections (this process's only).
        weakref.finalize(self, _close_links, self._idle)
        self._lock = threading.Lock()
        self._pid = forks.pid()
        self._generation = 0  # raised by close(): connections borrowed before are not pooled again
        self._schema_ready = False

    @property
    def label(self) -> str:
        """The database, as error messages name it: ``postgresql://user@host:port/dbname``."""
        return self._label

    def get_connection(self) -> PostgresConnection:
        return PostgresConnection(self)

    def close(self) -> None:
        """Close the pooled connections; a later call opens new ones."""
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
            self._generation += 1
            if self._pid != forks.pid():
                _FORKED_AWAY.extend(idle)
                return
        for link in idle:
            link.close()

    # -- the pool -------------------------------------------------------------------------------

    def failure(self, doing: str, error: BaseException) -> exc.StorageFailure:
        """The StorageFailure of ``doing`` on this database (the password never shown)."""
        message = _scrub(str(error), self._password) or type(error).__name__
        return exc.StorageFailure(f"PostgreSQL store '{self._label}': {doing} failed: {message}")

    def _connect(self) -> _Link:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as e:
            raise exc.StorageFailure(
                f"cannot connect to PostgreSQL store '{self._label}': {_scrub(str(e), self._password)}"
            ) from None
        try:
            conn.execute(f"SET synchronous_commit = {_SYNCHRONOUS_COMMIT[self.durability]}")
            if self.read_only:
                conn.execute("SET default_transaction_read_only = on")
            if not self._schema_ready:
                self._check_schema(conn)
        except BaseException:
            conn.close()
            raise
        return _Link(conn, self.busy_wait)

    def _checkout(self) -> tuple[_Link, int]:
        with self._lock:
            if self._pid != forks.pid():  # forked: the parent's connections are not ours
                _FORKED_AWAY.extend(self._idle)
                self._idle.clear()
                self._pid = forks.pid()
            generation = self._generation
            while self._idle:
                link = self._idle.pop()
                if link.alive():
                    return link, generation
                link.close()
        return self._connect(), generation

    def _checkin(self, link: _Link, generation: int) -> None:
        usable = link.usable
        with self._lock:
            if self._pid != forks.pid():
                _FORKED_AWAY.append(link)
                return
            if usable and generation == self._generation and len(self._idle) < self.pool_size:
                self._idle.append(link)
                return
        link.close()

    def _drop_idle(self) -> None:
        """Forgets the idle connections (after one turned out dead: a server restart ends them all)."""
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
        for link in idle:
            link.close()

    def run(
        self, doing: str, body: Callable[[psycopg.Connection[Any]], Any], retry: bool = False, link: bool = False
    ) -> Any:
        """``body(connection)`` on a pooled connection (its `_Link` if ``link``); psycopg errors
        become StorageFailure naming the database.

        ``retry``: ``body`` only reads, so when the connection turns out lost it is run once more
        on a new one. A write whose connection is lost is not retried (it may have committed).
        """
        for attempt in (1, 2):
            pooled, generation = self._checkout()
            conn = pooled.conn
            try:
                return body(pooled if link else conn)  # type: ignore[arg-type]
            except psycopg.Error as e:
                lost = conn.closed
                if lost:
                    self._drop_idle()
                if lost and retry and attempt == 1:
                    continue
                if lost and not retry:
                    raise self.failure(
                        f"{doing} (the connection was lost; the write may or may not have been committed)", e
                    ) from None
                raise self.failure(doing, e) from None
            finally:
                self._checkin(pooled, generation)
        raise AssertionError("unreachable")

    # -- schema ---------------------------------------------------------------------------------

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Refuses a newer schema; creates or upgrades an older one (once per backend). A read-only
        backend changes nothing: it refuses a database without the current schema."""
        try:
            version = _read_version(conn)
            if version != LATEST_VERSION:
                self._refuse_newer(version)
                if self.read_only:
                    raise exc.StorageFailure(
                        f"PostgreSQL store '{self._label}' has "
                        f"{'no ferroflow schema' if version == 0 else f'schema v{version}'} and is opened read-only; "
                        f"open it read-write once to create or upgrade it to v{LATEST_VERSION}"
                    )
                self.migrate(conn)
        except psycopg.Error as e:
            raise self.failure("checking the schema", e) from None
        self._schema_ready = True

    def _refuse_newer(self, version: int) -> None:
        if version > LATEST_VERSION:
            raise exc.StorageFailure(
                f"PostgreSQL store '{self._label}' was written by a newer ferroflow (schema v{version}, this version "
                f"knows up to v{LATEST_VERSION}); upgrade ferroflow"
            )
        if version < 0:
            raise exc.StorageFailure(f"PostgreSQL store '{self._label}' has an invalid schema version {version}")

    def migrate(self, conn: psycopg.Connection[Any]) -> int:
        """Brings the schema to :data:`LATEST_VERSION` in one transaction, under an advisory lock (so
        two processes upgrading at once migrate exactly once); returns the version."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK,))
            version = _read_version(conn)
            self._refuse_newer(version)
            if version == LATEST_VERSION:
                return version
            if version == 0:
                self._refuse_foreign_tables(conn)
                conn.execute(
                    f"CREATE TABLE {_SCHEMA_TABLE} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                    "version integer NOT NULL)"
                )
                conn.execute(f"INSERT INTO {_SCHEMA_TABLE} (version) VALUES (0)")
            for start, sql in enumerate(MIGRATIONS[version:], start=version):
                try:
                    with conn.transaction():  # a savepoint: the failure is reported with its versions
                        conn.execute(sql)  # type: ignore[arg-type]
                except psycopg.Error as e:
                    raise exc.StorageFailure(
                        f"PostgreSQL store '{self._label}': migration from schema v{start} to v{start + 1} failed: "
                        f"{_scrub(str(e), self._password)}"
                    ) from None
            conn.execute(f"UPDATE {_SCHEMA_TABLE} SET version = %s", (LATEST_VERSION,))
        return LATEST_VERSION

    def _refuse_foreign_tables(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name IN ('logbooks', 'flowdetails', 'atomdetails') ORDER BY table_name LIMIT 1"
        ).fetchone()
        if row is not None:
            raise exc.StorageFailure(
                f"PostgreSQL store '{self._label}' already has a '{row[0]}' table but no ferroflow schema version; it "
                "was not written by ferroflow (a TaskFlow SQLAlchemy database?) and is left untouched: use another "
                "database or schema (options=-c search_path=...)"
            )


def _read_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version (0: no ferroflow schema). The catalog is read with a query, not
    ``to_regclass``, whose cached view may miss a table another session just committed."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = %s AND n.nspname = current_schema())",
        (_SCHEMA_TABLE,),
    ).fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute(f"SELECT max(version) FROM {_SCHEMA_TABLE}").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


@contextlib.contextmanager
def _snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A read-only transaction whose statements all see one snapshot (a consistent read of a book
    and its details)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    except BaseException:
        if not (conn.closed or conn.broken):
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- connection ---------------------------------------------------------------------------------


class _Batch:
    """The statement parts of one `PostgresConnection.apply` call (see `_statements`)."""

    __slots__ = ("flows", "fresh", "now", "rows", "scalar", "updates")

    def __init__(self) -> None:
        self.now = time.time()
        #: Whether its statements have scalar parameters only (set by `_statements`).
        self.scalar = True
        #: New atom details (``_atom_row`` tuples plus the resume record), by uuid.
        self.rows: dict[str, tuple[Any, ...]] = {}
        #: ``(flow uuid, uuids, names, types, versions)`` of fresh details.
        self.fresh: tuple[str, list[str], list[str], list[str], list[str | None]] | None = None
        #: Column changes of existing atom details, by uuid.
        self.updates: dict[str, dict[str, Any]] = {}
        #: ``state`` / ``meta`` changes of flow details, by uuid.
        self.flows: dict[str, dict[str, Any]] = {}

    def empty(self) -> bool:
        return not (self.rows or self.fresh or self.updates or self.flows)


class PostgresConnection(base.Connection):
    """A connection to a :class:`PostgresBackend` (each call borrows a server connection)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._fence: tuple[str, str, int] | None = None
        # Read with a statement that was needed anyway, for the read that comes next (an engine's
        # prepare: its lease, then its flow row, then its atoms, then their resume records): each
        # is used once, by the next read of the same flow on this connection, and dropped by any
        # write of this connection. The flow row comes from the statement taking the lease (the
        # row as that statement locked it), the resume records with the atoms (one snapshot).
        self._next_flow_row: tuple[str, tuple[Any, ...]] | None = None
        self._next_records: tuple[str, list[tuple[str, str]]] | None = None
        backend.run("connecting", lambda conn: None)  # fail here, not on first use, if unreachable

    @property
    def backend(self) -> PostgresBackend:
        return self._backend

    def _run(self, doing: str, body: Callable[[Any], Any], retry: bool = False, link: bool = False) -> Any:
        """`PostgresBackend.run` for a write: the rows read ahead for the next read (with a lease)
        are dropped first, as by every write of this connection."""
        self._next_flow_row = self._next_records = None
        return self._backend.run(doing, body, retry, link)

    def _read(self, doing: str, body: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        return self._backend.run(doing, body, retry=True)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release: server connections belong to the backend's pool."""

    def upgrade(self) -> None:
        """Create the schema, or migrate it to the current version (the first connection already
        did); nothing for a read-only backend (its first connection checked the schema)."""
        if self._backend.read_only:
            return
        self._run("upgrading the schema", self._backend.migrate)

    def validate(self) -> None:
        """StorageFailure unless the database holds the current schema with every table and column."""

        def check(conn: psycopg.Connection[Any]) -> None:
            version = _read_version(conn)
            if version != LATEST_VERSION:
                raise exc.StorageFailure(
                    f"PostgreSQL store '{self._backend.label}' has schema v{version}, not v{LATEST_VERSION}: "
                    "run upgrade()"
                )
            rows = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ANY(%s)",
                (list(TABLE_COLUMNS),),
            ).fetchall()
            present = {(table, column) for table, column in rows}
            for table, columns in TABLE_COLUMNS.items():
                missing = [column for column in columns if (table, column) not in present]
                if missing:
                    raise exc.StorageFailure(
                        f"PostgreSQL store '{self._backend.label}': table '{table}' lacks column(s) "
                        f"{', '.join(missing)}; run upgrade()"
                    )

        self._read("validating the schema", check)

    def clear_all(self) -> None:
        def clear(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("DELETE FROM atomdetails")
                conn.execute("DELETE FROM flowdetails")
                conn.execute("DELETE FROM logbooks")

        self._run("clearing the store", clear)

    # -- loading --------------------------------------------------------------------------------

    def _book_from(self, row: tuple[Any, ...]) -> models.LogBook:
        uuid, name, meta, created_at, updated_at = row
        book = models.LogBook(name, uuid=uuid)
        try:
            book.meta = _loads(meta) or {}
        except ValueError as e:
            raise self._corrupt("logbook", uuid, e) from None
        book.created_at = _datetime(created_at)
        book.updated_at = _datetime(updated_at)
        return book

    def _flow_from(self, row: tuple[Any, ...]) -> models.FlowDetail:
        fd = models.FlowDetail(row[2], uuid=row[0])
        fd.state = row[3]
        try:
            fd.meta = _loads(row[4]) or {}
        except ValueError as e:
            raise self._corrupt("flow detail", row[0], e) from None
        return fd

    def _atom_from(self, row: tuple[Any, ...]) -> models.AtomDetail:
        try:
            return models.atom_detail_class(row[3]).from_dict(
                {
                    "uuid": row[0],
                    "name": row[2],
                    "state": row[4],
                    "intention": row[5],
                    "results": _loads(row[6]),
                    "failure": _loads(row[7]),
                    "revert_results": _loads(row[8]),
                    "revert_failure": _loads(row[9]),
                    "version": row[10],
                    "meta": _loads(row[11]),
                }
            )
        except (ValueError, TypeError, KeyError) as e:  # bad JSON, or not the shape of a failure / history
            raise self._corrupt("atom detail", row[0], e) from None

    def _corrupt(self, kind: str, uuid: str, error: Exception) -> exc.StorageFailure:
        return exc.StorageFailure(
            f"Corrupt {kind} '{uuid}' in PostgreSQL store '{self._backend.label}': {type(error).__name__}: {error}"
        )

    def _books(
        self, conn: psycopg.Connection[Any], where: str, args: tuple[Any, ...], lazy: bool
    ) -> list[models.LogBook]:
        """Books matching ``where`` (on ``logbooks b``), with their flow and atom details unless lazy."""
        books = [
            self._book_from(row)
            for row in conn.execute(f"SELECT {_BOOK_COLUMNS} FROM logbooks b WHERE {where} ORDER BY seq", args)
        ]
        if lazy or not books:
            return books
        flows: dict[str, list[models.FlowDetail]] = {book.uuid: [] for book in books}
        by_uuid: dict[str, models.FlowDetail] = {}
        columns = ", ".join(f"f.{column.strip()}" for column in _FLOW_COLUMNS.split(","))
        for row in conn.execute(
            f"SELECT {columns} FROM flowdetails f JOIN logbooks b ON f.parent_uuid = b.uuid WHERE {where} "
            "ORDER BY f.seq",
            args,
        ):
            fd = by_uuid[row[0]] = self._flow_from(row)
            flows[row[1]].append(fd)
        columns = ", ".join(f"a.{column.strip()}" for column in _ATOM_COLUMNS.split(","))
        for row in conn.execute(
            f"SELECT {columns} FROM atomdetails a JOIN flowdetails f ON a.parent_uuid = f.uuid "
            f"JOIN logbooks b ON f.parent_uuid = b.uuid WHERE {where} ORDER BY a.seq",
            args,
        ):
            by_uuid[row[1]].add(self._atom_from(row))
        for book in books:
            base._attach_flows(book, flows[book.uuid])
        return books

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> models.LogBook:
        def load(conn: psycopg.Connection[Any]) -> list[models.LogBook]:
            with _snapshot(conn):
                return self._books(conn, "b.uuid = %s", (book_uuid,), lazy)

        books = self._read("loading a logbook", load)
        if not books:
            raise _missing("logbook", book_uuid)
        return books[0]

    def get_logbooks(self, lazy: bool = False) -> Iterator[models.LogBook]:
        def load(conn: psycopg.Connection[Any]) -> list[models.LogBook]:
            with _snapshot(conn):
                return self._books(conn, "true", (), lazy)

        return iter(self._read("loading the logbooks", load))

    def _flows(
        self, conn: psycopg.Connection[Any], where: str, args: tuple[Any, ...], lazy: bool
    ) -> list[models.FlowDetail]:
        flows = [
            self._flow_from(row)
            for row in conn.execute(f"SELECT {_FLOW_COLUMNS} FROM flowdetails f WHERE {where} ORDER BY seq", args)
        ]
        if lazy or not flows:
            return flows
        by_uuid = {fd.uuid: fd for fd in flows}
        columns = ", ".join(f"a.{column.strip()}" for column in _ATOM_COLUMNS.split(","))
        for row in conn.execute(
            f"SELECT {columns} FROM atomdetails a JOIN flowdetails f ON a.parent_uuid = f.uuid WHERE {where} "
            "ORDER BY a.seq",
            args,
        ):
            by_uuid[row[1]].add(self._atom_from(row))
        return flows

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterator[models.FlowDetail]:
        def load(conn: psycopg.Connection[Any]) -> list[models.FlowDetail] | None:
            with _snapshot(conn):
                if conn.execute("SELECT 1 FROM logbooks WHERE uuid = %s", (book_uuid,)).fetchone() is None:
                    return None
                return self._flows(conn, "f.parent_uuid = %s", (book_uuid,), lazy)

        flows = self._read("loading the flow details of a logbook", load)
        if flows is None:
            raise _missing("logbook", book_uuid)
        return iter(flows)

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> models.FlowDetail:
        ahead, self._next_flow_row = self._next_flow_row, None
        if lazy and ahead is not None and ahead[0] == fd_uuid:
            return self._flow_from(ahead[1])

        if lazy:  # one row: on the libpq lane
            rows = self._backend.run(
                "loading a flow detail",
                lambda link: link.rows(f"SELECT {_FLOW_COLUMNS} FROM flowdetails WHERE uuid = %s", [fd_uuid]),
                retry=True,
                link=True,
            )
            if not rows:
                raise _missing("flow details", fd_uuid)
            return self._flow_from(rows[0])

        def load(conn: psycopg.Connection[Any]) -> list[models.FlowDetail]:
            with _snapshot(conn):
                return self._flows(conn, "f.uuid = %s", (fd_uuid,), lazy)

        flows = self._read("loading a flow detail", load)
        if not flows:
            raise _missing("flow details", fd_uuid)
        return flows[0]

    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[models.AtomDetail]:
        def load(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]] | None:
            with _snapshot(conn):
                if conn.execute("SELECT 1 FROM flowdetails WHERE uuid = %s", (fd_uuid,)).fetchone() is None:
                    return None
                return conn.execute(
                    f"SELECT {_ATOM_COLUMNS} FROM atomdetails WHERE parent_uuid = %s ORDER BY seq", (fd_uuid,)
                ).fetchall()

        rows = self._read("loading the atom details of a flow", load)
        if rows is None:
            raise _missing("flow details", fd_uuid)
        return iter([self._atom_from(row) for row in rows])

    def get_atom_details(self, ad_uuid: str) -> models.AtomDetail:
        row = self._read(
            "loading an atom detail",
            lambda conn: conn.execute(
                f"SELECT {_ATOM_COLUMNS} FROM atomdetails WHERE uuid = %s", (ad_uuid,)
            ).fetchone(),
        )
        if row is None:
            raise _missing("atom details", ad_uuid)
        return self._atom_from(row)

    def saved_atoms(self, fd_uuid: str) -> SavedAtoms:
        """The atom details of a flow as columns (`ferroflow.persistence.saved.SavedAtoms`): what an
        engine's prepare reads, without a model per row (a model is made from the columns, without
        another query, when prepare asks for one). An unknown flow has none."""
        self._next_records = None
        rows = self._backend.run(
            "loading the atom details of a flow",
            lambda link: link.rows(
                "SELECT uuid, name, atom_type = 'RETRY_DETAIL', state, intention, version, results, failure, "
                "revert_results, revert_failure, meta, resume FROM atomdetails WHERE parent_uuid = %s ORDER BY seq",
                [fd_uuid],
            ),
            retry=True,
            link=True,
        )
        self._next_records = (fd_uuid, [(row[0], row[11]) for row in rows if row[11] is not None])
        columns = [list(column) for column in zip(*rows, strict=True)][:11] if rows else [[] for _ in range(11)]
        columns[2] = [retry == "t" for retry in columns[2]]
        uuids, names, retries, states_, intentions, versions, results, failures, reverts, revert_failures, metas = (
            columns
        )

        def make_detail(_saved: SavedAtoms, position: int) -> models.AtomDetail:
            return self._atom_from(
                (
                    uuids[position],
                    fd_uuid,
                    names[position],
                    "RETRY_DETAIL" if retries[position] else "TASK_DETAIL",
                    states_[position],
                    intentions[position],
                    results[position],
                    failures[position],
                    reverts[position],
                    revert_failures[position],
                    versions[position],
                    metas[position],
                )
            )

        return SavedAtoms(columns, make_detail=make_detail)

    # -- saving (read, merge, write what changed; one transaction per call) -------------------

    def _check_fence(self, conn: psycopg.Connection[Any]) -> None:
        """Inside a write transaction: locks the fenced flow's row, refused unless the fence still
        holds its lease (LeaseLost, or NotFound for a flow that is gone)."""
        fence = self._fence
        if fence is None:
            return
        held = conn.execute(
            "SELECT 1 FROM flowdetails WHERE uuid = %s AND owner = %s AND lease_epoch = %s FOR NO KEY UPDATE", fence
        ).fetchone()
        if held is None:
            raise self._lost(conn, fence, "write")

    def _lost(self, conn: psycopg.Connection[Any], fence: tuple[str, str, int], doing: str) -> exc.TaskFlowException:
        flow_uuid, owner, epoch = fence
        row = conn.execute("SELECT owner, lease_epoch FROM flowdetails WHERE uuid = %s", (flow_uuid,)).fetchone()
        if row is None:
            return _missing("flow details", flow_uuid)
        holder, holder_epoch = row
        if holder is None:
            held_by = "nobody (it was released)"
        elif holder == owner:
            held_by = f"the same owner at a newer epoch {holder_epoch} (it was re-acquired)"
        else:
            held_by = f"'{holder}' (epoch {holder_epoch})"
        return exc.LeaseLost(
            f"'{owner}' lost the lease of flow detail '{flow_uuid}' (epoch {epoch}) and cannot {doing}: it is held by "
            f"{held_by}; the flow continues under its current owner"
        )

    def _atom_rows(self, conn: psycopg.Connection[Any], fd_uuid: str) -> dict[str, tuple[Any, ...]]:
        return {
            row[0]: row
            for row in conn.execute(
                f"SELECT {_ATOM_COLUMNS} FROM atomdetails WHERE parent_uuid = %s ORDER BY seq FOR UPDATE", (fd_uuid,)
            )
        }

    def _save_flow(
        self, conn: psycopg.Connection[Any], fd: models.FlowDetail, book_uuid: str, old: tuple[Any, ...] | None
    ) -> models.FlowDetail:
        """Upsert ``fd`` (stored as ``old``, if at all) under ``book_uuid`` with its atoms; returns
        the flow detail as stored, with every atom detail (stored ones not in ``fd`` too)."""
        now = time.time()
        if old is None:
            stored, stored_atoms = fd.copy(retain_contents=False), {}
        else:
            stored = self._flow_from(old).merge(fd)
            stored_atoms = self._atom_rows(conn, fd.uuid)
        changed = []
        for ad in fd:
            old_atom = stored_atoms.get(ad.uuid)
            merged = ad if old_atom is None else self._atom_from(old_atom).merge(ad)
            row = _atom_row(merged, fd.uuid, now)
            if old_atom is None or not _same_atom(row, old_atom):
                changed.append(row)
            stored.add(merged)
        flow_row = _flow_row(stored, book_uuid, now)
        if old is None or not _same_flow(flow_row, old):
            conn.execute(_FLOW_UPSERT, flow_row)  # the flow before its atoms: they reference it
        if changed:
            conn.cursor().executemany(_ATOM_UPSERT, changed)
        for uuid, row in stored_atoms.items():
            if stored.find(uuid) is None:
                stored.add(self._atom_from(row))
        return stored

    def _flow_row_locked(self, conn: psycopg.Connection[Any], uuid: str) -> tuple[Any, ...] | None:
        return conn.execute(f"SELECT {_FLOW_COLUMNS} FROM flowdetails WHERE uuid = %s FOR UPDATE", (uuid,)).fetchone()

    def save_logbook(self, book: models.LogBook) -> models.LogBook:
        def save(conn: psycopg.Connection[Any]) -> models.LogBook:
            with conn.transaction():
                self._check_fence(conn)
                old = conn.execute(
                    f"SELECT {_BOOK_COLUMNS} FROM logbooks WHERE uuid = %s FOR UPDATE", (book.uuid,)
                ).fetchone()
                stored = book.copy(retain_contents=False) if old is None else self._book_from(old).merge(book)
                row = _book_row(stored)
                if old is None or not _same_book(row, old):
                    conn.execute(_BOOK_UPSERT, row)  # the book first: its flow details reference it
                flows = [self._save_flow(conn, fd, book.uuid, self._flow_row_locked(conn, fd.uuid)) for fd in book]
                saved = {fd.uuid for fd in book}
                others = self._flows(conn, "f.parent_uuid = %s", (book.uuid,), lazy=False)
                flows.extend(fd for fd in others if fd.uuid not in saved)
                base._attach_flows(stored, flows)
                return stored

        return self._run("saving a logbook", save)

    def destroy_logbook(self, book_uuid: str) -> None:
        deleted = self._run(
            "destroying a logbook",
            lambda conn: conn.execute("DELETE FROM logbooks WHERE uuid = %s RETURNING 1", (book_uuid,)).fetchone(),
        )
        if deleted is None:
            raise _missing("logbook", book_uuid)

    def update_flow_details(self, flow_detail: models.FlowDetail) -> models.FlowDetail:
        def update(conn: psycopg.Connection[Any]) -> models.FlowDetail:
            with conn.transaction():
                self._check_fence(conn)
                old = self._flow_row_locked(conn, flow_detail.uuid)
                if old is None:
                    raise _missing("flow details", flow_detail.uuid)
                return self._save_flow(conn, flow_detail, old[1], old)

        return self._run("updating a flow detail", update)

    def update_atom_details(self, atom_detail: models.AtomDetail) -> models.AtomDetail:
        def update(conn: psycopg.Connection[Any]) -> models.AtomDetail:
            with conn.transaction():
                self._check_fence(conn)
                old = conn.execute(
                    f"SELECT {_ATOM_COLUMNS} FROM atomdetails WHERE uuid = %s FOR UPDATE", (atom_detail.uuid,)
                ).fetchone()
                if old is None:
                    raise _missing("atom details", atom_detail.uuid)
                stored = self._atom_from(old).merge(atom_detail)
                row = _atom_row(stored, old[1], time.time())
                if not _same_atom(row, old):
                    conn.execute(_ATOM_UPSERT, row)
                return stored

        return self._run("updating an atom detail", update)

    def update_flow_row(self, flow_detail: models.FlowDetail) -> None:
        """Writes the flow detail's own row (name, state, meta) and nothing of its atoms: O(1),
        where `update_flow_details` merges every atom."""
        meta = _dumps(dict(flow_detail.meta or {}), "meta")
        if self._fence is not None:
            batch = _Batch()
            change: dict[str, Any] = {"meta": meta}
            if flow_detail.state is not None:
                change["state"] = flow_detail.state
            batch.flows[flow_detail.uuid] = change
            self._write_batch(batch)
            return

        def update(conn: psycopg.Connection[Any]) -> Any:
            return conn.execute(
                "UPDATE flowdetails SET name = %s, state = %s, meta = %s, updated_at = %s WHERE uuid = %s RETURNING 1",
                (flow_detail.name, flow_detail.state, meta, time.time(), flow_detail.uuid),
            ).fetchone()

        if self._run("updating a flow detail", update) is None:
            raise _missing("flow details", flow_detail.uuid)

    # -- the engine's fast path -----------------------------------------------------------------

    def apply(
        self,
        new_atom_details: Iterable[tuple[str, models.AtomDetail]] = (),
        atom_updates: Iterable[tuple[models.AtomDetail, Iterable[str]]] = (),
        flow_state: tuple[str, str] | None = None,
        flow_meta: tuple[str, Mapping[str, Any]] | None = None,
        resume_records: Iterable[tuple[str, str]] = (),
        fresh_atoms: tuple[str, Any] | None = None,
        atom_changes: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Write a batch of engine transitions in one transaction (group commit): all or nothing.

        The arguments are those of `SQLiteConnection.apply
        <ferroflow.persistence.backends.impl_sqlite.SQLiteConnection.apply>`: no read and no merge,
        what is given is written as is. The batch is one statement (one round trip, one commit);
        when the connection is fenced, that statement also locks the flow detail's row and is
        refused whole (:class:`~ferroflow.exceptions.LeaseLost`) unless the fence still holds its
        lease, so a successor's takeover is ordered entirely before or after it.

        :raises NotFound: an updated atom detail or the flow detail does not exist (nothing is
            written).
        :raises TypeError: a value cannot be serialized (nothing is written).
        """
        if (
            type(atom_changes) is list
            and 0 < len(atom_changes) <= _LANE_MAX
            and not new_atom_details
            and not atom_updates
            and flow_state is None
            and flow_meta is None
            and fresh_atoms is None
        ):
            resume_records = list(resume_records)
            if self._write_changes(atom_changes, resume_records):
                return
        batch = _Batch()
        now = batch.now
        for flow_uuid, ad in new_atom_details:
            batch.rows[ad.uuid] = (*_atom_row(ad, flow_uuid, now), None)
        for ad, fields in atom_updates:
            self._add_update(batch, encode_transition(ad, fields, {"uuid": ad.uuid}))
        for change in atom_changes:
            self._add_update(batch, encode_change(change, {"uuid": change["uuid"]}))
        if flow_state is not None:
            batch.flows.setdefault(flow_state[0], {})["state"] = flow_state[1]
        if flow_meta is not None:
            batch.flows.setdefault(flow_meta[0], {})["meta"] = _dumps(dict(flow_meta[1]), "meta")
        for uuid, record in resume_records:
            row = batch.rows.get(uuid)
            if row is not None:
                batch.rows[uuid] = (*row[:14], record)
            else:
                batch.updates.setdefault(uuid, {"uuid": uuid})["resume"] = record
        if fresh_atoms is not None:
            flow_uuid, fresh = fresh_atoms
            uuids, names, retries, versions = fresh.lists()  # (a `_core.FreshRows`: lengths checked when made)
            kinds = ["RETRY_DETAIL" if retry else "TASK_DETAIL" for retry in retries]
            batch.fresh = (flow_uuid, uuids, names, kinds, versions)
        if not batch.empty():
            self._write_batch(batch)

    def _write_changes(self, changes: list[Mapping[str, Any]], resume_records: list[tuple[str, str]]) -> bool:
        """The engine's common batch (changes of a few atoms, their resume records) as one
        statement sent straight through libpq; False, writing nothing, for a batch this lane does
        not take (an atom changed twice, a resume record of an atom not changed here)."""
        records = dict(resume_records) if resume_records else None
        fence = self._fence
        now = repr(time.time()).encode()
        key: list[Any] = [fence is not None]
        values: list[bytes | None] = []
        uuids: list[str] = []
        try:
            if fence is not None:
                values += [fence[0].encode(), fence[1].encode(), str(fence[2]).encode()]
            for change in changes:
                uuid = change["uuid"]
                uuids.append(uuid)
                fields = tuple(change)
                record = records.pop(uuid, None) if records else None
                key.append((fields, record is not None))
                for field in fields:
                    if field == "uuid":
                        continue
                    try:
                        text = _lane_column(field, change[field])
                    except TypeError as e:
                        raise _unsaveable("atom detail", uuid, uuid, e) from None
                    values.append(None if text is None else text.encode())
                if record is not None:
                    values.append(record.encode())
                values.append(now)
                values.append(uuid.encode())
        except UnicodeEncodeError as e:
            raise TypeError(
                f"atom detail {uuids[-1] if uuids else ''}: it holds text that is not valid Unicode ({e})"
            ) from None
        if records or len(set(uuids)) != len(uuids):
            return False
        sql = _lane_sql(tuple(key))

        def write(link: _Link) -> None:
            try:
                link.execute_values(sql, values)
            except psycopg.Error as e:
                if e.sqlstate == _LEASE_LOST and fence is not None:
                    raise self._lost(link.conn, fence, "write") from None
                if e.sqlstate == _MISSING:
                    raise self._missing_of(link.conn, [], uuids) from None
                raise

        self._run("writing transitions", write, link=True)
        return True

    def apply_steps(self, steps: list[tuple[str, str, str, str | None, str | None, str | None]]) -> None:
        """The steps every forward run is made of, in one statement (one round trip, one commit;
        fenced as `apply`), as `SQLiteConnection.apply_steps` takes them: ``(uuid, state,
        intention, results, meta, resume record)``, payloads as JSON text; ``results`` set (a task
        succeeding) also clears the failure; a ``None`` keeps its column (a task starting writes
        its state and intention only).

        :raises NotFound: an atom detail does not exist (nothing is written).
        :raises LeaseLost: the fence no longer holds the flow's lease (nothing is written).
        """
        if len(steps) > _LANE_MAX:
            # (one statement per atom would nest too deep for the server: the general batch)
            self.apply(atom_changes=[_step_change(step) for step in steps], resume_records=_step_records(steps))
            return
        fence = self._fence
        now = repr(time.time()).encode()
        key: list[Any] = [fence is not None]
        values: list[bytes | None] = []
        if fence is not None:
            values += [fence[0].encode(), fence[1].encode(), str(fence[2]).encode()]
        uuids = []
        try:
            for uuid, state, intention, results, meta, record in steps:
                uuids.append(uuid)
                values += [state.encode(), intention.encode()]
                if results is None:
                    fields = _STEP_START if meta is None else _STEP_START_META
                else:
                    fields = _STEP_DONE if meta is None else _STEP_DONE_META
                    values += [results.encode(), None]
                if meta is not None:
                    values.append(meta.encode())
                key.append((fields, record is not None))
                if record is not None:
                    values.append(record.encode())
                values += [now, uuid.encode()]
        except UnicodeEncodeError as e:
            raise TypeError(
                f"atom detail {uuids[-1] if uuids else ''}: it holds text that is not valid Unicode ({e})"
            ) from None
        sql = _lane_sql(tuple(key))

        def write(link: _Link) -> None:
            try:
                link.execute_values(sql, values)
            except psycopg.Error as e:
                if e.sqlstate == _LEASE_LOST and fence is not None:
                    raise self._lost(link.conn, fence, "write") from None
                if e.sqlstate == _MISSING:
                    raise self._missing_of(link.conn, [], uuids) from None
                raise

        self._run("writing transitions", write, link=True)

    @staticmethod
    def _add_update(batch: _Batch, change: dict[str, Any]) -> None:
        uuid = change["uuid"]
        row = batch.rows.get(uuid)
        if row is not None:  # a detail inserted by this batch: its row takes the change
            columns = list(row)
            for field, value in change.items():
                if field != "uuid":
                    columns[_ROW_INDEX[field]] = value
            batch.rows[uuid] = tuple(columns)
            return
        seen = batch.updates.get(uuid)
        if seen is None:
            batch.updates[uuid] = change
        else:
            seen.update(change)

    def _write_batch(self, batch: _Batch) -> None:
        fence = self._fence
        fresh_uuids = set(batch.fresh[1]) if batch.fresh is not None else set()
        # One statement, unless an update targets a detail this batch inserts (sub-statements of one
        # statement do not see each other's rows): then statements in order, in one transaction.
        single = not (fresh_uuids and (fresh_uuids & batch.updates.keys() or fresh_uuids & batch.rows.keys()))
        parts = _statements(batch, returning=single)
        counted = sum(expected for _, _, expected in parts if expected)

        def write_one(link: _Link) -> None:
            sql, params = _one_statement(parts, fence, counted)
            conn = link.conn
            try:
                if batch.scalar:
                    link.execute(sql, params)
                else:
                    conn.execute(sql, params)
            except psycopg.Error as e:
                if e.sqlstate == _LEASE_LOST and fence is not None:
                    raise self._lost(conn, fence, "write") from None
                if e.sqlstate in (_MISSING, pg_errors.ForeignKeyViolation.sqlstate):
                    raise self._missing_in(conn, batch) from None
                raise

        def write_each(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                self._check_fence(conn)
                for sql, params, expected in parts:
                    try:
                        cursor = conn.execute(sql, params)
                    except pg_errors.ForeignKeyViolation:
                        missing = True
                    else:
                        missing = bool(expected) and cursor.rowcount != expected
                    if missing:
                        raise _BatchMissing

        try:
            if single:
                self._run("writing transitions", write_one, link=True)
            else:
                self._run("writing transitions", write_each)
        except _BatchMissing:
            raise self._run("reading what a batch names", lambda conn: self._missing_in(conn, batch)) from None

    def _missing_in(self, conn: psycopg.Connection[Any], batch: _Batch) -> exc.NotFound:
        """The NotFound of a refused batch: the first flow or atom detail it names that is missing."""
        flows = list(batch.flows)
        flows += [row[1] for row in batch.rows.values()]
        if batch.fresh is not None:
            flows.append(batch.fresh[0])
        return self._missing_of(conn, flows, list(batch.updates))

    def _missing_of(self, conn: psycopg.Connection[Any], flows: list[str], atoms: list[str]) -> exc.NotFound:
        """The NotFound of the first of these flow or atom details that is missing."""
        if flows:
            found = {
                row[0] for row in conn.execute("SELECT uuid FROM flowdetails WHERE uuid = ANY(%s::text[])", (flows,))
            }
            for uuid in flows:
                if uuid not in found:
                    return _missing("flow details", uuid)
        found = {row[0] for row in conn.execute("SELECT uuid FROM atomdetails WHERE uuid = ANY(%s::text[])", (atoms,))}
        for uuid in atoms:
            if uuid not in found:
                return _missing("atom details", uuid)
        return exc.NotFound("a detail of the batch was not found (it was deleted meanwhile)")

    # -- resumption records ---------------------------------------------------------------------

    def resume_summaries(self, flow_uuid: str) -> list[tuple[str, str | None, str | None, str | None]]:
        """``(atom uuid, inputs, revert kind, revert name)`` of the flow's atom details that have a
        resume record, in the order they were first saved (none for an unknown flow)."""
        ahead, self._next_records = self._next_records, None
        if ahead is not None and ahead[0] == flow_uuid:
            return [(uuid, *base._resume_summary(record)) for uuid, record in ahead[1]]
        rows = self._read(
            "reading the resume records of a flow",
            lambda conn: conn.execute(
                "SELECT uuid, resume FROM atomdetails WHERE parent_uuid = %s AND resume IS NOT NULL ORDER BY seq",
                (flow_uuid,),
            ).fetchall(),
        )
        return [(uuid, *base._resume_summary(record)) for uuid, record in rows]

    def resume_record(self, atom_uuid: str) -> str | None:
        """The resume record of an atom detail, as written (``None`` when it has none).

        :raises NotFound: there is no such atom detail.
        """
        row = self._read(
            "reading a resume record",
            lambda conn: conn.execute("SELECT resume FROM atomdetails WHERE uuid = %s", (atom_uuid,)).fetchone(),
        )
        if row is None:
            raise _missing("atom details", atom_uuid)
        return row[0]

    # -- ownership (see ferroflow.persistence.ownership) ----------------------------------------

    def fence(self, fence: tuple[str, str, int] | None) -> None:
        """Makes this connection's writes commit only while ``(flow uuid, owner, epoch)`` holds the
        flow's lease (checked, with the flow's row locked, inside their transaction;
        :class:`~ferroflow.exceptions.LeaseLost` otherwise); ``None`` stops it."""
        self._fence = None if fence is None else (str(fence[0]), str(fence[1]), int(fence[2]))

    def acquire_lease(self, flow_uuid: str, owner: str, seconds: float) -> int:
        """Make ``owner`` the owner of the flow detail for ``seconds`` (of the server's clock) and
        return the lease's fencing epoch, raised whenever the lease changes hands.

        Succeeds when the flow is unowned, its lease expired or ``owner`` already holds it (then
        the lease is extended, at the same epoch).

        :raises InvalidState: another owner holds an unexpired lease; the message names it and
            when the lease expires.
        :raises NotFound: the flow detail does not exist.
        """
        seconds = base._lease_seconds(seconds)

        def acquire(link: _Link) -> tuple[int | None, tuple[Any, ...] | None]:
            rows = link.rows(_ACQUIRE_LEASE, [owner, owner, seconds, flow_uuid, owner])
            if rows:
                self._next_flow_row = (flow_uuid, rows[0][1:])  # the engine's prepare reads it next
                return int(rows[0][0]), None  # type: ignore[arg-type]
            held = link.conn.execute(
                f"SELECT owner, lease_until, {_NOW} FROM flowdetails WHERE uuid = %s", (flow_uuid,)
            ).fetchone()
            return None, held

        for _ in range(3):  # the holder may release or expire between the two statements
            epoch, held = self._run("acquiring a flow lease", acquire, link=True)
            if epoch is not None:
                return epoch
            if held is None:
                raise _missing("flow details", flow_uuid)
            holder, until, now = held
            if holder is not None and until is not None and until > now:
                expiry = datetime.datetime.fromtimestamp(until, datetime.UTC)
                raise exc.InvalidState(
                    f"Flow detail '{flow_uuid}' of PostgreSQL store '{self._backend.label}' is owned by '{holder}' "
                    f"until {expiry:%Y-%m-%d %H:%M:%S.%f} UTC ({until - now:.1f} s from now); '{owner}' cannot run it "
                    "before that lease is released or expires"
                )
        raise exc.StorageFailure(f"acquiring the lease of flow detail '{flow_uuid}' kept racing with other owners")

    def renew_lease(self, flow_uuid: str, owner: str, epoch: int, seconds: float) -> None:
        """Extend the lease ``owner`` took at ``epoch`` to ``seconds`` from now (server time).

        :raises LeaseLost: ``owner`` no longer holds it (it expired and was taken, or was released).
        """
        seconds = base._lease_seconds(seconds)

        def renew(conn: psycopg.Connection[Any]) -> None:
            row = conn.execute(
                f"UPDATE flowdetails SET lease_until = {_NOW} + %s WHERE uuid = %s AND owner = %s AND lease_epoch = %s "
                "RETURNING 1",
                (seconds, flow_uuid, owner, epoch),
            ).fetchone()
            if row is None:
                raise self._lost(conn, (flow_uuid, owner, epoch), "renew its lease")

        self._run("renewing a flow lease", renew)

    def release_lease(self, flow_uuid: str, owner: str) -> bool:
        """Give up ``owner``'s lease; returns whether it held it (another owner's is never touched).

        :raises NotFound: the flow detail does not exist.
        """

        def release(link: _Link) -> bool | None:
            if link.rows(
                "UPDATE flowdetails SET owner = NULL, lease_until = NULL WHERE uuid = %s AND owner = %s RETURNING 1",
                [flow_uuid, owner],
            ):
                return True
            if not link.rows("SELECT 1 FROM flowdetails WHERE uuid = %s", [flow_uuid]):
                return None
            return False

        released = self._run("releasing a flow lease", release, link=True)
        if released is None:
            raise _missing("flow details", flow_uuid)
        return released

    def get_lease(self, flow_uuid: str) -> tuple[str, float, int] | None:
        """``(owner, expiry as unix seconds of the server's clock, epoch)`` of the flow's lease,
        expired or not; ``None`` if unowned.

        :raises NotFound: the flow detail does not exist.
        """
        row = self._read(
            "reading a flow lease",
            lambda conn: conn.execute(
                "SELECT owner, lease_until, lease_epoch FROM flowdetails WHERE uuid = %s", (flow_uuid,)
            ).fetchone(),
        )
        if row is None:
            raise _missing("flow details", flow_uuid)
        owner, until, epoch = row
        if owner is None:
            return None
        return owner, float(until if until is not None else float("-inf")), int(epoch)


#: Takes or extends a flow's lease (parameters: owner, owner, seconds, flow uuid, owner); returns
#: the epoch and the flow's columns (the row as this statement locked it).
_ACQUIRE_LEASE = (
    f"WITH now AS (SELECT {_NOW} AS t) "
    "UPDATE flowdetails SET lease_epoch = lease_epoch + CASE WHEN owner IS DISTINCT FROM %s "
    "THEN 1 ELSE 0 END, owner = %s, lease_until = (SELECT t FROM now) + %s "
    "WHERE uuid = %s AND (owner IS NULL OR owner = %s OR lease_until IS NULL "
    f"OR lease_until <= (SELECT t FROM now)) RETURNING lease_epoch, {_FLOW_COLUMNS}"
)


class _BatchMissing(Exception):
    """A statement of a batch found a row missing (rolls the transaction back)."""


#: Position of each updatable column in an ``_atom_row`` tuple (plus the resume record).
_ROW_INDEX = {
    "state": 4,
    "intention": 5,
    "results": 6,
    "failure": 7,
    "revert_results": 8,
    "revert_failure": 9,
    "meta": 11,
    "resume": 14,
}
_ROW_COLUMNS = f"{_ATOM_COLUMNS}, resume"
_ROW_TYPES = (
    *("text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text"),
    *("double precision", "double precision", "text"),
)
_UPDATE_COLUMNS = ("state", "intention", "results", "failure", "revert_results", "revert_failure", "meta", "resume")
_SQL_CACHE: dict[Any, str] = {}


def _statements(batch: _Batch, returning: bool) -> list[tuple[str, list[Any], int]]:
    """The statements writing ``batch``, in order: ``(sql, params, rows it must change or 0)``;
    array parameters are lists (`_Batch.scalar` tells whether there is none).

    Updates are grouped by the columns they set: one ``UPDATE`` with scalar parameters for a group
    of one (the common case: an atom finishing, the next one starting), ``UPDATE ... FROM
    unnest(...)`` for larger groups.
    """
    now = batch.now
    parts: list[tuple[str, list[Any], int]] = []
    suffix = " RETURNING 1" if returning else ""
    if batch.fresh is not None:
        flow_uuid, uuids, names, kinds, versions = batch.fresh
        parts.append(
            (
                f"INSERT INTO atomdetails ({_ATOM_COLUMNS}) SELECT f.uuid, %s, f.name, f.kind, 'PENDING', 'EXECUTE', "
                "'null', NULL, 'null', NULL, f.version, '{}', %s, %s "
                "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS f(uuid, name, kind, version)",
                [flow_uuid, now, now, *map(_text_array, (uuids, names, kinds, versions))],
                0,
            )
        )
    if batch.rows:
        batch.scalar = False
        columns = list(zip(*batch.rows.values(), strict=True))
        unnest = ", ".join(f"%s::{kind}[]" for kind in _ROW_TYPES)
        parts.append(
            (
                f"INSERT INTO atomdetails ({_ROW_COLUMNS}) SELECT * FROM unnest({unnest}) "
                f"ON CONFLICT (uuid) DO UPDATE SET {_ATOM_UPDATE_ALL}, "
                "resume = coalesce(excluded.resume, atomdetails.resume)",
                [list(column) for column in columns],
                0,
            )
        )
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in batch.updates.values():
        shape = tuple(column for column in _UPDATE_COLUMNS if column in change)
        groups.setdefault(shape, []).append(change)
    for shape, changes in groups.items():
        if len(changes) == 1:
            key = ("update", shape, returning)
            sql = _SQL_CACHE.get(key)
            if sql is None:
                sets = "".join(f"{column} = %s, " for column in shape)
                sql = _SQL_CACHE[key] = f"UPDATE atomdetails SET {sets}updated_at = %s WHERE uuid = %s{suffix}"
            change = changes[0]
            parts.append((sql, [*(change[column] for column in shape), now, change["uuid"]], 1))
        else:
            key = ("updates", shape, returning)
            sql = _SQL_CACHE.get(key)
            if sql is None:
                sets = "".join(f"{column} = c.{column}, " for column in shape)
                arrays = ", ".join("%s::text[]" for _ in range(len(shape) + 1))
                sql = _SQL_CACHE[key] = (
                    f"UPDATE atomdetails AS a SET {sets}updated_at = %s FROM unnest({arrays}) "
                    f"AS c(uuid, {', '.join(shape)}) WHERE a.uuid = c.uuid{suffix}"
                )
            params: list[Any] = [now, _text_array([change["uuid"] for change in changes])]
            params += [_text_array([change[column] for change in changes]) for column in shape]
            parts.append((sql, params, len(changes)))
    for flow_uuid, change in batch.flows.items():
        shape = tuple(column for column in ("state", "meta") if column in change)
        sets = "".join(f"{column} = %s, " for column in shape)
        parts.append(
            (
                f"UPDATE flowdetails SET {sets}updated_at = %s WHERE uuid = %s{suffix}",
                [*(change[column] for column in shape), now, flow_uuid],
                1,
            )
        )
    return parts


def _text_array(values: list[Any]) -> str:
    """A ``text[]`` parameter in PostgreSQL's text format (``{"a","b",NULL}``): statements with
    such arrays keep the libpq lane (`_Link.execute`) rather than psycopg's adaptation."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        else:
            if type(value) is not str:
                value = repr(value) if type(value) is float else str(value)
            items.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _one_statement(
    parts: list[tuple[str, list[Any], int]], fence: tuple[str, str, int] | None, counted: int
) -> tuple[str, list[Any]]:
    """The parts as one statement (one round trip, one implicit transaction): each a data-modifying
    ``WITH`` query; the final ``SELECT`` refuses the whole statement (``ferroflow_fail``) when the
    fence does not hold its lease or a row to update is missing."""
    key = ("one", tuple(sql for sql, _, _ in parts), fence is not None)
    sql = _SQL_CACHE.get(key)
    params: list[Any] = list(fence) if fence is not None else []
    for _, part_params, _ in parts:
        params += part_params
    if counted:
        params.append(counted)
    if sql is not None:
        return sql, params
    queries = []
    if fence is not None:
        queries.append(
            "fence AS (SELECT 1 FROM flowdetails WHERE uuid = %s AND owner = %s AND lease_epoch = %s FOR NO KEY UPDATE)"
        )
    counts = []
    for index, (part_sql, _, expected) in enumerate(parts):
        queries.append(f"w{index} AS ({part_sql})")
        if expected:
            counts.append(f"(SELECT count(*) FROM w{index})")
    checks = []
    if fence is not None:
        checks.append(f"WHEN NOT EXISTS (SELECT FROM fence) THEN ferroflow_fail('{_LEASE_LOST}')")
    if counts:
        checks.append(f"WHEN {' + '.join(counts)} <> %s THEN ferroflow_fail('{_MISSING}')")
    final = f"SELECT CASE {' '.join(checks)} END" if checks else "SELECT NULL"
    sql = f"WITH {', '.join(queries)} {final}"
    if len(_SQL_CACHE) < 4096:
        _SQL_CACHE[key] = sql
    return sql, params


#: Most atoms the engine's lane (`PostgresConnection._write_changes`) writes in one statement.
_LANE_MAX = 16
_LANE_SQL: dict[tuple[Any, ...], str] = {}
_LANE_COLUMN = {"history": "results"}


#: The fields `PostgresConnection.apply_steps` writes for a task starting and for one succeeding.
_STEP_START = ("uuid", "state", "intention")
_STEP_START_META = ("uuid", "state", "intention", "meta")
_STEP_DONE = ("uuid", "state", "intention", "results", "failure")
_STEP_DONE_META = ("uuid", "state", "intention", "results", "failure", "meta")


def _lane_column(field: str, value: Any) -> str | None:
    """One column of an engine change, as text (`_column`, refusing fields apply() cannot change)."""
    if field == "state" or field == "intention":
        return value  # type: ignore[no-any-return]
    if field == "meta":
        return value if isinstance(value, str) else _dumps(value, "meta")
    if field in UPDATABLE_FIELDS or field == "history":
        return _column(field, value)  # type: ignore[no-any-return]
    raise ValueError(f"apply() cannot change {field!r} of an atom detail")


def _step_change(step: tuple[str, str, str, str | None, str | None, str | None]) -> dict[str, Any]:
    """An `apply_steps` step as the change `apply` takes (decoded results, meta as JSON text)."""
    uuid, state, intention, results, meta, _record = step
    change: dict[str, Any] = {"uuid": uuid, "state": state, "intention": intention}
    if results is not None:
        change["results"] = json.loads(results)
        change["failure"] = None
    if meta is not None:
        change["meta"] = meta
    return change


def _step_records(steps: list[tuple[str, str, str, str | None, str | None, str | None]]) -> list[tuple[str, str]]:
    return [(step[0], step[5]) for step in steps if step[5] is not None]


def _lane_sql(key: tuple[Any, ...]) -> str:
    """The statement of a lane batch: ``key`` is (fenced, then per atom: its change's fields and
    whether it carries a resume record)."""
    sql = _LANE_SQL.get(key)
    if sql is not None:
        return sql
    fenced, *atoms = key
    queries = []
    if fenced:
        queries.append(
            "fence AS (SELECT 1 FROM flowdetails WHERE uuid = %s AND owner = %s AND lease_epoch = %s FOR NO KEY UPDATE)"
        )
    for index, (fields, resume) in enumerate(atoms):
        columns = [_LANE_COLUMN.get(field, field) for field in fields if field != "uuid"]
        if resume:
            columns.append("resume")
        sets = "".join(f"{column} = %s, " for column in columns)
        queries.append(f"w{index} AS (UPDATE atomdetails SET {sets}updated_at = %s WHERE uuid = %s RETURNING 1)")
    checks = []
    if fenced:
        checks.append(f"WHEN NOT EXISTS (SELECT FROM fence) THEN ferroflow_fail('{_LEASE_LOST}')")
    counts = " + ".join(f"(SELECT count(*) FROM w{index})" for index in range(len(atoms)))
    checks.append(f"WHEN {counts} <> {len(atoms)} THEN ferroflow_fail('{_MISSING}')")
    sql = f"WITH {', '.join(queries)} SELECT CASE {' '.join(checks)} END"
    if len(_LANE_SQL) < 4096:
        _LANE_SQL[key] = sql
    return sql
