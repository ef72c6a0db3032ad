"""New atom details are made in bulk in Rust (`CompiledFlow.fresh_rows`), with version-4 uuids."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid

import pytest

from ferroflow import _core, engines
from ferroflow.benchmarking import flows
from ferroflow.persistence import models


def _compiled(flow):
    engine = engines.load(flow)
    engine.compile()
    return engine.compilation


def test_uuids_are_what_the_uuid_module_makes_of_the_same_bytes_listed_ascending() -> None:
    compilation = _compiled(flows.linear(202))
    random = os.urandom(16 * 200) + bytes(16) + b"\xff" * 16
    texts, rows = compilation.compiled.fresh_rows(random)
    assert len(texts) == len(rows) == 202
    made = sorted(str(uuid.UUID(bytes=random[16 * i : 16 * i + 16], version=4)) for i in range(202))
    assert texts == made  # (a linear flow's atoms run in their own order)
    assert texts[0] == "00000000-0000-4000-8000-000000000000"
    assert texts[-1] == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    uuids, names, retries, versions = rows.lists()
    assert uuids == texts and names == [atom.name for atom in compilation.atoms]
    assert retries == [False] * 202 and versions == ["1.0"] * 202


def test_some_atoms_rows_list_them_in_the_order_given() -> None:
    compilation = _compiled(flows.random_dag(50))
    texts, rows = compilation.compiled.fresh_rows(os.urandom(16 * 3), [7, 3, 40])
    assert texts == sorted(texts) and len(set(texts)) == 3
    uuids, names, _, _ = rows.lists()
    assert uuids == texts and names == ["t7", "t3", "t40"]


def test_bad_fresh_rows_are_refused() -> None:
    compiled = _compiled(flows.random_dag(50)).compiled
    with pytest.raises(ValueError, match="need 800 random bytes"):
        compiled.fresh_rows(bytes(17 * 50))
    with pytest.raises(ValueError, match="atom 3 is listed twice"):
        compiled.fresh_rows(bytes(32), [3, 3])
    with pytest.raises(ValueError, match="atom 50 is not one of the flow's 50 atoms"):
        compiled.fresh_rows(bytes(16), [50])
    with pytest.raises(ValueError, match="one name, kind and version per uuid"):
        _core.FreshRows(["u"], [], [False], [None])


def test_fresh_rows_are_written_once(sqlite_backend) -> None:
    engine = engines.load(flows.linear(3), book=models.LogBook("b"), backend=sqlite_backend)
    engine.compile()
    engine.prepare()
    rows = _core.FreshRows([str(uuid.uuid4())], ["late"], [False], [None])
    with sqlite_backend.get_connection() as conn:
        conn.apply(fresh_atoms=(engine.storage.flow_uuid, rows))
        with pytest.raises(ValueError, match="already given to a store"):
            conn.apply(fresh_atoms=(engine.storage.flow_uuid, rows))
        assert [ad.name for ad in conn.get_atoms_for_flow(engine.storage.flow_uuid)][-1] == "late"


def test_a_new_flow_on_sqlite_gets_distinct_version_4_uuids(sqlite_backend) -> None:
    engine = engines.load(flows.linear(300), book=models.LogBook("b"), backend=sqlite_backend)
    engine.run()
    with sqlite_backend.get_connection() as conn:
        details = list(conn.get_atoms_for_flow(engine.storage.flow_uuid))
    uuids = [ad.uuid for ad in details]
    assert len(uuids) == len(set(uuids)) == 300
    assert all(uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text for text in uuids)


@pytest.mark.parametrize("make", [flows.linear, flows.random_dag])
def test_a_new_flows_rows_get_ascending_uuids_in_the_order_they_are_inserted(tmp_path, sqlite_backend, make) -> None:
    """Rows are inserted in the order the atoms will run, with uuids ascending in that order (the
    store's uuid index grows at its end); each atom keeps its own uuid through the run."""
    engine = engines.load(make(400), book=models.LogBook("b"), backend=sqlite_backend)
    engine.compile()
    engine.prepare()
    given = {atom.name: engine.storage.get_atom_uuid(atom.name) for atom in engine.compilation.atoms}
    with contextlib.closing(sqlite3.connect(tmp_path / "store.db")) as raw:  # (rowid order: insertion order)
        rows = raw.execute("SELECT uuid, name FROM atomdetails ORDER BY rowid").fetchall()
    uuids = [u for u, _ in rows]
    assert uuids == sorted(uuids) and len(set(uuids)) == 400
    assert {name: u for u, name in rows} == given
    order = engine.compilation.compiled.round_order()
    names = [atom.name for atom in engine.compilation.atoms]
    assert [name for _, name in rows] == (names if order is None else [names[i] for i in order])
    engine.run()
    assert {atom.name: engine.storage.get_atom_uuid(atom.name) for atom in engine.compilation.atoms} == given
