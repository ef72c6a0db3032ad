"""``ferroflow bench``: the standard benchmarks, side by side with the floor, TaskFlow and DBOS."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ferroflow.cli import common

DESCRIPTION = """\
Measure ferroflow on flows of no-op atoms: linear, unordered and random-DAG flows run in memory
and on SQLite (default durability and fsync), serial and parallel engines, phase by phase
(build, load, compile, prepare, run); a flow suspended halfway resumed in a fresh process; many
small suspended flows resumed from one file; peak memory. The same work runs on the floor (a
hand-written topological loop over the same callables, and raw sqlite3 writes of the same rows)
and, with --peers, on TaskFlow and DBOS when they are installed (pip install 'ferroflow[compare]'),
at the sizes they finish within the time budget. Prints a table of the cost per atom, flows
resumed per second, peak memory and the ratios between systems measured in this run.

With --resume it measures resumption throughput as a user sees it instead: a linear flow of N
no-op atoms stopped halfway (suspended; DBOS's workflow killed) and resumed by a fresh process, on
SQLite, dir:// and, with --store postgresql://..., a new database of that server (the role must be
allowed to create databases); with --peers, TaskFlow (SQLAlchemy on SQLite and PostgreSQL, its
directory backend) and DBOS (SQLite). Prints the process's total seconds, the seconds from its
launch to the first resumed atom, atoms resumed per second and the ratios to ferroflow on SQLite;
--plot draws atoms/s and time to first atom against N.

