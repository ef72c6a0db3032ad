"""Resuming across code changes: versions, migrations, orphans, the plan and rewind.

`ResumptionMixin` is mixed into `ActionEngine`; the engine calls its hooks at fixed points
(`_before_run` once the flow is prepared, `_after_loop` when nothing more is ready) so that this
concern stays in one module.
"""

from __future__ import annotations

from typing import Any


class ResumptionMixin:
    """Hooks and public methods for resumption across code changes (filled in by that work)."""

    def _before_run(self) -> None:
        """Called after prepare/validate, before the flow goes RUNNING."""

    def _after_loop(self, outcome: str | None) -> str | None:
        """Called when the scheduler has nothing more to run; may do extra work (e.g. revert
        orphans on a rollback) and returns the outcome to use."""
        return outcome

    def _hook_state(self) -> dict[str, Any]:
        return {}
