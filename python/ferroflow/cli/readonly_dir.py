"""A ``dir://`` store opened read-only, for the commands that only read (``show``, ``plan``, ...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ferroflow import exceptions
from ferroflow.persistence.backends import impl_dir

__all__ = ["ReadOnlyDirBackend"]


class ReadOnlyDirBackend(impl_dir.DirBackend):
    """A ``dir://`` store that is only read: its connections never create, replay or write
    anything (a write is a StorageFailure), and `upgrade` only checks the layout is there."""

    read_only = True

    def get_connection(self) -> impl_dir.DirConnection:
        return _ReadOnlyDirConnection(self)


class _ReadOnlyDirConnection(impl_dir.DirConnection):
    def upgrade(self) -> None:
        self.validate()

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        if write:
            raise exceptions.StorageFailure(
                f"dir:// store {self._root!r} is opened read-only: nothing may be written to it"
            )
        with super()._locked(write=False):
            yield
