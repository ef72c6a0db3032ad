//! The pattern tree flattened into arrays (no recursion anywhere: nesting can be thousands deep),
//! plus the orders compilation needs on it.
//!
//! * [`flatten`] validates the spec (`CoreError::Compilation`, `CoreError::Duplicate`) while
//!   flattening it.
//! * [`LocalLinks`] is the link DAG of every graph flow, indexed by *child slot*.
//! * [`TreeOrder`] is `TaskFlow`'s hierarchy order: a flow's retry first, then its children (graph
//!   flows list theirs in topological order, as `TaskFlow` iterates them), and the preorder numbering
//!   of atoms over it. `TaskFlow`'s scope walker searches that order backwards, so argument lookup
//!   (`names.rs`) becomes a search for the largest preorder index.

use super::hash::FastSet;
use super::{Csr, NONE};
use crate::error::{CoreError, CoreResult};
use crate::spec::{AtomKind, FlowNode, FlowSpec, LinkSpec, Node, Pattern};

/// A child of a flow: an atom index or a flow id (index into `FlatTree::flows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Child {
    Atom(u32),
    Flow(u32),
}

/// One flow of the tree. Its children occupy the *slots* `children.0..children.1` of
/// `FlatTree::children`, in spec order (the order they were added).
#[derive(Clone, Debug)]
pub(crate) struct Flow<'s> {
    pub name: &'s str,
    pub pattern: Pattern,
    /// Retry atom index or `NONE`.
    pub retry: u32,
    /// Parent flow id, `NONE` for the root.
    pub parent: u32,
    /// Position among the parent's children (spec order); `NONE` for the root.
    pub position: u32,
    /// First slot of the children and one past the last.
    pub children: (u32, u32),
    /// Links between children; only kept for graph flows.
    pub links: &'s [LinkSpec],
}

impl Flow<'_> {
    pub fn child_count(&self) -> u32 {
        self.children.1 - self.children.0
    }

    pub fn slot(&self, position: u32) -> usize {
        (self.children.0 + position) as usize
    }
}

/// The pattern tree as arrays. Flow ids grow with depth: a child flow's id is larger than its
/// parent's, so iterating ids backwards visits children before parents.
#[derive(Clone, Debug)]
pub(crate) struct FlatTree<'s> {
    pub flows: Vec<Flow<'s>>,
    pub children: Vec<Child>,
    /// Flow holding each atom (as a child or as its retry); `NONE` when the atom is the root.
    pub atom_parent: Vec<u32>,
    /// Position of each atom among its parent's children; `NONE` for retries and the root atom.
    pub atom_position: Vec<u32>,
    pub root: Child,
}

impl FlatTree<'_> {
    /// The child of `flow` at spec position `position`.
    pub fn child_at(&self, flow: u32, position: u32) -> Child {
        self.children[self.flows[flow as usize].slot(position)]
    }

    /// The flow this atom is the retry of, if it is one.
    pub fn retry_flow(&self, atom: u32) -> Option<u32> {
        let parent = self.atom_parent[atom as usize];
        (parent != NONE && self.atom_position[atom as usize] == NONE).then_some(parent)
    }
}

/// Largest atom count accepted: node ids (atoms plus joins) must stay below `u32::MAX`.
const MAX_ATOMS: usize = (u32::MAX / 4) as usize;

