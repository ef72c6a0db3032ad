"""``ferroflow show``: the flows saved in a database, or one flow's atoms."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from typing import Any

from ferroflow.cli import common

DESCRIPTION = """\
Without FLOW_UUID, list the flows saved in the database: uuid, name, state, how many atoms are in
each state, the factory that rebuilds it, when it last changed. A flow held by an engine says
whether that engine is live (its lease held and unexpired) or dead (its process is gone or its
lease expired: resume it). With FLOW_UUID (or a unique prefix of it), list that flow's atoms:
name, state, intention, version and a preview of the result. --state keeps the flows (or atoms)
in the given states; a table shows at most --limit rows (default 100; 0 for all).
--json prints the same as strict JSON (whole results, failures as dicts), for tools: a float
that JSON cannot hold is written as the string "NaN", "Infinity" or "-Infinity". The store (a
SQLite file, a dir:// directory or a PostgreSQL database) is opened read-only: nothing is written
to it, nothing is created, and what is not a ferroflow store is refused. A dir:// store keeps no
time of a flow's last change: UPDATED is "-" there.
"""

_PREVIEW = 48


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("show", help="list saved flows, or one flow's atoms", description=DESCRIPTION)
    parser.add_argument("flow", nargs="?", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--state",
        action="append",
        type=_state,
        metavar="STATE",
        help="only flows (with FLOW_UUID: atoms) in this state (repeatable, or comma separated: SUCCESS,FAILURE)",
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        metavar="N",
        help=f"show at most N rows (default: {DEFAULT_LIMIT} in a table, all in JSON; 0: all)",
    )
    common.add_db_argument(parser)
    parser.set_defaults(handler=show_command)


#: Rows a table shows when --limit is not given.
DEFAULT_LIMIT = 100


def _state(text: str) -> list[str]:
    from ferroflow import states

    known = sorted({value for name, value in vars(states).items() if name.isupper() and isinstance(value, str)})
    chosen = [part.strip().upper() for part in text.split(",") if part.strip()]
    for state in chosen:
        if state not in known:
            raise argparse.ArgumentTypeError(f"unknown state {state!r} (one of: {', '.join(known)})")
    return chosen


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, not {value}")
    return value


def show_command(args: argparse.Namespace) -> int:
    store = common.locate_store(args.db, must_exist=True)
    wanted = {state for group in args.state or () for state in group} or None
    limit = args.limit if args.limit is not None else (0 if args.json else DEFAULT_LIMIT)
    with common.open_store(store, read_only=True) as backend:
        flows = common.list_flows(backend)
        if args.flow:
            text = _show_flow(backend, common.find_flow(flows, args.flow), args.json, wanted, limit)
        else:
            text = _show_flows(backend, flows, args.json, store, wanted, limit)
    print(text)
    return common.EXIT_OK


def _limited(rows: list[Any], limit: int) -> tuple[list[Any], int]:
    """The first ``limit`` rows (all for 0), and how many were left out."""
    if not limit or len(rows) <= limit:
        return rows, 0
    return rows[:limit], len(rows) - limit


def _more(left_out: int, what: str) -> str:
    return f"\n... {left_out} more {what} (show them with --limit 0, or narrow with --state)" if left_out else ""


# -- the flows -----------------------------------------------------------------------------------


def _show_flows(
    backend: Any, flows: list[common.FlowRecord], as_json: bool, path: Any, wanted: set[str] | None, limit: int
) -> str:
    if wanted is not None:
        flows = [flow for flow in flows if flow.state in wanted]
    flows, left_out = _limited(flows, limit)
    listed = []
    with contextlib.closing(backend.get_connection()) as conn:
        owners = {flow.uuid: common.owner_of(conn, flow.uuid) for flow in flows}
    for flow in flows:
        atoms = common.atom_states(backend, flow.uuid)
        times = [t for t in (flow.updated_at, atoms.last_update) if t is not None]
        updated = max(times) if times else None
        listed.append((flow, atoms.counts, updated))
    if as_json:
        return _dumps(
            [
                {
                    "uuid": flow.uuid,
                    "name": flow.name,
                    "state": flow.state,
                    "atom_count": sum(counts.values()),
                    "atoms": dict(counts.most_common()),
                    "factory": flow.factory,
                    "owner": _owner_json(owners[flow.uuid]),
                    "book": {"uuid": flow.book_uuid, "name": flow.book_name},
                    "created_at": common.iso_time(flow.created_at),
                    "updated_at": common.iso_time(updated),
                }
                for flow, counts, updated in listed
            ]
        )
    if not listed:
        which = f" in state {', '.join(sorted(wanted))}" if wanted else ""
        return f"no flows{which} in {path}"
    rows = [
        (
            flow.uuid,
            flow.name,
            _state_text(flow.state, owners[flow.uuid]),
            f"{sum(counts.values())}: {common.format_counts(counts)}",
            flow.factory or "- (not resumable)",
            common.format_time(updated),
        )
        for flow, counts, updated in listed
    ]
    table = common.format_table(("UUID", "NAME", "STATE", "ATOMS", "FACTORY", "UPDATED"), rows)
    return table + _more(left_out, "flows")


def _state_text(state: str, owner: common.Owner | None) -> str:
    """``RUNNING (live: owner host:1234, ...)``, ``RUNNING (dead: ...)``; a RUNNING flow without
    an owner is dead too (its engine stopped without finishing it)."""
    from ferroflow import states

    if owner is not None:
        return f"{state} ({owner.describe()})"
    if state == states.RUNNING:
        return f"{state} (dead: no engine holds it)"
    return state


def _owner_json(owner: common.Owner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {
        "owner": owner.owner,
        "lease_until": common.iso_time(owner.until),
        "epoch": owner.epoch,
        "live": owner.live,
        "why_dead": owner.why or None,
    }


# -- one flow ------------------------------------------------------------------------------------


#: At most this many rows of a flow are read one by one (from its columns); more are read at once.
_ONE_BY_ONE = 1000


def _show_flow(backend: Any, flow: common.FlowRecord, as_json: bool, wanted: set[str] | None, limit: int) -> str:
    with contextlib.closing(backend.get_connection()) as conn:
        total, details, left_out = _flow_atoms(conn, flow.uuid, wanted, limit)
        owner = common.owner_of(conn, flow.uuid)
    if as_json:
        return _dumps(
            {
                "uuid": flow.uuid,
                "name": flow.name,
                "state": flow.state,
                "factory": flow.meta.get("factory"),
                "owner": _owner_json(owner),
                "book": {"uuid": flow.book_uuid, "name": flow.book_name},
                "created_at": common.iso_time(flow.created_at),
                "updated_at": common.iso_time(flow.updated_at),
                "atoms": [_atom_json(ad) for ad in details],
            }
        )
    factory = flow.meta.get("factory") or {}
    shown = str(total)
    if wanted is not None:
        shown += f" ({len(details) + left_out} in state {', '.join(sorted(wanted))})"
    header = [
        f"flow     {flow.uuid}",
        f"name     {common.printable(flow.name)}",
        f"state    {_state_text(flow.state, owner)}",
        f"factory  {common.printable(_call_text(factory)) if factory else '- (not resumable)'}",
        f"atoms    {shown}",
    ]
    rows = [(ad.name, ad.state, ad.intention, ad.version, _preview(ad)) for ad in details]
    table = common.format_table(("NAME", "STATE", "INTENTION", "VERSION", "RESULT"), rows)
    return "\n".join(header) + "\n\n" + table + _more(left_out, "atoms")


def _flow_atoms(conn: Any, flow_uuid: str, wanted: set[str] | None, limit: int) -> tuple[int, list[Any], int]:
    """``(atom count, the details shown, how many more were left out)`` of a flow (its store
    values' pseudo atom left out). A backend that reads a flow's atoms as columns (SQLite,
    PostgreSQL) gives names and states without a model per row: the shown details are made
    from their rows (a 100,000-atom flow shows its first 100 without decoding the rest)."""
    columns = getattr(conn, "saved_atoms", None)
    saved = columns(flow_uuid) if columns is not None else None
    if saved is None or not saved.raw:
        return _atoms_of(list(conn.get_atoms_for_flow(flow_uuid)), wanted, limit)
    names, states = saved.names, saved.states
    positions = range(len(names))
    from ferroflow.persistence.models import INJECTOR_NAME

    if INJECTOR_NAME in names:
        positions = [i for i in positions if names[i] != INJECTOR_NAME]
    total = len(positions)
    if wanted is not None:
        # (a saved state is one of a few shared strings: test each once)
        keep = {state: (state or "PENDING") in wanted for state in set(states)}
        positions = [i for i in positions if keep[states[i]]]
    positions, left_out = _limited(positions, limit)
    if len(positions) <= _ONE_BY_ONE:
        return total, [saved.detail(i) for i in positions], left_out
    every = list(conn.get_atoms_for_flow(flow_uuid))  # (one read: cheaper than many for a long listing)
    if len(every) != len(names):  # (changed between the two reads: what the second read says)
        return _atoms_of(every, wanted, limit)
    return total, [every[i] for i in positions], left_out


def _atoms_of(details: list[Any], wanted: set[str] | None, limit: int) -> tuple[int, list[Any], int]:
    """`_flow_atoms` over the models of every saved detail of a flow."""
    details = [ad for ad in details if not common.is_injector(ad.name)]
    total = len(details)
    if wanted is not None:
        details = [ad for ad in details if (ad.state or "PENDING") in wanted]
    details, left_out = _limited(details, limit)
    return total, details, left_out


def _call_text(factory: dict[str, Any]) -> str:
    args = [json.dumps(a) for a in factory.get("args", [])]
    args += [f"{k}={json.dumps(v)}" for k, v in factory.get("kwargs", {}).items()]
    return f"{factory.get('name')}({', '.join(args)})"


def _preview(ad: Any) -> str:
    if ad.failure is not None:
        text = "failed: " + common.describe_failure(ad.failure)
    elif ad.results is None and ad.state != "SUCCESS":
        text = "-"
    else:
        text = json.dumps(ad.results, default=_jsonable, ensure_ascii=False)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def _atom_json(ad: Any) -> dict[str, Any]:
    return {
        "name": ad.name,
        "uuid": ad.uuid,
        "type": type(ad).__name__,
        "state": ad.state,
        "intention": ad.intention,
        "version": ad.version,
        "results": ad.results,
        "failure": ad.failure,
        "revert_results": ad.revert_results,
        "revert_failure": ad.revert_failure,
        "meta": ad.meta,
    }


def _jsonable(value: Any) -> Any:
    """JSON form of what ``json`` cannot encode: failures as their dict form, the rest as text."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return repr(value)


def _dumps(data: Any) -> str:
    """Strict JSON (RFC 8259): non-finite floats, which ``json`` would write as bare ``NaN`` /
    ``Infinity``, become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``."""
    try:
        return json.dumps(data, indent=2, default=_jsonable, ensure_ascii=False, allow_nan=False)
    except ValueError:  # a non-finite float somewhere
        return json.dumps(_finite(data), indent=2, default=_jsonable, ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with each non-finite float replaced by its name (see `_dumps`)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if hasattr(value, "to_dict"):  # a failure
        return _finite(value.to_dict())
    return value
