"""Compilation and validation errors: the right exception type, and a message naming the atoms."""

from __future__ import annotations

import pytest

from ferroflow import engines, exceptions, task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Echo(task.Task):
    def execute(self, *args, **kwargs):
        return self.name


class Needs(task.Task):
    def execute(self, x):
        return x


def _compile(flow):
    engine = engines.load(flow)
    engine.compile()
    return engine


def test_duplicate_names_anywhere_in_the_tree() -> None:
    inner = unordered_flow.Flow("inner").add(Echo("twin"))
    flow = linear_flow.Flow("outer").add(Echo("twin", provides="a"), inner)
    with pytest.raises(exceptions.Duplicate, match="twin"):
        _compile(flow)


def test_cycle_through_manual_links_names_the_atoms() -> None:
    flow = graph_flow.Flow("g")
    a, b, c = Echo("a"), Echo("b"), Echo("c")
    flow.add(a, b, c)
    flow.link(a, b)
    flow.link(b, c)
    with pytest.raises(exceptions.DependencyFailure) as info:
        flow.link(c, a)
    message = str(info.value)
    for name in ("a", "c"):
        assert name in message


def test_cycle_inferred_from_requires_and_provides_is_reported_at_compile() -> None:
    class AtoB(task.Task):
        def execute(self, b_out):
            return 1

    class BtoA(task.Task):
        def execute(self, a_out):
            return 2

    flow = graph_flow.Flow("loop")
    with pytest.raises(exceptions.DependencyFailure) as info:
        flow.add(AtoB("first", provides="a_out"), BtoA("second", provides="b_out"))
        _compile(flow)
    assert "first" in str(info.value) and "second" in str(info.value)


def test_two_providers_of_one_name_in_a_graph_flow_are_ambiguous() -> None:
    flow = graph_flow.Flow("g")
    with pytest.raises(exceptions.AmbiguousDependency) as info:
        flow.add(Echo("p1", provides="x"), Echo("p2", provides="x"), Needs("consumer"))
        _compile(flow)
    message = str(info.value)
    assert "p1" in message and "p2" in message


def test_unsatisfiable_arguments_list_atom_and_names() -> None:
    flow = linear_flow.Flow("lf").add(Echo("ok", provides="y"), Needs("hungry"))
    engine = engines.load(flow)
    engine.compile()
    engine.prepare()
    with pytest.raises(exceptions.MissingDependencies) as info:
        engine.validate()
    message = str(info.value)
    assert "hungry" in message and "'x'" in message
    assert info.value.missing_requirements == ["x"]


def test_store_satisfies_what_no_atom_provides() -> None:
    flow = linear_flow.Flow("lf").add(Needs("fed", provides="out"))
    assert engines.run(flow, store={"x": 7}) == {"x": 7, "out": 7}


def test_unordered_siblings_cannot_feed_each_other() -> None:
    flow = unordered_flow.Flow("uf").add(Echo("maker", provides="x"), Needs("taker"))
    engine = engines.load(flow)
    engine.compile()
    engine.prepare()
    with pytest.raises(exceptions.MissingDependencies, match="taker"):
        engine.validate()


def test_methods_called_out_of_order_raise_invalid_state() -> None:
    engine = engines.load(linear_flow.Flow("lf").add(Echo("a")))
    with pytest.raises(exceptions.InvalidState):
        engine.prepare()
    engine.compile()
    with pytest.raises(exceptions.InvalidState):
        engine.validate()


def test_unknown_engine_kind_is_not_found() -> None:
    with pytest.raises(exceptions.NotFound, match="warp-drive"):
        engines.load(linear_flow.Flow("lf").add(Echo("a")), engine="warp-drive")
