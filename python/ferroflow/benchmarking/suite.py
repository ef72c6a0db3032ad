"""The standard scenarios of ``ferroflow bench``, measured side by side in one process run.

A *case* is one scenario on one system at one size (`Case`); it is measured over several rounds
(`Result`). Cases of one *series* (same scenario, system, shape, store and engine) run in order of
size, so that a case predicted to take longer than the time budget is skipped rather than run: the
prediction scales the series' last round time by the growth measured between its last two sizes
(at least linear; TaskFlow, with one size measured, is assumed quadratic, as its scheduler
is). Peers also have fixed size caps, a safety net for the prediction.

Ratios compare medians of the headline cost per atom (or per flow) measured in the same run:
ferroflow against the floor (how many times the floor's cost ferroflow spends) and each peer
against ferroflow (how many times faster ferroflow is).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferroflow.benchmarking import DEFAULT_FLOWS, DEFAULT_MAX_SECONDS, DEFAULT_ROUNDS, DEFAULT_SIZES, dbfiles, phases
from ferroflow.benchmarking.phases import Summary

#: Scenarios, in the order they are reported.
RUN, RESUME, RESUME_MANY, PEAK_MEMORY = "run", "resume", "resume-many", "peak-memory"
SCENARIOS = (RUN, RESUME, RESUME_MANY, PEAK_MEMORY)
#: Systems, in the order they are reported.
FERROFLOW, FLOOR, TASKFLOW, DBOS = "ferroflow", "floor", "taskflow", "dbos"
SYSTEMS = (FERROFLOW, FLOOR, TASKFLOW, DBOS)
PEERS = (TASKFLOW, DBOS)
#: Atoms of each of the small flows of the resume-many scenario.
SMALL_FLOW_ATOMS = 10

#: Largest size (atoms; flows for resume-many) a peer is run at, whatever the prediction says: on
#: a 2-core machine TaskFlow spends ~10 ms/atom on a linear flow in memory at N=1,000 (quadratic),
#: ~90 ms/atom on SQLite (30 ms resumed; 4 ms on its directory backend); DBOS 2-20 ms/step on
#: SQLite (fsync'ed commits). Resume caps are per store.
PEER_CAPS: dict[tuple[str, str], int] = {
    (TASKFLOW, RUN + ":" + dbfiles.MEMORY): 10_000,
    (TASKFLOW, RUN + ":" + dbfiles.SQLITE): 1_000,
    (TASKFLOW, RESUME + ":" + dbfiles.SQLITE): 1_000,
    (TASKFLOW, RESUME + ":" + dbfiles.POSTGRES): 1_000,
    (TASKFLOW, RESUME + ":" + dbfiles.DIR): 10_000,
    (TASKFLOW, RESUME_MANY): 20,
    (DBOS, RUN + ":" + dbfiles.SQLITE): 10_000,
    (DBOS, RESUME + ":" + dbfiles.SQLITE): 10_000,
}


@dataclass(frozen=True)
class Case:
    """One scenario on one system at one size."""

    scenario: str
    system: str
    shape: str
    store: str
    engine: str
    #: Atoms of the flow; for resume-many, the number of small flows.
    n: int

    @property
    def series(self) -> tuple[str, str, str, str, str]:
        return self.scenario, self.system, self.shape, self.store, self.engine

    @property
    def unit(self) -> str:
        return "flows" if self.scenario == RESUME_MANY else "atoms"

    def label(self) -> str:
        return f"{self.scenario} {self.store} {self.engine} {self.shape} N={self.n} {self.system}"


@dataclass
class Result:
    """The rounds measured for one case (or why it has none)."""

    case: Case
    #: Seconds per phase, one dict per round.
    rounds: list[dict[str, float]] = field(default_factory=list)
    #: Peak resident memory (MiB) of the fresh process, per round (scenarios run in a child).
    peak_rss_mb: list[float] = field(default_factory=list)
    #: Why the case was skipped, or the error it raised.
    note: str | None = None
    failed: bool = False
    #: Ratio to each other system (see `compute_ratios`).
    ratios: dict[str, float] = field(default_factory=dict)
    #: Wall time of each round, setup included (for the time budget).
    wall: list[float] = field(default_factory=list)
    #: Per round, what a resume in a fresh process measures besides its phases (resume scenario;
    #: see `resumebench.resume_round`): ``process_seconds``, ``first_atom_seconds``, ``resumed_atoms``.
    extras: list[dict[str, float]] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return bool(self.rounds)

    def headline_seconds(self) -> list[float]:
        """Per round: the run phase (run scenarios) or everything a resume does."""
        if self.case.scenario in (RUN, PEAK_MEMORY):
            return [r["run"] for r in self.rounds]
        return [sum(r.values()) for r in self.rounds]

    def per_unit_us(self) -> Summary:
        """Microseconds of the headline cost per atom (per flow for resume-many)."""
        return Summary.of(self.headline_seconds()).scaled(1e6 / self.case.n)

    def total_per_unit_us(self) -> Summary:
        """Microseconds of all phases per atom (per flow)."""
        return Summary.of(sum(r.values()) for r in self.rounds).scaled(1e6 / self.case.n)

    def phase(self, name: str) -> Summary | None:
        values = [r[name] for r in self.rounds if name in r]
        return Summary.of(values) if values else None

    def flows_per_second(self) -> Summary | None:
        if self.case.scenario != RESUME_MANY or not self.rounds:
            return None
        return Summary.of(self.case.n / seconds for seconds in self.headline_seconds())

    def peak_rss(self) -> Summary | None:
        return Summary.of(self.peak_rss_mb) if self.peak_rss_mb else None


@dataclass
class Options:
    """What ``ferroflow bench`` asked for."""

    sizes: tuple[int, ...] = DEFAULT_SIZES
    rounds: int = DEFAULT_ROUNDS
    flows: int = DEFAULT_FLOWS
    peers: bool = False
    max_seconds: float = DEFAULT_MAX_SECONDS
    workdir: str | None = None
    #: ``--resume``: resumption throughput only (`resumebench.resume_cases`).
    resume: bool = False
    #: A PostgreSQL server URI (``--store postgresql://...``): resumes are also measured on new
    #: databases of it.
    postgres: str | None = None


def peer_available(system: str) -> bool:
    """True when the peer's package is installed."""
    module = {TASKFLOW: "taskflow", DBOS: "dbos"}[system]
    return importlib.util.find_spec(module) is not None


