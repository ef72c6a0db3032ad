"""Find jobboards by name or URI (TaskFlow's ``taskflow.jobs.backends``).

``fetch(name, conf, persistence=...)``: ``conf['board']`` is ``"postgres"`` (or ``"postgresql"``)
or ``"sqlite"``, or a URI: ``postgresql://user@host:port/db`` or ``sqlite:///path/jobs.db``. With a
kind rather than a URI, ``conf['connection']`` gives the database (a URI or, for SQLite, a path).
Other conf keys: ``claim_expiry`` (seconds a claim lasts unrenewed, default 6); ``durability``
(``process``, the default: a commit survives the process being killed; ``fsync``: also the
server's or the host's crash, each commit waiting for the disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ferroflow.jobs.sql_board import SqlJobBoard

__all__ = ["backend", "fetch"]

CONF_KEYS = frozenset({"board", "connection", "claim_expiry", "durability"})
KINDS = ("postgres", "postgresql", "sqlite")


def fetch(name: str, conf: dict[str, Any] | str, namespace: str | None = None, **kwargs: Any) -> SqlJobBoard:
    """The jobboard ``name`` described by ``conf`` (a dict with ``board``, or a URI); not yet connected.

    ``persistence`` (keyword) is the backend that holds the jobs' logbooks.
    """
    if isinstance(conf, str):
        conf = {"board": conf}
    conf = dict(conf)
    from ferroflow.persistence.backends import check_names

    check_names(conf, CONF_KEYS, "jobboard conf key", f" (board {name!r})")
    persistence = kwargs.pop("persistence", None)
    kwargs.pop("client", None)
    if kwargs:
        raise ValueError(f"Unknown arguments for jobboard {name!r}: {sorted(kwargs)}")
    board = conf.get("board")
    if not isinstance(board, str) or not board:
        raise ValueError(f"Jobboard {name!r}: conf['board'] must be one of {KINDS} or a URI, got {board!r}")
    scheme = urlsplit(board).scheme if "://" in board else board
    target = board if "://" in board else conf.get("connection")
    if scheme in ("postgres", "postgresql"):
        if not target:
            raise ValueError(f"Jobboard {name!r}: the postgres board needs a URI (conf['connection'] or a board URI)")
        from ferroflow.jobs.backends.impl_postgres import PostgresJobBoard

        return PostgresJobBoard(name, conf, str(target).replace("postgres://", "postgresql://", 1), persistence)
    if scheme == "sqlite":
        path = _sqlite_path(str(target)) if target else None
        if not path:
            raise ValueError(f"Jobboard {name!r}: the sqlite board needs a file (sqlite:///path or conf['connection'])")
        from ferroflow.jobs.backends.impl_sqlite import SQLiteJobBoard

        return SQLiteJobBoard(name, conf, path, persistence)
    raise ValueError(
        f"Jobboard {name!r}: unknown board {board!r}; use one of {KINDS} or a postgresql:// or sqlite:/// URI"
    )


def _sqlite_path(target: str) -> str:
    if target.startswith("sqlite://"):
        parts = urlsplit(target)
        target = parts.path if not parts.netloc else parts.netloc + parts.path
    return "/" + target.lstrip("/") if target.startswith("//") else target


@contextlib.contextmanager
def backend(
    name: str, conf: dict[str, Any] | str, namespace: str | None = None, **kwargs: Any
) -> Iterator[SqlJobBoard]:
    """A connected board, closed on exit."""
    board = fetch(name, conf, namespace, **kwargs)
    board.connect()
    try:
        yield board
    finally:
        board.close()
