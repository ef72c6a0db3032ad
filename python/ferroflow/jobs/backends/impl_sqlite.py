"""The SQLite jobboard (embedded): processes of one host share a file.

Writes take the file's write lock (``BEGIN IMMEDIATE``), so claims are serialised by SQLite
itself (no ``SKIP LOCKED`` is needed). SQLite has no notifications: a waiter polls the file's
``PRAGMA data_version`` (one cheap read, no table scanned), every 5 ms after a change and backing
off to every 200 ms while nothing changes. The file is in WAL mode with ``synchronous=NORMAL``: a
killed process loses nothing; a power loss may lose the last claims or posts (conf
``durability="fsync"``: ``synchronous=FULL``, nothing lost).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from typing import Any

from ferroflow.jobs.sql_board import TABLE, SqlJobBoard

__all__ = ["SQLiteJobBoard"]

LOG = logging.getLogger(__name__)

MIN_POLL = 0.005
MAX_POLL = 0.2


class SQLiteJobBoard(SqlJobBoard):
    """A jobboard in a SQLite file (``sqlite:///path/jobs.db``)."""

    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    LOCK_ROWS = ""

    def __init__(self, name: str, conf: dict[str, Any], path: str, persistence: Any = None) -> None:
        super().__init__(name, conf, persistence)
        self.path = os.path.abspath(path)
        self._watcher: threading.Thread | None = None

    def _where(self) -> str:
        return self.path

    def _open(self) -> Any:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'fsync' else 'NORMAL'}")
        return conn

    def _begin(self, conn: Any, single: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _sql(self, text: str) -> str:
        return super()._sql(text).replace("%s", "?")

    def _schema(self) -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                board TEXT NOT NULL, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, details TEXT NOT NULL,
                book_uuid TEXT, book_name TEXT, priority INTEGER NOT NULL, state TEXT NOT NULL,
                owner TEXT, epoch INTEGER NOT NULL, expires_at REAL,
                created_on REAL NOT NULL, last_modified REAL NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_ready ON {TABLE} "
            f"(board, priority DESC, seq) WHERE state = 'UNCLAIMED'",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_claims ON {TABLE} (board, expires_at) WHERE state = 'CLAIMED'",
            """CREATE TABLE IF NOT EXISTS ferroflow_job_entities (
                board TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, metadata TEXT NOT NULL,
                registered_on REAL NOT NULL, PRIMARY KEY (board, kind, name))""",
        ]

    def _is_disconnect(self, exc: BaseException) -> bool:
        return False

    def _changes_after_write(self) -> None:
        pass  # the watcher sees other processes' commits; our own callers know what they wrote

    # -- polling -------------------------------------------------------------------------------
    def _start_watching(self, done: bool = False) -> None:
        with self._lock:
            if self._watcher is not None and self._watcher.is_alive():
                return
            self._watcher = threading.Thread(target=self._watch, name=f"ferroflow-jobs-poll-{self.name}", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        delay = MIN_POLL
        conn = None
        last = None
        stop = threading.Event()
        try:
            while not self._closed:
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error as exc:
                    LOG.warning("jobboard %s: watching %s failed: %s", self.name, self.path, exc)
                    version = None
                if version != last:
                    last = version
                    self._changes.bump()
                    delay = MIN_POLL
                else:
                    delay = min(delay * 2, MAX_POLL)
                stop.wait(delay)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
