"""Atoms built with the common arguments take their mappings from a per-class plan, made on first
read: every TaskFlow-visible attribute is what the general path (and TaskFlow) gives, and one atom's
attributes never leak into another's."""

from __future__ import annotations

import collections
import copy
import functools
import pickle

import pytest
from taskflow import task as tf_task

from ferroflow import atom, task
from ferroflow.types.sets import OrderedSet

ATTRS = ("name", "version", "inject", "save_as", "provides", "rebind", "optional")
ATTRS += ("revert_rebind", "revert_optional", "requires")


class OpenArgs(task.Task):
    def execute(self, **inputs):
        return 1


class Positional(task.Task):
    def execute(self, a, b=2):
        return a


class PositionalOpen(task.Task):
    def execute(self, a, b=2, **more):
        return a


class OwnRevert(task.Task):
    def execute(self, a, **more):
        return a

    def revert(self, a, c, result, flow_failures, d=1, **more):
        pass


class SameRevert(task.Task):
    def execute(self, a, b=2, **more):
        return a

    def revert(self, a, b=2, **more):
        pass


class StrictRevert(task.Task):
    def execute(self, **more):
        return 1

    def revert(self, a, result, flow_failures):
        pass


CLASSES = [OpenArgs, Positional, PositionalOpen, OwnRevert, SameRevert]
REQUIRES = [None, "a", ["a"], ("a", "x", "y"), ["x", "a", "x"], []]
PROVIDES = [None, "out", ["o1", "o2"]]


def _valid(cls: type, requires) -> bool:
    names = atom.requires_names(requires)
    return cls is not Positional or all(name in ("a", "b") for name in names)


def _attributes(a: atom.Atom) -> dict:
    """Every attribute by value and type (mappings as item lists)."""
    found = {}
    for attr in ATTRS:
        value = getattr(a, attr)
        items = list(value.items()) if isinstance(value, collections.OrderedDict) else value
        items = list(items) if isinstance(value, OrderedSet) else items
        found[attr] = (type(value).__mro__[-2] if isinstance(value, collections.OrderedDict) else type(value), items)
    return found


def _general(cls: type, name: str, provides, requires, rebind=None) -> atom.Atom:
    """The same atom's attributes as the general path computes them (`atom._arg_mappings`)."""
    made = object.__new__(cls)
    made.name, made.inject = name, None
    made.save_as, made.provides = atom._result_mappings(provides)
    made._set_mappings(atom._arg_mappings(made, requires, True, rebind, None, None, None, None))
    return made


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("requires", REQUIRES)
@pytest.mark.parametrize("provides", PROVIDES)
def test_attributes_are_those_of_the_general_path(cls, requires, provides) -> None:
    if not _valid(cls, requires):
        pytest.skip("not a valid combination")
    fast = cls("t", provides=provides, requires=requires)
    assert vars(fast).get("_lazy_args") is not None or requires in (None, [])
    assert _attributes(fast) == _attributes(_general(cls, "t", provides, requires))
    assert isinstance(fast.rebind, collections.OrderedDict) and isinstance(fast.save_as, collections.OrderedDict)
    assert isinstance(fast.requires, OrderedSet) and isinstance(fast.provides, OrderedSet)


@pytest.mark.parametrize("cls", [OpenArgs, PositionalOpen, OwnRevert, SameRevert])
def test_attributes_match_taskflow(cls) -> None:
    tf_cls = type(cls.__name__, (tf_task.Task,), {k: v for k, v in vars(cls).items() if k in ("execute", "revert")})
    for requires in (None, "a", ["a", "x"], ("x", "a")):
        for provides in (None, "out", ("o1", "o2")):
            ours, theirs = (
                cls("t", provides=provides, requires=requires),
                tf_cls("t", provides=provides, requires=requires),
            )
            for attr in ("rebind", "save_as", "revert_rebind"):
                assert list(getattr(ours, attr).items()) == list(getattr(theirs, attr).items()), (attr, requires)
            for attr in ("requires", "optional", "provides", "revert_optional"):
                assert list(getattr(ours, attr)) == list(getattr(theirs, attr)), (attr, requires)
            assert (ours.name, ours.inject) == (theirs.name, theirs.inject)


