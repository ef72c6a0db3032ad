"""Prepare restores plain saved rows in bulk from the plan's own read of the store
(`ResumePlan.restore_columns`): what it restores is exactly what the row-by-row path restores."""

from __future__ import annotations

from typing import Any

import pytest

from ferroflow import _core, engines, states, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends


class Value(task.Task):
    def execute(self) -> dict[str, int]:
        return {"n": len(self.name)}


class Versioned(Value):
    version = "2.0"


class Reporting(task.Task):
    def execute(self) -> int:
        self.notifier.notify(task.EVENT_UPDATE_PROGRESS, {"progress": 0.5, "step": "half"})
        return 7


class Stop(task.Task):
    engine: Any = None

    def execute(self) -> None:
        Stop.engine.suspend()


class Later(task.Task):
    def execute(self) -> str:
        return "later"


def _flow() -> linear_flow.Flow:
    return linear_flow.Flow("bulk").add(
        Value("a"), Reporting("b"), Versioned("c"), Stop("stop"), Later("d"), Later("e")
    )


def _restored(uri: str, flow_uuid: str, restoring: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    original = _core.resume_plan_stored

    def planned(*args: Any, **kwargs: Any) -> Any:
        kwargs["restoring"] = kwargs.get("restoring", False) and restoring
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(_core, "resume_plan_stored", planned)
        backend = backends.fetch(uri)
        try:
            detail = backend.get_connection().get_flow_details(flow_uuid, lazy=True)
            engine = engines.load(_flow(), flow_detail=detail, backend=backend)
            engine.compile()
            engine.prepare()
            storage, persister = engine.storage, engine._persist
            seen = {
                "states": list(storage.states),
                "intentions": list(storage.intentions),
                "results": list(storage.results),
                "revert_results": list(storage.revert_results),
                "progress": dict(storage.progress),
                "progress_details": dict(storage.progress_details),
                "interrupted": sorted(storage.interrupted),
                "uuids": [storage.atom_uuid(i) for i in range(len(storage.states))],
                "versions": list(persister._versions),
                "metas": dict(persister._metas),
                "interrupted_atoms": list(persister.interrupted),
            }
            persister.release()
            return seen
        finally:
            backend.close()


def test_bulk_restore_equals_row_by_row_restore(tmp_path, monkeypatch) -> None:
    uri = f"sqlite:///{tmp_path}/bulk.db"
    engine = engines.load(_flow(), backend=uri)
    Stop.engine = engine
    engine.run()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    flow_uuid = engine.storage.flow_uuid
    backend = backends.fetch(uri)
    conn = backend.get_connection()
    for ad in conn.get_flow_details(flow_uuid):
        if ad.name == "d":
            ad.state = states.RUNNING  # as if the engine had stopped while d ran
        elif ad.name == "a":
            ad.meta["extra"] = True
        elif ad.name == "e":
            # (the meta of the finished atoms, on one not run: its progress is kept, not implied)
            ad.meta = {"progress": 1.0}
        else:
            continue
        conn.update_atom_details(ad)
    backend.close()
    bulk = _restored(uri, flow_uuid, True, monkeypatch)
    by_rows = _restored(uri, flow_uuid, False, monkeypatch)
    assert bulk == by_rows
    assert bulk["results"][:3] == [{"n": 1}, 7, {"n": 1}]
    assert bulk["progress_details"], "the reported progress details were restored"
    assert bulk["metas"], "a meta holding more than the progress is kept"
    assert bulk["progress"][5] == (1.0, None) and 2 not in bulk["progress"]  # (kept, implied)
    assert bulk["interrupted_atoms"] == [4]
    assert bulk["versions"][2] == "2.0"
