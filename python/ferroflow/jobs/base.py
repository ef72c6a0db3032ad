"""The jobboard API (TaskFlow's ``taskflow.jobs.base``): `Job`, `JobBoard`, `JobPriority`, `Entity`.

A job names a logbook (``book``) and carries ``details`` (TaskFlow's: ``flow_uuid`` picks the flow
detail a conductor runs, ``store`` values are injected into it). Its ``state`` is UNCLAIMED, CLAIMED
(by one owner, until the claim expires) or COMPLETE (consumed or trashed).
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterator
from typing import Any

from ferroflow import exceptions, states

__all__ = ["Entity", "Job", "JobBoard", "JobBoardIterator", "JobPriority"]


class JobPriority(enum.Enum):
    """Job priorities, most urgent first (TaskFlow's ``JobPriority``)."""

    VERY_HIGH = "VERY_HIGH"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    VERY_LOW = "VERY_LOW"

    @classmethod
    def convert(cls, value: Any) -> JobPriority:
        """A priority from itself or its name (any case); ValueError naming the valid ones."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value.upper())
        except (ValueError, AttributeError):
            raise ValueError(
                f"{value!r} is not a valid job priority, valid priorities are {[p.value for p in cls]}"
            ) from None

    @property
    def rank(self) -> int:
        """How the board orders it: higher is handed out first."""
        return _RANKS[self]

    @classmethod
    def from_rank(cls, rank: int) -> JobPriority:
        return _BY_RANK[rank]


_RANKS = {
    JobPriority.VERY_HIGH: 4,
    JobPriority.HIGH: 3,
    JobPriority.NORMAL: 2,
    JobPriority.LOW: 1,
    JobPriority.VERY_LOW: 0,
}
_BY_RANK = {rank: priority for priority, rank in _RANKS.items()}


class Entity:
    """Something that works on a board, such as a conductor (TaskFlow's ``types.entity.Entity``)."""

    def __init__(self, kind: str, name: str, metadata: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.metadata = dict(metadata or {})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "metadata": self.metadata}


class Job:
    """A posted unit of work: a snapshot of its row, refreshed by `state` and `wait`."""

    def __init__(
        self,
        board: JobBoard,
        name: str,
        uuid: str,
        details: dict[str, Any],
        book_uuid: str | None,
        book_name: str | None,
        priority: JobPriority,
        created_on: float,
        last_modified: float,
        state: str,
        owner: str | None = None,
    ) -> None:
        self.board = board
        self.name = name
        self.uuid = uuid
        self.details = details
        self.book_uuid = book_uuid
        self.book_name = book_name
        self.priority = priority
        self._created_on = created_on
        self._last_modified = last_modified
        self._state = state
        self.owner = owner
        self._book: Any = None

    @property
    def created_on(self) -> float:
        """When it was posted (seconds since the epoch)."""
        return self._created_on

    @property
    def last_modified(self) -> float:
        """When it was last posted, claimed, released or finished (seconds since the epoch)."""
        return self._last_modified

    @property
    def state(self) -> str:
        """UNCLAIMED, CLAIMED or COMPLETE, read from the board now (a claim that expired is UNCLAIMED)."""
        self._refresh()
        return states.COMPLETE if self._state == TRASHED else self._state

    @property
    def trashed(self) -> bool:
        """Whether it was trashed rather than consumed (read from the board now)."""
        self._refresh()
        return self._state == TRASHED

    def _refresh(self) -> None:
        row = self.board._job_row(self.uuid)
        if row is None:
            self._state = states.COMPLETE
            return
        self._state, self.owner, self._last_modified = row

    @property
    def book(self) -> Any:
        """The job's logbook, loaded from the board's persistence (None without one or a book)."""
        if self._book is None and self.book_uuid is not None:
            self._book = self.board._load_book(self.book_uuid)
        return self._book

    def wait(
        self, timeout: float | None = None, delay: float = 0.01, delay_multiplier: float = 2.0, max_delay: float = 1.0
    ) -> bool:
        """Waits until the job is COMPLETE; False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token = self.board._change_token()
            if self.state == states.COMPLETE:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.board._wait_for_change(token, max_delay if left is None else min(left, max_delay), done=True)

    def __repr__(self) -> str:
        return f"<Job {self.name!r} {self.uuid} {self._state} priority={self.priority.value}>"


#: Stored state of a trashed job (reported as COMPLETE by `Job.state`).
TRASHED = "TRASHED"


class JobBoardIterator:
    """Iterates a board's jobs (TaskFlow's): optionally only the unclaimed ones."""

    def __init__(self, board: JobBoard, only_unclaimed: bool = False) -> None:
        self.board = board
        self.only_unclaimed = only_unclaimed
        self._jobs: Iterator[Job] | None = None

    def __iter__(self) -> JobBoardIterator:
        return self

    def __next__(self) -> Job:
        if self._jobs is None:
            self._jobs = iter(self.board._list_jobs(self.only_unclaimed))
        return next(self._jobs)


class JobBoard:
    """TaskFlow's jobboard API; `ferroflow.jobs.sql_board.SqlJobBoard` implements it."""

    def __init__(self, name: str, conf: dict[str, Any]) -> None:
        self._name = name
        self._conf = conf

    @property
    def name(self) -> str:
        return self._name

    @property
    def conf(self) -> dict[str, Any]:
        return self._conf

    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> JobBoardIterator:
        """Jobs not yet complete, by priority then oldest first (``ensure_fresh`` is always true here)."""
        return JobBoardIterator(self, only_unclaimed)

    def wait(self, timeout: float | None = None) -> JobBoardIterator:
        """Waits until some job is unclaimed; returns an iterator over the unclaimed jobs.

        :raises NotFound: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token = self._change_token()
            if self._has_unclaimed():
                return JobBoardIterator(self, only_unclaimed=True)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise exceptions.NotFound(
                    f"Expired waiting for jobs to arrive on board {self.name!r}; waited {timeout} s"
                )
            self._wait_for_change(token, self._next_wake(left))

    # The rest is the backend's.
    def _list_jobs(self, only_unclaimed: bool) -> list[Job]:
        raise NotImplementedError

    def _has_unclaimed(self) -> bool:
        raise NotImplementedError

    def _job_row(self, uuid: str) -> tuple[str, str | None, float] | None:
        raise NotImplementedError

    def _load_book(self, book_uuid: str) -> Any:
        raise NotImplementedError

    def _change_token(self) -> int:
        raise NotImplementedError

    def _wait_for_change(self, token: int, timeout: float | None, done: bool = False) -> bool:
        """Waits for a change after ``token`` (``done``: finished jobs count as changes too)."""
        raise NotImplementedError

    def _next_wake(self, left: float | None) -> float | None:
        return left

    def __enter__(self) -> JobBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass
