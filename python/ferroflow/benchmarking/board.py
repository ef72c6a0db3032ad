"""``ferroflow bench --board URI``: conductors on a jobboard, and the per-atom cost of the store on
the same PostgreSQL server, beside TaskFlow's (with ``--peers``), measured in one run.

- Conductors: jobs of 1 and of 20 no-op atoms, run by 1, 2 and 4 ``ferroflow conductor``
  processes (`ferroflow.benchmarking.jobs`): jobs/s and atoms/s.
- On a ``postgresql://`` board: the run phase of a linear flow of no-op atoms on a new database of
  that server (its role must be allowed to create databases), ferroflow with its default
  durability; with ``peers``, TaskFlow 6.5's SQLAlchemy backend on the same server, at the sizes
  predicted to finish within ``max_seconds`` (it grows faster than linearly); and TaskFlow's
  blocking conductors on its Redis jobboard (a private ``redis-server``, when installed) with
  their flows on the same server (`taskflow_jobs`), on the same one-atom jobs.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ferroflow.benchmarking import jobs as bench_jobs

__all__ = ["BoardOptions", "run_board_bench", "text_report"]

#: TaskFlow's sizes on PostgreSQL, tried in order while predicted to fit the time budget.
TASKFLOW_SIZES = (100, 1_000, 10_000)
#: One-atom jobs per measurement of TaskFlow's conductors (a few jobs/s).
TASKFLOW_JOBS = 60


@dataclass
class BoardOptions:
    board: str
    store: str | None = None
    conductors: tuple[int, ...] = bench_jobs.DEFAULT_CONDUCTORS
    atoms: tuple[int, ...] = bench_jobs.DEFAULT_ATOMS
    #: Jobs per measurement (None: `jobs.default_jobs`).
    jobs: int | None = None
    rounds: int = 1
    #: Atoms of the linear flow whose per-atom cost is measured on PostgreSQL.
    sizes: tuple[int, ...] = (10_000,)
    peers: bool = False
    max_seconds: float = 60.0
    workdir: str | None = None


@dataclass
class Measurement:
    what: str
    system: str
    detail: str
    n: int
    #: Per round: jobs/s (conductors) or µs/atom (per-atom cost).
    values: list[float] = field(default_factory=list)
    unit: str = ""
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def is_postgres(uri: str) -> bool:
    return urlsplit(uri).scheme in ("postgresql", "postgres")


def run_board_bench(options: BoardOptions, progress: Callable[[Measurement], None] | None = None) -> dict[str, Any]:
    """Every measurement of ``options``; a dict with ``load`` (before, after) and ``measurements``."""
    results: list[Measurement] = []

    def done(measurement: Measurement) -> None:
        results.append(measurement)
        if progress is not None:
            progress(measurement)

    load_before = os.getloadavg()
    for atoms in options.atoms:
        jobs = options.jobs or bench_jobs.default_jobs(atoms)
        for conductors in options.conductors:
            m = Measurement("conductors", "ferroflow", f"{conductors} conductor(s), {atoms}-atom jobs", jobs)
            m.unit = "jobs/s"
            try:
                for _ in range(options.rounds):
                    r = bench_jobs.measure_conductors(
                        options.board, conductors, jobs, atoms, store_uri=options.store, workdir=options.workdir
                    )
                    m.values.append(r.jobs_per_second)
            except Exception as exc:  # reported, the other measurements go on
                m.note = f"failed: {type(exc).__name__}: {exc}"
            done(m)
    if is_postgres(options.board):
        _per_atom(options, done)
        if options.peers:
            _taskflow_conductors(options, done)
    return {
        "board": _label(options.board),
        "load": {"before": load_before, "after": os.getloadavg()},
        "measurements": [asdict(m) | {"median": m.median} for m in results],
        "_results": results,
    }


def _per_atom(options: BoardOptions, done: Callable[[Measurement], None]) -> None:
    from ferroflow.benchmarking import postgres

    server = options.store if options.store and is_postgres(options.store) else options.board
    for n in options.sizes:
        m = Measurement("per-atom", "ferroflow", "linear, durability=process (default)", n, unit="us/atom")
        try:
            m.values = postgres.run_us_per_atom(
                lambda n=n: postgres.FerroflowPostgresRun(server, "linear", n), n, options.rounds
            )
        except Exception as exc:
            m.note = f"failed: {type(exc).__name__}: {exc}"
        done(m)
    if not options.peers:
        return
    if importlib.util.find_spec("taskflow") is None:
        done(Measurement("per-atom", "taskflow", "not installed (pip install 'ferroflow[compare]')", 0))
        return
    last: tuple[int, float] | None = None
    for n in TASKFLOW_SIZES:
        if n > max(options.sizes):
            break
        m = Measurement("per-atom", "taskflow", "linear, SQLAlchemy backend (its defaults)", n, unit="us/atom")
        if last is not None:
            predicted = last[1] * (n / last[0]) * 1.5  # its cost per atom grows with N
            if predicted > options.max_seconds:
                m.note = f"skipped: predicted {predicted:.0f} s > --max-seconds {options.max_seconds:g}"
                done(m)
                break
        started = time.perf_counter()
        try:
            m.values = postgres.run_us_per_atom(lambda n=n: postgres.TaskflowPostgresRun(server, n), n, 1)
        except Exception as exc:
            m.note = f"failed: {type(exc).__name__}: {exc}"
            done(m)
            break
        last = (n, time.perf_counter() - started)
        done(m)


def _taskflow_conductors(options: BoardOptions, done: Callable[[Measurement], None]) -> None:
    from ferroflow.benchmarking import taskflow_jobs

    why = taskflow_jobs.available()
    if why is not None:
        done(Measurement("conductors", "taskflow", "Redis board", 0, note=f"not measured: {why}"))
        return
    server = options.store if options.store and is_postgres(options.store) else options.board
    for conductors in options.conductors:
        m = Measurement(
            "conductors", "taskflow", f"{conductors} conductor(s), 1-atom jobs", TASKFLOW_JOBS, unit="jobs/s"
        )
        try:  # one round: its rate hardly varies (its conductors sleep between looks)
            r = taskflow_jobs.measure_conductors(server, conductors, TASKFLOW_JOBS, 1)
            m.values.append(r.jobs_per_second)
        except Exception as exc:
            m.note = f"failed: {type(exc).__name__}: {exc}"
        done(m)


def _label(uri: str) -> str:
    from ferroflow.benchmarking.report import server_label

    return uri if urlsplit(uri).scheme == "sqlite" else server_label(uri)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def text_report(report: dict[str, Any]) -> str:
    results: list[Measurement] = report["_results"]
    before, after = report["load"]["before"], report["load"]["after"]
    lines = [
        f"Board {report['board']}; load average {before[0]:.2f} before, {after[0]:.2f} after ({os.cpu_count()} CPUs)",
        "",
        "| System | Conductors | Atoms per job | Jobs | Jobs/s (median) | Atoms/s (median) | Runs (jobs/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in results:
        if m.what != "conductors":
            continue
        if " conductor(s), " not in m.detail:
            lines.append(f"| {m.system} | - | - | - | - | - | {m.note} |")
            continue
        conductors, atoms = m.detail.split(" conductor(s), ")
        atoms = atoms.split("-")[0]
        median = m.median
        runs = ", ".join(_number(v) for v in m.values) or m.note
        atoms_s = None if median is None else median * int(atoms)
        system = "TaskFlow 6.5 (Redis board)" if m.system == "taskflow" else "ferroflow"
        lines.append(
            f"| {system} | {conductors} | {atoms} | {m.n:,} | {_number(median)} | {_number(atoms_s)} | {runs} |"
        )
    per_atom = [m for m in results if m.what == "per-atom"]
    if per_atom:
        lines += ["", "| Per-atom cost, run phase | N | µs/atom (median) | Runs |", "|---|---|---|---|"]
        for m in per_atom:
            runs = ", ".join(_number(v) for v in m.values) or m.note
            lines.append(f"| {m.system}: {m.detail} | {m.n:,} | {_number(m.median)} | {runs} |")
    return "\n".join(lines)
