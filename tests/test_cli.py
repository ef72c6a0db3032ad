"""The ``ferroflow`` command line, run as real processes (``python -m ferroflow``) on real files."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from ferroflow import demo_flow, engines
from ferroflow.cli import main
from ferroflow.cli.progress import ProgressLine
from ferroflow.persistence import backends

FLOWS_MODULE = '''
import os
import time

from ferroflow import task
from ferroflow.patterns import linear_flow


class Step(task.Task):
    """Adds one to ``total``; appends its name to executions.log each time it runs."""

    def execute(self, total, delay):
        with open("executions.log", "a") as log:
            log.write(self.name + "\\n")
        time.sleep(delay)
        return total + 1


class Boom(task.Task):
    def execute(self):
        raise ValueError("boom in explode")


def chain(n, delay=0.0):
    flow = linear_flow.Flow("chain")
    flow.add(Step("step-000", inject={"total": 0, "delay": delay}, provides="total-000"))
    for i in range(1, n):
        flow.add(Step(f"step-{i:03d}", rebind={"total": f"total-{i - 1:03d}"}, inject={"delay": delay},
                      provides=f"total-{i:03d}"))
    return flow


def failing():
    start = {"total": 0, "delay": 0.0}
    flow = linear_flow.Flow("failing")
    return flow.add(Step("first", inject=start), Boom("explode"), Step("never", inject=start))


not_callable = 42
'''


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "cliflows.py").write_text(textwrap.dedent(FLOWS_MODULE))
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FERROFLOW_DB", None)
    return env


def ferroflow(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "ferroflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _flow_uuid(stdout: str) -> str:
    match = re.search(r"^flow ([0-9a-f-]{36}) ", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def _atom_states(db: Path, flow_uuid: str) -> Counter[str]:
    backend = backends.fetch(f"sqlite:///{db}")
    try:
        with backend.get_connection() as conn:
            return Counter(ad.state for ad in conn.get_atoms_for_flow(flow_uuid))
    finally:
        backend.close()


def _assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "error" in lines[0] and "Traceback" not in stderr
    for word in words:
        assert word in lines[0], stderr


# -- run and show -----------------------------------------------------------------------------------


def test_run_then_show_lists_the_flow_as_success(workdir: Path) -> None:
    result = ferroflow("run", "cliflows:chain", "--arg", "5", "--db", "flows.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    flow_uuid = _flow_uuid(result.stdout)
    assert f"flow {flow_uuid} (chain): SUCCESS" in result.stdout
    assert "5/5 atoms" in result.stderr  # the final progress line

    listing = ferroflow("show", "--db", "flows.db", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(flow_uuid))
    assert row.split()[1:3] == ["chain", "SUCCESS"]
    assert "5: 5 SUCCESS" in row and "cliflows.chain" in row

    as_json = json.loads(ferroflow("show", "--db", "flows.db", "--json", cwd=workdir).stdout)
    assert [(f["uuid"], f["state"], f["atoms"], f["factory"]) for f in as_json] == [
        (flow_uuid, "SUCCESS", {"SUCCESS": 5}, "cliflows.chain")
    ]


def test_show_flow_json_has_every_atom_with_its_result(workdir: Path) -> None:
    run = ferroflow("run", "cliflows:chain", "--arg", "3", "--db", "f.db", cwd=workdir)
    flow_uuid = _flow_uuid(run.stdout)
    result = ferroflow("show", flow_uuid[:8], "--db", "f.db", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    flow = json.loads(result.stdout)
    assert flow["uuid"] == flow_uuid and flow["state"] == "SUCCESS"
    assert flow["factory"] == {"name": "cliflows.chain", "args": [3], "kwargs": {}}
    assert [(a["name"], a["state"], a["results"]) for a in flow["atoms"]] == [
        ("step-000", "SUCCESS", 1), ("step-001", "SUCCESS", 2), ("step-002", "SUCCESS", 3)
    ]

    table = ferroflow("show", flow_uuid, "--db", "f.db", cwd=workdir).stdout
    assert re.search(r"^step-002\s+SUCCESS\s+EXECUTE\s+1\.0\s+3$", table, re.MULTILINE), table


def test_failing_flow_exits_1_and_is_shown_reverted(workdir: Path) -> None:
    result = ferroflow("run", "cliflows:failing", "--db", "f.db", cwd=workdir)
    assert result.returncode == 1
    flow_uuid = _flow_uuid(result.stdout)
    assert f"flow {flow_uuid} (failing): REVERTED" in result.stdout
    assert "atom 'explode' failed: ValueError: boom in explode" in result.stderr
    assert "Traceback" not in result.stderr

    listing = ferroflow("show", "--db", "f.db", cwd=workdir).stdout
    row = next(line for line in listing.splitlines() if line.startswith(flow_uuid))
    assert row.split()[2] == "REVERTED"
    atoms = ferroflow("show", flow_uuid, "--db", "f.db", cwd=workdir).stdout
    assert re.search(r"^explode\s+REVERTED\s+REVERT\s+\S+\s+failed: ValueError: boom in explode", atoms, re.M)


def test_db_defaults_to_the_environment_variable(workdir: Path) -> None:
    db = workdir / "from-env.db"
    env = {**_env(), "FERROFLOW_DB": str(db)}
    assert ferroflow("run", "cliflows:chain", "--arg", "2", cwd=workdir, env=env).returncode == 0
    assert db.is_file() and not (workdir / "ferroflow.db").exists()
    assert "SUCCESS" in ferroflow("show", cwd=workdir, env=env).stdout


# -- resume after a kill ----------------------------------------------------------------------------


def test_resume_after_sigkill_finishes_the_flow_and_reuses_finished_atoms(workdir: Path) -> None:
    atoms, db = 40, workdir / "k.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "ferroflow", "run", "cliflows:chain", "--arg", str(atoms), "--arg", "0.05",
         "--db", str(db), "--no-progress"],
        cwd=workdir, stdout=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert child.stdout is not None
        flow_uuid = _flow_uuid(child.stdout.readline())
        deadline = time.monotonic() + 60
        while _atom_states(db, flow_uuid)["SUCCESS"] < 5:
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    before = _atom_states(db, flow_uuid)
    assert 0 < before["SUCCESS"] < atoms
    assert "RUNNING" in ferroflow("show", "--db", str(db), cwd=workdir).stdout

    result = ferroflow("resume", "--db", str(db), cwd=workdir)
    assert result.returncode == 0, result.stderr
    match = re.search(r"SUCCESS in [\d.]+s; (\d+) of (\d+) atoms reused .*?, (\d+) run now", result.stdout)
    assert match, result.stdout
    reused, total, ran = map(int, match.groups())
    assert total == atoms and reused == before["SUCCESS"] and reused + ran == atoms
    assert _atom_states(db, flow_uuid) == {"SUCCESS": atoms}
    flow = json.loads(ferroflow("show", flow_uuid, "--db", str(db), "--json", cwd=workdir).stdout)
    assert [a["results"] for a in flow["atoms"]] == list(range(1, atoms + 1))
    # Atoms done before the kill ran once; the one running at the kill may have run twice.
    executions = Counter((workdir / "executions.log").read_text().split())
    assert set(executions) == {f"step-{i:03d}" for i in range(atoms)}
    assert sum(executions.values()) - atoms <= 1
    assert all(executions[f"step-{i:03d}"] == 1 for i in range(reused))

    again = ferroflow("resume", "--db", str(db), cwd=workdir)
    assert again.returncode == 0 and "nothing to resume" in again.stdout


def _suspended_flow(db: Path, factory: str | None = "cliflows.chain") -> str:
    """A flow of 4 steps saved SUSPENDED after its first step (built in this process)."""
    from cliflows import chain  # type: ignore[import-not-found]

    from ferroflow.persistence import models

    backend, book = f"sqlite:///{db}", models.LogBook("test")
    if factory:
        engine = engines.load_from_factory(factory, factory_args=[4], backend=backend, book=book)
    else:
        engine = engines.load(chain(4), backend=backend, book=book)
    steps = engine.run_iter()
    for state in steps:
        if state == "ANALYZING":
            break
    steps.close()  # suspends the flow
    assert engine.storage.get_flow_state() == "SUSPENDED"
    return engine.storage.flow_uuid


def test_resume_picks_unfinished_flows_and_needs_all_for_several(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    db = workdir / "r.db"
    reverted = _flow_uuid(ferroflow("run", "cliflows:failing", "--db", str(db), cwd=workdir).stdout)
    suspended = [_suspended_flow(db), _suspended_flow(db)]

    several = ferroflow("resume", "--db", str(db), cwd=workdir)
    assert several.returncode == 2
    _assert_one_line_error(several.stderr, "2 flows have not finished", *suspended, "--all")

    every = ferroflow("resume", "--all", "--db", str(db), cwd=workdir)
    assert every.returncode == 0, every.stderr
    for flow_uuid in suspended:
        assert re.search(rf"flow {flow_uuid} \(chain\): SUCCESS .* 1 of 4 atoms reused .* 3 run now", every.stdout)
    assert reverted not in every.stdout  # a REVERTED flow is restarted only when named

    restarted = ferroflow("resume", reverted, "--db", str(db), cwd=workdir)
    assert restarted.returncode == 1
    assert f"flow {reverted} (failing): REVERTED" in restarted.stdout and "explode" in restarted.stderr


def test_resume_of_a_flow_saved_without_factory_fails_clearly(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    flow_uuid = _suspended_flow(workdir / "n.db", factory=None)
    result = ferroflow("resume", "--db", "n.db", cwd=workdir)
    assert result.returncode == 1
    _assert_one_line_error(result.stderr, f"cannot resume flow {flow_uuid}", "factory")
    assert "not resumable" in ferroflow("show", "--db", "n.db", cwd=workdir).stdout


# -- the demo ---------------------------------------------------------------------------------------


def test_demo_kills_and_resumes_a_flow_and_checks_it(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = ferroflow("demo", "--atoms", "600", "--db", str(db), cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    counts = {
        kind: int(re.search(rf"^\s+(\d+) {kind}:", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
        for kind in ("reused", "re-run", "run only after the resume")
    }
    assert counts["reused"] > 0 and counts["run only after the resume"] > 0
    assert sum(counts.values()) == 600
    assert "FAILED" not in out and out.count("  ok ") == 4
    flow_uuid = re.search(r"resume flow ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    assert _atom_states(db, flow_uuid) == {"SUCCESS": 600}


# -- usage errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("cliflows", ["MODULE:FACTORY"]),
        ("nosuchmodule:make", ["nosuchmodule"]),
        ("cliflows:nosuchfactory", ["nosuchfactory"]),
        ("cliflows:not_callable", ["not a callable"]),
        ("cliflows.py:chain", ["file path"]),
    ],
)
def test_bad_factory_is_a_usage_error(workdir: Path, factory: str, words: list[str]) -> None:
    result = ferroflow("run", factory, "--db", "f.db", cwd=workdir)
    assert result.returncode == 2
    _assert_one_line_error(result.stderr, *words)
    assert not (workdir / "f.db").exists()


def test_resume_or_show_without_a_database_is_a_usage_error(workdir: Path) -> None:
    for command in (["resume"], ["resume", "--db", "missing.db"], ["show", "--db", "missing.db"]):
        result = ferroflow(*command, cwd=workdir)
        assert result.returncode == 2, command
        _assert_one_line_error(result.stderr, "no database")
    assert not (workdir / "missing.db").exists() and not (workdir / "ferroflow.db").exists()


def test_other_usage_errors(workdir: Path) -> None:
    assert ferroflow("run", "cliflows:chain", "--arg", "1", "--db", "f.db", cwd=workdir).returncode == 0
    cases = [
        (["run", "cliflows:chain", "--arg", "five"], "not valid JSON"),
        (["run", "cliflows:chain", "--engine", "serial", "--workers", "2"], "--workers"),
        (["show", "0000dead", "--db", "f.db"], "no flow '0000dead'"),
        (["resume", "some-uuid", "--all", "--db", "f.db"], "not both"),
        ([], "a command is required"),
        (["demo", "--atoms", "50"], "at least 100"),
    ]
    for args, words in cases:
        result = ferroflow(*args, cwd=workdir)
        assert result.returncode == 2, args
        _assert_one_line_error(result.stderr, words)


def test_main_returns_exit_statuses_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "ferroflow" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "MODULE:FACTORY" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2


# -- pieces -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("atoms", [3, 4, 26, 27, 600, 3001])
def test_demo_pipeline_has_exactly_the_atoms_asked_and_computes_the_expected_checksum(atoms: int) -> None:
    engine = engines.load(demo_flow.make_pipeline(atoms, rounds=2))
    engine.run()
    assert len(engine.compilation.atoms) == atoms
    expected = demo_flow.expected_checksum(atoms, rounds=2)
    assert engine.storage.fetch(demo_flow.RESULT_NAME) == expected
    assert expected != demo_flow.expected_checksum(atoms, rounds=2, seed=2)


def test_progress_line_off_a_terminal_is_rate_limited_and_ends_with_the_final_counts() -> None:
    stream = io.StringIO()
    progress = ProgressLine("run", total=1000, stream=stream)
    for _ in range(1000):
        progress.advance()
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[-1].startswith("run: 1000/1000 atoms (100%)")