def standard_cases(options: Options) -> list[Case]:
    """The standard scenarios at the requested sizes, on ferroflow, the floor and (``peers``) the
    installed peers."""
    peers = [p for p in PEERS if options.peers and peer_available(p)]
    sizes = sorted(set(options.sizes))
    largest = sizes[-1]
    cases: list[Case] = []

    def add(
        scenario: str, systems: Iterable[str], shapes: Iterable[str], store: str, engine: str, ns: Iterable[int]
    ) -> None:
        for system in systems:
            for shape in shapes:
                cases.extend(Case(scenario, system, shape, store, engine, n) for n in ns)

    mem_peers = [p for p in peers if p == TASKFLOW]
    add(RUN, [FERROFLOW, FLOOR, *mem_peers], ["linear", "unordered", "graph"], dbfiles.MEMORY, "serial", sizes)
    add(RUN, [FERROFLOW], ["unordered", "graph"], dbfiles.MEMORY, "parallel", sizes)
    add(RUN, [FERROFLOW, FLOOR, *peers], ["linear", "graph"], dbfiles.SQLITE, "serial", sizes)
    add(RUN, [FERROFLOW, FLOOR], ["linear", "graph"], dbfiles.SQLITE_FSYNC, "serial", sizes)
    add(RUN, [FERROFLOW], ["linear", "graph"], dbfiles.SQLITE_BATCH, "serial", sizes)
    add(RUN, [FERROFLOW], ["unordered"], dbfiles.SQLITE, "parallel", sizes)
    add(RESUME, [FERROFLOW, *peers], ["linear"], dbfiles.SQLITE, "serial", sizes)
    many_systems = [FERROFLOW, *(p for p in peers if p == TASKFLOW)]
    for system in many_systems:
        count = min(options.flows, PEER_CAPS.get((system, RESUME_MANY), options.flows))
        cases.append(Case(RESUME_MANY, system, "linear", dbfiles.SQLITE, "serial", count))
    cases.append(Case(RESUME_MANY, FERROFLOW, "linear", dbfiles.SQLITE_BATCH, "serial", options.flows))
    add(PEAK_MEMORY, [FERROFLOW], ["linear"], dbfiles.MEMORY, "serial", [largest])
    add(PEAK_MEMORY, [FERROFLOW], ["linear"], dbfiles.SQLITE, "serial", [largest])
    return cases


def _cap(case: Case) -> int | None:
    key = case.scenario + ":" + case.store if case.scenario in (RUN, RESUME) else case.scenario
    return PEER_CAPS.get((case.system, key))


