//! The execution graph: which node must finish before which, from the pattern tree.
//!
//! Each flow is reduced bottom-up to a [`Bound`]: its source nodes (nothing in the flow runs
//! before them) and sink nodes (nothing in the flow runs after them). A parent connects its
//! children's bounds by its pattern; a flow's retry precedes the flow's sources. When a group of
//! several sinks must precede a group of several sources, one no-op *join* node sits between them
//! so the edge count stays linear.
use super::tree::{Child, FlatTree, LocalLinks};
use super::{Csr, NONE};
use crate::spec::Pattern;

/// The edges of the execution graph; nodes `atom_count..node_count` are joins.
#[derive(Clone, Debug)]
pub(crate) struct ExecGraph {
    pub node_count: usize,
    /// Sorted, without duplicates.
    pub edges: Vec<(u32, u32)>,
    /// For each join node (indexed from 0): the empty subflow it stands for, or `NONE`.
    pub join_flow: Vec<u32>,
}

/// Sources and sinks of a subtree.
#[derive(Clone, Debug, Default)]
enum Bound {
    /// No atoms at all: ordering passes through it.
    #[default]
    Empty,
    /// A single node that is both the source and the sink (an atom or a join).
    Single(u32),
    Group {
        sources: Vec<u32>,
        sinks: Vec<u32>,
    },
}

impl Bound {
    fn sources(&self) -> &[u32] {
        match self {
            Bound::Empty => &[],
            Bound::Single(node) => std::slice::from_ref(node),
            Bound::Group { sources, .. } => sources,
        }
    }

    fn sinks(&self) -> &[u32] {
        match self {
            Bound::Empty => &[],
            Bound::Single(node) => std::slice::from_ref(node),
            Bound::Group { sinks, .. } => sinks,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Bound::Empty)
    }

    fn from_parts(sources: Vec<u32>, sinks: Vec<u32>) -> Bound {
        if sources.is_empty() {
            Bound::Empty
        } else if sources.len() == 1 && sinks.len() == 1 && sources[0] == sinks[0] {
            Bound::Single(sources[0])
        } else {
            Bound::Group { sources, sinks }
        }
    }

    fn into_parts(self) -> (Vec<u32>, Vec<u32>) {
        match self {
            Bound::Empty => (Vec::new(), Vec::new()),
            Bound::Single(node) => (vec![node], vec![node]),
            Bound::Group { sources, sinks } => (sources, sinks),
        }
    }
}

struct Builder {
    atom_count: usize,
    edges: Vec<(u32, u32)>,
    join_flow: Vec<u32>,
}

impl Builder {
    fn new_join(&mut self, flow: u32) -> u32 {
        self.join_flow.push(flow);
        (self.atom_count + self.join_flow.len() - 1) as u32
    }

    /// Makes every node of `from` precede every node of `to`, through a join when both have
    /// several nodes.
    fn connect(&mut self, from: &[u32], to: &[u32]) {
        if from.len() > 1 && to.len() > 1 {
            let join = self.new_join(NONE);
            self.edges.extend(from.iter().map(|&node| (node, join)));
            self.edges.extend(to.iter().map(|&node| (join, node)));
        } else {
            for &source in from {
                self.edges.extend(to.iter().map(|&target| (source, target)));
            }
        }
    }
}

/// Builds the execution graph of `tree` (children before parents: flow ids grow with depth).
pub(crate) fn build(tree: &FlatTree, links: &LocalLinks) -> ExecGraph {
    let atom_count = tree.atom_parent.len();
    let mut builder = Builder { atom_count, edges: Vec::with_capacity(atom_count * 2), join_flow: Vec::new() };
    let mut bounds: Vec<Bound> = vec![Bound::Empty; tree.flows.len()];
    for flow_id in (0..tree.flows.len()).rev() {
        let flow = &tree.flows[flow_id];
        let mut children: Vec<Bound> = tree.children[flow.children.0 as usize..flow.children.1 as usize]
            .iter()
            .map(|child| match *child {
                Child::Atom(atom) => Bound::Single(atom),
                Child::Flow(sub) => std::mem::take(&mut bounds[sub as usize]),
            })
            .collect();
        let content = match flow.pattern {
            Pattern::Linear => join_linear(&mut builder, children),
            Pattern::Unordered => join_unordered(children),
            Pattern::Graph => join_graph(&mut builder, tree, links, flow_id as u32, &mut children),
        };
        bounds[flow_id] = if flow.retry == NONE {
            content
        } else if content.is_empty() {
            Bound::Single(flow.retry)
        } else {
            builder.connect(&[flow.retry], content.sources());
            let (_, sinks) = content.into_parts();
            Bound::Group { sources: vec![flow.retry], sinks }
        };
    }
    let node_count = atom_count + builder.join_flow.len();
    let edges = sorted_unique(&builder.edges, node_count);
    ExecGraph { node_count, edges, join_flow: builder.join_flow }
}

