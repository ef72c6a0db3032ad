"""``ferroflow conductor``: claim jobs from a jobboard and run their flows until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ferroflow.cli import common
from ferroflow.cli.jobs import add_board_arguments, open_board, open_store, store_uri

DESCRIPTION = """\
Run a conductor: claim the jobs of --board (most urgent, then oldest first), run each job's
flow from --store, consume the job when the flow ends. Several conductors (on this host with a
sqlite:/// board, on many hosts with a postgresql:// board) share the work; when one dies, its
claims expire (--claim-expiry) and another resumes its flows where they stopped. Flow factories
are imported from the working directory, only from trusted modules (--trust, else
$FERROFLOW_TRUSTED_MODULES, else the package that saved the flow).

SIGTERM or Ctrl-C stops it cleanly: running atoms finish, the flows are suspended and their jobs
given back to the board. A status line shows the running and finished jobs (on a terminal).

Exit status: 0 stopped cleanly, 1 the board or store could not be used, 2 usage error.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("conductor", help="run the jobs of a jobboard", description=DESCRIPTION)
    add_board_arguments(parser, store=True)
    parser.add_argument("--jobs", type=common.positive_int, default=1, metavar="N", help="jobs run at once (default 1)")
    parser.add_argument("--name", help="the conductor's name, its claims' owner (default: conductor-HOST-PID)")
    parser.add_argument(
        "--claim-expiry", type=float, metavar="SECONDS", help="how long a claim lasts unrenewed (default 6)"
    )
    parser.add_argument(
        "--lease-seconds", type=float, metavar="SECONDS", help="how long a flow lease lasts unrenewed (default 30)"
    )
    parser.add_argument("--max-dispatches", type=int, metavar="N", help="stop after running N jobs")
    parser.add_argument("--engine", choices=("serial", "parallel"), help="the engine of each job (default serial)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the status line")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every job (claimed, finished)")
    common.add_trust_argument(parser)
    parser.set_defaults(handler=conductor_command)


def conductor_command(args: argparse.Namespace) -> int:
    from ferroflow.conductors import backends as conductors

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    common.add_cwd_to_path()
    name = args.name or f"conductor-{socket.gethostname()}-{os.getpid()}"
    options: dict[str, Any] = dict(common.trust_options(args))
    if args.lease_seconds is not None:
        options["lease_seconds"] = args.lease_seconds
    store = open_store(without_spin(store_uri(args)))
    conf = {} if args.claim_expiry is None else {"claim_expiry": args.claim_expiry}
    with open_board(args, persistence=store, **conf) as board:
        conductor = conductors.fetch(
            "nonblocking" if args.jobs > 1 else "blocking",
            name,
            board,
            persistence=store,
            engine=args.engine or "serial",
            engine_options=options,
            max_simultaneous_jobs=args.jobs,
        )
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()
            conductor.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = _Status(conductor, enabled=not args.no_progress and sys.stderr.isatty())
        print(f"conductor {name} (pid {os.getpid()}): running, board {board_uri_label(board)}", flush=True)
        status.start()
        started = time.monotonic()
        try:
            conductor.run(max_dispatches=args.max_dispatches)
        finally:
            status.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counts = conductor.counts
        print(
            f"conductor {name}: stopped after {time.monotonic() - started:.1f}s; {counts['consume']} consumed, "
            f"{counts['abandon']} abandoned, {counts['trash']} trashed, {counts['lost']} lost",
            flush=True,
        )
    return common.EXIT_OK


def without_spin(uri: str) -> str:
    """A PostgreSQL store URI with ``busy_wait_us=0`` unless it sets it: a conductor's writes wait
    for the server in poll() rather than spinning. Spinning saves a lone engine tens of µs per
    write on an idle machine, but conductors are many processes sharing the cores with the server:
    there, a spinning conductor takes the CPU the server needs to answer it (on 2 cores, 4
    conductors ran ~25% more jobs/s without it)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        return uri
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "busy_wait_us" for key, _ in query):
        return uri
    return urlunsplit(parts._replace(query=urlencode([*query, ("busy_wait_us", "0")])))


def board_uri_label(board: Any) -> str:
    return f"{board.name} at {board._where()}"


class _Status:
    """A live status line on stderr, redrawn twice a second while the conductor runs."""

    def __init__(self, conductor: Any, enabled: bool) -> None:
        self._conductor = conductor
        self._enabled = enabled
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="conductor-status", daemon=True)

    def start(self) -> None:
        if self._enabled:
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._enabled:
            self._thread.join(timeout=2.0)
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def _draw(self) -> None:
        while not self._done.wait(0.5):
            counts = self._conductor.counts
            line = (
                f"{self._conductor.running_jobs} running; {counts['consume']} consumed, {counts['abandon']} abandoned, "
                f"{counts['trash']} trashed, {counts['lost']} lost"
            )
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
