//! Deciders on graph-flow links, compiled the way `TaskFlow`'s runtime applies them
//! (`engines/action_engine/runtime.py` `_walk_edge_deciders`, `deciders.py`), checked by running
//! `TaskFlow` 6.5:
//!
//! * A link's decider is attached to the link target's *entry atoms*: the target atom itself; for a
//!   target flow, its retry, or else (recursively) the entry atoms of its first children (linear:
//!   the first child; unordered: all; graph: those without incoming links). An empty flow has none,
//!   and a decider into it is never consulted (`TaskFlow` only walks through flow *entry* nodes).
//! * The decider is called when an entry atom is about to run, with `history` = the results of the
//!   link sources that are atoms, over all decider links into that atom. A flow source contributes
//!   nothing to `history` (`TaskFlow` passes `{}` for it). A decider whose atom source was ignored is
//!   not called.
//! * On "no", each entry atom is ignored together with, per depth: `Atom` nothing more;
//!   `Neighbors` its direct task successors in the same flow; `Flow` all task successors reachable
//!   without leaving that flow; `All` every successor in the whole execution graph (also outside the
//!   graph flow, as `TaskFlow` does).
use super::tree::{Child, FlatTree, Flow, LocalLinks};
use super::{Csr, EdgeDecider, NONE};
use crate::spec::{DeciderDepth, Pattern};

/// One `EdgeDecider` per link that has a decider, in flow then link order.
pub(crate) fn compile_deciders(tree: &FlatTree, links: &LocalLinks, succs: &Csr) -> Vec<EdgeDecider> {
    let mut marks = Marks::new(succs.node_count());
    let mut deciders = Vec::new();
    for (flow_id, flow) in tree.flows.iter().enumerate() {
        for link in flow.links {
            let Some(decider) = link.decider else { continue };
            let history_atoms = match tree.child_at(flow_id as u32, link.from as u32) {
                Child::Atom(atom) => vec![atom],
                Child::Flow(_) => Vec::new(),
            };
            let entry_atoms = entry_atoms(tree, links, tree.child_at(flow_id as u32, link.to as u32));
            let targets = widen(tree, links, succs, &mut marks, &entry_atoms, link.depth);
            deciders.push(EdgeDecider { decider, history_atoms, entry_atoms, targets, depth: link.depth });
        }
    }
    deciders
}

/// The atoms a decider on a link into `child` is attached to (see the module docs).
fn entry_atoms(tree: &FlatTree, links: &LocalLinks, child: Child) -> Vec<u32> {
    let mut entries = Vec::new();
    let mut stack = vec![child];
    while let Some(child) = stack.pop() {
        let flow_id = match child {
            Child::Atom(atom) => {
                entries.push(atom);
                continue;
            }
            Child::Flow(flow_id) => flow_id,
        };
        let flow = &tree.flows[flow_id as usize];
        if flow.retry != NONE {
            entries.push(flow.retry);
            continue;
        }
        // Pushed in reverse so entries come out in child order.
        for position in first_children(flow, links).into_iter().rev() {
            stack.push(tree.child_at(flow_id, position));
        }
    }
    entries
}

/// Positions of the children `TaskFlow` connects directly from a flow's entry (or its retry).
fn first_children(flow: &Flow, links: &LocalLinks) -> Vec<u32> {
    match flow.pattern {
        Pattern::Linear => (flow.child_count() > 0).then_some(0).into_iter().collect(),
        Pattern::Unordered => (0..flow.child_count()).collect(),
        Pattern::Graph => {
            (0..flow.child_count()).filter(|&position| links.preds_of(flow.slot(position)).is_empty()).collect()
        }
    }
}

/// Atoms `TaskFlow` links to `atom` by a direct edge (no flow node in between): its next sibling
/// atom (linear), the atoms it is linked to (graph); for a retry, its flow's first atom children.
fn direct_successor_atoms(tree: &FlatTree, links: &LocalLinks, atom: u32, out: &mut Vec<u32>) {
    let parent = tree.atom_parent[atom as usize];
    if parent == NONE {
        return;
    }
    let flow = &tree.flows[parent as usize];
    let mut push_atom = |position: u32| {
        if let Child::Atom(next) = tree.child_at(parent, position) {
            out.push(next);
        }
    };
    let position = tree.atom_position[atom as usize];
    if position == NONE {
        for first in first_children(flow, links) {
            push_atom(first);
        }
        return;
    }
    match flow.pattern {
        Pattern::Linear if position + 1 < flow.child_count() => push_atom(position + 1),
        Pattern::Linear | Pattern::Unordered => {}
        Pattern::Graph => {
            for &next in links.succs_of(flow.slot(position)) {
                push_atom(next);
            }
        }
    }
}

/// Visited marks over all nodes, cleared by bumping the epoch.
struct Marks {
    stamp: Vec<u32>,
    epoch: u32,
}

impl Marks {
    fn new(node_count: usize) -> Self {
        Marks { stamp: vec![0; node_count], epoch: 0 }
    }

    fn reset(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; true when it was not marked yet.
    fn visit(&mut self, node: u32) -> bool {
        let seen = &mut self.stamp[node as usize];
        if *seen == self.epoch {
            false
        } else {
            *seen = self.epoch;
            true
        }
    }
}

/// The atoms ignored when the decider says no: the entry atoms widened by `depth`, ascending.
fn widen(
    tree: &FlatTree,
    links: &LocalLinks,
    succs: &Csr,
    marks: &mut Marks,
    entries: &[u32],
    depth: DeciderDepth,
) -> Vec<u32> {
    marks.reset();
    let mut targets: Vec<u32> = entries.iter().copied().filter(|&atom| marks.visit(atom)).collect();
    let atom_count = tree.atom_parent.len() as u32;
    let mut next = Vec::new();
    match depth {
        DeciderDepth::Atom => {}
        DeciderDepth::Neighbors => {
            for &entry in entries {
                direct_successor_atoms(tree, links, entry, &mut next);
            }
            targets.extend(next.into_iter().filter(|&atom| marks.visit(atom)));
        }
        DeciderDepth::Flow => {
            let mut stack = targets.clone();
            while let Some(atom) = stack.pop() {
                next.clear();
                direct_successor_atoms(tree, links, atom, &mut next);
                for &succ in &next {
                    if marks.visit(succ) {
                        targets.push(succ);
                        stack.push(succ);
                    }
                }
            }
        }
        DeciderDepth::All => {
            let mut stack = targets.clone();
            while let Some(node) = stack.pop() {
                for &succ in succs.neighbours(node) {
                    if marks.visit(succ) {
                        if succ < atom_count {
                            targets.push(succ);
                        }
                        stack.push(succ);
                    }
                }
            }
        }
    }
    targets.sort_unstable();
    targets
}
