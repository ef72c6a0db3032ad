"""The PostgreSQL jobboard (scale-out): conductors on many machines share one table.

Claiming picks rows ``FOR UPDATE SKIP LOCKED``, so conductors never wait on each other's claims.
Every post, release and finish is announced with ``NOTIFY ferroflow_jobs`` in its own
transaction: a waiting conductor is woken by a ``LISTEN`` on a second connection, with no
polling. A connection the server dropped (a restart) is opened again on the next call; the
listener reconnects too and wakes its waiters, since notifications may have been missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ferroflow.jobs.sql_board import TABLE, SqlJobBoard

__all__ = ["PostgresJobBoard"]

LOG = logging.getLogger(__name__)

CHANNEL = "ferroflow_jobs"


class PostgresJobBoard(SqlJobBoard):
    """A jobboard in a PostgreSQL database (``postgresql://user@host:port/db``)."""

    NOW = "extract(epoch from clock_timestamp())::float8"
    LOCK_ROWS = "FOR UPDATE SKIP LOCKED"

    def __init__(self, name: str, conf: dict[str, Any], uri: str, persistence: Any = None) -> None:
        super().__init__(name, conf, persistence)
        self.uri = uri
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()

    def _where(self) -> str:
        parts = urlsplit(self.uri)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(("postgresql", netloc, parts.path, "", ""))

    def _open(self) -> Any:
        # Claims are renewed on this connection by the heartbeat thread that also renews flow
        # leases: a connection attempt to an unreachable server must not hold it for long.
        return psycopg.connect(self.uri, autocommit=False, connect_timeout=max(2, int(self.claim_expiry / 3)))

    def _begin(self, conn: Any) -> None:
        pass  # psycopg opens a transaction on the first statement

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

    def _announce(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.name))

    def _is_disconnect(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError) or (self._conn is not None and self._conn.broken)

    # -- LISTEN --------------------------------------------------------------------------------
    def _start_watching(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listening.clear()
            self._listener = threading.Thread(
                target=self._listen, name=f"ferroflow-jobs-listen-{self.name}", daemon=True
            )
            self._listener.start()
        self._listening.wait(5.0)  # LISTEN is in place before the caller looks at the table

    def _stop_watching(self) -> None:
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)
        self._listener = None

    def _listen(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self.uri, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
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
                self._listening.set()
                self._changes.bump()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self._stop_watching()
