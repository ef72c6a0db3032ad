"""The PostgreSQL jobboard (scale-out): conductors on many machines share one table.

Claiming picks rows ``FOR UPDATE SKIP LOCKED``, so conductors never wait on each other's claims.
Posting, claiming the next job (with the release of expired claims), consuming, abandoning,
trashing and renewing are each one statement: one round trip, one transaction (the connection is
in autocommit mode; the rare operations of several statements run between BEGIN and COMMIT).

Durability (conf ``durability``), as the PostgreSQL store's: ``process`` (the default) commits
asynchronously (``synchronous_commit = off``): a commit survives the conductor or poster being
killed at any instant; a crash of the server itself may lose the last ~0.6 s of posts, claims and
consumes (a lost claim expires, a lost consume runs the finished flow's job again, which finds
its flow done). ``fsync`` waits for the server's WAL flush at every commit.

Every post, release and abandon is announced with ``NOTIFY ferroflow_jobs`` in its own
transaction, every consume and trash with ``NOTIFY ferroflow_jobs_done``: a waiting conductor is
woken by a ``LISTEN`` on a second connection, with no polling, and is not woken by jobs finishing
elsewhere; `Job.wait` listens to finished jobs too (on a third connection, opened on its first
use). A connection the server dropped (a restart) is opened again on the next call; the listeners
reconnect too and wake their waiters, since notifications may have been missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus

from ferroflow.jobs.base import Job
from ferroflow.jobs.sql_board import _COLUMNS, _INSERT_JOB, TABLE, SqlJobBoard, _finish_params, _finish_sql
from ferroflow.persistence.backends.impl_postgres import _Link

__all__ = ["PostgresJobBoard"]

LOG = logging.getLogger(__name__)

#: Channel of the changes that may give a conductor work (a post, a release, an abandon).
CHANNEL = "ferroflow_jobs"
#: Channel of jobs finishing (consumed, trashed): only `Job.wait` listens to it.
DONE_CHANNEL = "ferroflow_jobs_done"

#: Claims the next job in one statement: the most urgent, oldest job among the unclaimed one
#: first in line and the expired claims (all locked SKIP LOCKED); the other expired claims are
#: released (keeping their place) and announced. Parameters: board, board, owner, seconds,
#: channel, board. Returns ``epoch, *_COLUMNS, released`` (NULLs but ``released`` when no job).
_CLAIM_NEXT = f"""WITH expired AS (
    SELECT seq, priority FROM {TABLE} WHERE board = %s AND state = 'CLAIMED' AND expires_at < {{now}}
    FOR UPDATE SKIP LOCKED),
ready AS (
    SELECT seq, priority FROM {TABLE} WHERE board = %s AND state = 'UNCLAIMED' ORDER BY priority DESC, seq
    LIMIT 1 FOR UPDATE SKIP LOCKED),
chosen AS (
    SELECT seq FROM (SELECT seq, priority FROM expired UNION ALL SELECT seq, priority FROM ready) AS c
    ORDER BY priority DESC, seq LIMIT 1),
released AS (
    UPDATE {TABLE} SET state = 'UNCLAIMED', owner = NULL, expires_at = NULL, last_modified = {{now}}
    WHERE seq IN (SELECT seq FROM expired) AND seq NOT IN (SELECT seq FROM chosen) RETURNING 1),
claimed AS (
    UPDATE {TABLE} SET state = 'CLAIMED', owner = %s, epoch = epoch + 1, expires_at = {{now}} + %s,
    last_modified = {{now}} WHERE seq IN (SELECT seq FROM chosen) RETURNING epoch, {_COLUMNS})
