"""Lowering flows to the plain data the Rust compiler reads."""

from __future__ import annotations

import pytest

from ferroflow import retry, task
from ferroflow._lower import KIND_RETRY, KIND_TASK, PATTERN_GRAPH, PATTERN_LINEAR, PATTERN_UNORDERED, link_tuples, lower
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Echo(task.Task):
    def execute(self, a, b=1):
        return a

    def revert(self, a, c=2, *args, **kwargs):
        pass


class NoArgs(task.Task):
    def execute(self):
        return 1


def test_single_task_root():
    t = Echo(name="t", provides="out")
    lowered = lower(t)
    assert lowered.atoms == [t]
    assert lowered.root == ("atom", 0)
    assert lowered.spec_atoms == [("t", KIND_TASK, "1.0", 0, ["a"], ["b"], ["a"], ["c"], ["out"])]
    assert lowered.deciders == []


def test_spec_uses_storage_names_without_injected():
    t = Echo(name="t", rebind={"a": "stored_a"}, inject={"b": 5}, provides=("x", "y"))
    t.version = (2, 1)
    t.priority = 3
    (spec,) = lower(t).spec_atoms
    assert spec == ("t", KIND_TASK, "2.1", 3, ["stored_a"], [], ["stored_a"], ["c"], ["x", "y"])
    injected = Echo(name="t", inject={"a": 1})
    assert lower(injected).spec_atoms[0][4:8] == ([], ["b"], [], ["c"])
    assert lower(Echo(name="v", rebind={"b": "bb"})).spec_atoms[0][4:6] == (["a", "bb"], [])


def test_nested_flows_pre_order_with_retries_first():
    r_outer = retry.Times(2, name="r_outer", provides="attempt")
    r_inner = retry.ForEach([1, 2], name="r_inner")
    a, b, c, d = NoArgs(name="a"), NoArgs(name="b"), NoArgs(name="c"), NoArgs(name="d")
    inner = unordered_flow.Flow("inner", retry=r_inner).add(b, c)
    root = linear_flow.Flow("root", retry=r_outer).add(a, inner, d)
    lowered = lower(root)
    assert [x.name for x in lowered.atoms] == ["r_outer", "a", "r_inner", "b", "c", "d"]
    assert [s[1] for s in lowered.spec_atoms] == [KIND_RETRY, KIND_TASK, KIND_RETRY, KIND_TASK, KIND_TASK, KIND_TASK]
    assert lowered.spec_atoms[0] == ("r_outer", KIND_RETRY, "1.0", 0, [], [], [], [], ["attempt"])
    assert lowered.root == (
        "flow",
        "root",
        PATTERN_LINEAR,
        0,
        [1, ("flow", "inner", PATTERN_UNORDERED, 2, [3, 4], []), 5],
        [],
    )


def test_graph_links_use_child_positions_in_add_order():
    def yes(history):
        return True

    consumer = task.FunctorTask(lambda x: x, name="consumer")
    producer = task.FunctorTask(lambda: 1, name="producer", provides="x")
    side = NoArgs(name="side")
    sub = linear_flow.Flow("sub").add(NoArgs(name="s1"))
    g = graph_flow.Flow("g").add(consumer, producer, side, sub)
    g.link(side, consumer, decider=yes, decider_depth="neighbors")
    g.link(producer, sub, decider=yes)
    g.link(side, sub)
    lowered = lower(g)
    # Children in add order (the compiler resolves requirements among earlier-added providers).
    kind, name, pattern, retry_index, children, links = lowered.root
    links = link_tuples(links)
    assert (kind, name, pattern, retry_index) == ("flow", "g", PATTERN_GRAPH, None)
    assert [c if type(c) is int else c[0] for c in children] == [0, 1, 2, "flow"]
    assert [lowered.atoms[c].name for c in children[:3]] == ["consumer", "producer", "side"]
    # In iter_links() order: by source insertion (consumer, producer, side, sub), then target.
    assert links == [
        (1, 0, False, None, 3),  # inferred producer -> consumer
        (1, 3, True, 0, 3),  # decider without a depth: ALL
        (2, 0, True, 1, 1),  # NEIGHBORS
        (2, 3, True, None, 3),
    ]
    assert lowered.deciders == [yes, yes]


def test_targeted_flow_lowers_only_the_target_and_its_predecessors():
    a, b, c = NoArgs(name="a"), NoArgs(name="b"), NoArgs(name="c")
    g = graph_flow.TargetedFlow("t").add(a, b, c)
    g.link(a, b)
    g.set_target(b)
    lowered = lower(g)
    assert [x.name for x in lowered.atoms] == ["a", "b"]
    assert link_tuples(lowered.root[5]) == [(0, 1, True, None, 3)]


def test_same_object_twice_is_a_value_error():
    t = NoArgs(name="t")
    flow = linear_flow.Flow("root").add(linear_flow.Flow("x").add(t), unordered_flow.Flow("y").add(t))
    with pytest.raises(ValueError, match="duplicate"):
        lower(flow)
    recursive = linear_flow.Flow("loop")
    recursive.add(recursive)
    with pytest.raises(ValueError, match="recursive"):
        lower(recursive)
    r = retry.Times(name="r")
    shared = linear_flow.Flow("root", retry=r).add(linear_flow.Flow("inner", retry=r))
    with pytest.raises(ValueError):
        lower(shared)


def test_duplicate_names_are_left_to_rust():
    flow = linear_flow.Flow("root").add(NoArgs(name="same"), NoArgs(name="same"))
    assert [s[0] for s in lower(flow).spec_atoms] == ["same", "same"]


def test_unknown_types_are_type_errors():
    with pytest.raises(TypeError):
        lower(retry.Times(name="r"))
    with pytest.raises(TypeError):
        lower(object())
    with pytest.raises(TypeError, match="Unknown object"):
        lower(linear_flow.Flow("f").add("not an atom"))
    with pytest.raises(TypeError):
        lower(linear_flow.Flow("f").add(retry.Times(name="r")))


def test_deep_nesting_needs_no_recursion():
    root = current = linear_flow.Flow("f0")
    for i in range(3000):
        nested = linear_flow.Flow(f"f{i + 1}")
        current.add(NoArgs(name=f"t{i}"), nested)
        current = nested
    lowered = lower(root)
    assert len(lowered.atoms) == 3000
    node = lowered.root
    for _ in range(3000):
        node = node[4][1]
    assert node == ("flow", "f3000", PATTERN_LINEAR, None, [], [])


def test_lowering_a_large_graph_flow():
    n = 100_000
    tasks = [
        task.FunctorTask(lambda **kw: None, name=f"t{i}", requires=[f"x{i - 1}"] if i else None, provides=f"x{i}")
        for i in range(n)
    ]
    lowered = lower(graph_flow.Flow("big").add(*tasks))
    assert len(lowered.spec_atoms) == n
    assert lowered.spec_atoms[5][4] == ["x4"]
    links = link_tuples(lowered.root[5])
    assert len(links) == n - 1 and links[0] == (0, 1, False, None, 3)
