"""Lowering: a flow (the pattern tree of user objects) -> plain data for the Rust compiler.

One pass over the tree, with an explicit stack (nesting depth is not limited by Python's recursion
limit). The output refers to atoms by their index in ``LoweredFlow.atoms``, numbered in pre-order: a
flow's retry, then its children in iteration order (depth first).

``spec_atoms`` is a ``_core.AtomSpecs``: the atoms' specs, held in Rust (the compiler takes them
from there without reading Python objects; Python reads one field for many atoms with its methods).
``spec_atoms[i]`` is the tuple ``(name, kind, version, priority, requires, optional, revert_requires,
revert_optional, provides)``, made when it is read:

- ``kind``: :data:`KIND_TASK` (0) or :data:`KIND_RETRY` (1);
- ``version``: the atom's version string (``"1.0"``; ``""`` when the version is ``None``);
- ``requires`` / ``optional``: storage names (rebind applied, injected names removed) of the required /
  optional arguments of ``execute``; ``revert_requires`` / ``revert_optional`` the same for ``revert``;
- ``provides``: ``list(atom.provides)``.

``root`` is ``("atom", index)`` (a single task as the whole flow) or
``("flow", name, pattern, retry_index | None, children, links)`` with ``pattern`` one of
:data:`PATTERN_LINEAR` (0), :data:`PATTERN_UNORDERED` (1), :data:`PATTERN_GRAPH` (2) (also used for flow
classes other than ferroflow's patterns, through their ``iter_links()``), ``children`` a list of nodes
(a child atom is its index alone),
and ``links`` (graph flows only, empty otherwise) a list of ``(from_child, to_child, manual, decider_id,
depth)``: positions in ``children``, whether the link was made by hand, an index into
``LoweredFlow.deciders`` or ``None``, and the decider depth code (:data:`DEPTH_CODES`; ``ALL`` when the
link has no depth). A graph flow whose children are all its nodes gives its links as a
``_core.GraphLinks`` instead, read from its adjacency lists in Rust (`link_tuples` lists either form).

Errors are TaskFlow's compile errors: the same object twice (or a flow inside itself) is a
``ValueError``; an object that is not a Task or Flow where one is expected (including a Retry as the
root or as a child) is a ``TypeError``. Duplicate atom *names* are left to the Rust compiler; the
reserved name `RESERVED_NAME` is a ``CompilationFailure``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ferroflow import _core, exceptions
from ferroflow import deciders as de
from ferroflow import flow as flow_mod
from ferroflow.atom import (
    _ARG_ATTRS,
    _MAPPING_ATTRS,
    Atom,
    _LazyMappings,
    get_version_string,
    lazy_arg_names,
    provided_names,
    spec_names,
)
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow
from ferroflow.persistence.models import INJECTOR_NAME
from ferroflow.retry import Retry
from ferroflow.task import Task
from ferroflow.types.sets import OrderedSet

KIND_TASK = 0
KIND_RETRY = 1

#: The name no atom may have: TaskFlow's pseudo atom detail holding a flow's ``store`` values.
RESERVED_NAME = INJECTOR_NAME

PATTERN_LINEAR = 0
PATTERN_UNORDERED = 1
PATTERN_GRAPH = 2

#: Decider depth -> code shared with the Rust compiler (its ``DeciderDepth``).
DEPTH_CODES: dict[de.Depth, int] = {
    de.Depth.ATOM: 0,
    de.Depth.NEIGHBORS: 1,
    de.Depth.FLOW: 2,
    de.Depth.ALL: 3,
}


class LoweredFlow(NamedTuple):
    """A flow as plain data (see the module docstring for the exact shapes)."""

    atoms: list[Atom]
    spec_atoms: _core.AtomSpecs
    root: tuple
    deciders: list[Callable[..., Any]]
    #: Each atom's result keys (see `result_key`), read while it was lowered.
    save_as: list[Any]


def lower(root: Any) -> LoweredFlow:
    """Lowers ``root`` (a Flow, or a single Task) in one pass.

    :raises TypeError: ``root`` (or something inside it) is neither a Task nor a Flow.
    :raises ValueError: an atom or flow object appears twice.
    """
    lowering = _Lowering()
    if isinstance(root, flow_mod.Flow):
        with flow_mod.paused_gc():
            node = lowering.lower_flow(root)
    elif isinstance(root, Task):
        node = ("atom", lowering.add_atom(root, KIND_TASK))
    else:
        raise _unknown(root)
    return LoweredFlow(lowering.atoms, lowering.spec_atoms, node, lowering.deciders, lowering.save_as)


def link_tuples(links: Any) -> list[tuple]:
    """A lowered flow node's links as tuples, whichever form they have (see the module docstring)."""
    return links if isinstance(links, list) else links.tuples()


