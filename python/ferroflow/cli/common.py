"""What the commands share: errors and exit codes, the database, flows in it, tables, factories."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl

from ferroflow import states
from ferroflow.cli import ahead
from ferroflow.cli.ahead import DB_ENV, DEFAULT_DB

#: Exit status: the command did what was asked (the flow ended SUCCESS).
EXIT_OK = 0
#: Exit status: a flow failed, was reverted, or could not be run.
EXIT_FAILED = 1
#: Exit status: the command line was wrong (bad arguments, no such database or flow).
EXIT_USAGE = 2

#: Flow states in which a flow has ended; any other state means its engine stopped part way.
FINISHED_STATES = frozenset({states.SUCCESS, states.REVERTED, states.FAILURE})


class UsageError(Exception):
    """The command line is wrong: printed as one line, exit status 2."""


class CommandError(Exception):
    """The command could not do its work: printed as one line, exit status 1."""


# -- arguments ---------------------------------------------------------------------------------


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH|URI",
        help=f"the store: a SQLite database file (or its sqlite:/// URI), a dir:///path directory or a "
        f"postgresql://user@host:port/dbname database (default: ${DB_ENV}, else ./{DEFAULT_DB})",
    )


def add_traceback_argument(parser: argparse.ArgumentParser) -> None:
    """``--traceback`` after the subcommand too (it never resets one given before it)."""
    parser.add_argument(
        "--traceback", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of errors"
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("serial", "parallel"),
        help="run atoms one at a time (serial, the default) or on threads (parallel)",
    )
    parser.add_argument(
        "--workers", type=positive_int, metavar="N", help="threads of the parallel engine (implies --engine parallel)"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress line")


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust",
        action="append",
        metavar="MODULE",
        help="a module (and its submodules) whose code the saved flow may name: its factory, the revert "
        "references of removed atoms (repeatable; replaces $FERROFLOW_TRUSTED_MODULES and the default, the "
        "package of the saved factory; the standard library is never trusted)",
    )


def add_change_arguments(parser: argparse.ArgumentParser) -> None:
    """How a resume treats code that changed since the flow was saved (``resume``, ``plan``,
    ``rewind``): the engine options ``on_version_change``, ``provider_change`` and ``migrations``."""
    from ferroflow import migrations

    parser.add_argument(
        "--on-version-change",
        choices=migrations.VERSION_POLICIES,
        help="what to do with a completed atom whose version changed, for atoms that set no policy "
        f"(default: {migrations.DEFAULT_VERSION_POLICY}, keep its saved result)",
    )
    parser.add_argument(
        "--provider-change",
        choices=migrations.PROVIDER_POLICIES,
        help="what to do with a completed atom whose inputs now come from other atoms "
        f"(default: {migrations.DEFAULT_PROVIDER_POLICY})",
    )
    parser.add_argument(
        "--migrations",
        metavar="MODULE:ATTR",
        help="a list of ferroflow.migrations Rename/Split/Merge in your code, applied to the saved atoms "
        "first (like mypkg.migrations:MIGRATIONS; the module is imported from the working directory)",
    )


def change_options(args: argparse.Namespace) -> dict[str, Any]:
    """Engine options from `add_change_arguments`."""
    options: dict[str, Any] = {}
    if args.on_version_change:
        options["on_version_change"] = args.on_version_change
    if args.provider_change:
        options["provider_change"] = args.provider_change
    if args.migrations:
        options["migrations"] = import_migrations(args.migrations)
    return options


def trust_options(args: argparse.Namespace) -> dict[str, Any]:
    """``trusted_modules=`` for `ferroflow.engines.load_from_detail` from ``--trust`` (none given:
    ``$FERROFLOW_TRUSTED_MODULES``, else the default)."""
    from ferroflow import trust

    if not args.trust:
        return {}
    try:
        return {"trusted_modules": trust.TrustedModules.parse(args.trust, trust.CLI_FLAG)}
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """``engine=`` and options for `ferroflow.engines.load*` from ``--engine`` / ``--workers``."""
    kind = args.engine
    if args.workers is not None:
        if kind == "serial":
            raise UsageError("--workers needs the parallel engine; drop --engine serial")
        return {"engine": "parallel", "max_workers": args.workers}
    return {"engine": kind or "serial"}


# -- the database ------------------------------------------------------------------------------


#: The store the running command uses, once known: error messages name it (a SQLite file's
#: path, ``dir:///path``, a PostgreSQL URI without its password).
current_db: str | None = None

#: ``--db`` URI schemes, by the kind of store they name.
_SCHEMES = {"sqlite": "sqlite", "dir": "dir", "file": "dir", "postgresql": "postgresql", "postgres": "postgresql"}
_ACCEPTED = "a SQLite file path, or a sqlite:///path, dir:///path or postgresql://user@host:port/dbname URI"
#: The directories of a ``dir://`` store's layout.
_DIR_LAYOUT = ("books", "flow_details", "atom_details")


@dataclass(frozen=True)
class Store:
    """The store ``--db`` (else ``$FERROFLOW_DB``, else the default) names."""

    #: ``'sqlite'``, ``'dir'`` or ``'postgresql'``.
    kind: str
    #: What `ferroflow.persistence.backends.fetch` takes.
    uri: str
    #: As messages name it (never with a password): a SQLite file's path, ``dir:///path``, a
    #: PostgreSQL URI.
    label: str
    #: The SQLite file or the ``dir://`` directory (``None`` for PostgreSQL).
    path: Path | None = None

    def __str__(self) -> str:
        return self.label


def _db_text(given: str | None) -> str:
    return given or os.environ.get(DB_ENV) or DEFAULT_DB


def _origin(given: str | None) -> str:
    return "--db" if given else (f"${DB_ENV}" if os.environ.get(DB_ENV) else "the default database")


def locate_store(given: str | None, must_exist: bool) -> Store:
    """The store from ``--db``, ``$FERROFLOW_DB`` or the default: a SQLite file (a path or a
    ``sqlite:///`` URI), a ``dir://`` directory or a PostgreSQL database. With ``must_exist``, a
    SQLite file or ``dir://`` directory that is not there is a UsageError (a PostgreSQL database is
    checked when opened: `open_store`); without, the directory that will hold it must exist."""
    global current_db
    text = _db_text(given)
    scheme = text.partition("://")[0].lower().split("+", 1)[0] if "://" in text else ""
    if not scheme or scheme == "sqlite":
        path = db_path(given, must_exist)
        query = text.partition("?")[2] if scheme else ""  # (options: ?durability=batch...)
        return Store("sqlite", db_uri(path) + (f"?{query}" if query else ""), str(path), path)
    kind = _SCHEMES.get(scheme)
    if kind is None:
        shown = _without_password(text)
        if scheme == "memory":
            raise UsageError(
                f"a memory:// store lives and dies with one process, so the command line cannot use it ({shown}); "
                f"give {_ACCEPTED}"
            )
        raise UsageError(f"the command line takes {_ACCEPTED}, not {shown!r}")
    if kind == "dir":
        return _locate_dir(text, given, must_exist)
    return _locate_postgres(text)


def _locate_dir(text: str, given: str | None, must_exist: bool) -> Store:
    global current_db
    from ferroflow.persistence import base

    raw = base.path_from_conf({"connection": text.partition("?")[0]}) or ""
    if not raw:
        raise UsageError(f"no path in the URI {text!r} (like dir:///var/lib/flows or dir://flows)")
    path = Path(raw).expanduser().absolute()
    label = f"dir://{path}"
    current_db = label
    if must_exist:
        if not path.is_dir():
            raise UsageError(
                f"no store at {label} ({_origin(given)}): directory {path} does not exist; "
                f"give an existing store with --db URI or ${DB_ENV}"
            )
        missing = [name for name in _DIR_LAYOUT if not (path / name).is_dir()]
        if missing:
            raise UsageError(
                f"no store at {label} ({_origin(given)}): directory {path} is not a ferroflow dir:// store "
                f"(it has no {', '.join(name + '/' for name in missing)})"
            )
    elif not path.parent.is_dir():
        raise UsageError(f"cannot create the store {label}: directory {path.parent} does not exist")
    query = text.partition("?")[2]
    return Store("dir", f"dir://{path}" + (f"?{query}" if query else ""), label, path)


def _locate_postgres(text: str) -> Store:
    global current_db
    from ferroflow import exceptions
    from ferroflow.persistence import backends

    current_db = _without_password(text)
    try:
        backend = backends.fetch(text)
    except ValueError as exc:
        raise UsageError(f"--db {current_db}: {_scrub(str(exc), text)}") from None
    except exceptions.NotFound as exc:  # psycopg is not installed
        raise CommandError(f"cannot use the PostgreSQL store {current_db}: {exc}") from None
    try:
        current_db = store_label(backend)
    finally:
        backend.close()
    return Store("postgresql", text, current_db)


def _without_password(uri: str) -> str:
    """``uri`` with its password (if any) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if not password:
        return uri
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _scrub(message: str, uri: str) -> str:
    """``message`` with ``uri``'s password (if any) hidden."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(uri).password
    except ValueError:
        password = None
    return message.replace(password, "***") if password else message


def db_path(given: str | None, must_exist: bool) -> Path:
    """The absolute SQLite database path from ``--db``, ``$FERROFLOW_DB`` or the default (a path,
    or a ``sqlite:///`` URI); `locate_store` takes the other stores too."""
    global current_db
    text = _db_text(given)
    if "://" in text:
        scheme = text.partition("://")[0]
        if scheme.lower().split("+", 1)[0] != "sqlite":
            raise UsageError(f"this command works on SQLite stores: give a file path or a sqlite:/// URI, not {text!r}")
        from ferroflow.persistence import base

        text = base.path_from_conf({"connection": text.partition("?")[0]}) or ""
        if not text:
            raise UsageError(f"no path in the URI {given!r} (like sqlite:///flows.db or sqlite:////abs/flows.db)")
    path = Path(text).expanduser().absolute()
    current_db = str(path)
    if must_exist and not path.is_file():
        raise UsageError(f"no database at {path} ({_origin(given)}); give its path with --db PATH or ${DB_ENV}")
    if not path.parent.is_dir():
        raise UsageError(f"cannot create the database {path}: directory {path.parent} does not exist")
    return path


def db_uri(path: Path) -> str:
    """The ``sqlite:///`` URI of an absolute path."""
    return f"sqlite:///{path}"


@contextlib.contextmanager
def open_backend(path: Path, read_only: bool = False, options: dict[str, str] | None = None) -> Iterator[Any]:
    """The SQLite backend of ``path`` (schema upgraded; with ``read_only``, opened read-only and
    never written), closed afterwards. ``options``: conf keys the ``--db`` URI gave (such as
    ``durability``); a read-only backend writes nothing, so it takes none."""
    from ferroflow import exceptions
    from ferroflow.persistence import backends

    conf = {**({} if read_only else (options or {})), "connection": db_uri(path), "mode": "ro" if read_only else "rw"}
    try:
        with backends.backend(conf) as backend:
            ahead.release()  # (the store is open: the connection that rebuilt its WAL index can go)
            yield backend
    except exceptions.StorageFailure as exc:
        raise CommandError(f"cannot use the database {path}: {exc}") from exc
    except ValueError as exc:  # an unknown option or value in the URI
        raise UsageError(f"--db {path}: {exc}") from None


@contextlib.contextmanager
def open_store(store: Store, read_only: bool = False, must_exist: bool = True) -> Iterator[Any]:
    """The backend of ``store``, closed afterwards. Read-write, its schema is created or upgraded
    (with ``must_exist``, a PostgreSQL database without a ferroflow schema is refused, not given
    one). With ``read_only`` nothing is ever written and nothing is created: a SQLite file is
    opened ``mode=ro``, a PostgreSQL database with read-only transactions (``mode=ro``), a
    ``dir://`` store by connections that refuse every write."""
    if store.kind == "sqlite":
        assert store.path is not None
        options = dict(parse_qsl(store.uri.partition("?")[2]))
        with open_backend(store.path, read_only, options) as backend:
            yield backend
        return
    from ferroflow import exceptions

    backend = _fetch(store, read_only)
    try:
        try:
            if store.kind == "postgresql" and must_exist and not read_only:
                _probe_postgres(store)
            with contextlib.closing(backend.get_connection()) as conn:
                conn.upgrade()
        except exceptions.StorageFailure as exc:
            raise _open_error(store, exc) from exc
        try:
            yield backend
        except exceptions.StorageFailure as exc:
            raise CommandError(f"cannot use the database {store.label}: {exc}") from exc
    finally:
        backend.close()


def _fetch(store: Store, read_only: bool) -> Any:
    from ferroflow.persistence import backends

    try:
        if store.kind == "dir":
            from ferroflow.cli.readonly_dir import ReadOnlyDirBackend

            backend = backends.fetch(store.uri)
            return ReadOnlyDirBackend(backend.conf) if read_only else backend
        return backends.fetch({"connection": store.uri, "mode": "ro" if read_only else "rw"})
    except ValueError as exc:
        raise UsageError(f"--db {store.label}: {_scrub(str(exc), store.uri)}") from None


def _probe_postgres(store: Store) -> None:
    """Refuses a PostgreSQL database that holds no ferroflow store (UsageError) or cannot be
    reached, before a read-write backend would create its schema; an older schema passes (the
    read-write backend upgrades it). A read-only backend refuses both with a StorageFailure told
    apart by its message (`impl_postgres.PostgresBackend._check_schema`'s)."""
    from ferroflow import exceptions

    probe = _fetch(store, read_only=True)
    try:
        probe.get_connection().close()
    except exceptions.StorageFailure as exc:
        if "opened read-only" not in str(exc) or "no ferroflow schema" in str(exc):
            raise _open_error(store, exc) from exc
        # (an older schema, refused read-only, is upgraded by the read-write backend)
    finally:
        probe.close()


def _open_error(store: Store, exc: Exception) -> Exception:
    """The error of a store that could not be opened: a UsageError when there is no such store
    (a PostgreSQL database that does not exist, or holds no ferroflow schema), else a
    CommandError."""
    text = str(exc)
    if store.kind == "postgresql":
        if "no ferroflow schema" in text:
            return UsageError(
                f"no ferroflow store in {store.label}: the database has no ferroflow tables (`ferroflow run "
                "--db URI` creates them)"
            )
        if "database" in text and "does not exist" in text:
            return UsageError(f"no database {store.label}: {text}; create it first (createdb), or give another")
    return CommandError(f"cannot use the database {store.label}: {text}")


def store_label(backend: Any) -> str:
    """How messages (and ``--db``) name an open backend's store."""
    from ferroflow.cli import stores

    return stores.label_of(backend)


# -- flows in the database ---------------------------------------------------------------------


@dataclass(frozen=True)
class FlowRecord:
    """A saved flow detail, as listed (its atoms are not loaded)."""

    uuid: str
    name: str
    state: str
    meta: dict[str, Any]
    book_uuid: str
    book_name: str
    #: When it was saved (UNIX seconds; on a ``dir://`` store, which keeps no time of a flow,
    #: when its logbook was).
    created_at: float | None
    #: When it last changed (``None``: the store keeps no such time, as a ``dir://`` store).
    updated_at: float | None

    @property
    def factory(self) -> str | None:
        """The importable name of the factory that builds the flow (``None``: not resumable)."""
        factory = self.meta.get("factory")
        return factory.get("name") if isinstance(factory, dict) else None


def list_flows(backend: Any) -> list[FlowRecord]:
    """Every flow detail of the store, oldest first."""
    from ferroflow.cli import stores

    flows = [
        FlowRecord(
            uuid,
            name,
            state or states.PENDING,
            meta if isinstance(meta, dict) else flow_meta(uuid, meta),
            book_uuid,
            book_name,
            created_at,
            updated_at,
        )
        for uuid, name, state, meta, book_uuid, book_name, created_at, updated_at in stores.flow_rows(backend)
    ]
    flows.sort(key=lambda flow: flow.created_at or 0.0)
    return flows


def flow_meta(flow_uuid: str, text: str) -> dict[str, Any]:
    """A flow detail's saved meta, decoded (StorageFailure naming the flow detail if damaged)."""
    from ferroflow.persistence import saved

    return saved.decode_meta(text, f"flow detail '{flow_uuid}'")


def find_flow(flows: Sequence[FlowRecord], key: str) -> FlowRecord:
    """The flow whose uuid is ``key`` or starts with it (UsageError if none or several)."""
    matches = [flow for flow in flows if flow.uuid == key]
    if not matches:
        matches = [flow for flow in flows if flow.uuid.startswith(key)]
    if not matches:
        raise UsageError(f"no flow {key!r} in the database (list them with: ferroflow show)")
    if len(matches) > 1:
        raise UsageError(
            f"{key!r} matches {len(matches)} flows ({', '.join(f.uuid for f in matches)}); give more of the uuid"
        )
    return matches[0]


@dataclass(frozen=True)
class AtomStates:
    """Atom states of one flow, read from the database."""

    by_name: dict[str, str]
    last_update: float | None

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.by_name.values())


