"""Atoms that finish together are committed together; each transition writes O(1) rows."""

from __future__ import annotations

import time
from concurrent import futures

import pytest

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
    """Each apply() (or apply_steps()) call's atom rows as ``(atom uuid, state)`` (see `_named`)."""
    batches: list[list[tuple[str, str]]] = []
    original = impl_sqlite.SQLiteConnection.apply

    def spy(self, *args, atom_updates=(), atom_changes=(), **kwargs):
        updates, changes = list(atom_updates), list(atom_changes)
        batch = [(ad.uuid, ad.state) for ad, _fields in updates]
        batch += [(change["uuid"], change.get("state")) for change in changes]
        batches.append(batch)
        return original(self, *args, atom_updates=updates, atom_changes=changes, **kwargs)

    original_steps = impl_sqlite.SQLiteConnection.apply_steps

    def spy_steps(self, steps):
        steps = list(steps)
        batches.append([(uuid, state) for uuid, state, *_ in steps])
        return original_steps(self, steps)

    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "apply", spy)
    monkeypatch.setattr(impl_sqlite.SQLiteConnection, "apply_steps", spy_steps)
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
    # (The serial engine's lane writes these steps from Rust, in the batches the persister would:
    # tests/test_lane_writes.py; the store counts every row written, whoever writes it.)
    batches = _record_applies(monkeypatch)
    flow = linear_flow.Flow("chain").add(*[Quick(f"c{i}") for i in range(50)])
    backend = backends.fetch(f"sqlite:///{tmp_path}/c.db")
    engine = engines.load(flow, backend=backend)
    engine.compile()
    engine.prepare()
    written = backend.store().rows_written
    engine.run()
    transition_batches = [batch for batch in batches if batch]
    # One commit per atom: its SUCCESS together with the next atom's RUNNING (the last: SUCCESS only).
    assert all(len(batch) <= 2 for batch in transition_batches), max(transition_batches, key=len)
    assert backend.store().rows_written - written == 100  # each atom: RUNNING, then SUCCESS
    with backends.fetch(f"sqlite:///{tmp_path}/c.db").get_connection() as conn:
        saved = conn.get_flow_details(engine.storage.flow_uuid)
        assert {ad.name: ad.state for ad in saved if not ad.name.startswith("_")} == {
            f"c{i}": "SUCCESS" for i in range(50)
        }


# -- durability="batch": transitions committed in groups ---------------------------------------------


def _states_seen_by_another_backend(uri: str, flow_uuid: str) -> dict[str, str]:
    other = backends.fetch(uri.split("?")[0])
    try:
        with other.get_connection() as conn:
            return {ad.name: ad.state for ad in conn.get_flow_details(flow_uuid) if not ad.name.startswith("_")}
    finally:
        other.close()


@pytest.mark.parametrize(("rows", "least_seen"), [(1000, 0), (20, 40)])
def test_batch_durability_commits_in_groups_and_everything_by_the_end_of_the_run(tmp_path, rows, least_seen) -> None:
    uri = f"sqlite:///{tmp_path}/b.db?durability=batch&batch_transitions={rows}&batch_ms=60000"
    seen_mid_run: list[dict[str, str]] = []
    engine_box: list = []

    class Peek(Quick):
        def execute(self) -> str:
            seen_mid_run.append(_states_seen_by_another_backend(uri, engine_box[0].storage.flow_uuid))
            return self.name

    flow = linear_flow.Flow("chain").add(*[Quick(f"c{i}") for i in range(50)], Peek("peek"))
    engine = engines.load(flow, backend=uri)
    engine_box.append(engine)
    engine.run()
    # While the flow ran, another connection saw what whole groups committed: a prefix of the
    # chain, missing at most the atoms of one open group (two rows each: RUNNING, SUCCESS).
    done = sorted((name for name, state in seen_mid_run[0].items() if state == "SUCCESS"), key=lambda n: int(n[1:]))
    assert done == [f"c{i}" for i in range(len(done))]
    assert least_seen <= len(done) <= 50 and (rows < 100 or not done), done
    # The run returned with everything committed: the final flow state closes the group.
    final = _states_seen_by_another_backend(uri, engine.storage.flow_uuid)
    assert set(final.values()) == {"SUCCESS"} and len(final) == 51


def test_batch_durability_commits_an_open_group_while_a_long_atom_runs(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/t.db?durability=batch&batch_transitions=1000&batch_ms=20"
    seen: list[dict[str, str]] = []
    engine_box: list = []

    class Slow(Quick):
        def execute(self) -> str:
            time.sleep(0.3)  # far longer than batch_ms: the timer, not the engine, commits
            seen.append(_states_seen_by_another_backend(uri, engine_box[0].storage.flow_uuid))
            return self.name

    flow = linear_flow.Flow("slow").add(Quick("first"), Slow("slow"))
    engine = engines.load(flow, backend=uri)
    engine_box.append(engine)
    engine.run()
    assert seen == [{"first": "SUCCESS", "slow": "RUNNING"}]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("durability=sometimes", "Unknown durability 'sometimes'"),
        ("durability=batch&batch_transitions=0", "batch_transitions must be a positive number"),
        ("durability=batch&batch_ms=-1", "batch_ms must be a positive number"),
        ("durability=batch&batch_ms=lots", "batch_ms must be a positive number, not 'lots'"),
    ],
)
def test_batch_settings_are_checked(tmp_path, query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backends.fetch(f"sqlite:///{tmp_path}/x.db?{query}")
