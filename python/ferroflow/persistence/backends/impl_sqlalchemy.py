"""TaskFlow's SQL backend class (``taskflow.persistence.backends.impl_sqlalchemy``).

TaskFlow serves ``sqlite://``, ``mysql://`` and ``postgresql://`` through SQLAlchemy. ferroflow
stores SQLite natively (`ferroflow.persistence.backends.impl_sqlite`) and PostgreSQL through its
own backend; ``SQLAlchemyBackend(conf)`` gives the backend of the URI's database, and every
ferroflow SQL backend is a ``SQLAlchemyBackend`` for ``isinstance``. MySQL is not supported.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from ferroflow import exceptions as exc
from ferroflow.persistence import base
from ferroflow.persistence.backends import _load_object, parse_conf
from ferroflow.persistence.backends.impl_sqlite import SQLiteBackend

__all__ = ["SQLAlchemyBackend"]

_SQL_BACKENDS = {
    "sqlite": "ferroflow.persistence.backends.impl_sqlite:SQLiteBackend",
    "postgresql": "ferroflow.persistence.backends.impl_postgres:PostgresBackend",
}


class SQLAlchemyBackend(abc.ABC):  # noqa: B024 (constructed through __new__, never subclassed)
    """``SQLAlchemyBackend(conf, engine=None)``: the ferroflow backend serving ``conf``'s SQL URI.

    ``engine`` (a SQLAlchemy engine in TaskFlow) is not supported: ferroflow opens its own store.
    """

    def __new__(cls, conf: str | Mapping[str, Any], engine: Any = None) -> base.Backend:  # type: ignore[misc]
        if engine is not None:
            raise ValueError(
                "SQLAlchemyBackend(engine=...) is not supported: ferroflow opens the database itself; "
                "pass only the configuration (its 'connection' URI)"
            )
        scheme, conf_dict = parse_conf(conf)
        if scheme not in _SQL_BACKENDS:
            raise exc.NotFound(
                f"SQLAlchemyBackend serves {', '.join(sorted(_SQL_BACKENDS))} URIs, not "
                f"{conf_dict['connection']!r} (ferroflow has no {scheme} backend)"
            )
        if scheme == "sqlite":
            return SQLiteBackend(conf_dict)
        return _load_object(_SQL_BACKENDS[scheme])(conf_dict)

    @classmethod
    def __subclasshook__(cls, other: type) -> bool:
        # By name, so that checking a backend never imports the PostgreSQL driver.
        homes = set(_SQL_BACKENDS.values())
        return any(f"{k.__module__}:{k.__qualname__}" in homes for k in other.__mro__) or NotImplemented