REBINDS = [{}, [], {"a": "z"}, ["z"], ("z", "x"), {"a": "z", "b": "y"}, ["z", "y", "b"]]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("rebind", REBINDS)
@pytest.mark.parametrize("requires", [None, ["a"], ("x",)])
def test_rebound_attributes_are_those_of_the_general_path(cls, rebind, requires) -> None:
    try:
        expected = _attributes(_general(cls, "t", "out", requires, rebind))
    except ValueError as exc:  # (what the general path refuses, the constructor refuses alike)
        with pytest.raises(ValueError, match=str(exc).replace("[", r"\[").replace("]", r"\]")):
            cls("t", provides="out", requires=requires, rebind=rebind)
        return
    assert _attributes(cls("t", provides="out", requires=requires, rebind=rebind)) == expected


def test_functor_tasks_are_those_of_the_general_path() -> None:
    def add(x, y=1, **more):
        return x + y

    def undo(x, z, result, flow_failures):
        pass

    cases = [(None, r, None) for r in (None, "x", ["x", "z"], ("q",))]
    cases += [(undo, r, None) for r in (None, "z", ["x", "z"])]
    cases += [(None, None, {"x": "ex"}), (None, ["q"], ["ex", "why"]), (undo, None, {"x": "ex", "z": "zed"})]
    for revert, requires, rebind in cases:
        fast = task.FunctorTask(add, name="f", provides="out", requires=requires, revert=revert, rebind=rebind)
        # (callables that are not plain functions take the general path)
        undo_ = functools.partial(revert) if revert else None
        general = task.FunctorTask(
            functools.partial(add), name="f", provides="out", requires=requires, revert=undo_, rebind=rebind
        )
        assert not vars(general).get("_lazy_args")
        assert vars(fast).get("_lazy_args") or (requires is None and rebind is None)
        assert _attributes(fast) == _attributes(general), (revert, requires)
        assert not hasattr(fast, "_constructor_arguments")  # (FunctorTask itself is never referenced)


class SubFunctor(task.FunctorTask):
    pass


def test_functor_task_subclasses_keep_their_constructor_arguments() -> None:
    def undo(x, result, flow_failures):
        pass

    sub = SubFunctor(abs, name="s", requires=["x"], revert=undo)
    assert sub._constructor_arguments == ((abs,), {"name": "s", "requires": ["x"], "revert": undo})


def test_functor_task_of_a_callable_object_takes_the_general_path() -> None:
    class Doubler:
        def __call__(self, x):
            return 2 * x

    f = task.FunctorTask(Doubler(), name="d", requires=["x"])
    assert list(f.rebind.items()) == [("x", "x")] and list(f.requires) == ["x"]


def test_changing_one_atom_does_not_change_another() -> None:
    first, second = OpenArgs("a", provides="v", requires=["p"]), OpenArgs("b", provides="v", requires=["p"])
    first.rebind = collections.OrderedDict([("p", "other")])
    first.requires = OrderedSet(["other"])
    first.provides = OrderedSet(["w"])
    assert list(second.rebind.items()) == [("p", "p")] and list(second.requires) == ["p"]
    assert list(second.provides) == ["v"] and list(OpenArgs("c", provides="v", requires=["p"]).requires) == ["p"]
    with pytest.raises(TypeError, match="read-only"):
        second.rebind["p"] = "changed"  # shared mappings are read-only; assign a new one instead


def test_an_attribute_assigned_before_any_read_is_kept() -> None:
    t = OpenArgs("t", provides="v", requires=["p", "q"])
    t.requires = OrderedSet(["mine"])
    assert list(t.requires) == ["mine"] and list(t.rebind.items()) == [("p", "p"), ("q", "q")]
    assert list(t.provides) == ["v"]


def test_the_callers_list_is_copied() -> None:
    names = ["p"]
    t = OpenArgs("t", requires=names)
    names.append("q")
    assert list(t.requires) == ["p"]


def test_errors_are_raised_by_the_constructor() -> None:
    with pytest.raises(ValueError, match=r"Extra arguments given to atom t: \['x'\]"):
        Positional("t", requires=["x"])
    with pytest.raises(ValueError, match=r"Extra arguments given to atom r: \['b'\]"):
        StrictRevert("r", requires=["b"])
    with pytest.raises(TypeError, match="unhashable"):
        OpenArgs("t", requires=[["x"]])


