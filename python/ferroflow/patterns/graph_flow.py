"""A flow ordered by a dependency graph (``taskflow.patterns.graph_flow``).

``add()`` links each producer of a symbol to its consumers, as TaskFlow does, but incrementally: two
dict indexes (symbol -> providers, symbol -> children still waiting for a provider) replace TaskFlow's
rescan of the whole graph on every call, so adding N children costs O(N) whether they come in one
``add()`` or in N. Cycle checks search only the part of the graph between the two ends of a new link.

Differences from TaskFlow (all in cases where TaskFlow misbehaves):

- The flow's own retry is never linked as a consumer of its children (TaskFlow put the retry into the
  graph as a node, which cannot compile); its requirements still count in :attr:`Flow.requires`.
- The same object given twice to one ``add()`` is added once (TaskFlow counted it as two providers).
- The ``requires``/``provides`` of a nested flow are read when it is added; later changes inside it do
  not re-link this graph.
- ``add()`` rejects unknown keyword arguments (TaskFlow ignored them), and cycle errors name the link
  that closes the cycle.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ferroflow import deciders as de
from ferroflow import exceptions as exc
from ferroflow import flow
from ferroflow.atom import provided_names, required_names

if TYPE_CHECKING:
    from ferroflow.retry import Retry


def _cycle_error(u: Any, v: Any) -> exc.DependencyFailure:
    """TaskFlow's message for a cyclic graph, plus the link that closes the cycle."""
    return exc.DependencyFailure(
        "No path through the node(s) in the graph produces an ordering that will allow for logical edge"
        f" traversal (linking '{getattr(u, 'name', u)}' -> '{getattr(v, 'name', v)}' closes a cycle)"
    )


# add() calls with at least this many nodes run with the garbage collector paused (see flow.paused_gc).
_BIG_ADD = 1000


class _Journal:
    """What one ``add()`` changed, so that a failing call leaves the flow untouched."""

    __slots__ = ("edges", "first_position", "provided", "resolved", "unresolved")

    def __init__(self, first_position: int) -> None:
        self.first_position = first_position
        self.edges: list[tuple[int, int]] = []
        self.provided: list[str] = []
        self.unresolved: list[tuple[str, int]] = []
        self.resolved: list[tuple[str, int]] = []


