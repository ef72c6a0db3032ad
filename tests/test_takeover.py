"""Takeover: conductor processes SIGKILLed at random while they run journaling flows; replacements
take the jobs over from the shared store, on a real PostgreSQL server and on the SQLite board.

3 conductors run 30 jobs of 20 atoms; the test SIGKILLs a random conductor at least 10 times,
starting a replacement each time. Each atom journals ``start``/``end`` lines with its pid and
times (`takeover_flows.journaled`) and returns ``pid:start``, so the test knows which execution's
result was saved. Afterwards:

- every job is consumed (not trashed) and its flow is SUCCESS;
- no two executions of an atom overlap in time (an execution cut by a SIGKILL lasts until the kill);
- the execution whose result was saved is the atom's last one, and no execution after which its
  process went on to the flow's next atom (so its SUCCESS was saved) was followed by another:
  an atom whose SUCCESS was saved never ran again.

Claims and flow leases last 2 s, so a job of a killed conductor is taken over 2 s later. The
takeover latencies (SIGKILL to the job's next atom started elsewhere) are printed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import postgres_server
from ferroflow import states
from ferroflow.jobs import backends, posting
from ferroflow.persistence import backends as persistence_backends

TESTS = Path(__file__).parent
EXPIRY = 2.0


@dataclass
class Execution:
    pid: int
    start: float
    end: float | None = None
    #: The same process then started the flow's next atom, before this atom ran again.
    moved_on: bool = False


@dataclass
class Fleet:
    """The conductor processes of a run, and when each one was killed."""

    board_uri: str
    store_uri: str
    directory: Path
    jobs_each: int
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)
    killed: dict[int, float] = field(default_factory=dict)
    started: int = 0

    def start(self) -> subprocess.Popen:
        self.started += 1
        log = open(self.directory / f"conductor-{self.started}.log", "w")
        env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ferroflow", "conductor", "--board", self.board_uri, "--board-name", "takeover",
             "--store", self.store_uri, "--jobs", str(self.jobs_each), "--name", f"c{self.started}",
             "--claim-expiry", str(EXPIRY), "--lease-seconds", str(EXPIRY), "--trust", "takeover_flows"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=TESTS,
        )  # fmt: skip
        log.close()
        self.procs[proc.pid] = proc
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        self.killed[proc.pid] = time.time()
        proc.wait()
        del self.procs[proc.pid]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_journal(path: Path) -> dict[tuple[str, str], list[Execution]]:
    runs: dict[tuple[str, str], list[Execution]] = {}
    open_runs: dict[tuple[str, str, int], Execution] = {}
    for line in path.read_text().splitlines():
        kind, job, atom, pid_text, at_text = line.split()
        pid, at = int(pid_text), float(at_text)
        if kind == "start":
            execution = Execution(pid, at)
            runs.setdefault((job, atom), []).append(execution)
            open_runs[(job, atom, pid)] = execution
        else:
            open_runs.pop((job, atom, pid)).end = at
    for (job, atom), executions in runs.items():
        following = runs.get((job, f"a{int(atom[1:]) + 1:02d}"), [])
        starts = sorted(e.start for e in executions)
        for execution in executions:
            # Only a start of the next atom before this atom's next execution (by any process)
            # shows this one's SUCCESS was saved: a write that failed (the store unreachable) makes
            # the process abandon the job, claim it again and re-run the atom, then go on.
            rerun = next((start for start in starts if start > execution.start), float("inf"))
            execution.moved_on = execution.end is not None and any(
                e.pid == execution.pid and execution.end <= e.start < rerun for e in following
            )
    return runs


def run_takeover(board_uri: str, store_uri: str, tmp_path: Path, jobs_each: int, seconds: float) -> None:
    jobs_total, atoms, conductors, kills_wanted = 30, 20, 3, 10
    seed = int(os.environ.get("FERROFLOW_TAKEOVER_SEED", time.time()))
    rng = random.Random(seed)
    print(f"seed {seed} (FERROFLOW_TAKEOVER_SEED)")
    journal = tmp_path / "journal"
    store = persistence_backends.fetch(store_uri)
    with contextlib.closing(store.get_connection()) as conn:
        conn.upgrade()
    board = backends.fetch("takeover", {"board": board_uri}, persistence=store)
    board.connect()
    fleet = Fleet(board_uri, store_uri, tmp_path, jobs_each)
    try:
        jobs = [
            posting.post_flow(board, store, "takeover_flows.journaled", (f"j{i:02d}", atoms, seconds, str(journal)))
            for i in range(jobs_total)
        ]
        for _ in range(conductors):
            fleet.start()
        deadline = time.monotonic() + 240
        while len(fleet.killed) < kills_wanted:
            time.sleep(rng.uniform(0.7, 1.4))
            assert board.job_count > 0, f"the jobs finished after only {len(fleet.killed)} kills"
            fleet.kill(rng.choice(list(fleet.procs.values())))
            fleet.start()
            assert time.monotonic() < deadline
        while board.job_count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert board.job_count == 0, [job for job in board.iterjobs()]
        assert all(job.state == states.COMPLETE and not job.trashed for job in jobs)
    finally:
        fleet.stop_all()
        board.close()

    runs = read_journal(journal)
    latencies = []
    for pid, killed_at in fleet.killed.items():
        cut = {job for (job, _), execs in runs.items() for e in execs if e.pid == pid and e.end is None}
        for job in cut:
            later = [
                e.start
                for (j, _), execs in runs.items()
                if j == job
                for e in execs
                if e.pid != pid and e.start > killed_at
            ]
            latencies.append(min(later) - killed_at)
    with contextlib.closing(store.get_connection()) as conn:
        for job in jobs:
            fd = conn.get_logbook(job.book_uuid).find(job.details["flow_uuid"])
            assert fd.state == states.SUCCESS, (job, fd.state)
            for ad in fd:
                if ad.name.startswith("a"):
                    executions = sorted(runs[(fd.name.removeprefix("job-"), ad.name)], key=lambda e: e.start)
                    check_atom(fd.name, ad.name, executions, ad.results, fleet.killed)
    if latencies:
        print(
            f"takeover latency over {len(latencies)} jobs cut by {len(fleet.killed)} SIGKILLs: "
            f"min {min(latencies):.2f} s, "
            f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s (claim expiry {EXPIRY:g} s)"
        )
        # The last renewal came at most a third of the expiry before the kill: nobody took over earlier.
        assert min(latencies) >= EXPIRY * 2 / 3 - 0.1
    assert len(fleet.killed) >= kills_wanted


def check_atom(flow: str, atom: str, executions: list[Execution], saved: str, killed: dict[int, float]) -> None:
    where = f"{flow}/{atom}"
    for execution in executions:
        if execution.end is None:
            assert execution.pid in killed, (
                f"{where}: pid {execution.pid} left an execution unfinished but was not killed"
            )
            execution.end = killed[execution.pid]
    for before, after in itertools.pairwise(executions):
        assert after.start >= before.end, f"{where}: executions overlap: {before} and {after}"
    for execution in executions[:-1]:
        # Its process went on to the next atom of the (linear) flow: this one's SUCCESS was saved
        # by then, so it must never have run again.
        assert not execution.moved_on, f"{where}: ran again after its SUCCESS was saved: {executions}"
    last = executions[-1]
    assert saved == f"{last.pid}:{last.start:.6f}", f"{where}: saved {saved!r} but ran again afterwards: {executions}"


def test_takeover_on_postgres(tmp_path, capsys):
    uri = postgres_server.fresh_uri()
    run_takeover(uri, uri, tmp_path, jobs_each=2, seconds=0.15)
    with capsys.disabled():
        print(capsys.readouterr().out)


def test_takeover_on_the_sqlite_board(tmp_path, capsys):
    run_takeover(f"sqlite:///{tmp_path}/jobs.db", f"sqlite:///{tmp_path}/store.db", tmp_path, jobs_each=1, seconds=0.1)
    with capsys.disabled():
        print(capsys.readouterr().out)


def test_journal_a_rerun_after_a_failed_write_is_not_a_move_on(tmp_path):
    """The server-restart failure: a process ran a02, its SUCCESS write failed (the server was
    shutting down), it abandoned the job, claimed it again, re-ran a02 and then went on to a03.
    Its first execution did not move on (a03 started only after the re-run): no rerun after a
    saved SUCCESS. Had a03 started between the two executions, it would have."""
    journal = tmp_path / "journal"
    lines = [
        "start r0 a02 16945 100.0",
        "end r0 a02 16945 100.1",
        "start r0 a02 16945 101.8",
        "end r0 a02 16945 101.9",
        "start r0 a03 16945 101.91",
        "end r0 a03 16945 102.0",
    ]
    journal.write_text("\n".join(lines) + "\n")
    first, second = read_journal(journal)[("r0", "a02")]
    assert not first.moved_on and second.moved_on
    check_atom("job-r0", "a02", [first, second], f"16945:{second.start:.6f}", {})

    lines[2:2] = ["start r0 a03 16945 100.2", "end r0 a03 16945 100.3"]  # it did go on, then re-ran a02
    journal.write_text("\n".join(lines) + "\n")
    first, second = read_journal(journal)[("r0", "a02")]
    assert first.moved_on
    with pytest.raises(AssertionError, match="ran again after its SUCCESS was saved"):
        check_atom("job-r0", "a02", [first, second], f"16945:{second.start:.6f}", {})


@pytest.fixture(autouse=True)
def _tests_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def test_conductors_survive_a_server_restart(tmp_path):
    """The PostgreSQL server restarts while 2 conductors run: they reconnect (board, listener,
    store), and every job still ends consumed with its flow SUCCESS, no atom run twice at once or
    again after its SUCCESS was saved."""
    server = postgres_server.server()
    if server.cluster is None:
        pytest.skip("the server is not the tests' own cluster: it cannot be restarted")
    uri = server.fresh_uri()
    journal = tmp_path / "journal"
    store = persistence_backends.fetch(uri)
    with contextlib.closing(store.get_connection()) as conn:
        conn.upgrade()
    board = backends.fetch("takeover", {"board": uri}, persistence=store)
    board.connect()
    fleet = Fleet(uri, uri, tmp_path, jobs_each=2)
    try:
        jobs = [
            posting.post_flow(board, store, "takeover_flows.journaled", (f"r{i}", 10, 0.1, str(journal)))
            for i in range(8)
        ]
        fleet.start()
        fleet.start()
        while not journal.exists() or len(journal.read_text().splitlines()) < 10:
            time.sleep(0.05)
        server.restart()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if board.job_count == 0:
                    break
            time.sleep(0.2)
        assert board.job_count == 0
        assert all(job.state == states.COMPLETE and not job.trashed for job in jobs)
        assert all(proc.poll() is None for proc in fleet.procs.values())  # they kept running
    finally:
        fleet.stop_all()
        board.close()
    runs = read_journal(journal)
    with contextlib.closing(store.get_connection()) as conn:
        for job in jobs:
            fd = conn.get_logbook(job.book_uuid).find(job.details["flow_uuid"])
            assert fd.state == states.SUCCESS, (job, fd.state)
            for ad in fd:
                if ad.name.startswith("a"):
                    executions = sorted(runs[(fd.name.removeprefix("job-"), ad.name)], key=lambda e: e.start)
                    check_atom(fd.name, ad.name, executions, ad.results, fleet.killed)
