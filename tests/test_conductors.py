"""Conductors (`ferroflow.conductors`) on the SQLite board and store (one test also on PostgreSQL).

What a conductor does with a job: runs it with its ``store`` injected and consumes it (also when
the flow fails), trashes a job it cannot dispatch (a factory that cannot be imported or is not
trusted) with a logged reason and keeps running, and on ``stop()`` (or SIGTERM to ``ferroflow
conductor``) lets the running atoms finish, suspends the flow and abandons the job, which another
conductor then finishes without running a completed atom again. TaskFlow's events are emitted;
the non-blocking conductor runs jobs at once; `CheckingClaimListener` sees a lost claim.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import postgres_server
from ferroflow import engines, exceptions, states
from ferroflow.conductors import backends as conductors
from ferroflow.jobs import backends, posting
from ferroflow.listeners.claims import CheckingClaimListener
from ferroflow.persistence import backends as persistence_backends
from ferroflow.persistence import models

TESTS = Path(__file__).parent
JOURNALED = "takeover_flows.journaled"


class Setup:
    def __init__(self, board_uri: str, store_uri: str, journal: Path) -> None:
        self.board_uri, self.store_uri, self.journal = board_uri, store_uri, journal
        self.store = persistence_backends.fetch(store_uri)
        with contextlib.closing(self.store.get_connection()) as conn:
            conn.upgrade()
        self.board = backends.fetch("tests", {"board": board_uri}, persistence=self.store)
        self.board.connect()

    def post(self, factory: str, *args, **kwargs):
        return posting.post_flow(self.board, self.store, factory, args, **kwargs)

    def post_journaled(self, job: str, atoms: int, seconds: float, **kwargs):
        return self.post(JOURNALED, job, atoms, seconds, str(self.journal), **kwargs)

    def flow_detail(self, job) -> models.FlowDetail:
        with contextlib.closing(self.store.get_connection()) as conn:
            return conn.get_logbook(job.book_uuid).find(job.details["flow_uuid"])

    def journal_lines(self) -> list[list[str]]:
        if not self.journal.exists():
            return []
        return [line.split() for line in self.journal.read_text().splitlines()]

    def conductor(self, kind: str = "blocking", name: str = "c", events: list | None = None, **kwargs):
        conductor = conductors.fetch(kind, name, self.board, persistence=self.store, **kwargs)
        if events is not None:
            for event in conductor.EVENTS_EMITTED:
                conductor.notifier.register(event, lambda event, details: events.append((event, details["job"].uuid)))
        return conductor


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    s = Setup(f"sqlite:///{tmp_path}/jobs.db", f"sqlite:///{tmp_path}/store.db", tmp_path / "journal")
    yield s
    s.board.close()


@pytest.fixture
def pg_setup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    uri = postgres_server.fresh_uri()
    s = Setup(uri, uri, tmp_path / "journal")
    yield s
    s.board.close()


@pytest.mark.parametrize("which", ["setup", "pg_setup"])
def test_jobs_run_with_their_store_and_are_consumed_with_taskflows_events(which, request):
    s = request.getfixturevalue(which)
    events: list = []
    shout = s.post("takeover_flows.needs_store", store={"greeting": "hey"}, priority="HIGH")
    journaled = s.post_journaled("j", 3, 0.0)
    failing = s.post("takeover_flows.failing")
    s.conductor(events=events).run(max_dispatches=3)
    assert all(job.state == states.COMPLETE and not job.trashed for job in (shout, journaled, failing))
    fd = s.flow_detail(shout)
    assert fd.state == states.SUCCESS
    assert fd.find(next(ad.uuid for ad in fd if ad.name == "shout")).results == "HEY"
    assert s.flow_detail(journaled).state == states.SUCCESS
    assert s.flow_detail(failing).state in (states.REVERTED, states.FAILURE)
    names = [event for event, uuid in events if uuid == shout.uuid]
    assert names == [
        "compilation_start", "compilation_end", "preparation_start", "preparation_end",
        "validation_start", "validation_end", "running_start", "running_end", "job_consumed",
    ]  # fmt: skip
    assert [uuid for event, uuid in events if event == "job_consumed"] == [shout.uuid, journaled.uuid, failing.uuid]


def test_a_job_that_cannot_be_dispatched_is_trashed_with_a_reason_and_the_conductor_goes_on(setup, caplog):
    s = setup
    bad = []
    for name in ("os.getcwd", "takeover_flows_missing.make"):
        book = models.LogBook("bad")
        fd = models.FlowDetail("bad")
        fd.meta["factory"] = {"name": name, "args": [], "kwargs": {}}
        book.add(fd)
        with contextlib.closing(s.store.get_connection()) as conn:
            conn.save_logbook(book)
        bad.append(s.board.post("bad", book=book, details={"flow_uuid": fd.uuid}))
    good = s.post_journaled("good", 1, 0.0)
    events: list = []
    with caplog.at_level(logging.ERROR, logger="ferroflow.conductors"):
        s.conductor(events=events).run(max_dispatches=3)
    assert [(event, uuid) for event, uuid in events if event.startswith("job_")] == [
        ("job_trashed", bad[0].uuid),
        ("job_trashed", bad[1].uuid),
        ("job_consumed", good.uuid),
    ]
    assert all(job.trashed for job in bad) and not good.trashed
    logged = caplog.text
    assert "UntrustedCode" in logged and "os.getcwd" in logged
    assert "takeover_flows_missing" in logged and "trashed" in logged


def test_stop_finishes_running_atoms_suspends_and_abandons_and_another_conductor_finishes(setup):
    s = setup
    job = s.post_journaled("long", 8, 0.2)
    events: list = []
    first = s.conductor(name="first", events=events)
    runner = threading.Thread(target=first.run)
    runner.start()
    deadline = time.monotonic() + 20
    while sum(1 for line in s.journal_lines() if line[0] == "start") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.stop()
    assert first.wait(10)
    runner.join()
    assert ("job_abandoned", job.uuid) in events
    lines = s.journal_lines()
    starts = [line[2] for line in lines if line[0] == "start"]
    ends = [line[2] for line in lines if line[0] == "end"]
    assert starts == ends and 2 <= len(starts) < 8  # the running atom finished, nothing new started
    fd = s.flow_detail(job)
    assert fd.state == states.SUSPENDED
    assert job.state == states.UNCLAIMED
    s.conductor(name="second").run(max_dispatches=1)
    assert job.state == states.COMPLETE and s.flow_detail(job).state == states.SUCCESS
    ran = [line[2] for line in s.journal_lines() if line[0] == "start"]
    assert sorted(ran) == [f"a{i:02d}" for i in range(8)]  # none ran twice


def test_the_nonblocking_conductor_runs_jobs_at_once(setup):
    s = setup
    jobs = [s.post_journaled(f"p{i}", 1, 0.6) for i in range(3)]
    started = time.monotonic()
    s.conductor("nonblocking", max_simultaneous_jobs=3).run(max_dispatches=3)
    assert time.monotonic() - started < 1.7
    assert all(job.state == states.COMPLETE for job in jobs)
    pids_times = sorted(float(line[4]) for line in s.journal_lines() if line[0] == "start")
    assert pids_times[-1] - pids_times[0] < 0.5


def test_checking_claim_listener_suspends_the_engine_once_the_claim_is_lost(setup):
    s = setup
    job = s.post_journaled("c", 3, 0.0)
    s.board.claim(job, "me")
    engine = engines.load_from_detail(s.flow_detail(job), backend=s.store)
    losses = []
    listener = CheckingClaimListener(engine, job, s.board, "me", on_job_loss=lambda *args: losses.append(args[1]))
    assert not listener._has_been_lost()
    s.board.abandon(job, "me")
    assert listener._has_been_lost()
    with listener:
        engine.run()
    assert losses  # every event after the loss reported it
    with pytest.raises(ValueError, match="callable"):
        CheckingClaimListener(engine, job, s.board, "me", on_job_loss=42)
    default = CheckingClaimListener(engine, job, s.board, "me")
    suspended = []
    engine.suspend = lambda: suspended.append(True)
    default._claim_checker(states.RUNNING, {})
    assert suspended == [True]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferroflow", *args]


def test_the_conductor_command_stops_cleanly_on_sigterm(setup):
    s = setup
    job = s.post_journaled("cli", 10, 0.3)
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen(
        _cli(
            "conductor",
            "--board",
            s.board_uri,
            "--board-name",
            "tests",
            "--store",
            s.store_uri,
            "--name",
            "cli",
            "--claim-expiry",
            "3",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=TESTS,
    )
    try:
        deadline = time.monotonic() + 30
        while sum(1 for line in s.journal_lines() if line[0] == "start") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "0 consumed, 1 abandoned" in out, out
    assert job.state == states.UNCLAIMED and s.flow_detail(job).state == states.SUSPENDED
    done = subprocess.run(
        _cli(
            "conductor",
            "--board",
            s.board_uri,
            "--board-name",
            "tests",
            "--store",
            s.store_uri,
            "--max-dispatches",
            "1",
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS,
        timeout=60,
    )
    assert done.returncode == 0 and "1 consumed" in done.stdout, done.stderr
    assert s.flow_detail(job).state == states.SUCCESS
    listed = subprocess.run(
        _cli("jobs", "list", "--all", "--board", s.board_uri, "--board-name", "tests"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert job.uuid in listed.stdout and "COMPLETE" in listed.stdout


def test_jobs_command_posts_shows_and_trashes(setup, tmp_path):
    s = setup
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_cli("jobs", *args), capture_output=True, text=True, env=env, cwd=TESTS, timeout=60)

    posted = cli("post", "takeover_flows:needs_store", "--inject", 'greeting="yo"', "--board", s.board_uri,
                 "--board-name", "tests", "--store", s.store_uri, "--count", "2", "--priority", "low")  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    uuids = [line.split()[1] for line in posted.stdout.splitlines()]
    assert len(uuids) == 2
    shown = cli("show", uuids[0][:8], "--board", s.board_uri, "--board-name", "tests")
    assert shown.returncode == 0 and "state: UNCLAIMED" in shown.stdout and '"greeting": "yo"' in shown.stdout
    assert "priority: LOW" in shown.stdout
    trashed = cli("trash", uuids[0], "--board", s.board_uri, "--board-name", "tests")
    assert trashed.returncode == 0, trashed.stderr
    assert s.board.find(uuids[0]).trashed
    s.board.claim(s.board.find(uuids[1]), "someone")
    refused = cli("trash", uuids[1], "--board", s.board_uri, "--board-name", "tests")
    assert refused.returncode == 1 and "someone" in refused.stderr
    missing = cli("show", "ffffffff", "--board", s.board_uri, "--board-name", "tests")
    assert missing.returncode == 1 and "no job" in missing.stderr
    usage = cli("list")
    assert usage.returncode == 2 and "--board" in usage.stderr


def test_a_stale_conductor_cannot_consume_a_job_taken_over(setup):
    s = setup
    job = s.post_journaled("stale", 1, 0.0)
    s.board.claim(job, "c", expiry=0.4)
    s.board.claim_of(job).stop()
    time.sleep(0.6)
    other = backends.fetch("tests", {"board": s.board_uri})
    with contextlib.closing(other):
        other.connect()
        assert other.claim_next("c").uuid == job.uuid
        with pytest.raises(exceptions.JobFailure):
            s.board.consume(job, "c")
        other.consume(job, "c")
