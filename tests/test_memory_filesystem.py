"""The memory backend's filesystem (``MemoryBackend.memory``, a `FakeFilesystem`): paths, values,
links, listings and the layout TaskFlow programs walk (issue 14)."""

from __future__ import annotations

import pytest

from ferroflow import engines, exceptions, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import models
from ferroflow.persistence.backends.impl_memory import FakeFilesystem, MemoryBackend


def _tree() -> FakeFilesystem:
    fs = FakeFilesystem()
    for path in ("/d", "/c/d", "/b/c/d", "/a/b/c/d"):
        fs.ensure_path(path)
    return fs


def test_values_are_set_under_existing_parents_and_copied_in_and_out() -> None:
    fs = FakeFilesystem()
    value = {"k": [1]}
    fs["/x"] = value
    value["k"].append(2)
    assert fs["/x"] == {"k": [1]}
    fs["/x"]["k"].append(3)
    assert fs["/x"] == {"k": [1]}
    with pytest.raises(exceptions.NotFound):
        fs["/missing/child"] = 1
    assert fs.get("/missing", "default") == "default"
    with pytest.raises(exceptions.NotFound):
        fs["/missing"]


def test_shallow_copies_share_nested_values() -> None:
    fs = FakeFilesystem(deep_copy=False)
    inner: list[int] = []
    fs["/x"] = {"k": inner}
    inner.append(1)
    assert fs["/x"] == {"k": [1]}


def test_paths_are_normalised_and_must_be_absolute() -> None:
    assert FakeFilesystem.normpath("/a/./b/../c/") == "/a/c"
    assert FakeFilesystem.normpath("//a//b") == "/a/b"
    assert FakeFilesystem.normpath("/..") == "/"
    for bad in ("", "a/b", "../c"):
        with pytest.raises(ValueError):
            FakeFilesystem.normpath(bad)
    fs = FakeFilesystem()
    fs.ensure_path("/a/b")
    fs["/a/./b/../b"] = 5
    assert fs["/a/b"] == 5
    assert fs["/a"] is None


def test_ls_lists_children_in_creation_order_and_ls_r_breadth_first_newest_first() -> None:
    fs = _tree()
    assert fs.ls("/") == ["d", "c", "b", "a"]
    assert fs.ls("/a/b", absolute=True) == ["/a/b/c"]
    assert fs.ls_r("/") == ["a", "b", "c", "d", "a/b", "b/c", "c/d", "a/b/c", "b/c/d", "a/b/c/d"]
    assert fs.ls_r("/a/b", absolute=True) == ["/a/b/c", "/a/b/c/d"]
    assert fs.ls_r("/a/b") == ["c", "c/d"]


def test_delete_needs_recursive_for_children_and_keeps_the_root() -> None:
    fs = FakeFilesystem()
    with pytest.raises(ValueError, match="root"):
        fs.delete("/")
    fs["/a"] = "a"
    fs["/a/b"] = "b"
    with pytest.raises(ValueError, match="children"):
        fs.delete("/a")
    fs.delete("/a/b")
    assert fs.ls("/a") == []
    fs["/a/b"] = "b"
    del fs["/a"]
    assert fs.ls_r("/") == []
    assert "/a/b" not in fs
    fs["/c"] = 1
    fs.delete("/", recursive=True)
    assert fs.ls("/") == [] and "/" in fs


def test_links_read_their_target_and_report_loops_and_missing_targets() -> None:
    fs = FakeFilesystem()
    fs["/b"] = "d"
    fs.symlink("/b", "/c")
    assert fs["/c"] == "d"
    fs.symlink("/c", "/e")
    assert fs["/e"] == "d"
    del fs["/b"]
    with pytest.raises(exceptions.NotFound):
        fs["/c"]
    fs["/x"] = 1
    fs.symlink("/x", "/x")
    with pytest.raises(ValueError, match="loop"):
        fs["/x"]


def test_clear_removes_everything_but_the_root() -> None:
    fs = _tree()
    fs.clear()
    assert fs.ls("/") == []
    with pytest.raises(exceptions.NotFound):
        fs["/a"]
    fs.ensure_path("/a")
    assert fs.ls("/") == ["a"]


def test_pformat_draws_the_tree_with_links() -> None:
    fs = FakeFilesystem()
    fs.ensure_path("/books")
    fs.ensure_path("/flows/f1")
    fs["/atoms"] = None
    fs["/atoms/a1"] = {"x": 1}
    fs.symlink("/atoms/a1", "/flows/f1/a1")
    assert fs.pformat() == "\n".join(
        ["/", "|__books", "|__flows", "|  |__f1", "|     |__a1 (link to /atoms/a1)", "|__atoms", "   |__a1"]
    )


