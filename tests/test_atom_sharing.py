"""Atoms built alike share their (read-only) argument and result mappings."""

from __future__ import annotations

import collections
import copy
import pickle

import pytest

from ferroflow import _lower, atom, retry, task
from ferroflow.patterns import linear_flow
from ferroflow.types.sets import OrderedSet

MAPPING_ATTRS = ("save_as", "provides", "rebind", "optional", "revert_rebind", "revert_optional", "requires")


class Plain(task.Task):
    def execute(self, a, b=2):
        return a + b


class OpenArgs(task.Task):
    def execute(self, **inputs):
        return 1


class SameRevert(task.Task):
    def execute(self, a, b=2):
        return a + b

    def revert(self, a, b=2, **kwargs):
        pass


class OwnRevert(task.Task):
    def execute(self, a):
        return a

    def revert(self, a, c, result, flow_failures):
        pass


class Counting(task.Task):
    """Overrides the mapping hook: its mappings must be computed for every atom."""

    calls = 0

    def execute(self, a):
        return a

    def _build_arg_mapping(self, executor, requires=None, rebind=None, auto_extract=True, ignore_list=None):
        type(self).calls += 1
        return super()._build_arg_mapping(executor, requires, rebind, auto_extract, ignore_list)


def mappings(a: atom.Atom) -> dict:
    return {
        "save_as": list(a.save_as.items()),
        "provides": list(a.provides),
        "rebind": list(a.rebind.items()),
        "optional": list(a.optional),
        "revert_rebind": list(a.revert_rebind.items()),
        "revert_optional": list(a.revert_optional),
        "requires": list(a.requires),
    }


def test_atoms_built_alike_share_every_mapping() -> None:
    first, second = Plain("one", provides="x"), Plain("two", provides="x")
    for attr in MAPPING_ATTRS:
        assert getattr(first, attr) is getattr(second, attr), attr
    assert mappings(first) == {
        "save_as": [("x", None)],
        "provides": ["x"],
        "rebind": [("a", "a"), ("b", "b")],
        "optional": ["b"],
        "revert_rebind": [],  # (the default revert takes nothing from storage)
        "revert_optional": [],
        "requires": ["a"],
    }


def test_lists_and_tuples_of_equal_items_share() -> None:
    assert OpenArgs("a", requires=["p", "q"]).rebind is OpenArgs("b", requires=("p", "q")).rebind


def test_empty_mappings_are_shared_singletons() -> None:
    a, b = OpenArgs("a"), Plain("b", rebind=["z"])
    assert a.save_as is b.save_as and not a.save_as
    assert a.provides is b.provides and not a.provides
    assert a.optional is b.revert_optional and not a.optional
    assert not a.rebind and not a.requires


def test_revert_mappings_are_the_execute_ones_when_equal() -> None:
    t = SameRevert("t", rebind={"a": "z"})
    assert list(t.rebind.items()) == [("a", "z"), ("b", "b")] and list(t.optional) == ["b"]
    assert t.revert_rebind is t.rebind and t.revert_optional is t.optional and list(t.requires) == ["z"]
    o = OpenArgs("o", requires=["p"])
    assert o.revert_rebind is o.rebind and o.requires == OrderedSet(["p"])


def test_different_arguments_give_distinct_correct_mappings() -> None:
    base = Plain("base")
    rebound = Plain("rebound", rebind=["aa"])
    injected = Plain("injected", inject={"a": 1})
    required = OpenArgs("required", requires=["p", "q"])
    reordered = OpenArgs("reordered", requires=["q", "p"])
    assert list(base.rebind.items()) == [("a", "a"), ("b", "b")]
    assert list(rebound.rebind.items()) == [("a", "aa"), ("b", "b")]
    assert list(rebound.requires) == ["aa"]
    assert list(injected.requires) == [] and list(injected.rebind.items()) == [("a", "a"), ("b", "b")]
    assert list(base.requires) == ["a"]  # the injected atom's requires did not leak into the shared one
    assert list(required.requires) == ["p", "q"] and list(reordered.requires) == ["q", "p"]
    assert required.rebind is not reordered.rebind
    assert rebound.rebind is not base.rebind and injected.requires is not base.requires


