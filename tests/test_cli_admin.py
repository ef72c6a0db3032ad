"""``ferroflow check``, ``delete``, ``prune``, ``show`` and ``graph`` as a user runs them: the real
``ferroflow`` executable in subprocesses, engines killed or left running, and the store read back
afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import (
    deploy,
    env,
    ferroflow,
    ferroflow_executable,
    flow_uuid_in,
    make_workdir,
    one_line_error,
    saved,
    take_journal,
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path)


def _run(workdir: Path, db: str = "f.db", **code) -> tuple[str, int]:
    deploy(workdir, **code)
    result = ferroflow("run", "appflows:make", "--db", db, "--no-progress", cwd=workdir)
    take_journal(workdir)
    return flow_uuid_in(result.stdout), result.returncode


def _pending_flow(workdir: Path, db: str = "f.db") -> str:
    """A flow saved PENDING by a program that never ran it."""
    script = (
        "from ferroflow import engines; from ferroflow.persistence import models\n"
        f"e = engines.load_from_factory('appflows.make', backend='sqlite:///{workdir / db}',\n"
        "                              book=models.LogBook('x'))\n"
        "print(e.storage.flow_uuid)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class LiveRun:
    """A ``ferroflow run`` left running (each atom sleeps), stopped with SIGKILL."""

    def __init__(self, workdir: Path, db: str = "f.db") -> None:
        deploy(workdir, sleep=30)
        self.process = subprocess.Popen(
            [*ferroflow_executable(), "run", "appflows:make", "--db", db, "--no-progress"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert self.process.stdout is not None
        self.flow_uuid = flow_uuid_in(self.process.stdout.readline())
        deadline = time.monotonic() + 30
        journal = workdir / "journal"
        while not (journal.exists() and "execute a" in journal.read_text()):
            assert time.monotonic() < deadline and self.process.poll() is None
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


# -- check ---------------------------------------------------------------------------------------


def _problems(workdir: Path, *args: str) -> tuple[int, dict[str, list[tuple[str, str | None]]]]:
    result = ferroflow("check", "--json", "--db", "f.db", *args, cwd=workdir)
    data = json.loads(result.stdout)
    return result.returncode, {
        flow["uuid"]: sorted((p["kind"], p["atom"]) for p in flow["problems"]) for flow in data["flows"]
    }


def test_check_is_quiet_and_exits_0_on_a_healthy_store(workdir: Path) -> None:
    _run(workdir)
    _run(workdir, fail="c")  # REVERTED: finished, nothing to do
    result = ferroflow("check", "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"2 flows checked in {workdir / 'f.db'}: nothing needs attention"


def test_check_reports_a_dead_owner_versions_and_orphans(workdir: Path) -> None:
    killed, status = _run(workdir, kill="c", classes={"b": "Refund"})
    assert status == -9
    # The code changes: a's version, and b (a Refund) removed from the flow.
    deploy(workdir, atoms=["a", "c", "d"], versions={"a": "2.0"})
    code, problems = _problems(workdir)
    assert code == 1
    assert problems == {killed: [("dead-owner", None), ("orphan", "b"), ("version", "a")]}
    text = ferroflow("check", "--db", "f.db", cwd=workdir)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert any(f"flow {killed} (app, RUNNING): dead-owner:" in line and "no longer exists" in line for line in lines)
    assert any("version: atom 'a' completed at version 1.0, the code is at 2.0" in line for line in lines)
    assert lines[-1].endswith("1 need attention (3 problems)")

    # The orphan's class removed from the code too: its revert can no longer be rebuilt.
    deploy(workdir, atoms=["a", "c", "d"], refund_class=False)
    code, problems = _problems(workdir)
    assert code == 1
    assert problems == {killed: [("dead-owner", None), ("orphan", "b"), ("orphan-revert", "b")]}
    # check read, never wrote
    assert saved(workdir / "f.db")["flows"][killed][0] == "RUNNING"


def test_check_reports_a_factory_that_no_longer_imports(workdir: Path) -> None:
    killed, _ = _run(workdir, kill="c")
    (workdir / "appflows.py").rename(workdir / "moved_away.py")
    code, problems = _problems(workdir)
    assert code == 1 and problems == {killed: [("dead-owner", None), ("factory", None)]}
    text = ferroflow("check", "--db", "f.db", cwd=workdir).stdout
    assert "factory appflows.make no longer imports" in text and "PYTHONPATH" in text


def test_check_reports_flows_stuck_pending(workdir: Path) -> None:
    deploy(workdir)
    pending = _pending_flow(workdir)
    assert _problems(workdir) == (0, {})  # just created
    assert _problems(workdir, "--pending-for", "0") == (1, {pending: [("stuck-pending", None)]})


def test_check_and_show_tell_a_live_engine_from_a_dead_one(workdir: Path) -> None:
    live = LiveRun(workdir)
    try:
        assert _problems(workdir) == (0, {})
        listing = ferroflow("show", "--db", "f.db", cwd=workdir).stdout
        assert re.search(
            rf"^{live.flow_uuid}\s+app\s+RUNNING \(live: owner \S+:{live.process.pid}, lease", listing, re.M
        )
        row = json.loads(ferroflow("show", "--json", "--db", "f.db", cwd=workdir).stdout)[0]
        assert row["owner"]["live"] is True
    finally:
        live.kill()
    listing = ferroflow("show", "--db", "f.db", cwd=workdir).stdout
    assert "RUNNING (dead: the process of owner" in listing and str(live.process.pid) in listing
    assert _problems(workdir) == (1, {live.flow_uuid: [("dead-owner", None)]})


# -- delete and prune ------------------------------------------------------------------------------


def test_delete_refuses_a_live_flow_and_removes_a_dead_one(workdir: Path) -> None:
    kept, _ = _run(workdir)
    live = LiveRun(workdir)
    try:
        refused = ferroflow("delete", live.flow_uuid, "--db", "f.db", cwd=workdir)
        assert refused.returncode == 1
        one_line_error(refused.stderr, "cannot delete", live.flow_uuid, "live engine", "f.db")
        assert live.flow_uuid in saved(workdir / "f.db")["flows"]
    finally:
        live.kill()
    deleted = ferroflow("delete", live.flow_uuid[:8], "--db", "f.db", cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted flow {live.flow_uuid} (app, RUNNING, 4 atoms)" in deleted.stdout
    after = saved(workdir / "f.db")
    assert list(after["flows"]) == [kept] and after["books"] == 1  # its logbook went with it
    again = ferroflow("delete", live.flow_uuid, "--db", "f.db", cwd=workdir)
    assert again.returncode == 2
    one_line_error(again.stderr, "no flow", str(workdir / "f.db"))


def test_prune_deletes_old_flows_in_the_given_states(workdir: Path) -> None:
    done = [_run(workdir)[0] for _ in range(2)]
    reverted, _ = _run(workdir, fail="b")
    live = LiveRun(workdir)
    try:
        dry = ferroflow("prune", "--state", "SUCCESS", "--older-than", "0", "--dry-run", "--db", "f.db", cwd=workdir)
        assert dry.returncode == 0, dry.stderr
        assert sorted(re.findall(r"would delete flow (\S+)", dry.stdout)) == sorted(done)
        assert len(saved(workdir / "f.db")["flows"]) == 4

        young = ferroflow("prune", "--state", "SUCCESS", "--older-than", "1h", "--db", "f.db", cwd=workdir)
        assert young.returncode == 0 and "deleted 0 flows" in young.stdout
        assert len(saved(workdir / "f.db")["flows"]) == 4

        pruned = ferroflow("prune", "--state", "success,running", "--older-than", "0s", "--db", "f.db", cwd=workdir)
        assert pruned.returncode == 0, pruned.stderr
        assert f"kept flow {live.flow_uuid} (app) is held by a live engine" in pruned.stdout
        assert "deleted 2 flows" in pruned.stdout and "1 flow held by a live engine kept" in pruned.stdout
        assert set(saved(workdir / "f.db")["flows"]) == {reverted, live.flow_uuid}
    finally:
        live.kill()
    bad = ferroflow("prune", "--state", "DONE", "--older-than", "1d", "--db", "f.db", cwd=workdir)
    assert bad.returncode == 2 and "unknown flow state 'DONE'" in bad.stderr
    bad_age = ferroflow("prune", "--state", "SUCCESS", "--older-than", "soon", "--db", "f.db", cwd=workdir)
    assert bad_age.returncode == 2 and "not a duration" in bad_age.stderr


def test_prune_deletes_a_dead_running_flow_but_never_a_live_one(workdir: Path) -> None:
    dead, _ = _run(workdir, kill="b")
    live = LiveRun(workdir)
    try:
        time.sleep(1.1)
        result = ferroflow("prune", "--state", "RUNNING", "--older-than", "1s", "--db", "f.db", cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert f"deleted flow {dead}" in result.stdout and f"kept flow {live.flow_uuid}" in result.stdout
        assert list(saved(workdir / "f.db")["flows"]) == [live.flow_uuid]
    finally:
        live.kill()


def test_a_run_that_cannot_start_leaves_nothing_behind(workdir: Path) -> None:
    (workdir / "broken.py").write_text(
        "from ferroflow import task\nfrom ferroflow.patterns import linear_flow\n\n"
        "class Need(task.Task):\n    def execute(self, missing):\n        return missing\n\n"
        "def needs():\n    return linear_flow.Flow('needs').add(Need('n'))\n\n"
        "def number():\n    return 42\n"
    )
    for factory, words in (("broken:needs", ["does not validate", "missing"]), ("broken:number", ["42"])):
        result = ferroflow("run", factory, "--db", "f.db", cwd=workdir)
        assert result.returncode == 1
        assert words[0] in result.stderr and words[-1] in result.stderr
        assert saved(workdir / "f.db") == {"flows": {}, "books": 0}
    resume = ferroflow("resume", "--db", "f.db", cwd=workdir)
    assert resume.returncode == 0 and "nothing to resume" in resume.stdout


# -- show ------------------------------------------------------------------------------------------


def test_show_filters_by_state_and_limits_long_listings(workdir: Path) -> None:
    big = [f"s{i:03d}" for i in range(250)]
    flow_uuid, _ = _run(workdir, atoms=big, kill="s120")
    _run(workdir, atoms=["a"], fail="a")

    atoms = ferroflow("show", flow_uuid, "--db", "f.db", cwd=workdir).stdout
    rows = [line for line in atoms.splitlines() if re.match(r"s\d{3}\s", line)]
    assert len(rows) == 100 and rows[0].startswith("s000")
    assert "... 150 more atoms" in atoms and "--limit 0" in atoms
    everything = ferroflow("show", flow_uuid, "--limit", "0", "--db", "f.db", cwd=workdir).stdout
    assert len([line for line in everything.splitlines() if re.match(r"s\d{3}\s", line)]) == 250

    running = ferroflow("show", flow_uuid, "--state", "RUNNING", "--db", "f.db", cwd=workdir).stdout
    assert [line.split()[0] for line in running.splitlines() if re.match(r"s\d{3}\s", line)] == ["s120"]
    few = ferroflow("show", flow_uuid, "--state", "success", "--limit", "5", "--json", "--db", "f.db", cwd=workdir)
    assert [a["name"] for a in json.loads(few.stdout)["atoms"]] == ["s000", "s001", "s002", "s003", "s004"]

    flows = ferroflow("show", "--state", "REVERTED", "--db", "f.db", cwd=workdir).stdout
    assert "REVERTED" in flows and flow_uuid not in flows
    none = ferroflow("show", "--state", "SUSPENDED", "--db", "f.db", cwd=workdir)
    assert none.returncode == 0 and none.stdout.startswith("no flows in state SUSPENDED")
    bad = ferroflow("show", "--state", "DONE", "--db", "f.db", cwd=workdir)
    assert bad.returncode == 2 and "unknown state 'DONE'" in bad.stderr


def test_control_characters_in_names_are_escaped(workdir: Path) -> None:
    name = "evil\x1b[31m\nname\r"
    deploy(workdir, name=name, atoms=["a\x07", "b"])
    run = ferroflow("run", "appflows:make", "--db", "f.db", cwd=workdir)
    assert run.returncode == 0 and "\x1b" not in run.stdout and "(evil\\x1b[31m\\nname\\r)" in run.stdout
    flow_uuid = flow_uuid_in(run.stdout)
    for args in (["show"], ["show", flow_uuid], ["check", "--all", "--pending-for", "0"]):
        out = ferroflow(*args, "--db", "f.db", cwd=workdir).stdout
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out, args
    listing = ferroflow("show", "--db", "f.db", cwd=workdir).stdout
    assert "evil\\x1b[31m\\nname\\r" in listing and len(listing.strip().splitlines()) == 2
    atoms = ferroflow("show", flow_uuid, "--db", "f.db", cwd=workdir).stdout
    assert "a\\x07" in atoms
    # the JSON keeps the real name
    assert json.loads(ferroflow("show", "--json", "--db", "f.db", cwd=workdir).stdout)[0]["name"] == name
    error = ferroflow("rewind", flow_uuid, "--to", "zz\x1b", "--db", "f.db", cwd=workdir)
    assert error.returncode == 1 and "\x1b" not in error.stderr


# -- output details --------------------------------------------------------------------------------


def test_errors_name_the_database_and_traceback_works_after_the_command(workdir: Path) -> None:
    _run(workdir)
    result = ferroflow("show", "0000dead", "--db", "f.db", cwd=workdir)
    assert result.returncode == 2
    one_line_error(result.stderr, "no flow '0000dead'", str(workdir / "f.db"))
    for args in (["--traceback", "show", "0000dead"], ["show", "0000dead", "--traceback"]):
        traced = ferroflow(*args, "--db", "f.db", cwd=workdir)
        assert traced.returncode == 2 and "Traceback" in traced.stderr, args
        assert traced.stderr.strip().splitlines()[-1].startswith("ferroflow: error: no flow")
    uri = ferroflow("show", "--db", f"sqlite:///{workdir / 'f.db'}", cwd=workdir)
    assert uri.returncode == 0 and "SUCCESS" in uri.stdout


def test_help_lists_every_command(workdir: Path) -> None:
    from ferroflow.cli import COMMANDS

    text = ferroflow("--help", cwd=workdir).stdout
    listed = re.findall(r"^    (\w+)\s{2,}", text, re.M)
    assert listed == list(COMMANDS)
    for command in COMMANDS:
        assert ferroflow(command, "--help", cwd=workdir).returncode == 0


# -- graph -----------------------------------------------------------------------------------------


def test_graph_writes_dot_coloured_by_saved_state(workdir: Path) -> None:
    flow_uuid, _ = _run(workdir, kill="c")
    deploy(workdir, atoms=["a", "c", "d"])  # b is now an orphan
    result = ferroflow("graph", flow_uuid, "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    dot = result.stdout
    assert dot.startswith(f"// flow {flow_uuid}") and "digraph flow {" in dot
    nodes = dict(re.findall(r'^  (a\d) \[label="([^"]*)"', dot, re.M))
    assert nodes == {"a0": "a\\nSUCCESS", "a1": "c\\nRUNNING", "a2": "d\\nPENDING"}
    assert re.findall(r"^  (a\d -> a\d);", dot, re.M) == ["a0 -> a1", "a1 -> a2"]
    assert 'a1 [label="c\\nRUNNING", fillcolor="gold"]' in dot
    assert re.search(r'o0 \[label="b\\nSUCCESS", fillcolor="palegreen", style="rounded,filled,dashed"\]', dot)
    out = ferroflow("graph", flow_uuid, "-o", "g.dot", "--db", "f.db", cwd=workdir)
    assert out.returncode == 0 and (workdir / "g.dot").read_text() == dot


def test_graph_image_without_graphviz_keeps_the_dot_file(workdir: Path, tmp_path_factory) -> None:
    flow_uuid, _ = _run(workdir)
    bare = tmp_path_factory.mktemp("bin")  # a PATH without Graphviz's dot
    result = ferroflow(
        "graph", flow_uuid, "--format", "svg", "-o", "g.svg", "--db", "f.db", cwd=workdir, environ=env(PATH=str(bare))
    )
    assert result.returncode == 1
    one_line_error(result.stderr, "Graphviz", "not installed", "g.dot")
    assert (workdir / "g.dot").read_text().startswith("// flow") and not (workdir / "g.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_graph_renders_images_with_graphviz(workdir: Path, fmt: str, magic: bytes) -> None:
    flow_uuid, _ = _run(workdir)
    result = ferroflow("graph", flow_uuid, "--format", fmt, "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    image = workdir / f"flow-{flow_uuid[:8]}.{fmt}"
    assert magic in image.read_bytes()[:400]
    assert os.path.getsize(image) > 200
