"""Graph flow links: the compact form of inferred links, and lowering them straight from the graph."""

from __future__ import annotations

import gc

import pytest

from ferroflow import _lower, deciders, task
from ferroflow import flow as flow_mod
from ferroflow.patterns import graph_flow


class Make(task.Task):
    def execute(self, **inputs):
        return 1


def test_an_inferred_link_reads_as_its_reasons_dict() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a, b)
    [(u, v, meta)] = list(flow.iter_links())
    assert (u, v, meta) == (a, b, {flow_mod.LINK_REASONS: {"x"}})
    meta["extra"] = 1  # the same dict every time, as in TaskFlow
    [(_, _, again)] = list(flow.iter_links())
    assert again is meta and again["extra"] == 1


def test_a_link_inferred_from_two_symbols_has_both_reasons() -> None:
    a, b = Make("a", provides=["x", "y"]), Make("b", requires=["x", "y"])
    flow = graph_flow.Flow("g").add(a, b)
    assert [meta for _, _, meta in flow.iter_links()] == [{flow_mod.LINK_REASONS: {"x", "y"}}]


def test_waiting_children_linked_later_get_reasons_too() -> None:
    b, a = Make("b", requires=["x"]), Make("a", provides="x")
    flow = graph_flow.Flow("g").add(b)
    flow.add(a)
    assert list(flow.iter_links()) == [(a, b, {flow_mod.LINK_REASONS: {"x"}})]


def test_a_manual_link_over_an_inferred_one_keeps_the_reasons() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a, b)
    flow.link(a, b)
    assert list(flow.iter_links()) == [(a, b, {flow_mod.LINK_REASONS: {"x"}, flow_mod.LINK_MANUAL: True})]


def test_symbols_that_are_not_strings() -> None:
    a, b = Make("a", provides=[7]), Make("b", requires=[7])
    flow = graph_flow.Flow("g").add(a, b)
    assert list(flow.iter_links()) == [(a, b, {flow_mod.LINK_REASONS: {7}})]


def test_a_failed_add_leaves_the_links_as_they_were() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a, b)
    with pytest.raises(Exception, match="multiple providers"):
        flow.add(Make("c", provides="x"), Make("d", requires=["x"]))
    assert len(flow) == 2 and list(flow.iter_links()) == [(a, b, {flow_mod.LINK_REASONS: {"x"}})]


def _generic_links(flow: graph_flow.Flow) -> tuple[list[tuple], int]:
    """What lowering made of ``iter_links()`` before it read the graph itself."""
    children = _lower._children_in_add_order(flow)
    position = {id(child): i for i, child in enumerate(children)}
    lowering = _lower._Lowering()
    links = [lowering._link(position[id(u)], position[id(v)], meta) for u, v, meta in flow.iter_links()]
    return links, len(lowering.deciders)


def _sample(targeted: bool) -> tuple[graph_flow.Flow, list[Make]]:
    atoms = [
        Make("a", provides="x"),
        Make("b", provides="y", requires=["x"]),
        Make("c", requires=["x", "y"]),
        Make("d", provides="z"),
        Make("e", requires=["z"]),
        Make("f"),
    ]
    flow = (graph_flow.TargetedFlow if targeted else graph_flow.Flow)("g")
    flow.add(*atoms)
    flow.link(atoms[5], atoms[2], decider=lambda history: True, decider_depth=deciders.Depth.FLOW)
    flow.link(atoms[0], atoms[3])
    return flow, atoms


@pytest.mark.parametrize("target", [None, 2, 4])
def test_graph_links_lower_as_iter_links_would(target) -> None:
    flow, atoms = _sample(targeted=target is not None)
    reference, _ = _sample(targeted=target is not None)
    if target is not None:
        flow.set_target(atoms[target])
        reference.set_target(list(reference._nodes)[target])
    lowering = _lower._Lowering()
    links = _lower.link_tuples(lowering._graph_links(flow))
    expected, decider_count = _generic_links(reference)
    assert links == expected and len(lowering.deciders) == decider_count
    # lowering read the inferred links without making their dicts
    assert any(type(meta) is str for successors in flow._succ for meta in successors.values())


# -- the log of links the compiler reads while every link is plain ------------------------------


def _dict_walk(flow: graph_flow.Flow) -> list[tuple]:
    """The links as read from the successor dicts (what lowering reads once a link is not plain)."""
    from ferroflow import _core

    return _core.graph_links(flow._succ, _lower._Lowering()._link).tuples()