# -- measuring one round ---------------------------------------------------------------------------


def make_run(case: Case, workdir: str | None = None) -> phases.PhasedRun:
    """A fresh run of ``case``'s system, shape, size, store and engine (its phases not yet run)."""
    if case.system == FERROFLOW:
        from ferroflow.benchmarking.ferro import FerroflowRun

        return FerroflowRun(case.shape, case.n, case.store, case.engine, workdir)
    if case.system == FLOOR:
        from ferroflow.benchmarking.floor import FloorRun

        return FloorRun(case.shape, case.n, case.store, workdir)
    if case.system == TASKFLOW:
        from ferroflow.benchmarking.taskflow_peer import TaskflowRun

        return TaskflowRun(case.shape, case.n, case.store, case.engine, workdir)
    if case.system == DBOS:
        from ferroflow.benchmarking.dbos_peer import DbosRun

        return DbosRun(case.shape, case.n, case.store, workdir)
    raise ValueError(f"unknown system {case.system!r}; known: {', '.join(SYSTEMS)}")


def _round(
    case: Case, workdir: str, timeout: float, postgres: str | None = None
) -> tuple[dict[str, float], float | None, dict[str, float] | None]:
    """One round of ``case``: seconds per phase, the peak memory of its fresh process, and what a
    resume measures besides (`Result.extras`)."""
    from ferroflow.benchmarking import child, resume, resumebench

    if case.scenario == RUN:
        return phases.time_phases(make_run(case, workdir)), None, None
    if case.scenario == RESUME:
        return resumebench.resume_round(case, workdir, timeout, postgres)
    if case.scenario == PEAK_MEMORY:
        outcome = child.run_child(
            [
                "run",
                "--system",
                case.system,
                "--shape",
                case.shape,
                "--n",
                str(case.n),
                "--store",
                case.store,
                "--engine",
                case.engine,
                "--workdir",
                workdir,
            ],
            timeout,
        )
        return outcome["phases"], outcome["peak_rss_mb"], None
    path = dbfiles.new_db_path(workdir, f"{case.scenario}-{case.system}")
    try:
        uuids = resume.suspend_many(case.system, path, case.n, SMALL_FLOW_ATOMS)
        listing = resume.write_uuids(path, uuids)
        # (saved at the default durability; resumed at the case's)
        where = dbfiles.ferroflow_uri(path, case.store) if case.system == FERROFLOW else str(path)
        outcome = child.run_child(
            ["resume-many", "--system", case.system, "--db", where, "--uuids", str(listing)], timeout
        )
        listing.unlink()
    finally:
        dbfiles.remove_db(path)
    return outcome["phases"], outcome["peak_rss_mb"], None


# -- the suite ---------------------------------------------------------------------------------


def measure(case: Case, rounds: int, max_seconds: float, workdir: str, postgres: str | None = None) -> Result:
    """Up to ``rounds`` rounds of ``case``; fewer once they have taken ``max_seconds`` together.
    ``postgres``: the server of the ``postgres`` store (resume scenario)."""
    result = Result(case)
    spent = 0.0
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        timings, peak, extras = _round(case, workdir, max(10 * max_seconds, 60.0), postgres)
        wall = time.perf_counter() - started
        result.rounds.append(timings)
        result.wall.append(wall)
        if peak is not None:
            result.peak_rss_mb.append(peak)
        if extras is not None:
            result.extras.append(extras)
        spent += wall
        if spent >= max_seconds:
            break
    return result


def _skip_reason(case: Case, history: list[Result], max_seconds: float) -> str | None:
    """Why ``case`` is not to be run (its series' earlier results in ``history``), or None."""
    cap = _cap(case)
    if cap is not None and case.n > cap:
        return f"skipped: above the {case.system} size cap of {cap}"
    if history and history[-1].note and history[-1].note.startswith("skipped"):
        return history[-1].note
    predicted = predict_seconds(case, [r for r in history if r.measured])
    if predicted is not None and predicted > max_seconds:
        return f"skipped: one run predicted at {predicted:.0f}s > {max_seconds:g}s budget"
    return None


def predict_seconds(case: Case, measured: list[Result]) -> float | None:
    """Seconds one round of ``case`` should take, from its series' measured smaller sizes."""
    if not measured:
        return None
    last = measured[-1]
    last_seconds = Summary.of(last.wall).median
    if len(measured) >= 2 and measured[-2].case.n < last.case.n:
        before = measured[-2]
        growth = math.log(last_seconds / Summary.of(before.wall).median) / math.log(last.case.n / before.case.n)
    else:
        growth = 2.0 if case.system == TASKFLOW else 1.0
    return last_seconds * (case.n / last.case.n) ** min(max(growth, 1.0), 3.0)


