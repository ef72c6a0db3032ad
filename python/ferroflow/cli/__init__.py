"""The ``ferroflow`` command: run flows, resume them after a crash, look at what is saved.

``main(argv)`` parses the command line and returns the exit status: 0 success, 1 a flow failed,
was reverted or could not be run, 2 usage error. Expected errors are one line on stderr;
``--traceback`` shows the Python traceback behind them too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from ferroflow.cli import ahead

__all__ = ["main"]

DESCRIPTION = """\
ferroflow runs workflows and saves every state transition to a store, so that a run whose
process dies can be resumed where it stopped, even after its code changed. The store is --db
PATH|URI (a SQLite file, dir:///path or postgresql://user@host:port/dbname), else $FERROFLOW_DB,
else the SQLite file ./ferroflow.db. User guide:
https://github.com/ferroflow/ferroflow/blob/main/docs/index.md
"""

EPILOG = """\
examples:
  ferroflow demo                                   kill a run of 3000 atoms mid-way, resume it
  ferroflow run mypkg.flows:make_flow --arg 10     run the flow make_flow(10) builds
  ferroflow resume                                 finish the flow whose process died
  ferroflow plan FLOW_UUID                         what resuming it would do, before it runs
  ferroflow resume FLOW_UUID --migrations mypkg.migrations:MIGRATIONS
                                                   resume after renaming, splitting or merging atoms
  ferroflow rewind FLOW_UUID --to ATOM             undo the atoms after ATOM, run them again
  ferroflow show --state RUNNING                   list saved flows; show FLOW_UUID for its atoms
  ferroflow check                                  health report (exit 1 when something needs you)
  ferroflow prune --state SUCCESS --older-than 30d remove old finished flows
  ferroflow graph FLOW_UUID --format svg -o f.svg  draw the flow, coloured by saved state
  ferroflow bench --peers --plot bench.png         measure it against the floor, TaskFlow and DBOS
"""


#: Each command, in the order ``ferroflow --help`` lists them, and the module (of this package)
#: that adds its parser. (Imported when the parser is built: `main` starts its store's WAL
#: recovery first, `ahead`.)
_MODULES: dict[str, str] = {
    "run": "run",
    "resume": "resume",
    "plan": "plan",
    "rewind": "rewind",
    "show": "show",
    "check": "check",
    "graph": "graph",
    "delete": "delete",
    "prune": "delete",
    "demo": "demo",
    "bench": "bench",
    "conductor": "conductor",
    "jobs": "jobs",
}
COMMANDS = tuple(_MODULES)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (not argparse's usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        from ferroflow.cli import common

        self.exit(common.EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ferroflow`` parser. With ``command`` (one of `COMMANDS`), only the parsers of its
    module are added: enough to parse that command's line (see `_command_of`), and a few ms less
    for every command than building all thirteen."""
    from ferroflow.cli import common

    parser = _Parser(
        prog="ferroflow", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument("--traceback", action="store_true", help="show the Python traceback of errors")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    modules = [_MODULES[command]] if command in _MODULES else list(dict.fromkeys(_MODULES.values()))
    for module in modules:
        importlib.import_module(f"{__name__}.{module}").add_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
        common.add_traceback_argument(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``ferroflow`` command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    ahead.start(command, argv)  # (while the command's modules load)
    try:
        return _run(command, argv)
    finally:
        ahead.release()


def _run(command: str | None, argv: list[str]) -> int:
    from ferroflow.cli import common

    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else common.EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        print(
            f"ferroflow: error: a command is required: {', '.join(COMMANDS)} (see: ferroflow --help)",
            file=sys.stderr,
        )
        return common.EXIT_USAGE
    try:
        return handler(args)
    except common.UsageError as exc:
        _report(exc, args.traceback)
        return common.EXIT_USAGE
    except common.CommandError as exc:
        _report(exc, args.traceback)
        return common.EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (| head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return common.EXIT_OK


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when only its parser is needed to parse it: the first word,
    after nothing but ``--traceback`` (``--help`` or ``--version`` before it need every parser)."""
    for word in argv:
        if word != "--traceback":
            return word if word in _MODULES else None
    return None


def _report(exc: Exception, with_traceback: bool) -> None:
    from ferroflow.cli import common

    if with_traceback:
        traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
    message = str(exc)
    database = common.current_db
    if database is not None and str(database) not in message:
        message += f" (database {database})"
    common.error(message)


class _VersionAction(argparse.Action):
    """``--version``: the version is read from the package metadata only when asked for (importing
    ``importlib.metadata`` costs every command about 15 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        import ferroflow

        print(f"{parser.prog} {ferroflow.__version__}")  # (on stdout, as argparse's version action)
        parser.exit()
