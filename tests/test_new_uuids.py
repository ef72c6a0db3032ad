"""New atom details get version-4 uuids made in bulk in Rust (`_core.uuid4_texts`)."""

from __future__ import annotations

import os
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
