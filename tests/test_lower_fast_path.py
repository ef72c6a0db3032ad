"""Lowering's loop over a flow's plain tasks (`_Lowering._add_tasks`, in Rust: `_core.lower_plain_tasks`)
gives the specs, errors and sharing `add_atom` (the general path, reading each atom's attributes) gives."""

from __future__ import annotations

from typing import Any

import pytest

from ferroflow import _core, exceptions, task
from ferroflow._lower import KIND_TASK, RESERVED_NAME, _Lowering, lower
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow


class Kwargs(task.Task):
    def execute(self, **inputs: Any) -> int:
        return 1


class Named(task.Task):
    def execute(self, a: Any, b: Any = 1, **more: Any) -> Any:
        return a


class Reverting(task.Task):
    def execute(self, a: Any, **more: Any) -> Any:
        return a

    def revert(self, a: Any, c: Any = 2, **kwargs: Any) -> None:
        pass


class NoArgs(task.Task):
    def execute(self) -> int:
        return 1


class NameProperty(task.Task):
    """Not plain: its name is a property (the loop leaves it to add_atom)."""

    @property
    def name(self) -> str:
        return "from-property"

    @name.setter
    def name(self, value: str) -> None:
        pass

    def execute(self) -> int:
        return 1


class Versioned(task.Task):
    version = "2.5"
    priority = 4

    def execute(self, **inputs: Any) -> int:
        return 1


def _atoms() -> list[Any]:
    """Atoms built every way the loop reads, and ways it leaves to add_atom."""
    assigned = Kwargs("assigned", requires=["x"])
    assigned.requires = assigned.requires  # (a mapping assigned after the constructor)
    read = Kwargs("read", requires=["x", "y"], provides="r")
    _ = read.rebind  # (its mappings made by a read)
    made_provides = Kwargs("made-provides", requires="x", provides="mp")
    _ = made_provides.provides
    versioned = Versioned("own-version", provides="v")
    versioned.version = (3, 1)
    versioned.priority = 2.0
    return [
        Kwargs("none"),
        Kwargs("one", requires=["x"], provides="p1"),
        Kwargs("one-str", requires="x", provides="p1"),
        Kwargs("two", requires=["x", "y"], provides="p2"),
        Kwargs("repeats", requires=("x", "y", "x"), provides="p3"),
        Kwargs("empty", requires=[]),
        Kwargs("several-provides", provides=["a", "b"]),
        Kwargs("set-provides", provides={"c", "d"}),
        Named("named", provides="n"),
        Named("named-requires", requires=["z"], provides="nr"),
        Named("rebound", rebind={"a": "stored"}),
        Named("injected", inject={"a": 1}),
        Kwargs("injected-kwargs", requires=["x"], inject={"x": 1}),
        Reverting("reverting", requires=["q"]),
        NoArgs("no-args"),
        NoArgs("no-args-provides", provides="np"),
        NameProperty("ignored"),
        assigned,
        read,
        made_provides,
        Versioned("class-version"),
        versioned,
    ]


def _reference(atoms: list[Any]) -> list[tuple]:
    lowering = _Lowering()
    for atom in atoms:
        lowering.add_atom(atom, KIND_TASK)
    return lowering.spec_atoms


@pytest.mark.parametrize("make", [linear_flow.Flow, unordered_flow.Flow, graph_flow.Flow])
def test_specs_are_add_atoms(make: Any) -> None:
    expected = _reference(_atoms())
    atoms = _atoms()
    if make is graph_flow.Flow:
        flow = make("f").add(*atoms, resolve_requires=False, resolve_existing=False)
    else:
        flow = make("f").add(*atoms)
    lowered = lower(flow)
    assert lowered.atoms == atoms
    assert lowered.spec_atoms == expected
    assert lowered.root[4] == list(range(len(atoms)))  # (a child atom is its index)


def test_specs_are_held_in_rust_and_read_by_field() -> None:
    """The specs are no Python tuples: each is made when read, and one field of many atoms is read
    in one call (what the engine reads after a compile)."""
    atoms = [Kwargs(f"t{i}", requires=["x"] if i % 2 else ["x", "y", "x"], provides="p") for i in range(6)]
    specs = lower(linear_flow.Flow("f").add(*atoms)).spec_atoms
    assert isinstance(specs, _core.AtomSpecs) and len(specs) == 6
    assert specs[1][4] == ["x"] and specs[0][4] == ["x", "y"]  # (repeats dropped, as add_atom drops them)
    assert specs[-1] == specs[5] and specs[0] is not specs[0]
    assert all(spec[4] == spec[6] and spec[5] == spec[7] == [] and spec[8] == ["p"] for spec in specs)
    assert specs.retry_flags() == [False] * 6 and specs.retry_flags([2, 0]) == [False, False]
    versions = specs.versions()
    assert versions == ["1.0"] * 6 and len({id(v) for v in versions}) == 1  # (one string per version)
    assert specs.version(3) == "1.0" and not specs.is_retry(3)
    assert specs.providing() == list(range(6))
    with pytest.raises(IndexError, match="atom index 6 out of range"):
        specs[6]
    with pytest.raises(IndexError):
        specs.versions([7])


