"""Child process of the retry and decider crash tests: `crash.worker` that also says what ``run()`` raised.

- ``create ...``: as `crash.worker.create`.
- ``resume DB FLOW_UUID ENGINE``: as `crash.worker.resume`, printing ``RAISED <how> <message>``
  before ``FINAL <flow state>`` when ``engine.run()`` raised: ``<how>`` is ``itself`` (the exception
  object, raised in this process) or ``wrapped`` (a `WrappedFailure` of failures loaded from the
  store; their messages joined by `MESSAGE_SEPARATOR`). Nothing but `crash.flows.Boom` is
  expected; anything else escapes.
"""

from __future__ import annotations

import sys

from ferroflow import engines, exceptions, states

from . import flows
from .worker import MAX_WORKERS, _backend, create

RAISED = "RAISED"
ALREADY = "ALREADY REVERTED"
MESSAGE_SEPARATOR = " | "


def resume(db: str, flow_uuid: str, engine_kind: str) -> None:
    backend = _backend(db)
    flow_detail = backend.get_connection().get_flow_details(flow_uuid)
    if flow_detail.state == states.REVERTED:
        # The previous life was killed after committing the end (and maybe before saying what it
        # raised): loading a REVERTED flow would restart it, so only report.
        print(ALREADY, flush=True)
        print(f"FINAL {flow_detail.state}", flush=True)
        return
    engine = engines.load_from_detail(flow_detail, backend=backend, engine=engine_kind, max_workers=MAX_WORKERS)
    try:
        engine.run()
    except flows.Boom as boom:
        print(f"{RAISED} itself {boom}", flush=True)
    except exceptions.WrappedFailure as wrapped:
        if not all(cause.check(flows.Boom) for cause in wrapped):
            raise
        messages = MESSAGE_SEPARATOR.join(cause.exception_str for cause in wrapped)
        print(f"{RAISED} wrapped {messages}", flush=True)
    print(f"FINAL {engine.storage.get_flow_state()}", flush=True)


COMMANDS = {"create": create, "resume": resume}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: python -m crash.raising_worker {{{'|'.join(COMMANDS)}}} ARGS...")
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
