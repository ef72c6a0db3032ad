"""Posting a flow as a job: save its logbook and flow detail (with the factory that rebuilds it),
then post a job naming them, as TaskFlow programs do by hand."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from ferroflow.engines import factories
from ferroflow.jobs.base import Job, JobPriority
from ferroflow.persistence import models
from ferroflow.persistence.models import FACTORY_META
from ferroflow.trust import import_by_name

__all__ = ["post_flow"]


def post_flow(
    board: Any,
    persistence: Any,
    factory: Callable[..., Any] | str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    name: str | None = None,
    priority: JobPriority | str = JobPriority.NORMAL,
) -> Job:
    """Saves a new logbook with one flow detail built by ``factory(*args, **kwargs)`` to
    ``persistence`` and posts a job for it (``details``: ``flow_uuid`` and ``store``).

    The factory must be importable by name (a conductor rebuilds the flow with it); it is called
    once here to name the flow detail.
    """
    meta = factories.factory_meta(factory, args, kwargs)
    flow = import_by_name(meta["name"])(*meta["args"], **meta["kwargs"])
    job_name = name or getattr(flow, "name", None) or meta["name"]
    book = models.LogBook(job_name)
    flow_detail = models.FlowDetail(getattr(flow, "name", job_name))
    flow_detail.meta[FACTORY_META] = meta
    book.add(flow_detail)
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    details: dict[str, Any] = {"flow_uuid": flow_detail.uuid}
    if store:
        details["store"] = dict(store)
    return board.post(job_name, book=book, details=details, priority=priority)
