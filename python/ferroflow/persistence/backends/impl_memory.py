"""In-process, non-durable backend (``memory://``), kept in a `FakeFilesystem` (``backend.memory``).

The data lives in TaskFlow's path-based layout, so programs that print or walk a memory backend
(``backend.memory.pformat()``, ``backend.memory.ls_r(...)``) see what TaskFlow shows them::

    /books/<book uuid>                  the logbook's dict
    /books/<book uuid>/<flow uuid>      link to /flow_details/<flow uuid>
    /flow_details/<flow uuid>           the flow detail's dict (name, meta, state, uuid)
    /flow_details/<flow uuid>/<atom>    link to /atom_details/<atom uuid>
    /atom_details/<atom uuid>           {"atom": the atom detail's dict, "type": "TASK_DETAIL"...}

What ferroflow keeps besides TaskFlow's records (an atom's resume record and first-save order,
flow leases) is held beside the tree, not in it.

Records are copied in and out (``copy.deepcopy`` by default; ``deep_copy=False`` makes shallow
copies, as TaskFlow's option does), so objects handed to or returned by a connection never
alias what is stored. Results need not be serializable, only copyable.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ferroflow import exceptions
from ferroflow.persistence import base

__all__ = ["FakeFilesystem", "MemoryBackend", "MemoryConnection"]

_SEP = "/"


def _as_bool(value: Any) -> bool:
    # URI query parameters arrive as strings.
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class _Inode:
    """One entry: a value, ordered children by name, and an optional link target (a path)."""

    __slots__ = ("children", "name", "parent", "path", "target", "value")

    def __init__(self, name: str, path: str, parent: _Inode | None, value: Any = None) -> None:
        self.name = name
        self.path = path
        self.parent = parent
        self.value = value
        self.target: str | None = None
        self.children: dict[str, _Inode] = {}

    def subtree(self) -> Iterator[_Inode]:
        """Every entry below this one, breadth first; each entry's children newest first."""
        level = [self]
        while level:
            below: list[_Inode] = []
            for inode in level:
                below.extend(reversed(inode.children.values()))
            yield from below
            level = below


