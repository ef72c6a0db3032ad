"""Directory backend (``dir:///abs/path`` or ``file:///abs/path``): one JSON file per record.

The layout is TaskFlow's, so directories written by TaskFlow's dir backend can be resumed here
and the other way round::

    <path>/books/<book uuid>/metadata             LogBook.to_dict(marshal_time=True)
    <path>/books/<book uuid>/<flow uuid>          symlink -> flow_details/<flow uuid>
    <path>/flow_details/<flow uuid>/metadata      FlowDetail.to_dict()
    <path>/flow_details/<flow uuid>/<atom uuid>   symlink -> atom_details/<atom uuid>
    <path>/atom_details/<atom uuid>/metadata      {"atom": AtomDetail.to_dict(), "type": ...}

Differences from TaskFlow: the URI's path is used (TaskFlow drops it); every file is written to a
temporary file and renamed over the old one, so a crash never leaves half a file; deletions
rename first, so an interrupted delete leaves nothing half-visible; each call holds one
``fcntl.flock`` on ``<path>/.lock`` (shared to read, exclusive to write) so processes sharing the
directory see each call whole. TaskFlow's per-directory ``lockf`` locks are not taken, so do
not run a TaskFlow engine on the same directory at the same time. Not transactional across
calls. ``durability='fsync'`` also fsyncs files and directories (survives power loss).

Configuration: ``path`` (or the URI path), ``encoding`` (``utf-8``), ``durability``
(``default`` or ``fsync``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from typing import Any

from ferroflow import exceptions as exc
from ferroflow.codec import JSON
from ferroflow.persistence import base

__all__ = ["DirBackend", "DirConnection"]

_SUBDIRS = {base.BOOK: "books", base.FLOW: "flow_details", base.ATOM: "atom_details", base.LEASE: "leases"}
_WHAT = {base.BOOK: "logbook", base.FLOW: "flow detail", base.ATOM: "atom detail", base.LEASE: "flow lease"}
_METADATA = "metadata"
_LOCK = ".lock"
_TRASH = ".trash"


@contextlib.contextmanager
def _storage_errors(action: str) -> Iterator[None]:
    """OS errors become StorageFailure (ferroflow's own errors and misuse pass through)."""
    try:
        yield
    except OSError as e:
        raise exc.StorageFailure(f"Dir backend failed to {action}: {e}") from e


def _is_safe_name(uuid: Any) -> bool:
    # Uuids become file names: nothing that could escape the directory or hide from listings.
    return (
        isinstance(uuid, str)
        and 0 < len(uuid) <= 255
        and not uuid.startswith(".")
        and "/" not in uuid
        and "\0" not in uuid
    )


class DirBackend(base.Backend):
    """A backend storing JSON files under a directory (see the module docstring)."""

    DEFAULT_FILE_ENCODING = "utf-8"

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        path = base.path_from_conf(self._conf)
        if not path:
            raise ValueError("Empty path is disallowed: give conf 'path' or a URI like dir:///abs/path")
        self._path = os.path.abspath(path)
        self.encoding: str = self._conf.get("encoding") or self.DEFAULT_FILE_ENCODING
        durability = str(self._conf.get("durability", "default")).lower()
        if durability not in ("default", "fsync"):
            raise ValueError(f"Unknown durability {durability!r}; expected 'default' or 'fsync'")
        self.fsync = durability == "fsync"

    @property
    def path(self) -> str:
        """The absolute root directory."""
        return self._path

    def get_connection(self) -> DirConnection:
        return DirConnection(self)

    def close(self) -> None:
        """Nothing to release (each call opens and closes its own files)."""


class DirConnection(base.RecordConnection):
    """A connection to a :class:`DirBackend`."""

    def __init__(self, backend: DirBackend) -> None:
        super().__init__(backend)
        self._root = backend.path
        self._encoding = backend.encoding
        self._fsync = backend.fsync

    # -- lifecycle ----------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the directory layout and remove what interrupted deletions left behind."""
        with self._locked(write=True):
            with _storage_errors("clean up interrupted deletions"):
                shutil.rmtree(os.path.join(self._root, _TRASH), ignore_errors=True)

    def validate(self) -> None:
        """StorageFailure unless the layout exists (see :meth:`upgrade`)."""
        # (``leases`` is made on the first write: a directory written by TaskFlow has none.)
        for subdir in (_SUBDIRS[base.BOOK], _SUBDIRS[base.FLOW], _SUBDIRS[base.ATOM]):
            path = os.path.join(self._root, subdir)
            if not os.path.isdir(path):
                raise exc.StorageFailure(f"Missing required directory {path!r} (call upgrade())")

    def close(self) -> None:
        """Nothing to release."""

    def _ensure_layout(self) -> None:
        with _storage_errors(f"create the directory layout under {self._root!r}"):
            for subdir in _SUBDIRS.values():
                os.makedirs(os.path.join(self._root, subdir), exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        if write:
            self._ensure_layout()
        lock_path = os.path.join(self._root, _LOCK)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            if write:
                raise exc.StorageFailure(f"Dir backend cannot open lock file {lock_path!r}: {e}") from e
            # Nothing written yet (no root) or a read-only directory: nothing to exclude.
            yield
            return
        try:
            with _storage_errors(f"lock {lock_path!r}"):
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- paths and files ----------------------------------------------------------------------

    def _item_dir(self, kind: str, uuid: str) -> str:
        return os.path.join(self._root, _SUBDIRS[kind], uuid)

    def _fsync_dir(self, path: str) -> None:
        if self._fsync:
            dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _encode(self, kind: str, uuid: str, record: dict[str, Any]) -> bytes:
        try:
            data = JSON.dumps(record)
        except TypeError as e:
            name = (record.get("atom") or record).get("name")
            what = f"{_WHAT[kind]} '{name}' ({uuid})"
            raise TypeError(f"{what} cannot be saved by the dir backend: {e}") from None
        if self._encoding.replace("-", "").lower() != "utf8":
            data = data.decode("utf-8").encode(self._encoding)
        return data

    def _replace_file(self, directory: str, data: bytes) -> None:
        """Write ``directory/metadata`` through a temporary file and an atomic rename."""
        tmp = os.path.join(directory, f".{_METADATA}.{uuidlib.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(directory, _METADATA))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir(directory)

    # -- record primitives --------------------------------------------------------------------

    def _read(self, kind: str, uuid: str) -> dict[str, Any] | None:
        if not _is_safe_name(uuid):
            return None
        path = os.path.join(self._item_dir(kind, uuid), _METADATA)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise exc.StorageFailure(f"Dir backend failed to read {path!r}: {e}") from e
        try:
            record = json.loads(data.decode(self._encoding))
        except (UnicodeDecodeError, ValueError) as e:
            raise exc.StorageFailure(f"Corrupt {_WHAT[kind]} file {path!r}: {e}") from e
        if not isinstance(record, dict):
            raise exc.StorageFailure(f"Corrupt {_WHAT[kind]} file {path!r}: not a JSON object")
        return record

    def _write(self, kind: str, uuid: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        if not _is_safe_name(uuid):
            raise ValueError(f"{_WHAT[kind]} uuid {uuid!r} cannot be used as a file name")
        data = self._encode(kind, uuid, record)  # before touching any file
        # Compared encoded: the stored form has lists where the record may hold tuples.
        if old is not None and self._encode(kind, uuid, old) == data:
            return
        directory = self._item_dir(kind, uuid)
        with _storage_errors(f"write {_WHAT[kind]} {uuid!r}"):
            try:
                os.mkdir(directory)
            except FileExistsError:
                pass
            else:
                self._fsync_dir(os.path.dirname(directory))
            self._replace_file(directory, data)

    def _children(self, kind: str, uuid: str) -> list[str] | None:
        if not _is_safe_name(uuid):
            return None
        directory = self._item_dir(kind, uuid)
        with _storage_errors(f"list {_WHAT[kind]} {uuid!r}"):
            if not os.path.exists(os.path.join(directory, _METADATA)):
                return None
            with os.scandir(directory) as entries:
                return [entry.name for entry in entries if entry.is_symlink()]

    def _link(self, kind: str, uuid: str, child_uuid: str) -> None:
        if not _is_safe_name(child_uuid):
            raise ValueError(f"uuid {child_uuid!r} cannot be used as a file name")
        child_kind = base.FLOW if kind == base.BOOK else base.ATOM
        # Relative, so that the whole directory can be moved.
        target = os.path.join(os.pardir, os.pardir, _SUBDIRS[child_kind], child_uuid)
        directory = self._item_dir(kind, uuid)
        with _storage_errors(f"link {child_uuid!r} into {_WHAT[kind]} {uuid!r}"):
            try:
                os.symlink(target, os.path.join(directory, child_uuid))
            except FileExistsError:
                return
            self._fsync_dir(directory)

    def _book_uuids(self) -> list[str]:
        directory = os.path.join(self._root, _SUBDIRS[base.BOOK])
        try:
            with os.scandir(directory) as entries:
                return [e.name for e in entries if e.is_dir(follow_symlinks=False) and _is_safe_name(e.name)]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise exc.StorageFailure(f"Dir backend failed to list {directory!r}: {e}") from e

    def _discard(self, path: str) -> None:
        """Rename ``path`` into the trash (atomic), then remove it."""
        trash = os.path.join(self._root, _TRASH)
        os.makedirs(trash, exist_ok=True)
        doomed = os.path.join(trash, uuidlib.uuid4().hex)
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        self._fsync_dir(os.path.dirname(path))
        shutil.rmtree(doomed, ignore_errors=True)

    def _delete(self, kind: str, uuid: str) -> None:
        if not _is_safe_name(uuid):
            return
        with _storage_errors(f"delete {_WHAT[kind]} {uuid!r}"):
            self._discard(self._item_dir(kind, uuid))

    def _delete_all(self) -> None:
        with _storage_errors(f"clear {self._root!r}"):
            for subdir in _SUBDIRS.values():
                self._discard(os.path.join(self._root, subdir))
        self._ensure_layout()
