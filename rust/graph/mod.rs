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

    /// Drops each node's repeated neighbours after their first, keeping the order; neighbours must
    /// be below `bound`.
    pub(crate) fn keep_first_of_each_target(&mut self, bound: usize) {
        // `seen_from[target] == node`: `target` already kept for `node` (never equal across nodes)
        let mut seen_from = vec![NONE; bound];
        self.compact(|node, neighbours, kept| {
            for &target in neighbours {
                if seen_from[target as usize] != node {
                    seen_from[target as usize] = node;
                    kept.push(target);
                }
            }
        });
    }

    /// Sorts each node's neighbours and drops repeats.
    pub(crate) fn sort_and_dedup(&mut self) {
        self.compact(|_, neighbours, kept| {
            let start = kept.len();
            kept.extend_from_slice(neighbours);
            kept[start..].sort_unstable();
            let mut write = start;
            for read in start..kept.len() {
                if write == start || kept[read] != kept[write - 1] {
                    kept[write] = kept[read];
                    write += 1;
                }
            }
            kept.truncate(write);
        });
    }

    /// Rebuilds the targets node by node: `keep(node, neighbours, kept)` appends what it keeps of
    /// the node's neighbours to `kept`.
    fn compact(&mut self, mut keep: impl FnMut(u32, &[u32], &mut Vec<u32>)) {
        let mut kept = Vec::with_capacity(self.targets.len());
        for node in 0..self.node_count() {
            let (start, end) = (self.offsets[node] as usize, self.offsets[node + 1] as usize);
            self.offsets[node] = kept.len() as u32;
            keep(node as u32, &self.targets[start..end], &mut kept);
        }
        if let Some(last) = self.offsets.last_mut() {
            *last = kept.len() as u32;
        }
        self.targets = kept;
    }

    pub fn neighbours(&self, node: u32) -> &[u32] {
        let i = node as usize;
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// The provider of each argument of each atom, in one array rather than a `Vec` per atom (two per
/// atom, with revert, made and freed for every compiled flow): atom `i`'s execute providers, one per
/// name of `requires ++ optional` in that order, are `values[execute[i].0..execute[i].1]`; its
/// revert providers (`revert_requires ++ revert_optional`) are the `revert[i]` range, which is the
/// execute range itself when the atom's revert takes its execute arguments (the usual case).
/// `NONE` = no atom provides the name visibly (a flow-level store value may still satisfy it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Providers {
    values: Vec<u32>,
    execute: Vec<(u32, u32)>,
    revert: Vec<(u32, u32)>,
}

impl Providers {
    pub(crate) fn with_capacity(atoms: usize, values: usize) -> Self {
        Providers {
            values: Vec::with_capacity(values),
            execute: Vec::with_capacity(atoms),
            revert: Vec::with_capacity(atoms),
        }
    }

    /// Adds the next atom's execute providers; its [`Providers::add_revert`] follows.
    pub(crate) fn add_execute(&mut self, providers: impl IntoIterator<Item = u32>) {
        let range = self.extend(providers);
        self.execute.push(range);
    }

    /// Adds the revert providers of the atom just added; None: its revert takes its execute
    /// arguments, so it shares their range.
    pub(crate) fn add_revert(&mut self, providers: Option<impl IntoIterator<Item = u32>>) {
        let range = match providers {
            None => self.execute.last().copied().unwrap_or_default(),
            Some(providers) => self.extend(providers),
        };
        self.revert.push(range);
    }

    fn extend(&mut self, providers: impl IntoIterator<Item = u32>) -> (u32, u32) {
        let start = self.values.len() as u32;
        self.values.extend(providers);
        (start, self.values.len() as u32)
    }

    /// The providers of `atom`'s `requires ++ optional` (empty for an atom out of range).
    pub fn execute(&self, atom: usize) -> &[u32] {
        self.slice(self.execute.get(atom))
    }

    /// The providers of `atom`'s `revert_requires ++ revert_optional` (empty out of range).
    pub fn revert(&self, atom: usize) -> &[u32] {
        self.slice(self.revert.get(atom))
    }

    fn slice(&self, range: Option<&(u32, u32)>) -> &[u32] {
        range.map_or(&[], |&(start, end)| &self.values[start as usize..end as usize])
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
    /// The provider of each argument of each atom, execute and revert (see [`Providers`]).
    pub providers: Providers,
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

#[cfg(test)]
mod tests {
    use super::{Csr, Providers, NONE};

    #[test]
    fn repeated_neighbours_are_dropped_keeping_the_first_in_order() {
        let edges = [(0, 2), (1, 0), (0, 1), (0, 2), (2, 1), (0, 1), (1, 0), (1, 2)];
        let mut csr = Csr::from_edges(4, &edges);
        csr.keep_first_of_each_target(3);
        assert_eq!((csr.neighbours(0), csr.neighbours(1), csr.neighbours(2)), (&[2, 1][..], &[0, 2][..], &[1][..]));
        assert!(csr.neighbours(3).is_empty());
        assert_eq!(csr.targets.len(), 5);
        let mut csr = Csr::from_edges(4, &edges);
        csr.sort_and_dedup();
        assert_eq!((csr.neighbours(0), csr.neighbours(1), csr.neighbours(2)), (&[1, 2][..], &[0, 2][..], &[1][..]));
        assert_eq!(*csr.offsets.last().unwrap(), 5);
    }

    #[test]
    fn a_revert_without_its_own_arguments_shares_the_execute_providers() {
        let mut providers = Providers::with_capacity(3, 4);
        providers.add_execute([7, NONE]);
        providers.add_revert(None::<[u32; 0]>);
        providers.add_execute([]);
        providers.add_revert(Some([0]));
        providers.add_execute([1]);
        providers.add_revert(Some([]));
        assert_eq!((providers.execute(0), providers.revert(0)), (&[7, NONE][..], &[7, NONE][..]));
        assert_eq!((providers.execute(1), providers.revert(1)), (&[][..], &[0][..]));
        assert_eq!((providers.execute(2), providers.revert(2)), (&[1][..], &[][..]));
        assert!(providers.execute(3).is_empty() && providers.revert(3).is_empty());
        assert_eq!(providers.values.len(), 4, "shared, not copied");
    }
}
