"""Benchmark scenarios shared by ``benches/`` (pytest-benchmark) and ``ferroflow bench``.

The same no-op work runs on every *system*: ferroflow (serial or parallel engine, in memory or on
SQLite), the *floor* (a hand-written topological loop over the same callables, plus raw ``sqlite3``
writes of the same rows) and, when installed, the peers TaskFlow 6.5 and DBOS. Each system
measures the phases of a run apart (build, load, compile, prepare, run), so that figures stay
comparable and a slow phase stands out.

Modules: `flows` (the flows and their DAG), `phases` (timing helpers), `ferro` / `floor` /
`taskflow_peer` / `dbos_peer` (one per system), `resume` (suspended flows resumed in a fresh
process), `child` (the fresh process), `suite` (the standard scenarios ``ferroflow bench`` runs),
`report` (table, JSON and plot) and `resumebench` (``ferroflow bench --resume``: resumption
throughput on each store, its table and plot).
"""

# ``ferroflow bench``'s defaults (here, not in `suite`: the command line shows them in its help
# without importing the benchmarks).
#: Atoms per flow.
DEFAULT_SIZES = (1_000, 10_000)
#: Runs of each case (the median is reported).
DEFAULT_ROUNDS = 5
#: Small suspended flows resumed by the many-flows case.
DEFAULT_FLOWS = 1_000
#: A case predicted to run longer is skipped; one is not repeated once it took this long.
DEFAULT_MAX_SECONDS = 60.0
