"""``ferroflow rewind FLOW --to ATOM``: undo the atoms after ATOM and run them again."""

from __future__ import annotations

import argparse
from typing import Any

from ferroflow.cli import common
from ferroflow.cli.resume import resume_flows

DESCRIPTION = """\
Rewind a flow saved in the database to one of its atoms: the atoms that come after ATOM in the
flow (those that use its results, directly or not) are reverted, latest first, each with its
saved result and the current code's revert, then run again with the current code, and the rest
of the flow runs as a resume would. ATOM itself and the atoms before it keep their results.
Use it when a bug fix must reach results that were already computed. The reverts to do are
saved first, so a rewind killed half way is finished by the next `ferroflow resume` (nothing is
reverted twice). The flow is rebuilt by its saved factory, as `ferroflow resume` does, and the
same options apply. `ferroflow plan FLOW_UUID --rewind-to ATOM` shows what a rewind does before
it runs. Exit status: 0 the flow ended SUCCESS, 1 it failed or could not be rewound, 2 usage
error.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rewind", help="revert the atoms after ATOM and run them again", description=DESCRIPTION
    )
    parser.add_argument("flow", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--to", required=True, metavar="ATOM", help="the atom to go back to (it keeps its result)")
    common.add_change_arguments(parser)
    common.add_db_argument(parser)
    common.add_engine_arguments(parser)
    common.add_trust_argument(parser)
    parser.set_defaults(handler=rewind_command)


def rewind_command(args: argparse.Namespace) -> int:
    return resume_flows(args, rewind_to=args.to)