def atom_states(backend: Any, flow_uuid: str) -> AtomStates:
    """Each atom's saved state (without reading results), and when an atom last changed."""
    from ferroflow.cli import stores

    by_name: dict[str, str] = {}
    last_update = None
    for name, state, updated_at in stores.atom_rows(backend, flow_uuid):
        if is_injector(name):
            continue
        by_name[name] = state or states.PENDING
        if updated_at is not None and (last_update is None or updated_at > last_update):
            last_update = updated_at
    return AtomStates(by_name, last_update)


def last_change(backend: Any, flow: FlowRecord) -> float | None:
    """When the flow or one of its atoms last changed (``None``: the store keeps no such time)."""
    times = [t for t in (flow.updated_at, atom_states(backend, flow.uuid).last_update) if t is not None]
    return max(times) if times else None


def is_injector(name: str) -> bool:
    """True for the pseudo atom holding a flow's ``store`` values (not an atom of the flow)."""
    from ferroflow.persistence.models import INJECTOR_NAME

    return name == INJECTOR_NAME


# -- factories ---------------------------------------------------------------------------------


def import_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``MODULE:FACTORY`` (the module importable from the working directory)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"expected MODULE:FACTORY (like mypkg.flows:make_flow), not {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        raise UsageError(
            f"{module_name!r} is a file path; give a dotted module name importable from the "
            "working directory (like mypkg.flows)"
        )
    obj = _import_attribute(module_name, attribute)
    if not callable(obj):
        raise UsageError(f"{spec!r} is a {type(obj).__name__}, not a callable flow factory")
    return obj


