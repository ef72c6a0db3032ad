"""``ferroflow run MODULE:FACTORY``: build a flow with a factory and run it, saving every transition."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

from ferroflow import states
from ferroflow.cli import common
from ferroflow.cli.progress import EngineWatcher, ProgressLine

DESCRIPTION = """\
Build a flow by calling FACTORY from MODULE (a dotted module importable from the working
directory) with the --arg values, and run it. Every atom transition is saved to the store (a
SQLite file or a dir:// directory, created if missing, or an existing PostgreSQL database, whose
tables are created), with the factory's name and arguments, so that a run that is killed can be
finished later with `ferroflow resume`. Prints the flow's uuid when it starts and its final
state when it ends (stdout); progress goes to stderr. Exit status: 0 SUCCESS, 1 the flow failed
(REVERTED or FAILURE) or could not run, 2 usage error.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="build a flow with a factory and run it", description=DESCRIPTION)
    parser.add_argument("factory", metavar="MODULE:FACTORY", help="the flow factory, e.g. mypkg.flows:make_flow")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        type=json_value,
        metavar="JSON",
        help="a positional argument of the factory, as JSON (repeatable; a string needs its quotes: --arg '\"text\"')",
    )
    common.add_db_argument(parser)
    common.add_engine_arguments(parser)
    parser.set_defaults(handler=run_command)


def json_value(text: str) -> Any:
    """argparse type: a JSON value."""
    try:
        return json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {text!r} (a string needs its quotes: --arg '\"{text}\"')"
        ) from None


def started_line(flow_uuid: str, flow_name: str, atoms: int) -> str:
    """The first line ``run`` prints (stdout): the flow's uuid, as soon as it is saved."""
    return f"flow {flow_uuid} ({common.printable(flow_name)}): started, {atoms} atoms"


def flow_uuid_of(line: str) -> str | None:
    """The uuid in a `started_line` (``None`` for any other line)."""
    words = line.split()
    if len(words) >= 3 and words[0] == "flow" and line.rstrip().endswith("atoms"):
        return words[1]
    return None


def run_command(args: argparse.Namespace) -> int:
    from ferroflow import engines
    from ferroflow.persistence import models

    common.import_factory(args.factory)  # a usage error, if any, before the database is touched
    factory_name = args.factory.replace(":", ".", 1)  # the name saved for resuming processes
    options = common.engine_options(args)
    store = common.locate_store(args.db, must_exist=False)
    with common.open_store(store, must_exist=False) as backend:
        book = models.LogBook(f"ferroflow run {args.factory}")
        engine = None
        try:
            engine = engines.load_from_factory(
                factory_name, factory_args=args.arg, backend=backend, book=book, **options
            )
            engine.compile()
            engine.prepare()
            engine.validate()
        except Exception as exc:
            _forget(backend, book, engine)
            raise common.CommandError(f"cannot build the flow of {args.factory}: {_build_error(exc)}") from exc
        flow_uuid, flow_name = engine.storage.flow_uuid, engine.storage.flow_name
        total = len(engine.compilation.atoms)
        print(started_line(flow_uuid, flow_name, total), flush=True)
        progress = ProgressLine("run", total, enabled=not args.no_progress)
        watcher = run_engine(engine, progress, flow_uuid, store.label)
        state = engine.storage.get_flow_state()
        print(f"flow {flow_uuid} ({common.printable(flow_name)}): {state} in {progress.elapsed:.2f}s", flush=True)
    return report_outcome(flow_uuid, state, watcher.first_failure)


def _forget(backend: Any, book: Any, engine: Any) -> None:
    """Removes what a run that could not start saved (its logbook, flow detail and atoms), so
    that it leaves nothing behind for ``resume`` to trip on."""
    from ferroflow import exceptions

    persister = getattr(engine, "_persist", None)
    if persister is not None:
        with contextlib.suppress(Exception):
            persister.release()
    with contextlib.suppress(exceptions.NotFound), contextlib.closing(backend.get_connection()) as conn:
        conn.destroy_logbook(book.uuid)


def _build_error(exc: BaseException) -> str:
    from ferroflow import exceptions

    if isinstance(exc, exceptions.MissingDependencies):
        return f"it does not validate: {_describe(exc)}"
    return _describe(exc)


def run_engine(
    engine: Any,
    progress: ProgressLine,
    flow_uuid: str,
    path: Any,
    action: Callable[[], None] | None = None,
    follow_events: bool = False,
) -> EngineWatcher:
    """Runs a prepared engine (``action``, default ``engine.run``) with a progress line; returns
    what the watcher saw (first failure, atoms that ran; see `EngineWatcher` for
    ``follow_events``); the final state is ``engine.storage.get_flow_state()``.

    A flow that fails (REVERTED, FAILURE) is an outcome, not an error; anything else that stops
    the engine is a CommandError.
    """
    try:
        with EngineWatcher(engine, progress, follow_events) as watcher:
            try:
                (action or engine.run)()
            except Exception as exc:
                from ferroflow.migrations import OrphanRevertError

                state = engine.storage.get_flow_state()
                watcher.collect()
                if state not in (states.REVERTED, states.FAILURE):
                    raise common.CommandError(f"flow {flow_uuid} stopped ({state}): {_describe(exc)}") from exc
                if watcher.first_failure is None:
                    watcher.first_failure = ("?", exc)
                elif isinstance(exc, OrphanRevertError):  # not an atom's failure: said on its own
                    print(
                        common.printable(
                            f"ferroflow: flow {flow_uuid}: the rollback stopped: {_describe(exc).splitlines()[0]}; "
                            f"the orphan is saved REVERT_FAILURE (ferroflow show {flow_uuid})"
                        ),
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        print(
            f"ferroflow: interrupted; continue the flow with: ferroflow resume {flow_uuid} --db {path}", file=sys.stderr
        )
        raise
    return watcher


def report_outcome(flow_uuid: str, state: str, failure: tuple[str, Any] | None) -> int:
    """Exit status of a flow's final state; names the failed atom on stderr."""
    if state == states.SUCCESS:
        return common.EXIT_OK
    if failure is not None:
        atom, what = failure
        what = common.describe_failure(what) if not isinstance(what, BaseException) else _describe(what)
        print(
            common.printable(f"ferroflow: flow {flow_uuid} ended {state}: atom {atom!r} failed: {what}"),
            file=sys.stderr,
        )
    else:
        print(f"ferroflow: flow {flow_uuid} ended {state}", file=sys.stderr)
    return common.EXIT_FAILED


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
