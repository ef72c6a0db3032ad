"""What a command does first, before it loads its modules: have SQLite rebuild the WAL index of
the command's store on a thread of its own.

The first connection to a SQLite file whose writer was killed rebuilds the WAL index by reading
the whole WAL (up to ~40 ms: the writer checkpoints at 20,000 pages), which is exactly what
``ferroflow resume`` after a crash faces. Done in Rust without the interpreter lock
(`ferroflow._core.recover_wal`), it overlaps the command's imports and parser instead of
following them. Only the store's location is read here (``--db``, ``$FERROFLOW_DB``, the
default), and only a SQLite file with a WAL is touched; a guess that is wrong costs nothing, as
the command resolves and opens its store as always.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

#: Environment variable naming the database when ``--db`` is not given.
DB_ENV = "FERROFLOW_DB"
#: The database when neither ``--db`` nor ``$FERROFLOW_DB`` is given (in the working directory).
DEFAULT_DB = "ferroflow.db"


class WalRecovery:
    """SQLite rebuilding the WAL index of the file at ``path`` on a thread of its own; the
    connection that did it is held until `release` (SQLite resets the index when the last
    connection to the file closes, so it must outlive the opening of the command's store, and
    must go before that store closes: the last connection to close checkpoints the WAL)."""

    def __init__(self, path: str) -> None:
        self._held: Any = None
        self._thread = threading.Thread(target=self._recover, args=(path,), name="ferroflow-recover-wal", daemon=True)
        self._thread.start()

    def _recover(self, path: str) -> None:
        from ferroflow import _core

        self._held = _core.recover_wal(path)

    def release(self) -> None:
        """Waits for the recovery to end, then closes its connection."""
        self._thread.join()
        held, self._held = self._held, None
        if held is not None:
            held.close()


#: The recovery `start` began for the running command, until `release`.
current: WalRecovery | None = None


#: The commands that open the store ``--db`` names (through `common.open_store`, which ends the
#: recovery once the store is open).
STORE_COMMANDS = frozenset({"run", "resume", "plan", "rewind", "show", "check", "graph", "delete", "prune"})


def start(command: str | None, argv: Sequence[str]) -> None:
    """Starts rebuilding the WAL index of the SQLite store ``argv`` names, when it has a WAL and
    ``command`` is one that opens it."""
    global current
    release()
    if command not in STORE_COMMANDS:
        return
    path = _sqlite_path(argv)
    if path is not None and os.path.isfile(path + "-wal"):
        current = WalRecovery(path)


def release() -> None:
    """Ends the recovery `start` began, if any: called once the command's store is open
    (`common.open_backend`), and when the command ends."""
    global current
    recovery, current = current, None
    if recovery is not None:
        recovery.release()


def _sqlite_path(argv: Sequence[str]) -> str | None:
    """The SQLite file ``--db`` (or ``$FERROFLOW_DB``, or the default) names; None for a store
    of another kind."""
    text = None
    for position, word in enumerate(argv):
        if word == "--":
            break
        if word == "--db" and position + 1 < len(argv):
            text = argv[position + 1]
        elif word.startswith("--db="):
            text = word[len("--db=") :]
    text = text or os.environ.get(DB_ENV) or DEFAULT_DB
    if "://" in text:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text.partition("?")[0])
        if parts.scheme.lower().split("+", 1)[0] != "sqlite":
            return None
        text = unquote(parts.netloc + parts.path)  # (as `persistence.base.path_from_conf` reads it)
    return os.path.expanduser(text) if text else None
