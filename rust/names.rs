//! Argument providers: which atom's result each argument of each atom comes from.
//!
//! `TaskFlow`'s scope walker (`engines/action_engine/scopes.py`) goes up the pattern tree from an
//! atom; at each level it searches, nearest first, the atoms of the earlier siblings that are
//! predecessors of the atom (linear: all earlier children; unordered: none; graph: the children that
//! are ancestors in the flow's link DAG), then the flow's retry, and the first level with a provider
//! wins. Inside a sibling subflow atoms are searched last child first, recursively, retry last.
//!
//! Every one of those searches walks the hierarchy order ([`TreeOrder`]: retry first, then children)
//! backwards, and each level's candidates come before (in preorder) the level below it. So the whole
//! walk visits the visible atoms in decreasing preorder index, and the provider is simply the
//! *visible provider with the largest preorder index below the atom's own*. With each name's
//! providers kept as a sorted list of preorder indices, a lookup is a few binary searches: whole
//! levels without a candidate are skipped, and only graph flows need an ancestry check (direct link
//! first, then a search bounded by the topological rank). No transitive-predecessor sets.
//!
//! Two providers of one name in one graph flow are `TaskFlow`'s `AmbiguousDependency` only when a
//! child is added with its requirements resolved (`graph_flow.Flow.add` raises it, in Python, as
//! `TaskFlow`'s does); children added with `resolve_requires=False` and linked by hand take the
//! nearest provider like any other, so compiling never raises it.
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault};

use crate::graph::hash::FastMap;
use crate::graph::tree::{FlatTree, Flow, LocalLinks, TreeOrder};
use crate::graph::{CompiledFlow, Csr, Providers, NONE};
use crate::spec::{AtomSpec, Name, Pattern};

/// Resolves the providers of every argument of every atom (see the module docs).
pub(crate) fn resolve(atoms: &[AtomSpec], tree: &FlatTree, links: &LocalLinks, order: &TreeOrder) -> Providers {
    let mut resolver = Resolver {
        scope: Scope { tree, links, order, candidates: Candidates::new(atoms, order) },
        scratch: Scratch::default(),
    };
    let names: usize = atoms.iter().map(|atom| atom.requires.len() + atom.optional.len()).sum();
    let mut providers = Providers::with_capacity(atoms.len(), names);
    for (index, atom) in atoms.iter().enumerate() {
        let index = index as u32;
        providers.add_execute(resolver.lookup_all(index, &atom.requires, &atom.optional));
        // (a lookup depends on the atom and the name only: a revert taking the execute arguments,
        // the usual case, has the same providers, and shares them)
        let revert = atom.revert.as_ref().map(|names| resolver.lookup_all(index, &names.requires, &names.optional));
        providers.add_revert(revert);
    }
    providers
}

/// The required (not optional) argument names of each atom that no atom provides visibly and that
/// `available` (flow-level store values, injected at run time) does not hold either; execute and
/// revert requirements merged, sorted. This is what `Engine.validate()` reports as
/// `MissingDependencies`; compilation itself never fails for it.
pub fn unsatisfied<S: BuildHasher>(
    compiled: &CompiledFlow,
    available: &HashSet<&str, S>,
) -> Vec<(String, Vec<String>)> {
    let mut missing_all = Vec::new();
    for (index, atom) in compiled.atoms.iter().enumerate() {
        let mut missing: Vec<String> = Vec::new();
        let sides = [
            (atom.requires.as_slice(), compiled.providers.execute(index)),
            (atom.revert_requires(), compiled.providers.revert(index)),
        ];
        for (names, providers) in sides {
            for (k, name) in names.iter().enumerate() {
                let provider = providers.get(k).copied().unwrap_or(NONE);
                if provider == NONE && !available.contains(name.as_str()) {
                    missing.push(name.to_string());
                }
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            missing_all.push((atom.name.to_string(), missing));
        }
    }
    missing_all
}

/// For each provided name, the preorder indices (ascending) of the atoms providing it, in one flat
/// adjacency (no allocation per name).
struct Candidates<'a> {
    ids: FastMap<&'a str, u32>,
    by_name: Csr,
}

