"""Resuming suspended flows in a FRESH process, from the SQLite file alone.

``resume-halfway``: a linear flow suspended once half its atoms were done is resumed by a new
interpreter (load: open the file, read the flow detail, rebuild the flow with its factory; match:
load an engine on the detail, compile, prepare; run). ``resume-small-flows``: 1,000 suspended
10-atom flows resumed one after the other by one new process. The time measured is the whole
child process (interpreter start and imports included); its own phase timings are in
``extra_info``.
"""

from __future__ import annotations

import pytest

from bench_support import SIZES, cap
from ferroflow.benchmarking import child, dbfiles, resume

SMALL_FLOWS, SMALL_FLOWS_CI = 1_000, 200


def _peer(system: str) -> None:
    if system != "ferroflow":
        pytest.importorskip(system)


def _record(benchmark, outcome: dict) -> None:
    for phase, seconds in outcome["phases"].items():
        benchmark.extra_info[f"{phase}_seconds"] = seconds
    benchmark.extra_info["peak_rss_mb"] = outcome["peak_rss_mb"]


@pytest.mark.parametrize("n", [100, *SIZES])
@pytest.mark.parametrize("system", ["ferroflow", "taskflow"])
def test_resume_halfway(benchmark, tmp_path, ci_mode: bool, system: str, n: int) -> None:
    _peer(system)
    if system == "taskflow":
        cap(n, ci_mode, full=100, ci=100)
    benchmark.group = "resume-halfway"
    benchmark.extra_info.update(atoms=n, system=system)
    outcomes = []

    def setup():
        path = dbfiles.new_db_path(tmp_path, "resume")
        return (path, resume.suspend_halfway(system, path, "linear", n)), {}

    def resume_in_child(path, flow_uuid):
        outcomes.append(child.run_child(["resume", "--system", system, "--db", str(path), "--flow", flow_uuid]))

    benchmark.pedantic(resume_in_child, setup=setup, rounds=3)
    assert set(outcomes[-1]["phases"]) == {"load", "match", "run"}
    _record(benchmark, outcomes[-1])


def test_resume_halfway_dbos(benchmark, tmp_path, ci_mode: bool) -> None:
    pytest.importorskip("dbos")
    n = 100
    benchmark.group = "resume-halfway"
    benchmark.extra_info.update(atoms=n, system="dbos")
    outcomes = []

    def setup():
        path = dbfiles.new_db_path(tmp_path, "dbos-resume")
        crashed = child.run_child(["dbos-crash", "--db", str(path), "--n", str(n), "--crash-at", str(n // 2)])
        return (path, crashed["stdout"].split()[0]), {}

    def recover_in_child(path, workflow_id):
        outcomes.append(child.run_child(["dbos-recover", "--db", str(path), "--workflow", workflow_id,
                                         "--n", str(n)]))

    benchmark.pedantic(recover_in_child, setup=setup, rounds=1 if ci_mode else 3)
    _record(benchmark, outcomes[-1])


@pytest.mark.parametrize("system", ["ferroflow", "taskflow"])
def test_resume_small_flows(benchmark, tmp_path, ci_mode: bool, system: str) -> None:
    _peer(system)
    count = (SMALL_FLOWS_CI if ci_mode else SMALL_FLOWS) if system == "ferroflow" else (5 if ci_mode else 20)
    benchmark.group = "resume-small-flows"
    benchmark.extra_info.update(flows=count, atoms_per_flow=10, system=system)
    outcomes = []

    def setup():
        path = dbfiles.new_db_path(tmp_path, "many")
        listing = resume.write_uuids(path, resume.suspend_many(system, path, count))
        return (path, listing), {}

    def resume_in_child(path, listing):
        outcomes.append(child.run_child(["resume-many", "--system", system, "--db", str(path),
                                         "--uuids", str(listing)]))

    benchmark.pedantic(resume_in_child, setup=setup, rounds=1 if ci_mode else 3)
    outcome = outcomes[-1]
    assert outcome["flows"] == count
    _record(benchmark, outcome)
    benchmark.extra_info["flows_per_second"] = count / sum(outcome["phases"].values())
