"""``ferroflow graph FLOW``: the compiled flow as a Graphviz drawing, coloured by saved state."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from ferroflow import states
from ferroflow.cli import common

DESCRIPTION = """\
Draw a flow saved in the database: the flow is rebuilt by its saved factory (as `ferroflow
plan` does: imported from the working directory, only from trusted modules, nothing run or
written) and compiled, and each atom is drawn with an arrow to the atoms that wait for it,
filled with the colour of its saved state (green SUCCESS, yellow RUNNING, red FAILURE, blue
REVERTED, white not started). Saved atoms that are no longer in the flow's code (orphans) are
drawn apart, dashed. --format dot writes Graphviz's DOT text and needs nothing else; svg and
png are rendered by Graphviz's `dot` program, which must be installed (apt install graphviz).
Without --output, DOT goes to stdout and an image to flow-<uuid>.<format>. Exit status: 0
drawn, 1 the flow could not be rebuilt or rendered (the DOT file is then kept), 2 usage error.
"""

#: Fill colour per saved state (``None``: never started).
COLOURS = {
    None: "white",
    states.PENDING: "white",
    states.RUNNING: "gold",
    states.SUCCESS: "palegreen",
    states.FAILURE: "salmon",
    states.RETRYING: "orange",
    states.REVERTING: "lightskyblue",
    states.REVERTED: "lightblue",
    states.REVERT_FAILURE: "red",
    states.IGNORE: "gray85",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph", help="draw a flow, coloured by saved state (DOT, SVG, PNG)", description=DESCRIPTION
    )
    parser.add_argument("flow", metavar="FLOW_UUID", help="the flow's uuid (or a unique prefix of it)")
    parser.add_argument("--format", choices=("dot", "svg", "png"), default="dot", help="what to write (default: dot)")
    parser.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: see above)")
    common.add_db_argument(parser)
    common.add_trust_argument(parser)
    parser.set_defaults(handler=graph_command)


def graph_command(args: argparse.Namespace) -> int:
    from ferroflow import engines

    store = common.locate_store(args.db, must_exist=True)
    options = common.trust_options(args)
    common.add_cwd_to_path()
    with common.open_store(store, read_only=True) as backend:
        flow = common.find_flow(common.list_flows(backend), args.flow)
        with contextlib.closing(backend.get_connection()) as conn:
            flow_detail = conn.get_flow_details(flow.uuid, lazy=True)
            saved = {ad.name: ad.state for ad in conn.get_atoms_for_flow(flow.uuid) if not common.is_injector(ad.name)}
        try:
            engine = engines.load_from_detail(flow_detail, backend=backend, **options)
            engine.compile()
        except Exception as exc:
            raise common.CommandError(
                f"cannot draw flow {flow.uuid} ({flow.name}): {common.describe_load_error(exc)}"
            ) from exc
        text = to_dot(flow, engine.compilation, saved)
    if args.format == "dot":
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"wrote {args.output}")
        else:
            print(text, end="")
        return common.EXIT_OK
    output = Path(args.output or f"flow-{flow.uuid[:8]}.{args.format}")
    import shutil  # (here: only rendering needs them, and every command imports this module)
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        kept = output.with_suffix(".dot")
        kept.write_text(text, encoding="utf-8")
        raise common.CommandError(
            f"cannot render {args.format.upper()}: Graphviz's `dot` program is not installed (apt install "
            f"graphviz); wrote the DOT text to {kept} instead (render it later with: dot -T{args.format} {kept} "
            f"-o {output})"
        )
    done = subprocess.run([dot, f"-T{args.format}", "-o", str(output)], input=text.encode(), capture_output=True)
    if done.returncode != 0:
        kept = output.with_suffix(".dot")
        kept.write_text(text, encoding="utf-8")
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise common.CommandError(
            f"dot failed to render {output} ({message[0] if message else f'exit status {done.returncode}'}); "
            f"the DOT text is in {kept}"
        )
    print(f"wrote {output}")
    return common.EXIT_OK


def to_dot(flow: common.FlowRecord, compilation: Any, saved: dict[str, str | None]) -> str:
    """The DOT text of a compiled flow, its atoms filled by their saved states."""
    atoms = compilation.atoms
    names = [atom.name for atom in atoms]
    lines = [
        f"// flow {flow.uuid} ({common.printable(flow.name)}), {flow.state}, drawn by ferroflow graph",
        "digraph flow {",
        f"  label={_quote(f'{flow.name} ({flow.state})')};",
        "  labelloc=t;",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for index, name in enumerate(names):
        lines.append(f"  a{index} [{_node(name, saved.get(name))}];")
    for source, target in sorted(compilation.compiled.atom_edges()):
        lines.append(f"  a{source} -> a{target};")
    orphans = [name for name in saved if name not in set(names)]
    if orphans:
        lines.append("  subgraph cluster_orphans {")
        lines.append('    label="saved, no longer in the code (orphans)";')
        lines.append("    style=dashed;")
        for index, name in enumerate(orphans):
            lines.append(f'    o{index} [{_node(name, saved[name])}, style="rounded,filled,dashed"];')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(name: str, state: str | None) -> str:
    label = f"{name}\n{state or 'not started'}"
    return f"label={_quote(label)}, fillcolor={_quote(COLOURS.get(state, 'white'))}"


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, line breaks as DOT's ``\\n``, other control
    characters escaped (`common.printable`)."""
    parts = text.split("\n")
    escaped = [common.printable(part).replace("\\", "\\\\").replace('"', '\\"') for part in parts]
    return '"' + "\\n".join(escaped) + '"'