class Flow(flow.Flow):
    """Children run in an order given by links: inferred from ``requires``/``provides`` on :meth:`add`,
    or made by hand with :meth:`link`. A link ``u -> v`` means ``v`` runs after ``u`` (and is reverted
    before it). Cycles are rejected. Iteration is in topological order.
    """

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        super().__init__(name, retry)
        self._nodes: list[Any] = []  # position -> child, in insertion order
        self._position: dict[Any, int] = {}
        # position -> {successor: link meta}; the meta of a link inferred from one symbol is kept as just
        # that symbol (most links are; a dict and a set per link would double the graph's memory) and
        # made into its dict when read (iter_links) or changed.
        self._succ: list[dict[int, dict[str, Any] | str]] = []
        self._pred: list[list[int]] = []  # position -> predecessors, in link order
        # (u, v) of every link, in the order made, flat (u0, v0, u1, v1, ...); and whether every link's
        # meta is still its one symbol. While it is, the compiler takes the links from the log
        # (`_core.logged_graph_links`) without visiting 100,000 successor dicts.
        self._link_log = array("I")
        self._plain_links = True
        # symbol -> its provider, or (several) its providers in insertion order: most symbols have one,
        # and a list each would cost 10 MB per 100,000 children.
        self._provided: dict[str, int | list[int]] = {}
        # symbol -> children that needed it and got no link for it. May keep children that have since
        # gained a providing ancestor; _forget_satisfied() drops those when it matters.
        self._unresolved: dict[str, set[int]] = {}
        self._filtered_at: dict[str, int] = {}  # symbol -> _version of its last _forget_satisfied()
        self._version = 0  # bumped on every change of nodes or links
        self._topo: tuple[int, list[int]] | None = None  # (version, order)
        self._retry_provides = frozenset(retry.provides) if retry is not None else frozenset()

    # -- building -------------------------------------------------------------------------------------

    def add(self, *nodes: Any, resolve_requires: bool = True, resolve_existing: bool = True) -> Flow:
        """Adds atoms and/or flows, linking them to the existing children.

        :param resolve_requires: link each new node from the (single) provider of each symbol it
            requires; several providers raise :class:`~ferroflow.exceptions.AmbiguousDependency`.
        :param resolve_existing: link each new node to the children still waiting for a symbol it
            provides.
        :raises ~ferroflow.exceptions.DependencyFailure: the links would form a cycle.

        On an error nothing is added.
        """
        fresh: dict[Any, None] = {}
        for node in nodes:
            if node not in self._position:
                fresh.setdefault(node, None)
        if not fresh:
            return self
        plans = [(node, required_names(node), provided_names(node)) for node in fresh]
        if resolve_existing and self._unresolved:
            # Waiting lists must reflect the graph as it was before this call (TaskFlow's semantics).
            unresolved = self._unresolved
            for symbol in {s for _node, _requires, provides in plans for s in provides if s in unresolved}:
                self._forget_satisfied(symbol)

        if len(plans) >= _BIG_ADD:
            with flow.paused_gc():
                return self._add_planned(plans, resolve_requires, resolve_existing)
        return self._add_planned(plans, resolve_requires, resolve_existing)

    def _add_planned(
        self, plans: list[tuple[Any, tuple[str, ...], tuple[str, ...]]], resolve_requires: bool, resolve_existing: bool
    ) -> Flow:
        journal = _Journal(len(self._nodes))
        deferred: list[tuple[int, Sequence[str]]] = []
        # The first link found to close a cycle; as in TaskFlow, reported after ambiguity errors.
        cycle: tuple[int, int] | None = None
        nodes, node_position, succ, pred = self._nodes, self._position, self._succ, self._pred
        provided, unresolved, retry_provides = self._provided, self._unresolved, self._retry_provides
        journal_provided, journal_unresolved = journal.provided, journal.unresolved
        try:
            for node, requires, provides in plans:
                position = len(nodes)
                nodes.append(node)
                node_position[node] = position
                succ.append({})
                pred.append([])
                needs = [s for s in requires if s not in retry_provides] if retry_provides else requires
                if resolve_requires:
                    for symbol in needs:
                        providers = provided.get(symbol)
                        if providers is None:
                            unresolved.setdefault(symbol, set()).add(position)
                            journal_unresolved.append((symbol, position))
                        elif type(providers) is int:
                            self._link_inferred(providers, position, symbol, journal)
                        elif len(providers) > 1:
                            names = sorted(nodes[p].name for p in providers)
                            raise exc.AmbiguousDependency(
                                f"Resolution error detected when adding '{node.name}', multiple providers"
                                f" {names} found for required symbol '{symbol}'"
                            )
                        else:
                            self._link_inferred(providers[0], position, symbol, journal)
                elif needs:
                    # Not resolved now; later add() calls see them as waiting (as in TaskFlow).
                    deferred.append((position, needs))
                for symbol in provides:
                    providers = provided.get(symbol)
                    if providers is None:
                        provided[symbol] = position
                    elif type(providers) is int:
                        provided[symbol] = [providers, position]
                    else:
                        providers.append(position)
                    journal_provided.append(symbol)
                    if not resolve_existing:
                        continue
                    waiting = unresolved.get(symbol)
                    if not waiting:
                        continue
                    # TaskFlow links waiting children in insertion order, which is position order.
                    for requiree in sorted(waiting):
                        if requiree == position:
                            continue
                        if cycle is None and requiree not in succ[position]:
                            if self._reaches(requiree, position):
                                cycle = (position, requiree)
                        self._link_inferred(position, requiree, symbol, journal)
                        waiting.discard(requiree)
                        journal.resolved.append((symbol, requiree))
                    if not waiting:
                        del unresolved[symbol]
            if cycle is not None:
                raise _cycle_error(self._nodes[cycle[0]], self._nodes[cycle[1]])
        except BaseException:
            self._rollback(journal)
            raise
        for position, needs in deferred:
            for symbol in needs:
                self._unresolved.setdefault(symbol, set()).add(position)
        if journal.edges:  # (logged once the add stands: a rolled-back one logs nothing)
            self._link_log.extend(itertools.chain.from_iterable(journal.edges))
        self._version += 1
        return self

    def link(
        self,
        u: Any,
        v: Any,
        decider: Callable[..., bool] | None = None,
        decider_depth: de.Depth | str | None = None,
    ) -> Flow:
        """Makes existing child ``v`` run after existing child ``u``.

        :param decider: called at run time as ``decider(history={u atom name: result, ...})``; when it
            returns False, ``v`` (and more, per ``decider_depth``) is ignored instead of run.
        :param decider_depth: a :class:`~ferroflow.deciders.Depth` (or its name); needs a ``decider``.
            Without one, the engine applies :attr:`~ferroflow.deciders.Depth.ALL`.
        :raises ValueError: ``u`` or ``v`` is not in the flow, or the decider arguments are invalid.
        :raises ~ferroflow.exceptions.DependencyFailure: the link would form a cycle.
        """
        if u not in self._position:
            raise ValueError(f"Node '{u}' not found to link from")
        if v not in self._position:
            raise ValueError(f"Node '{v}' not found to link to")
        if decider is not None and not callable(decider):
            raise ValueError("Decider boolean callback must be callable")
        if decider_depth is not None:
            if decider is None:
                raise ValueError("Decider depth requires a decider to be provided along with it")
            decider_depth = de.Depth.translate(decider_depth)
        pu, pv = self._position[u], self._position[v]
        meta = self._link_meta(pu, pv)
        if meta is None:
            if self._reaches(pv, pu):
                raise _cycle_error(u, v)
            meta = self._succ[pu][pv] = {}
            self._pred[pv].append(pu)
            self._link_log.extend((pu, pv))
        self._plain_links = False
        if decider is not None:
            meta[flow.LINK_DECIDER] = decider
            meta.pop(flow.LINK_DECIDER_DEPTH, None)
        if decider_depth is not None:
            meta[flow.LINK_DECIDER_DEPTH] = decider_depth
        meta[flow.LINK_MANUAL] = True
        self._version += 1
        return self

    def _link_inferred(self, u: int, v: int, symbol: str, journal: _Journal) -> None:
        successors = self._succ[u]
        meta = successors.get(v)
        if meta is None:
            # (a str symbol is the compact form of {LINK_REASONS: {symbol}}: see _succ)
            if type(symbol) is str:
                successors[v] = symbol
            else:
                successors[v] = {flow.LINK_REASONS: {symbol}}
                self._plain_links = False
            self._pred[v].append(u)
            journal.edges.append((u, v))
        elif type(meta) is str:
            if meta != symbol:
                successors[v] = {flow.LINK_REASONS: {meta, symbol}}
                self._plain_links = False
        else:
            meta.setdefault(flow.LINK_REASONS, set()).add(symbol)

    def _link_meta(self, u: int, v: int) -> dict[str, Any] | None:
        """The metadata dict of link ``u -> v`` (made from its compact form if needed), or ``None``."""
        successors = self._succ[u]
        meta = successors.get(v)
        if type(meta) is str:
            meta = successors[v] = {flow.LINK_REASONS: {meta}}
            self._plain_links = False
        return meta

    def _rollback(self, journal: _Journal) -> None:
        for u, v in reversed(journal.edges):
            del self._succ[u][v]
            self._pred[v].pop()
        for symbol, position in reversed(journal.resolved):
            self._unresolved.setdefault(symbol, set()).add(position)
        for symbol, position in reversed(journal.unresolved):
            waiting = self._unresolved.get(symbol)
            if waiting is not None:
                waiting.discard(position)
                if not waiting:
                    del self._unresolved[symbol]
        for symbol in reversed(journal.provided):
            providers = self._provided[symbol]
            if type(providers) is int:
                del self._provided[symbol]
            else:
                providers.pop()  # (a list holds two or more: one is left at least)
                if len(providers) == 1:
                    self._provided[symbol] = providers[0]
        first = journal.first_position
        for node in self._nodes[first:]:
            del self._position[node]
        del self._nodes[first:]
        del self._succ[first:]
        del self._pred[first:]

    # -- graph queries --------------------------------------------------------------------------------

    def _reaches(self, source: int, target: int) -> bool:
        """True if a path leads from ``source`` to ``target``.

        Searches forward from ``source`` and backward from ``target`` at once, always widening the frontier
        with fewer links to follow, so the cost follows the smaller side (new children usually have few
        links); a side with nothing left to follow proves there is no path.
        """
        if source == target:
            return True
        succ, pred = self._succ, self._pred
        forward_seen, backward_seen = {source}, {target}
        forward, backward = [source], [target]
        forward_cost, backward_cost = len(succ[source]), len(pred[target])
        while forward_cost and backward_cost:
            if forward_cost <= backward_cost:
                frontier: list[int] = []
                for n in forward:
                    for m in succ[n]:
                        if m in backward_seen:
                            return True
                        if m not in forward_seen:
                            forward_seen.add(m)
                            frontier.append(m)
                forward = frontier
                forward_cost = sum(len(succ[n]) for n in forward)
            else:
                frontier = []
                for n in backward:
                    for m in pred[n]:
                        if m in forward_seen:
                            return True
                        if m not in backward_seen:
                            backward_seen.add(m)
                            frontier.append(m)
                backward = frontier
                backward_cost = sum(len(pred[n]) for n in backward)
        return False

    def _forget_satisfied(self, symbol: str) -> None:
        """Drops from the waiting list of ``symbol`` the children that have a providing ancestor.

        Only needed after ``resolve_existing=False``/``resolve_requires=False`` or manual links left a
        provider and a waiting child unlinked; remembered per graph version so it is not repeated.
        """
        waiting = self._unresolved.get(symbol)
        providers = self._provided.get(symbol)
        if not waiting or providers is None or self._filtered_at.get(symbol) == self._version:
            return
        succ = self._succ
        reached: set[int] = set()
        stack = [m for p in ((providers,) if type(providers) is int else providers) for m in succ[p]]
        while stack:
            n = stack.pop()
            if n not in reached:
                reached.add(n)
                stack.extend(succ[n])
        waiting.difference_update(reached)
        if not waiting:
            del self._unresolved[symbol]
        self._filtered_at[symbol] = self._version

    def _topological_order(self) -> list[int]:
        """Positions in topological order: Kahn's algorithm by generations, children taken in insertion
        and link order (the order networkx, hence TaskFlow, yields)."""
        if self._topo is not None and self._topo[0] == self._version:
            return self._topo[1]
        indegree = [len(p) for p in self._pred]
        generation = [n for n, d in enumerate(indegree) if d == 0]
        order: list[int] = []
        succ = self._succ
        while generation:
            order.extend(generation)
            following = []
            for n in generation:
                for m in succ[n]:
                    indegree[m] -= 1
                    if indegree[m] == 0:
                        following.append(m)
            generation = following
        self._topo = (self._version, order)
        return order

    def _members(self) -> set[int] | None:
        """Positions of the children that take part in a run (``None`` = all)."""
        return None

    # -- the Flow interface ---------------------------------------------------------------------------

    def __len__(self) -> int:
        members = self._members()
        return len(self._nodes) if members is None else len(members)

    def __iter__(self) -> Iterator[Any]:
        for node, _meta in self.iter_nodes():
            yield node

    def iter_nodes(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields ``(child, {})`` in topological order."""
        members = self._members()
        nodes = self._nodes
        for n in self._topological_order():
            if members is None or n in members:
                yield nodes[n], {}

    def iter_links(self) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
        """Yields ``(u, v, meta)`` ordered by ``u``'s then ``v``'s insertion; ``meta`` may hold
        ``reasons`` (inferred links), ``manual``, ``decider`` and ``decider_depth``."""
        members = self._members()
        nodes = self._nodes
        for u, successors in enumerate(self._succ):
            if members is not None and u not in members:
                continue
            for v, meta in successors.items():
                if members is None or v in members:
                    if type(meta) is str:
                        meta = self._link_meta(u, v)  # (replaces a value: iterating goes on)
                    yield nodes[u], nodes[v], meta

    @property
    def requires(self) -> frozenset[str]:
        """Names needed by the retry, or by a child with no ancestor (nor the retry) providing them."""
        requires: set[str] = set(self._retry.requires) if self._retry is not None else set()
        members = self._members()
        for symbol in list(self._unresolved):
            self._forget_satisfied(symbol)
            waiting = self._unresolved.get(symbol)
            if waiting and (members is None or not waiting.isdisjoint(members)):
                requires.add(symbol)
        return frozenset(requires)


class TargetedFlow(Flow):
    """A graph flow that can be limited to one target child and what it depends on."""

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        super().__init__(name, retry)
        self._target: Any = None
        self._target_members: tuple[int, Any, set[int]] | None = None  # (version, target, members)

    def set_target(self, target_node: Any) -> None:
        """Runs only ``target_node`` and its (transitive) predecessors.

        :raises ValueError: ``target_node`` is not in the flow.
        """
        if target_node not in self._position:
            raise ValueError(f"Node '{target_node}' not found")
        self._target = target_node
        self._target_members = None

    def reset_target(self) -> None:
        """Runs every child again."""
        self._target = None
        self._target_members = None

    def _members(self) -> set[int] | None:
        if self._target is None:
            return None
        cached = self._target_members
        if cached is not None and cached[0] == self._version and cached[1] is self._target:
            return cached[2]
        start = self._position[self._target]
        members = {start}
        stack = [start]
        pred = self._pred
        while stack:
            for m in pred[stack.pop()]:
                if m not in members:
                    members.add(m)
                    stack.append(m)
        self._target_members = (self._version, self._target, members)
        return members
