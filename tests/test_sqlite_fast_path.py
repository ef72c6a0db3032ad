"""The SQLite fast path keeps no model per atom: prepare restores saved rows straight into the
engine's arrays and transitions are written from them. What a model used to carry (metadata,
reported progress, versions) must survive it exactly."""

from __future__ import annotations

from ferroflow import engines, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends, models
from ferroflow.persistence.backends import impl_sqlite


class Step(task.Task):
    def execute(self) -> str:
        return self.name


class Reporting(task.Task):
    def execute(self) -> int:
        self.update_progress(0.5)
        return 7


def _chain(n: int, name: str = "chain") -> linear_flow.Flow:
    return linear_flow.Flow(name).add(*[Step(f"s{i}") for i in range(n)])


def _suspend_after(engine, completed: int) -> None:
    it = engine.run_iter()
    done = 0
    for state in it:
        if state == "WAITING":
            done += 1
            if done == completed:
                it.send(True)


def _saved(uri: str, flow_uuid: str) -> dict[str, models.AtomDetail]:
    with backends.fetch(uri).get_connection() as conn:
        return {ad.name: ad for ad in conn.get_flow_details(flow_uuid)}


def test_prepare_of_a_saved_flow_makes_no_model_per_atom(tmp_path, monkeypatch) -> None:
    uri = f"sqlite:///{tmp_path}/f.db"
    engine = engines.load(_chain(200), backend=uri)
    _suspend_after(engine, 100)
    fd = engine._flow_detail
    made: list[str] = []
    original = impl_sqlite._atom_from

    def counting(row):
        made.append(row[2])
        return original(row)

    monkeypatch.setattr(impl_sqlite, "_atom_from", counting)
    resumed = engines.load(_chain(200), flow_detail=fd, backend=uri)
    resumed.run()
    assert made == []
    assert resumed.storage.fetch_all() == {}  # Step provides nothing; the run itself is the check
    assert {ad.name: ad.state for ad in _saved(uri, fd.uuid).values()} == {f"s{i}": "SUCCESS" for i in range(200)}
    assert all(ad.results == ad.name for ad in _saved(uri, fd.uuid).values())


def test_atom_metadata_survives_transitions_and_resumption(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    engine = engines.load(_chain(4, "meta"), backend=uri)
    engine.compile()
    engine.prepare()
    engine.storage.update_atom_metadata("s1", {"owner": "team-a"})
    _suspend_after(engine, 1)
    fd = engine._flow_detail
    saved = _saved(uri, fd.uuid)
    assert saved["s1"].meta["owner"] == "team-a"
    assert saved["s0"].meta == {"progress": 1.0}

    resumed = engines.load(_chain(4, "meta"), flow_detail=fd, backend=uri)
    resumed.compile()
    resumed.prepare()
    assert resumed.storage.get_atom_metadata("s1")["owner"] == "team-a"
    resumed.storage.update_atom_metadata("s2", {"ticket": 42})
    resumed.run()
    saved = _saved(uri, fd.uuid)
    assert saved["s1"].meta == {"owner": "team-a", "progress": 1.0}
    assert saved["s2"].meta == {"ticket": 42, "progress": 1.0}
    assert saved["s3"].meta == {"progress": 1.0}


def test_reported_progress_and_its_details_are_restored(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/p.db"
    flow = linear_flow.Flow("progress").add(Step("first"), Step("second"))
    engine = engines.load(flow, backend=uri)
    engine.compile()
    engine.prepare()
    engine.storage.set_task_progress("second", 0.25, details={"rows": 10})
    fd = engine._flow_detail
    engine._persist.save(engine, [(engine.storage.index_of("second"), 0, 0)])
    engine._persist.release()

    resumed = engines.load(linear_flow.Flow("progress").add(Step("first"), Step("second")), flow_detail=fd, backend=uri)
    resumed.compile()
    resumed.prepare()
    assert resumed.storage.get_task_progress("second") == 0.25
    assert resumed.storage.get_task_progress_details("second") == {"at_progress": 0.25, "details": {"rows": 10}}
    assert resumed.storage.get_task_progress("first") == 0.0


RAN: list[str] = []


class Recorded(task.Task):
    def execute(self, **inputs: int) -> int:
        RAN.append(self.name)
        return len(inputs)


def test_a_new_flows_rows_are_laid_out_in_the_order_its_atoms_run(tmp_path) -> None:
    """A graph flow runs by rounds of ready atoms, not in the order its atoms were added: its new
    rows are inserted in run order, so each step writes next to the step before (a random DAG
    in add order wrote to a different page at nearly every step); a linear flow keeps its order."""
    from ferroflow.patterns import graph_flow

    # Added as 0..7; rounds: [a0, a3, a6], [a1, a4, a7], [a2, a5].
    needs = {0: [], 1: [0], 2: [1], 3: [], 4: [3], 5: [4, 1], 6: [], 7: [6]}
    flow = graph_flow.Flow("dag").add(
        *[Recorded(f"a{i}", provides=f"v{i}", requires=[f"v{j}" for j in deps]) for i, deps in needs.items()]
    )
    uri = f"sqlite:///{tmp_path}/f.db"
    engine = engines.load(flow, backend=uri)
    RAN.clear()
    engine.run()
    assert RAN == ["a0", "a3", "a6", "a1", "a4", "a7", "a2", "a5"]
    with backends.fetch(uri).get_connection() as conn:
        assert [ad.name for ad in conn.get_flow_details(engine.storage.flow_uuid)] == RAN

    linear = engines.load(_chain(5, "kept"), backend=uri)
    linear.run()
    with backends.fetch(uri).get_connection() as conn:
        assert [ad.name for ad in conn.get_flow_details(linear.storage.flow_uuid)] == [f"s{i}" for i in range(5)]
