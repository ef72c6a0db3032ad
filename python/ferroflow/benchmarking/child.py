"""A fresh process for one measurement: ``python -m ferroflow.benchmarking.child JOB ...``.

Jobs: ``run`` (one run of one system, phases timed), ``resume`` (one saved flow resumed),
``resume-many`` (many saved flows resumed), ``dbos-crash`` / ``dbos-recover`` (a DBOS workflow
killed halfway, then recovered). Each prints one JSON line: the phases' seconds and the peak
resident memory of the process (``peak_rss_mb``; ``baseline_rss_mb`` is the peak before the job
started, after the imports); ``resume`` and ``dbos-recover`` also give ``first_atom``, the
`time.monotonic` at which the first resumed atom (DBOS: step) started. `run_child` starts one
and reads that line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferroflow.benchmarking import dbfiles, phases, resume


def _job(args: argparse.Namespace) -> dict[str, Any]:
    if args.job == "run":
        from ferroflow.benchmarking import suite

        case = suite.Case(suite.RUN, args.system, args.shape, args.store, args.engine, args.n)
        return {"phases": phases.time_phases(suite.make_run(case, args.workdir))}
    if args.job == "resume":
        stamps: dict[str, float] = {}
        timings = resume.resume_one(args.system, resume.location(args.db), args.flow, stamps)
        return {"phases": timings, **stamps}
    if args.job == "resume-many":
        uuids = json.loads(Path(args.uuids).read_text())
        return {"phases": resume.resume_many(args.system, resume.location(args.db), uuids), "flows": len(uuids)}
    from ferroflow.benchmarking import dbos_peer

    if args.job == "dbos-crash":
        with dbos_peer.session(Path(args.db)):
            dbos_peer.start_crashing_workflow(args.n, args.crash_at)
        return {}
    started = time.perf_counter()
    with dbos_peer.session(Path(args.db)):
        launched = time.perf_counter()
        dbos_peer.recover_workflow(args.workflow, args.n)
        finished = time.perf_counter()
    return {"phases": {"launch": launched - started, "run": finished - launched}, "first_atom": dbos_peer.first_step()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferroflow.benchmarking.child")
    parser.add_argument("job", choices=("run", "resume", "resume-many", "dbos-crash", "dbos-recover"))
    parser.add_argument("--system", default="ferroflow", choices=("ferroflow", "floor", "taskflow"))
    parser.add_argument("--shape", default="linear")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--store", default=dbfiles.MEMORY)
    parser.add_argument("--engine", default="serial")
    parser.add_argument("--workdir")
    parser.add_argument("--db")
    parser.add_argument("--flow")
    parser.add_argument("--uuids")
    parser.add_argument("--workflow")
    parser.add_argument("--crash-at", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    baseline = phases.peak_rss_mb()
    outcome = _job(args)
    outcome["baseline_rss_mb"] = baseline
    outcome["peak_rss_mb"] = phases.peak_rss_mb()
    print(json.dumps(outcome), flush=True)
    return 0


def run_child(argv: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Runs a child job (``argv`` after ``child``) in a fresh interpreter; its JSON outcome, plus
    ``process_seconds``: the child's wall time, interpreter start and imports included, and
    ``launched``: the `time.monotonic` (one clock for every process) just before it started."""
    command = [sys.executable, "-m", "ferroflow.benchmarking.child", *argv]
    launched = time.monotonic()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"benchmark child {' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    outcome: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    outcome["process_seconds"] = elapsed
    outcome["launched"] = launched
    outcome["stdout"] = done.stdout
    return outcome


if __name__ == "__main__":
    sys.exit(main())
