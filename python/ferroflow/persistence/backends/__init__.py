"""Find and create persistence backends by name or URI (``taskflow.persistence.backends``).

A backend is selected by the scheme of a URI (``memory://``, ``dir:///var/lib/flows``,
``sqlite:///flows.db``) or by ``conf['connection']``. A backend class that lists the conf keys it
reads (its own ``conf_keys`` attribute) has every key of its conf checked (URI query parameters
included): a misspelled one (``?durabilty=fsync``) is a ValueError naming it and the closest
valid key, never silently ignored.  The built-in schemes are looked up in a built-in table (as
the engines are: no scan of the installed packages' metadata, which costs tens of milliseconds
at every command's start, and a source checkout without installed metadata works); any other
scheme among the entry points of the group ``ferroflow.persistence``, so third-party packages can
add their own (they cannot take over a built-in scheme).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ferroflow import codec
from ferroflow import exceptions as exc
from ferroflow.persistence import base

if TYPE_CHECKING:
    from importlib import metadata

__all__ = ["BACKEND_NAMESPACE", "COMMON_CONF_KEYS", "backend", "check_names", "fetch", "parse_conf"]

#: The entry-point group (not a module name) backends register under.
BACKEND_NAMESPACE = "ferroflow.persistence"

# Used when no entry point of the default group has the name (e.g. running from a checkout).
_BUILTIN: dict[str, str] = {
    "memory": "ferroflow.persistence.backends.impl_memory:MemoryBackend",
    "dir": "ferroflow.persistence.backends.impl_dir:DirBackend",
    "file": "ferroflow.persistence.backends.impl_dir:DirBackend",
    "sqlite": "ferroflow.persistence.backends.impl_sqlite:SQLiteBackend",
    "postgresql": "ferroflow.persistence.backends.impl_postgres:PostgresBackend",
    "postgres": "ferroflow.persistence.backends.impl_postgres:PostgresBackend",
}


#: Conf keys every backend takes besides its own ``conf_keys``: ``connection``, the storage
#: ``codec`` (checked by `fetch`), and what `parse_conf` merges from a URI's user, password, host
#: and port.
COMMON_CONF_KEYS = frozenset({"connection", "codec", "username", "password", "hostname", "port"})


def check_names(given: Any, known: Any, what: str, where: str = "") -> None:
    """Raises ValueError naming every name of ``given`` not in ``known``, each with the closest
    known one (`difflib.get_close_matches`), then the valid names; ``what`` is the kind of name
    (``"engine option"``), ``where`` what it was given to (``" for backend 'sqlite:///x.db'"``)."""
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    valid = sorted(known)
    shown = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), valid, n=1)
        shown.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    plural = "s" if len(unknown) > 1 else ""
    raise ValueError(f"Unknown {what}{plural} {', '.join(shown)}{where}; valid {what}s: {', '.join(valid)}")


def check_conf(backend_class: Any, conf: Mapping[str, Any]) -> None:
    """Refuses conf keys ``backend_class`` does not read, when the class itself lists them in
    ``conf_keys`` (a backend that does not, a subclass that inherits the list included, may read
    keys of its own: it is not checked)."""
    own = vars(backend_class).get("conf_keys")
    if own is None:
        return
    check_names(conf, COMMON_CONF_KEYS | frozenset(own), "conf key", f" for backend {conf.get('connection')!r}")


def _looks_like_uri(value: str) -> bool:
    scheme, sep, _ = value.partition(":")
    return bool(sep) and scheme[:1].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)


def _merge_uri(uri: str, conf: dict[str, Any]) -> None:
    """Merge user, password, host, port and query parameters of ``uri`` into ``conf``.

    Keys already in ``conf`` win. The path stays in ``conf['connection']`` for the backend to read
    (see :func:`ferroflow.persistence.base.path_from_conf`).
    """
    parts = urlsplit(uri)
    hostname = parts.hostname
    if parts.port is not None and hostname:
        hostname = f"{hostname}:{parts.port}"
    for key, value in (
        ("username", parts.username),
        ("password", parts.password),
        ("port", parts.port),
        ("hostname", hostname),
    ):
        if value is not None and value != "":
            conf.setdefault(key, value)
    params: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    for key, value in params.items():
        conf.setdefault(key, value)


def parse_conf(conf: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``conf`` (a URI, a backend name or a dict with ``'connection'``) -> ``(scheme, conf dict)``.

    ``'postgresql+psycopg://...'`` selects ``postgresql``. The returned dict is a copy.
    """
    if isinstance(conf, str):
        conf = {"connection": conf}
    elif not isinstance(conf, Mapping):
        raise TypeError(f"Expected a URI string or a configuration dict, not {type(conf).__name__}")
    conf = dict(conf)
    try:
        connection = conf["connection"]
    except KeyError:
        raise ValueError("Backend configuration needs a 'connection' key (a URI or a backend name)") from None
    if not isinstance(connection, str) or not connection:
        raise ValueError(f"Backend 'connection' must be a non-empty string, not {connection!r}")
    if _looks_like_uri(connection):
        scheme = connection.split(":", 1)[0]
        try:
            _merge_uri(connection, conf)
        except ValueError as e:  # e.g. a non-numeric port
            raise ValueError(f"Invalid backend URI {connection!r}: {e}") from None
    else:
        scheme = connection
    return scheme.split("+", 1)[0].lower(), conf