/// Flattens and validates `spec`: every atom used exactly once, indices in range, retries only as
/// flow retries, tasks only as children, unique atom names.
pub(crate) fn flatten(spec: &FlowSpec) -> CoreResult<FlatTree<'_>> {
    let atom_count = spec.atoms.len();
    if atom_count > MAX_ATOMS {
        return Err(compilation(format!("too many atoms: {atom_count} (at most {MAX_ATOMS})")));
    }
    let mut tree = FlatTree {
        flows: Vec::new(),
        children: Vec::new(),
        atom_parent: vec![NONE; atom_count],
        atom_position: vec![NONE; atom_count],
        root: Child::Atom(0),
    };
    let mut used = vec![false; atom_count];
    let mut pending: Vec<(u32, &FlowNode)> = Vec::new();
    match &spec.root {
        Node::Atom(index) => {
            let atom = claim_atom(spec, &mut used, *index, "the root")?;
            if spec.atoms[atom as usize].kind == AtomKind::Retry {
                return Err(compilation(format!(
                    "retry '{}' cannot be the root of a flow",
                    spec.atoms[atom as usize].name
                )));
            }
            tree.root = Child::Atom(atom);
        }
        Node::Flow(flow) => {
            tree.root = Child::Flow(0);
            tree.flows.push(new_flow(flow, NONE, NONE));
            pending.push((0, flow));
        }
    }
    while let Some((id, flow)) = pending.pop() {
        let start = tree.children.len() as u32;
        let place = format!("flow '{}'", flow.name);
        if let Some(retry) = flow.retry {
            let retry = claim_atom(spec, &mut used, retry, &place)?;
            if spec.atoms[retry as usize].kind != AtomKind::Retry {
                return Err(compilation(format!(
                    "atom '{}' is attached as the retry of {place} but is not a retry",
                    spec.atoms[retry as usize].name
                )));
            }
            tree.atom_parent[retry as usize] = id;
            tree.flows[id as usize].retry = retry;
        }
        for (position, child) in flow.children.iter().enumerate() {
            let position = position as u32;
            match child {
                Node::Atom(index) => {
                    let atom = claim_atom(spec, &mut used, *index, &place)?;
                    if spec.atoms[atom as usize].kind == AtomKind::Retry {
                        return Err(compilation(format!(
                            "retry '{}' is a child of {place}; retries can only be attached to flows",
                            spec.atoms[atom as usize].name
                        )));
                    }
                    tree.atom_parent[atom as usize] = id;
                    tree.atom_position[atom as usize] = position;
                    tree.children.push(Child::Atom(atom));
                }
                Node::Flow(sub) => {
                    let sub_id = tree.flows.len() as u32;
                    tree.flows.push(new_flow(sub, id, position));
                    tree.children.push(Child::Flow(sub_id));
                    pending.push((sub_id, sub));
                }
            }
        }
        let child_count = flow.children.len();
        for link in flow.links.iter() {
            if link.from >= child_count || link.to >= child_count {
                return Err(compilation(format!(
                    "link {} -> {} of {place} refers to a missing child ({place} has {child_count} children)",
                    link.from, link.to
                )));
            }
        }
        tree.flows[id as usize].children = (start, tree.children.len() as u32);
    }
    if let Some(unused) = used.iter().position(|used| !used) {
        return Err(compilation(format!(
            "atom '{}' (index {unused}) is not part of the flow tree",
            spec.atoms[unused].name
        )));
    }
    check_duplicate_names(spec)?;
    Ok(tree)
}

fn new_flow(flow: &FlowNode, parent: u32, position: u32) -> Flow<'_> {
    Flow {
        name: &flow.name,
        pattern: flow.pattern,
        retry: NONE,
        parent,
        position,
        children: (0, 0),
        // Linear and unordered flows are ordered by their pattern; links on them carry nothing more.
        links: if flow.pattern == Pattern::Graph { &flow.links } else { &[] },
    }
}

/// Marks atom `index` as used once, or explains why it cannot be.
fn claim_atom(spec: &FlowSpec, used: &mut [bool], index: usize, place: &str) -> CoreResult<u32> {
    let Some(seen) = used.get_mut(index) else {
        return Err(compilation(format!(
            "{place} refers to atom index {index}, but the flow has {} atoms",
            spec.atoms.len()
        )));
    };
    if *seen {
        return Err(compilation(format!(
            "atom '{}' (index {index}) is used more than once in the flow tree (again in {place})",
            spec.atoms[index].name
        )));
    }
    *seen = true;
    Ok(index as u32)
}

