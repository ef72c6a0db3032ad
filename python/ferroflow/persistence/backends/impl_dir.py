"""Directory backend (``dir:///abs/path`` or ``file:///abs/path``): one JSON file per record.

The layout is TaskFlow's, so directories written by TaskFlow's dir backend can be resumed here
and the other way round::

    <path>/books/<book uuid>/metadata             LogBook.to_dict(marshal_time=True)
    <path>/books/<book uuid>/<flow uuid>          symlink -> flow_details/<flow uuid>
    <path>/flow_details/<flow uuid>/metadata      FlowDetail.to_dict()
    <path>/flow_details/<flow uuid>/<atom uuid>   symlink -> atom_details/<atom uuid>
    <path>/atom_details/<atom uuid>/metadata      {"atom": AtomDetail.to_dict(), "type": ...}

An atom detail's file also holds, beside ``atom`` and ``type`` (TaskFlow's readers ignore other
keys), the detail's resume record (``resume``: who provided its inputs, how to revert it once its
code is gone) and ``order``, which keeps the details of a flow in the order they were first
saved (a directory listing has no order).

Differences from TaskFlow:

- the URI's path is used (TaskFlow drops it);
- every file is written to a temporary file and renamed over the old one, so a crash never leaves
  half a file; deletions rename first, so an interrupted delete leaves nothing half-visible;
- each call holds one ``fcntl.flock`` on ``<path>/.lock`` (shared to read, exclusive to write),
  so processes sharing the directory see each call whole;
- each call's writes are all or nothing: a call writing more than one file first writes them all
  to ``<path>/.intent`` (renamed into place whole), then to their files, then removes it. A
  process killed in between leaves the intent, which the next call replays (a writer) or reads
  through (a reader), so the writes of one call — a batch of engine transitions, a migration with
  the flow meta recording it — are never seen in part;
- it is private and follows no planted link: directories are created 0700 and files 0600
  whatever the umask, and every path inside the store is opened component by component with
  ``O_NOFOLLOW`` (``openat``), so a symbolic link planted inside it (``flow_details/<uuid>`` →
  elsewhere, a dangling ``.lock``) is refused with :class:`~ferroflow.exceptions.StorageFailure`
  naming it, never written through. The store's own child links are never followed either (a
  child is read from its own directory by its name). The root path itself may be a link.

TaskFlow's per-directory ``lockf`` locks are not taken, so do not run a TaskFlow engine on the
same directory at the same time. ``durability='fsync'`` also fsyncs files and directories
(survives power loss).

Configuration: ``path`` (or the URI path), ``encoding`` (``utf-8``), ``durability``
(``default`` or ``fsync``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import threading
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from typing import Any

from ferroflow import exceptions as exc
from ferroflow.codec import JSON
from ferroflow.persistence import base
from ferroflow.utils import misc

__all__ = ["DirBackend", "DirConnection"]

_SUBDIRS = {base.BOOK: "books", base.FLOW: "flow_details", base.ATOM: "atom_details", base.LEASE: "leases"}
_WHAT = {base.BOOK: "logbook", base.FLOW: "flow detail", base.ATOM: "atom detail", base.LEASE: "flow lease"}
#: Kinds whose directories `upgrade` makes (``leases`` is made on the first write: a directory
#: written by TaskFlow has none).
_LAYOUT = (base.BOOK, base.FLOW, base.ATOM)
_METADATA = "metadata"
_LOCK = ".lock"
_TRASH = ".trash"
_INTENT = ".intent"
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def _refused(path: str, error: OSError, link: bool | None = None) -> exc.StorageFailure:
    """The error for a path inside the store that is a symbolic link (or not what it should be);
    ``link`` says which, when ``error`` cannot (``O_DIRECTORY`` meets a link as ENOTDIR)."""
    if link is None:
        link = error.errno in (errno.ELOOP, errno.EMLINK)
    if link:
        why = "is a symbolic link, which the dir backend never follows inside its store"
    else:
        why = f"is not a directory ({error.strerror})"
    return exc.StorageFailure(
        f"Dir backend refuses {path!r}: it {why}; someone else put it there: remove it (or restore the store "
        "from a backup) and try again"
    )


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


class DirBackend(base.Backend):
    """A backend storing JSON files under a directory (see the module docstring)."""

    DEFAULT_FILE_ENCODING = "utf-8"
    #: The conf keys it reads (besides those every backend takes; ``max_cache_size``, which
    #: TaskFlow's directory backend reads, is accepted and unused): others are refused by
    #: `ferroflow.persistence.backends.fetch`.
    conf_keys = frozenset({"path", "encoding", "durability", "max_cache_size"})

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        path = base.path_from_conf(self._conf)
        if not path:
            raise ValueError("Empty path is disallowed: give conf 'path' or a URI like dir:///abs/path")
        self._path = os.path.abspath(path)
        self.encoding: str = self._conf.get("encoding") or self.DEFAULT_FILE_ENCODING
        # TaskFlow's file cache: at most max_cache_size entries (>= 1), unbounded when not given.
        max_cache_size = self._conf.get("max_cache_size")
        if max_cache_size is not None:
            self.max_cache_size: int | None = int(max_cache_size)
            self.file_cache: Any = misc.LRUCache(self.max_cache_size)
        else:
            self.max_cache_size = None
            self.file_cache = {}
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


class _Writes:
    """Writes of one call (or of an intent found on disk): file contents by record, then links."""

    __slots__ = ("links", "records")

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], bytes] = {}
        self.links: list[tuple[str, str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.records or self.links)

    def children(self, kind: str, uuid: str) -> list[str]:
        return [child for parent_kind, parent, child in self.links if parent_kind == kind and parent == uuid]


class _Call:
    """What one public call holds open: the root, the kind directories, the writes it buffers."""

    __slots__ = ("dirs", "overlay", "root", "writes")

    def __init__(self, root: int | None, writes: _Writes | None) -> None:
        self.root = root
        self.dirs: dict[str, int] = {}
        #: Writes buffered until the call ends (writers only).
        self.writes = writes
        #: An interrupted call's intent, read through by a reader (it cannot replay it).
        self.overlay: _Writes | None = None

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()
        if self.root is not None:
            os.close(self.root)
            self.root = None


class DirConnection(base.RecordConnection):
    """A connection to a :class:`DirBackend`."""

    def __init__(self, backend: DirBackend) -> None:
        super().__init__(backend)
        self._root = backend.path
        self._encoding = backend.encoding
        self._fsync = backend.fsync
        self._call: _Call | None = None
        # Calls of one connection from several threads take turns (each holds open files).
        self._turn = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the directory layout, finish an interrupted call (its intent), remove what
        interrupted deletions and writes left behind."""
        with self._locked(write=True):
            call = self._current()
            for kind in _LAYOUT:
                self._kind_dir(kind, create=True)
            with _storage_errors(f"clean up under {self._root!r}"):
                assert call.root is not None
                trash = self._open_dir(call.root, _TRASH, self._path_of(_TRASH), create=False)
                if trash is not None:
                    os.close(trash)
                    shutil.rmtree(_TRASH, ignore_errors=True, dir_fd=call.root)
                for name in os.listdir(call.root):
                    if name.startswith(f"{_INTENT}.") and name.endswith(".tmp"):
                        os.unlink(name, dir_fd=call.root)

    def validate(self) -> None:
        """StorageFailure unless the layout exists (see :meth:`upgrade`) and holds no planted link."""
        for kind in _LAYOUT:
            path = self._path_of(_SUBDIRS[kind])
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise exc.StorageFailure(f"Missing required directory {path!r} (call upgrade())") from None
            except OSError as e:
                raise exc.StorageFailure(f"Dir backend cannot inspect {path!r}: {e}") from e
            if stat.S_ISLNK(mode):
                raise _refused(path, OSError(errno.ELOOP, "symbolic link"))
            if not stat.S_ISDIR(mode):
                raise exc.StorageFailure(f"Missing required directory {path!r}: something else is there")

    def close(self) -> None:
        """Nothing to release."""

    # -- locking and the call's open directories ----------------------------------------------

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        with self._turn:
            root = self._open_root(create=write)
            call = self._call = _Call(root, _Writes() if write else None)
            lock = None
            try:
                if root is not None:
                    lock = self._open_lock(root, write)
                if lock is not None:
                    with _storage_errors(f"lock {self._path_of(_LOCK)!r}"):
                        fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                if root is not None:
                    intent = self._read_intent(root)
                    if intent is not None and write:
                        self._apply(intent)
                        self._remove_intent(root)
                    else:
                        call.overlay = intent
                yield
                if call.writes:
                    self._commit(call.writes)
            finally:
                self._call = None
                call.close()
                if lock is not None:
                    os.close(lock)  # releases the lock

    def _current(self) -> _Call:
        call = self._call
        if call is None:  # a primitive outside a public call: a bug, not a storage problem
            raise RuntimeError("dir backend primitive used outside _locked()")
        return call

    def _path_of(self, *parts: str) -> str:
        return os.path.join(self._root, *parts)

    def _open_root(self, create: bool) -> int | None:
        """The root directory (it may itself be a link: it is the user's path), or None when it
        does not exist and ``create`` is false. Made 0700 (missing parents too) when created."""
        try:
            return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as e:
            raise exc.StorageFailure(f"Dir backend cannot open its directory {self._root!r}: {e}") from e
        with _storage_errors(f"create the store directory {self._root!r}"):
            missing = []
            path = self._root
            while not os.path.lexists(path):
                missing.append(path)
                path = os.path.dirname(path)
            for path in reversed(missing):
                try:
                    os.mkdir(path, _DIR_MODE)
                except FileExistsError:
                    continue  # made by another process meanwhile
                os.chmod(path, _DIR_MODE)  # whatever the umask
            return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open_lock(self, root: int, write: bool) -> int | None:
        """The lock file, never through a link; None for a reader when there is none yet (no
        writer ever came: nothing to exclude)."""
        path = self._path_of(_LOCK)
        flags = os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            if not write:
                return os.open(_LOCK, os.O_RDONLY | flags, dir_fd=root)
            try:
                fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, _FILE_MODE, dir_fd=root)
            except FileExistsError:
                return os.open(_LOCK, os.O_RDWR | flags, dir_fd=root)
            os.fchmod(fd, _FILE_MODE)
            return fd
        except FileNotFoundError:
            if write:
                raise exc.StorageFailure(f"Dir backend cannot open lock file {path!r}: it vanished") from None
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _refused(path, e) from e
            if not write and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None  # a read-only copy of a store: nothing to exclude
            raise exc.StorageFailure(f"Dir backend cannot open lock file {path!r}: {e}") from e

    def _open_dir(self, parent: int, name: str, path: str, create: bool) -> int | None:
        """``name`` under the directory ``parent`` (never through a link; made 0700 when missing
        and ``create``), or None when it is missing."""
        try:
            return os.open(name, _NOFOLLOW_DIR, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refused(path, e, _is_link(parent, name)) from e
            raise
        try:
            os.mkdir(name, _DIR_MODE, dir_fd=parent)
        except FileExistsError:
            pass  # made by another call meanwhile (not under our lock: the trash)
        else:
            self._sync(parent)
        try:
            fd = os.open(name, _NOFOLLOW_DIR, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refused(path, e, _is_link(parent, name)) from e
            raise
        os.fchmod(fd, _DIR_MODE)
        return fd

    def _kind_dir(self, kind: str, create: bool) -> int | None:
        """The open directory of a record kind (once per call), or None when missing."""
        call = self._current()
        fd = call.dirs.get(kind)
        if fd is None and call.root is not None:
            name = _SUBDIRS[kind]
            with _storage_errors(f"open {self._path_of(name)!r}"):
                fd = self._open_dir(call.root, name, self._path_of(name), create)
            if fd is not None:
                call.dirs[kind] = fd
        return fd

    def _item_dir(self, kind: str, uuid: str, create: bool) -> int | None:
        """The open directory of one record (the caller closes it), or None when missing."""
        parent = self._kind_dir(kind, create)
        if parent is None:
            return None
        return self._open_dir(parent, uuid, self._path_of(_SUBDIRS[kind], uuid), create)

    def _sync(self, dir_fd: int) -> None:
        if self._fsync:
            os.fsync(dir_fd)

    # -- files --------------------------------------------------------------------------------

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

    def _decode(self, kind: str, path: str, data: bytes) -> dict[str, Any]:
        try:
            record = json.loads(data.decode(self._encoding))
        except (UnicodeDecodeError, ValueError) as e:
            raise exc.StorageFailure(f"Corrupt {_WHAT[kind]} file {path!r}: {e}") from e
        if not isinstance(record, dict):
            raise exc.StorageFailure(f"Corrupt {_WHAT[kind]} file {path!r}: not a JSON object")
        return record

    @staticmethod
    def _read_file(dir_fd: int, name: str) -> bytes:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with open(fd, "rb") as f:
            return f.read()

    def _replace_file(self, dir_fd: int, name: str, data: bytes) -> None:
        """Write ``name`` (0600) through a temporary file and an atomic rename."""
        tmp = f".{name}.{uuidlib.uuid4().hex}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, _FILE_MODE, dir_fd=dir_fd)
        try:
            try:
                os.fchmod(fd, _FILE_MODE)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        self._sync(dir_fd)

    # -- the intent of a call that writes several files ---------------------------------------

    def _commit(self, writes: _Writes) -> None:
        """Writes a call's buffered records and links; through the intent when there are several."""
        call = self._current()
        assert call.root is not None
        several = len(writes.records) + len(writes.links) > 1
        for kind in _LAYOUT:  # as TaskFlow's: every write leaves the whole layout
            self._kind_dir(kind, create=True)
        with _storage_errors(f"write under {self._root!r}"):
            if several:
                records = [[kind, uuid, data.decode(self._encoding)] for (kind, uuid), data in writes.records.items()]
                intent = {"records": records, "links": [list(link) for link in writes.links]}
                self._replace_file(call.root, _INTENT, JSON.dumps(intent))
            self._apply(writes)
            if several:
                self._remove_intent(call.root)

    def _remove_intent(self, root: int) -> None:
        with _storage_errors(f"remove {self._path_of(_INTENT)!r}"):
            os.unlink(_INTENT, dir_fd=root)
            self._sync(root)

    def _read_intent(self, root: int) -> _Writes | None:
        """The intent an interrupted call left, or None."""
        path = self._path_of(_INTENT)
        try:
            data = self._read_file(root, _INTENT)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _refused(path, e) from e
            raise exc.StorageFailure(f"Dir backend failed to read {path!r}: {e}") from e
        try:
            intent = json.loads(data.decode("utf-8"))
            writes = _Writes()
            for kind, uuid, text in intent["records"]:
                if kind not in _SUBDIRS or not _is_safe_name(uuid):
                    raise ValueError(f"bad record {kind!r} {uuid!r}")
                writes.records[(kind, uuid)] = text.encode(self._encoding)
            for kind, uuid, child in intent["links"]:
                if kind not in (base.BOOK, base.FLOW) or not (_is_safe_name(uuid) and _is_safe_name(child)):
                    raise ValueError(f"bad link {kind!r} {uuid!r} {child!r}")
                writes.links.append((kind, uuid, child))
        except (UnicodeError, ValueError, TypeError, KeyError) as e:
            raise exc.StorageFailure(
                f"Corrupt intent file {path!r} (the writes of an interrupted call): {e}; nothing was replayed"
            ) from e
        return writes

    def _apply(self, writes: _Writes) -> None:
        """Writes records (children first, as buffered), then the links that make them reachable."""
        for (kind, uuid), data in writes.records.items():
            with _storage_errors(f"write {_WHAT[kind]} {uuid!r}"):
                item = self._item_dir(kind, uuid, create=True)
                assert item is not None
                try:
                    self._replace_file(item, _METADATA, data)
                finally:
                    os.close(item)
        for kind, uuid, child in writes.links:
            child_kind = base.FLOW if kind == base.BOOK else base.ATOM
            # Relative, so that the whole directory can be moved.
            target = os.path.join(os.pardir, os.pardir, _SUBDIRS[child_kind], child)
            with _storage_errors(f"link {child!r} into {_WHAT[kind]} {uuid!r}"):
                item = self._item_dir(kind, uuid, create=False)
                if item is None:
                    raise FileNotFoundError(errno.ENOENT, "no such record", self._path_of(_SUBDIRS[kind], uuid))
                try:
                    os.symlink(target, child, dir_fd=item)
                except FileExistsError:
                    pass
                else:
                    self._sync(item)
                finally:
                    os.close(item)

    # -- record primitives --------------------------------------------------------------------

    def _buffered(self, kind: str, uuid: str) -> bytes | None:
        call = self._current()
        for writes in (call.writes, call.overlay):
            if writes is not None:
                data = writes.records.get((kind, uuid))
                if data is not None:
                    return data
        return None

    def _read(self, kind: str, uuid: str) -> dict[str, Any] | None:
        if not _is_safe_name(uuid):
            return None
        path = self._path_of(_SUBDIRS[kind], uuid, _METADATA)
        data = self._buffered(kind, uuid)
        if data is None:
            try:
                item = self._item_dir(kind, uuid, create=False)
                if item is None:
                    return None
                try:
                    data = self._read_file(item, _METADATA)
                finally:
                    os.close(item)
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise _refused(path, e) from e
                raise exc.StorageFailure(f"Dir backend failed to read {path!r}: {e}") from e
        return self._decode(kind, path, data)

    def _write(self, kind: str, uuid: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        if not _is_safe_name(uuid):
            raise ValueError(f"{_WHAT[kind]} uuid {uuid!r} cannot be used as a file name")
        data = self._encode(kind, uuid, record)  # before touching any file
        # Compared encoded: the stored form has lists where the record may hold tuples.
        if old is not None and self._encode(kind, uuid, old) == data:
            return
        writes = self._current().writes
        assert writes is not None, "a write outside a write call"
        writes.records[(kind, uuid)] = data

    def _children(self, kind: str, uuid: str) -> list[str] | None:
        if not _is_safe_name(uuid):
            return None
        call = self._current()
        buffered = [writes for writes in (call.overlay, call.writes) if writes is not None]
        with _storage_errors(f"list {_WHAT[kind]} {uuid!r}"):
            item = self._item_dir(kind, uuid, create=False)
            if item is None:
                found = None
            else:
                try:
                    try:
                        os.stat(_METADATA, dir_fd=item, follow_symlinks=False)
                    except FileNotFoundError:
                        found = None
                    else:
                        with os.scandir(item) as entries:
                            found = [e.name for e in entries if e.is_symlink() and _is_safe_name(e.name)]
                finally:
                    os.close(item)
        if found is None:
            if not any((kind, uuid) in writes.records for writes in buffered):
                return None
            found = []
        for writes in buffered:
            found.extend(child for child in writes.children(kind, uuid) if child not in found)
        return found

    def _link(self, kind: str, uuid: str, child_uuid: str) -> None:
        if not _is_safe_name(child_uuid):
            raise ValueError(f"uuid {child_uuid!r} cannot be used as a file name")
        writes = self._current().writes
        assert writes is not None, "a link outside a write call"
        writes.links.append((kind, uuid, child_uuid))

    def _book_uuids(self) -> list[str]:
        call = self._current()
        books = self._kind_dir(base.BOOK, create=False)
        found: list[str] = []
        if books is not None:
            directory = self._path_of(_SUBDIRS[base.BOOK])
            with _storage_errors(f"list {directory!r}"), os.scandir(books) as entries:
                for entry in entries:
                    if not _is_safe_name(entry.name):
                        continue
                    if entry.is_symlink():
                        raise _refused(os.path.join(directory, entry.name), OSError(errno.ELOOP, "symbolic link"))
                    if entry.is_dir(follow_symlinks=False):
                        found.append(entry.name)
        for writes in (call.overlay, call.writes):
            if writes is not None:
                found.extend(uuid for kind, uuid in writes.records if kind == base.BOOK and uuid not in found)
        return found

    def _discard(self, parent: int, name: str) -> None:
        """Rename ``name`` (under ``parent``) into the trash (atomic), then remove it."""
        call = self._current()
        assert call.root is not None
        trash = self._open_dir(call.root, _TRASH, self._path_of(_TRASH), create=True)
        assert trash is not None
        try:
            doomed = uuidlib.uuid4().hex
            try:
                os.rename(name, doomed, src_dir_fd=parent, dst_dir_fd=trash)
            except FileNotFoundError:
                return
            self._sync(parent)
            shutil.rmtree(doomed, ignore_errors=True, dir_fd=trash)
        finally:
            os.close(trash)

    def _flush(self) -> None:
        """Writes what the call buffered so far (a deletion comes after the writes before it)."""
        writes = self._current().writes
        if writes:
            self._commit(writes)
            writes.records.clear()
            writes.links.clear()

    def _delete(self, kind: str, uuid: str) -> None:
        if not _is_safe_name(uuid):
            return
        self._flush()
        with _storage_errors(f"delete {_WHAT[kind]} {uuid!r}"):
            parent = self._kind_dir(kind, create=False)
            if parent is not None:
                self._discard(parent, uuid)

    def _delete_all(self) -> None:
        self._flush()
        call = self._current()
        assert call.root is not None
        with _storage_errors(f"clear {self._root!r}"):
            for fd in call.dirs.values():
                os.close(fd)
            call.dirs.clear()
            for kind in _SUBDIRS:
                self._discard(call.root, _SUBDIRS[kind])
            for kind in _LAYOUT:
                self._kind_dir(kind, create=True)
