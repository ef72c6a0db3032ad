"""A real PostgreSQL server for the tests: a throwaway cluster, or the one ``$FERROFLOW_TEST_POSTGRES_URI`` names.

`server()` starts, once per test session, a private cluster when ``initdb`` is available (on
``PATH`` or in Debian's ``/usr/lib/postgresql/<version>/bin``): ``initdb`` into a new temporary
directory, then ``pg_ctl start`` listening on 127.0.0.1 on a free port (run as the ``postgres``
user when the tests run as root, since PostgreSQL refuses to run as root). It is stopped and
removed when the session ends; a cluster left behind by a killed session is removed by the next
one. With ``$FERROFLOW_TEST_POSTGRES_URI`` set (a role allowed to create databases), that server is
used instead.

Without a server the PostgreSQL tests are skipped with the reason, except in CI (``$CI`` set to
``true``, as `.ci/run` does): there a missing server fails them, so they never skip silently.

Each test gets its own database (`fresh_uri`, or `uri_for` a key such as a test's ``tmp_path``);
only the most recent few are kept, older ones are dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_URI = "FERROFLOW_TEST_POSTGRES_URI"
#: Databases kept at once (older test databases are dropped).
KEEP_DATABASES = 8
_PREFIX = "ferroflow-pg-"


def in_ci() -> bool:
    """Whether a missing server must fail the tests rather than skip them."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skips the calling test (fails it in CI) because no PostgreSQL server can be had."""
    message = f"no PostgreSQL server for the tests: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(f"{message}; install PostgreSQL (initdb) or set ${ENV_URI}")


def _find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda path: [int(part) for part in re.findall(r"\d+", path)], reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_path(uri: str, dbname: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))


class Server:
    """A server the tests may create databases on (through ``admin_uri``)."""

    def __init__(self, admin_uri: str, cluster: Cluster | None = None) -> None:
        import psycopg

        self.admin_uri = admin_uri
        self.cluster = cluster
        self._admin = psycopg.connect(admin_uri, autocommit=True)
        self._lock = threading.Lock()
        self._databases: list[str] = []
        self._by_key: dict[str, str] = {}

    def uri(self, dbname: str) -> str:
        return _with_path(self.admin_uri, dbname)

    def _admin_execute(self, sql: str, params: tuple | None = None) -> Any:
        """Runs ``sql`` on the maintenance database, reconnecting once if the server restarted."""
        import psycopg

        try:
            return self._admin.execute(sql, params)
        except psycopg.OperationalError:
            if not self._admin.closed:
                raise
            self._admin = psycopg.connect(self.admin_uri, autocommit=True)
            return self._admin.execute(sql, params)

    def restart(self) -> None:
        """Restarts the tests' own cluster (connections to it are cut)."""
        if self.cluster is None:
            raise RuntimeError(f"cannot restart a server given by ${ENV_URI}")
        self.cluster.stop("fast")
        self.cluster.start()

    def create_database(self, dbname: str) -> str:
        """Creates database ``dbname`` (dropping the oldest test databases beyond `KEEP_DATABASES`)."""
        with self._lock:
            while len(self._databases) >= KEEP_DATABASES:
                self._drop(self._databases.pop(0))
            self._admin_execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            self._admin_execute(f'CREATE DATABASE "{dbname}"')
            self._databases.append(dbname)
        return self.uri(dbname)

    def _drop(self, dbname: str) -> None:
        self._admin_execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        for key, name in list(self._by_key.items()):
            if name == dbname:
                del self._by_key[key]

    def fresh_uri(self) -> str:
        return self.create_database(f"ff_{os.getpid()}_{os.urandom(6).hex()}")

    def uri_for(self, key: str | os.PathLike[str]) -> str:
        """The URI of the database of ``key`` (created on first use): a factory called twice with
        the same key reaches the same data."""
        key = str(key)
        with self._lock:
            dbname = self._by_key.get(key)
        if dbname is None:
            dbname = "ff_" + hashlib.sha1(key.encode()).hexdigest()[:20]
            self.create_database(dbname)
            with self._lock:
                self._by_key[key] = dbname
        return self.uri(dbname)

    def execute(self, sql: str, *params: object) -> list[tuple]:
        """Runs ``sql`` as the server's administrator (on its maintenance database)."""
        cursor = self._admin_execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._admin.close()


class Cluster:
    """A private cluster in a temporary directory, listening on 127.0.0.1."""

    def __init__(self) -> None:
        initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("initdb / pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin)")
        self.pg_ctl = pg_ctl
        self.user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
        _reap_stale_clusters()
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.root / "owner").write_text(str(os.getpid()))
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        try:
            self._run(
                [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]
            )
            self.start()
        except BaseException:
            self.remove()
            raise

    def _command(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self.user.pw_name, "--", *argv]
        return ["su", self.user.pw_name, "-s", "/bin/sh", "-c", " ".join(f"'{arg}'" for arg in argv)]

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self._command(argv), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Starts the server (on a new free port the first time, on the same one after a stop)."""
        for attempt in range(3):
            port = self.port or _free_port()
            options = f"-k {self.root} -h 127.0.0.1 -p {port} -c max_connections=300"
            try:
                self._run(
                    [self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"]
                )
            except RuntimeError:
                if attempt == 2 or self.port:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"the PostgreSQL server did not start; its log:\n{log}") from None
                continue
            self.port = port
            return

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(Exception):
            self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _reap_stale_clusters() -> None:
    """Stops and removes clusters of test sessions that no longer run (a killed session's)."""
    for owner_file in glob.glob(os.path.join(tempfile.gettempdir(), f"{_PREFIX}*", "owner")):
        root = Path(owner_file).parent
        try:
            pid = int(Path(owner_file).read_text())
            os.kill(pid, 0)
            continue  # its session still runs
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        pidfile = root / "data" / "postmaster.pid"
        with contextlib.suppress(Exception):
            server_pid = int(pidfile.read_text().split()[0])
            os.kill(server_pid, signal.SIGQUIT)  # immediate shutdown of the postmaster
        shutil.rmtree(root, ignore_errors=True)


_server: Server | None = None
_failed: str | None = None
_start_lock = threading.Lock()


def server() -> Server:
    """The session's server, started on first use; skips (fails in CI) the test without one."""
    global _server, _failed
    with _start_lock:
        if _server is None and _failed is None:
            try:
                import psycopg  # noqa: F401
            except ImportError as e:
                _failed = f"psycopg is not installed ({e}); pip install 'ferroflow[postgres]'"
            else:
                try:
                    uri = os.environ.get(ENV_URI)
                    if uri:
                        _server = Server(uri)
                    else:
                        cluster = Cluster()
                        try:
                            _server = Server(cluster.uri, cluster)
                        except BaseException:
                            cluster.remove()
                            raise
                        atexit.register(_shutdown)
                except Exception as e:
                    _failed = f"{type(e).__name__}: {e}"
        if _server is None:
            unavailable(_failed or "unknown reason")
        assert _server is not None
        return _server


def _shutdown() -> None:
    global _server
    if _server is not None:
        _server.close()
        if _server.cluster is not None:
            _server.cluster.remove()
        _server = None


def fresh_uri() -> str:
    """The URI of a new, empty database."""
    return server().fresh_uri()


def uri_for(key: str | os.PathLike[str]) -> str:
    """The URI of ``key``'s database (the same one for the same key)."""
    return server().uri_for(key)
