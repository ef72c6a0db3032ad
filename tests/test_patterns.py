"""Flow patterns: structure, inferred links and errors identical to TaskFlow's; graph_flow at scale."""

from __future__ import annotations

import random

import pytest

from ferroflow import deciders, exceptions, retry, task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow

try:
    import taskflow.exceptions as tf_exceptions
    import taskflow.retry as tf_retry
    import taskflow.task as tf_task
    from taskflow.patterns import graph_flow as tf_graph_flow
    from taskflow.patterns import linear_flow as tf_linear_flow
    from taskflow.patterns import unordered_flow as tf_unordered_flow
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    tf_task = None

needs_taskflow = pytest.mark.skipif(tf_task is None, reason="taskflow is not installed")


class Node(task.Task):
    def execute(self, **kwargs):
        return None


def node(name, requires=(), provides=()):
    return Node(name=name, requires=list(requires) or None, provides=list(provides) or None)


def tf_node(name, requires=(), provides=()):
    class TfNode(tf_task.Task):
        def execute(self, **kwargs):
            return None

    return TfNode(name=name, requires=list(requires) or None, provides=list(provides) or None)


def snapshot(flow):
    """Names in iteration order, links (with set/callable meta made comparable), requires, len."""

    def clean(meta):
        return {k: (sorted(v) if isinstance(v, set) else "<decider>" if k == "decider" else v) for k, v in meta.items()}

    links = [(u.name, v.name, clean(meta)) for u, v, meta in flow.iter_links()]
    return [n.name for n in flow], links, sorted(flow.requires), len(flow)


# -- linear / unordered -------------------------------------------------------------------------------


def test_linear_flow():
    a, b, c = node("a", provides=["x"]), node("b", requires=["x", "q"], provides=["y"]), node("c", requires=["y"])
    f = linear_flow.Flow("lin").add(a, b).add(c, a)
    assert [n.name for n in f] == ["a", "b", "c"]
    assert [(u.name, v.name, m) for u, v, m in f.iter_links()] == [
        ("a", "b", {"invariant": True}),
        ("b", "c", {"invariant": True}),
    ]
    assert [(n.name, meta) for n, meta in f.iter_nodes()] == [("a", {}), ("b", {}), ("c", {})]
    assert f.requires == frozenset({"q"})
    assert f.provides == frozenset({"x", "y"})
    assert str(f) == '"linear_flow.Flow: lin(len=3)"'
    assert len(f) == 3


def test_unordered_flow_siblings_do_not_satisfy_each_other():
    r = retry.Times(2, provides="attempt")
    f = unordered_flow.Flow("un", retry=r).add(
        node("a", provides=["x"]), node("b", requires=["x", "attempt"]), node("c", requires=["y"])
    )
    assert f.requires == frozenset({"x", "y"})
    assert list(f.iter_links()) == []
    assert str(f) == '"unordered_flow.Flow: un(len=3)"'
    assert r.name == "un_retry"


@needs_taskflow
def test_linear_and_unordered_match_taskflow():
    spec = [("a", [], ["x"]), ("b", ["x", "z"], ["y"]), ("c", ["y", "w"], [])]
    for ours_mod, theirs_mod in ((linear_flow, tf_linear_flow), (unordered_flow, tf_unordered_flow)):
        ours = ours_mod.Flow("f", retry=retry.Times(provides="w"))
        theirs = theirs_mod.Flow("f", retry=tf_retry.Times(provides="w"))
        ours.add(*[node(*s) for s in spec])
        theirs.add(*[tf_node(*s) for s in spec])
        assert snapshot(ours) == snapshot(theirs)
        assert str(ours) == str(theirs)
        assert ours.provides == theirs.provides


# -- graph flow ---------------------------------------------------------------------------------------


def test_graph_flow_infers_links_and_iterates_topologically():
    d = node("d", requires=["y", "z"])
    b = node("b", requires=["x"], provides=["y"])
    f = graph_flow.Flow("g").add(d, b)
    f.add(node("c", requires=["x"], provides=["z"]), node("a", provides=["x"]))
    names, links, requires, length = snapshot(f)
    assert names == ["a", "b", "c", "d"]
    # Links come ordered by their source's insertion (d, b, c, a), then their target's.
    assert links == [
        ("b", "d", {"reasons": ["y"]}),
        ("c", "d", {"reasons": ["z"]}),
        ("a", "b", {"reasons": ["x"]}),
        ("a", "c", {"reasons": ["x"]}),
    ]
    assert requires == [] and length == 4
    assert str(f) == '"graph_flow.Flow: g(len=4)"'


