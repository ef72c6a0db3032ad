"""``ferroflow delete`` and ``ferroflow prune``: remove abandoned or old flows from a database."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

from ferroflow import states
from ferroflow.cli import common

DELETE_DESCRIPTION = """\
Delete a flow saved in the database: its flow detail, its atoms and their results (and its
logbook, when no other flow is in it). A flow that a live engine holds (its lease is unexpired
and its process is not known to be gone) is refused: stop that engine first, or wait for its
lease to expire. On a dir:// store, which has no call deleting one flow, the flow's logbook is
deleted, so a flow whose logbook holds other flows is refused there. Exit status: 0 deleted, 1
refused, 2 usage error.
"""

PRUNE_DESCRIPTION = """\
Delete the flows in the given states (--state, repeatable) that have not changed for longer
than --older-than (like 90s, 15m, 12h, 7d or 2w): for example the flows a cron job left behind.
Flows that a live engine holds are never deleted: they are listed as kept. --dry-run lists what would be
deleted without deleting anything. A dir:// store keeps no time of a flow's last change: there,
only --older-than 0 is accepted. Exit status: 0 done (also when nothing matched), 1 the
database could not be used, 2 usage error.
"""


def add_parser(subparsers: Any) -> None:
    delete = subparsers.add_parser("delete", help="delete a saved flow", description=DELETE_DESCRIPTION)
    delete.add_argument("flow", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    common.add_db_argument(delete)
    delete.set_defaults(handler=delete_command)

    prune = subparsers.add_parser(
        "prune", help="delete flows in given states not changed for a while", description=PRUNE_DESCRIPTION
    )
    prune.add_argument(
        "--state",
        action="append",
        required=True,
        type=_state,
        metavar="STATE",
        help="delete flows in this state (repeatable, or comma separated: SUCCESS,REVERTED)",
    )
    prune.add_argument(
        "--older-than",
        required=True,
        type=common.parse_duration,
        metavar="AGE",
        help="only flows whose last change is older than this (90s, 15m, 12h, 7d, 2w; 0 for any age)",
    )
    prune.add_argument("--dry-run", action="store_true", help="list the flows that would be deleted, delete nothing")
    common.add_db_argument(prune)
    prune.set_defaults(handler=prune_command)


def _state(text: str) -> list[str]:
    chosen = [part.strip().upper() for part in text.split(",") if part.strip()]
    known = _FLOW_STATES
    for state in chosen:
        if state not in known:
            raise argparse.ArgumentTypeError(f"unknown flow state {state!r} (one of: {', '.join(known)})")
    return chosen


_FLOW_STATES = (
    states.PENDING,
    states.RUNNING,
    states.SUCCESS,
    states.FAILURE,
    states.REVERTED,
    states.SUSPENDED,
    states.RESUMING,
    states.REVERTING,
    states.SUSPENDING,
)


class Refused(Exception):
    """A live engine holds the flow, or the store cannot delete it alone."""


def delete_flow(backend: Any, flow: common.FlowRecord, now: float | None = None) -> None:
    """Deletes ``flow`` (its atoms, its emptied logbook), in one transaction.

    :raises Refused: a live engine holds its lease.
    """
    from ferroflow.cli import stores  # (it imports the dir backend: only when deleting)

    now = time.time() if now is None else now
    with contextlib.closing(backend.get_connection()) as conn:
        owner = common.owner_of(conn, flow.uuid, now)
    if owner is not None and owner.live:
        raise Refused(
            f"flow {flow.uuid} ({flow.name}) is held by a live engine ({owner.describe(now)}); stop it first, "
            "or wait until its lease expires"
        )
    gone = owner.owner if owner is not None else None
    try:
        holder = stores.delete_flow_detail(backend, flow.uuid, flow.book_uuid, now, gone)
    except stores.Unsupported as exc:
        raise Refused(f"flow {flow.uuid} ({flow.name}): {exc}") from None
    if holder is not None:  # taken between the look and the delete
        raise Refused(f"flow {flow.uuid} ({flow.name}) is held by a live engine (owner {holder}); stop it first")


def delete_command(args: argparse.Namespace) -> int:
    store = common.locate_store(args.db, must_exist=True)
    with common.open_store(store) as backend:
        flow = common.find_flow(common.list_flows(backend), args.flow)
        atoms = sum(common.atom_states(backend, flow.uuid).counts.values())
        try:
            delete_flow(backend, flow)
        except Refused as exc:
            raise common.CommandError(f"cannot delete: {exc}") from None
    print(f"deleted flow {flow.uuid} ({common.printable(flow.name)}, {flow.state}, {atoms} atoms) from {store}")
    return common.EXIT_OK


def prune_command(args: argparse.Namespace) -> int:
    store = common.locate_store(args.db, must_exist=True)
    wanted = {state for group in args.state for state in group}
    now = time.time()
    cutoff = now - args.older_than
    if store.kind == "dir" and args.older_than > 0:
        raise common.UsageError(
            f"prune --older-than needs the time each flow last changed, which a dir:// store ({store}) does not "
            "keep; give --older-than 0 to prune by state alone"
        )
    with common.open_store(store, read_only=args.dry_run) as backend:
        chosen = []
        for flow in common.list_flows(backend):
            if flow.state not in wanted:
                continue
            updated = common.last_change(backend, flow)
            if updated is None or updated <= cutoff:
                chosen.append((flow, updated))
        deleted = kept = 0
        for flow, updated in chosen:
            changed = common.format_time(updated)
            line = f"{flow.uuid} ({common.printable(flow.name)}, {flow.state}, last changed {changed})"
            if args.dry_run:
                print(f"would delete flow {line}")
                continue
            try:
                delete_flow(backend, flow, now)
            except Refused as exc:
                print(f"kept {common.printable(str(exc))}")
                kept += 1
                continue
            deleted += 1
            print(f"deleted flow {line}")
    states_text = ", ".join(sorted(wanted))
    age = common.format_duration(args.older_than)
    if args.dry_run:
        print(
            f"{common.plural(len(chosen), 'flow')} in state {states_text} unchanged for {age} or more would be "
            f"deleted from {store}"
        )
    else:
        count = common.plural(deleted, "flow")
        held = f" ({common.plural(kept, 'flow')} held by a live engine kept)" if kept else ""
        print(f"deleted {count} in state {states_text} unchanged for {age} or more from {store}{held}")
    return common.EXIT_OK