def _random_graph(seed: int) -> graph_flow.Flow:
    """Children added in batches that require symbols provided before, after (waiting children
    linked later) or twice (refused adds, rolled back), some requiring two symbols of one provider."""
    import random

    draw = random.Random(seed)
    flow = graph_flow.Flow("g")
    made = 0
    for _ in range(draw.randint(1, 8)):
        batch = []
        for _ in range(draw.randint(1, 6)):
            requires = {f"v{draw.randrange(made + 6)}" for _ in range(draw.randint(0, 3))}
            provides = [f"v{made}"] + ([f"w{made}"] if draw.random() < 0.2 else [])
            if draw.random() < 0.2 and made:
                requires |= {f"v{made - 1}", f"w{made - 1}"}
            batch.append(Make(f"t{made}", provides=provides, requires=sorted(requires)))
            made += 1
        if draw.random() < 0.15:  # a second provider of a required symbol: the add is refused
            batch.append(Make(f"dup{made}", provides="v0"))
            batch.append(Make(f"needs{made}", requires=["v0"]))
        try:
            flow.add(*batch)
        except Exception:
            made -= len([atom for atom in batch if atom.name.startswith("t")])
    return flow


@pytest.mark.parametrize("seed", range(40))
def test_the_link_log_gives_the_links_the_successor_dicts_give(seed: int) -> None:
    from ferroflow import _core

    flow = _random_graph(seed)
    logged = _core.logged_graph_links(flow._link_log, len(flow._nodes)).tuples()
    assert logged == _dict_walk(flow)
    if flow._plain_links:
        lowering = _lower._Lowering()
        assert _lower.link_tuples(lowering._graph_links(flow)) == logged


def test_a_link_that_is_not_plain_sends_lowering_back_to_the_successor_dicts() -> None:
    a, b = Make("a", provides=["x", "y"]), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a, b)
    assert flow._plain_links and list(flow._link_log) == [0, 1]
    c = Make("c", requires=["x", "y"])  # one link from two symbols: its meta is a dict
    flow.add(c)
    assert not flow._plain_links
    flow = graph_flow.Flow("g").add(Make("a", provides="x"), Make("b", requires=["x"]))
    list(flow.iter_links())  # read as dicts: those can be changed by whoever read them
    assert not flow._plain_links
    d = Make("d")
    flow = graph_flow.Flow("g").add(Make("a", provides="x"), d)
    flow.link(flow._nodes[0], d, decider=lambda history: False)
    assert not flow._plain_links and list(flow._link_log) == [0, 1]
    lowering = _lower._Lowering()
    assert _lower.link_tuples(lowering._graph_links(flow)) == [(0, 1, True, 0, 3)]


def test_a_refused_add_logs_none_of_its_links() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a, b)
    with pytest.raises(Exception, match="multiple providers"):
        flow.add(
            Make("p", provides="y"),
            Make("q", requires=["y"]),
            Make("c", requires=["x"]),
            Make("c2", provides="x"),
            Make("e", requires=["x"]),
        )
    assert list(flow._link_log) == [0, 1]


def test_a_bad_link_log_is_refused() -> None:
    from array import array

    from ferroflow import _core

    with pytest.raises(ValueError, match="pairs of its 2 nodes; it holds 3 numbers"):
        _core.logged_graph_links(array("I", [0, 1, 1]), 2)
    with pytest.raises(ValueError, match="pairs of its 2 nodes"):
        _core.logged_graph_links(array("I", [0, 2]), 2)


# -- the collector around big builds --------------------------------------------------------------


def test_paused_gc_restores_the_collector_and_leaves_frozen_objects_frozen() -> None:
    assert gc.isenabled()
    with flow_mod.paused_gc():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() == 0 and len(kept) == 1000
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with flow_mod.paused_gc():
            kept.append([])
        assert gc.isenabled() and gc.get_freeze_count() == frozen  # a running engine's freeze is kept
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with flow_mod.paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- providers ------------------------------------------------------------------------------------


def test_a_failed_add_with_a_second_provider_leaves_one_provider() -> None:
    a = Make("a", provides="x")
    flow = graph_flow.Flow("g").add(a)
    with pytest.raises(Exception, match="multiple providers"):
        flow.add(Make("a2", provides="x"), Make("d", requires=["x"]))
    b = Make("b", requires=["x"])
    flow.add(b)  # one provider again: linked, not ambiguous
    assert list(flow.iter_links()) == [(a, b, {flow_mod.LINK_REASONS: {"x"}})]
    flow.add(Make("a3", provides="x"))
    with pytest.raises(Exception, match="multiple providers"):
        flow.add(Make("e", requires=["x"]))


def test_the_first_child_as_the_provider_of_a_waiting_child() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    flow = graph_flow.Flow("g").add(a)
    flow.add(b, resolve_requires=False)
    assert flow.requires == frozenset({"x"})  # b waits: nothing links it to a
    flow.link(a, b)
    assert flow.requires == frozenset()  # a (position 0) now provides x to b
    c = Make("c", provides="x")
    flow.add(c)  # b has its provider: c is not linked to it
    assert [(u.name, v.name) for u, v, _ in flow.iter_links()] == [("a", "b")]
