"""A jobboard kept in one SQL table, shared by the PostgreSQL and SQLite boards.

**Table.** One row per job: its name, details (JSON), book, priority, state, and the claim's
owner, *epoch* and expiry. Finished (COMPLETE or trashed) rows stay, for ``ferroflow jobs list``;
two partial indexes keep them off the hot paths: ``ready`` (unclaimed jobs by priority, then
age) and ``claims`` (claimed jobs by expiry). Posting and claiming never read a finished row.

**Claims.** Claiming sets the owner, raises the epoch and sets the expiry; the process's lease
heartbeat renews it every third of its expiry (`ferroflow.jobs.claims`). A claim that expired is
released by the next `SqlJobBoard.claim_next` of any conductor (the job keeps its priority and
age, so it is handed out first again), and can be claimed by `SqlJobBoard.claim`. Consume,
abandon and trash carry the epoch the board claimed with: once another owner claimed the job,
they are refused with :class:`~ferroflow.exceptions.JobFailure` (even under the same name).

**Waking.** Every change is announced (``NOTIFY`` on PostgreSQL; a change of the file's
``data_version``, polled with backoff, on SQLite); `JobBoard.wait` and the conductors sleep
until one arrives or the earliest claim expires.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

from ferroflow import exceptions, states
from ferroflow.jobs import base, claims
from ferroflow.jobs.base import Entity, Job, JobPriority

__all__ = ["SqlJobBoard"]

LOG = logging.getLogger(__name__)

TABLE = "ferroflow_jobs"
#: Values of the ``durability`` conf key (the stores' own).
DURABILITIES = ("process", "fsync")
_COLUMNS = "uuid, name, details, book_uuid, book_name, priority, state, owner, created_on, last_modified"


class ChangeSignal:
    """A counter of changes seen on the board and a condition to wait for the next one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._token = 0

    @property
    def token(self) -> int:
        return self._token

    def bump(self) -> None:
        with self._cond:
            self._token += 1
            self._cond.notify_all()

    def wait(self, token: int, timeout: float | None) -> bool:
        """Waits until a change after ``token`` (True) or ``timeout`` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._token != token, timeout)


class SqlJobBoard(base.JobBoard):
    """A board in a SQL table; subclasses give the connection, the clock and the wake-ups.

    Conf keys: ``board`` (the kind or a URI), ``claim_expiry`` (seconds, default
    `~ferroflow.jobs.claims.DEFAULT_CLAIM_EXPIRY`), ``durability`` (``process``, the default, or
    ``fsync``: see the backends).
    """

    #: SQL giving the database's time in seconds since the epoch.
    NOW = ""
    #: What the claim-next subquery locks with.
    LOCK_ROWS = ""

    def __init__(self, name: str, conf: dict[str, Any], persistence: Any = None) -> None:
        super().__init__(name, conf)
        self._persistence = persistence
        self.claim_expiry = _positive(conf.get("claim_expiry", claims.DEFAULT_CLAIM_EXPIRY), "claim_expiry")
        self.durability = conf.get("durability", "process")
        if self.durability not in DURABILITIES:
            raise ValueError(f"Jobboard {name!r}: durability must be one of {DURABILITIES}, got {self.durability!r}")
        self._lock = threading.RLock()
        self._conn: Any = None
        self._claims: dict[str, claims.Claim] = {}
        self._changes = ChangeSignal()
        self._closed = False

    # -- the backend's part --------------------------------------------------------------------
    def _open(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any, single: bool) -> None:
        """Starts a transaction (``single``: it is one statement, which a backend may run alone)."""
        raise NotImplementedError

    def _commit(self, conn: Any, single: bool) -> None:
        conn.commit()

    def _rollback(self, conn: Any) -> None:
        conn.rollback()

    def _schema(self) -> list[str]:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text.replace("{now}", self.NOW).replace("{lock}", self.LOCK_ROWS)

    def _announce(self, cursor: Any, done: bool = False) -> None:
        """Tells other processes that the board changed (inside the transaction); ``done``: only
        that a job finished (consumed or trashed), which concerns `Job.wait`, not conductors."""

    def _start_watching(self, done: bool = False) -> None:
        """Starts feeding `_changes` with other processes' changes (``done``: finished jobs too)."""

    def _stop_watching(self) -> None:
        pass

    def _is_disconnect(self, exc: BaseException) -> bool:
        return False

    def _where(self) -> str:
        raise NotImplementedError

    # -- connection ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._closed

    def connect(self) -> None:
        """Opens the board (creating its table if needed) and starts listening for changes."""
        with self._lock:
            self._closed = False
            self._ensure_conn()
        self._start_watching()

    def close(self) -> None:
        """Stops renewing this board's claims (they expire), stops listening, closes the connection."""
        with self._lock:
            self._closed = True
            for claim in self._claims.values():
                claim.stop()
            self._claims.clear()
            conn, self._conn = self._conn, None
        self._stop_watching()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _ensure_conn(self) -> Any:
        if self._closed:
            raise exceptions.JobFailure(f"Jobboard {self.name!r} ({self._where()}) is closed")
        if self._conn is None:
            try:
                conn = self._open()
                cursor = conn.cursor()
                self._begin(conn, False)
                for statement in self._schema():
                    cursor.execute(statement)
                self._commit(conn, False)
            except exceptions.TaskFlowException:
                raise
            except Exception as exc:
                raise exceptions.JobFailure(
                    f"Cannot open jobboard {self.name!r} at {self._where()}: {exc}; check that the database is "
                    "reachable and writable"
                ) from exc
            self._conn = conn
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, what: str, single: bool = False) -> Iterator[Any]:
        """One transaction on the board's connection, its errors as JobFailure naming ``what``;
        ``single``: the body runs one statement (on PostgreSQL, one round trip, no BEGIN/COMMIT)."""
        with self._lock:
            conn = self._ensure_conn()
            try:
                self._begin(conn, single)
                cursor = conn.cursor()
                yield cursor
                self._commit(conn, single)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._rollback(conn)
                if self._is_disconnect(exc):
                    with contextlib.suppress(Exception):
                        conn.close()
                    self._conn = None  # reconnected on the next call
                if isinstance(exc, (exceptions.TaskFlowException, KeyboardInterrupt, SystemExit, GeneratorExit)):
                    raise
                if isinstance(exc, Exception):
                    raise exceptions.JobFailure(
                        f"Jobboard {self.name!r} ({self._where()}): {what} failed: {exc}"
                    ) from exc
                raise
        self._changes_after_write()

    def _changes_after_write(self) -> None:
        pass

    def _execute(self, cursor: Any, sql: str, params: tuple = ()) -> Any:
        cursor.execute(self._sql(sql), params)
        return cursor

    # -- posting -------------------------------------------------------------------------------
    def post(
        self,
        name: str,
        book: Any = None,
        details: dict[str, Any] | None = None,
        priority: JobPriority | str = JobPriority.NORMAL,
    ) -> Job:
        """Posts a job (one transaction) and wakes the conductors waiting for work.

        ``details`` must be JSON (TaskFlow's keys: ``flow_uuid``, ``store``); ``book`` is a
        logbook saved in the conductors' persistence (the board keeps its uuid and name).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"A job needs a non-empty name, got {name!r}")
        prio = JobPriority.convert(priority)
        details = dict(details or {})
        try:
            details_text = json.dumps(details)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The details of job {name!r} must be JSON: {exc}") from None
        job_uuid = str(uuidlib.uuid4())
        book_uuid = getattr(book, "uuid", None)
        book_name = getattr(book, "name", None)
        row = self._insert_job((self.name, job_uuid, name, details_text, book_uuid, book_name, prio.rank))
        created = float(row[0])
        return Job(self, name, job_uuid, details, book_uuid, book_name, prio, created, created, states.UNCLAIMED)

    def _insert_job(self, values: tuple) -> tuple:
        """Inserts a job row and announces it (one transaction); ``(created_on,)``."""
        with self._transaction(f"posting job {values[2]!r}") as cur:
            row = self._execute(cur, _INSERT_JOB + " RETURNING created_on", values).fetchone()
            self._announce(cur)
        return row

    # -- claims --------------------------------------------------------------------------------
    def claim(self, job: Job, who: str, expiry: float | None = None) -> None:
        """Claims ``job`` for ``who`` for ``expiry`` seconds (renewed while held).

        :raises UnclaimableJob: someone holds an unexpired claim, or the job is complete.
        :raises NotFound: no such job on this board.
        """
        _check_who(who)
        seconds = self.claim_expiry if expiry is None else _positive(expiry, "expiry")
        with self._transaction(f"claiming job {job.uuid}", single=True) as cur:
            row = self._execute(
                cur,
                f"UPDATE {TABLE} SET state = 'CLAIMED', owner = %s, epoch = epoch + 1, expires_at = {{now}} + %s, "
                "last_modified = {now} WHERE board = %s AND uuid = %s AND (state = 'UNCLAIMED' OR "
                "(state = 'CLAIMED' AND expires_at < {now})) RETURNING epoch",
                (who, seconds, self.name, job.uuid),
            ).fetchone()
        if row is None:
            current = self._job_row(job.uuid)
            if current is None:
                raise exceptions.NotFound(f"Job {job.uuid} ({job.name!r}) is not on board {self.name!r}")
            state, owner, _ = current
            raise exceptions.UnclaimableJob(
                f"Job {job.uuid} ({job.name!r}) cannot be claimed by {who!r}: it is {state}"
                + (f" by {owner!r}" if owner else "")
            )
        self._hold(job.uuid, who, int(row[0]), seconds)

    def claim_next(self, who: str, expiry: float | None = None) -> Job | None:
        """Claims the most urgent, then oldest, unclaimed job for ``who`` (None when there is none).

        First releases claims that expired (their jobs keep their place). On PostgreSQL the rows
        are picked ``FOR UPDATE SKIP LOCKED``: conductors claiming at once never wait on each other.
        """
        _check_who(who)
        seconds = self.claim_expiry if expiry is None else _positive(expiry, "expiry")
        row = self._claim_next_row(who, seconds)
        if row is None:
            return None
        job = self._job_from(row[1:])
        self._hold(job.uuid, who, int(row[0]), seconds)
        return job

    def _claim_next_row(self, who: str, seconds: float) -> tuple | None:
        """Releases expired claims and claims the next job: ``(epoch, *_COLUMNS)`` or None."""
        with self._transaction("claiming the next job") as cur:
            released = self._execute(
                cur,
                f"UPDATE {TABLE} SET state = 'UNCLAIMED', owner = NULL, expires_at = NULL, last_modified = {{now}} "
                f"WHERE seq IN (SELECT seq FROM {TABLE} WHERE board = %s AND state = 'CLAIMED' AND "
                "expires_at < {now} {lock})",
                (self.name,),
            ).rowcount
            if released and released > 0:
                LOG.info("board %s: %d expired claim(s) released", self.name, released)
            row = self._execute(
                cur,
                f"UPDATE {TABLE} SET state = 'CLAIMED', owner = %s, epoch = epoch + 1, expires_at = {{now}} + %s, "
                f"last_modified = {{now}} WHERE seq = (SELECT seq FROM {TABLE} WHERE board = %s AND "
                "state = 'UNCLAIMED' ORDER BY priority DESC, seq LIMIT 1 {lock}) "
                f"RETURNING epoch, {_COLUMNS}",
                (who, seconds, self.name),
            ).fetchone()
            if row is not None and released:
                self._announce(cur)
        return row

    def _hold(self, job_uuid: str, who: str, epoch: int, seconds: float) -> None:
        claim = claims.Claim(job_uuid, who, epoch, seconds, self._renew)
        with self._lock:
            old = self._claims.pop(job_uuid, None)
            if old is not None:
                old.stop()
            self._claims[job_uuid] = claim
        claim.start()

    def _renew(self, job_uuid: str, who: str, epoch: int, seconds: float) -> None:
        with self._transaction(f"renewing the claim on job {job_uuid}", single=True) as cur:
            count = self._execute(
                cur,
                f"UPDATE {TABLE} SET expires_at = {{now}} + %s WHERE board = %s AND uuid = %s AND owner = %s AND "
                "epoch = %s AND state = 'CLAIMED'",
                (seconds, self.name, job_uuid, who, epoch),
            ).rowcount
        if count != 1:
            raise exceptions.LeaseLost(
                f"{who!r} lost its claim on job {job_uuid} (epoch {epoch}) on board {self.name!r}: it expired and "
                "was released or claimed by another owner"
            )

    def claim_of(self, job: Job) -> claims.Claim | None:
        """This board's claim on ``job`` (to watch for its loss), or None."""
        with self._lock:
            return self._claims.get(job.uuid)

    def find_owner(self, job: Job) -> str | None:
        """Who holds an unexpired claim on ``job`` (None when nobody does).

        :raises NotFound: no such job on this board.
        """
        row = self._job_row(job.uuid)
        if row is None:
            raise exceptions.NotFound(f"Job {job.uuid} ({job.name!r}) is not on board {self.name!r}")
        return row[1] if row[0] == states.CLAIMED else None

    # -- finishing -----------------------------------------------------------------------------
    def consume(self, job: Job, who: str) -> None:
        """Marks the claimed job COMPLETE (its work is done).

        :raises JobFailure: ``who`` does not hold the claim (any more): another owner claimed it.
        :raises NotFound: no such job.
        """
        self._finish(job, who, states.COMPLETE, "consume")

    def abandon(self, job: Job, who: str) -> None:
        """Releases the claim: the job is UNCLAIMED again, in its place (priority, age)."""
        self._finish(job, who, states.UNCLAIMED, "abandon")

    def trash(self, job: Job, who: str) -> None:
        """Marks the claimed job finished without running it (a job that cannot be run)."""
        self._finish(job, who, base.TRASHED, "trash")

    def _finish(self, job: Job, who: str, new_state: str, verb: str) -> None:
        _check_who(who)
        with self._lock:
            claim = self._claims.get(job.uuid)
        if claim is not None and claim.owner != who:
            claim = None
        count = self._finish_row(job, who, new_state, verb, None if claim is None else claim.epoch)
        if claim is not None:
            claim.stop()
        if count == 1:
            if claim is not None:
                with self._lock:
                    if self._claims.get(job.uuid) is claim:
                        del self._claims[job.uuid]
            return
        # A refused claim stays known: a later call under the same name is fenced by its epoch too.
        row = self._job_row(job.uuid)
        if row is None:
            raise exceptions.NotFound(f"Cannot {verb} job {job.uuid} ({job.name!r}): it is not on board {self.name!r}")
        state, owner, _ = row
        held = "" if claim is None else f" with epoch {claim.epoch}"
        raise exceptions.JobFailure(
            f"{who!r} cannot {verb} job {job.uuid} ({job.name!r}): its claim{held} is no longer held (the job is "
            f"{state}{f' by {owner!r}' if owner else ''}); the claim expired and the job was released or claimed "
            "by another owner"
        )

    def _finish_row(self, job: Job, who: str, new_state: str, verb: str, epoch: int | None) -> int:
        """Moves ``who``'s claimed job to ``new_state`` (at ``epoch`` if given) and announces it:
        how many rows changed (1, or 0 when the claim is not held)."""
        with self._transaction(f"{verb} of job {job.uuid}") as cur:
            count = self._execute(cur, _finish_sql(epoch is not None), _finish_params(self, job, who, new_state, epoch))
            count = count.rowcount
            if count == 1:
                self._announce(cur, done=new_state != states.UNCLAIMED)
        return count

    # -- reading -------------------------------------------------------------------------------
    @property
    def job_count(self) -> int:
        """Jobs not yet complete."""
        with self._transaction("counting jobs", single=True) as cur:
            return int(
                self._execute(
                    cur,
                    f"SELECT count(*) FROM {TABLE} WHERE board = %s AND state IN ('UNCLAIMED', 'CLAIMED')",
                    (self.name,),
                ).fetchone()[0]
            )

    def _job_from(self, row: tuple) -> Job:
        uuid, name, details, book_uuid, book_name, priority, state, owner, created, modified = row
        return Job(
            self,
            name,
            uuid,
            json.loads(details),
            book_uuid,
            book_name,
            JobPriority.from_rank(int(priority)),
            float(created),
            float(modified),
            state,
            owner,
        )

    def _list_jobs(self, only_unclaimed: bool, include_complete: bool = False) -> list[Job]:
        states_sql = "'UNCLAIMED', 'CLAIMED'" + (", 'COMPLETE', 'TRASHED'" if include_complete else "")
        with self._transaction("listing jobs", single=True) as cur:
            rows = self._execute(
                cur,
                f"SELECT {_COLUMNS.replace('state,', _LIVE_STATE + ',')} FROM {TABLE} WHERE board = %s AND state "
                f"IN ({states_sql}) ORDER BY priority DESC, seq",
                (self.name,),
            ).fetchall()
        jobs = [self._job_from(row) for row in rows]
        if only_unclaimed:
            jobs = [job for job in jobs if job._state == states.UNCLAIMED]
        return jobs

    def list_all(self) -> list[Job]:
        """Every job, finished ones included, by priority then age (for ``ferroflow jobs list --all``)."""
        return self._list_jobs(False, include_complete=True)

    def find(self, job_uuid: str) -> Job:
        """The job ``job_uuid`` (a prefix of at least 8 characters is enough).

        :raises NotFound: no job, or several, match.
        """
        with self._transaction("finding a job", single=True) as cur:
            rows = self._execute(
                cur,
                f"SELECT {_COLUMNS.replace('state,', _LIVE_STATE + ',')} FROM {TABLE} WHERE board = %s AND "
                "uuid LIKE %s LIMIT 2",
                (self.name, job_uuid + "%"),
            ).fetchall()
        if len(rows) != 1 or (len(job_uuid) < 8 and rows[0][0] != job_uuid):
            found = "no job" if not rows else "several jobs"
            raise exceptions.NotFound(f"{found} on board {self.name!r} ({self._where()}) match {job_uuid!r}")
        return self._job_from(rows[0])

    def _has_unclaimed(self) -> bool:
        with self._transaction("looking for unclaimed jobs", single=True) as cur:
            row = self._execute(
                cur,
                f"SELECT 1 FROM {TABLE} WHERE board = %s AND (state = 'UNCLAIMED' OR (state = 'CLAIMED' AND "
                "expires_at < {now})) LIMIT 1",
                (self.name,),
            ).fetchone()
        return row is not None

    def _job_row(self, uuid: str) -> tuple[str, str | None, float] | None:
        with self._transaction(f"reading job {uuid}", single=True) as cur:
            row = self._execute(
                cur,
                f"SELECT {_LIVE_STATE}, owner, last_modified FROM {TABLE} WHERE board = %s AND uuid = %s",
                (self.name, uuid),
            ).fetchone()
        if row is None:
            return None
        state, owner, modified = row
        return state, (owner if state in (states.CLAIMED, states.COMPLETE, base.TRASHED) else None), float(modified)

    def seconds_to_next_expiry(self) -> float | None:
        """Seconds until the earliest claim of this board expires (None without claims)."""
        with self._transaction("reading claim expiries", single=True) as cur:
            row = self._execute(
                cur,
                f"SELECT min(expires_at) - {{now}} FROM {TABLE} WHERE board = %s AND state = 'CLAIMED'",
                (self.name,),
            ).fetchone()
        return None if row is None or row[0] is None else max(float(row[0]), 0.0)

    def _next_wake(self, left: float | None) -> float | None:
        expiry = self.seconds_to_next_expiry()
        if expiry is None:
            return left
        expiry += 0.01
        return expiry if left is None else min(left, expiry)

    def _load_book(self, book_uuid: str) -> Any:
        backend = self._persistence
        if backend is None:
            return None
        if not hasattr(backend, "get_connection"):
            from ferroflow.persistence import backends

            backend = self._persistence = backends.fetch(backend)
        with contextlib.closing(backend.get_connection()) as conn:
            return conn.get_logbook(book_uuid)

    # -- entities ------------------------------------------------------------------------------
    def register_entity(self, entity: Entity) -> None:
        """Records an entity (a conductor) working on this board."""
        if not isinstance(entity, Entity):
            raise ValueError(f"Expected an Entity, got {entity!r}")
        with self._transaction(f"registering {entity.kind} {entity.name!r}") as cur:
            self._execute(
                cur,
                "DELETE FROM ferroflow_job_entities WHERE board = %s AND kind = %s AND name = %s",
                (self.name, entity.kind, entity.name),
            )
            self._execute(
                cur,
                "INSERT INTO ferroflow_job_entities (board, kind, name, metadata, registered_on) VALUES "
                "(%s, %s, %s, %s, {now})",
                (self.name, entity.kind, entity.name, json.dumps(entity.metadata, default=str)),
            )

    # -- waking --------------------------------------------------------------------------------
    def _change_token(self) -> int:
        return self._changes.token

    def _wait_for_change(self, token: int, timeout: float | None, done: bool = False) -> bool:
        self._start_watching(done)
        return self._changes.wait(token, timeout)

    def interrupt(self) -> None:
        """Wakes every thread waiting on this board (a conductor's ``stop``)."""
        self._changes.bump()


