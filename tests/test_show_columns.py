"""``ferroflow show FLOW_UUID`` reads a flow's atoms as columns where the backend can (SQLite,
PostgreSQL) and makes models only of the rows it shows: what it shows is what reading every
model shows, on every durable backend, for any --state and --limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ferroflow import engines, task
from ferroflow.cli import show
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from store_cases import StoreCase


class Count(task.Task):
    def execute(self, n: int) -> int:
        if self.name == "stop":
            raise RuntimeError("stopped")
        return n + 1


def _run(uri: str, atoms: int) -> str:
    """A flow of ``atoms`` tasks, then one that fails (the flow reverts): states of several kinds."""
    flow = linear_flow.Flow("cols").add(*[Count(f"c{i}", provides="n") for i in range(atoms)])
    flow.add(Count("stop", requires="n"))
    backend = backends.fetch(uri)
    try:
        engine = engines.load(flow, backend=backend, store={"n": 0})
        with pytest.raises(RuntimeError):
            engine.run()
        return engine.storage.flow_uuid
    finally:
        backend.close()


def _as_rows(details: list[Any]) -> list[tuple[Any, ...]]:
    return [(ad.uuid, ad.name, ad.state, ad.intention, ad.version, ad.results, ad.failure is None) for ad in details]


@pytest.mark.parametrize("wanted", [None, {"REVERTED"}, {"FAILURE", "PENDING"}, {"SUCCESS", "REVERTED"}])
@pytest.mark.parametrize("limit", [0, 1, 7, 2000])
def test_the_rows_shown_are_those_every_model_gives(
    durable_backend: StoreCase, tmp_path: Path, wanted: set[str] | None, limit: int, monkeypatch: Any
) -> None:
    uri = durable_backend.uri(tmp_path)
    flow_uuid = _run(uri, 30)
    monkeypatch.setattr(show, "_ONE_BY_ONE", 10)  # (both ways of reading the shown rows)
    with durable_backend.connection(uri) as conn:
        total, details, left_out = show._flow_atoms(conn, flow_uuid, wanted, limit)
        every = list(conn.get_atoms_for_flow(flow_uuid))
        expected_total, expected, expected_left_out = show._atoms_of(every, wanted, limit)
    assert total == expected_total == 31  # (the flow's store values are not an atom)
    assert _as_rows(details) == _as_rows(expected)
    assert left_out == expected_left_out
    assert len({ad.state for ad in every}) >= 2  # (the filters keep some rows, leave out others)
