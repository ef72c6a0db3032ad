"""Atoms that finish together are committed together; each transition writes O(1) rows."""

from __future__ import annotations

from concurrent import futures

from ferroflow import engines, task
from ferroflow.patterns import linear_flow, unordered_flow
from ferroflow.persistence import backends
from ferroflow.persistence.backends import impl_sqlite


class Quick(task.Task):
    def execute(self) -> str:
        return self.name


class InlineExecutor(futures.Executor):
    """Runs each submitted call at once, so every future is done before the engine waits."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: futures.Future = futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _record_applies(monkeypatch) -> list[list[tuple[str, str]]]:
    """Each apply() call's atom rows as ``(atom uuid, state)`` (see `_named`)."""
    batches: list[list[tuple[str, str]]] = []
    original = impl_sqlite.SQLiteConnection.apply

    def spy(self, *args, atom_updates=(), atom_changes=(), **kwargs):
        updates, changes = list(atom_updates), list(atom_changes)
        batch = [(ad.uuid, ad.state) for ad, _fields in updates]
        batch += [(change["uuid"], change.get("state")) for change in changes]
        batches.append(batch)
        return original(self, *args, atom_updates=updates, atom_changes=changes, **kwargs)

    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "apply", spy)
    return batches


def _named(batches: list[list[tuple[str, str]]], engine, names: list[str]) -> list[list[tuple[str, str]]]:
    by_uuid = {engine.storage.get_atom_uuid(name): name for name in names}
    return [[(by_uuid.get(uuid, uuid), state) for uuid, state in batch] for batch in batches]


def test_completions_that_arrive_together_are_one_transaction(tmp_path, monkeypatch) -> None:
    batches = _record_applies(monkeypatch)
    names = [f"t{i}" for i in range(6)]
    flow = unordered_flow.Flow("fan").add(*[Quick(name) for name in names])
    engine = engines.load(flow, backend=f"sqlite:///{tmp_path}/g.db", engine="parallel", executor=InlineExecutor())
    engine.run()
    batches = _named(batches, engine, names)
    successes = [batch for batch in batches if any(state == "SUCCESS" for _, state in batch)]
    assert len(successes) == 1, successes
    assert sorted(successes[0]) == sorted((name, "SUCCESS") for name in names)


def test_each_step_of_a_chain_writes_only_the_rows_it_changed(tmp_path, monkeypatch) -> None:
    batches = _record_applies(monkeypatch)
    flow = linear_flow.Flow("chain").add(*[Quick(f"c{i}") for i in range(50)])
    engine = engines.load(flow, backend=f"sqlite:///{tmp_path}/c.db")
    engine.run()
    transition_batches = [batch for batch in batches if batch]
    # One commit per atom: its SUCCESS together with the next atom's RUNNING (the last: SUCCESS only).
    assert all(len(batch) <= 2 for batch in transition_batches), max(transition_batches, key=len)
    assert sum(len(batch) for batch in transition_batches) == 100
    with backends.fetch(f"sqlite:///{tmp_path}/c.db").get_connection() as conn:
        saved = conn.get_flow_details(engine.storage.flow_uuid)
        assert {ad.name: ad.state for ad in saved if not ad.name.startswith("_")} == {
            f"c{i}": "SUCCESS" for i in range(50)
        }
