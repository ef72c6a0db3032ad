"""Jobboard and conductors on the tests' PostgreSQL server (tests/postgres_server.py): throughput
and takeover latency, measured with real conductor processes (``ferroflow conductor``).

- ``test_jobs_per_second``: N jobs of 1 or 20 no-op atoms posted first, then 1, 2 or 4 conductor
  processes started; the rate is read from the board's own consume times (jobs consumed after the
  first, over the time from the first consume to the last), so process start-up and posting are
  not in it (`ferroflow.benchmarking.jobs`, which ``ferroflow bench --board`` runs too).
- ``test_takeover_latency``: 4 conductors, 2 long jobs (so a free conductor is always waiting);
  the conductor running the first job is SIGKILLed and replaced; the latency is from the SIGKILL
  to that job's next atom started by another conductor. Claims and flow leases last
  ``EXPIRY`` seconds.

Results are printed (``-s``) and kept in ``benchmark.extra_info`` when pytest-benchmark measures.
In CI mode (``--benchmark-disable``) the sizes are small.
"""

from __future__ import annotations

import signal
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import postgres_server
from ferroflow.benchmarking import jobs as bench_jobs
from ferroflow.jobs import posting

TESTS = Path(__file__).resolve().parents[1] / "tests"
EXPIRY = 2.0


def _conductor(uri: str, name: str, log: Path, *extra: str):
    return bench_jobs.start_conductor(
        uri, uri, "bench", name, log, *extra, trust="takeover_flows", cwd=TESTS, pythonpath=str(TESTS)
    )


def _setup(uri: str):
    return bench_jobs.open_board(uri, uri, "bench")


@pytest.mark.parametrize("atoms", bench_jobs.DEFAULT_ATOMS)
@pytest.mark.parametrize("conductors", bench_jobs.DEFAULT_CONDUCTORS)
def test_jobs_per_second(conductors: int, atoms: int, tmp_path: Path, ci_mode: bool, benchmark) -> None:
    jobs = bench_jobs.default_jobs(atoms) // (10 if ci_mode else 1)
    result = bench_jobs.measure_conductors(postgres_server.fresh_uri(), conductors, jobs, atoms, workdir=tmp_path)
    print(
        f"\n{conductors} conductor(s), {atoms}-atom jobs: {result.jobs_per_second:.0f} jobs/s, "
        f"{result.atoms_per_second:.0f} atoms/s ({jobs} jobs)"
    )
    benchmark.extra_info.update(jobs_per_second=result.jobs_per_second, atoms_per_second=result.atoms_per_second)
    benchmark.pedantic(lambda: None, rounds=1)
    assert result.jobs_per_second > 5


def test_takeover_latency(tmp_path: Path, ci_mode: bool, benchmark) -> None:
    rounds = 2 if ci_mode else 7
    uri = postgres_server.fresh_uri()
    store, board = _setup(uri)
    journal = tmp_path / "journal"
    flags = ("--claim-expiry", str(EXPIRY), "--lease-seconds", str(EXPIRY))
    procs = {}
    latencies = []
    try:
        for n in range(4):
            proc = _conductor(uri, f"c{n}", tmp_path / f"c{n}.log", *flags)
            procs[proc.pid] = proc
        for r in range(rounds):
            for k in range(2):
                posting.post_flow(board, store, "takeover_flows.journaled", (f"r{r}k{k}", 60, 0.1, str(journal)))
            victim_job = f"r{r}k0"
            pid = None
            deadline = time.monotonic() + 60
            while pid is None and time.monotonic() < deadline:
                time.sleep(0.05)
                lines = journal.read_text().splitlines() if journal.exists() else []
                starts = [line.split() for line in lines if line.startswith(f"start {victim_job} ")]
                if len(starts) >= 5:
                    pid = int(starts[-1][3])
            assert pid is not None
            procs.pop(pid).send_signal(signal.SIGKILL)
            killed_at = time.time()
            proc = _conductor(uri, f"c{r}-new", tmp_path / f"r{r}.log", *flags)
            procs[proc.pid] = proc
            taken = None
            while taken is None and time.monotonic() < deadline + 30:
                time.sleep(0.02)
                for line in journal.read_text().splitlines():
                    kind, job, _atom, other, at = line.split()
                    if kind == "start" and job == victim_job and int(other) != pid and float(at) > killed_at:
                        taken = float(at) - killed_at
                        break
            assert taken is not None
            latencies.append(taken)
            while board.job_count and time.monotonic() < deadline + 120:
                time.sleep(0.1)
    finally:
        bench_jobs.stop_conductors(list(procs.values()))
        board.close()
    print(
        f"\ntakeover latency (claim expiry {EXPIRY:g} s, {len(latencies)} SIGKILLs): min {min(latencies):.2f} s, "
        f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"
    )
    benchmark.extra_info["takeover_latency"] = latencies
    benchmark.pedantic(lambda: None, rounds=1)
    assert max(latencies) <= EXPIRY + 1.0


def test_post_and_claim_do_not_grow_with_finished_jobs(ci_mode: bool, benchmark) -> None:
    """Post, claim and consume cycles timed on an empty board, then with 100,000 consumed jobs
    in the table (10,000 in CI mode): the partial indexes keep finished rows off that path."""
    finished = 10_000 if ci_mode else 100_000
    cycles = 300
    uri = postgres_server.fresh_uri()
    _, board = _setup(uri)

    def cycle_ms() -> float:
        started = time.perf_counter()
        for _ in range(cycles):
            board.post("cycle")
            board.consume(board.claim_next("w"), "w")
        return (time.perf_counter() - started) / cycles * 1000

    try:
        cycle_ms()  # warm up
        empty = cycle_ms()
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO ferroflow_jobs (board, uuid, name, details, priority, state, owner, epoch, created_on, "
                "last_modified) SELECT 'bench', 'done-' || i, 'done', '{}', 2, 'COMPLETE', 'w', 1, i, i "
                "FROM generate_series(1, %s) AS i",
                (finished,),
            )
            conn.execute("ANALYZE ferroflow_jobs")
        full = cycle_ms()
    finally:
        board.close()
    print(f"\npost+claim+consume: {empty:.2f} ms on an empty board, {full:.2f} ms with {finished:,} consumed jobs")
    benchmark.extra_info.update(empty_ms=empty, full_ms=full)
    benchmark.pedantic(lambda: None, rounds=1)
    assert full < empty * 1.5 + 0.5
