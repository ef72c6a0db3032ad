"""The PostgreSQL hot paths that cut round trips keep their guarantees (a real server).

- A claim-next that meets expired claims claims the most urgent, oldest of them and the unclaimed
  jobs, and releases the others, in their place.
- The board's durability conf is checked; the board's connection commits asynchronously unless
  ``fsync``.
- A job finishing wakes `Job.wait` (its own channel), and a conductor waiting for work is not
  woken by other jobs finishing.
- The engine's statements on the libpq lane survive psycopg's ``DEALLOCATE ALL`` (a rollback of
  one of its transactions), and atom names with quotes, backslashes and braces go through the
  fresh-atoms insert's array literals intact.
- A flow's row read with its lease is used once, by the next read of the same flow, and never
  after a write.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

import postgres_server
from ferroflow import engines, exceptions, states, task
from ferroflow.jobs import backends
from ferroflow.jobs.base import JobPriority
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends as persistence_backends
from ferroflow.persistence import models


@pytest.fixture
def uri() -> str:
    return postgres_server.fresh_uri()


@pytest.fixture
def board(uri):
    board = backends.fetch("tests", {"board": uri})
    board.connect()
    yield board
    board.close()


def test_claim_next_takes_the_best_of_expired_and_unclaimed_and_releases_the_others(board) -> None:
    old_low = board.post("old-low", priority=JobPriority.LOW)
    old_high = board.post("old-high", priority=JobPriority.HIGH)
    board.claim(old_low, "dead", expiry=0.2)
    board.claim(old_high, "dead", expiry=0.2)
    for claim in list(board._claims.values()):
        claim.stop()  # "dead" stops renewing
    fresh = board.post("fresh")
    time.sleep(0.4)
    first = board.claim_next("alive")
    assert first.uuid == old_high.uuid  # HIGH before the NORMAL unclaimed job
    with board._transaction("reading", single=True) as cur:  # released in the same statement
        row = cur.execute("SELECT state, owner FROM ferroflow_jobs WHERE uuid = %s", (old_low.uuid,)).fetchone()
    assert row == ("UNCLAIMED", None)
    assert [board.claim_next("alive").uuid for _ in range(2)] == [fresh.uuid, old_low.uuid]
    with pytest.raises(exceptions.JobFailure, match="no longer held"):
        board.consume(old_high, "dead")
    board.consume(first, "alive")
    assert old_high.state == states.COMPLETE


def test_board_durability_is_checked_and_sets_the_commit_mode(uri) -> None:
    with pytest.raises(ValueError, match="durability must be one of"):
        backends.fetch("tests", {"board": uri, "durability": "never"})
    for durability, expected in (("process", "off"), ("fsync", "on")):
        board = backends.fetch("tests", {"board": uri, "durability": durability})
        board.connect()
        try:
            with board._transaction("reading", single=True) as cur:
                assert cur.execute("SHOW synchronous_commit").fetchone()[0] == expected
        finally:
            board.close()


def test_a_finished_job_wakes_job_wait_and_not_a_waiting_conductor(uri, board) -> None:
    other = backends.fetch("tests", {"board": uri})
    other.connect()
    try:
        job = board.post("job")
        claimed = other.claim_next("worker")
        token = board._change_token()
        waited = {}
        waiter = threading.Thread(target=lambda: waited.setdefault("done", job.wait(timeout=10)))
        waiter.start()
        time.sleep(0.3)
        # A conductor-like wait (work only) on a third board sees nothing when the job finishes.
        watcher = backends.fetch("tests", {"board": uri})
        watcher.connect()
        try:
            watcher._start_watching()  # work notifications only, as a conductor
            time.sleep(0.2)
            work_token = watcher._change_token()
            other.consume(claimed, "worker")
            waiter.join(timeout=10)
            assert waited == {"done": True}
            assert board._change_token() != token
            assert not watcher._wait_for_change(work_token, 0.5)
        finally:
            watcher.close()
    finally:
        other.close()


class Named(task.Task):
    def execute(self) -> str:
        return self.name


def test_engine_statements_survive_deallocate_all_and_odd_atom_names(uri) -> None:
    backend = persistence_backends.fetch(uri)
    names = ['quote"d', "back\\slash", "{brace,comma}", "NULL", "é ü"]
    try:
        flow = linear_flow.Flow("odd").add(*(Named(name) for name in names))
        engine = engines.load(flow, book=models.LogBook("b"), backend=backend)
        engine.compile()
        engine.prepare()
        for link in list(backend._idle):  # what a rollback of psycopg's does to every statement
            link.conn.execute("DEALLOCATE ALL")
        engine.run()
        assert engine.storage.get_flow_state() == states.SUCCESS
        with contextlib.closing(backend.get_connection()) as conn:
            fd = conn.get_flow_details(engine.storage.flow_uuid)
            assert {ad.name: ad.results for ad in fd} == {name: name for name in names}
    finally:
        backend.close()


def test_rows_read_ahead_are_used_once_and_never_after_a_write(uri) -> None:
    backend = persistence_backends.fetch(uri)
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            book = models.LogBook("b")
            fd = models.FlowDetail("f", "fd-1")
            book.add(fd)
            conn.save_logbook(book)
            conn.acquire_lease(fd.uuid, "me", 30)
            fd.state = states.RUNNING
            conn.update_flow_details(fd)  # a write drops the row read with the lease
            assert conn.get_flow_details(fd.uuid, lazy=True).state == states.RUNNING
            conn.acquire_lease(fd.uuid, "me", 30)
            assert conn.get_flow_details(fd.uuid, lazy=True).state == states.RUNNING
            with contextlib.closing(backend.get_connection()) as other:
                fd.state = states.SUCCESS
                other.update_flow_details(fd)  # another connection's write
            assert conn.get_flow_details(fd.uuid, lazy=True).state == states.SUCCESS  # read again: used once
    finally:
        backend.close()


def test_many_atoms_starting_together_are_written_as_one_batch(uri) -> None:
    """A batch of more steps than the one-statement lane takes (12,000 atoms of a wide flow
    starting together) goes through the general batch, all or nothing, instead of one statement
    nested too deep for the server ("stack depth limit exceeded")."""
    from ferroflow.patterns import unordered_flow

    class Quick(task.Task):
        def execute(self) -> str:
            return self.name

    n = 12_000
    engine = engines.load(unordered_flow.Flow("wide").add(*[Quick(f"t{i}") for i in range(n)]), backend=uri)
    engine.compile()
    engine.prepare()
    uuids = [engine.storage.atom_uuid(i) for i in range(n)]
    backend = persistence_backends.fetch(uri)
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            conn.apply_steps([(uuid, states.RUNNING, states.EXECUTE, None, None, None) for uuid in uuids])
            conn.apply_steps([(uuids[0], states.SUCCESS, states.EXECUTE, '"t0"', '{"progress":1.0}', None)])
            saved = conn.get_flow_details(engine.storage.flow_uuid)
    finally:
        backend.close()
    found = {ad.name: ad.state for ad in saved if not ad.name.startswith("_")}
    assert found == {f"t{i}": states.SUCCESS if i == 0 else states.RUNNING for i in range(n)}
