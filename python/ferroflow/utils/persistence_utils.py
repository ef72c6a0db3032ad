"""Shortcuts for creating logbooks and flow details (``taskflow.utils.persistence_utils``)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from ferroflow.persistence import base, models

__all__ = ["create_flow_detail", "temporary_flow_detail", "temporary_log_book"]

LOG = logging.getLogger(__name__)


def _save(backend: base.Backend, book: models.LogBook) -> None:
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)


def temporary_log_book(backend: base.Backend | None = None) -> models.LogBook:
    """A new logbook named ``'tmp'``, saved to ``backend`` if one is given."""
    book = models.LogBook("tmp")
    if backend is not None:
        _save(backend, book)
    return book


def temporary_flow_detail(
    backend: base.Backend | None = None, meta: dict[str, Any] | None = None
) -> tuple[models.LogBook, models.FlowDetail]:
    """A new ``'tmp-flow-detail'`` flow detail in a new temporary logbook; returns ``(book, fd)``."""
    book = temporary_log_book(backend)
    flow_detail = models.FlowDetail(name="tmp-flow-detail", uuid=str(uuid.uuid4()))
    if meta is not None:
        flow_detail.meta.update(meta)
    book.add(flow_detail)
    if backend is not None:
        _save(backend, book)
    return book, flow_detail


def create_flow_detail(
    flow: Any,
    book: models.LogBook | None = None,
    backend: base.Backend | None = None,
    meta: dict[str, Any] | None = None,
) -> models.FlowDetail:
    """Create a flow detail named after ``flow.name``, add it to ``book`` and save it to ``backend``.

    Without a book but with a backend, a temporary book is created (and not returned). Without a
    backend nothing is saved.
    """
    flow_id = str(uuid.uuid4())
    flow_name = getattr(flow, "name", None)
    if flow_name is None:
        LOG.warning("No name provided for flow %s (id %s)", flow, flow_id)
        flow_name = flow_id
    flow_detail = models.FlowDetail(name=flow_name, uuid=flow_id)
    if meta is not None:
        flow_detail.meta.update(meta)
    if backend is not None and book is None:
        LOG.warning("No logbook provided for flow %s, creating one.", flow)
        book = temporary_log_book(backend)
    if book is None:
        return flow_detail
    book.add(flow_detail)
    if backend is not None:
        _save(backend, book)
    return flow_detail
