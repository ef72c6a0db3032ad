"""The jobboard API (`ferroflow.jobs`) on the SQLite board and on a real PostgreSQL server.

Order (priority, then oldest first; an abandoned or expired job keeps its place), claims as
leases (renewed by the heartbeat, expiring when not renewed, fenced by an epoch so that a stale
owner's consume or abandon is refused even under the same name), trash, find_owner, wake-ups by
another board's post, conf errors, and the claim path's use of the partial index (finished jobs
are never read).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time

import pytest

import postgres_server
from ferroflow import exceptions, states
from ferroflow.jobs import backends
from ferroflow.jobs.base import JobPriority


@pytest.fixture(params=["sqlite", "postgres"])
def board_uri(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return postgres_server.fresh_uri()


@pytest.fixture
def make_board(board_uri):
    boards = []

    def make(**conf):
        board = backends.fetch("tests", {"board": board_uri, **conf})
        board.connect()
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()


def test_jobs_are_handed_out_by_priority_then_oldest_first(make_board):
    board = make_board()
    low = board.post("low", priority=JobPriority.LOW)
    first = board.post("first")
    urgent = board.post("urgent", priority="very_high")
    second = board.post("second")
    assert [job.uuid for job in board.iterjobs()] == [urgent.uuid, first.uuid, second.uuid, low.uuid]
    assert board.job_count == 4
    claimed = [board.claim_next("me").uuid for _ in range(4)]
    assert claimed == [urgent.uuid, first.uuid, second.uuid, low.uuid]
    assert board.claim_next("me") is None
    assert all(job.state == states.CLAIMED for job in (low, first, urgent, second))


def test_an_abandoned_job_keeps_its_place_before_newer_jobs(make_board):
    board = make_board()
    old = board.post("old")
    board.claim(old, "me")
    newer = board.post("newer")
    board.abandon(old, "me")
    assert old.state == states.UNCLAIMED and board.find_owner(old) is None
    assert board.claim_next("other").uuid == old.uuid
    assert board.claim_next("other").uuid == newer.uuid


def test_claims_are_exclusive_and_name_their_owner(make_board):
    board, other = make_board(), make_board()
    job = board.post("job", details={"flow_uuid": "f", "store": {"x": 1}})
    board.claim(job, "alice")
    assert board.find_owner(job) == "alice"
    with pytest.raises(exceptions.UnclaimableJob, match="alice"):
        other.claim(job, "bob")
    with pytest.raises(exceptions.JobFailure, match="bob"):
        other.consume(job, "bob")
    listed = list(other.iterjobs())
    assert [(j.uuid, j.details, j.owner) for j in listed] == [
        (job.uuid, {"flow_uuid": "f", "store": {"x": 1}}, "alice")
    ]
    assert list(other.iterjobs(only_unclaimed=True)) == []
    board.consume(job, "alice")
    assert job.state == states.COMPLETE and not job.trashed
    assert board.job_count == 0 and list(board.iterjobs()) == []
    with pytest.raises(exceptions.UnclaimableJob, match="COMPLETE"):
        other.claim(job, "bob")


def test_the_heartbeat_keeps_a_claim_beyond_its_expiry(make_board):
    board, other = make_board(), make_board()
    job = board.post("job")
    board.claim(job, "alice", expiry=0.6)
    time.sleep(1.5)
    assert other.find_owner(job) == "alice"
    assert other.claim_next("bob") is None
    board.consume(job, "alice")


def test_a_claim_not_renewed_expires_and_the_stale_owner_is_refused(make_board):
    board, other = make_board(), make_board()
    job = board.post("job")
    newer = board.post("newer")
    board.claim(job, "conductor", expiry=0.5)
    claim = board.claim_of(job)
    lost = threading.Event()
    claim.on_lost(lambda _claim: lost.set())
    claim.stop()  # as if its process died: nothing renews it
    time.sleep(0.8)
    assert job.state == states.UNCLAIMED and board.find_owner(job) is None
    # Taken over under the same name: only the epoch tells the owners apart.
    taken = other.claim_next("conductor", expiry=5)
    assert taken.uuid == job.uuid
    assert other.claim_of(taken).epoch == claim.epoch + 1
    with pytest.raises(exceptions.JobFailure, match="no longer held"):
        board.consume(job, "conductor")
    with pytest.raises(exceptions.JobFailure, match="no longer held"):
        board.abandon(job, "conductor")
    assert job.state == states.CLAIMED
    claim.start()  # its heartbeat comes back: the renewal finds the claim gone
    assert lost.wait(3.0) and isinstance(claim.lost, exceptions.LeaseLost)
    other.consume(taken, "conductor")
    assert job.state == states.COMPLETE
    assert other.claim_next("x").uuid == newer.uuid


def test_trash_finishes_a_job_without_running_it(make_board):
    board = make_board()
    job = board.post("bad")
    with pytest.raises(exceptions.JobFailure):
        board.trash(job, "me")  # not claimed
    board.claim(job, "me")
    board.trash(job, "me")
    assert job.state == states.COMPLETE and job.trashed
    assert board.claim_next("me") is None
    assert [j.uuid for j in board.list_all()] == [job.uuid]
    assert board.find(job.uuid[:8]).uuid == job.uuid


def test_wait_is_woken_by_another_boards_post(make_board):
    board, poster = make_board(), make_board()
    with pytest.raises(exceptions.NotFound, match="Expired"):
        board.wait(timeout=0.2)
    posted_at = []

    def post_later():
        time.sleep(0.5)
        posted_at.append(time.monotonic())
        poster.post("late")

    thread = threading.Thread(target=post_later)
    thread.start()
    jobs = list(board.wait(timeout=10))
    woke = time.monotonic()
    thread.join()
    assert [job.name for job in jobs] == ["late"]
    assert woke - posted_at[0] < 0.5


def test_job_wait_returns_when_consumed(make_board):
    board, worker = make_board(), make_board()
    job = board.post("job")
    assert job.wait(timeout=0.1) is False
    claimed = worker.claim_next("w")
    threading.Timer(0.3, worker.consume, (claimed, "w")).start()
    assert job.wait(timeout=10) is True


def test_bad_input_is_refused_with_what_to_fix(make_board, tmp_path):
    board = make_board()
    with pytest.raises(ValueError, match="must be JSON"):
        board.post("x", details={"when": object()})
    with pytest.raises(ValueError, match="not a valid job priority"):
        board.post("x", priority="urgent")
    with pytest.raises(ValueError, match="non-empty"):
        board.claim_next("")
    with pytest.raises(ValueError, match="did you mean 'claim_expiry'"):
        backends.fetch("b", {"board": f"sqlite:///{tmp_path}/j.db", "claim_expiri": 3})
    with pytest.raises(ValueError, match="unknown board"):
        backends.fetch("b", {"board": "zookeeper"})
    with pytest.raises(ValueError, match="needs a file"):
        backends.fetch("b", {"board": "sqlite"})


def test_boards_of_other_names_do_not_share_jobs(board_uri):
    with backends.backend("one", board_uri) as one, backends.backend("two", board_uri) as two:
        one.post("job")
        assert two.job_count == 0 and two.claim_next("x") is None
        assert one.claim_next("x") is not None


def test_the_claim_path_reads_only_the_partial_indexes(tmp_path):
    """With many finished jobs, claiming reads the ``ready`` and ``claims`` indexes (which hold
    no finished job), never the table: its cost does not grow with the jobs done."""
    path = tmp_path / "jobs.db"
    with backends.backend("b", f"sqlite:///{path}") as board:
        for _ in range(200):
            board.claim(board.post("done"), "w")
            board.consume(board.claim_next("w") or board.iterjobs().__next__(), "w")
    conn = sqlite3.connect(path)
    with contextlib.closing(conn):
        conn.execute("ANALYZE")
        ready = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM ferroflow_jobs WHERE board = 'b' AND state = 'UNCLAIMED' "
            "ORDER BY priority DESC, seq LIMIT 1"
        ).fetchall()
        claims = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM ferroflow_jobs WHERE board = 'b' AND state = 'CLAIMED' "
            "AND expires_at < 1"
        ).fetchall()
    assert "ferroflow_jobs_ready" in str(ready), ready
    assert "ferroflow_jobs_claims" in str(claims), claims