def test_inject_only_by_its_names() -> None:
    one, two = Plain("one", inject={"a": 1}), Plain("two", inject={"a": 2})
    assert one.requires is two.requires and one.inject == {"a": 1} and two.inject == {"a": 2}


def test_own_revert_signature_gets_its_own_mapping() -> None:
    t = OwnRevert("t")
    assert list(t.rebind.items()) == [("a", "a")]
    assert list(t.revert_rebind.items()) == [("a", "a"), ("c", "c")]
    assert list(t.requires) == ["a", "c"]
    assert OwnRevert("u").revert_rebind is t.revert_rebind


def test_provides_forms() -> None:
    assert list(Plain("l", provides=["p", "q", "p"]).save_as.items()) == [("p", 2), ("q", 1)]
    s = Plain("s", provides={"k", "j"})
    assert dict(s.save_as) == {"k": "k", "j": "j"} and list(s.provides) == list(s.save_as)
    assert Plain("t", provides=("p", "q")).save_as is Plain("u", provides=["p", "q"]).save_as


def test_iterators_and_unhashable_items_are_not_cached_but_correct() -> None:
    first = OpenArgs("a", requires=iter(["p", "q"]))
    second = OpenArgs("b", requires=iter(["p", "q"]))
    assert list(first.requires) == list(second.requires) == ["p", "q"]
    unhashable = OpenArgs("c", rebind={"x": "y"}, inject={"y": [1]})
    assert list(unhashable.rebind.items()) == [("x", "y")] and list(unhashable.requires) == []


def test_overridden_mapping_hook_is_called_for_every_atom() -> None:
    Counting.calls = 0
    Counting("a")
    Counting("b")
    assert Counting.calls == 4  # execute and revert, twice


def test_retries_share_too() -> None:
    class R(retry.Retry):
        def execute(self, history, a):
            return a

        def on_failure(self, history, *args, **kwargs):
            return retry.RETRY

    r1, r2 = R("r1"), R("r2")
    assert r1.rebind is r2.rebind and list(r1.rebind.items()) == [("a", "a")] and list(r1.requires) == ["a"]


def test_functor_tasks_are_correct() -> None:
    def add(x, y=1):
        return x + y

    def undo(x, z, result, flow_failures):
        pass

    f = task.FunctorTask(add, revert=undo, rebind={"x": "ex"})
    assert list(f.rebind.items()) == [("x", "ex"), ("y", "y")]
    assert list(f.revert_rebind.items()) == [("x", "ex"), ("z", "z")]
    assert list(f.requires) == ["ex", "z"] and list(f.optional) == ["y"]


