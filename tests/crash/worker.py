"""Child process of the crash tests: ``python -m crash.worker <command> ...`` (``tests/`` on the path).

``DB`` is the store's URI (or the path of a SQLite file).

- ``create DB KIND N SEED JOURNAL FAIL_AT MAX_PAUSE_US``: saves a new flow detail built by
  `crash.flows.build` (nothing runs) and prints its uuid.
- ``resume DB FLOW_UUID ENGINE``: loads the saved flow detail in this fresh process and runs it to
  its end, then prints ``FINAL <flow state>``. A flow already REVERTED is left alone: running it
  again would restart it from scratch (TaskFlow's semantics for a rolled-back flow), which is not
  a resumption. `crash.flows.Boom`, the failure a revert scenario expects, is not an error here
  (re-raised as itself, or as a `WrappedFailure` when it was loaded from the store).

Any other exception escapes, so the process exits non-zero with a traceback the test shows.
"""

from __future__ import annotations

import sys

from ferroflow import engines, exceptions, states
from ferroflow.persistence import backends, base

from . import flows

MAX_WORKERS = 4


def _backend(db: str) -> base.Backend:
    return backends.fetch(db if "://" in db else f"sqlite:///{db}")


def create(db: str, kind: str, n: str, seed: str, journal: str, fail_at: str, max_pause_us: str) -> None:
    args = [kind, int(n), int(seed), journal, int(fail_at), int(max_pause_us)]
    engine = engines.load_from_factory(flows.build, factory_args=args, backend=_backend(db))
    print(engine.storage.flow_uuid, flush=True)


def resume(db: str, flow_uuid: str, engine_kind: str) -> None:
    backend = _backend(db)
    flow_detail = backend.get_connection().get_flow_details(flow_uuid)
    if flow_detail.state == states.REVERTED:
        print(f"FINAL {flow_detail.state}", flush=True)
        return
    engine = engines.load_from_detail(flow_detail, backend=backend, engine=engine_kind, max_workers=MAX_WORKERS)
    try:
        engine.run()
    except flows.Boom:
        pass  # failed in this process: re-raised as itself
    except exceptions.WrappedFailure as wrapped:
        # A failure loaded from the store (failed before a kill) has lost its exception object.
        if not all(cause.check(flows.Boom) for cause in wrapped):
            raise
    print(f"FINAL {engine.storage.get_flow_state()}", flush=True)


COMMANDS = {"create": create, "resume": resume}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: python -m crash.worker {{{'|'.join(COMMANDS)}}} ARGS...")
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
