"""Helpers of the examples: a first run that dies part way, and the saved flow read back.

`first_run` runs a flow against a store and lets it crash in the given atom (see
`shop.crash_in`), as a process killed there would: the atom is left RUNNING, the atoms before it
SUCCESS with their results saved. `saved_flow` reads the flow detail back from the store, as a
new process resuming the flow would.
"""

from __future__ import annotations

from typing import Any

from ferroflow import engines
from ferroflow.persistence import models
from shop import Crash, crash_in


def first_run(flow: Any, backend: Any, dies_in: str, order: int = 42) -> str:
    """Runs ``flow`` for ``order`` until its process dies in atom ``dies_in``; returns the
    flow's uuid."""
    print(f"first run of {flow.name!r}, which dies in {dies_in!r}:")
    crash_in(dies_in)
    engine = engines.load(flow, store={"order": order}, backend=backend, book=models.LogBook("shop"))
    try:
        engine.run()
    except Crash:
        pass
    return engine.storage.flow_uuid


def saved_flow(backend: Any, flow_uuid: str) -> Any:
    """The flow detail ``flow_uuid`` as saved (what a resuming process starts from)."""
    with backend.get_connection() as conn:
        return conn.get_flow_details(flow_uuid)


def resume(flow: Any, backend: Any, flow_uuid: str, **options: Any) -> Any:
    """Loads the new code's ``flow`` against the saved flow, prints the plan, runs it; returns the
    engine."""
    engine = engines.load(flow, flow_detail=saved_flow(backend, flow_uuid), backend=backend, **options)
    print("the plan, before anything runs:")
    print(indent(engine.plan().format_table()))
    print("the resumed run:")
    engine.run()
    print(f"the flow ends {engine.storage.get_flow_state()}")
    return engine


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