def result_key(atom: Atom, whole: dict[str, Any]) -> Any:
    """An atom's ``save_as`` (storage name -> index or key into its result; None: the whole
    result), as the engine reads values out of results (``.get(name)`` only). An atom built with
    ``provides="name"`` whose mappings are not made yet gets ``whole``, an empty mapping whose
    ``.get`` is None for every name as its ``save_as``'s is (``{"name": None}``): making 100,000
    of those would cost more than the rest of a compile. (The lowering reads it for each atom:
    `LoweredFlow.save_as`; `_core.lower_plain_tasks` does the same for the atoms it takes.)"""
    state = getattr(atom, "__dict__", _NO_STATE)
    save_as = state.get("save_as")  # (made: as the constructor or a read left it)
    if save_as is None:
        save_as = whole if type(state.get("_lazy_provides")) is str else atom.save_as
    return save_as


_NO_STATE: dict[str, Any] = {}  # (an atom without an instance dict: read its attributes)


def _seen_twice(item: Any) -> ValueError:
    return ValueError(
        f"Already compiled item '{item}' ({type(item)}), duplicate and/or recursive compiling is not supported"
    )


def _unknown(item: Any) -> TypeError:
    return TypeError(f"Unknown object '{item}' ({type(item)}) requested to compile")


# Atoms share their mappings (see ferroflow.atom) and versions, so `add_atom` makes the name lists and
# version strings of its spec tuples once per lowering (the tuples are then copied into Rust): at most
# this many distinct ones are remembered, as flows of atoms that all differ gain nothing from it.
_SHARED_LISTS_MAX = 4096


class _Frame:
    """A flow being lowered: its children, the next one to visit, and the output built so far."""

    __slots__ = ("children", "flow", "links", "next", "nodes", "pattern", "retry_index")

    def __init__(self, flow: flow_mod.Flow, pattern: int, retry_index: int | None, children: list[Any]) -> None:
        self.flow = flow
        self.pattern = pattern
        self.retry_index = retry_index
        self.children = children
        self.next = 0
        self.nodes: list[Any] = []  # (an atom: its index; a flow: its tuple)
        self.links: Any = []  # (a list of link tuples, or `_core.GraphLinks`)


class _Lowering:
    def __init__(self) -> None:
        self.atoms: list[Atom] = []
        self.spec_atoms = _core.AtomSpecs()
        self.deciders: list[Callable[..., Any]] = []
        self.save_as: list[Any] = []  # (see result_key)
        self._whole: dict[str, Any] = {}  # (the one result key of atoms providing one name; only read)
        self._seen = _core.IdentitySet()  # every atom and flow visited (the tree keeps them alive)
        self._no_names: list[str] = []  # every empty list of the specs
        self._lists: dict[tuple[str, ...], list[str]] = {}  # see _as_list
        self._set_lists: dict[int, tuple[list[str], Any]] = {}  # see _set_list
        self._versions: dict[int, tuple[str, Any]] = {}  # id(version) -> (its string, it)
        self._names_only: dict[Any, bool] = {}  # class plan -> its atoms' names are their requires

    def _visit(self, item: Any) -> None:
        if not self._seen.add(item):
            raise _seen_twice(item)

    def add_atom(self, atom: Atom, kind: int) -> int:
        if not self._seen.add(atom):
            raise _seen_twice(atom)
        name = atom.name
        if type(name) is not str and not isinstance(name, str):
            raise TypeError(f"Atom name must be a string, not {name!r} ({type(name)})")
        if name == RESERVED_NAME:
            raise exceptions.CompilationFailure(
                f"Atom name {name!r} is reserved: the flow's store values are saved under it (as TaskFlow does), "
                "so a flow with an atom of that name could never be resumed; rename the atom"
            )
        set_lists = self._set_lists
        # The common case first: mappings the constructor assigned from its shared tuple, never
        # replaced, nothing injected: the atom needs only its requires. (Instance attributes are
        # read as attributes: cheaper than dict lookups. An atom whose mappings are not made yet
        # is not asked for them: reading one would make them.)
        state = getattr(atom, "__dict__", None)
        args = None if state is None or state.get("_lazy_args") is not None else atom._shared_args
        if (
            args is not None
            and args[5]
            and args[0] is atom.rebind
            and args[1] is atom.optional
            and args[2] is atom.revert_rebind
            and args[3] is atom.revert_optional
            and not atom.inject
        ):
            found = set_lists.get(id(args[4]))
            requires_list = revert_requires_list = found[0] if found is not None else self._set_list(args[4])
            optional_list = revert_optional_list = self._no_names
        else:
            requires_list, optional_list, revert_requires_list, revert_optional_list = self._arg_lists(atom)
        # ``provides`` as the constructor made it (usually a shared set), else as the atom gives it
        if state is not None and state.get("_lazy_provides") is not None:
            provided_list = self._as_list(provided_names(atom))
        else:
            provides = atom.provides
            found = set_lists.get(id(provides))
            provided_list = found[0] if found is not None else self._set_list(provides)
        # Atoms mostly share one version object (the class's ``(1, 0)``): one string per object.
        # (By identity: equal versions can print differently, as 1 and 1.0 do.)
        version = atom.version
        found = self._versions.get(id(version))
        version_text = found[0] if found is not None else self._version_text(atom, version)
        priority = atom.priority
        atoms = self.atoms
        self.spec_atoms.append(
            (
                name,
                kind,
                version_text,
                priority if type(priority) is int else int(priority),
                requires_list,
                optional_list,
                revert_requires_list,
                revert_optional_list,
                provided_list,
            )
        )
        atoms.append(atom)
        self.save_as.append(result_key(atom, self._whole))
        return len(atoms) - 1

    def _add_tasks(self, children: list[Any], position: int, nodes: list[Any], kinds: dict[type, int]) -> int:
        """Adds ``children[position:]`` as `add_atom` does, while they are tasks of a plain class (see
        `_plain_class`), and their nodes to ``nodes``; returns the position of the first child that
        is not. The common atoms (built with ``requires`` names alone, their mappings not made, or
        with their class's shared mappings; ``provides`` one name or shared; nothing injected) are
        read from their instance dicts in one Rust loop (``_core.lower_plain_tasks``, which pushes
        their specs to ``spec_atoms`` itself); it stops at any other, which takes `add_atom`."""
        count = len(children)
        while position < count:
            cls = type(children[position])
            kind = kinds.get(cls)
            if kind is None:
                kind = kinds[cls] = _child_kind(children[position])
            if kind != _CHILD_PLAIN_TASK:
                return position
            position = _core.lower_plain_tasks(self, children, position, cls, nodes, _ARG_ATTRS, RESERVED_NAME)
            if position < count and type(children[position]) is cls:  # (one the loop does not take)
                nodes.append(self.add_atom(children[position], KIND_TASK))
                position += 1
        return position

    def _version_text(self, atom: Atom, version: Any) -> str:
        """The version string of ``atom`` (whose ``version`` is ``version``), remembered by the version
        object's identity (atoms mostly share one: the class's ``(1, 0)``; equal versions can print
        differently, as 1 and 1.0 do)."""
        version_text = get_version_string(atom) or ""
        if len(self._versions) < _SHARED_LISTS_MAX:
            self._versions[id(version)] = (version_text, version)  # (keeps it alive: its id stays its own)
        return version_text

    def _arg_lists(self, atom: Atom) -> tuple[list[str], list[str], list[str], list[str]]:
        """``(requires, optional, revert_requires, revert_optional)`` of an atom whose mappings are
        not the constructor's shared ones (or not made yet)."""
        as_list, no_names = self._as_list, self._no_names
        # An atom built with the common arguments whose mappings were never read: its names, without
        # making the mappings (see ferroflow.atom.lazy_arg_names).
        lazy = lazy_arg_names(atom)
        if lazy is not None:
            requires_list = as_list(lazy[0])
            optional_list = as_list(lazy[1])
            return requires_list, optional_list, requires_list, optional_list
        inject = atom.inject
        rebind, optional, revert_rebind, revert_optional = (
            atom.rebind,
            atom.optional,
            atom.revert_rebind,
            atom.revert_optional,
        )
        args = atom._shared_args
        if (
            args is not None
            and args[5]
            and not inject
            and args[0] is rebind
            and args[1] is optional
            and args[2] is revert_rebind
            and args[3] is revert_optional
        ):
            requires_list = self._set_list(args[4])
            return requires_list, no_names, requires_list, no_names
        requires, optional_, revert_requires, revert_optional_ = spec_names(
            rebind, optional, revert_rebind, revert_optional, inject
        )
        requires_list = as_list(requires) if requires else no_names
        optional_list = as_list(optional_) if optional_ else no_names
        revert_requires_list = requires_list if revert_requires is requires else as_list(revert_requires)
        revert_optional_list = optional_list if revert_optional_ is optional_ else as_list(revert_optional_)
        return requires_list, optional_list, revert_requires_list, revert_optional_list

    def _as_list(self, names: tuple[str, ...]) -> list[str]:
        """``list(names)``, one list per distinct tuple (the spec lists are only read)."""
        if not names:
            return self._no_names
        lists = self._lists
        found = lists.get(names)
        if found is None:
            found = list(names)
            if len(lists) < _SHARED_LISTS_MAX:
                lists[names] = found
        return found

    def _set_list(self, names: Any) -> list[str]:
        """``list(names)`` for an atom's (usually shared) set of names: one list per set object,
        remembered by the object's id (``add_atom`` looks it up there first)."""
        found = self._set_lists.get(id(names))
        if found is not None:
            return found[0]
        data = names._data if type(names) is OrderedSet else names  # (same names, same order, no calls)
        made = list(data) if data else self._no_names
        if len(self._set_lists) < _SHARED_LISTS_MAX:
            self._set_lists[id(names)] = (made, names)  # (keeps `names` alive: its id stays its own)
        return made

    @staticmethod
    def _plain_class_value(cls: type, attr: str) -> Any:
        """``cls``'s own value of ``attr`` (found along its MRO, nothing called) when it is a plain
        value, not a descriptor; None otherwise (read the attribute as Python reads it).
        `_core.lower_plain_tasks` reads a plain task's ``version`` and ``priority`` through it."""
        value = _class_attribute(cls, attr)
        return None if hasattr(type(value), "__get__") else value

    def _open(self, flow: flow_mod.Flow) -> _Frame:
        self._visit(flow)
        retry = flow.retry
        retry_index = None
        if retry is not None:
            if not isinstance(retry, Retry):
                raise TypeError(f"Flow '{flow.name}' has a retry that is not a Retry: {retry!r} ({type(retry)})")
            retry_index = self.add_atom(retry, KIND_RETRY)
        children = _children_in_add_order(flow)
        if isinstance(flow, linear_flow.Flow):
            return _Frame(flow, PATTERN_LINEAR, retry_index, children)
        if isinstance(flow, unordered_flow.Flow):
            return _Frame(flow, PATTERN_UNORDERED, retry_index, children)
        # Graph flows, and flow classes other than ferroflow's patterns, are ordered by their links.
        frame = _Frame(flow, PATTERN_GRAPH, retry_index, children)
        frame.links = self._links(flow, children)
        return frame

    def _links(self, flow: flow_mod.Flow, children: list[Any]) -> Any:
        # (links refer to children by position in the order `_children_in_add_order` gives)
        if isinstance(flow, graph_flow.Flow):
            return self._graph_links(flow)
        position = {id(child): i for i, child in enumerate(children)}
        links = []
        for u, v, meta in flow.iter_links():
            try:
                from_child, to_child = position[id(u)], position[id(v)]
            except KeyError:
                raise ValueError(f"Flow '{flow.name}' links {u} -> {v}, which are not both its children") from None
            links.append(self._link(from_child, to_child, meta))
        return links

    def _link(self, from_child: int, to_child: int, meta: Mapping[str, Any]) -> tuple:
        decider = meta.get(flow_mod.LINK_DECIDER)
        decider_id = None
        if decider is not None:
            decider_id = len(self.deciders)
            self.deciders.append(decider)
        depth = meta.get(flow_mod.LINK_DECIDER_DEPTH)
        depth_code = DEPTH_CODES[de.Depth.ALL if depth is None else de.Depth.translate(depth)]
        return (from_child, to_child, bool(meta.get(flow_mod.LINK_MANUAL, False)), decider_id, depth_code)

    def _graph_links(self, flow: graph_flow.Flow) -> Any:
        """A graph flow's links read from its adjacency lists (what ``iter_links()`` yields, without
        making the dict of every link inferred from one symbol: those are plain links)."""
        members = flow._members()
        # position in flow._nodes -> position among the children (they are the members, in that order)
        rank = None if members is None else {n: i for i, n in enumerate(sorted(members))}
        if rank is None:  # (the common case: read in Rust, no tuple per link)
            # (no meta to read: the log has every link, in the order made; a flow unpickled from an
            # older ferroflow has no log)
            if getattr(flow, "_plain_links", False):
                return _core.logged_graph_links(flow._link_log, len(flow._nodes))
            return _core.graph_links(flow._succ, self._link)
        plain = DEPTH_CODES[de.Depth.ALL]
        links = []
        append = links.append
        for u, successors in enumerate(flow._succ):
            if u not in rank:
                continue
            from_child = rank[u]
            for v, meta in successors.items():
                if v not in rank:
                    continue
                to_child = rank[v]
                if type(meta) is str:
                    append((from_child, to_child, False, None, plain))
                else:
                    append(self._link(from_child, to_child, meta))
        return links

    def lower_flow(self, root: flow_mod.Flow) -> tuple:
        kinds: dict[type, int] = {}  # type of a child -> _CHILD_*
        add_atom = self.add_atom
        stack = [self._open(root)]
        while True:
            frame = stack[-1]
            children, nodes = frame.children, frame.nodes
            position, count = frame.next, len(frame.children)
            nested = None
            while position < count:
                child = children[position]
                kind = kinds.get(type(child))
                if kind is None:
                    kind = kinds[type(child)] = _child_kind(child)
                if kind == _CHILD_PLAIN_TASK:
                    position = self._add_tasks(children, position, nodes, kinds)
                    continue
                position += 1
                if kind == _CHILD_TASK:
                    nodes.append(add_atom(child, KIND_TASK))
                elif kind == _CHILD_FLOW:
                    nested = child
                    break
                else:
                    raise _unknown(child)
            frame.next = position
            if nested is not None:
                stack.append(self._open(nested))
                continue
            stack.pop()
            node = ("flow", frame.flow.name, frame.pattern, frame.retry_index, nodes, frame.links)
            if not stack:
                return node
            stack[-1].nodes.append(node)


#: Kinds of child, by type: a task whose class reads its mapping attributes (and name) from the
#: instance as `Atom` does (`_Lowering._add_tasks` reads them there), another task, a flow, neither.
_CHILD_PLAIN_TASK, _CHILD_TASK, _CHILD_FLOW, _CHILD_OTHER = 0, 1, 2, 3


def _child_kind(child: Any) -> int:
    if isinstance(child, flow_mod.Flow):
        return _CHILD_FLOW
    if isinstance(child, Task):
        return _CHILD_PLAIN_TASK if _plain_class(type(child)) else _CHILD_TASK
    return _CHILD_OTHER


def _plain_class(cls: type) -> bool:
    """Whether instances of ``cls`` keep ``name``, ``inject`` and the mapping attributes in their
    ``__dict__`` (the mappings: or not made yet), as `Atom` does: no property, slot or attribute
    hook of a subclass changes how they read."""
    if cls.__getattribute__ is not object.__getattribute__:
        return False
    for attr in (*_MAPPING_ATTRS, "_shared_args"):
        if type(_class_attribute(cls, attr)) is not _LazyMappings:
            return False
    for attr in ("name", "inject"):
        kind = type(_class_attribute(cls, attr))
        if hasattr(kind, "__set__") or hasattr(kind, "__delete__"):  # (a data descriptor wins over the dict)
            return False
    return True


def _class_attribute(cls: type, attr: str) -> Any:
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return klass.__dict__[attr]
    return None


def _children_in_add_order(flow: flow_mod.Flow) -> list[Any]:
    """A flow's children as they were added.

    The compiler needs a graph flow's add order (not its topological iteration order): TaskFlow
    resolves each requirement among the providers added *before* the requirer, so the same set of
    children can be ambiguous or not depending on that order. It rebuilds the iteration order itself.
    """
    if isinstance(flow, graph_flow.Flow):
        members = flow._members()
        if members is None:
            return list(flow._nodes)
        return [node for i, node in enumerate(flow._nodes) if i in members]
    return list(flow)