def _entry_points(namespace: str) -> dict[str, metadata.EntryPoint]:
    from importlib import metadata  # (only for schemes that are not built in: see the module doc)

    found: dict[str, metadata.EntryPoint] = {}
    for entry_point in metadata.entry_points(group=namespace):
        found.setdefault(entry_point.name, entry_point)  # first on sys.path wins
    return found


def _load_object(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for name in filter(None, attribute.split(".")):
        obj = getattr(obj, name)
    return obj


def _find_backend_class(scheme: str, namespace: str) -> Any:
    builtin = _BUILTIN if namespace == BACKEND_NAMESPACE else {}
    entry_points = {} if scheme in builtin else _entry_points(namespace)
    if scheme in builtin:
        target, load = builtin[scheme], lambda: _load_object(builtin[scheme])
    elif scheme in entry_points:
        target, load = entry_points[scheme].value, entry_points[scheme].load
    else:
        known = ", ".join(sorted(set(entry_points) | set(builtin))) or "none"
        raise exc.NotFound(f"Could not find backend '{scheme}' in '{namespace}'; known backends: {known}")
    try:
        return load()
    except (ImportError, AttributeError) as e:
        raise exc.NotFound(f"Could not load backend '{scheme}' ({target}): {e}") from e


def fetch(conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any) -> base.Backend:
    """Create the backend ``conf`` names (a URI, or a dict with ``'connection'`` plus options).

    The URI's user, password, host, port and query parameters are merged into the configuration
    (explicit keys win); ``kwargs`` are passed to the backend's constructor. Raises
    :class:`~ferroflow.exceptions.NotFound` for an unknown scheme, and ValueError for a conf key
    (or URI query parameter) the backend does not know (see `check_conf`).

    >>> fetch('memory://')                                          # doctest: +SKIP
    >>> fetch('dir:///var/lib/flows')                               # doctest: +SKIP
    >>> fetch({'connection': 'dir', 'path': '/var/lib/flows'})      # doctest: +SKIP
    """
    scheme, conf_dict = parse_conf(conf)
    codec.check_storage_codec(conf_dict.get("codec"), f"backend {conf_dict['connection']!r}")
    backend_class = _find_backend_class(scheme, namespace)
    check_conf(backend_class, conf_dict)
    return backend_class(conf_dict, **kwargs)


@contextlib.contextmanager
def backend(conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any) -> Iterator[base.Backend]:
    """Fetch a backend, :meth:`~base.Connection.upgrade` its storage, yield it, then close it."""
    with contextlib.closing(fetch(conf, namespace=namespace, **kwargs)) as be:
        with contextlib.closing(be.get_connection()) as conn:
            conn.upgrade()
        yield be