@needs_taskflow
def test_graph_flow_scenario_matches_taskflow():
    steps = [
        ("add", [("d", ["y", "z"], []), ("b", ["x"], ["y"])], {}),
        ("add", [("c", ["x"], ["z"])], {"resolve_existing": False}),
        ("add", [("a", [], ["x"]), ("e", ["q"], ["w"])], {}),
        ("link", ("e", "d"), {"decider": lambda history: True, "decider_depth": "neighbors"}),
        ("add", [("f", ["w", "z"], [])], {"resolve_requires": False}),
        ("add", [("g", [], ["w2"])], {}),
        ("link", ("a", "g"), {}),
    ]
    flows, made = [graph_flow.Flow("g"), tf_graph_flow.Flow("g")], [{}, {}]
    for kind, args, kwargs in steps:
        for flow, nodes, make in zip(flows, made, (node, tf_node), strict=True):
            if kind == "add":
                new = [make(*spec) for spec in args]
                nodes.update((n.name, n) for n in new)
                flow.add(*new, **kwargs)
            else:
                flow.link(nodes[args[0]], nodes[args[1]], **kwargs)
        assert snapshot(flows[0]) == snapshot(flows[1])


def run_random_build(seed: int) -> str | None:
    """Builds the same random graph flow with both libraries; returns a mismatch, if any."""
    rnd = random.Random(seed)
    symbols = [f"s{k}" for k in range(6)]
    ours, theirs = graph_flow.Flow("g"), tf_graph_flow.Flow("g")
    our_nodes, their_nodes = [], []
    for _step in range(rnd.randint(3, 15)):
        if rnd.random() < 0.7 or not our_nodes:
            batch = [
                (
                    f"t{len(our_nodes) + i}",
                    rnd.sample(symbols, rnd.randint(0, 2)),
                    rnd.sample(symbols, rnd.randint(0, 2)),
                )
                for i in range(rnd.randint(1, 3))
            ]
            kwargs = {"resolve_requires": rnd.random() < 0.8, "resolve_existing": rnd.random() < 0.8}
            outcome = []
            for flow, make, nodes in ((ours, node, our_nodes), (theirs, tf_node, their_nodes)):
                new = [make(*spec) for spec in batch]
                try:
                    flow.add(*new, **kwargs)
                except Exception as e:
                    outcome.append(type(e).__name__)
                else:
                    nodes.extend(new)
                    outcome.append(None)
        else:
            a, b = rnd.randrange(len(our_nodes)), rnd.randrange(len(our_nodes))
            outcome = []
            for flow, nodes in ((ours, our_nodes), (theirs, their_nodes)):
                try:
                    flow.link(nodes[a], nodes[b])
                    outcome.append(None)
                except Exception as e:
                    outcome.append(type(e).__name__)
        if outcome[0] != outcome[1]:
            return f"seed {seed}: outcome {outcome}"
        if snapshot(ours) != snapshot(theirs):
            return f"seed {seed}: {snapshot(ours)} != {snapshot(theirs)}"
    return None


@needs_taskflow
def test_random_graph_builds_match_taskflow():
    mismatches = [m for m in (run_random_build(seed) for seed in range(300)) if m]
    assert mismatches == []


def test_ambiguous_dependency_names_the_providers_and_changes_nothing():
    f = graph_flow.Flow("g").add(node("p1", provides=["x"]), node("p2", provides=["x"]))
    before = snapshot(f)
    with pytest.raises(exceptions.AmbiguousDependency) as info:
        f.add(node("ok", provides=["y"]), node("c", requires=["x"]))
    assert str(info.value) == (
        "Resolution error detected when adding 'c', multiple providers ['p1', 'p2'] found for required symbol 'x'"
    )
    assert snapshot(f) == before


def test_cycle_through_add_is_rejected_and_rolled_back():
    a = node("a", requires=["y"], provides=["x"])
    f = graph_flow.Flow("g").add(a)
    before = snapshot(f)
    with pytest.raises(exceptions.DependencyFailure, match="No path through the node") as info:
        f.add(node("b", requires=["x"], provides=["y"]))
    assert "linking 'b' -> 'a' closes a cycle" in str(info.value)
    assert snapshot(f) == before
    # The flow keeps working after the rollback.
    f.add(node("c", provides=["y"]))
    assert snapshot(f)[1] == [("c", "a", {"reasons": ["y"]})]


