"""Fixtures shared by the test modules: `durable_backend` runs a test once per durable backend
(`store_cases.DURABLE_BACKENDS`; see there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferroflow.persistence import backends
from store_cases import DURABLE_BACKENDS, StoreCase, store_path


@pytest.fixture(params=DURABLE_BACKENDS, ids=[case.name for case in DURABLE_BACKENDS])
def durable_backend(request: pytest.FixtureRequest) -> StoreCase:
    """The durable backend a test runs against (each test runs once per backend)."""
    return request.param


@pytest.fixture
def sqlite_store() -> StoreCase:
    """The SQLite store alone, for tests of what they drive on it only (the ``ferroflow`` command
    line takes every durable backend: ``tests/test_cli_backends.py``)."""
    return next(case for case in DURABLE_BACKENDS if case.name == "sqlite")


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Any]:
    """The backend of a new SQLite store, ``store.db`` in the test's directory, its schema made;
    closed after the test."""
    backend = backends.fetch(f"sqlite:///{tmp_path / 'store.db'}")
    with backend.get_connection() as conn:
        conn.upgrade()
    yield backend
    backend.close()


__all__ = ["DURABLE_BACKENDS", "StoreCase", "durable_backend", "sqlite_backend", "sqlite_store", "store_path"]
