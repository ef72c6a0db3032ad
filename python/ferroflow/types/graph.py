"""A small directed graph (TaskFlow's ``taskflow.types.graph.DiGraph``, without networkx).

ferroflow's scheduler keeps its graph in Rust; ``engine.compilation.execution_graph`` gives a copy
of it as a `DiGraph` whose nodes are the atoms (with their node attributes) and whose edges say
"runs before".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any

__all__ = ["DiGraph"]


class DiGraph:
    """Nodes with attribute dicts and directed edges with attribute dicts, in insertion order."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ""
        self._nodes: dict[Hashable, dict[str, Any]] = {}
        self._succ: dict[Hashable, dict[Hashable, dict[str, Any]]] = {}
        self._pred: dict[Hashable, dict[Hashable, dict[str, Any]]] = {}

    # -- building ------------------------------------------------------------------------------
    def add_node(self, node: Hashable, **attrs: Any) -> None:
        if node not in self._nodes:
            self._nodes[node] = {}
            self._succ[node] = {}
            self._pred[node] = {}
        self._nodes[node].update(attrs)

    def add_nodes_from(self, nodes: Iterable[Hashable], **attrs: Any) -> None:
        for node in nodes:
            self.add_node(node, **attrs)

    def add_edge(self, u: Hashable, v: Hashable, **attrs: Any) -> None:
        self.add_node(u)
        self.add_node(v)
        self._succ[u].setdefault(v, {}).update(attrs)
        self._pred[v][u] = self._succ[u][v]

    def add_edges_from(self, edges: Iterable[tuple[Hashable, Hashable]], **attrs: Any) -> None:
        for u, v in edges:
            self.add_edge(u, v, **attrs)

    # -- reading -------------------------------------------------------------------------------
    @property
    def nodes(self) -> dict[Hashable, dict[str, Any]]:
        """``{node: attributes}``."""
        return self._nodes

    @property
    def edges(self) -> list[tuple[Hashable, Hashable]]:
        return [(u, v) for u, targets in self._succ.items() for v in targets]

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def number_of_nodes(self) -> int:
        return len(self._nodes)

    def number_of_edges(self) -> int:
        return sum(len(targets) for targets in self._succ.values())

    def has_edge(self, u: Hashable, v: Hashable) -> bool:
        return v in self._succ.get(u, {})

    def get_edge_data(self, u: Hashable, v: Hashable, default: Any = None) -> Any:
        return self._succ.get(u, {}).get(v, default)

    def successors(self, node: Hashable) -> Iterator[Hashable]:
        return iter(self._succ[node])

    def predecessors(self, node: Hashable) -> Iterator[Hashable]:
        return iter(self._pred[node])

    def in_degree(self, node: Hashable) -> int:
        return len(self._pred[node])

    def out_degree(self, node: Hashable) -> int:
        return len(self._succ[node])

    def no_predecessors_iter(self) -> Iterator[Hashable]:
        """Nodes nothing points to."""
        return (n for n in self._nodes if not self._pred[n])

    def no_successors_iter(self) -> Iterator[Hashable]:
        """Nodes that point to nothing."""
        return (n for n in self._nodes if not self._succ[n])

    def topological_sort(self) -> list[Hashable]:
        """Nodes with every edge's source before its target (insertion order among equals)."""
        indegree = {n: len(p) for n, p in self._pred.items()}
        ready = [n for n, d in indegree.items() if d == 0]
        order = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            for successor in self._succ[node]:
                indegree[successor] -= 1
                if indegree[successor] == 0:
                    ready.append(successor)
        if len(order) != len(self._nodes):
            raise ValueError(f"graph {self.name!r} has a cycle")
        return order

    def pformat(self) -> str:
        """A readable summary: name, node and edge counts, then the edges."""
        lines = [
            f"Name: {self.name}",
            f"Type: {type(self).__name__}",
            "Frozen: False",
            f"Density: {self._density():.3f}",
            f"Nodes: {self.number_of_nodes()}",
        ]
        lines += [f"  - {node}" for node in self._nodes]
        lines.append(f"Edges: {self.number_of_edges()}")
        lines += [f"  {u} -> {v}" for u, v in self.edges]
        return "\n".join(lines)

    def _density(self) -> float:
        n = len(self._nodes)
        return self.number_of_edges() / (n * (n - 1)) if n > 1 else 0.0