def _import_attribute(module_name: str, attribute: str, context: str = "") -> Any:
    """``module_name`` imported from the working directory, then its dotted ``attribute``;
    UsageError (prefixed with ``context``) when either is missing."""
    add_cwd_to_path()
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{context}cannot import module {module_name!r}: {exc}; {import_hint()}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{context}module {module_name!r} has no {attribute!r}") from None
    return obj


def import_hint() -> str:
    """What to check when a module does not import from the command line."""
    return (
        f"check that you run ferroflow from the directory that holds your code (working directory: {os.getcwd()}) "
        "or that PYTHONPATH includes it"
    )


def describe_load_error(exc: BaseException) -> str:
    """``'Type: message'``, with `import_hint` when code could not be imported."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):
        text += f"; {import_hint()}"
    return text


def import_migrations(spec: str) -> list[Any]:
    """The migrations named by ``MODULE:ATTR`` (a list of `ferroflow.migrations.Rename`,
    ``Split`` and ``Merge``). Naming a module on the command line trusts it, but never a module
    of the standard library or of ferroflow."""
    from ferroflow import migrations, trust

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"--migrations expects MODULE:ATTR (like mypkg.migrations:MIGRATIONS), not {spec!r}")
    if not all(part.isidentifier() for part in f"{module_name}.{attribute}".split(".")):
        raise UsageError(f"--migrations {spec!r}: {module_name!r} is not a dotted module name")
    if trust.is_stdlib(module_name) or trust.is_ferroflow_internal(module_name, ()):
        raise UsageError(
            f"--migrations {spec!r}: module {module_name!r} is part of the Python standard library or of ferroflow; "
            "name the module of your own code that lists the migrations"
        )
    obj = _import_attribute(module_name, attribute, "--migrations: ")
    if not isinstance(obj, list | tuple):
        raise UsageError(
            f"--migrations {spec!r} is a {type(obj).__name__}, not a list of Rename, Split or Merge migrations"
        )
    try:
        return migrations.check_migrations(obj)
    except TypeError as exc:
        raise UsageError(f"--migrations {spec!r}: {exc}") from None


def add_cwd_to_path() -> None:
    """Flow factories are imported from the working directory, as ``python -m`` would."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


