"""``ferroflow demo``: run a flow of a few thousand atoms, kill its process, resume it, check it.

The flow (`ferroflow.demo_flow`) runs in a child process (``ferroflow run``); this process watches
the database, SIGKILLs the child once the database shows about 40% of the atoms done and some
running, then resumes the flow here from the database alone and checks what was reused, what ran
again, and the result.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferroflow import states
from ferroflow.cli import common
from ferroflow.cli.progress import ProgressLine
from ferroflow.cli.resume import ResumeOutcome, resume_flow
from ferroflow.cli.run import flow_uuid_of

if TYPE_CHECKING:
    import subprocess

# (the demo flow, subprocess and tempfile are imported where the demo runs: every command imports
# this module to build the parser)

DESCRIPTION = """\
The kill-and-resume demo. Builds a checksum pipeline of --atoms atoms (a seed, then stages of
parallel shard tasks feeding a merge), runs it with `ferroflow run` in a child process, SIGKILLs
that process when the database shows about 40% of the atoms done (and some running), resumes
the flow in this process from the database, and reports which atoms were reused (done before the
kill, not run again), which ran again (running at the kill) and which ran only after the resume,
then checks the final checksum against one computed without an engine. The database is a temporary file,
removed at the end, unless --db is given. Exit status: 0 every check passed, 1 otherwise.
"""

KILL_FRACTION = 0.4
#: Fewer atoms make too few stages for a kill mid-stage to be likely.
MIN_ATOMS = 100
# Small flows do more work per task, so that a run lasts long enough to be killed part way.
_MIN_WORK_ATOMS = 1500


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a big flow, kill its process mid-run, resume it", description=DESCRIPTION
    )
    parser.add_argument(
        "--db", metavar="PATH", help="keep the flow in this SQLite file (default: a temporary file, removed at the end)"
    )
    parser.add_argument(
        "--atoms",
        type=common.positive_int,
        default=3000,
        metavar="N",
        help=f"atoms in the flow (default: 3000, at least {MIN_ATOMS})",
    )
    parser.add_argument(
        "--kill-after",
        type=_positive_float,
        metavar="SECONDS",
        help="kill the child this long after starting it (instead of when 40%% of the atoms are done)",
    )
    parser.set_defaults(handler=demo_command)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


@dataclass
class KillSnapshot:
    """Atom states in the database once the child was killed."""

    flow_uuid: str
    done: set[str]
    running: set[str]
    pending: set[str]


def demo_command(args: argparse.Namespace) -> int:
    from ferroflow import demo_flow

    atoms = args.atoms
    if atoms < MIN_ATOMS:
        raise common.UsageError(f"--atoms must be at least {MIN_ATOMS}, for the run to have stages to kill it in")
    rounds = max(demo_flow.DEFAULT_ROUNDS, demo_flow.DEFAULT_ROUNDS * _MIN_WORK_ATOMS // atoms)
    widths = demo_flow.stage_widths(atoms)
    with _database(args.db) as (path, temporary):
        print(
            f"ferroflow demo: a checksum pipeline of {atoms} atoms (a seed, then {len(widths)} stages of "
            f"{_span(widths)} parallel shard tasks + a merge), saved to {path}"
        )
        with common.open_backend(path) as backend:
            snapshot = _run_and_kill(backend, path, atoms, rounds, args.kill_after)
            print(
                f"\nstep 2/3: resume flow {snapshot.flow_uuid} in this process (pid {os.getpid()}), "
                "rebuilt by its saved factory, from the database alone",
                flush=True,
            )
            outcome = resume_flow(backend, snapshot.flow_uuid, {"engine": "serial"})
            print(f"  {outcome.summary()}", flush=True)
            print("\nstep 3/3: check", flush=True)
            ok = _report(backend, snapshot, outcome, atoms, rounds)
        if temporary:
            print(
                "\n(the database was a temporary file, now removed; keep one with --db PATH and look "
                f"at it with: ferroflow show {snapshot.flow_uuid} --db PATH)"
            )
        else:
            print(f"\nlook at the flow with: ferroflow show {snapshot.flow_uuid} --db {path}")
    return common.EXIT_OK if ok else common.EXIT_FAILED


@contextlib.contextmanager
def _database(given: str | None) -> Iterator[tuple[Path, bool]]:
    if given:
        yield common.db_path(given, must_exist=False), False
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ferroflow-demo-") as directory:
        yield Path(directory) / "demo.db", True


def _span(widths: list[int]) -> str:
    low, high = min(widths), max(widths)
    return str(low) if low == high else f"{low}-{high}"


# -- step 1: run in a child, kill it -------------------------------------------------------------


def _run_and_kill(backend: Any, path: Path, atoms: int, rounds: int, kill_after: float | None) -> KillSnapshot:
    import subprocess

    command = [
        sys.executable,
        "-m",
        "ferroflow",
        "run",
        "ferroflow.demo_flow:make_pipeline",
        "--arg",
        str(atoms),
        "--arg",
        str(rounds),
        "--db",
        str(path),
        "--no-progress",
    ]
    if kill_after:
        when = f"{kill_after:g}s after starting it"
    else:
        when = f"once {KILL_FRACTION:.0%} of the atoms are done and some are running"
    print(f"\nstep 1/3: run it in a child process, and SIGKILL that process {when} (read from the database)")
    print(f"  $ ferroflow {' '.join(command[3:])}", flush=True)
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        flow_uuid = _read_flow_uuid(child)
        done = _watch(backend, child, flow_uuid, atoms, started, kill_after)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    if child.returncode != -signal.SIGKILL:
        raise common.CommandError(
            f"the child process ended by itself (exit status {child.returncode}) at {done}/{atoms} atoms "
            "done, before it could be killed; try more --atoms or a smaller --kill-after"
        )
    saved = common.atom_states(backend, flow_uuid)
    by_name = saved.by_name
    snapshot = KillSnapshot(
        flow_uuid,
        done={name for name, state in by_name.items() if state == states.SUCCESS},
        running={name for name, state in by_name.items() if state == states.RUNNING},
        pending={name for name, state in by_name.items() if state not in (states.SUCCESS, states.RUNNING)},
    )
    print(
        f"  killed child pid {child.pid} (SIGKILL) with {len(snapshot.done)}/{atoms} atoms done; "
        f"the database holds {common.format_counts(saved.counts)}",
        flush=True,
    )
    return snapshot


def _read_flow_uuid(child: subprocess.Popen[str]) -> str:
    """The flow uuid the child prints once the flow is saved."""
    assert child.stdout is not None
    for line in child.stdout:
        flow_uuid = flow_uuid_of(line)
        if flow_uuid is not None:
            return flow_uuid
    raise common.CommandError(f"the child process exited (status {child.wait()}) before starting the flow")


def _watch(
    backend: Any, child: subprocess.Popen[str], flow_uuid: str, atoms: int, started: float, kill_after: float | None
) -> int:
    """Polls the database until the kill point, then kills the child; returns the atoms done."""
    progress = ProgressLine(f"  run (pid {child.pid})", atoms)
    target = math.ceil(atoms * KILL_FRACTION)
    done = 0
    try:
        while child.poll() is None:
            polled = time.monotonic()
            counts = common.atom_states(backend, flow_uuid).counts
            done = counts[states.SUCCESS]
            cost = time.monotonic() - polled
            progress.update(done)
            if kill_after:
                due = time.monotonic() - started >= kill_after
            else:  # mid-task, as a crash usually is: some atoms running
                due = done >= target and counts[states.RUNNING] > 0
            if due:
                child.kill()
                break
            # Reading the states costs time in proportion to the flow: poll less often for big flows.
            time.sleep(max(0.005, 2 * cost))
    finally:
        progress.finish()
    return done


# -- step 3: what happened, and is it right ------------------------------------------------------


def _report(backend: Any, snapshot: KillSnapshot, outcome: ResumeOutcome, atoms: int, rounds: int) -> bool:
    from ferroflow import demo_flow

    ran = outcome.ran
    print(f"  what happened to the {atoms} atoms:")
    print(f"  {len(snapshot.done):6d} reused: SUCCESS before the kill, saved results used, not run again")
    print(f"  {len(snapshot.running):6d} re-run: RUNNING when the child was killed, ran again after resuming")
    print(f"  {len(snapshot.pending):6d} run only after the resume: not started before the kill")
    checks = []
    ran_again = ran & snapshot.done
    checks.append(
        (
            not ran_again and outcome.reused == len(snapshot.done),
            "no atom done before the kill ran again; the resumed engine reused them all",
            f"{len(ran_again)} ran again, e.g. {sorted(ran_again)[:3]}; {outcome.reused} reused",
        )
    )
    not_run = (snapshot.running | snapshot.pending) - ran
    checks.append(
        (
            not not_run,
            "every atom not done at the kill ran after the resume",
            f"{len(not_run)} did not, e.g. {sorted(not_run)[:3]}",
        )
    )
    counts = common.atom_states(backend, snapshot.flow_uuid).counts
    checks.append(
        (
            outcome.state == states.SUCCESS and counts == {states.SUCCESS: atoms},
            f"the flow and all {atoms} atoms are SUCCESS in the database",
            f"flow {outcome.state}, atoms {common.format_counts(counts)}",
        )
    )
    checksum = None
    if outcome.state == states.SUCCESS:
        checksum = outcome.engine.storage.fetch(demo_flow.RESULT_NAME)
    expected = demo_flow.expected_checksum(atoms, rounds)
    checks.append(
        (
            checksum == expected,
            f"the final checksum {_hex(checksum)} equals the one computed without an engine",
            f"expected {_hex(expected)}",
        )
    )
    for ok, claim, otherwise in checks:
        print(f"  {'ok    ' if ok else 'FAILED'} {claim}" + ("" if ok else f": {otherwise}"))
    return all(ok for ok, _, _ in checks)


def _hex(value: Any) -> str:
    return f"{value:#018x}" if isinstance(value, int) else repr(value)
