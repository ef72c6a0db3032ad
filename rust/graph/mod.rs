//! Compilation: the pattern tree (`spec::FlowSpec`) is lowered into the execution graph the scheduler
//! runs, once per flow. See `compile.rs` for the algorithm and `names.rs` (crate root) for argument
//! providers.
mod build;
mod compile;
mod deciders;
pub(crate) mod hash;
#[cfg(test)]
pub(crate) mod testutil;
mod topo;
pub(crate) mod tree;

pub use compile::{compile, compile_or_return, compile_owned};
pub use topo::round_order;

/// Adjacency in compressed-sparse-row form: the neighbours of node `i` are
/// `targets[offsets[i]..offsets[i + 1]]`. One allocation for 100,000 nodes instead of 100,000 `Vec`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Csr {
    pub offsets: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Csr {
    /// Builds the adjacency of `node_count` nodes from `(from, to)` edges.
    pub fn from_edges(node_count: usize, edges: &[(u32, u32)]) -> Self {
        let mut offsets = vec![0u32; node_count + 1];
        for &(from, _) in edges {
            offsets[from as usize + 1] += 1;
        }
        for i in 0..node_count {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; edges.len()];
        for &(from, to) in edges {
            let slot = &mut fill[from as usize];
            targets[*slot as usize] = to;
            *slot += 1;
        }
        Csr { offsets, targets }
    }

    pub fn neighbours(&self, node: u32) -> &[u32] {
        let i = node as usize;
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// A decider on a graph-flow link, as `TaskFlow`'s runtime applies it (see `deciders.rs`): when one
/// of `entry_atoms` is about to run (all its predecessors done), the engine calls the Python
/// callable `decider` with `history` = the results of the non-ignored `history_atoms` of every
/// decider sharing that entry atom; a decider whose history atom was ignored is skipped. A "no"
/// ignores `targets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeDecider {
    pub decider: u32,
    /// Atoms whose results make up the decider's `history` argument: the link's source atom, or
    /// nothing when the source is a flow (`TaskFlow` passes `{}` then).
    pub history_atoms: Vec<u32>,
    /// The atoms the decider is attached to: the link's target atom, or the target flow's retry,
    /// or (recursively) its first atoms. Empty for an empty target flow (never consulted).
    pub entry_atoms: Vec<u32>,
    /// The atoms set to IGNORE when the decider says no (ascending), already widened by `depth`.
    pub targets: Vec<u32>,
    /// The link's depth (kept for picking the widest when several deciders say no).
    pub depth: crate::spec::DeciderDepth,
}

/// The result of compiling a `FlowSpec`: everything the scheduler and the engine need, as arrays
/// indexed by atom index (`0..atoms.len()`).
#[derive(Clone, Debug)]
pub struct CompiledFlow {
    pub atoms: Vec<crate::spec::AtomSpec>,
    /// Nodes `0..atoms.len()` are atoms; nodes `atoms.len()..node_count` are no-op *join* nodes,
    /// inserted where a linear flow joins two groups of several atoms (so N x M edges become N + M).
    pub node_count: usize,
    /// Direct predecessors / successors in the execution graph (over all nodes).
    pub preds: Csr,
    pub succs: Csr,
    /// A topological order of the atoms (joins left out): the order a serial engine runs them
    /// when nothing else decides, and the order reported to users.
    pub topo: Vec<u32>,
    /// The nearest retry controlling each atom (`u32::MAX` = none). For a retry atom: the retry that
    /// controls the flow it is attached to (its parent retry).
    pub retry_of: Vec<u32>,
    /// For each retry atom (by atom index), the atoms it controls — its flow's whole subtree, deeper
    /// retries and their atoms included — in topological order. Empty for tasks.
    pub retry_scope: Vec<Vec<u32>>,
    /// For atom `i`: the provider of each name of `requires ++ optional`, in that order
    /// (`u32::MAX` = no atom provides it visibly; a flow-level store value may still satisfy it).
    pub providers: Vec<Vec<u32>>,
    /// The same for `revert_requires ++ revert_optional`.
    pub revert_providers: Vec<Vec<u32>>,
    /// Deciders on graph-flow links.
    pub deciders: Vec<EdgeDecider>,
}

/// Sentinel for "no atom" in the `u32` arrays above.
pub const NONE: u32 = u32::MAX;

impl CompiledFlow {
    /// Each atom's position in `topo`: what orders ready atoms of equal priority (the scheduler
    /// hands them out in it, and a new flow's rows are laid out by it, `round_order`).
    pub fn topo_positions(&self) -> Vec<u32> {
        let mut positions = vec![0u32; self.atoms.len()];
        for (position, &atom) in self.topo.iter().enumerate() {
            positions[atom as usize] = position as u32;
        }
        positions
    }
}
