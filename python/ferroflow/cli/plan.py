"""``ferroflow plan``: what resuming a saved flow would do, atom by atom, before anything runs."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ferroflow.cli import common

DESCRIPTION = """\
Show the resumption plan of a flow saved in the database: its flow is rebuilt by the factory
recorded when it was started (imported from the working directory, as `ferroflow resume` does,
and only from trusted modules: --trust MODULE, else $FERROFLOW_TRUSTED_MODULES, else the package
that saved the flow; never the standard library) and matched against what is saved, without
running or writing anything. One line per atom and per saved detail: saved state and version,
current version, the action resuming takes (reuse, run, rerun, revert, orphan, migrate, ignore,
fail) and why. A plan of more than 100 lines folds each run of 3 or more consecutive atoms with
the same states, versions, action and reason into one line ("t0 … t49999 (50000 atoms)"); --all
prints every line. Without FLOW_UUID, plans the one flow that has not finished (none: says so and
exits 0). --migrations, --on-version-change, --provider-change and --rewind-to plan the resume
that `ferroflow resume` runs with the same options. --json prints every entry as JSON, for tools.
The store is opened read-only.
Exit status: 0 planned (or nothing to plan), 1 the flow could not be rebuilt or planned, 2 usage
error.
"""


#: A plan with more entries than this is printed folded (see DESCRIPTION) unless --all is given.
FOLD_OVER = 100


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan", help="show what resuming a flow would do, before it runs", description=DESCRIPTION
    )
    parser.add_argument("flow", nargs="?", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"one line per entry (a table of more than {FOLD_OVER} lines folds runs of alike atoms)",
    )
    parser.add_argument("--rewind-to", metavar="ATOM", help="plan a rewind to ATOM instead of a resume")
    common.add_change_arguments(parser)
    common.add_db_argument(parser)
    common.add_trust_argument(parser)
    parser.set_defaults(handler=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    from ferroflow import engines
    from ferroflow.engines import resume_plan

    store = common.locate_store(args.db, must_exist=True)
    common.add_cwd_to_path()
    options = {**common.change_options(args), **common.trust_options(args)}
    with common.open_store(store, read_only=True) as backend:
        record = _target(common.list_flows(backend), args.flow)
        if record is None:
            print(f"nothing to plan: every flow in {store} has finished (name one to plan it anyway)")
            return common.EXIT_OK
        with contextlib.closing(backend.get_connection()) as conn:
            flow_detail = conn.get_flow_details(record.uuid, lazy=True)
        if hasattr(backend, "read_ahead"):  # (SQLite: the saved rows are read while the factory builds the flow)
            backend.read_ahead(record.uuid, restoring=False)
        try:
            engine = engines.load_from_detail(flow_detail, backend=backend, **options)
            plan = engine.plan(rewind_to=args.rewind_to)
        except Exception as exc:
            raise common.CommandError(
                f"cannot plan flow {record.uuid} ({record.name}): {common.describe_load_error(exc)}"
            ) from exc
    if args.json:
        print(resume_plan.dumps(plan))
    else:
        counts = ", ".join(f"{n} {action}" for action, n in sorted(plan.counts().items()))
        print(f"flow {plan.flow_uuid} ({common.printable(plan.flow_name)}): {counts or 'nothing saved'}\n")
        fold = not args.all and len(plan) > FOLD_OVER
        table = plan.format_table(fold=fold, escape=common.printable)
        if fold and table.count("\n") < len(plan):
            table += "\n(runs of alike atoms folded: --all prints one line per atom)"
        print(table)
    return common.EXIT_OK


def _target(flows: list[common.FlowRecord], key: str | None) -> common.FlowRecord | None:
    if key:
        return common.find_flow(flows, key)
    unfinished = [flow for flow in flows if flow.state not in common.FINISHED_STATES]
    if not unfinished:
        return None
    if len(unfinished) != 1:
        listed = ", ".join(f"{flow.uuid} ({flow.name}, {flow.state})" for flow in unfinished) or "none"
        raise common.UsageError(f"{len(unfinished)} flows have not finished ({listed}); give a FLOW_UUID")
    return unfinished[0]
