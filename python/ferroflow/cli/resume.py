"""``ferroflow resume``: finish flows whose engine stopped part way (killed, interrupted, crashed)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ferroflow import states
from ferroflow.cli import common
from ferroflow.cli.progress import ProgressLine
from ferroflow.cli.run import report_outcome, run_engine

if TYPE_CHECKING:
    from ferroflow.engines.many import Resumer

DESCRIPTION = """\
Resume a flow saved in the database: its flow is rebuilt by the factory recorded when it was
started (imported from the working directory, and only from trusted modules: --trust MODULE,
else $FERROFLOW_TRUSTED_MODULES, else the package that saved the flow; never the standard
library), atoms that had finished keep their saved results and are not run again, atoms that
were running when the engine stopped run again, and the rest run. Without FLOW_UUID, resumes
the one flow that has not finished (not SUCCESS, REVERTED or FAILURE); with --all, every such
flow. A REVERTED flow is restarted from the beginning only when named.

When the code changed since the flow was saved: --migrations applies your Rename, Split and
Merge migrations to the saved atoms first; --on-version-change says what to do with completed
atoms whose version changed; --provider-change with those whose inputs now come from other
atoms; --rewind-to ATOM reverts the atoms after ATOM and runs them again (as `ferroflow rewind`).
`ferroflow plan` with the same options shows what will happen, before anything runs.