def test_missing_attributes_still_raise_attribute_error() -> None:
    class NoInit(task.Task):
        def __init__(self) -> None:  # (does not call the base constructor)
            pass

        def execute(self):
            pass

    bare = NoInit()
    assert bare._shared_args is None
    with pytest.raises(AttributeError, match="requires"):
        bare.requires  # noqa: B018
    assert getattr(bare, "rebind", "absent") == "absent"


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))])
def test_copies_and_pickles_have_the_attributes(clone) -> None:
    t = SameRevert("t", provides="v", requires=("a", "x"))
    cloned = clone(t)
    assert not vars(cloned).get("_lazy_args") and _attributes(cloned) == _attributes(t)


def test_only_atoms_that_revert_keep_their_constructor_arguments() -> None:
    assert not hasattr(OpenArgs("t", requires=["p"]), "_constructor_arguments")
    assert OwnRevert("t", requires=["c"])._constructor_arguments == (("t",), {"requires": ["c"]})

    class Sub(OwnRevert):
        pass

    assert Sub("s")._constructor_arguments == (("s",), {})


def test_a_class_attribute_named_like_a_mapping_takes_the_general_path() -> None:
    class WithAttribute(task.Task):
        requires = "class-level"

        def execute(self, **inputs):
            pass

    t = WithAttribute("t", requires=["p"])
    assert "_lazy_args" not in vars(t) and list(t.requires) == ["p"]


@pytest.mark.parametrize("cls", CLASSES)
def test_names_read_without_making_the_mappings_are_the_attributes(cls) -> None:
    for requires in REQUIRES:
        if not _valid(cls, requires):
            continue
        t = cls("t", provides="out", requires=requires)
        names, provided = atom.required_names(t), atom.provided_names(t)
        lazy = atom.lazy_arg_names(t)
        assert names == tuple(t.requires) and provided == tuple(t.provides) == ("out",)
        if lazy is not None:
            assert lazy == (tuple(t.requires), tuple(t.optional)) and t.revert_rebind is t.rebind


def test_graph_flow_links_lazy_atoms_without_making_their_mappings() -> None:
    from ferroflow.patterns import graph_flow

    atoms = [OpenArgs(f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else None) for i in range(3)]
    flow = graph_flow.Flow("g").add(*atoms)
    assert all(vars(a).get("_lazy_args") is not None for a in atoms[1:])
    assert [(u.name, v.name) for u, v, _meta in flow.iter_links()] == [("t0", "t1"), ("t1", "t2")]


def test_an_assigned_mapping_is_what_names_are_read_from() -> None:
    t = OpenArgs("t", provides="v", requires=["p"])
    t.requires = OrderedSet(["q"])
    t.provides = OrderedSet(["w"])
    assert atom.lazy_arg_names(t) is None
    assert atom.required_names(t) == ("q",) and atom.provided_names(t) == ("w",)


def test_save_as_is_made_with_rebind_so_that_running_makes_nothing() -> None:
    t = OpenArgs("t", provides="v", requires=["p"])
    assert "rebind" not in vars(t)
    assert list(t.save_as.items()) == [("v", None)]
    assert list(vars(t)["rebind"].items()) == [("p", "p")]
    assert "requires" not in vars(t)  # (made when read, from the same shared tuple)
    assert t.requires is t._shared_args[4]


@pytest.mark.parametrize("requires", [["p", "q", "p"], ("p",), "p"])
def test_identity_arg_names_are_the_rebind_of_an_atom_built_with_requires_alone(requires) -> None:
    t = OpenArgs("t", provides="v", requires=requires)
    names = atom.identity_arg_names(t)
    assert "rebind" not in vars(t) and "_shared_args" not in vars(t)  # (read without making them)
    assert names == tuple(t.rebind) == tuple(t.rebind.values()) == tuple(t.revert_rebind)
    assert not t.optional and not t.revert_optional


def test_an_atom_built_with_no_requires_has_no_identity_arguments() -> None:
    t = OpenArgs("t", provides="v", requires=[])
    assert atom.identity_arg_names(t) == ()
    assert "rebind" not in vars(t) and "_shared_args" not in vars(t)
    assert not t.rebind and not t.revert_rebind