def test_errors_are_add_atoms() -> None:
    t = Kwargs("t", requires=["x"])
    with pytest.raises(ValueError, match="duplicate"):
        lower(linear_flow.Flow("f").add(t, linear_flow.Flow("g").add(t)))
    with pytest.raises(exceptions.CompilationFailure, match="reserved"):
        lower(linear_flow.Flow("f").add(Kwargs("a"), Kwargs(RESERVED_NAME)))
    bad = Kwargs("b")
    bad.name = 5
    with pytest.raises(TypeError, match="must be a string"):
        lower(linear_flow.Flow("f").add(Kwargs("a"), bad))
    # (the first error in flow order wins, as one atom at a time)
    with pytest.raises(ValueError, match="duplicate"):
        lower(linear_flow.Flow("f").add(t, linear_flow.Flow("g").add(t, Kwargs(RESERVED_NAME))))


def test_objects_seen_twice_are_refused_whichever_path_saw_them_first() -> None:
    # (the lowering's IdentitySet is shared by the Rust loop, add_atom and the flows it visits)
    inner = linear_flow.Flow("inner").add(NoArgs("a"))
    with pytest.raises(ValueError, match="duplicate"):
        lower(linear_flow.Flow("f").add(inner, linear_flow.Flow("g").add(inner)))
    odd = NameProperty("odd")
    with pytest.raises(ValueError, match="duplicate"):
        lower(linear_flow.Flow("f").add(odd, NoArgs("b"), linear_flow.Flow("g").add(odd)))
    seen = _core.IdentitySet()
    assert seen.add(odd) and not seen.add(odd) and odd in seen and inner not in seen and len(seen) == 1


def test_a_str_subclass_name_is_lowered_as_add_atom_does() -> None:
    class Name(str):
        pass

    t = Kwargs(Name("sub"), requires=["x"])
    (spec,) = lower(linear_flow.Flow("f").add(t)).spec_atoms
    assert spec == _reference([t])[0] and spec[0] == "sub"


def test_common_atoms_take_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    general = _Lowering.add_atom

    def add_atom(self: _Lowering, atom: Any, kind: int) -> int:
        called.append(atom.name)
        return general(self, atom, kind)

    monkeypatch.setattr(_Lowering, "add_atom", add_atom)
    atoms = _atoms()
    lower(linear_flow.Flow("f").add(*atoms))
    # (what the loop leaves to add_atom: arguments beyond names, a name property, mappings assigned
    # or made by a read)
    assert called == [
        "named",
        "named-requires",
        "rebound",
        "injected",
        "injected-kwargs",
        "reverting",
        "from-property",
        "assigned",
        "read",
        "made-provides",
    ]


def test_past_the_shared_lists_cap_specs_are_still_add_atoms(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the lists the lowering shares are capped: past the cap each atom gets its own, equal ones)
    monkeypatch.setattr("ferroflow._lower._SHARED_LISTS_MAX", 8)
    atoms = [Kwargs(f"t{i}", requires=[f"x{i % 20}"], provides=f"p{i}") for i in range(50)]
    atoms += [Kwargs(f"u{i}", requires=[f"y{i}", "z", f"y{i}"]) for i in range(20)]
    lowered = lower(linear_flow.Flow("f").add(*atoms))
    assert lowered.spec_atoms == _reference(atoms)
    assert lowered.atoms == atoms


def test_an_error_raised_while_reading_an_atom_reaches_the_caller() -> None:
    class BadVersion(task.Task):
        @property
        def version(self) -> Any:
            raise RuntimeError("version unreadable")

        def execute(self, **inputs: Any) -> int:
            return 1

    with pytest.raises(RuntimeError, match="version unreadable"):
        lower(linear_flow.Flow("f").add(Kwargs("a"), BadVersion("b", requires=["x"])))


@pytest.mark.parametrize("make", [lambda t: linear_flow.Flow("f").add(t), lambda t: t])
def test_a_name_that_is_not_text_is_refused_naming_it(make: Any) -> None:
    """A lone surrogate can be in a Python string but in no store: the lowering refuses the atom
    (the loop leaves it to add_atom, which reports it), naming it and what to do."""
    with pytest.raises(ValueError, match=r"atom name 'bad-\\udc80-name' is not valid text .*rename the atom"):
        lower(make(Kwargs("bad-\udc80-name", requires=["x"])))


@pytest.mark.parametrize(
    ("atoms", "error", "says"),
    [
        ([("a", 0, "1.0")], ValueError, "a lowered atom has 9 fields, got 3"),
        ([("a", 7, "1.0", 0, [], [], [], [], [])], ValueError, "atom 'a': unknown atom kind code 7"),
        ([("a", 0, "1.0", 0, ["x", 3], [], [], [], [])], TypeError, "str"),
        # (a str is a sequence of names of one letter each to Python: refused, not taken so)
        ([("a", 0, "1.0", 0, "xy", [], [], [], [])], TypeError, "names must be a sequence of str, not a str"),
        ([("a", 0, 1.0, 0, [], [], [], [], [])], TypeError, "str"),
        ([["a", 0, "1.0", 0, [], [], [], [], []]], TypeError, "a lowered atom must be a tuple"),
        ("not atoms", TypeError, "extract `str`"),
    ],
)
def test_the_compiler_refuses_malformed_lowered_atoms_clearly(atoms: Any, error: type, says: str) -> None:
    """What the compiler reads from Python is checked field by field: a bad spec is an exception
    naming what is wrong, never a crash."""
    from ferroflow import _core

    with pytest.raises(error, match=says):
        _core.compile(atoms, ("atom", 0))


def test_names_may_come_as_tuples_as_well_as_lists() -> None:
    from ferroflow import _core

    compiled = _core.compile(
        [("a", 0, "1.0", 0, (), [], [], [], ("x",)), ("b", 0, "1.0", 0, ("x",), (), (), (), [])],
        ("flow", "f", 0, None, [("atom", 0), ("atom", 1)], []),
    )
    assert compiled.providers(1) == [0]
