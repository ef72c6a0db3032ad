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
each state, the factory that rebuilds it, when it last changed. With FLOW_UUID (or a unique prefix
of it), list that flow's atoms: name, state, intention, version and a preview of the result.
--json prints the same as strict JSON (whole results, failures as dicts), for tools: a float
that JSON cannot hold is written as the string "NaN", "Infinity" or "-Infinity". The database is
opened read-only: nothing is written to it, and a file that is not a ferroflow store is refused.
"""

_PREVIEW = 48


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("show", help="list saved flows, or one flow's atoms", description=DESCRIPTION)
    parser.add_argument("flow", nargs="?", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_db_argument(parser)
    parser.set_defaults(handler=show_command)


def show_command(args: argparse.Namespace) -> int:
    path = common.db_path(args.db, must_exist=True)
    with common.open_backend(path, read_only=True) as backend:
        flows = common.list_flows(backend)
        if args.flow:
            text = _show_flow(backend, common.find_flow(flows, args.flow), args.json)
        else:
            text = _show_flows(backend, flows, args.json, path)
    print(text)
    return common.EXIT_OK


# -- the flows -----------------------------------------------------------------------------------


def _show_flows(backend: Any, flows: list[common.FlowRecord], as_json: bool, path: Any) -> str:
    listed = []
    for flow in flows:
        atoms = common.atom_states(backend, flow.uuid)
        updated = max(flow.updated_at, atoms.last_update or 0.0)
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
                    "book": {"uuid": flow.book_uuid, "name": flow.book_name},
                    "created_at": common.iso_time(flow.created_at),
                    "updated_at": common.iso_time(updated),
                }
                for flow, counts, updated in listed
            ]
        )
    if not listed:
        return f"no flows in {path}"
    rows = [
        (
            flow.uuid,
            flow.name,
            flow.state,
            f"{sum(counts.values())}: {common.format_counts(counts)}",
            flow.factory or "- (not resumable)",
            common.format_time(updated),
        )
        for flow, counts, updated in listed
    ]
    return common.format_table(("UUID", "NAME", "STATE", "ATOMS", "FACTORY", "UPDATED"), rows)


# -- one flow ------------------------------------------------------------------------------------


def _show_flow(backend: Any, flow: common.FlowRecord, as_json: bool) -> str:
    with contextlib.closing(backend.get_connection()) as conn:
        details = [ad for ad in conn.get_atoms_for_flow(flow.uuid) if not common.is_injector(ad.name)]
    if as_json:
        return _dumps(
            {
                "uuid": flow.uuid,
                "name": flow.name,
                "state": flow.state,
                "factory": flow.meta.get("factory"),
                "book": {"uuid": flow.book_uuid, "name": flow.book_name},
                "created_at": common.iso_time(flow.created_at),
                "updated_at": common.iso_time(flow.updated_at),
                "atoms": [_atom_json(ad) for ad in details],
            }
        )
    factory = flow.meta.get("factory") or {}
    header = [
        f"flow     {flow.uuid}",
        f"name     {flow.name}",
        f"state    {flow.state}",
        f"factory  {_call_text(factory) if factory else '- (not resumable)'}",
        f"atoms    {len(details)}",
    ]
    rows = [(ad.name, ad.state, ad.intention, ad.version, _preview(ad)) for ad in details]
    table = common.format_table(("NAME", "STATE", "INTENTION", "VERSION", "RESULT"), rows)
    return "\n".join(header) + "\n\n" + table


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
