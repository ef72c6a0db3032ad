"""``ferroflow check``: a health report of the flows in a database, for cron and CI."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ferroflow import states
from ferroflow.cli import common

DESCRIPTION = """\
Check the flows saved in the database and report what needs attention:

  dead-owner       a flow RUNNING (or resuming, reverting) whose engine is gone: its process no
                   longer exists, its lease expired, or nobody holds it; resume it
  stuck-pending    a flow PENDING for longer than --pending-for that no engine holds
  factory          an unfinished flow whose factory no longer imports (or is not trusted, or
                   fails): it cannot be resumed as it is
  version          a completed atom whose saved version differs from the code's
  orphan           a saved atom that is no longer in the flow's code (reverted from its saved
                   reference if the flow rolls back)
  orphan-revert    such an atom that could not be reverted: its reference does not import, is
                   not trusted, or its revert failed before
  will-fail        an atom the resume would stop at (a version policy "fail", a failed revert)
  plan             the resume cannot be planned (migrations that do not fit, ...)

Unfinished flows (not SUCCESS, REVERTED or FAILURE) are rebuilt by their saved factory, under
the same trust as `ferroflow resume` (--trust MODULE, else $FERROFLOW_TRUSTED_MODULES, else
the package that saved the flow), and planned without running or writing anything; --all checks
finished flows too. The store is opened read-only. Exit status: 0 nothing needs attention,
1 something does (each problem on one line: flow, kind, what and what to do), 2 usage error.
"""

#: States in which an engine is working on the flow: it must have a live owner.
ACTIVE_STATES = frozenset({states.RUNNING, states.RESUMING, states.REVERTING, states.SUSPENDING})
#: Orphan states a rollback reverts.
_REVERTED_ON_ROLLBACK = frozenset({states.SUCCESS, states.REVERTING})


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="report flows that need attention (exit 1 if any)", description=DESCRIPTION
    )
    parser.add_argument(
        "--pending-for",
        type=common.parse_duration,
        default=600.0,
        metavar="AGE",
        help="a flow PENDING this long with no engine is stuck (default: 10m; like 90s, 15m, 12h, 7d)",
    )
    parser.add_argument("--all", action="store_true", help="also rebuild and plan the flows that have finished")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    common.add_db_argument(parser)
    common.add_trust_argument(parser)
    parser.set_defaults(handler=check_command)


@dataclass
class Problem:
    kind: str
    message: str
    atom: str | None = None


@dataclass
class FlowReport:
    uuid: str
    name: str
    state: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, kind: str, message: str, atom: str | None = None) -> None:
        self.problems.append(Problem(kind, message, atom))


def check_command(args: argparse.Namespace) -> int:
    store = common.locate_store(args.db, must_exist=True)
    options = common.trust_options(args)
    common.add_cwd_to_path()
    now = time.time()
    reports = []
    with common.open_store(store, read_only=True) as backend:
        for flow in common.list_flows(backend):
            report = FlowReport(flow.uuid, flow.name, flow.state)
            _check_owner(backend, flow, report, args.pending_for, now)
            if args.all or flow.state not in common.FINISHED_STATES:
                _check_code(backend, flow, report, options)
            reports.append(report)
    troubled = [report for report in reports if report.problems]
    problems = sum(len(report.problems) for report in troubled)
    if args.json:
        print(
            json.dumps(
                {
                    "database": store.label,
                    "flows_checked": len(reports),
                    "needing_attention": len(troubled),
                    "flows": [asdict(report) for report in troubled],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for report in troubled:
            for problem in report.problems:
                print(
                    common.printable(
                        f"flow {report.uuid} ({report.name}, {report.state}): {problem.kind}: {problem.message}"
                    )
                )
        checked = f"{common.plural(len(reports), 'flow')} checked in {store}"
        if troubled:
            print(f"\n{checked}: {len(troubled)} need attention ({common.plural(problems, 'problem')})")
        else:
            print(f"{checked}: nothing needs attention")
    return common.EXIT_FAILED if troubled else common.EXIT_OK


# -- owners --------------------------------------------------------------------------------------


def _check_owner(backend: Any, flow: common.FlowRecord, report: FlowReport, pending_for: float, now: float) -> None:
    if flow.state not in ACTIVE_STATES and flow.state != states.PENDING:
        return
    with contextlib.closing(backend.get_connection()) as conn:
        owner = common.owner_of(conn, flow.uuid, now)
    if owner is not None and owner.live:
        return
    resume = f"resume it: ferroflow resume {flow.uuid}"
    if flow.state in ACTIVE_STATES:
        why = owner.why if owner is not None else "no engine holds it (its engine stopped without finishing it)"
        report.add("dead-owner", f"{flow.state} but its engine is dead: {why}; {resume}")
        return
    # (a dir:// store keeps no time of a flow's last change: a PENDING flow is dated by its logbook)
    updated = common.last_change(backend, flow) or flow.created_at or now
    idle = now - updated
    if idle >= pending_for:
        report.add(
            "stuck-pending",
            f"PENDING for {common.format_duration(idle)} and no engine holds it; {resume}, "
            f"or remove it: ferroflow delete {flow.uuid}",
        )


# -- code ----------------------------------------------------------------------------------------


def _check_code(backend: Any, flow: common.FlowRecord, report: FlowReport, options: dict[str, Any]) -> None:
    from ferroflow import engines, exceptions

    if flow.factory is None:
        if flow.state not in common.FINISHED_STATES:
            report.add(
                "factory",
                "saved without a factory, so it cannot be resumed from the command line (load it with "
                f"engines.load_from_factory to make it resumable), or remove it: ferroflow delete {flow.uuid}",
            )
        return
    with contextlib.closing(backend.get_connection()) as conn:
        flow_detail = conn.get_flow_details(flow.uuid, lazy=True)
        details = list(conn.get_atoms_for_flow(flow.uuid))
        try:
            engine = engines.load_from_detail(flow_detail, backend=backend, **options)
            engine.compile()
        except exceptions.UntrustedCode as exc:
            report.add("factory", f"factory {flow.factory} is not trusted: {exc}")
            return
        except ImportError as exc:
            report.add("factory", f"factory {flow.factory} no longer imports: {exc}; {common.import_hint()}")
            return
        except Exception as exc:
            report.add("factory", f"factory {flow.factory} could not rebuild the flow: {type(exc).__name__}: {exc}")
            return
        try:
            plan = engine.plan()
        except Exception as exc:
            report.add("plan", f"its resume cannot be planned: {type(exc).__name__}: {exc}")
            return
        by_name = {ad.name: ad for ad in details}
        for entry in plan:
            if entry.action == "orphan":
                _check_orphan(conn, engine, flow, report, entry, by_name.get(entry.name))
                continue
            if entry.action == "fail":
                report.add("will-fail", f"atom {entry.name!r}: {entry.reason}", entry.name)
            if (
                entry.saved_state == states.SUCCESS
                and entry.saved_version is not None
                and entry.version is not None
                and entry.saved_version != entry.version
            ):
                report.add(
                    "version",
                    f"atom {entry.name!r} completed at version {entry.saved_version}, the code is at "
                    f"{entry.version}: a resume will {entry.action} it ({entry.reason}); see ferroflow plan "
                    f"{flow.uuid}",
                    entry.name,
                )


def _check_orphan(conn: Any, engine: Any, flow: common.FlowRecord, report: FlowReport, entry: Any, ad: Any) -> None:
    from ferroflow.engines import revert_refs
    from ferroflow.migrations import OrphanRevertError

    name = entry.name
    report.add(
        "orphan",
        f"saved atom {name!r} ({entry.saved_state}) is no longer in the flow's code; a rollback reverts it from "
        "its saved revert reference, so its class must stay importable",
        name,
    )
    if entry.saved_state == states.REVERT_FAILURE:
        report.add("orphan-revert", f"orphan {name!r}: its revert failed before", name)
        return
    if entry.saved_state not in _REVERTED_ON_ROLLBACK or ad is None:
        return
    try:
        record = revert_refs.decode_record(conn.resume_record(ad.uuid))
    except Exception as exc:  # a backend without resume records
        record = {}
        reason = f"its resume record cannot be read: {exc}"
    else:
        reason = ""
    try:
        if reason:
            raise OrphanRevertError(name, reason)
        revert_refs.rebuild(name, record.get("revert"), revert_refs.trust_for(engine), f"{flow.name!r} ({flow.uuid})")
    except OrphanRevertError as exc:
        report.add("orphan-revert", f"orphan {name!r} cannot be reverted if the flow rolls back: {exc}", name)