With --board URI it measures conductors instead: jobs of 1 and of 20 no-op atoms posted on that
jobboard (under a board name of their own) and run by 1, 2 and 4 `ferroflow conductor`
processes, in jobs/s and atoms/s; their flows are kept in --store (default: the board's
database). On a postgresql:// board it also measures the per-atom cost of a linear flow on a new
database of that server (--sizes, default 10000; the role must be allowed to create databases),
and with --peers TaskFlow's SQLAlchemy backend on the same server.
Exit status: 0 every ferroflow case ran, 1 one failed, 2 usage error.
"""


def add_parser(subparsers: Any) -> None:
    from ferroflow import benchmarking  # (its defaults only: the benchmarks load when the command runs)

    parser = subparsers.add_parser(
        "bench", help="benchmark ferroflow against the floor, TaskFlow and DBOS", description=DESCRIPTION
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help=f"atoms per flow (default: {','.join(map(str, benchmarking.DEFAULT_SIZES))}; 10000 with --board)",
    )
    parser.add_argument(
        "--rounds",
        type=common.positive_int,
        metavar="R",
        help=f"runs of each case; the median is reported (default: {benchmarking.DEFAULT_ROUNDS}; 1 with --board)",
    )
    parser.add_argument(
        "--flows",
        type=common.positive_int,
        default=benchmarking.DEFAULT_FLOWS,
        metavar="F",
        help="small (10-atom) suspended flows to resume (default: %(default)s)",
    )
    parser.add_argument(
        "--peers", action="store_true", help="also run TaskFlow and DBOS, those installed (ferroflow[compare])"
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=benchmarking.DEFAULT_MAX_SECONDS,
        metavar="S",
        help="skip a case predicted to run longer; stop repeating one after it took this long (default: %(default)s)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement as JSON")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="draw cost per atom (--resume: atoms/s, first atom) against N as a PNG (matplotlib)",
    )
    parser.add_argument(
        "--workdir", metavar="DIR", help="where the databases go (default: a temporary directory, removed at the end)"
    )
    parser.add_argument(
        "--board", metavar="URI", help="measure conductors on this jobboard (postgresql://... or sqlite:///...)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="measure resumption throughput: atoms resumed/s, time to first atom"
    )
    parser.add_argument(
        "--store",
        metavar="URI",
        help="with --board: the conductors' store (default: the board); "
        "with --resume: a postgresql:// server to resume from too",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=bench_command)


def _sizes(text: str) -> tuple[int, ...]:
    sizes = []
    for part in text.split(","):
        value = common.positive_int(part.strip().replace("_", ""))
        if value < 2:
            raise argparse.ArgumentTypeError(f"sizes must be at least 2 (a flow suspended halfway), not {value}")
        sizes.append(value)
    return tuple(sorted(set(sizes)))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def bench_command(args: argparse.Namespace) -> int:
    from ferroflow.benchmarking import report, resumebench, suite

    if args.board:
        if args.resume:
            raise common.UsageError("--resume and --board are separate benchmarks: give one")
        return board_command(args)
    if args.store and not args.resume:
        raise common.UsageError("--store goes with --board or --resume")
    if args.store:
        _check_postgres_store(args.store)
    if args.plot:
        _check_matplotlib()
    options = suite.Options(
        sizes=args.sizes or suite.DEFAULT_SIZES,
        rounds=args.rounds or suite.DEFAULT_ROUNDS,
        flows=args.flows,
        peers=args.peers,
        max_seconds=args.max_seconds,
        workdir=args.workdir,
        resume=args.resume,
        postgres=args.store,
    )
    if args.peers:
        missing = [peer for peer in suite.PEERS if not suite.peer_available(peer)]
        if missing:
            print(
                f"ferroflow bench: not installed, not compared: {', '.join(missing)} "
                "(pip install 'ferroflow[compare]')",
                file=sys.stderr,
            )
    cases = resumebench.resume_cases(options) if args.resume else suite.standard_cases(options)

    def progress(result: suite.Result) -> None:
        if args.quiet:
            return
        rate = resumebench.atoms_per_second(result)
        if rate is not None:
            first = resumebench.extra(result, resumebench.FIRST_ATOM)
            what = f"{report.number(rate.median)} atoms/s, first atom after {first.median:.3f} s"  # type: ignore[union-attr]
            what += f" ({len(result.rounds)} runs)"
        elif result.measured:
            cost = result.per_unit_us()
            what = f"{report.number(cost.median)} us/{result.case.unit[:-1]} ({len(result.rounds)} runs)"
        else:
            what = result.note or ""
        print(f"  {result.case.label()}: {what}", file=sys.stderr, flush=True)

    if not args.quiet:
        print(
            f"ferroflow bench: {len(cases)} cases, sizes {', '.join(f'{n:,}' for n in options.sizes)}, "
            f"{options.rounds} runs each",
            file=sys.stderr,
            flush=True,
        )
    results = suite.run_suite(cases, options, on_result=progress)
    if args.resume:
        resumebench.compute_resume_ratios(results)
    if args.json:  # first: the measurements are what took time
        report.write_json(args.json, results, options)
    print(resumebench.text_report(results) if args.resume else report.text_report(results))
    if args.json:
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            (resumebench.plot if args.resume else report.plot)(args.plot, results)
        except (report.PlotUnavailable, ValueError) as exc:
            raise common.CommandError(str(exc)) from exc
        print(f"wrote {args.plot}")
    failed = [r for r in results if r.failed and r.case.system == suite.FERROFLOW]
    if failed:
        raise common.CommandError(
            f"{len(failed)} ferroflow case(s) failed: " + "; ".join(f"{r.case.label()}: {r.note}" for r in failed)
        )
    return common.EXIT_OK


def board_command(args: argparse.Namespace) -> int:
    """``ferroflow bench --board URI``: conductors on that board (and the store's per-atom cost)."""
    import json

    from ferroflow.benchmarking import board

    if args.plot:
        raise common.UsageError("--plot draws the standard benchmarks, not --board's")
    options = board.BoardOptions(
        board=args.board,
        store=args.store,
        rounds=args.rounds or 1,
        sizes=args.sizes or (10_000,),
        peers=args.peers,
        max_seconds=args.max_seconds,
        workdir=args.workdir,
    )

    def progress(m: board.Measurement) -> None:
        if not args.quiet:
            what = ", ".join(f"{v:,.1f}" for v in m.values) + f" {m.unit}" if m.values else m.note
            print(f"  {m.system} {m.detail} N={m.n:,}: {what}", file=sys.stderr, flush=True)

    if not args.quiet:
        print(f"ferroflow bench: conductors on {board._label(args.board)}", file=sys.stderr, flush=True)
    try:
        report = board.run_board_bench(options, progress)
    except ValueError as exc:
        raise common.UsageError(f"--board {board._label(args.board)}: {exc}") from None
    except Exception as exc:
        raise common.CommandError(f"cannot measure on {board._label(args.board)}: {exc}") from None
    if args.json:
        with open(args.json, "w") as out:
            json.dump({k: v for k, v in report.items() if not k.startswith("_")}, out, indent=2)
    print(board.text_report(report))
    if args.json:
        print(f"\nwrote {args.json}")
    failed = [m for m in report["_results"] if m.system == "ferroflow" and m.note.startswith("failed")]
    if failed:
        raise common.CommandError(f"{len(failed)} measurement(s) failed: " + "; ".join(m.note for m in failed))
    return common.EXIT_OK


def _check_postgres_store(uri: str) -> None:
    """``--store`` of ``--resume``: a PostgreSQL server where databases can be created, checked
    before measuring anything."""
    from ferroflow.benchmarking import report, resumebench

    if not uri.startswith(("postgresql://", "postgres://")):
        raise common.UsageError(
            f"--store with --resume takes a postgresql:// server URI, not {uri.split('://')[0]}:// "
            "(SQLite and dir:// are always measured)"
        )
    try:
        resumebench.check_server(uri)
    except Exception as exc:
        raise common.CommandError(
            f"cannot create a database on {report.server_label(uri)} (--store): {type(exc).__name__}: {exc}"
        ) from None


def _check_matplotlib() -> None:
    """Fails before measuring anything, not after, when the plot cannot be drawn."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise common.UsageError("--plot needs matplotlib: pip install 'ferroflow[plot]'")