fn check_duplicate_names(spec: &FlowSpec) -> CoreResult<()> {
    let mut seen: FastSet<&str> = FastSet::default();
    seen.reserve(spec.atoms.len());
    let mut duplicated: Vec<&str> =
        spec.atoms.iter().filter(|atom| !seen.insert(atom.name.as_str())).map(|atom| atom.name.as_str()).collect();
    if duplicated.is_empty() {
        return Ok(());
    }
    duplicated.sort_unstable();
    duplicated.dedup();
    Err(CoreError::Duplicate(format!("Atoms with duplicate names found: {}", py_list(&duplicated))))
}

pub(crate) fn compilation(message: String) -> CoreError {
    CoreError::Compilation(message)
}

/// Formats names the way Python prints a list of strings (`['a', 'b']`), as `TaskFlow`'s messages do.
pub(crate) fn py_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| py_repr(name)).collect();
    format!("[{}]", quoted.join(", "))
}

fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        if ch == quote || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push(quote);
    out
}

/// The link DAG of each graph flow, by child slot; both directions, duplicates removed.
/// `succs` keeps link order (`TaskFlow`'s topological order depends on it); `preds` is sorted.
#[derive(Clone, Debug)]
pub(crate) struct LocalLinks {
    /// For each child slot: the positions (within the same flow) of its linked predecessors.
    pub preds: Csr,
    /// For each child slot: the positions of its linked successors, in link order.
    pub succs: Csr,
}

impl LocalLinks {
    pub fn new(tree: &FlatTree) -> Self {
        let count = tree.flows.iter().map(|flow| flow.links.len()).sum();
        let mut succ_edges = Vec::with_capacity(count);
        let mut pred_edges = Vec::with_capacity(count);
        let mut widest = 0;
        for flow in tree.flows.iter().filter(|flow| !flow.links.is_empty()) {
            widest = widest.max((flow.children.1 - flow.children.0) as usize);
            for link in flow.links {
                let (from, to) = (flow.slot(link.from as u32), flow.slot(link.to as u32));
                succ_edges.push((from as u32, link.to as u32));
                pred_edges.push((to as u32, link.from as u32));
            }
        }
        let slots = tree.children.len();
        // A link given twice counts once (without a hash set of pairs: 100,000 links made it grow
        // and rehash): `from_edges` keeps link order per slot, so a repeat is found by its target.
        let mut succs = Csr::from_edges(slots, &succ_edges);
        drop(succ_edges);
        succs.keep_first_of_each_target(widest);
        let mut preds = Csr::from_edges(slots, &pred_edges);
        drop(pred_edges);
        preds.sort_and_dedup();
        LocalLinks { preds, succs }
    }

    pub fn preds_of(&self, slot: usize) -> &[u32] {
        self.preds.neighbours(slot as u32)
    }

    pub fn succs_of(&self, slot: usize) -> &[u32] {
        self.succs.neighbours(slot as u32)
    }
}

/// `TaskFlow`'s hierarchy order and the preorder numbering of atoms over it. Only valid once the
/// execution graph is known to be acyclic (a graph flow's children are put in topological order).
#[derive(Clone, Debug)]
pub(crate) struct TreeOrder {
    /// `order[flow.slot(rank)]`: spec position of the child at that rank of the hierarchy order.
    pub order: Vec<u32>,
    /// `rank[flow.slot(position)]`: hierarchy rank of the child at that spec position.
    pub rank: Vec<u32>,
    /// `child_start[flow.slot(rank)]`: preorder index of the first atom under the child at `rank`
    /// (for an empty child: the next child's start).
    pub child_start: Vec<u32>,
    /// Preorder index of each atom.
    pub pre: Vec<u32>,
    /// Atom at each preorder index.
    pub atom_at: Vec<u32>,
    /// `[start, end)` preorder range of each flow's atoms; its retry (if any) sits at `start`.
    pub span: Vec<(u32, u32)>,
    /// Slot (`flow.slot(rank)`, hierarchy rank) of the atom at each preorder index among its flow's
    /// children (`NONE`: a retry, or the root atom): `rank_containing` without a search, for the
    /// atom's own flow (the flows' slot ranges are disjoint).
    pub atom_slot: Vec<u32>,
}