impl<'a> Candidates<'a> {
    fn new(atoms: &'a [AtomSpec], order: &TreeOrder) -> Self {
        let mut ids: FastMap<&str, u32> = FastMap::with_capacity_and_hasher(atoms.len(), BuildHasherDefault::default());
        // Names are read in atom order, the order their specs lie in memory (a graph flow's
        // preorder jumps across them: a cache miss per name), as (preorder index, name id) ...
        let mut by_atom: Vec<(u32, u32)> = Vec::with_capacity(atoms.len());
        for (atom, spec) in atoms.iter().enumerate() {
            for name in &spec.provides {
                let next_id = ids.len() as u32;
                let id = *ids.entry(name.as_str()).or_insert(next_id);
                by_atom.push((order.pre[atom], id));
            }
        }
        // ... then put in preorder (bucketed by preorder index, without a comparison sort).
        let mut by_pre = Csr::from_edges(order.pre.len(), &by_atom);
        drop(by_atom);
        // A name listed twice by one atom counts once.
        by_pre.keep_first_of_each_target(ids.len());
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(by_pre.targets.len());
        for index in 0..order.pre.len() as u32 {
            pairs.extend(by_pre.neighbours(index).iter().map(|&id| (id, index)));
        }
        // `from_edges` keeps the input order per name: preorder, so ascending.
        let by_name = Csr::from_edges(ids.len(), &pairs);
        Candidates { ids, by_name }
    }

    /// The name's id and its providers' preorder indices.
    fn get(&self, name: &str) -> Option<(u32, &[u32])> {
        let id = *self.ids.get(name)?;
        Some((id, self.by_name.neighbours(id)))
    }
}

/// Read-only context of a resolution.
struct Scope<'a, 's> {
    tree: &'a FlatTree<'s>,
    links: &'a LocalLinks,
    order: &'a TreeOrder,
    candidates: Candidates<'a>,
}

/// Reusable buffers and caches.
#[derive(Default)]
struct Scratch {
    /// BFS marks per child slot, valid when equal to `epoch`.
    stamp: Vec<u32>,
    epoch: u32,
    queue: Vec<u32>,
}

struct Resolver<'a, 's> {
    scope: Scope<'a, 's>,
    scratch: Scratch,
}

impl<'a, 's> Resolver<'a, 's> {
    fn lookup_all(
        &mut self,
        atom: u32,
        required: &'a [Name],
        optional: &'a [Name],
    ) -> impl Iterator<Item = u32> + use<'_, 'a, 's> {
        required.iter().chain(optional).map(move |name| self.scope.lookup(&mut self.scratch, atom, name))
    }
}

