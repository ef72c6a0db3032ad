"""``ferroflow bench --resume``: resumption throughput as a user measures it.

For each size N and store, a linear flow of N no-op atoms is stopped halfway and resumed by a
fresh process (`child`), and what is reported is what someone waiting on that process sees:

- **total**: the fresh process's wall time, from launch to exit: interpreter start, imports,
  opening the store, load, match, the resumed half and exit;
- **first atom**: from the launch to the start of the first resumed atom: its RUNNING event, told
  to a listener as a user's own would be (`resume.stamp_first_start`); for DBOS, the first step
  its recovery runs (`dbos_peer.first_step`);
- **atoms resumed per second**: the resumed atoms (N - N//2) / total.

ferroflow and TaskFlow flows are *suspended* (``engine.suspend()`` once N//2 atoms have succeeded,
in the benchmarking process: `resume.suspend_halfway`). DBOS has no suspend: its workflow kills its
own process (``os._exit``) at step N//2, and the next process that launches DBOS on the file
recovers it.

Stores, each system with its defaults: ``sqlite`` (ferroflow's SQLite store, TaskFlow's SQLAlchemy
backend, DBOS's system database), ``dir`` (a ``dir://`` directory: ferroflow's and TaskFlow's
directory backends) and ``postgres`` (a new database on the server given with ``--store``, for
ferroflow and TaskFlow's SQLAlchemy backend; dropped after each round).

The cases are `suite.Case` of the ``resume`` scenario, run by `suite.run_suite` (time budget, size
caps, predictions); `resume_round` is their round. Ratios compare each row with ferroflow on SQLite
at the same N in the same run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ferroflow.benchmarking import dbfiles, flows, report, suite
from ferroflow.benchmarking.phases import Summary

#: Stores a flow is resumed from, in the order they are reported.
STORES = (dbfiles.SQLITE, dbfiles.DIR, dbfiles.POSTGRES)
#: The stores each system is measured on (DBOS keeps its workflows in its system database).
SYSTEM_STORES = {
    suite.FERROFLOW: STORES,
    suite.TASKFLOW: STORES,
    suite.DBOS: (dbfiles.SQLITE,),
}
#: Keys of `suite.Result.extras` and of `suite.Result.ratios` this module fills.
PROCESS, FIRST_ATOM, RESUMED = "process_seconds", "first_atom_seconds", "resumed_atoms"
TOTAL_RATIO, FIRST_RATIO = "total_vs_ferroflow_sqlite", "first_atom_vs_ferroflow_sqlite"

LEGEND = """\
total: wall time of the fresh process that resumes the flow, launch to exit (interpreter start,
  imports, store opened, flow loaded and matched, the resumed half run). first atom: launch to the
  first resumed atom's RUNNING event (a listener; DBOS: the first step its recovery runs).
  atoms/s: resumed atoms (N - N//2) / total. Medians over `runs` rounds.
ferroflow and TaskFlow flows were suspended (engine.suspend() after N//2 atoms); DBOS's workflow
  was killed (os._exit) at step N//2 and recovered by the next DBOS launch on the file.
x total, x first: this row's total (first atom) / ferroflow on SQLite's at the same N: how many
  times longer it takes. Each system uses its defaults on each store."""


def resume_cases(options: suite.Options) -> list[suite.Case]:
    """The resume cases at the requested sizes: ferroflow on each store (``postgres`` only with a
    server), and with ``peers`` the installed peers on theirs."""
    stores = [s for s in STORES if s != dbfiles.POSTGRES or options.postgres]
    systems = [suite.FERROFLOW, *(p for p in suite.PEERS if options.peers and suite.peer_available(p))]
    sizes = sorted(set(options.sizes))
    return [
        suite.Case(suite.RESUME, system, "linear", store, "serial", n)
        for system in systems
        for store in SYSTEM_STORES[system]
        if store in stores
        for n in sizes
    ]


@contextlib.contextmanager
def new_location(case: suite.Case, workdir: str | os.PathLike[str], postgres: str | None = None) -> Iterator[Any]:
    """A new, empty place to save ``case``'s flow: a SQLite path, a ``dir://`` URI or the URI of a
    new database on the server ``postgres``; removed afterwards."""
    stem = f"{case.scenario}-{case.system}"
    if case.store == dbfiles.SQLITE:
        path = dbfiles.new_db_path(workdir, stem)
        try:
            yield path
        finally:
            dbfiles.remove_db(path)
    elif case.store == dbfiles.DIR:
        directory = dbfiles.new_db_path(workdir, stem).with_suffix(".dir")
        try:
            yield f"dir://{directory}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    elif case.store == dbfiles.POSTGRES:
        if not postgres:
            raise ValueError("the postgres store needs a server URI (--store postgresql://...)")
        from ferroflow.benchmarking.postgres import drop_database, new_database

        uri = new_database(postgres, f"{case.system}_resume")
        try:
            yield uri
        finally:
            drop_database(postgres, uri)
    else:
        raise ValueError(f"no resume benchmark on store {case.store!r}; known: {', '.join(STORES)}")


def stop_halfway(case: suite.Case, where: Any, timeout: float | None = None) -> list[str]:
    """Saves ``case``'s flow at ``where`` (a `new_location`) stopped halfway; the arguments of the
    `child` job that resumes it (`resume_in_child`)."""
    from ferroflow.benchmarking import child, resume

    if case.system == suite.DBOS:
        if case.store != dbfiles.SQLITE:
            raise ValueError(f"DBOS resumes from its SQLite system database only, not {case.store!r}")
        crash_at = flows.halfway(case.n)
        crashed = child.run_child(
            ["dbos-crash", "--db", str(where), "--n", str(case.n), "--crash-at", str(crash_at)], timeout
        )
        workflow_id = crashed["stdout"].split()[0]
        return ["dbos-recover", "--db", str(where), "--workflow", workflow_id, "--n", str(case.n)]
    flow_uuid = resume.suspend_halfway(case.system, where, case.shape, case.n)
    return ["resume", "--system", case.system, "--db", str(where), "--flow", flow_uuid]


def resume_in_child(
    case: suite.Case, argv: list[str], timeout: float | None = None
) -> tuple[dict[str, float], float | None, dict[str, float]]:
    """Resumes the flow `stop_halfway` saved in a fresh process: its phases, its peak memory, and
    `suite.Result.extras` (total, first atom, resumed atoms)."""
    from ferroflow.benchmarking import child

    outcome = child.run_child(argv, timeout)
    if outcome.get("first_atom") is None:
        raise RuntimeError(f"{case.label()}: the resumed process ran no atom")
    extras = {
        PROCESS: outcome["process_seconds"],
        FIRST_ATOM: outcome["first_atom"] - outcome["launched"],
        RESUMED: float(case.n - flows.halfway(case.n)),
    }
    return outcome["phases"], outcome["peak_rss_mb"], extras


def resume_round(
    case: suite.Case, workdir: str, timeout: float, postgres: str | None = None
) -> tuple[dict[str, float], float | None, dict[str, float]]:
    """One round of a resume case (`suite.measure`): `stop_halfway`, then `resume_in_child`."""
    with new_location(case, workdir, postgres) as where:
        return resume_in_child(case, stop_halfway(case, where, timeout), timeout)


def check_server(uri: str) -> None:
    """Creates and drops a database on the PostgreSQL server of ``uri``; raises what went wrong."""
    from ferroflow.benchmarking.postgres import drop_database, new_database

    drop_database(uri, new_database(uri, "ferroflow_bench_check"))


# -- figures ---------------------------------------------------------------------------------------


def extra(result: suite.Result, key: str) -> Summary | None:
    """The summary over rounds of one of ``result``'s extras."""
    values = [e[key] for e in result.extras if key in e]
    return Summary.of(values) if values else None


def atoms_per_second(result: suite.Result) -> Summary | None:
    """Atoms resumed per second of the whole process, over rounds."""
    values = [e[RESUMED] / e[PROCESS] for e in result.extras if e.get(PROCESS)]
    return Summary.of(values) if values else None


def compute_resume_ratios(results: Sequence[suite.Result]) -> None:
    """Fills `TOTAL_RATIO` and `FIRST_RATIO` of every measured resume result: its median total
    (first atom) / ferroflow on SQLite's at the same N."""
    baseline = {
        r.case.n: r for r in results if r.extras and r.case.system == suite.FERROFLOW and r.case.store == dbfiles.SQLITE
    }
    for result in results:
        base = baseline.get(result.case.n)
        if not result.extras or base is None:
            continue
        for key, ratio in ((PROCESS, TOTAL_RATIO), (FIRST_ATOM, FIRST_RATIO)):
            mine, theirs = extra(result, key), extra(base, key)
            if mine is not None and theirs is not None and theirs.median > 0:
                result.ratios[ratio] = mine.median / theirs.median


def _seconds(summary: Summary | None) -> str:
    return "-" if summary is None else f"{summary.median:.3f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def result_rows(results: Sequence[suite.Result]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the resume table: one row per system, store and N."""
    headers = [
        "system",
        "store",
        "N",
        "resumed",
        "runs",
        "total s",
        "first atom s",
        "atoms/s",
        "x total",
        "x first",
        "in-process s",
        "peak MB",
        "note",
    ]
    rows = []
    for result in results:
        case = result.case
        row = [case.system, case.store, f"{case.n:,}", f"{case.n - flows.halfway(case.n):,}"]
        if result.extras:
            rate = atoms_per_second(result)
            peak = result.peak_rss()
            in_process = Summary.of(sum(r.values()) for r in result.rounds)
            row += [
                str(len(result.extras)),
                _seconds(extra(result, PROCESS)),
                _seconds(extra(result, FIRST_ATOM)),
                report.number(rate.median) if rate else "-",
                _ratio(result.ratios.get(TOTAL_RATIO)),
                _ratio(result.ratios.get(FIRST_RATIO)),
                f"{in_process.median:.3f}",
                report.number(peak.median) if peak else "-",
            ]
        else:
            row += ["-"] * (len(headers) - len(row) - 1)
        row.append(result.note or "")
        rows.append(row)
    return headers, rows


def text_report(results: Sequence[suite.Result]) -> str:
    """The resume table and its legend."""
    return "\n".join([report.format_table(*result_rows(results)), "", LEGEND])


def summary_json(result: suite.Result) -> dict[str, Any] | None:
    """The resume figures of ``result`` for the JSON report, or None (not a resume, or not measured)."""
    if not result.extras:
        return None
    out: dict[str, Any] = {"resumed_atoms": int(result.extras[0][RESUMED])}
    for key, summary in (
        (PROCESS, extra(result, PROCESS)),
        (FIRST_ATOM, extra(result, FIRST_ATOM)),
        ("atoms_per_second", atoms_per_second(result)),
    ):
        out[key] = summary.as_dict() if summary else None
    return out


def _line(case: suite.Case) -> str:
    return f"{case.system} {case.store}"


def plot(path: str | os.PathLike[str], results: Sequence[suite.Result]) -> None:
    """Atoms resumed per second and time to the first resumed atom against N (log-log), one line
    per system and store, saved as a PNG."""
    plt = report.pyplot()
    series: dict[str, list[tuple[int, float, float]]] = {}
    for result in results:
        rate, first = atoms_per_second(result), extra(result, FIRST_ATOM)
        if rate is not None and first is not None:
            series.setdefault(_line(result.case), []).append((result.case.n, rate.median, first.median))
    if not series:
        raise ValueError("nothing to plot: no resume was measured")
    systems = list(SYSTEM_STORES)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in series.items():
        points.sort()
        system, store = name.split(" ", 1)
        style = {
            "marker": "os^"[report.order(STORES, store) % 3],
            "label": name,
            "color": f"C{report.order(systems, system)}",
            "linestyle": ("-", "--", ":")[report.order(STORES, store) % 3],
        }
        axes[0].plot([n for n, _, _ in points], [rate for _, rate, _ in points], **style)
        axes[1].plot([n for n, _, _ in points], [first for _, _, first in points], **style)
    for ax, ylabel, title in (
        (axes[0], "atoms resumed per second", "throughput (higher is better)"),
        (axes[1], "seconds from launch to first resumed atom", "time to first atom (lower is better)"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("atoms of the flow (N), half resumed")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("ferroflow bench --resume: a linear flow of no-op atoms resumed halfway by a fresh process")
    figure.tight_layout()
    figure.savefig(Path(path), dpi=100)
    plt.close(figure)