impl TreeOrder {
    pub fn new(tree: &FlatTree, links: &LocalLinks) -> Self {
        let slots = tree.children.len();
        let mut order = vec![0u32; slots];
        let mut rank = vec![0u32; slots];
        for flow in &tree.flows {
            let base = flow.children.0 as usize;
            let ranked = &mut order[base..flow.children.1 as usize];
            if flow.pattern == Pattern::Graph {
                generations_order(flow, links, ranked);
            } else {
                for (position, entry) in ranked.iter_mut().enumerate() {
                    *entry = position as u32;
                }
            }
            for (r, &position) in ranked.iter().enumerate() {
                rank[base + position as usize] = r as u32;
            }
        }
        let atom_count = tree.atom_parent.len();
        let mut numbering = TreeOrder {
            order,
            rank,
            child_start: vec![0; slots],
            pre: vec![0; atom_count],
            atom_at: Vec::with_capacity(atom_count),
            span: vec![(0, 0); tree.flows.len()],
            atom_slot: Vec::with_capacity(atom_count),
        };
        numbering.number_atoms(tree);
        numbering
    }

    fn number_atoms(&mut self, tree: &FlatTree) {
        let root = match tree.root {
            Child::Atom(atom) => {
                self.push_atom(atom, NONE);
                return;
            }
            Child::Flow(flow) => flow,
        };
        // Explicit stack of (flow, next rank to visit).
        let mut stack: Vec<(u32, u32)> = Vec::new();
        self.enter_flow(tree, root, &mut stack);
        while let Some(&mut (flow_id, ref mut next)) = stack.last_mut() {
            let flow = &tree.flows[flow_id as usize];
            if *next == flow.child_count() {
                self.span[flow_id as usize].1 = self.atom_at.len() as u32;
                stack.pop();
                continue;
            }
            let slot = flow.slot(*next);
            *next += 1;
            self.child_start[slot] = self.atom_at.len() as u32;
            match tree.children[flow.slot(self.order[slot])] {
                Child::Atom(atom) => self.push_atom(atom, slot as u32),
                Child::Flow(sub) => self.enter_flow(tree, sub, &mut stack),
            }
        }
    }

    fn enter_flow(&mut self, tree: &FlatTree, flow_id: u32, stack: &mut Vec<(u32, u32)>) {
        self.span[flow_id as usize].0 = self.atom_at.len() as u32;
        let retry = tree.flows[flow_id as usize].retry;
        if retry != NONE {
            self.push_atom(retry, NONE);
        }
        stack.push((flow_id, 0));
    }

    /// Numbers `atom` next in preorder; `slot`: its slot among its flow's children (`NONE` for a
    /// retry or the root atom).
    fn push_atom(&mut self, atom: u32, slot: u32) {
        self.pre[atom as usize] = self.atom_at.len() as u32;
        self.atom_at.push(atom);
        self.atom_slot.push(slot);
    }

    /// Rank (hierarchy order) of the child of `flow` whose subtree holds preorder index `index`.
    /// `index` must lie in the flow's span and not be its retry.
    pub fn rank_containing(&self, flow: &Flow, index: u32) -> u32 {
        // An atom child of `flow` itself (its slot is one of the flow's): its own rank.
        let slot = self.atom_slot[index as usize];
        if slot != NONE && (flow.children.0..flow.children.1).contains(&slot) {
            return slot - flow.children.0;
        }
        let starts = &self.child_start[flow.children.0 as usize..flow.children.1 as usize];
        (starts.partition_point(|&start| start <= index) - 1) as u32
    }
}

