"""Reading a flow's saved rows ahead (`SQLiteBackend.read_ahead`, used by ``ferroflow resume`` and
``ferroflow plan`` while the factory builds the flow): what the engine's prepare or plan then
takes is exactly what a read at that moment would give. A commit by another connection, or a row
this backend changed itself, in between makes the read ahead be dropped and the rows read again;
the lease prepare takes in between does not."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from ferroflow import engines, states, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends


class Value(task.Task):
    def execute(self) -> str:
        return f"{self.name}-ran"


class Pause(task.Task):
    """Suspends the engine it runs in (the first run stops here)."""

    engine = None

    def execute(self) -> None:
        if Pause.engine is not None:
            Pause.engine.suspend()


def _flow() -> linear_flow.Flow:
    before = [Value(f"v{i}", provides=f"v{i}") for i in range(5)]
    after = [Value(f"w{i}", provides=f"w{i}") for i in range(5)]
    return linear_flow.Flow("ahead").add(*before, Pause("pause"), *after)


@pytest.fixture
def suspended(tmp_path: Path) -> tuple[str, str]:
    """A store whose flow stopped halfway: ``(uri, flow uuid)``."""
    uri = f"sqlite:///{tmp_path / 'ahead.db'}"
    backend = backends.fetch(uri)
    engine = engines.load(_flow(), backend=backend)
    Pause.engine = engine
    try:
        engine.run()
    finally:
        Pause.engine = None
    assert engine.storage.get_flow_state() == states.SUSPENDED
    flow_uuid = engine.storage.flow_uuid
    backend.close()
    return uri, flow_uuid


def _engine(backend: backends.base.Backend, flow_uuid: str) -> engines.ActionEngine:
    with contextlib.closing(backend.get_connection()) as conn:
        flow_detail = conn.get_flow_details(flow_uuid, lazy=True)
    engine = engines.load(_flow(), flow_detail=flow_detail, backend=backend)
    engine.compile()
    return engine


def _change_result(backend: backends.base.Backend, flow_uuid: str, name: str, value: str) -> None:
    with contextlib.closing(backend.get_connection()) as conn:
        detail = next(ad for ad in conn.get_flow_details(flow_uuid) if ad.name == name)
        detail.results = value
        conn.update_atom_details(detail)


def _restored(engine: engines.ActionEngine) -> tuple[list[str], dict[str, object]]:
    storage = engine.storage
    return list(storage.states), {name: storage.fetch(name) for name in (f"v{i}" for i in range(5))}


def test_prepare_takes_the_rows_read_ahead_and_restores_what_a_read_gives(suspended: tuple[str, str]) -> None:
    uri, flow_uuid = suspended
    plain = backends.fetch(uri)
    expected = _engine(plain, flow_uuid)
    expected.prepare()
    wanted = _restored(expected)
    expected._persist.release()
    plain.close()

    backend = backends.fetch(uri)
    assert backend.read_ahead(flow_uuid)
    engine = _engine(backend, flow_uuid)
    engine.prepare()  # (takes the lease in between: the read ahead stays valid)
    assert backend.store().read_aheads_taken == 1
    assert _restored(engine) == wanted
    assert engine.storage.fetch("v3") == "v3-ran"
    engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS
    assert engine.storage.fetch("w4") == "w4-ran"
    backend.close()


@pytest.mark.parametrize("writer", ["another connection", "this backend"])
def test_a_row_changed_in_between_drops_the_read_ahead(suspended: tuple[str, str], writer: str) -> None:
    """Committed by another connection (its data_version changes) or changed by this backend
    itself (its own data changes): the prepare reads again and restores the changed result."""
    uri, flow_uuid = suspended
    backend = backends.fetch(uri)
    other = backends.fetch(uri) if writer == "another connection" else backend
    assert backend.read_ahead(flow_uuid)
    _change_result(other, flow_uuid, "v2", f"changed by {writer}")
    engine = _engine(backend, flow_uuid)
    engine.prepare()
    assert backend.store().read_aheads_taken == 0
    assert engine.storage.fetch("v2") == f"changed by {writer}"
    engine._persist.release()
    backend.close()
    other.close()


def test_a_plan_takes_a_read_ahead_made_for_plans_only(suspended: tuple[str, str]) -> None:
    uri, flow_uuid = suspended
    backend = backends.fetch(uri)
    expected = _engine(backend, flow_uuid).plan()
    assert backend.read_ahead(flow_uuid, restoring=True)  # (for a prepare: a plan reads itself)
    assert _engine(backend, flow_uuid).plan().to_json() == expected.to_json()
    assert backend.store().read_aheads_taken == 0
    assert backend.read_ahead(flow_uuid, restoring=False)
    planned = _engine(backend, flow_uuid).plan()
    assert backend.store().read_aheads_taken == 1
    assert planned.to_json() == expected.to_json()
    assert planned.counts() == {"reuse": 6, "run": 5}
    backend.close()


def test_nothing_is_read_ahead_while_this_backend_holds_writes_not_committed(suspended: tuple[str, str]) -> None:
    """Another connection cannot see them: what it read would be older than what a read now gives."""
    uri, flow_uuid = suspended
    backend = backends.fetch(uri + "?durability=batch")
    with backend.held_writes() as held:
        assert held
        _change_result(backend, flow_uuid, "v0", "held here")
        assert not backend.read_ahead(flow_uuid)
        engine = _engine(backend, flow_uuid)
        engine.prepare()
        assert engine.storage.fetch("v0") == "held here"
        engine._persist.release()
    assert backend.read_ahead(flow_uuid)  # (committed on leaving)
    backend.close()


def test_a_read_ahead_the_plan_did_not_take_is_not_kept_through_the_run(suspended: tuple[str, str]) -> None:
    """A pending migration makes prepare plan from the migrated details, not the store's rows:
    the rows read ahead are dropped then, not held while the flow runs."""
    from ferroflow.migrations import Rename

    uri, flow_uuid = suspended
    backend = backends.fetch(uri)
    assert backend.read_ahead(flow_uuid)
    assert backend.store().reading_ahead
    with contextlib.closing(backend.get_connection()) as conn:
        flow_detail = conn.get_flow_details(flow_uuid, lazy=True)
    renamed = linear_flow.Flow("ahead").add(
        *(Value(f"v{i}", provides=f"v{i}") for i in range(4)),
        Value("v4-renamed", provides="v4"),
        Pause("pause"),
        *(Value(f"w{i}", provides=f"w{i}") for i in range(5)),
    )
    engine = engines.load(renamed, flow_detail=flow_detail, backend=backend, migrations=[Rename("v4", "v4-renamed")])
    engine.compile()
    engine.prepare()
    assert backend.store().read_aheads_taken == 0
    assert not backend.store().reading_ahead
    assert engine.storage.fetch("v4") == "v4-ran"  # (the renamed atom's saved result)
    engine._persist.release()
    backend.close()


def test_a_read_ahead_of_a_flow_that_does_not_exist_is_dropped_and_the_read_reports_it(tmp_path: Path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path / 'empty.db'}")
    assert backend.read_ahead("no-such-flow", restoring=False)
    assert backend.store().read_aheads_taken == 0
    backend.close()


def test_an_in_memory_store_reads_nothing_ahead() -> None:
    backend = backends.fetch("sqlite://")
    assert not backend.read_ahead("any")
    backend.close()