@dataclass
class _DbosScope:
    """Keeps one DBOS session open across the DBOS run cases, and only while they run."""

    workdir: str
    _scope: Any = None

    def enter(self) -> None:
        if self._scope is None:
            from ferroflow.benchmarking import dbos_peer

            self._scope = dbos_peer.temporary_session(self.workdir)
            self._scope.__enter__()

    def exit(self) -> None:
        if self._scope is not None:
            scope, self._scope = self._scope, None
            scope.__exit__(None, None, None)


def run_suite(cases: list[Case], options: Options, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Measures every case, series by series; results in the order of ``cases``."""
    with _workdir(options.workdir) as workdir:
        dbos = _DbosScope(workdir)
        results: dict[Case, Result] = {}
        history: dict[tuple[str, ...], list[Result]] = {}
        try:
            for case in _series_order(cases):
                in_dbos_session = case.system == DBOS and case.scenario == RUN
                if in_dbos_session:
                    dbos.enter()
                else:
                    dbos.exit()
                earlier = history.setdefault(case.series, [])
                reason = _skip_reason(case, earlier, options.max_seconds)
                if reason is not None:
                    result = Result(case, note=reason)
                else:
                    try:
                        result = measure(case, options.rounds, options.max_seconds, workdir, options.postgres)
                    except Exception as exc:  # one broken case does not lose the others
                        result = Result(case, note=f"error: {type(exc).__name__}: {exc}", failed=True)
                results[case] = result
                earlier.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            dbos.exit()
    ordered = [results[case] for case in cases]
    compute_ratios(ordered)
    return ordered


def _series_order(cases: list[Case]) -> list[Case]:
    """Cases grouped by series (first appearance order), each series by increasing size."""
    first: dict[tuple[str, ...], int] = {}
    for index, case in enumerate(cases):
        first.setdefault(case.series, index)
    return sorted(cases, key=lambda case: (first[case.series], case.n))


@contextlib.contextmanager
def _workdir(given: str | None) -> Iterator[str]:
    """``given`` (created if needed), else a temporary directory removed afterwards."""
    if given:
        os.makedirs(given, exist_ok=True)
        yield str(Path(given).absolute())
        return
    with tempfile.TemporaryDirectory(prefix="ferroflow-bench-") as directory:
        yield directory


# -- ratios ------------------------------------------------------------------------------------


def _peer_store(store: str) -> str:
    """Peers have one SQLite durability (their defaults): compared with each of ferroflow's."""
    return dbfiles.SQLITE if store in (dbfiles.SQLITE_FSYNC, dbfiles.SQLITE_BATCH) else store


def compute_ratios(results: list[Result]) -> None:
    """Fills ``ratios`` of each measured ferroflow result.

    ``floor``: ferroflow's cost / the floor's (same shape, store and size; ≥ 1, lower is better).
    ``taskflow`` / ``dbos``: the peer's cost / ferroflow's (how many times faster ferroflow is), per
    atom at the same size, or per flow for resume-many.
    """
    index: dict[tuple[Any, ...], Result] = {}
    for result in results:
        if result.measured:
            case = result.case
            index[(case.scenario, case.system, case.shape, case.store, case.engine, case.n)] = result
            if case.scenario == RESUME_MANY:
                index[(case.scenario, case.system, case.shape, case.store, case.engine, None)] = result
    for result in results:
        case = result.case
        if case.system != FERROFLOW or not result.measured or case.scenario == PEAK_MEMORY:
            continue
        mine = result.per_unit_us().median
        if case.scenario == RUN:
            floor = index.get((RUN, FLOOR, case.shape, case.store, "serial", case.n))
            if floor is not None:
                result.ratios[FLOOR] = mine / floor.per_unit_us().median
        size = None if case.scenario == RESUME_MANY else case.n
        for peer in PEERS:
            other = index.get((case.scenario, peer, case.shape, _peer_store(case.store), case.engine, size))
            if other is not None and mine > 0:
                result.ratios[peer] = other.per_unit_us().median / mine


def iter_measured(results: Iterable[Result], system: str | None = None) -> Iterator[Result]:
    for result in results:
        if result.measured and (system is None or result.case.system == system):
            yield result
