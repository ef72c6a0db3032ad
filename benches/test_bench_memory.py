"""Peak resident memory of a fresh process running one flow (``peak_rss_mb`` in ``extra_info``;
``baseline_rss_mb`` is the interpreter with ferroflow imported). The time is the whole process."""

from __future__ import annotations

import pytest

from bench_support import SIZES
from ferroflow.benchmarking import child
from ferroflow.benchmarking.dbfiles import MEMORY, SQLITE


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("store", [MEMORY, SQLITE])
def test_peak_memory(benchmark, tmp_path, store: str, n: int) -> None:
    benchmark.group = f"peak-memory-{store}"
    outcomes = []

    def run_in_child():
        outcomes.append(
            child.run_child(["run", "--shape", "linear", "--n", str(n), "--store", store, "--workdir", str(tmp_path)])
        )

    benchmark.pedantic(run_in_child, rounds=1)
    outcome = outcomes[-1]
    assert outcome["peak_rss_mb"] >= outcome["baseline_rss_mb"] > 0
    benchmark.extra_info.update(
        atoms=n,
        peak_rss_mb=outcome["peak_rss_mb"],
        baseline_rss_mb=outcome["baseline_rss_mb"],
        phases=outcome["phases"],
    )