class FakeFilesystem:
    """A tree of values addressed by POSIX-style absolute paths, kept in memory.

    Every entry (but the root, ``/``) has a value (``None`` until one is set) and may have children,
    like a directory that is also a file. An entry may instead be a *link* to another path
    (:meth:`symlink`): reading it reads the target (a link to a missing path reads as missing, a
    link loop is a ``ValueError``). Values are copied in and out (``copy.deepcopy``, or
    ``copy.copy`` with ``deep_copy=False``), so what a caller holds never aliases what is stored.

    Paths are always ``/``-separated, whatever the platform (use ``posixpath``, not ``os.path``,
    to build them), and are normalised (``/a/./b/../c`` is ``/a/c``); a relative or empty path
    is a ``ValueError``, a missing one `ferroflow.exceptions.NotFound`.

    Listings (:meth:`ls`) give children in the order they were made; :meth:`ls_r` goes breadth
    first, level by level, listing each entry's children newest first (as TaskFlow's does). A
    filesystem is not safe to change from several threads at once (`MemoryBackend` locks around it);
    reading from several threads is.

    >>> fs = FakeFilesystem()
    >>> fs.ensure_path("/a/b")
    >>> fs["/a/b/c"] = {"x": 1}
    >>> fs["/a/b/c"]
    {'x': 1}
    >>> fs.symlink("/a/b/c", "/link")
    >>> fs["/link"]
    {'x': 1}
    >>> fs.ls("/a")
    ['b']
    >>> print(fs.pformat())
    /
    |__a
    |  |__b
    |     |__c
    |__link (link to /a/b/c)
    """

    #: The path of the root entry.
    root_path = _SEP

    def __init__(self, deep_copy: bool = True) -> None:
        self._copy: Callable[[Any], Any] = copy.deepcopy if deep_copy else copy.copy
        self._root = _Inode(_SEP, _SEP, None)
        #: Every entry by its normalised path (the root included).
        self._by_path: dict[str, _Inode] = {_SEP: self._root}

    # -- paths -----------------------------------------------------------------------------------
    @classmethod
    def normpath(cls, path: str) -> str:
        """``path`` normalised: no empty, ``.`` or ``..`` pieces, no trailing ``/``.

        :raises ValueError: the path is empty or not absolute.
        """
        if not path:
            raise ValueError("an empty path names nothing in the filesystem")
        if not path.startswith(_SEP):
            raise ValueError(f"filesystem paths are absolute (they start with {_SEP!r}): {path!r} is not")
        pieces: list[str] = []
        for piece in path.split(_SEP):
            if piece == "..":
                if pieces:
                    pieces.pop()
            elif piece and piece != ".":
                pieces.append(piece)
        return _SEP + _SEP.join(pieces)

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        """``(parent path, last piece)`` of a path (``("/", "")`` for the root)."""
        head, _, tail = path.rpartition(_SEP)
        return head or _SEP, tail

    @staticmethod
    def join(*pieces: str) -> str:
        """The pieces joined with ``/`` (no normalisation)."""
        return _SEP.join(pieces)

    def _inode(self, path: str) -> _Inode:
        inode = self._by_path.get(path)
        if inode is None:
            inode = self._by_path.get(self.normpath(path))
            if inode is None:
                raise exceptions.NotFound(f"Path '{path}' not found")
        return inode

    def _add(self, parent: _Inode, name: str, value: Any = None) -> _Inode:
        path = parent.path + name if parent is self._root else f"{parent.path}{_SEP}{name}"
        inode = _Inode(name, path, parent, value)
        parent.children[name] = inode
        self._by_path[path] = inode
        return inode

    def _parent_for(self, path: str) -> tuple[_Inode, str]:
        """The existing parent of a normalised path and the new entry's name."""
        parent_path, name = self.split(path)
        return self._inode(parent_path), name

    # -- reading ---------------------------------------------------------------------------------
    def __getitem__(self, path: str) -> Any:
        """The value at ``path`` (links followed), a copy.

        :raises NotFound: nothing is there (or a link's target is missing).
        :raises ValueError: links loop.
        """
        inode = self._inode(path)
        seen: list[str] = []
        while inode.target is not None:
            if inode.target in seen or inode.target == inode.path:
                raise ValueError(f"links loop at '{path}': {' -> '.join([inode.path, *seen, inode.target])}")
            seen.append(inode.target)
            inode = self._inode(inode.target)
        return self._copy(inode.value)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at ``path`` (a copy), or ``default`` when nothing is there."""
        try:
            return self[path]
        except exceptions.NotFound:
            return default

    def __contains__(self, path: str) -> bool:
        """Whether an entry exists at ``path`` (a link counts, even to a missing target)."""
        try:
            self._inode(path)
        except exceptions.NotFound:
            return False
        return True

    def ls(self, path: str, absolute: bool = False) -> list[str]:
        """The children of ``path`` in the order they were made: names, or absolute paths."""
        inode = self._inode(path)
        if absolute:
            return [child.path for child in inode.children.values()]
        return list(inode.children)

    def ls_r(self, path: str, absolute: bool = False) -> list[str]:
        """Everything below ``path``, breadth first: absolute paths, or paths relative to it."""
        inode = self._inode(path)
        if absolute:
            return [entry.path for entry in inode.subtree()]
        cut = len(inode.path) + (0 if inode is self._root else 1)
        return [entry.path[cut:] for entry in inode.subtree()]

    def pformat(self) -> str:
        """The tree drawn one entry a line (links show their target), as TaskFlow draws it."""
        lines = [self._root.name]

        def draw(inode: _Inode, indent: str) -> None:
            children = list(inode.children.values())
            for i, child in enumerate(children):
                last = i == len(children) - 1
                label = child.name if child.target is None else f"{child.name} (link to {child.target})"
                lines.append(f"{indent}|__{label}")
                draw(child, indent + ("   " if last else "|  "))

        draw(self._root, "")
        return "\n".join(lines)

    # -- writing ---------------------------------------------------------------------------------
    def __setitem__(self, path: str, value: Any) -> None:
        """Sets the value at ``path`` (a copy); its parent must exist.

        :raises NotFound: the parent path does not exist.
        """
        value = self._copy(value)
        inode = self._by_path.get(path)  # (a path already normalised, the common case)
        if inode is None:
            path = self.normpath(path)
            inode = self._by_path.get(path)
        if inode is not None:
            inode.value = value
            return
        parent, name = self._parent_for(path)
        self._add(parent, name, value)

    def ensure_path(self, path: str) -> None:
        """Makes ``path`` and the entries above it, where missing (their value ``None``)."""
        inode = self._root
        for name in self.normpath(path).split(_SEP)[1:]:
            if not name:
                continue
            child = inode.children.get(name)
            inode = child if child is not None else self._add(inode, name)

    def symlink(self, src_path: str, dest_path: str) -> None:
        """Makes ``dest_path`` a link to ``src_path`` (an existing entry there becomes the link)."""
        src_path = self.normpath(src_path)
        dest_path = self.normpath(dest_path)
        inode = self._by_path.get(dest_path)
        if inode is None:
            parent, name = self._parent_for(dest_path)
            inode = self._add(parent, name)
        inode.target = src_path

    def delete(self, path: str, recursive: bool = False) -> None:
        """Removes ``path`` (with ``recursive``, everything below it too; the root itself stays).

        :raises ValueError: the entry has children and ``recursive`` is false, or it is the root
            and ``recursive`` is false.
        :raises NotFound: nothing is there.
        """
        inode = self._inode(path)
        if not recursive:
            if inode is self._root:
                raise ValueError(f"the root '{_SEP}' cannot be deleted")
            if inode.children:
                raise ValueError(f"'{inode.path}' has {len(inode.children)} children: delete them first")
        for entry in inode.subtree():
            self._by_path.pop(entry.path, None)
        if inode is self._root:
            inode.children.clear()
            return
        self._by_path.pop(inode.path, None)
        assert inode.parent is not None
        del inode.parent.children[inode.name]
        inode.parent = None

    def __delitem__(self, path: str) -> None:
        """Removes ``path`` and everything below it."""
        self.delete(path, recursive=True)

    def clear(self) -> None:
        """Removes everything but the root."""
        self._root.children.clear()
        self._by_path = {_SEP: self._root}


#: Where each kind of record lives in the filesystem.
_DIRS = {base.BOOK: "/books", base.FLOW: "/flow_details", base.ATOM: "/atom_details"}
#: What a book's and a flow's children link to.
_CHILD_KIND = {base.BOOK: base.FLOW, base.FLOW: base.ATOM}
#: Keys of an atom record ferroflow keeps beside TaskFlow's layout.
_EXTRAS = (base.RESUME, base.ORDER)


class MemoryBackend(base.Backend):
    """A backend whose data lives in this process only; conf key ``deep_copy`` (default true).

    ``memory`` is the `FakeFilesystem` holding it, in TaskFlow's layout (see the module).
    """

    #: The conf keys it reads (besides those every backend takes): others are refused by
    #: `ferroflow.persistence.backends.fetch`.
    conf_keys = frozenset({"deep_copy"})

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf)
        deep = _as_bool(self._conf.get("deep_copy", True))
        self._copy: Callable[[Any], Any] = copy.deepcopy if deep else copy.copy
        #: The books, flow details and atom details, as TaskFlow's memory backend keeps them.
        self.memory = FakeFilesystem(deep_copy=deep)
        #: Per atom uuid, what its record holds besides TaskFlow's keys (resume record, order).
        self._extras: dict[str, dict[str, Any]] = {}
        #: Flow leases, by flow uuid.
        self._leases: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._make_dirs()

    def _make_dirs(self) -> None:
        for path in _DIRS.values():
            self.memory.ensure_path(path)

    def get_connection(self) -> MemoryConnection:
        return MemoryConnection(self)

    def close(self) -> None:
        """Nothing to release; the data stays for connections made later."""


class MemoryConnection(base.RecordConnection):
    """A connection to a :class:`MemoryBackend`; all connections share the backend's data."""

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(backend)
        self._mem = backend
        self._fs = backend.memory
        self._copy = backend._copy

    def upgrade(self) -> None:
        """Makes the three directories (should a program have deleted them)."""
        with self._locked(write=True):
            self._mem._make_dirs()

    def validate(self) -> None:
        """Always usable."""

    def close(self) -> None:
        """Nothing to release."""

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        # One lock for readers and writers: every call is short and in-process.
        with self._mem.lock:
            yield

    def _read(self, kind: str, uuid: str) -> dict[str, Any] | None:
        if kind == base.LEASE:
            lease = self._mem._leases.get(uuid)
            return None if lease is None else dict(lease)
        try:
            record = self._fs[f"{_DIRS[kind]}/{uuid}"]
        except exceptions.NotFound:
            return None
        if kind == base.ATOM:
            extras = self._mem._extras.get(uuid)
            if extras:
                record.update(extras)
        return record

    def _write(self, kind: str, uuid: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        if record == old:
            return
        if kind == base.LEASE:
            self._mem._leases[uuid] = dict(record)
            return
        if kind == base.ATOM:
            extras = {key: record[key] for key in _EXTRAS if key in record}
            if extras:
                record = {key: value for key, value in record.items() if key not in extras}
                self._mem._extras[uuid] = extras
            else:
                self._mem._extras.pop(uuid, None)
        self._fs[f"{_DIRS[kind]}/{uuid}"] = record

    def _children(self, kind: str, uuid: str) -> list[str] | None:
        try:
            return self._fs.ls(f"{_DIRS[kind]}/{uuid}")
        except exceptions.NotFound:
            return None

    def _link(self, kind: str, uuid: str, child_uuid: str) -> None:
        self._fs.symlink(f"{_DIRS[_CHILD_KIND[kind]]}/{child_uuid}", f"{_DIRS[kind]}/{uuid}/{child_uuid}")

    def _book_uuids(self) -> list[str]:
        return self._fs.ls(_DIRS[base.BOOK])

    def _delete(self, kind: str, uuid: str) -> None:
        if kind == base.LEASE:
            self._mem._leases.pop(uuid, None)
            return
        if kind == base.ATOM:
            self._mem._extras.pop(uuid, None)
        with contextlib.suppress(exceptions.NotFound):
            del self._fs[f"{_DIRS[kind]}/{uuid}"]

    def _delete_all(self) -> None:
        self._fs.clear()
        self._mem._extras.clear()
        self._mem._leases.clear()
        self._mem._make_dirs()