_INSERT_JOB = (
    f"INSERT INTO {TABLE} (board, uuid, name, details, book_uuid, book_name, priority, state, epoch, created_on, "
    "last_modified) VALUES (%s, %s, %s, %s, %s, %s, %s, 'UNCLAIMED', 0, {now}, {now})"
)


def _finish_sql(fenced: bool) -> str:
    """The UPDATE that finishes (or releases) a claimed job: parameters `_finish_params`."""
    return (
        f"UPDATE {TABLE} SET state = %s, owner = CASE WHEN %s = 'UNCLAIMED' THEN NULL ELSE owner END, "
        "expires_at = NULL, last_modified = {now} WHERE board = %s AND uuid = %s AND state = 'CLAIMED' "
        "AND owner = %s" + (" AND epoch = %s" if fenced else "")
    )


def _finish_params(board: SqlJobBoard, job: Job, who: str, new_state: str, epoch: int | None) -> tuple:
    params: tuple = (new_state, new_state, board.name, job.uuid, who)
    return params if epoch is None else (*params, epoch)


#: The state a reader sees: a claim past its expiry reads UNCLAIMED.
_LIVE_STATE = "CASE WHEN state = 'CLAIMED' AND expires_at < {now} THEN 'UNCLAIMED' ELSE state END"


def _check_who(who: Any) -> None:
    if not isinstance(who, str) or not who:
        raise ValueError(f"'who' must be a non-empty string, got {who!r}")


def _positive(value: Any, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{what} must be positive and finite, got {value!r}")
    return seconds