Exit status: 0 every resumed flow ended SUCCESS (or there was nothing to resume), 1 a flow
failed or could not be resumed, 2 usage error.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("resume", help="finish flows whose engine stopped part way", description=DESCRIPTION)
    parser.add_argument("flow", nargs="?", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--all", action="store_true", help="resume every flow that has not finished")
    parser.add_argument(
        "--rewind-to", metavar="ATOM", help="revert the atoms after ATOM, then run them again (a rewind)"
    )
    common.add_change_arguments(parser)
    common.add_db_argument(parser)
    common.add_engine_arguments(parser)
    common.add_trust_argument(parser)
    parser.set_defaults(handler=resume_command)


@dataclass
class ResumeOutcome:
    """What resuming one flow did."""

    flow_uuid: str
    flow_name: str
    state: str
    atoms: int
    #: Atoms already SUCCESS when the flow was resumed: their saved results were used.
    reused: int
    #: Atoms that executed during this run.
    ran: set[str] = field(default_factory=set)
    #: Atoms that were RUNNING when the previous engine stopped.
    interrupted: set[str] = field(default_factory=set)
    failure: tuple[str, Any] | None = None
    elapsed: float = 0.0
    engine: Any = None
    #: The atom a rewind went back to (``None``: a plain resume).
    rewound_to: str | None = None

    @property
    def rerun(self) -> set[str]:
        """Atoms that were running when the previous engine stopped and ran again."""
        return self.ran & self.interrupted

    def summary(self) -> str:
        head = f"flow {self.flow_uuid} ({common.printable(self.flow_name)}): {self.state} in {self.elapsed:.2f}s; "
        if self.rewound_to is not None:
            return head + f"rewound to {common.printable(self.rewound_to)}: {len(self.ran)} atoms run again"
        return head + (
            f"{self.reused} of {self.atoms} atoms reused (SUCCESS before resuming), "
            f"{len(self.ran)} run now ({len(self.rerun)} of them were RUNNING when the engine stopped)"
        )


def resume_command(args: argparse.Namespace) -> int:
    if args.flow and args.all:
        raise common.UsageError("give a FLOW_UUID or --all, not both")
    if args.rewind_to is not None and args.all:
        raise common.UsageError("--rewind-to rewinds one flow: give its FLOW_UUID, not --all")
    return resume_flows(args, rewind_to=args.rewind_to)


def resume_flows(args: argparse.Namespace, rewind_to: str | None = None) -> int:
    """Resumes (or rewinds) the flows ``args`` name (``resume`` and ``rewind``)."""
    store = common.locate_store(args.db, must_exist=True)
    options = {**common.engine_options(args), **common.trust_options(args), **common.change_options(args)}
    common.add_cwd_to_path()
    with common.open_store(store) as backend:
        from ferroflow.engines.many import Resumer

        targets = _targets(common.list_flows(backend), args.flow, getattr(args, "all", False))
        if not targets:
            print(f"nothing to resume: every flow in {store} has finished")
            return common.EXIT_OK
        if len(targets) > 1:
            return _resume_several(backend, targets, options, args.no_progress)
        resumer = Resumer(backend, **options)
        with resumer.held_writes():
            outcome = resume_flow(
                backend,
                targets[0].uuid,
                options,
                show_progress=not args.no_progress,
                rewind_to=rewind_to,
                resumer=resumer,
            )
        print(outcome.summary(), flush=True)
        return report_outcome(outcome.flow_uuid, outcome.state, outcome.failure)


def _resume_several(backend: Any, targets: list[common.FlowRecord], options: dict[str, Any], no_progress: bool) -> int:
    """Resumes the flows ``targets`` one after the other, as `ferroflow.engines.resume_many` does
    (flows built alike share their build and compilation, a chunk of flows is read, leased and
    prepared before its first flow runs, and with durability=batch their writes commit together),
    printing each flow's summary as it ends; one line counts the flows. A flow that cannot be
    resumed is reported and the others go on."""
    from ferroflow.engines import many

    status = common.EXIT_OK
    flows_line = ProgressLine("resume", len(targets), stream=sys.stderr, enabled=not no_progress, unit="flows")
    resumer = many.Resumer(backend, **options)
    uuids = [record.uuid for record in targets]
    with contextlib.closing(backend.get_connection()) as conn, resumer.held_writes():
        for record, (result, engine) in zip(targets, many.prepare_in_chunks(resumer, conn, uuids), strict=True):
            flows_line.clear()
            try:
                if engine is None:
                    assert result.error is not None  # (why it was not prepared)
                    # (a flow refused as it was read has no name in its result: the listing's)
                    raise _not_resumed(record.uuid, record.name, "resume", result.error)
                outcome = run_prepared(engine, result.flow_uuid, result.flow_name, backend, show_progress=False)
            except common.CommandError as exc:
                common.error(str(exc))
                status = common.EXIT_FAILED
            else:
                print(outcome.summary(), flush=True)
                status = max(status, report_outcome(outcome.flow_uuid, outcome.state, outcome.failure))
            flows_line.advance()
    flows_line.finish()
    return status


def _targets(flows: list[common.FlowRecord], key: str | None, every: bool) -> list[common.FlowRecord]:
    if key:
        return [common.find_flow(flows, key)]
    unfinished = [flow for flow in flows if flow.state not in common.FINISHED_STATES]
    if len(unfinished) > 1 and not every:
        listed = ", ".join(f"{flow.uuid} ({flow.name}, {flow.state})" for flow in unfinished)
        raise common.UsageError(f"{len(unfinished)} flows have not finished: {listed}; give a FLOW_UUID or --all")
    return unfinished


def resume_flow(
    backend: Any,
    flow_uuid: str,
    options: dict[str, Any],
    show_progress: bool = True,
    rewind_to: str | None = None,
    resumer: Resumer | None = None,
) -> ResumeOutcome:
    """Rebuilds the saved flow ``flow_uuid`` with its factory and runs it to its end (with
    ``rewind_to``, rewinds it to that atom first). ``resumer``: the `Resumer` that loads it, else
    one of its own. On SQLite the saved rows are read on a thread of their own while the factory
    builds the flow (several flows go through `_resume_several` instead)."""
    from ferroflow.engines.many import Resumer

    with contextlib.closing(backend.get_connection()) as conn:
        # SQLite: the engine reads the saved atoms as columns itself, so no model per atom here.
        flow_detail = conn.get_flow_details(flow_uuid, lazy=hasattr(backend, "store"))
    what = "rewind" if rewind_to is not None else "resume"
    if hasattr(backend, "read_ahead"):
        backend.read_ahead(flow_uuid, restoring=True)
    try:
        engine = (resumer or Resumer(backend, **options)).load(flow_detail)
        if rewind_to is not None:  # (the names only for this check: a resume's summary makes its own)
            names = [atom.name for atom in engine.compilation.atoms]
            if rewind_to not in names:
                shown = ", ".join(repr(name) for name in names[:10]) + (", ..." if len(names) > 10 else "")
                raise common.CommandError(
                    f"cannot rewind flow {flow_uuid} ({flow_detail.name}): it has no atom {rewind_to!r} "
                    f"(its atoms: {shown})"
                )
        engine.prepare()  # takes the flow's lease: refused while another live engine runs it
    except common.CommandError:
        raise
    except Exception as exc:
        raise _not_resumed(flow_uuid, flow_detail.name, what, exc) from exc
    return run_prepared(engine, flow_uuid, flow_detail.name, backend, show_progress, rewind_to)


def _not_resumed(flow_uuid: str, flow_name: str, what: str, exc: Exception) -> common.CommandError:
    """The error of a flow that could not be loaded or prepared (``what``: resume or rewind)."""
    return common.CommandError(f"cannot {what} flow {flow_uuid} ({flow_name}): {common.describe_load_error(exc)}")


def run_prepared(
    engine: Any,
    flow_uuid: str,
    flow_name: str,
    backend: Any,
    show_progress: bool = True,
    rewind_to: str | None = None,
) -> ResumeOutcome:
    """Runs the prepared engine of the saved flow ``flow_uuid`` to its end (with ``rewind_to``,
    rewinds it to that atom first), with a progress line unless not ``show_progress``.

    :raises CommandError: something other than its atoms stopped the run (see `run_engine`).
    """
    from ferroflow.engines.storage import STATE_CODES

    names = [atom.name for atom in engine.compilation.atoms]
    reused = engine.storage.states.count(STATE_CODES[states.SUCCESS])
    interrupted = {names[index] for index in engine._persist.interrupted}
    progress = ProgressLine("resume", len(names), done=reused, stream=sys.stderr, enabled=show_progress)
    outcome = ResumeOutcome(
        flow_uuid,
        flow_name,
        states.PENDING,
        len(names),
        reused,
        interrupted=interrupted,
        engine=engine,
        rewound_to=rewind_to,
    )
    if rewind_to is not None:
        from ferroflow.engines import resume_plan

        again = len(resume_plan.rewind_reverts(engine, rewind_to)["rerun"])
        progress = ProgressLine("rewind", len(names), done=len(names) - again, stream=sys.stderr, enabled=show_progress)
        action = lambda: engine.rewind(to=rewind_to)  # noqa: E731
    else:
        action = None
    # A rewind runs atoms that were SUCCESS again: only the events tell which.
    watcher = run_engine(
        engine, progress, flow_uuid, common.store_label(backend), action, follow_events=rewind_to is not None
    )
    outcome.state = engine.storage.get_flow_state()
    outcome.failure = watcher.first_failure
    outcome.ran = watcher.ran
    outcome.elapsed = progress.elapsed
    return outcome