/// Orders a graph flow's children as `TaskFlow` iterates them (networkx `topological_sort`, i.e.
/// generation by generation: first the children without predecessors in spec order, then those
/// freed by each of them in link order). Leaves unreachable (cyclic) children out; callers only
/// use this on acyclic graphs.
fn generations_order(flow: &Flow, links: &LocalLinks, ranked: &mut [u32]) {
    let count = flow.child_count() as usize;
    let mut in_degree: Vec<u32> =
        (0..count as u32).map(|position| links.preds_of(flow.slot(position)).len() as u32).collect();
    let mut filled = 0;
    for (position, &degree) in in_degree.iter().enumerate() {
        if degree == 0 {
            ranked[filled] = position as u32;
            filled += 1;
        }
    }
    let mut next = 0;
    while next < filled {
        let position = ranked[next];
        next += 1;
        for &succ in links.succs_of(flow.slot(position)) {
            in_degree[succ as usize] -= 1;
            if in_degree[succ as usize] == 0 {
                ranked[filled] = succ;
                filled += 1;
            }
        }
    }
    debug_assert!(filled == count, "graph flow '{}' has a cycle", flow.name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::testutil::*;

    #[test]
    fn py_list_quotes_like_python() {
        assert_eq!(py_list(&["a", "b"]), "['a', 'b']");
        assert_eq!(py_list(&["it's"]), "[\"it's\"]");
        assert_eq!(py_list(&[]), "[]");
    }

    #[test]
    fn flatten_records_parents_and_positions() {
        let spec = spec(&["r", "a", "b", "c"], linear(vec![atom(1), unordered(vec![atom(2), atom(3)])]).with_retry(0));
        let tree = flatten(&spec).unwrap();
        assert_eq!(tree.flows.len(), 2);
        assert_eq!(tree.atom_parent, vec![0, 0, 1, 1]);
        assert_eq!(tree.atom_position, vec![NONE, 0, 0, 1]);
        assert_eq!(tree.retry_flow(0), Some(0));
        assert_eq!(tree.retry_flow(1), None);
        assert_eq!(tree.flows[1].parent, 0);
        assert_eq!(tree.flows[1].position, 1);
    }

    #[test]
    fn generations_follow_networkx() {
        // Children c, p1, p2 (spec order) with p2 -> c and p1 -> c: generation 0 is [p1, p2].
        let spec = spec(&["c", "p1", "p2"], graph(vec![atom(0), atom(1), atom(2)], &[(2, 0), (1, 0)]));
        let tree = flatten(&spec).unwrap();
        let links = LocalLinks::new(&tree);
        let order = TreeOrder::new(&tree, &links);
        assert_eq!(order.order, vec![1, 2, 0]);
        assert_eq!(order.rank, vec![2, 0, 1]);
        assert_eq!(order.pre, vec![2, 0, 1]);
    }

    #[test]
    fn preorder_puts_retry_first_and_spans_nest() {
        let spec =
            spec(&["a", "r", "b", "c"], linear(vec![atom(0), linear(vec![atom(2), atom(3)]).with_retry(1), empty()]));
        let tree = flatten(&spec).unwrap();
        let order = TreeOrder::new(&tree, &LocalLinks::new(&tree));
        assert_eq!(order.pre, vec![0, 1, 2, 3]);
        assert_eq!(order.span[0], (0, 4));
        let sub = match tree.children[1] {
            Child::Flow(id) => id as usize,
            Child::Atom(_) => unreachable!(),
        };
        assert_eq!(order.span[sub], (1, 4));
        // The empty third child starts where the flow ends.
        assert_eq!(order.child_start[..3], [0, 1, 4]);
        assert_eq!(order.rank_containing(&tree.flows[0], 3), 1);
    }
}
