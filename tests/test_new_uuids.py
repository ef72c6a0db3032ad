"""New atom details get version-4 uuids made in bulk in Rust (`_core.uuid4_texts`)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid

import pytest

from ferroflow import _core, engines
from ferroflow.benchmarking import flows
from ferroflow.persistence import backends, models


def test_texts_are_what_the_uuid_module_makes_of_the_same_bytes() -> None:
    random = os.urandom(16 * 200) + bytes(16) + b"\xff" * 16
    texts = _core.uuid4_texts(random)
    assert len(texts) == 202
    for i, text in enumerate(texts):
        assert text == str(uuid.UUID(bytes=random[16 * i : 16 * i + 16], version=4))
    assert texts[-2:] == ["00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"]
    assert _core.uuid4_texts(b"") == []


def test_bytes_that_are_not_whole_uuids_are_refused() -> None:
    with pytest.raises(ValueError, match="16 random bytes per UUID, got 17 bytes"):
        _core.uuid4_texts(bytes(17))


def test_a_new_flow_on_sqlite_gets_distinct_version_4_uuids(tmp_path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path / 'u.db'}")
    with backend.get_connection() as conn:
        conn.upgrade()
    engine = engines.load(flows.linear(300), book=models.LogBook("b"), backend=backend)
    engine.run()
    with backend.get_connection() as conn:
        details = list(conn.get_atoms_for_flow(engine.storage.flow_uuid))
    uuids = [ad.uuid for ad in details]
    assert len(uuids) == len(set(uuids)) == 300
    assert all(uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text for text in uuids)
    backend.close()


def test_ascending_texts_are_the_same_uuids_sorted() -> None:
    random = os.urandom(16 * 500)
    assert _core.uuid4_texts(random, ascending=True) == sorted(_core.uuid4_texts(random))


@pytest.mark.parametrize("make", [flows.linear, flows.random_dag])
def test_a_new_flows_rows_get_ascending_uuids_in_the_order_they_are_inserted(tmp_path, make) -> None:
    """Rows are inserted in the order the atoms will run, with uuids ascending in that order (the
    store's uuid index grows at its end); each atom keeps its own uuid through the run."""
    backend = backends.fetch(f"sqlite:///{tmp_path / 'u.db'}")
    with backend.get_connection() as conn:
        conn.upgrade()
    engine = engines.load(make(400), book=models.LogBook("b"), backend=backend)
    engine.compile()
    engine.prepare()
    given = {atom.name: engine.storage.get_atom_uuid(atom.name) for atom in engine.compilation.atoms}
    with contextlib.closing(sqlite3.connect(tmp_path / "u.db")) as raw:  # (rowid order: insertion order)
        rows = raw.execute("SELECT uuid, name FROM atomdetails ORDER BY rowid").fetchall()
    uuids = [u for u, _ in rows]
    assert uuids == sorted(uuids) and len(set(uuids)) == 400
    assert {name: u for u, name in rows} == given
    order = engine.compilation.compiled.round_order()
    names = [atom.name for atom in engine.compilation.atoms]
    assert [name for _, name in rows] == (names if order is None else [names[i] for i in order])
    engine.run()
    assert {atom.name: engine.storage.get_atom_uuid(atom.name) for atom in engine.compilation.atoms} == given
    backend.close()


def test_permuting_columns_by_round_order_checks_the_permutation() -> None:
    engine = engines.load(flows.random_dag(50))
    engine.compile()
    compiled = engine.compilation.compiled
    order = compiled.round_order()
    values = [f"v{i}" for i in range(50)]
    permuted = compiled.in_round_order(values, order)
    assert permuted == [values[i] for i in order]
    assert compiled.in_atom_order(permuted, order) == values
    with pytest.raises(ValueError, match="one value and one position per atom"):
        compiled.in_round_order(values[:-1], order)
    with pytest.raises(ValueError, match="not one of a permutation"):
        compiled.in_atom_order(values, [0] * 50)
    with pytest.raises(ValueError, match="not one of a permutation"):
        compiled.in_round_order(values, [*order[:-1], 50])