def test_the_memory_backend_keeps_taskflows_layout() -> None:
    """Books, flow details and atom details under their directories, children as links, and
    values exactly TaskFlow's dicts (ferroflow's resume records and save order kept beside)."""
    backend = MemoryBackend()
    book = models.LogBook("b")
    fd = models.FlowDetail("f", uuid="f-1")
    ad = models.TaskDetail("t", uuid="a-1")
    fd.add(ad)
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    mem = backend.memory
    assert mem.ls("/") == ["books", "flow_details", "atom_details"]
    assert mem.ls_r(f"/books/{book.uuid}", absolute=True) == [f"/books/{book.uuid}/f-1"]
    assert mem[f"/books/{book.uuid}/f-1"] == mem["/flow_details/f-1"] == fd.to_dict()
    assert mem["/flow_details/f-1/a-1"] == {"atom": ad.to_dict(), "type": "TASK_DETAIL"}
    with backend.get_connection() as conn:
        assert conn.get_logbook(book.uuid).find("f-1").find("a-1").name == "t"
        conn.destroy_logbook(book.uuid)
    assert mem.ls_r("/") == ["atom_details", "flow_details", "books"]


class _Print(task.Task):
    def execute(self) -> None:
        pass


def test_an_engine_loaded_without_a_backend_shows_its_details_in_a_memory_backend() -> None:
    """As TaskFlow's storage does, ``engine.storage.backend`` of an engine loaded without one is a
    memory backend holding the flow detail (outside any book) and its atom details, kept up to
    date from then on."""
    flow = linear_flow.Flow("root").add(_Print("a"), _Print("b"))
    engine = engines.load(flow)
    engine.compile()
    engine.prepare()
    backend = engine.storage.backend
    assert isinstance(backend, MemoryBackend)
    assert engine.storage.backend is backend
    mem = backend.memory
    assert mem.ls("/books") == []
    (flow_uuid,) = mem.ls("/flow_details")
    atoms = [mem[f"/flow_details/{flow_uuid}/{uuid}"]["atom"] for uuid in mem.ls(f"/flow_details/{flow_uuid}")]
    assert [(a["name"], a["state"]) for a in atoms] == [("a", "PENDING"), ("b", "PENDING")]
    engine.run()
    atoms = [mem[path]["atom"] for path in mem.ls(f"/flow_details/{flow_uuid}", absolute=True)]
    assert [(a["name"], a["state"], a["meta"]) for a in atoms] == [
        ("a", "SUCCESS", {"progress": 1.0}),
        ("b", "SUCCESS", {"progress": 1.0}),
    ]
    assert mem[f"/flow_details/{flow_uuid}"]["state"] == "SUCCESS"


def test_asking_for_the_backend_after_the_run_shows_the_finished_run() -> None:
    engine = engines.load(linear_flow.Flow("root").add(_Print("a")))
    engine.run()
    mem = engine.storage.backend.memory
    (path,) = mem.ls_r("/atom_details", absolute=True)
    assert mem[path]["atom"]["state"] == "SUCCESS"


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_asking_for_the_backend_during_the_run_shows_the_finished_run(kind) -> None:
    holder: dict[str, object] = {}

    class Ask(task.Task):
        def execute(self) -> str:
            if self.name == "b":
                holder["backend"] = holder["engine"].storage.backend
            return self.name

    engine = holder["engine"] = engines.load(linear_flow.Flow("f").add(Ask("a"), Ask("b"), Ask("c")), engine=kind)
    engine.run()
    mem = holder["backend"].memory
    atoms = [mem[path]["atom"] for path in mem.ls("/atom_details", absolute=True)]
    assert [(a["name"], a["state"], a["results"]) for a in atoms] == [
        ("a", "SUCCESS", "a"),
        ("b", "SUCCESS", "b"),
        ("c", "SUCCESS", "c"),
    ]


def test_metadata_set_before_asking_is_kept_in_the_memory_backend() -> None:
    engine = engines.load(linear_flow.Flow("f").add(_Print("a")), store={"x": 1})
    engine.compile()
    engine.prepare()
    engine.storage.update_atom_metadata("a", {"owner": "me"})
    engine.storage.update_flow_metadata({"ticket": 7})
    mem = engine.storage.backend.memory
    engine.run()
    (flow_uuid,) = mem.ls("/flow_details")
    assert mem[f"/flow_details/{flow_uuid}"]["meta"] == {"ticket": 7}
    by_name = {v["atom"]["name"]: v["atom"] for v in (mem[p] for p in mem.ls("/atom_details", absolute=True))}
    assert by_name["a"]["meta"] == {"owner": "me", "progress": 1.0}
    assert by_name["_TaskFlow_INJECTOR"]["results"] == {"x": 1}