def test_manual_links():
    a, b, c = node("a"), node("b"), node("c")
    f = graph_flow.Flow("g").add(a, b, c)
    f.link(a, b).link(b, c)
    with pytest.raises(exceptions.DependencyFailure, match="linking 'c' -> 'a' closes a cycle"):
        f.link(c, a)
    with pytest.raises(exceptions.DependencyFailure):
        f.link(b, b)
    with pytest.raises(ValueError, match="not found to link from"):
        f.link(node("x"), a)
    with pytest.raises(ValueError, match="not found to link to"):
        f.link(a, node("x"))
    with pytest.raises(ValueError, match="must be callable"):
        f.link(a, c, decider=1)
    with pytest.raises(ValueError, match="requires a decider"):
        f.link(a, c, decider_depth="ALL")

    def decide(history):
        return True

    f.link(a, b, decider=decide, decider_depth="atom")
    links = {(u.name, v.name): meta for u, v, meta in f.iter_links()}
    assert links[("a", "b")] == {"manual": True, "decider": decide, "decider_depth": deciders.Depth.ATOM}
    f.link(a, b, decider=decide)  # a new decider clears the old depth
    assert links[("a", "b")] == {"manual": True, "decider": decide}
    assert [n.name for n in f] == ["a", "b", "c"]


def test_retry_is_not_linked_into_its_own_graph():
    r = retry.ParameterizedForEach("r", rebind=["choices"], provides="choice")
    f = graph_flow.Flow("g", retry=r).add(node("a", provides=["choices"]), node("b", requires=["choice"]))
    assert [n.name for n in f] == ["a", "b"]
    assert list(f.iter_links()) == []
    assert f.requires == frozenset({"choices"})


def test_nested_flows_are_nodes():
    inner = linear_flow.Flow("inner").add(node("i1", requires=["x"], provides=["y"]))
    f = graph_flow.Flow("g").add(inner, node("p", provides=["x"]), node("c", requires=["y"]))
    assert snapshot(f)[0] == ["p", "inner", "c"]
    assert f.requires == frozenset()


def test_targeted_flow():
    a, b, c, d = (
        node("a", provides=["x"]),
        node("b", requires=["x"], provides=["y"]),
        node("c"),
        node("d", requires=["y"]),
    )
    f = graph_flow.TargetedFlow("t").add(a, b, c, d)
    f.set_target(b)
    assert snapshot(f)[:2] == (["a", "b"], [("a", "b", {"reasons": ["x"]})])
    assert len(f) == 2
    f.add(node("e", requires=["y"]))  # adding keeps the target and its predecessors
    assert [n.name for n in f] == ["a", "b"]
    f.link(c, b)
    assert [n.name for n in f] == ["a", "c", "b"]
    f.reset_target()
    assert len(f) == 5
    with pytest.raises(ValueError, match="not found"):
        f.set_target(node("zz"))


def test_decider_depth():
    assert deciders.Depth.translate("flow") is deciders.Depth.FLOW
    assert deciders.Depth.translate(deciders.Depth.ATOM) is deciders.Depth.ATOM
    with pytest.raises(TypeError):
        deciders.Depth.translate(3)
    with pytest.raises(ValueError, match="Unexpected decider depth value"):
        deciders.Depth.translate("deep")
    assert deciders.pick_widest([deciders.Depth.ATOM, deciders.Depth.FLOW]) is deciders.Depth.FLOW
    assert deciders.pick_widest([deciders.Depth.ALL, deciders.Depth.ATOM]) is deciders.Depth.ALL


@needs_taskflow
def test_exception_classes_line_up_with_taskflow():
    for name in ("AmbiguousDependency", "DependencyFailure", "MissingDependencies", "InvalidState"):
        ours, theirs = getattr(exceptions, name), getattr(tf_exceptions, name)
        assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in theirs.__mro__]


# -- scale ------------------------------------------------------------------------------------------------


def test_graph_flow_with_100000_tasks_in_one_add():
    n = 100_000
    tasks = [node(f"t{i}", requires=[f"x{i - 1}"] if i else (), provides=[f"x{i}"]) for i in range(n)]
    f = graph_flow.Flow("big").add(*tasks)
    assert len(f) == n
    order = list(f)
    assert order[0] is tasks[0] and order[-1] is tasks[-1]
    links = list(f.iter_links())
    assert len(links) == n - 1
    assert links[1][0] is tasks[1] and links[1][1] is tasks[2]
    assert f.requires == frozenset()


def test_graph_flow_many_adds_in_reverse_order_stay_linear():
    # Consumers first: each add links the new producer to a waiting consumer whose descendants form a
    # long chain; the cycle check must not walk that chain every time.
    n = 20_000
    tasks = [node(f"t{i}", requires=[f"x{i - 1}"] if i else (), provides=[f"x{i}"]) for i in range(n)]
    f = graph_flow.Flow("big")
    for t in reversed(tasks):
        f.add(t)
    assert [t.name for t in list(f)[:3]] == ["t0", "t1", "t2"]
    assert len(list(f.iter_links())) == n - 1
