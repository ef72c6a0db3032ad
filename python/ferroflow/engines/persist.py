"""Engine ↔ persistence backend glue (filled in by the persistence work)."""

from __future__ import annotations

from typing import Any


def attach(flow: Any, flow_detail: Any, book: Any, backend: Any) -> tuple[Any, Any]:
    """Resolves the backend and the flow detail to run against (none: memory only)."""
    if backend is None:
        return None, flow_detail
    raise NotImplementedError("persistence backends are not wired into the engine yet")


class Persister:
    def __init__(self, backend: Any, flow_detail: Any) -> None:
        self.backend = backend
        self.flow_detail = flow_detail
