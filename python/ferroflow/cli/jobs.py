"""``ferroflow jobs post|list|show|trash``: manage the jobs of a jobboard (`ferroflow.jobs`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from ferroflow import exceptions, states
from ferroflow.cli import common
from ferroflow.cli.run import json_value

DESCRIPTION = """\
Manage the jobs of a jobboard: post a flow as a job (its logbook and flow detail are saved in
--store, the job on --board; a conductor then claims and runs it), list the jobs (by priority,
then oldest first), show one, or trash one that must not run. --board is a URI:
postgresql://user@host:port/db (many machines) or sqlite:///path/jobs.db (processes of one
host); else $FERROFLOW_BOARD.

Exit status: 0 done, 1 the board or the job could not be used, 2 usage error.
"""

BOARD_ENV = "FERROFLOW_BOARD"
STORE_ENV = "FERROFLOW_STORE"
DEFAULT_BOARD_NAME = "ferroflow"


def add_board_arguments(parser: argparse.ArgumentParser, store: bool) -> None:
    parser.add_argument("--board", metavar="URI", help=f"the jobboard (else ${BOARD_ENV})")
    parser.add_argument(
        "--board-name", default=DEFAULT_BOARD_NAME, metavar="NAME", help="the board's name (default: %(default)s)"
    )
    if store:
        parser.add_argument("--store", metavar="URI", help=f"the persistence holding the flows (else ${STORE_ENV})")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("jobs", help="post, list, show or trash jobs of a jobboard", description=DESCRIPTION)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    post = commands.add_parser("post", help="post a flow as a job")
    post.add_argument("factory", metavar="MODULE:FACTORY", help="the flow factory, e.g. mypkg.flows:make_flow")
    post.add_argument(
        "--arg", action="append", default=[], type=json_value, metavar="JSON", help="a factory argument (repeatable)"
    )
    post.add_argument(
        "--inject", action="append", default=[], metavar="NAME=JSON", help="a value of the job's store (repeatable)"
    )
    post.add_argument("--priority", default="NORMAL", type=str.upper, choices=[p.value for p in _priorities()])
    post.add_argument("--name", help="the job's name (default: the flow's)")
    post.add_argument("--count", type=common.positive_int, default=1, metavar="N", help="post N such jobs")
    add_board_arguments(post, store=True)
    post.set_defaults(handler=post_command)
    listing = commands.add_parser("list", help="list the jobs not yet complete (--all: every job)")
    listing.add_argument("--all", action="store_true", help="include consumed and trashed jobs")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_board_arguments(listing, store=False)
    listing.set_defaults(handler=list_command)
    show = commands.add_parser("show", help="show one job")
    show.add_argument("job", metavar="JOB_UUID", help="the job's uuid (or a unique prefix of 8+ characters)")
    add_board_arguments(show, store=False)
    show.set_defaults(handler=show_command)
    trash = commands.add_parser("trash", help="mark a job finished without running it")
    trash.add_argument("job", metavar="JOB_UUID", help="the job's uuid (or a unique prefix of 8+ characters)")
    add_board_arguments(trash, store=False)
    trash.set_defaults(handler=trash_command)
    for sub in commands.choices.values():
        common.add_traceback_argument(sub)
    parser.set_defaults(handler=lambda args: _missing_command(parser))


def _priorities() -> Any:
    from ferroflow.jobs.base import JobPriority

    return JobPriority


def _missing_command(parser: argparse.ArgumentParser) -> int:
    raise common.UsageError("a jobs command is required: post, list, show or trash")


def board_uri(args: argparse.Namespace) -> str:
    uri = args.board or os.environ.get(BOARD_ENV)
    if not uri:
        raise common.UsageError(f"--board URI is required (or ${BOARD_ENV}): postgresql://... or sqlite:///path")
    return uri


def store_uri(args: argparse.Namespace) -> str:
    uri = args.store or os.environ.get(STORE_ENV)
    if not uri:
        raise common.UsageError(f"--store URI is required (or ${STORE_ENV}): postgresql://... or sqlite:///path")
    return uri


def open_store(uri: str) -> Any:
    """The persistence backend of ``uri``, its schema created or upgraded."""
    from ferroflow.persistence import backends

    try:
        backend = backends.fetch(uri)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
    except ValueError as exc:
        raise common.UsageError(f"--store {uri}: {exc}") from None
    except exceptions.TaskFlowException as exc:
        raise common.CommandError(f"cannot open the store {uri}: {exc}") from None
    return backend


@contextlib.contextmanager
def open_board(args: argparse.Namespace, persistence: Any = None, **conf: Any) -> Iterator[Any]:
    """The connected board of ``--board`` (closed on exit)."""
    from ferroflow.jobs import backends

    uri = board_uri(args)
    try:
        board = backends.fetch(args.board_name, {"board": uri, **conf}, persistence=persistence)
    except ValueError as exc:
        raise common.UsageError(f"--board {uri}: {exc}") from None
    try:
        board.connect()
    except exceptions.TaskFlowException as exc:
        raise common.CommandError(str(exc)) from None
    try:
        yield board
    except exceptions.TaskFlowException as exc:
        raise common.CommandError(str(exc)) from None
    finally:
        board.close()


def post_command(args: argparse.Namespace) -> int:
    from ferroflow.jobs import posting

    factory = common.import_factory(args.factory)
    store = {}
    for item in args.inject:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise common.UsageError(f"--inject expects NAME=JSON, not {item!r}")
        try:
            store[key] = json_value(text)
        except argparse.ArgumentTypeError as exc:
            raise common.UsageError(f"--inject {key}: {exc}") from None
    backend = open_store(store_uri(args))
    with open_board(args, persistence=backend) as board:
        for _ in range(args.count):
            try:
                job = posting.post_flow(
                    board, backend, factory, args.arg, store=store, name=args.name, priority=args.priority
                )
            except ValueError as exc:
                raise common.UsageError(str(exc)) from None
            print(f"job {job.uuid} ({common.printable(job.name)}): posted, priority {job.priority.value}")
    return common.EXIT_OK


def _row(job: Any) -> dict[str, Any]:
    state = job._state
    return {
        "uuid": job.uuid,
        "name": job.name,
        "state": states.COMPLETE if state == "TRASHED" else state,
        "trashed": state == "TRASHED",
        "owner": job.owner if state != states.UNCLAIMED else None,
        "priority": job.priority.value,
        "created_on": common.iso_time(job.created_on),
        "last_modified": common.iso_time(job.last_modified),
        "book": job.book_uuid,
        "details": job.details,
    }


def list_command(args: argparse.Namespace) -> int:
    with open_board(args) as board:
        jobs = board.list_all() if args.all else list(board.iterjobs())
    if args.json:
        for job in jobs:
            print(json.dumps(_row(job)))
        return common.EXIT_OK
    if not jobs:
        print("no jobs" if args.all else "no jobs waiting or running")
        return common.EXIT_OK
    rows = []
    for job in jobs:
        row = _row(job)
        state = "TRASHED" if row["trashed"] else row["state"]
        rows.append(
            [job.uuid, job.name, state, row["owner"] or "-", row["priority"], common.format_time(job.created_on)]
        )
    print(common.format_table(["JOB", "NAME", "STATE", "OWNER", "PRIORITY", "POSTED"], rows))
    return common.EXIT_OK


def _find(board: Any, key: str) -> Any:
    try:
        return board.find(key)
    except exceptions.NotFound as exc:
        raise common.CommandError(str(exc)) from None


def show_command(args: argparse.Namespace) -> int:
    with open_board(args) as board:
        job = _find(board, args.job)
    row = _row(job)
    for key in ("uuid", "name", "state", "trashed", "owner", "priority", "created_on", "last_modified", "book"):
        print(f"{key}: {common.printable(str(row[key]))}")
    print(f"details: {common.printable(json.dumps(job.details))}")
    return common.EXIT_OK


def trash_command(args: argparse.Namespace) -> int:
    who = f"ferroflow-jobs@{socket.gethostname()}:{os.getpid()}"
    with open_board(args) as board:
        job = _find(board, args.job)
        try:
            board.claim(job, who)
        except exceptions.UnclaimableJob as exc:
            raise common.CommandError(f"{exc}; a claimed job can be trashed once its conductor lets it go") from None
        board.trash(job, who)
    print(f"job {job.uuid} ({common.printable(job.name)}): trashed", file=sys.stdout)
    return common.EXIT_OK