/// `edges` ordered by (source, target), without duplicates: bucketed by source (a counting sort),
/// then each source's few targets sorted. A comparison sort of every edge was a fifth of
/// compiling a big graph flow.
fn sorted_unique(edges: &[(u32, u32)], node_count: usize) -> Vec<(u32, u32)> {
    let by_source = Csr::from_edges(node_count, edges);
    let mut out = Vec::with_capacity(edges.len());
    let mut targets = Vec::new();
    for source in 0..node_count as u32 {
        targets.clear();
        targets.extend_from_slice(by_source.neighbours(source));
        targets.sort_unstable();
        targets.dedup();
        out.extend(targets.iter().map(|&target| (source, target)));
    }
    out
}

/// Each non-empty child after the previous non-empty one.
fn join_linear(builder: &mut Builder, children: Vec<Bound>) -> Bound {
    let mut children = children.into_iter().filter(|bound| !bound.is_empty());
    let Some(first) = children.next() else {
        return Bound::Empty;
    };
    let (sources, mut sinks) = first.into_parts();
    for child in children {
        builder.connect(&sinks, child.sources());
        sinks = child.into_parts().1;
    }
    Bound::from_parts(sources, sinks)
}

/// No order between children: the flow's sources and sinks are all of theirs.
fn join_unordered(mut children: Vec<Bound>) -> Bound {
    // Reuse the largest child's vectors so nested unordered flows do not copy quadratically.
    let largest = (0..children.len()).max_by_key(|&i| children[i].sources().len() + children[i].sinks().len());
    let Some(largest) = largest else {
        return Bound::Empty;
    };
    let (mut sources, mut sinks) = std::mem::take(&mut children[largest]).into_parts();
    for child in &children {
        sources.extend_from_slice(child.sources());
        sinks.extend_from_slice(child.sinks());
    }
    Bound::from_parts(sources, sinks)
}

