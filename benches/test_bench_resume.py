"""Resuming suspended flows in a FRESH process, from the store alone.

``resume-halfway-<store>``: a linear flow suspended once half its atoms were done (DBOS: killed at
the middle step) is resumed by a new interpreter (load: open the store, read the flow detail,
rebuild the flow with its factory; match: load an engine on the detail, compile, prepare; run), on
SQLite and ``dir://``, as ``ferroflow bench --resume`` does (`ferroflow.benchmarking.resumebench`);
``extra_info`` has its figures: the process's seconds, the seconds from launch to the first resumed
atom, atoms resumed per second. ``resume-small-flows``: 1,000 suspended
10-atom flows resumed one after the other by one new process (ferroflow with
`ferroflow.engines.resume_many`, at the default durability and at ``durability=batch``; read
``extra_info["flows_per_second"]``). The time measured is the whole child process (interpreter
start and imports included); its own phase timings are in ``extra_info``.
"""

from __future__ import annotations

import contextlib
import statistics

import pytest

from bench_support import SIZES, cap
from ferroflow.benchmarking import child, dbfiles, resume, resumebench, suite

SMALL_FLOWS, SMALL_FLOWS_CI = 3_000, 200


def _peer(system: str) -> None:
    if system != "ferroflow":
        pytest.importorskip(system)


def _record(benchmark, outcome: dict) -> None:
    for phase, seconds in outcome["phases"].items():
        benchmark.extra_info[f"{phase}_seconds"] = seconds
    benchmark.extra_info["peak_rss_mb"] = outcome["peak_rss_mb"]


def _record_throughput(benchmark, extras: dict) -> None:
    """What ``ferroflow bench --resume`` reports: the whole process, the first resumed atom."""
    benchmark.extra_info["process_seconds"] = extras[resumebench.PROCESS]
    benchmark.extra_info["first_atom_seconds"] = extras[resumebench.FIRST_ATOM]
    benchmark.extra_info["atoms_resumed_per_second"] = extras[resumebench.RESUMED] / extras[resumebench.PROCESS]


def _resume_halfway(benchmark, tmp_path, case: suite.Case, rounds: int) -> None:
    """Times the fresh process resuming ``case``'s flow, stopped halfway in an untimed setup."""
    benchmark.group = f"resume-halfway-{case.store}"
    benchmark.extra_info.update(atoms=case.n, system=case.system, store=case.store)
    outcomes = []
    locations = contextlib.ExitStack()

    def setup():
        where = locations.enter_context(resumebench.new_location(case, tmp_path))
        return (resumebench.stop_halfway(case, where),), {}

    def resume_in_child(argv):
        outcomes.append(resumebench.resume_in_child(case, argv))

    with locations:
        benchmark.pedantic(resume_in_child, setup=setup, rounds=rounds)
    timings, peak, extras = outcomes[-1]
    benchmark.extra_info.update({f"{phase}_seconds": seconds for phase, seconds in timings.items()})
    benchmark.extra_info["peak_rss_mb"] = peak
    _record_throughput(benchmark, extras)
    assert extras[resumebench.RESUMED] == case.n - case.n // 2
    assert 0 < extras[resumebench.FIRST_ATOM] < extras[resumebench.PROCESS]


@pytest.mark.parametrize("n", [100, *SIZES])
@pytest.mark.parametrize("store", [dbfiles.SQLITE, dbfiles.DIR])
@pytest.mark.parametrize("system", ["ferroflow", "taskflow"])
def test_resume_halfway(benchmark, tmp_path, ci_mode: bool, system: str, store: str, n: int) -> None:
    _peer(system)
    if system == "taskflow":
        cap(n, ci_mode, full=100 if store == dbfiles.SQLITE else 1_000, ci=100)
    elif store == dbfiles.DIR:
        cap(n, ci_mode, ci=1_000)
    case = suite.Case(suite.RESUME, system, "linear", store, "serial", n)
    _resume_halfway(benchmark, tmp_path, case, rounds=3)
    assert set(benchmark.extra_info) >= {"load_seconds", "match_seconds", "run_seconds"}


def test_resume_halfway_dbos(benchmark, tmp_path, ci_mode: bool) -> None:
    pytest.importorskip("dbos")
    case = suite.Case(suite.RESUME, "dbos", "linear", dbfiles.SQLITE, "serial", 100)
    _resume_halfway(benchmark, tmp_path, case, rounds=1 if ci_mode else 3)


@pytest.mark.parametrize(
    ("system", "store"),
    [("ferroflow", dbfiles.SQLITE), ("ferroflow", dbfiles.SQLITE_BATCH), ("taskflow", dbfiles.SQLITE)],
)
def test_resume_small_flows(benchmark, tmp_path, ci_mode: bool, system: str, store: str) -> None:
    _peer(system)
    count = (SMALL_FLOWS_CI if ci_mode else SMALL_FLOWS) if system == "ferroflow" else (5 if ci_mode else 20)
    benchmark.group = "resume-small-flows"
    benchmark.extra_info.update(flows=count, atoms_per_flow=10, system=system, store=store)
    outcomes = []

    def setup():
        path = dbfiles.new_db_path(tmp_path, "many")
        listing = resume.write_uuids(path, resume.suspend_many(system, path, count))
        return (path, listing), {}

    def resume_in_child(path, listing):
        # ferroflow resumes them with engines.resume_many, at the store's durability.
        where = dbfiles.ferroflow_uri(path, store) if system == "ferroflow" else str(path)
        outcomes.append(child.run_child(["resume-many", "--system", system, "--db", where, "--uuids", str(listing)]))

    benchmark.pedantic(resume_in_child, setup=setup, rounds=1 if ci_mode else 3)
    assert all(outcome["flows"] == count for outcome in outcomes)
    _record(benchmark, outcomes[-1])
    # (each round's own figure, and their median: one round of ~0.1-0.3 s is at the mercy of a
    # busy moment of the machine)
    rates = [count / sum(outcome["phases"].values()) for outcome in outcomes]
    benchmark.extra_info["flows_per_second_rounds"] = [round(rate) for rate in rates]
    benchmark.extra_info["flows_per_second"] = statistics.median(rates)