SELECT c.*, (SELECT count(pg_notify(%s, %s)) FROM (SELECT 1 FROM released LIMIT 1) AS r)
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true"""


class PostgresJobBoard(SqlJobBoard):
    """A jobboard in a PostgreSQL database (``postgresql://user@host:port/db``)."""

    NOW = "extract(epoch from clock_timestamp())::float8"
    LOCK_ROWS = "FOR UPDATE SKIP LOCKED"

    def __init__(self, name: str, conf: dict[str, Any], uri: str, persistence: Any = None) -> None:
        super().__init__(name, conf, persistence)
        self.uri = uri
        self._listeners: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lane: _Link | None = None

    def _where(self) -> str:
        parts = urlsplit(self.uri)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(("postgresql", netloc, parts.path, "", ""))

    def _open(self) -> Any:
        # Claims are renewed on this connection by the heartbeat thread that also renews flow
        # leases: a connection attempt to an unreachable server must not hold it for long.
        conn = psycopg.connect(self.uri, autocommit=True, connect_timeout=max(2, int(self.claim_expiry / 3)))
        try:
            conn.execute(f"SET synchronous_commit = {'on' if self.durability == 'fsync' else 'off'}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _begin(self, conn: Any, single: bool) -> None:
        if not single:
            conn.execute("BEGIN")

    def _commit(self, conn: Any, single: bool) -> None:
        if not single:
            conn.execute("COMMIT")

    def _rollback(self, conn: Any) -> None:
        if not conn.closed and conn.pgconn.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")

    def _schema(self) -> list[str]:
        return [
            "SELECT pg_advisory_xact_lock(hashtext('ferroflow_jobs schema'))",
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                board TEXT NOT NULL, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, details TEXT NOT NULL,
                book_uuid TEXT, book_name TEXT, priority SMALLINT NOT NULL, state TEXT NOT NULL,
                owner TEXT, epoch BIGINT NOT NULL, expires_at DOUBLE PRECISION,
                created_on DOUBLE PRECISION NOT NULL, last_modified DOUBLE PRECISION NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_ready ON {TABLE} "
            f"(board, priority DESC, seq) WHERE state = 'UNCLAIMED'",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_claims ON {TABLE} (board, expires_at) WHERE state = 'CLAIMED'",
            """CREATE TABLE IF NOT EXISTS ferroflow_job_entities (
                board TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, metadata TEXT NOT NULL,
                registered_on DOUBLE PRECISION NOT NULL, PRIMARY KEY (board, kind, name))""",
        ]

    def _announce(self, cursor: Any, done: bool = False) -> None:
        cursor.execute("SELECT pg_notify(%s, %s)", (DONE_CHANNEL if done else CHANNEL, self.name))

    # -- one statement each --------------------------------------------------------------------
    def _insert_job(self, values: tuple) -> tuple:
        with self._transaction(f"posting job {values[2]!r}", single=True):
            return self._rows(
                f"WITH job AS ({_INSERT_JOB} RETURNING created_on) SELECT created_on, pg_notify(%s, %s)::text FROM job",
                [*values, CHANNEL, self.name],
            )[0]

    def _claim_next_row(self, who: str, seconds: float) -> tuple | None:
        with self._transaction("claiming the next job", single=True):
            row = self._rows(_CLAIM_NEXT, [self.name, self.name, who, seconds, CHANNEL, self.name])[0]
        if int(row[-1] or 0):
            LOG.info("board %s: expired claim(s) released", self.name)
        return None if row[0] is None else row[:-1]

    def _finish_row(self, job: Job, who: str, new_state: str, verb: str, epoch: int | None) -> int:
        channel = CHANNEL if new_state == "UNCLAIMED" else DONE_CHANNEL
        with self._transaction(f"{verb} of job {job.uuid}", single=True):
            row = self._rows(
                f"WITH job AS ({_finish_sql(epoch is not None)} RETURNING 1) "
                "SELECT count(*), count(pg_notify(%s, %s)) FROM job",
                [*_finish_params(self, job, who, new_state, epoch), channel, self.name],
            )[0]
        return int(row[0])  # type: ignore[arg-type]

    def _is_disconnect(self, exc: BaseException) -> bool:
        conn = self._conn
        return isinstance(exc, psycopg.OperationalError) or (
            conn is not None and (conn.broken or conn.closed or conn.pgconn.status != ConnStatus.OK)
        )

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[str | None, ...]]:
        """Runs one statement of the hot path (post, claim, finish, renew) as a prepared statement
        through libpq (as the store's engine writes), inside `_transaction`: rows as text."""
        conn = self._conn
        lane = self._lane
        if lane is None or lane.conn is not conn:
            lane = self._lane = _Link(conn, prefix="ferroflow_board_")
        return lane.rows(self._sql(sql), params)

    # -- LISTEN --------------------------------------------------------------------------------
    def _start_watching(self, done: bool = False) -> None:
        channels = (CHANNEL, DONE_CHANNEL) if done else (CHANNEL,)
        for channel in channels:
            with self._lock:
                current = self._listeners.get(channel)
                if current is not None and current[0].is_alive():
                    listening = current[1]
                else:
                    listening = threading.Event()
                    thread = threading.Thread(
                        target=self._listen,
                        args=(channel, listening),
                        name=f"ferroflow-jobs-listen-{self.name}-{channel}",
                        daemon=True,
                    )
                    self._listeners[channel] = (thread, listening)
                    thread.start()
            listening.wait(5.0)  # LISTEN is in place before the caller looks at the table

    def _stop_watching(self) -> None:
        with self._lock:
            listeners, self._listeners = list(self._listeners.values()), {}
        for listener, _ in listeners:
            if listener is not threading.current_thread():
                listener.join(timeout=2.0)

    def _listen(self, channel: str, listening: threading.Event) -> None:
        delay = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self.uri, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {channel}")
                    listening.set()
                    self._changes.bump()  # whatever happened while not listening
                    delay = 0.1
                    while not self._closed:
                        # The timeout only lets the thread see close(); it sends no query.
                        for notify in conn.notifies(timeout=1.0):
                            if notify.payload == self.name:
                                self._changes.bump()
            except Exception as exc:
                if self._closed:
                    return
                LOG.warning(
                    "jobboard %s: listening for changes failed (reconnecting in %.1f s): %s", self.name, delay, exc
                )
                listening.set()
                self._changes.bump()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self._stop_watching()
