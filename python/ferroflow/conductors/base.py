"""What every conductor does with a job: find its flow detail and load an engine for it
(TaskFlow's ``taskflow.conductors.base``)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from ferroflow import engines, exceptions
from ferroflow.jobs.base import Entity, Job
from ferroflow.types import notifier

__all__ = ["Conductor"]


class Conductor:
    """Takes jobs from ``jobboard`` and runs their flows with ``persistence`` (TaskFlow's API).

    :param name: the conductor's name; it is the owner its claims are made under.
    :param jobboard: a board from `ferroflow.jobs.backends.fetch`.
    :param persistence: the backend (or its URI) holding the jobs' logbooks and flows.
    :param engine: the engine kind (``"serial"``, ``"parallel"``...; default ``"default"``).
    :param engine_options: passed to `ferroflow.engines.load_from_detail` (``lease_seconds``,
        ``trusted_modules``...).
    """

    ENTITY_KIND = "conductor"

    def __init__(
        self,
        name: str,
        jobboard: Any,
        persistence: Any = None,
        engine: str | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._jobboard = jobboard
        if isinstance(persistence, (str, dict)):
            from ferroflow.persistence import backends

            persistence = backends.fetch(persistence)
        self._persistence = persistence
        self._engine = engine
        self._engine_options = dict(engine_options or {})
        self._lock = threading.RLock()
        self._notifier = notifier.Notifier()
        self._entity: Entity | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def conductor(self) -> Entity:
        """The entity this conductor registers on its board (``name@host:pid``)."""
        if self._entity is None:
            host = socket.gethostname()
            self._entity = Entity(
                self.ENTITY_KIND, f"{self._name}@{host}:{os.getpid()}", {"hostname": host, "pid": os.getpid()}
            )
        return self._entity

    @property
    def notifier(self) -> notifier.Notifier:
        """Where the conductor's events are sent (see ``EVENTS_EMITTED``)."""
        return self._notifier

    def _flow_detail_from_job(self, job: Job) -> Any:
        """The flow detail ``job.details['flow_uuid']`` names in the job's book, or the book's only one.

        With a ``flow_uuid`` and a persistence backend, only that flow detail is read (not the
        whole book).
        """
        flow_uuid = (job.details or {}).get("flow_uuid")
        if flow_uuid is not None and job.book_uuid is not None and hasattr(self._persistence, "get_connection"):
            with contextlib.closing(self._persistence.get_connection()) as conn:
                try:
                    return conn.get_flow_details(flow_uuid, lazy=True)  # the engine reads its atoms
                except exceptions.NotFound:
                    raise exceptions.NotFound(
                        f"Job {job.uuid} ({job.name!r}): no flow detail {flow_uuid} in the persistence"
                    ) from None
        book = job.book
        if book is None:
            raise exceptions.NotFound(
                f"Job {job.uuid} ({job.name!r}) names no book"
                + (f" (book {job.book_uuid} is not in the persistence)" if job.book_uuid else "")
            )
        if flow_uuid is not None:
            flow_detail = book.find(flow_uuid)
            if flow_detail is None:
                raise exceptions.NotFound(f"Job {job.uuid} ({job.name!r}): no flow detail {flow_uuid} in its book")
            return flow_detail
        details = list(book)
        if len(details) == 1:
            return details[0]
        if not details:
            raise exceptions.NotFound(f"Job {job.uuid} ({job.name!r}): its book has no flow detail")
        raise exceptions.MultipleChoices(
            f"Job {job.uuid} ({job.name!r}): its book has {len(details)} flow details and the job names none "
            "(details['flow_uuid'])"
        )

    def _engine_from_job(self, job: Job) -> Any:
        """An engine for the job's flow, with the flow detail's and the job's ``store`` injected
        (saved with the flow's first write, in one transaction)."""
        flow_detail = self._flow_detail_from_job(job)
        store: dict[str, Any] = {}
        if flow_detail.meta and "store" in flow_detail.meta:
            store.update(flow_detail.meta["store"])
        if job.details and "store" in job.details:
            store.update(job.details["store"])
        return engines.load_from_detail(
            flow_detail,
            store=store,
            engine=self._engine or "default",
            backend=self._persistence,
            **self._engine_options,
        )

    def _listeners_from_job(self, job: Job, engine: Any) -> list[Any]:
        """Listeners to attach to a job's engine (override to add some)."""
        return []

    def connect(self) -> None:
        """Connects the board (nothing if it is connected)."""
        with self._lock:
            if not self._jobboard.connected:
                self._jobboard.connect()

    def close(self) -> None:
        """Closes the board."""
        with self._lock:
            self._jobboard.close()

    def run(self, max_dispatches: int | None = None) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> bool:
        raise NotImplementedError