/// Children ordered by the flow's links. An empty child that is linked becomes a join node, so
/// ordering passes through it (`TaskFlow` keeps a node for every flow).
fn join_graph(
    builder: &mut Builder,
    tree: &FlatTree,
    links: &LocalLinks,
    flow_id: u32,
    children: &mut [Bound],
) -> Bound {
    let flow = &tree.flows[flow_id as usize];
    for (position, child) in children.iter_mut().enumerate() {
        let slot = flow.slot(position as u32);
        if child.is_empty() && !(links.preds_of(slot).is_empty() && links.succs_of(slot).is_empty()) {
            let empty_flow = match tree.children[slot] {
                Child::Flow(sub) => sub,
                Child::Atom(_) => NONE,
            };
            *child = Bound::Single(builder.new_join(empty_flow));
        }
    }
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    let mut incoming = Vec::new();
    for (position, child) in children.iter().enumerate() {
        let slot = flow.slot(position as u32);
        let preds = links.preds_of(slot);
        if preds.is_empty() {
            sources.extend_from_slice(child.sources());
        } else {
            incoming.clear();
            for &pred in preds {
                incoming.extend_from_slice(children[pred as usize].sinks());
            }
            builder.connect(&incoming, child.sources());
        }
        if links.succs_of(slot).is_empty() {
            sinks.extend_from_slice(child.sinks());
        }
    }
    Bound::from_parts(sources, sinks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::testutil::*;
    use crate::graph::tree::flatten;

    fn edges_of(spec: &crate::spec::FlowSpec) -> ExecGraph {
        let tree = flatten(spec).unwrap();
        let links = LocalLinks::new(&tree);
        build(&tree, &links)
    }

    #[test]
    fn linear_chains_children() {
        let graph = edges_of(&spec(&["a", "b", "c"], linear(vec![atom(0), atom(1), atom(2)])));
        assert_eq!(graph.edges, vec![(0, 1), (1, 2)]);
        assert_eq!(graph.node_count, 3);
    }

    #[test]
    fn linear_of_unordered_groups_uses_one_join() {
        let graph = edges_of(&spec(
            &["a", "b", "c", "d"],
            linear(vec![unordered(vec![atom(0), atom(1)]), unordered(vec![atom(2), atom(3)])]),
        ));
        assert_eq!(graph.node_count, 5);
        assert_eq!(graph.edges, vec![(0, 4), (1, 4), (4, 2), (4, 3)]);
        assert_eq!(graph.join_flow, vec![NONE]);
    }

    #[test]
    fn fan_out_without_join_when_one_side_is_single() {
        let graph =
            edges_of(&spec(&["a", "b", "c", "d"], linear(vec![atom(0), unordered(vec![atom(1), atom(2)]), atom(3)])));
        assert_eq!(graph.node_count, 4);
        assert_eq!(graph.edges, vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
    }

    #[test]
    fn empty_subflows_pass_through_in_linear() {
        let graph =
            edges_of(&spec(&["a", "b"], linear(vec![empty(), atom(0), empty(), linear(vec![empty()]), atom(1)])));
        assert_eq!(graph.edges, vec![(0, 1)]);
    }

    #[test]
    fn retry_precedes_its_flow_sources() {
        let graph = edges_of(&spec(
            &["r", "a", "b", "c"],
            linear(vec![unordered(vec![atom(1), atom(2)]).with_retry(0), atom(3)]),
        ));
        assert_eq!(graph.edges, vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
    }

    #[test]
    fn retry_of_empty_flow_is_the_whole_flow() {
        let graph = edges_of(&spec(&["a", "r", "b"], linear(vec![atom(0), empty().with_retry(1), atom(2)])));
        assert_eq!(graph.edges, vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn graph_links_connect_sinks_to_sources() {
        // a -> sub(b, c unordered) -> d, and e unlinked.
        let graph = edges_of(&spec(
            &["a", "b", "c", "d", "e"],
            graph(vec![atom(0), unordered(vec![atom(1), atom(2)]), atom(3), atom(4)], &[(0, 1), (1, 2)]),
        ));
        assert_eq!(graph.edges, vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
    }

    #[test]
    fn linked_empty_child_of_graph_becomes_a_join() {
        let graph = edges_of(&spec(&["a", "b"], graph(vec![atom(0), empty(), atom(1), empty()], &[(0, 1), (1, 2)])));
        assert_eq!(graph.node_count, 3);
        assert_eq!(graph.edges, vec![(0, 2), (2, 1)]);
        assert_eq!(graph.join_flow.len(), 1);
        assert_ne!(graph.join_flow[0], NONE);
    }

    #[test]
    fn several_preds_into_a_group_share_a_join() {
        let graph = edges_of(&spec(
            &["a", "b", "c", "d"],
            graph(vec![atom(0), atom(1), unordered(vec![atom(2), atom(3)])], &[(0, 2), (1, 2)]),
        ));
        assert_eq!(graph.node_count, 5);
        assert_eq!(graph.edges, vec![(0, 4), (1, 4), (4, 2), (4, 3)]);
    }

    #[test]
    fn duplicate_links_give_one_edge() {
        let graph = edges_of(&spec(&["a", "b"], graph(vec![atom(0), atom(1)], &[(0, 1), (0, 1)])));
        assert_eq!(graph.edges, vec![(0, 1)]);
    }

    #[test]
    fn edges_come_out_as_a_full_sort_and_dedup_would_give_them() {
        // A small xorshift: many shapes of repeated and unordered edges, compared with sort+dedup.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(bound)) as u32
        };
        for round in 0..200 {
            let nodes = 1 + round % 40;
            let edges: Vec<(u32, u32)> = (0..next(120)).map(|_| (next(nodes), next(nodes))).collect();
            let mut expected = edges.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(sorted_unique(&edges, nodes as usize), expected, "{edges:?}");
        }
    }
}
