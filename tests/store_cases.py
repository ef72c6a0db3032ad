"""The durable backends the conformance tests run against (the fixtures are in ``conftest.py``).

`durable_backend`: every resume, crash, migration, rewind and orphan test runs once per durable
backend in `DURABLE_BACKENDS` (one `StoreCase` each): a test asks for the store's URI under its
own directory (`StoreCase.uri`) and reads what the store holds through the public Connection API
(`StoreCase.connection`, `StoreCase.snapshot`), so the same assertions hold for every backend. A
backend is one entry in that list.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import postgres_server
from ferroflow.persistence import backends


def store_path(uri: str) -> str:
    """The filesystem path of a file-based store's URI (as its backend reads it)."""
    path = backends.fetch(uri).path
    assert path, f"{uri} names no file"
    return path


def _sqlite_integrity(uri: str) -> str:
    """``PRAGMA integrity_check`` of the file (read-only, with the stdlib driver)."""
    path = store_path(uri)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def _dir_integrity(uri: str) -> str:
    """Every record file of a dir:// store decodes to a JSON object, every child link names a
    record that exists, nothing is a link but those links, and everything is private (0700
    directories, 0600 files); ``ok`` or the problems found."""
    root = Path(store_path(uri))
    problems = []
    kinds = {"books": "flow_details", "flow_details": "atom_details", "atom_details": None, "leases": None}
    for kind, child_kind in kinds.items():
        directory = root / kind
        if not directory.exists():
            continue
        for item in directory.iterdir():
            if item.is_symlink() or not item.is_dir():
                problems.append(f"{item} is not a directory")
                continue
            if stat.S_IMODE(item.stat().st_mode) != 0o700:
                problems.append(f"{item} has mode {stat.S_IMODE(item.stat().st_mode):o}")
            for entry in item.iterdir():
                if entry.is_symlink():
                    target = root / (child_kind or "-") / entry.name
                    if child_kind is None or not (target / "metadata").is_file():
                        problems.append(f"{entry} links to a missing record")
                elif entry.name == "metadata":
                    if stat.S_IMODE(entry.stat().st_mode) != 0o600:
                        problems.append(f"{entry} has mode {stat.S_IMODE(entry.stat().st_mode):o}")
                    try:
                        record = json.loads(entry.read_bytes())
                    except ValueError as e:
                        problems.append(f"{entry} is not JSON: {e}")
                        continue
                    if not isinstance(record, dict):
                        problems.append(f"{entry} is not a JSON object")
    return "\n".join(problems) or "ok"


@dataclass(frozen=True)
class StoreCase:
    """One durable backend the conformance tests run against."""

    name: str
    #: The store's URI, under a test's directory.
    make_uri: Callable[[Path], str]
    #: A check of the whole store as it is on disk (no process has it open): ``"ok"`` or what is
    #: wrong with it.
    integrity: Callable[[str], str]
    #: Share of a crash scenario's rounds (and of the kills they must land) run on this backend:
    #: the SQLite store is the one scale-out and performance rest on, the others get fewer.
    crash_share: float = 1.0

    def __str__(self) -> str:
        return self.name

    def uri(self, where: Path) -> str:
        """The URI of a store under ``where`` (a file or directory that may not exist yet)."""
        return self.make_uri(Path(where))

    @contextlib.contextmanager
    def connection(self, uri: str) -> Iterator[Any]:
        """A connection to the store (through a backend opened for it, closed afterwards)."""
        backend = backends.fetch(uri)
        try:
            with contextlib.closing(backend.get_connection()) as conn:
                yield conn
        finally:
            backend.close()

    def flow(self, uri: str, flow_uuid: str) -> Any:
        """The flow detail (with its atom details) as the store holds it now."""
        with self.connection(uri) as conn:
            return conn.get_flow_details(flow_uuid)

    def snapshot(self, uri: str, flow_uuid: str) -> tuple[Any, ...]:
        """Everything the store says about a flow detail, comparable: the flow's record, its atom
        details, their resume records and the lease."""
        with self.connection(uri) as conn:
            fd = conn.get_flow_details(flow_uuid)
            atoms = sorted(json.dumps(ad.to_dict(), sort_keys=True, default=str) for ad in fd)
            records = conn.resume_summaries(flow_uuid) if hasattr(conn, "resume_summaries") else None
            lease = conn.get_lease(flow_uuid) if hasattr(conn, "get_lease") else None
            return json.dumps(fd.to_dict(), sort_keys=True, default=str), atoms, records, lease


#: The durable backends; a third one (PostgreSQL) is one more entry.
DURABLE_BACKENDS = [
    StoreCase("sqlite", lambda where: f"sqlite:///{where / 'flows.db'}", _sqlite_integrity),
    StoreCase("dir", lambda where: f"dir://{where / 'store'}", _dir_integrity, crash_share=0.5),
    # A fresh database on the throwaway server (tests/postgres_server.py; skipped without one
    # locally, a failure in CI).
    StoreCase("postgres", lambda where: postgres_server.uri_for(where), lambda uri: "ok", crash_share=0.5),
]

#: Rows a group of the batch-durability SQLite store below holds at most before it commits.
BATCH_ROWS = 16
#: The SQLite store with ``durability=batch`` (not a backend of its own, so not in the list
#: above): the crash tests run on it too, asserting how much a kill may make run again.
BATCH_SQLITE = StoreCase(
    "sqlite-batch",
    lambda where: f"sqlite:///{where / 'flows.db'}?durability=batch&batch_transitions={BATCH_ROWS}",
    _sqlite_integrity,
    crash_share=0.5,
)


__all__ = ["BATCH_ROWS", "BATCH_SQLITE", "DURABLE_BACKENDS", "StoreCase", "store_path"]