impl<'a> Scope<'a, '_> {
    fn flow(&self, id: u32) -> &Flow<'_> {
        &self.tree.flows[id as usize]
    }

    /// The provider of `name` for `atom`, or `NONE`.
    fn lookup(&self, scratch: &mut Scratch, atom: u32, name: &'a str) -> u32 {
        let Some((_, candidates)) = self.candidates.get(name) else {
            return NONE;
        };
        // The atom's child position and the flow holding it; a retry is searched from above its flow.
        let (mut position, mut level) = match self.tree.retry_flow(atom) {
            Some(flow) => (self.flow(flow).position, self.flow(flow).parent),
            None => (self.tree.atom_position[atom as usize], self.tree.atom_parent[atom as usize]),
        };
        let mut below = self.order.pre[atom as usize];
        loop {
            // Skip the levels whose span holds no candidate below `below`.
            let nearest = last_below(candidates, below);
            while level != NONE && nearest.is_none_or(|nearest| self.order.span[level as usize].0 > nearest) {
                position = self.flow(level).position;
                level = self.flow(level).parent;
            }
            if level == NONE {
                return NONE;
            }
            if let Some(index) = self.search_level(scratch, level, position, below, candidates) {
                return self.order.atom_at[index as usize];
            }
            below = self.order.span[level as usize].0;
            position = self.flow(level).position;
            level = self.flow(level).parent;
        }
    }

    /// The visible provider with the largest preorder index below `below` among the atoms of
    /// `level` that precede its child at `position`.
    fn search_level(
        &self,
        scratch: &mut Scratch,
        level: u32,
        position: u32,
        mut below: u32,
        candidates: &[u32],
    ) -> Option<u32> {
        let flow = self.flow(level);
        let start = self.order.span[level as usize].0;
        let has_retry = flow.retry != NONE;
        loop {
            let index = last_below(candidates, below).filter(|&index| index >= start)?;
            if has_retry && index == start {
                return Some(index); // the flow's retry precedes everything in it
            }
            match flow.pattern {
                Pattern::Linear => return Some(index),
                Pattern::Unordered if has_retry => below = start + 1,
                Pattern::Unordered => return None,
                Pattern::Graph => {
                    let rank = self.order.rank_containing(flow, index);
                    let slot = flow.slot(rank);
                    if self.is_ancestor(scratch, flow, self.order.order[slot], position) {
                        return Some(index);
                    }
                    below = self.order.child_start[slot];
                }
            }
        }
    }

    /// Whether child `from` precedes child `to` in `flow`'s link DAG.
    fn is_ancestor(&self, scratch: &mut Scratch, flow: &Flow, from: u32, to: u32) -> bool {
        let preds = self.links.preds_of(flow.slot(to));
        if preds.binary_search(&from).is_ok() {
            return true;
        }
        // Any path from `from` to `to` only goes through children ranked after `from`.
        let from_rank = self.order.rank[flow.slot(from)];
        if scratch.stamp.len() < self.tree.children.len() {
            scratch.stamp = vec![0; self.tree.children.len()];
        }
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.stamp.fill(0);
            scratch.epoch = 1;
        }
        scratch.queue.clear();
        scratch.queue.push(to);
        while let Some(child) = scratch.queue.pop() {
            for &pred in self.links.preds_of(flow.slot(child)) {
                if pred == from {
                    return true;
                }
                let slot = flow.slot(pred);
                if self.order.rank[slot] > from_rank && scratch.stamp[slot] != scratch.epoch {
                    scratch.stamp[slot] = scratch.epoch;
                    scratch.queue.push(pred);
                }
            }
        }
        false
    }
}