def test_the_cache_stays_bounded() -> None:
    for i in range(atom._CACHE_MAX + 10):
        OpenArgs(f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"])
    assert len(atom._ARG_MAPPINGS) <= atom._CACHE_MAX
    assert len(atom._RESULT_MAPPINGS) <= atom._CACHE_MAX


# -- the read-only mapping ------------------------------------------------------------------------


def test_shared_mappings_cannot_be_changed() -> None:
    t = Plain("t")
    changes = [
        lambda m: m.__setitem__("x", "y"),
        lambda m: m.__delitem__("a"),
        lambda m: m.update(x="y"),
        lambda m: m.pop("a"),
        lambda m: m.popitem(),
        lambda m: m.setdefault("x", "y"),
        lambda m: m.clear(),
        lambda m: m.move_to_end("a"),
    ]
    for change in changes:
        with pytest.raises(TypeError, match="read-only"):
            change(t.rebind)
    with pytest.raises(TypeError, match="read-only"):
        t.rebind |= {"x": "y"}
    assert list(Plain("u").rebind.items()) == [("a", "a"), ("b", "b")]


def test_attributes_can_be_replaced() -> None:
    t, u = Plain("t"), Plain("u")
    t.rebind = collections.OrderedDict([("a", "other")])
    assert list(u.rebind.items()) == [("a", "a"), ("b", "b")]


def test_frozen_mapping_reads_like_an_ordered_dict() -> None:
    frozen = atom.FrozenOrderedDict([("a", 1), ("b", 2)])
    assert isinstance(frozen, collections.OrderedDict)
    assert frozen == collections.OrderedDict([("a", 1), ("b", 2)])
    assert frozen != collections.OrderedDict([("b", 2), ("a", 1)])  # order-sensitive, like OrderedDict
    assert frozen == {"b": 2, "a": 1}  # order-insensitive against a plain dict, like OrderedDict
    assert list(frozen) == ["a", "b"] and frozen.get("b") == 2 and "a" in frozen and len(frozen) == 2
    assert list(reversed(frozen)) == ["b", "a"]
    mutable = frozen.copy()
    mutable["c"] = 3
    assert type(mutable) is collections.OrderedDict and "c" not in frozen
    merged = frozen | {"c": 3}
    assert type(merged) is collections.OrderedDict and list(merged) == ["a", "b", "c"]
    assert list({"z": 0} | frozen) == ["z", "a", "b"]


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_frozen_mapping_pickles_and_copies_as_an_ordered_dict(clone) -> None:
    frozen = atom.FrozenOrderedDict([("a", 1), ("b", 2)])
    cloned = clone(frozen)
    assert type(cloned) is collections.OrderedDict and cloned == frozen
    cloned["c"] = 3  # a clone is the caller's own


def test_pickled_task_keeps_its_mappings() -> None:
    t = Plain("t", provides="x", rebind=["aa"])
    clone = pickle.loads(pickle.dumps(t))
    assert mappings(clone) == mappings(t)


# -- lowering from the shared mappings ------------------------------------------------------------


def _spec(a: atom.Atom) -> tuple:
    return _lower.lower(a).spec_atoms[0]


def _expected_spec(a: atom.Atom) -> tuple:
    """The spec computed from the attributes alone (as lowering did before atoms shared anything)."""
    names = atom.spec_names(a.rebind, a.optional, a.revert_rebind, a.revert_optional, a.inject)
    return (a.name, 0, "1.0", 0, *(list(n) for n in names), list(a.provides))


def test_specs_of_atoms_built_alike_are_alike() -> None:
    flow = linear_flow.Flow("f").add(*[OpenArgs(f"t{i}", provides="x", requires=["p"]) for i in range(3)])
    specs = _lower.lower(flow).spec_atoms
    assert specs[0][4] == ["p"] and specs[0][8] == ["x"]
    assert all(spec[4:] == specs[0][4:] for spec in specs)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: setattr(t, "rebind", collections.OrderedDict([("a", "other"), ("b", "b")])),
        lambda t: setattr(t, "optional", OrderedSet()),
        lambda t: setattr(t, "revert_rebind", collections.OrderedDict([("a", "r")])),
        lambda t: setattr(t, "provides", OrderedSet(["y", "z"])),
        lambda t: setattr(t, "inject", {"a": 1}),
        lambda t: None,
    ],
)
def test_lowering_follows_attributes_changed_after_construction(change) -> None:
    t = SameRevert("t", provides="x")
    change(t)
    assert _spec(t) == _expected_spec(t)


def test_lowering_an_atom_built_with_inject_whose_inject_is_dropped() -> None:
    t = Plain("t", inject={"a": 1})
    assert _spec(t)[4] == []
    t.inject = None
    assert _spec(t)[4] == ["a"] and _spec(t) == _expected_spec(t)


def test_lowering_functor_tasks() -> None:
    def add(x, y=1):
        return x + y

    f = task.FunctorTask(add, name="f", rebind={"x": "ex"}, provides="out")
    assert _spec(f) == ("f", 0, "1.0", 0, ["ex"], ["y"], ["ex"], ["y"], ["out"])


def test_equal_versions_that_print_differently_lower_differently() -> None:
    one, one_point_o = OpenArgs("a"), OpenArgs("b")
    one.version, one_point_o.version = 1, 1.0
    flow = linear_flow.Flow("f").add(one, one_point_o, OpenArgs("c"))
    assert [spec[2] for spec in _lower.lower(flow).spec_atoms] == ["1", "1.0", "1.0"]
    assert _spec(one_point_o)[2] == "1.0"