def test_identity_arg_names_leave_other_atoms_to_their_attributes() -> None:
    assert atom.identity_arg_names(OpenArgs("t", requires=["p"], rebind={"a": "p"})) is None
    assert atom.identity_arg_names(OpenArgs("t", requires=["p"], inject={"p": 1})) is None
    assert atom.identity_arg_names(OpenArgs("t")) is None
    assert atom.identity_arg_names(Positional("t", requires=["a"])) is None
    assigned = OpenArgs("t", requires=["p"])
    assigned.rebind = {"p": "other"}
    assert atom.identity_arg_names(assigned) is None


class Recording(task.Task):
    def execute(self, **inputs):
        return sum(inputs.values()) + 1

    def revert(self, **inputs):
        inputs.pop("flow_failures")
        REVERTED.append((self.name, inputs.pop("result"), inputs))


class Fails(task.Task):
    def execute(self, **inputs):
        raise RuntimeError("no")


REVERTED: list = []


def test_an_engine_fetches_arguments_without_making_the_mappings_of_atoms_built_with_requires_alone(
    tmp_path,
) -> None:
    # (the engine's own argument lookup, taken while someone listens; the Rust lane's is below)
    from ferroflow import engines
    from ferroflow.patterns import graph_flow

    def run(*atoms):
        engine = engines.load(graph_flow.Flow("g").add(*atoms), backend=f"sqlite:///{tmp_path / 'g.db'}")
        engine.atom_notifier.register("FAILURE", lambda *_: None)
        return engine

    REVERTED.clear()
    a = Recording("a", provides="x")
    b = Recording("b", provides="y", requires=["x"])
    c = Recording("c", provides="z", requires=["x", "y", "x"])
    engine = run(a, b, c)
    engine.run()
    for made in (b, c):
        assert "rebind" not in vars(made) and "_shared_args" not in vars(made)
    assert engine.storage.fetch("z") == 4  # (x = 1, y = 2, z = 1 + 2 + 1)

    # Reverting fetches them the same way.
    a, b, c = Recording("a", provides="x"), Recording("b", provides="y", requires=["x"]), Fails("c", requires=["y"])
    engine = run(a, b, c)
    with pytest.raises(RuntimeError, match="no"):
        engine.run()
    assert sorted(REVERTED, key=repr) == [("a", 1, {}), ("b", 2, {"x": 1})]
    assert "rebind" not in vars(b)


@pytest.mark.parametrize("store", [None, "sqlite"])
def test_the_rust_lane_fetches_arguments_without_making_the_mappings(tmp_path, store) -> None:
    # (nobody listens: the serial engine's Rust lane runs the atoms and, on SQLite, writes them)
    from ferroflow import engines
    from ferroflow.patterns import graph_flow

    a = Recording("a", provides="x", requires=[])
    b = Recording("b", provides="y", requires=["x"])
    c = Recording("c", provides="z", requires=["x", "y", "x"])
    backend = f"sqlite:///{tmp_path / 'g.db'}" if store else None
    engine = engines.load(graph_flow.Flow("g").add(a, b, c), backend=backend)
    engine.run()
    for made in (a, b, c):
        assert "rebind" not in vars(made) and "_shared_args" not in vars(made), made.name
    assert engine.storage.fetch("z") == 4  # (looking results up by name makes them: after)


def test_a_class_between_task_and_atom_has_its_constructor_called() -> None:
    # (Task's constructor does Atom's work itself only when nothing else would run in between)
    calls = []

    class Between(atom.Atom):
        def __init__(self, *args, **kwargs):
            calls.append(kwargs.get("provides"))
            super().__init__(*args, **kwargs)

    class Mixed(task.Task, Between):
        def execute(self):
            return 1

    class Plain(task.Task):
        def execute(self):
            return 1

    assert not Mixed._atom_init_next and Plain._atom_init_next
    mixed, plain = Mixed("m", provides="x"), Plain("p", provides="x")
    assert calls == ["x"]
    for attr in ATTRS:
        assert getattr(mixed, attr) == getattr(plain, attr) or attr == "name", attr
    assert mixed.name == "m" and task.Task.__mro__.index(atom.Atom) == 1