/// The largest candidate strictly below `below`.
fn last_below(candidates: &[u32], below: u32) -> Option<u32> {
    let count = candidates.partition_point(|&index| index < below);
    count.checked_sub(1).map(|i| candidates[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::compile;
    use crate::graph::testutil::*;
    use crate::spec::{AtomKind, FlowSpec};

    fn t(name: &str, requires: &[&str], provides: &[&str]) -> AtomSpec {
        AtomSpec::task(name, requires, provides)
    }

    /// Shown for an argument without provider.
    const NO: &str = "<none>";

    /// Name of the provider of each `requires ++ optional` entry of atom `name`.
    fn providers_of(spec: &FlowSpec, name: &str) -> Vec<String> {
        let compiled = compile(spec).unwrap();
        let index = compiled.atoms.iter().position(|atom| atom.name == name).unwrap();
        compiled
            .providers
            .execute(index)
            .iter()
            .map(|&p| if p == NONE { NO.to_owned() } else { compiled.atoms[p as usize].name.to_string() })
            .collect()
    }

    #[test]
    fn nearest_predecessor_in_linear_wins() {
        let spec = spec_with(
            vec![t("p1", &[], &["x"]), t("p2", &[], &["x"]), t("c", &["x"], &[]), t("p3", &[], &["x"])],
            linear(vec![atom(0), atom(1), atom(2), atom(3)]),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["p2"]);
        assert!(providers_of(&spec, "p1").is_empty());
    }

    #[test]
    fn atom_never_provides_for_itself() {
        let spec = spec_with(vec![t("a", &["x"], &["x"])], linear(vec![atom(0)]));
        assert_eq!(providers_of(&spec, "a"), vec![NO]);
    }

    #[test]
    fn unordered_siblings_are_invisible() {
        let spec = spec_with(vec![t("p", &[], &["x"]), t("c", &["x"], &[])], unordered(vec![atom(0), atom(1)]));
        assert_eq!(providers_of(&spec, "c"), vec![NO]);
    }

    #[test]
    fn later_sibling_in_linear_is_invisible() {
        let spec = spec_with(vec![t("c", &["x"], &[]), t("p", &[], &["x"])], linear(vec![atom(0), atom(1)]));
        assert_eq!(providers_of(&spec, "c"), vec![NO]);
    }

    #[test]
    fn nested_subflow_is_searched_last_child_first() {
        // TaskFlow probe: linear[linear[p1, unordered[p2, p3], q], c] gives c the value of p3.
        let spec = spec_with(
            vec![
                t("p1", &[], &["x"]),
                t("p2", &[], &["x"]),
                t("p3", &[], &["x"]),
                t("q", &[], &[]),
                t("c", &["x"], &[]),
            ],
            linear(vec![linear(vec![atom(0), unordered(vec![atom(1), atom(2)]), atom(3)]), atom(4)]),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["p3"]);
    }

    #[test]
    fn inner_level_beats_nearer_outer_atoms() {
        // linear[p, linear(retry r)[c]]: r (c's own level) wins over p.
        let spec = spec_with(
            vec![t("p", &[], &["x"]), t("r", &[], &["x"]), t("c", &["x"], &[])],
            linear(vec![atom(0), linear(vec![atom(2)]).with_retry(1)]),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["r"]);
    }

    #[test]
    fn retry_provides_to_its_flow_but_siblings_come_first() {
        let spec = spec_with(
            vec![t("r", &[], &["x"]), t("p", &[], &["x"]), t("c", &["x"], &[]), t("d", &["x"], &[])],
            unordered(vec![linear(vec![atom(1), atom(2)]), atom(3)]).with_retry(0),
        );
        // c sees p (its own level) before r; d, unordered, only sees the retry.
        assert_eq!(providers_of(&spec, "c"), vec!["p"]);
        assert_eq!(providers_of(&spec, "d"), vec!["r"]);
        let compiled = compile(&spec).unwrap();
        assert_eq!(compiled.atoms[0].kind, AtomKind::Retry);
    }

    #[test]
    fn retry_looks_above_its_own_flow() {
        let spec = spec_with(
            vec![t("p", &[], &["y"]), t("r", &["y", "x"], &["x"]), t("inner", &[], &["x", "y"])],
            linear(vec![atom(0), linear(vec![atom(2)]).with_retry(1)]),
        );
        assert_eq!(providers_of(&spec, "r"), vec!["p", NO]);
    }

    #[test]
    fn retry_of_a_sibling_subflow_is_visible() {
        // TaskFlow probe: linear[p, linear(retry r)[q], c] gives c the value of r.
        let spec = spec_with(
            vec![t("p", &[], &["x"]), t("r", &[], &["x"]), t("q", &[], &[]), t("c", &["x"], &[])],
            linear(vec![atom(0), linear(vec![atom(2)]).with_retry(1), atom(3)]),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["r"]);
    }

    #[test]
    fn graph_flow_sees_only_link_ancestors() {
        // d added first (so TaskFlow sees no ambiguity), then a -> b -> d by links; c unlinked.
        let spec = spec_with(
            vec![t("a", &[], &["x", "y"]), t("b", &[], &["x"]), t("c", &[], &["z"]), t("d", &["x", "y", "z"], &[])],
            graph(vec![atom(3), atom(0), atom(1), atom(2)], &[(1, 2), (2, 0)]),
        );
        assert_eq!(providers_of(&spec, "d"), vec!["b", "a", NO]);
    }

    #[test]
    fn graph_flow_nearest_ancestor_by_topological_rank() {
        // TaskFlow probes: children [c, p1, p2] with p2 -> c and p1 -> c: order p1, p2, c; c gets p2.
        let atoms = vec![t("c", &["x"], &[]), t("p1", &[], &["x"]), t("p2", &[], &["x"])];
        let spec1 = spec_with(atoms.clone(), graph(vec![atom(0), atom(1), atom(2)], &[(1, 0), (2, 0)]));
        assert_eq!(providers_of(&spec1, "c"), vec!["p2"]);
        // Children [c, p2, p1]: order p2, p1, c; c gets p1.
        let spec2 = spec_with(atoms, graph(vec![atom(0), atom(2), atom(1)], &[(1, 0), (2, 0)]));
        assert_eq!(providers_of(&spec2, "c"), vec!["p1"]);
    }

    #[test]
    fn graph_flow_provider_in_a_subflow_next_to_empty_ones() {
        // Graph [empty, sub[p], empty, c] with sub -> c: p is nested (its own rank in `sub` is 0,
        // the empty flow's rank in the graph), c gets it from the subflow, not from an atom child.
        let atoms = vec![t("p", &[], &["x"]), t("q", &[], &["x"]), t("c", &["x"], &[])];
        let spec =
            spec_with(atoms.clone(), graph(vec![empty(), linear(vec![atom(0)]), empty(), atom(2), atom(1)], &[(1, 3)]));
        assert_eq!(providers_of(&spec, "c"), vec!["p"]);
        // q, an atom child linked to c, added after the subflow: the nearest by topological rank.
        let spec = spec_with(atoms, graph(vec![empty(), linear(vec![atom(0)]), atom(1), atom(2)], &[(1, 3), (2, 3)]));
        assert_eq!(providers_of(&spec, "c"), vec!["q"]);
    }

    #[test]
    fn graph_flow_transitive_ancestor_through_subflow() {
        // d added first, then a -> sub[b] -> d by links; e provides x too but is not linked.
        let spec = spec_with(
            vec![t("a", &[], &["x"]), t("b", &[], &[]), t("e", &[], &["x"]), t("d", &["x"], &[])],
            graph(vec![atom(3), atom(0), linear(vec![atom(1)]), atom(2)], &[(1, 2), (2, 0)]),
        );
        assert_eq!(providers_of(&spec, "d"), vec!["a"]);
    }

    #[test]
    fn optional_arguments_resolve_without_being_required() {
        let spec = spec_with(
            vec![t("p", &[], &["x"]), task_opt("c", &["x"], &["y", "x"], &[])],
            linear(vec![atom(0), atom(1)]),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["p", NO, "p"]);
        let compiled = compile(&spec).unwrap();
        assert!(unsatisfied(&compiled, &HashSet::new()).is_empty(), "optional y is not missing");
    }

    #[test]
    fn a_name_an_atom_provides_twice_makes_it_one_candidate() {
        use crate::graph::tree::{flatten, LocalLinks, TreeOrder};
        let spec = spec_with(
            vec![t("p", &[], &["x", "y", "x"]), t("q", &[], &["x"]), t("c", &["x", "y"], &[])],
            linear(vec![atom(0), atom(1), atom(2)]),
        );
        let tree = flatten(&spec).unwrap();
        let links = LocalLinks::new(&tree);
        let order = TreeOrder::new(&tree, &links);
        let candidates = Candidates::new(&spec.atoms, &order);
        let preorder = |atom: usize| order.pre[atom];
        assert_eq!(candidates.get("x").unwrap().1, [preorder(0), preorder(1)]);
        assert_eq!(candidates.get("y").unwrap().1, [preorder(0)]);
        assert_eq!(providers_of(&spec, "c"), vec!["q", "p"]);
    }

    #[test]
    fn revert_arguments_have_their_own_providers() {
        let c = t("c", &[], &[]).with_revert(vec!["x".into()], vec!["w".into()]);
        let spec = spec_with(vec![t("p", &[], &["x"]), c], linear(vec![atom(0), atom(1)]));
        let compiled = compile(&spec).unwrap();
        assert_eq!(compiled.providers.revert(1), [0, NONE]);
        assert!(compiled.providers.execute(1).is_empty());
    }

    #[test]
    fn unsatisfied_lists_required_names_without_provider_or_store() {
        let c = t("c", &["x", "s", "m"], &[]).with_revert(vec!["rv".into(), "x".into()], Vec::new());
        let spec = spec_with(
            vec![t("p", &[], &["x"]), c, t("d", &["m"], &["m2"])],
            unordered(vec![linear(vec![atom(0), atom(1)]), atom(2)]),
        );
        let compiled = compile(&spec).unwrap();
        let available: HashSet<&str> = ["s"].into_iter().collect();
        assert_eq!(
            unsatisfied(&compiled, &available),
            vec![("c".to_owned(), vec!["m".to_owned(), "rv".to_owned()]), ("d".to_owned(), vec!["m".to_owned()])]
        );
        let everything: HashSet<&str> = ["s", "m", "rv"].into_iter().collect();
        assert!(unsatisfied(&compiled, &everything).is_empty());
    }

    #[test]
    fn two_providers_linked_by_hand_in_a_graph_flow_give_the_nearest() {
        // TaskFlow's `add(..., resolve_requires=False)` then manual links p1 -> p2 -> c: no error,
        // c sees p2 (its nearest predecessor providing x).
        let spec = spec_with(
            vec![t("p1", &[], &["x"]), t("p2", &[], &["x"]), t("c", &["x"], &[])],
            graph(vec![atom(0), atom(1), atom(2)], &[(0, 1), (1, 2)]).named("g"),
        );
        assert_eq!(providers_of(&spec, "c"), vec!["p2"]);
        // Only p1 linked to c: p2 is not a predecessor, so p1 it is.
        let one = spec_with(
            vec![t("p1", &[], &["x"]), t("p2", &[], &["x"]), t("c", &["x"], &[])],
            graph(vec![atom(0), atom(1), atom(2)], &[(0, 2)]).named("g"),
        );
        assert_eq!(providers_of(&one, "c"), vec!["p1"]);
    }

    #[test]
    fn graph_flow_cases_taskflow_accepts() {
        // Requirer added before the providers (TaskFlow links only the first provider).
        let first = spec_with(
            vec![t("c", &["x"], &[]), t("p1", &[], &["x"]), t("p2", &[], &["x"])],
            graph(vec![atom(0), atom(1), atom(2)], &[(1, 0)]),
        );
        assert_eq!(providers_of(&first, "c"), vec!["p1"]);
        // The flow's retry provides the name.
        let retried = spec_with(
            vec![t("r", &[], &["x"]), t("p1", &[], &["x"]), t("p2", &[], &["x"]), t("c", &["x"], &[])],
            graph(vec![atom(1), atom(2), atom(3)], &[]).with_retry(0),
        );
        assert_eq!(providers_of(&retried, "c"), vec!["r"]);
        // Optional arguments are not checked.
        let optional = spec_with(
            vec![t("p1", &[], &["x"]), t("p2", &[], &["x"]), task_opt("c", &[], &["x"], &[])],
            graph(vec![atom(0), atom(1), atom(2)], &[]),
        );
        assert_eq!(providers_of(&optional, "c"), vec![NO]);
        // Satisfied inside the requiring subflow.
        let inside = spec_with(
            vec![t("p1", &[], &["x"]), t("p2", &[], &["x"]), t("p3", &[], &["x"]), t("c", &["x"], &[])],
            graph(vec![atom(0), atom(1), linear(vec![atom(2), atom(3)])], &[]),
        );
        assert_eq!(providers_of(&inside, "c"), vec!["p3"]);
    }

    #[test]
    fn names_resolve_on_a_root_atom() {
        let spec = spec_with(vec![t("solo", &["x"], &["x"])], atom(0));
        assert_eq!(providers_of(&spec, "solo"), vec![NO]);
    }
}