# -- output ------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with control characters (newlines, escapes, ...) written as escapes, so that a
    name from a store can neither break a line nor drive the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def printable_lines(text: str) -> str:
    """`printable` applied to each line of ``text`` (its line breaks kept)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _escape(char: str) -> str:
    escaped = repr(char)[1:-1]
    return escaped if escaped != char else f"\\u{ord(char):04x}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns left-aligned and separated by two spaces (control characters
    escaped)."""
    cells = [[printable(str(h)) for h in headers]] + [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def format_time(seconds: float | None) -> str:
    """Local time of a UNIX timestamp, to the second."""
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(seconds: float | None) -> str | None:
    """ISO 8601 UTC form of a UNIX timestamp (for JSON)."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def format_counts(counts: Counter[str]) -> str:
    """``'1207 SUCCESS, 24 RUNNING, 1769 PENDING'``: done first, not started last."""
    ordered = sorted(counts.items(), key=lambda item: _STATE_ORDER.get(item[0], len(_STATE_ORDER)))
    return ", ".join(f"{n} {state}" for state, n in ordered) or "no atoms"


_STATE_ORDER = {
    state: rank
    for rank, state in enumerate(
        (
            states.SUCCESS,
            states.RUNNING,
            states.FAILURE,
            states.RETRYING,
            states.REVERTING,
            states.REVERTED,
            states.REVERT_FAILURE,
            states.IGNORE,
            states.PENDING,
        )
    )
}


def describe_failure(failure: Any) -> str:
    """``'ValueError: boom'`` from a Failure or its saved dict form."""
    if isinstance(failure, dict):
        names = failure.get("exc_type_names") or []
        message = failure.get("exception_str", "")
        return f"{names[0]}: {message}" if names else str(message)
    text = failure.pformat() if hasattr(failure, "pformat") else str(failure)
    return text.removeprefix("Failure: ")


def error(message: str, stream: TextIO | None = None) -> None:
    """Prints ``ferroflow: error: <message>`` on stderr (one line: control characters escaped)."""
    print(f"ferroflow: error: {printable(message)}", file=stream or sys.stderr)


# -- ownership ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Who holds a flow's lease, and whether that owner is alive."""

    owner: str
    until: float
    epoch: int
    #: The lease is unexpired and its owner's process is not known to be gone.
    live: bool
    #: Why it is not live (``""`` when live).
    why: str

    @property
    def pid(self) -> str:
        """The owner's ``host:pid`` (owner ids are ``host:pid:token``)."""
        return ":".join(self.owner.split(":")[:2])

    def describe(self, now: float | None = None) -> str:
        """``'live: owner host:pid, lease for 25s more'`` or ``'dead: ...'``."""
        now = time.time() if now is None else now
        if self.live:
            return f"live: owner {self.pid}, lease for {format_duration(self.until - now)} more"
        return f"dead: {self.why}"


def owner_of(conn: Any, flow_uuid: str, now: float | None = None) -> Owner | None:
    """The lease holder of a flow (``None``: nobody holds it)."""
    from ferroflow import exceptions
    from ferroflow.persistence import ownership

    try:
        lease = conn.get_lease(flow_uuid)
    except exceptions.NotFound:
        return None
    if lease is None:
        return None
    owner, until, epoch = lease
    now = time.time() if now is None else now
    if ownership.dead_local_owner(owner):
        why = f"the process of owner {':'.join(owner.split(':')[:2])} no longer exists"
        return Owner(owner, until, epoch, False, why)
    if until <= now:
        why = f"the lease of owner {':'.join(owner.split(':')[:2])} expired {format_duration(now - until)} ago"
        return Owner(owner, until, epoch, False, why)
    return Owner(owner, until, epoch, True, "")


def plural(count: int, noun: str) -> str:
    """``'1 flow'``, ``'3 flows'``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_duration(seconds: float) -> str:
    """``'42s'``, ``'3m'``, ``'5h'``, ``'2d'``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= size):
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def parse_duration(text: str) -> float:
    """argparse type: ``'90s'``, ``'15m'``, ``'12h'``, ``'7d'``, ``'2w'`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    body, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(body)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 90s, 15m, 12h, 7d or 2w)") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (must be 0 or more)")
    return value * units[unit]
