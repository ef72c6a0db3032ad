"""``ferroflow bench`` and the benchmark scenarios behind it, at tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys

import pytest

from ferroflow.benchmarking import dbfiles, floor, flows, phases, report, resume, suite
from ferroflow.benchmarking.ferro import FerroflowRun
from ferroflow.cli import main

HAVE_TASKFLOW = importlib.util.find_spec("taskflow") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _bench(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["bench", "--rounds", "1", "--flows", "3", "--quiet", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _records(path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def _find(records: list[dict], **fields) -> dict:
    found = [r for r in records if all(r[k] == v for k, v in fields.items())]
    assert len(found) == 1, (fields, found)
    return found[0]


# -- the command -----------------------------------------------------------------------------------


def test_bench_prints_the_table_and_writes_json(tmp_path, capsys) -> None:
    out_json = tmp_path / "bench.json"
    status, out, _ = _bench(capsys, "--sizes", "8,16", "--json", str(out_json), "--workdir", str(tmp_path / "w"))
    assert status == 0
    assert "x floor" in out and "us/atom" in out and "flows/s" in out
    records = _records(out_json)
    scenarios = {(r["scenario"], r["system"]) for r in records}
    assert {
        ("run", "ferroflow"),
        ("run", "floor"),
        ("resume", "ferroflow"),
        ("resume-many", "ferroflow"),
        ("peak-memory", "ferroflow"),
    } <= scenarios
    assert not any(r["failed"] for r in records), [r["note"] for r in records if r["failed"]]
    run = _find(records, scenario="run", system="ferroflow", store="memory", engine="serial", shape="graph", n=16)
    assert set(run["rounds"][0]) == {"build", "load", "compile", "prepare", "run"}
    assert run["summary"]["per_unit_us"]["median"] > 0
    assert run["ratios"]["floor"] > 0
    for store in ("sqlite", "sqlite-batch"):  # (engines.resume_many at both durabilities)
        many = _find(records, scenario="resume-many", system="ferroflow", store=store)
        assert many["n"] == 3 and many["summary"]["flows_per_second"]["median"] > 0
    peak = _find(records, scenario="peak-memory", system="ferroflow", store="sqlite")
    assert peak["n"] == 16 and peak["summary"]["peak_rss_mb"]["median"] > 5
    resumed = _find(records, scenario="resume", system="ferroflow", n=8)
    assert set(resumed["rounds"][0]) == {"load", "match", "run"}
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").glob("*.db"))  # databases removed


@pytest.mark.skipif(not (HAVE_TASKFLOW and HAVE_MATPLOTLIB), reason="needs ferroflow[compare,plot]")
def test_bench_with_peers_reports_ratios_and_plots(tmp_path, capsys) -> None:
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    status, out, _ = _bench(capsys, "--sizes", "6", "--peers", "--json", str(out_json), "--plot", str(out_png))
    assert status == 0
    assert "x TaskFlow" in out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = _records(out_json)
    tf = _find(records, scenario="run", system="taskflow", store="memory", shape="linear", n=6)
    assert tf["summary"]["per_unit_us"]["median"] > 0
    ff = _find(records, scenario="run", system="ferroflow", store="memory", engine="serial", shape="linear", n=6)
    expected = tf["summary"]["per_unit_us"]["median"] / ff["summary"]["per_unit_us"]["median"]
    assert ff["ratios"]["taskflow"] == pytest.approx(expected)
    if importlib.util.find_spec("dbos") is not None:
        dbos = _find(records, scenario="resume", system="dbos", n=6)
        assert dbos["summary"]["per_unit_us"]["median"] > 0
        assert (
            "dbos"
            in _find(records, scenario="run", system="ferroflow", store="sqlite", shape="graph", engine="serial", n=6)[
                "ratios"
            ]
        )


@pytest.mark.parametrize(
    "argv", [["--sizes", "0"], ["--sizes", "1"], ["--sizes", "ten"], ["--rounds", "0"], ["--max-seconds", "-1"]]
)
def test_bench_usage_errors(capsys, argv: list[str]) -> None:
    status = main(["bench", *argv])
    assert status == 2
    assert "error" in capsys.readouterr().err


def test_plot_without_matplotlib_is_a_usage_error_before_measuring(monkeypatch, capsys, tmp_path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    status = main(["bench", "--sizes", "4", "--plot", str(tmp_path / "p.png")])
    assert status == 2
    assert "ferroflow[plot]" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_bench_is_listed_in_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ferroflow", "bench", "--help"], capture_output=True, text=True, check=True
    )
    assert "--peers" in done.stdout and "--plot" in done.stdout and "--sizes" in done.stdout


# -- the scenarios ---------------------------------------------------------------------------------


def test_dag_is_fixed_and_points_backwards() -> None:
    requires = flows.dag_requires(200)
    assert requires == flows.dag_requires(200)
    assert all(all(j < i for j in req) and len(req) <= 3 for i, req in enumerate(requires))
    assert any(len(req) == 3 for req in requires)
    atoms = {atom.name: atom for atom, _ in flows.random_dag(200).iter_nodes()}
    assert list(atoms["t7"].requires) == [f"v{j}" for j in requires[7]]


@pytest.mark.parametrize("shape", flows.SHAPES)
@pytest.mark.parametrize("store", dbfiles.STORES)
def test_floor_runs_every_atom_and_writes_every_transition(tmp_path, shape: str, store: str) -> None:
    run = floor.FloorRun(shape, 50, store, tmp_path)
    for phase in run.phases:
        phases.run_phase(run, phase)
    if shape == "graph":
        assert run.results == [1] * 50
    assert run.indegree == [0] * 50
    if store != dbfiles.MEMORY:
        rows = sqlite3.connect(run.db_path).execute("SELECT state, COUNT(*) FROM atomdetails GROUP BY state")
        assert dict(rows.fetchall()) == {"SUCCESS": 50}
    run.close()
    assert not run.db_path or not run.db_path.exists()


def test_ferroflow_run_phases_and_cleanup(tmp_path) -> None:
    run = FerroflowRun("graph", 30, dbfiles.SQLITE_FSYNC, "parallel", tmp_path)
    path = run.db_path
    timings = phases.time_phases(run)
    assert list(timings) == ["build", "load", "compile", "prepare", "run"]
    assert all(seconds >= 0 for seconds in timings.values())
    assert not path.exists()
    with pytest.raises(ValueError, match="no phase 'resume'"):
        phases.run_until(FerroflowRun("linear", 3), "resume")


def test_suspend_halfway_then_resume_in_this_process(tmp_path) -> None:
    path = dbfiles.new_db_path(tmp_path, "r")
    flow_uuid = resume.suspend_halfway("ferroflow", path, "linear", 10)
    conn = sqlite3.connect(path)
    states = dict(conn.execute("SELECT state, COUNT(*) FROM atomdetails WHERE name LIKE 't%' GROUP BY state"))
    assert states == {"SUCCESS": 5, "PENDING": 5}
    timings = resume.resume_one("ferroflow", path, flow_uuid)
    assert set(timings) == {"load", "match", "run"}
    states = dict(conn.execute("SELECT state, COUNT(*) FROM atomdetails WHERE name LIKE 't%' GROUP BY state"))
    assert states == {"SUCCESS": 10}


# -- suite logic -----------------------------------------------------------------------------------


def _result(
    system: str, n: int, run_seconds: list[float], scenario: str = suite.RUN, store: str = dbfiles.MEMORY
) -> suite.Result:
    case = suite.Case(scenario, system, "linear", store, "serial", n)
    return suite.Result(case, rounds=[{"build": 1.0, "run": s} for s in run_seconds], wall=[s + 1 for s in run_seconds])


def test_ratios_compare_medians_per_atom_in_the_same_run() -> None:
    ferro = _result(suite.FERROFLOW, 1000, [0.010, 0.002, 0.003])  # median 3 us/atom
    results = [
        ferro,
        _result(suite.FLOOR, 1000, [0.0005, 0.001]),
        _result(suite.TASKFLOW, 1000, [30.0]),
        _result(suite.TASKFLOW, 100, [0.5]),
    ]
    suite.compute_ratios(results)
    assert ferro.per_unit_us().median == pytest.approx(3.0)
    assert ferro.ratios[suite.FLOOR] == pytest.approx(3.0 / 0.75)
    assert ferro.ratios[suite.TASKFLOW] == pytest.approx(30_000 / 3.0)  # same N only, not N=100
    assert suite.DBOS not in ferro.ratios


def test_peers_on_sqlite_are_compared_with_both_durabilities() -> None:
    fsync = _result(suite.FERROFLOW, 100, [0.5], store=dbfiles.SQLITE_FSYNC)
    default = _result(suite.FERROFLOW, 100, [0.01], store=dbfiles.SQLITE)
    dbos = _result(suite.DBOS, 100, [1.0], store=dbfiles.SQLITE)
    suite.compute_ratios([fsync, default, dbos])
    assert fsync.ratios[suite.DBOS] == pytest.approx(2.0)
    assert default.ratios[suite.DBOS] == pytest.approx(100.0)


def test_cases_over_a_cap_or_the_time_budget_are_skipped() -> None:
    big = suite.Case(suite.RUN, suite.TASKFLOW, "linear", dbfiles.SQLITE, "serial", 10_000)
    assert "size cap" in suite._skip_reason(big, [], 60)
    one = [_result(suite.FERROFLOW, 1000, [1.0])]  # wall 2 s at N=1,000 -> 200 s at 100,000 (linear)
    nxt = suite.Case(suite.RUN, suite.FERROFLOW, "linear", dbfiles.MEMORY, "serial", 100_000)
    assert "predicted at 200s" in suite._skip_reason(nxt, one, 60)
    assert suite._skip_reason(nxt, one, 300) is None
    skipped = suite.Result(nxt, note="skipped: whatever")
    assert suite._skip_reason(suite.Case(*nxt.series, 1_000_000), [*one, skipped], 1e9) == "skipped: whatever"


def test_prediction_follows_the_measured_growth() -> None:
    quadratic = [_result(suite.TASKFLOW, 100, [0.0]), _result(suite.TASKFLOW, 1000, [99.0])]  # wall 1 s, 100 s
    case = suite.Case(suite.RUN, suite.TASKFLOW, "linear", dbfiles.MEMORY, "serial", 10_000)
    assert suite.predict_seconds(case, quadratic) == pytest.approx(10_000)
    # TaskFlow measured at one size only is assumed quadratic, the others linear; never below linear.
    assert suite.predict_seconds(case, quadratic[1:]) == pytest.approx(10_000)
    flat = [_result(suite.FERROFLOW, 100, [1.0]), _result(suite.FERROFLOW, 1000, [1.0])]
    assert suite.predict_seconds(suite.Case(*flat[0].case.series, 10_000), flat) == pytest.approx(20.0)


def test_standard_cases_follow_the_options() -> None:
    cases = suite.standard_cases(suite.Options(sizes=(10, 20), flows=7, peers=False))
    assert {c.system for c in cases} == {suite.FERROFLOW, suite.FLOOR}
    assert {c.n for c in cases if c.scenario == suite.RUN} == {10, 20}
    many = [(c.store, c.n) for c in cases if c.scenario == suite.RESUME_MANY]
    assert many == [("sqlite", 7), ("sqlite-batch", 7)]
    assert {(c.store, c.n) for c in cases if c.scenario == suite.PEAK_MEMORY} == {("memory", 20), ("sqlite", 20)}


def test_table_rows_of_skipped_and_failed_cases_fit_the_headers() -> None:
    measured = _result(suite.FERROFLOW, 100, [0.001])
    skipped = suite.Result(
        suite.Case(suite.RUN, suite.TASKFLOW, "linear", "memory", "serial", 10**6), note="skipped: above the cap"
    )
    headers, rows = report.result_rows([measured, skipped])
    assert [len(row) for row in rows] == [len(headers)] * 2
    assert rows[1][-1] == "skipped: above the cap" and rows[0][headers.index("cost")] == "10.0 us/atom"
    assert "skipped: above the cap" in report.text_report([measured, skipped])


def test_numbers_are_shown_with_sensible_digits() -> None:
    assert [report.number(v) for v in (0.1234, 12.345, 123.4, 12345.6)] == ["0.12", "12.3", "123", "12,346"]


# -- ferroflow bench --resume ----------------------------------------------------------------------


def _resume_records(tmp_path, capsys, *argv: str) -> tuple[str, list[dict]]:
    out_json = tmp_path / "resume.json"
    status = main(
        [
            "bench",
            "--resume",
            "--sizes",
            "100",
            "--rounds",
            "1",
            "--quiet",
            "--json",
            str(out_json),
            "--workdir",
            str(tmp_path / "w"),
            *argv,
        ]
    )
    out, _ = capsys.readouterr()
    assert status == 0, out
    return out, _records(out_json)


def test_bench_resume_reports_throughput_on_sqlite_and_dir(tmp_path, capsys) -> None:
    out, records = _resume_records(tmp_path, capsys)
    header = out.splitlines()[0].split()
    assert header[:5] == ["system", "store", "N", "resumed", "runs"]
    for column in ("total s", "first atom s", "atoms/s", "x total", "x first", "in-process s", "peak MB"):
        assert column in out.splitlines()[0]
    assert "suspended" in out and "first resumed atom" in out  # the legend says what was measured
    assert [(r["system"], r["store"], r["n"]) for r in records] == [
        ("ferroflow", "sqlite", 100),
        ("ferroflow", "dir", 100),
    ]
    for record in records:
        assert record["scenario"] == "resume" and not record["failed"], record["note"]
        resumed = record["summary"]["resume"]
        assert resumed["resumed_atoms"] == 50
        total = resumed["process_seconds"]["median"]
        first = resumed["first_atom_seconds"]["median"]
        assert 0 < first < total  # the first resumed atom starts after the launch and before the exit
        assert resumed["atoms_per_second"]["median"] == pytest.approx(50 / total)
        assert set(record["rounds"][0]) == {"load", "match", "run"}
        assert set(record["extras"][0]) == {"process_seconds", "first_atom_seconds", "resumed_atoms"}
    sqlite_row, dir_row = records
    assert sqlite_row["ratios"]["total_vs_ferroflow_sqlite"] == 1.0
    expected = (
        dir_row["summary"]["resume"]["process_seconds"]["median"]
        / sqlite_row["summary"]["resume"]["process_seconds"]["median"]
    )
    assert dir_row["ratios"]["total_vs_ferroflow_sqlite"] == pytest.approx(expected)
    options = json.loads((tmp_path / "resume.json").read_text())["options"]
    assert options["resume"] is True and options["postgres"] is None
    work = tmp_path / "w"
    assert not list(work.glob("*.db")) and not list(work.glob("*.dir"))  # stores removed


def test_resume_cases_follow_the_options(monkeypatch) -> None:
    from ferroflow.benchmarking import resumebench

    monkeypatch.setattr(suite, "peer_available", lambda peer: True)
    alone = resumebench.resume_cases(suite.Options(sizes=(10, 20), resume=True))
    assert {(c.system, c.store) for c in alone} == {("ferroflow", "sqlite"), ("ferroflow", "dir")}
    assert {c.n for c in alone} == {10, 20} and {c.scenario for c in alone} == {suite.RESUME}
    everything = resumebench.resume_cases(suite.Options(sizes=(10,), peers=True, postgres="postgresql://h/db"))
    assert [(c.system, c.store) for c in everything] == [
        ("ferroflow", "sqlite"),
        ("ferroflow", "dir"),
        ("ferroflow", "postgres"),
        ("taskflow", "sqlite"),
        ("taskflow", "dir"),
        ("taskflow", "postgres"),
        ("dbos", "sqlite"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--store", "sqlite:///x.db"], "postgresql://"), (["--board", "sqlite:///b.db"], "--resume and --board")],
)
def test_bench_resume_usage_errors(capsys, argv: list[str], message: str) -> None:
    status = main(["bench", "--resume", "--sizes", "4", *argv])
    assert status == 2
    assert message in capsys.readouterr().err


def test_bench_store_without_board_or_resume_is_a_usage_error(capsys) -> None:
    assert main(["bench", "--store", "postgresql://h/db"]) == 2
    assert "--board or --resume" in capsys.readouterr().err


def test_bench_resume_table_rows_of_skipped_cases_fit_the_headers() -> None:
    from ferroflow.benchmarking import resumebench

    skipped = suite.Result(
        suite.Case(suite.RESUME, suite.TASKFLOW, "linear", "dir", "serial", 10**5), note="skipped: above the cap"
    )
    headers, rows = resumebench.result_rows([skipped])
    assert len(rows[0]) == len(headers) and rows[0][-1] == "skipped: above the cap"


def test_bench_resume_on_a_postgres_server(tmp_path, capsys) -> None:
    import postgres_server

    admin_uri = postgres_server.server().admin_uri  # skipped (failed in CI) without a server
    _, records = _resume_records(tmp_path, capsys, "--store", admin_uri)
    assert [r["store"] for r in records] == ["sqlite", "dir", "postgres"]
    postgres = records[2]
    assert not postgres["failed"], postgres["note"]
    assert postgres["summary"]["resume"]["resumed_atoms"] == 50
    assert postgres["ratios"]["first_atom_vs_ferroflow_sqlite"] > 0
    options = json.loads((tmp_path / "resume.json").read_text())["options"]
    assert options["postgres"].startswith("postgresql://") and "@" not in options["postgres"]  # no password
    import psycopg

    with psycopg.connect(admin_uri) as conn:  # the benchmark's databases were dropped
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE '%resume%'").fetchall()
    assert left == []


def test_bench_resume_on_an_unreachable_server_fails_before_measuring(tmp_path, capsys) -> None:
    pytest.importorskip("psycopg")
    status = main(
        [
            "bench",
            "--resume",
            "--sizes",
            "4",
            "--store",
            "postgresql://nobody:secret@127.0.0.1:1/x",
            "--workdir",
            str(tmp_path / "w"),
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot create a database on postgresql://127.0.0.1:1/x" in err and "secret" not in err
    assert not (tmp_path / "w").exists()
