"""What ``ferroflow bench`` shows: the results table, the phases table, JSON and a plot."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ferroflow.benchmarking import dbfiles, flows, suite
from ferroflow.benchmarking.phases import Summary

#: Run phases shown in the phases table (resume scenarios have load / match / run).
PHASE_COLUMNS = ("build", "load", "compile", "prepare", "match", "run")

LEGEND = """\
cost: median per atom (per flow for resume-many) of the run phase (run scenarios) or of
  load + match + run (resume scenarios), over `runs` rounds; min-max beside it.
x floor: ferroflow's cost / the floor's (hand-written loop + raw sqlite3 writes); lower is better.
x TaskFlow, x DBOS: the peer's cost / ferroflow's at the same N (per flow for resume-many):
  how many times faster ferroflow is. Peers' SQLite runs use their defaults (rollback journal,
  synchronous=FULL) and are compared with both ferroflow durabilities."""


def number(value: float | None) -> str:
    """A figure with as many digits as it deserves."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _span(summary: Summary | None) -> str:
    if summary is None:
        return "-"
    return f"{number(summary.min)}-{number(summary.max)}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{number(value)}x"


def result_rows(results: Sequence[suite.Result]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the results table."""
    headers = [
        "scenario",
        "store",
        "engine",
        "shape",
        "N",
        "system",
        "cost",
        "min-max",
        "all phases",
        "flows/s",
        "peak MB",
        "runs",
        "x floor",
        "x TaskFlow",
        "x DBOS",
        "note",
    ]
    rows = []
    for result in results:
        case = result.case
        unit = "us/flow" if case.scenario == suite.RESUME_MANY else "us/atom"
        row = [case.scenario, case.store, case.engine, case.shape, f"{case.n:,}", case.system]
        if result.measured:
            cost = result.per_unit_us()
            flows = result.flows_per_second()
            peak = result.peak_rss()
            row += [
                f"{number(cost.median)} {unit}",
                _span(cost),
                number(result.total_per_unit_us().median),
                number(flows.median) if flows else "-",
                number(peak.median) if peak else "-",
                str(len(result.rounds)),
                _ratio(result.ratios.get(suite.FLOOR)),
                _ratio(result.ratios.get(suite.TASKFLOW)),
                _ratio(result.ratios.get(suite.DBOS)),
            ]
        else:
            row += ["-"] * (len(headers) - len(row) - 1)
        row.append(result.note or "")
        rows.append(row)
    return headers, rows


def phase_rows(results: Sequence[suite.Result]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the phases table (ferroflow; median seconds of each phase)."""
    headers = ["scenario", "store", "engine", "shape", "N", *(f"{p} s" for p in PHASE_COLUMNS)]
    rows = []
    for result in suite.iter_measured(results, suite.FERROFLOW):
        case = result.case
        cells = []
        for phase in PHASE_COLUMNS:
            summary = result.phase(phase)
            cells.append("-" if summary is None else f"{summary.median:.4f}")
        rows.append([case.scenario, case.store, case.engine, case.shape, f"{case.n:,}", *cells])
    return headers, rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns left-aligned, separated by two spaces."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def text_report(results: Sequence[suite.Result]) -> str:
    """Both tables and the legend."""
    parts = [
        format_table(*result_rows(results)),
        "",
        "phases of ferroflow's runs (median seconds):",
        format_table(*phase_rows(results)),
        "",
        LEGEND,
    ]
    return "\n".join(parts)


def environment() -> dict[str, Any]:
    """Where the figures were measured."""
    from importlib import metadata

    from ferroflow import _core

    try:
        version = metadata.version("ferroflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "ferroflow": version,
        "core": getattr(_core, "__file__", None),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def to_json(results: Sequence[suite.Result], options: suite.Options) -> dict[str, Any]:
    """Everything measured, raw rounds included."""
    from ferroflow.benchmarking import resumebench

    out = []
    for result in results:
        case = result.case
        record: dict[str, Any] = {
            "scenario": case.scenario,
            "system": case.system,
            "shape": case.shape,
            "store": case.store,
            "engine": case.engine,
            "n": case.n,
            "unit": case.unit,
            "note": result.note,
            "failed": result.failed,
            "rounds": result.rounds,
            "wall_seconds": result.wall,
            "peak_rss_mb": result.peak_rss_mb,
            "ratios": result.ratios,
            "extras": result.extras,
        }
        if result.measured:
            phases = {name: s.as_dict() for name in result.rounds[0] if (s := result.phase(name)) is not None}
            flows = result.flows_per_second()
            peak = result.peak_rss()
            record["summary"] = {
                "per_unit_us": result.per_unit_us().as_dict(),
                "total_per_unit_us": result.total_per_unit_us().as_dict(),
                "phases_seconds": phases,
                "flows_per_second": flows.as_dict() if flows else None,
                "peak_rss_mb": peak.as_dict() if peak else None,
            }
            resumed = resumebench.summary_json(result)
            if resumed is not None:
                record["summary"]["resume"] = resumed
        out.append(record)
    return {
        "format": 1,
        "environment": environment(),
        "options": {
            "sizes": list(options.sizes),
            "rounds": options.rounds,
            "flows": options.flows,
            "peers": options.peers,
            "max_seconds": options.max_seconds,
            "resume": options.resume,
            "postgres": server_label(options.postgres) if options.postgres else None,
        },
        "results": out,
    }


def write_json(path: str | os.PathLike[str], results: Sequence[suite.Result], options: suite.Options) -> None:
    Path(path).write_text(json.dumps(to_json(results, options), indent=1) + "\n")


#: Lines of the plot, each always in the same colour.
_LINES = ("ferroflow", "ferroflow (parallel)", "floor", "taskflow", "dbos")


def order(known: Sequence[str], name: str) -> int:
    """Where ``name`` goes among ``known`` (unknown names last): a plot's order and colours."""
    return known.index(name) if name in known else len(known)


def server_label(uri: str) -> str:
    """A server URI without its user and password (for reports)."""
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no display); `PlotUnavailable` without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'ferroflow[plot]'") from exc
    return plt


def plot(path: str | os.PathLike[str], results: Sequence[suite.Result]) -> None:
    """Per-atom cost of the run phase against N, one line per system, one panel per store and
    shape (log-log), saved as a PNG."""
    plt = pyplot()
    series: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for result in suite.iter_measured(results):
        case = result.case
        if case.scenario != suite.RUN:
            continue
        line = case.system if case.engine == "serial" else f"{case.system} ({case.engine})"
        panel = series.setdefault((case.store, case.shape), {})
        panel.setdefault(line, []).append((case.n, result.per_unit_us().median))
    if not series:
        raise ValueError("nothing to plot: no run scenario was measured")
    panels = sorted(series, key=lambda key: (order(dbfiles.STORES, key[0]), order(flows.SHAPES, key[1])))
    columns = min(3, len(panels))
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels, strict=False):
        for line, points in sorted(series[key].items(), key=lambda item: order(_LINES, item[0])):
            points.sort()
            ax.plot(
                [n for n, _ in points],
                [cost for _, cost in points],
                marker="o",
                label=line,
                color=f"C{order(_LINES, line)}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{key[1]} flow, {key[0]}")
        ax.set_xlabel("atoms (N)")
        ax.set_ylabel("run phase, µs per atom")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("ferroflow bench: engine cost per no-op atom (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
