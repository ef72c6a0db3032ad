"""Database files for benchmark runs: a fresh file per run, removed (with its WAL) afterwards."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

#: Store names: in memory, SQLite with the default durability, SQLite fsync'ed at every commit.
MEMORY, SQLITE, SQLITE_FSYNC, SQLITE_BATCH = "memory", "sqlite", "sqlite-fsync", "sqlite-batch"
STORES = (MEMORY, SQLITE, SQLITE_FSYNC, SQLITE_BATCH)
#: Other stores a flow is resumed from (``ferroflow bench --resume``): a ``dir://`` directory, a
#: new database on a PostgreSQL server.
DIR, POSTGRES = "dir", "postgres"
#: ferroflow's ``durability`` option for each SQLite store.
DURABILITY = {SQLITE: "process", SQLITE_FSYNC: "fsync", SQLITE_BATCH: "batch"}

_counter = itertools.count()


def check_store(store: str) -> str:
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}; known: {', '.join(STORES)}")
    return store


def new_db_path(workdir: str | os.PathLike[str] | None, stem: str) -> Path:
    """An absolute path for a new database file in ``workdir`` (default: the temporary directory)."""
    directory = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / f"{stem}-{os.getpid()}-{next(_counter)}.db").absolute()


def ferroflow_uri(path: Path, store: str) -> str:
    """``sqlite:////abs/path.db?durability=...`` for a SQLite store."""
    return f"sqlite:///{path}?durability={DURABILITY[store]}"


def remove_db(path: Path | None) -> None:
    """Removes a SQLite file and its WAL / shared-memory / journal companions, if present."""
    if path is None:
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass
