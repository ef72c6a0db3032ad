"""Failure formatting with context from the engine (``taskflow.formatters``).

`FailureFormatter` turns a failure of an atom into ``(exc_info, details)`` for logging: ``details`` lists
the failed atom's predecessors in the execution graph, as a tree (each atom's own predecessors below it),
with each one's state, intention, the arguments it required and the result it provided. Values under
masked keys are shown as ``'***'``.

Differences from TaskFlow, on purpose:

- ferroflow's execution graph links atoms directly (flows leave no nodes in it), so the tree holds atoms
  only; TaskFlow also shows ``Flow '<name>'`` nodes (and, quirkily, skips atoms that end a sub-flow).
- The tree is cut after ``max_predecessors`` nodes (breadth first, so direct predecessors come first) and
  says so on a last line: a shared ancestor appears under each of its descendants, which on big graphs
  would make the text grow without bound.
- Masking also reaches into tuples (TaskFlow masks dicts and lists only).

As in TaskFlow, the tree is shown only while the atom's intention is EXECUTE (so for an execute failure
formatted as it is notified, not for a revert failure, nor after the flow has reverted).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Any

from ferroflow import exceptions, states
from ferroflow.types.failure import Failure

#: Shown instead of a masked value.
MASK = "***"
#: Default cap on the number of tree nodes rendered.
DEFAULT_MAX_PREDECESSORS = 100

_EMPTY_SPACE = " "
_VERTICAL = "|"
_HORIZONTAL = "__"
_STARTING_PREFIX = "  "
#: What a storage lookup may raise when the value is not there (TaskFlow's formatter skips the entry).
_LOOKUP_ERRORS = (exceptions.NotFound, exceptions.StorageFailure)


class AtomNode:
    """What an atom matcher is called with: the atom as ``item`` (TaskFlow passes compilation tree nodes
    with ``item`` and ``metadata['kind']``)."""

    __slots__ = ("index", "item", "metadata")

    def __init__(self, index: int, item: Any, kind: str) -> None:
        self.index = index
        self.item = item
        self.metadata = {"kind": kind}


class _Tree:
    """A node of the predecessor tree: an atom index and the trees of its predecessors."""

    __slots__ = ("children", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.children: list[_Tree] = []


class _Graph:
    """Predecessors and names of a compilation's atoms (built once: O(atoms + edges))."""

    def __init__(self, compilation: Any) -> None:
        self.compilation = compilation
        atoms = compilation.atoms
        self.predecessors: list[list[int]] = [[] for _ in atoms]
        for source, target in compilation.compiled.atom_edges():
            self.predecessors[target].append(source)
        self.index_by_name = {atom.name: i for i, atom in enumerate(atoms)}


def mask_keys(data: Any, mask: Collection[str]) -> Any:
    """A copy of ``data`` where the value of every dict key in ``mask`` (at any depth, through dicts,
    lists and tuples) is replaced by ``'***'``; other values are returned as they are."""
    if isinstance(data, dict):
        return {k: MASK if k in mask else mask_keys(v, mask) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_keys(item, mask) for item in data]
    if isinstance(data, tuple):
        return tuple(mask_keys(item, mask) for item in data)
    return data


class FailureFormatter:
    """Formats a failure and connects it to the failed atom and its predecessors in the engine.

    :param engine: the engine that ran the atom (its ``storage`` and ``compilation`` are read).
    :param hide_inputs_outputs_of: atom names whose requires and provides are never shown.
    :param mask_inputs_keys: keys whose values are shown as ``'***'`` in requires.
    :param mask_outputs_keys: keys whose values are shown as ``'***'`` in provides.
    :param max_predecessors: most tree nodes to show (a ferroflow addition; see the module docstring).
    """

    def __init__(
        self,
        engine: Any,
        hide_inputs_outputs_of: Iterable[str] = (),
        mask_inputs_keys: Iterable[str] = (),
        mask_outputs_keys: Iterable[str] = (),
        *,
        max_predecessors: int = DEFAULT_MAX_PREDECESSORS,
    ) -> None:
        self._engine = engine
        self._hide_inputs_outputs_of = frozenset(hide_inputs_outputs_of)
        self._mask_inputs_keys = frozenset(mask_inputs_keys)
        self._mask_outputs_keys = frozenset(mask_outputs_keys)
        self._max_predecessors = max(0, int(max_predecessors))
        self._graph: _Graph | None = None

    @staticmethod
    def _mask_keys(data: Any, mask: Iterable[str]) -> Any:
        """TaskFlow's name for `mask_keys` (its tests call it on a formatter)."""
        return mask_keys(data, frozenset(mask))

    def format(self, fail: Failure, atom_matcher: Callable[[Any], bool]) -> tuple[Any, str]:
        """Returns ``(exc_info, details)`` about ``fail``.

        ``exc_info`` is the failure's ``(type, value, traceback)`` (None for a failure loaded from
        storage, whose traceback text then starts ``details``). ``details`` holds the predecessor tree of
        the atom ``atom_matcher`` accepts while that atom's intention is EXECUTE; it may be empty.
        """
        lines: list[str] = []
        if fail.exc_info is None:
            lines.append(fail.pformat(traceback=True) + os.linesep)
        storage = getattr(self._engine, "storage", None)
        try:
            compilation = self._engine.compilation
        except (exceptions.InvalidState, AttributeError):  # not compiled yet (or not an engine): no context
            compilation = None
        if storage is None or compilation is None:
            return fail.exc_info, "".join(lines)
        graph = self._graph_of(compilation)
        index = self._find_atom(graph, atom_matcher)
        if index is not None and _intention(storage, compilation.atoms[index].name) == states.EXECUTE:
            lines.append(self._predecessors_text(graph, storage, index))
        return fail.exc_info, "".join(lines)

    # -- locating the atom ----------------------------------------------------------------------
    def _graph_of(self, compilation: Any) -> _Graph:
        if self._graph is None or self._graph.compilation is not compilation:
            self._graph = _Graph(compilation)
        return self._graph

    @staticmethod
    def _node(compilation: Any, index: int) -> AtomNode:
        kind = "retry" if compilation.spec_atoms[index][1] == 1 else "task"
        return AtomNode(index, compilation.atoms[index], kind)

    def _find_atom(self, graph: _Graph, atom_matcher: Callable[[Any], bool]) -> int | None:
        """The index of the first atom the matcher accepts; a matcher naming its atom (``atom_name``,
        as the logging listener's do) is checked against that atom only."""
        compilation = graph.compilation
        name = getattr(atom_matcher, "atom_name", None)
        if name is not None:
            index = graph.index_by_name.get(name)
            if index is None or not atom_matcher(self._node(compilation, index)):
                return None
            return index
        for index in range(len(compilation.atoms)):
            if atom_matcher(self._node(compilation, index)):
                return index
        return None

    # -- the tree -------------------------------------------------------------------------------
    def _build_tree(self, graph: _Graph, index: int) -> tuple[_Tree, int, bool]:
        """The predecessor tree under ``index`` (breadth first, at most ``max_predecessors`` nodes);
        returns it, its node count and whether it was cut."""
        root = _Tree(index)
        budget = self._max_predecessors
        count = 0
        queue = deque([root])
        while queue:
            parent = queue.popleft()
            for pred in graph.predecessors[parent.index]:
                if count == budget:
                    return root, count, True
                child = _Tree(pred)
                parent.children.append(child)
                queue.append(child)
                count += 1
        return root, count, False

    def _predecessors_text(self, graph: _Graph, storage: Any, index: int) -> str:
        root, count, cut = self._build_tree(graph, index)
        cache: dict[int, str] = {}

        def label(node: _Tree) -> str:
            text = cache.get(node.index)
            if text is None:
                text = cache[node.index] = self._format_atom(storage, graph.compilation.atoms[node.index])
            return text

        lines = [f"{count} predecessors (most recent first):"]
        for child in root.children:
            lines.extend(_render(child, label))
        if cut:
            lines.append(f"{_STARTING_PREFIX}... (more predecessors not shown: limit of {count} reached)")
        return os.linesep.join(lines)

    def _format_atom(self, storage: Any, atom: Any) -> str:
        """``Atom '<name>' {'intention': ..., 'state': ..., 'requires': ..., 'provides': ...}`` with the
        entries that could be found."""
        name = atom.name
        attrs: dict[str, Any] = {}
        for key, getter in (("intention", storage.get_atom_intention), ("state", storage.get_atom_state)):
            try:
                attrs[key] = getter(name)
            except _LOOKUP_ERRORS:
                pass
        if name not in self._hide_inputs_outputs_of:
            try:
                attrs["requires"] = mask_keys(_mapped_args(storage, atom), self._mask_inputs_keys)
            except _LOOKUP_ERRORS:
                pass
            try:
                attrs["provides"] = mask_keys(storage.get_execute_result(name), self._mask_outputs_keys)
            except _LOOKUP_ERRORS:
                pass
        return f"Atom '{name}' {attrs}" if attrs else f"Atom '{name}'"


def _intention(storage: Any, name: str) -> str | None:
    try:
        return storage.get_atom_intention(name)
    except _LOOKUP_ERRORS:
        return None


def _mapped_args(storage: Any, atom: Any) -> dict[str, Any]:
    """The arguments ``atom.execute`` takes, as far as storage holds them now; raises NotFound when a
    required one has no value. Uses TaskFlow's ``Storage.fetch_mapped_args`` when storage has it."""
    fetch_mapped_args = getattr(storage, "fetch_mapped_args", None)
    if fetch_mapped_args is not None:
        return fetch_mapped_args(atom.rebind, atom_name=atom.name, optional_args=atom.optional)
    injected = storage.atom_injected(atom.name)
    optional = atom.optional
    mapped: dict[str, Any] = {}
    for arg, name in atom.rebind.items():
        if name in injected:
            mapped[arg] = injected[name]
            continue
        try:
            mapped[arg] = storage.fetch(name)
        except exceptions.NotFound:
            if arg not in optional:
                raise
    return mapped


def _render(top: _Tree, label: Callable[[_Tree], str]) -> list[str]:
    """TaskFlow's tree layout: ``top`` at the starting prefix, each child on ``|__`` under its parent,
    a ``|`` column continuing down while that parent has later children."""
    lines = [_STARTING_PREFIX + label(top)]
    connector = _VERTICAL + _HORIZONTAL
    # (node, the columns its ancestors below `top` draw, whether it is its parent's last child)
    stack = [(child, "", child is top.children[-1]) for child in reversed(top.children)]
    while stack:
        node, columns, is_last = stack.pop()
        lines.append(_STARTING_PREFIX + columns + connector + label(node))
        below = columns + (_EMPTY_SPACE * len(connector) if is_last else _VERTICAL + _EMPTY_SPACE * len(_HORIZONTAL))
        last = node.children[-1] if node.children else None
        stack.extend((child, below, child is last) for child in reversed(node.children))
    return lines


__all__ = ["MASK", "AtomNode", "FailureFormatter", "mask_keys"]
