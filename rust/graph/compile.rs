//! `compile`: a validated `FlowSpec` in, a `CompiledFlow` out. The steps, each in its own module:
//!
//! 1. `tree::flatten` — validate and flatten the pattern tree (`Compilation`, `Duplicate`);
//! 2. `build::build` — the execution graph, with joins (`build.rs`);
//! 3. `topo::topo_order` — a topological order, or `Cycle` naming the atoms of one;
//! 4. `tree::TreeOrder` + `names::resolve` — `TaskFlow`'s scope order and argument providers;
//! 5. retry ownership and scopes (here) and link deciders (`deciders.rs`).
//!
//! Everything is iterative and (near) linear in the size of the spec.
use super::build::build;
use super::deciders::compile_deciders;
use super::topo::topo_order;
use super::tree::{flatten, FlatTree, LocalLinks, TreeOrder};
use super::{CompiledFlow, Csr, NONE};
use crate::error::{CoreError, CoreResult};
use crate::names;
use crate::spec::{AtomSpec, FlowSpec};

/// Compiles `spec` into the execution graph and lookup tables the scheduler runs.
///
/// Errors: `Compilation` (malformed spec), `Duplicate` (atom names), `Cycle`. (Two providers of one
/// name in a graph flow are refused where `TaskFlow` refuses them: by `graph_flow.Flow.add`.)
/// Arguments nobody provides are not an error here (a store may supply them): see
/// [`crate::names::unsatisfied`].
pub fn compile(spec: &FlowSpec) -> CoreResult<CompiledFlow> {
    compile_parts(spec).map(|parts| parts.with_atoms(spec.atoms.clone()))
}

/// [`compile`], keeping the atoms of `spec` instead of copying them (what the Python binding
/// calls: a copy of 100,000 atom specs cost about as much as the rest of a linear flow's compile).
pub fn compile_owned(spec: FlowSpec) -> CoreResult<CompiledFlow> {
    compile_or_return(spec).map_err(|(err, _)| err)
}

/// [`compile_owned`], handing the atoms back with the error when the flow does not compile (the
/// Python binding keeps them for the lowered flow, which outlives a failed compile).
pub fn compile_or_return(spec: FlowSpec) -> Result<CompiledFlow, (CoreError, Vec<AtomSpec>)> {
    match compile_parts(&spec) {
        Ok(parts) => Ok(parts.with_atoms(spec.atoms)),
        Err(err) => Err((err, spec.atoms)),
    }
}

/// Everything of a `CompiledFlow` but its atoms.
struct Parts {
    node_count: usize,
    preds: Csr,
    succs: Csr,
    topo: Vec<u32>,
    retry_of: Vec<u32>,
    retry_scope: Vec<Vec<u32>>,
    providers: super::Providers,
    deciders: Vec<super::EdgeDecider>,
}

impl Parts {
    fn with_atoms(self, atoms: Vec<crate::spec::AtomSpec>) -> CompiledFlow {
        let Parts { node_count, preds, succs, topo, retry_of, retry_scope, providers, deciders } = self;
        CompiledFlow { atoms, node_count, preds, succs, topo, retry_of, retry_scope, providers, deciders }
    }
}

fn compile_parts(spec: &FlowSpec) -> CoreResult<Parts> {
    let tree = flatten(spec)?;
    let links = LocalLinks::new(&tree);
    let graph = build(&tree, &links);
    let succs = Csr::from_edges(graph.node_count, &graph.edges);
    let reversed: Vec<(u32, u32)> = graph.edges.iter().map(|&(from, to)| (to, from)).collect();
    let preds = Csr::from_edges(graph.node_count, &reversed);
    drop(reversed);
    let topo = topo_order(&spec.atoms, &tree, &graph, &preds, &succs)?;
    let order = TreeOrder::new(&tree, &links);
    let providers = names::resolve(&spec.atoms, &tree, &links, &order);
    let retry_of = retry_owners(&tree);
    let retry_scope = retry_scopes(&topo, &retry_of);
    let deciders = compile_deciders(&tree, &links, &succs);
    Ok(Parts { node_count: graph.node_count, preds, succs, topo, retry_of, retry_scope, providers, deciders })
}

/// The nearest retry above each atom; a retry's own is the one above its flow.
fn retry_owners(tree: &FlatTree) -> Vec<u32> {
    // Flow ids grow with depth, so a parent's answer is ready before its children's.
    let mut flow_retry = vec![NONE; tree.flows.len()];
    for (id, flow) in tree.flows.iter().enumerate() {
        let inherited = if flow.parent == NONE { NONE } else { flow_retry[flow.parent as usize] };
        flow_retry[id] = if flow.retry == NONE { inherited } else { flow.retry };
    }
    (0..tree.atom_parent.len() as u32)
        .map(|atom| match (tree.retry_flow(atom), tree.atom_parent[atom as usize]) {
            (Some(flow), _) => {
                let parent = tree.flows[flow as usize].parent;
                if parent == NONE {
                    NONE
                } else {
                    flow_retry[parent as usize]
                }
            }
            (None, NONE) => NONE,
            (None, parent) => flow_retry[parent as usize],
        })
        .collect()
}

/// For each retry, every atom under it (nested retries and their atoms included), in topological
/// order. An atom appears once per retry above it.
fn retry_scopes(topo: &[u32], retry_of: &[u32]) -> Vec<Vec<u32>> {
    let mut scopes = vec![Vec::new(); retry_of.len()];
    for &atom in topo {
        let mut retry = retry_of[atom as usize];
        while retry != NONE {
            scopes[retry as usize].push(atom);
            retry = retry_of[retry as usize];
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::error::CoreError;
    use crate::graph::testutil::*;
    use crate::graph::EdgeDecider;
    use crate::spec::{AtomSpec, DeciderDepth, Node};

    fn edges(compiled: &CompiledFlow) -> Vec<(u32, u32)> {
        (0..compiled.node_count as u32)
            .flat_map(|node| compiled.succs.neighbours(node).iter().map(move |&to| (node, to)))
            .collect()
    }

    fn names(compiled: &CompiledFlow, atoms: &[u32]) -> Vec<String> {
        atoms.iter().map(|&atom| compiled.atoms[atom as usize].name.to_string()).collect()
    }

    #[test]
    fn linear_flow_edges_and_order() {
        let compiled = compile(&spec(&["c", "a", "b"], linear(vec![atom(1), atom(2), atom(0)]))).unwrap();
        assert_eq!(edges(&compiled), vec![(1, 2), (2, 0)]);
        assert_eq!(compiled.topo, vec![1, 2, 0]);
        assert_eq!(compiled.preds.neighbours(0), &[2]);
        assert_eq!(compiled.node_count, 3);
    }

    #[test]
    fn unordered_flow_has_no_edges() {
        let compiled = compile(&spec(&["a", "b", "c"], unordered(vec![atom(2), atom(0), atom(1)]))).unwrap();
        assert!(edges(&compiled).is_empty());
        assert_eq!(compiled.topo, vec![0, 1, 2]);
    }

    #[test]
    fn graph_flow_follows_links() {
        let compiled = compile(&spec(
            &["a", "b", "c", "d"],
            graph(vec![atom(0), atom(1), atom(2), atom(3)], &[(2, 0), (0, 1), (2, 1)]),
        ))
        .unwrap();
        assert_eq!(edges(&compiled), vec![(0, 1), (2, 0), (2, 1)]);
        assert_eq!(compiled.topo, vec![2, 0, 1, 3]);
    }

    #[test]
    fn nested_shapes_connect_through_subflows() {
        // linear[a, graph[b -> unordered[c, d]], e]
        let compiled = compile(&spec(
            &["a", "b", "c", "d", "e"],
            linear(vec![atom(0), graph(vec![atom(1), unordered(vec![atom(2), atom(3)])], &[(0, 1)]), atom(4)]),
        ))
        .unwrap();
        assert_eq!(edges(&compiled), vec![(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)]);
        assert_eq!(compiled.topo, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn unordered_to_unordered_in_linear_inserts_a_join() {
        let compiled = compile(&spec(
            &["a", "b", "c", "d", "e", "f"],
            linear(vec![
                unordered(vec![atom(0), atom(1)]),
                unordered(vec![atom(2), atom(3)]),
                unordered(vec![atom(4), atom(5)]),
            ]),
        ))
        .unwrap();
        assert_eq!(compiled.node_count, 8);
        assert_eq!(edges(&compiled), vec![(0, 6), (1, 6), (2, 7), (3, 7), (6, 2), (6, 3), (7, 4), (7, 5)]);
        assert_eq!(compiled.topo, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(compiled.preds.neighbours(2), &[6]);
    }

    #[test]
    fn empty_subflows_are_skipped() {
        let compiled = compile(&spec(
            &["a", "b"],
            linear(vec![empty(), atom(0), unordered(vec![empty(), empty()]), empty(), atom(1), empty()]),
        ))
        .unwrap();
        assert_eq!(edges(&compiled), vec![(0, 1)]);
        let nothing = compile(&spec(&[], linear(vec![empty()]))).unwrap();
        assert!(nothing.topo.is_empty());
        assert_eq!(nothing.node_count, 0);
    }

    #[test]
    fn single_task_root() {
        let compiled = compile(&spec(&["solo"], atom(0))).unwrap();
        assert_eq!(compiled.topo, vec![0]);
        assert_eq!(compiled.retry_of, vec![NONE]);
    }

    #[test]
    fn retries_own_their_subtrees() {
        // linear(retry r1)[a, unordered(retry r2)[b, c], d], e outside.
        let spec = spec(
            &["r1", "a", "r2", "b", "c", "d", "e"],
            linear(vec![
                linear(vec![atom(1), unordered(vec![atom(3), atom(4)]).with_retry(2), atom(5)]).with_retry(0),
                atom(6),
            ]),
        );
        let compiled = compile(&spec).unwrap();
        assert_eq!(compiled.retry_of, vec![NONE, 0, 0, 2, 2, 0, NONE]);
        assert_eq!(names(&compiled, &compiled.retry_scope[0]), ["a", "r2", "b", "c", "d"]);
        assert_eq!(names(&compiled, &compiled.retry_scope[2]), ["b", "c"]);
        assert!(compiled.retry_scope[1].is_empty());
        // The retry precedes its flow's first atom; r2 precedes b and c.
        assert_eq!(compiled.preds.neighbours(1), &[0]);
        assert_eq!(compiled.succs.neighbours(2), &[3, 4]);
        assert_eq!(compiled.topo, vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn duplicate_names_are_reported_sorted() {
        let err = compile(&spec(&["b", "a", "b", "a", "c"], linear(vec![atom(0), atom(1), atom(2), atom(3), atom(4)])))
            .unwrap_err();
        assert_eq!(err, CoreError::Duplicate("Atoms with duplicate names found: ['a', 'b']".into()));
    }

    #[test]
    fn malformed_specs_are_compilation_errors() {
        let cases: Vec<(crate::spec::FlowSpec, &str)> = vec![
            (spec(&["a"], linear(vec![atom(0), atom(3)])), "atom index 3"),
            (spec(&["a"], linear(vec![atom(0), atom(0)])), "used more than once"),
            (spec(&["a", "b"], linear(vec![atom(0)])), "'b' (index 1) is not part"),
            (spec(&["a", "b"], graph(vec![atom(0), atom(1)], &[(0, 2)])), "missing child"),
            (spec(&["a", "r"], linear(vec![atom(0)]).with_retry(0)), "used more than once"),
            (spec(&["a"], linear(vec![]).with_retry(5)), "atom index 5"),
            (spec(&["r"], linear(vec![empty().with_retry(0), empty().with_retry(0)])), "used more than once"),
        ];
        for (spec, expected) in cases {
            let err = compile(&spec).unwrap_err();
            assert!(matches!(&err, CoreError::Compilation(m) if m.contains(expected)), "{expected}: {err:?}");
        }
        // A task attached as a flow's retry.
        let mut task_retry = spec(&["t"], linear(vec![]).with_retry(0));
        task_retry.atoms[0].kind = crate::spec::AtomKind::Task;
        assert!(matches!(compile(&task_retry), Err(CoreError::Compilation(m)) if m.contains("is not a retry")));
        // A retry used as a child instead of as a flow's retry.
        let mut retry_child = spec(&["r", "a"], linear(vec![atom(0), atom(1)]));
        retry_child.atoms[0].kind = crate::spec::AtomKind::Retry;
        assert!(matches!(compile(&retry_child), Err(CoreError::Compilation(m)) if m.contains("retries can only")));
        let mut retry_root = spec(&["r"], atom(0));
        retry_root.atoms[0].kind = crate::spec::AtomKind::Retry;
        assert!(matches!(compile(&retry_root), Err(CoreError::Compilation(m)) if m.contains("root")));
    }

    #[test]
    fn cycles_are_errors_naming_atoms() {
        let err = compile(&spec(
            &["a", "b", "c"],
            linear(vec![graph(vec![atom(0), linear(vec![atom(1), atom(2)])], &[(0, 1), (1, 0)])]),
        ))
        .unwrap_err();
        assert_eq!(err, CoreError::Cycle("Dependency cycle between atoms: a -> b -> c -> a".into()));
    }

    fn decider(compiled: &CompiledFlow, id: u32) -> &EdgeDecider {
        compiled.deciders.iter().find(|decider| decider.decider == id).unwrap()
    }

    /// The `TaskFlow` probe: top = linear[graph[a, sub=linear[s1, s2], b, sub2=linear[t1, t2]], after]
    /// with sub -> b (decider 1, ALL) and a -> sub2 (decider 2, ATOM).
    fn probe_spec(depth_into_sub2: DeciderDepth) -> crate::spec::FlowSpec {
        spec(
            &["a", "s1", "s2", "b", "t1", "t2", "after"],
            linear(vec![
                graph(vec![atom(0), linear(vec![atom(1), atom(2)]), atom(3), linear(vec![atom(4), atom(5)])], &[])
                    .with_decider(1, 2, 1, DeciderDepth::All)
                    .with_decider(0, 3, 2, depth_into_sub2),
                atom(6),
            ]),
        )
    }

    #[test]
    fn deciders_match_taskflow_probe() {
        let compiled = compile(&probe_spec(DeciderDepth::Atom)).unwrap();
        assert_eq!(compiled.deciders.len(), 2);
        let into_b = decider(&compiled, 1);
        assert!(into_b.history_atoms.is_empty(), "TaskFlow passes {{}} for a flow source");
        assert_eq!(names(&compiled, &into_b.entry_atoms), ["b"]);
        assert_eq!(names(&compiled, &into_b.targets), ["b", "after"]);
        assert_eq!(into_b.depth, DeciderDepth::All);
        let into_sub2 = decider(&compiled, 2);
        assert_eq!(names(&compiled, &into_sub2.history_atoms), ["a"]);
        assert_eq!(names(&compiled, &into_sub2.entry_atoms), ["t1"]);
        assert_eq!(names(&compiled, &into_sub2.targets), ["t1"]);
    }

    #[test]
    fn decider_depths_widen_differently() {
        let targets = |depth| {
            let compiled = compile(&probe_spec(depth)).unwrap();
            names(&compiled, &decider(&compiled, 2).targets)
        };
        assert_eq!(targets(DeciderDepth::Atom), ["t1"]);
        assert_eq!(targets(DeciderDepth::Neighbors), ["t1", "t2"]);
        assert_eq!(targets(DeciderDepth::Flow), ["t1", "t2"]);
        assert_eq!(targets(DeciderDepth::All), ["t1", "t2", "after"]);
    }

    #[test]
    fn decider_neighbors_stop_after_one_step_and_flow_stays_in_its_flow() {
        // graph[a, linear[b, c, d, linear[e]]]; a -> sub with decider.
        let build = |depth| {
            spec(
                &["a", "b", "c", "d", "e"],
                graph(vec![atom(0), linear(vec![atom(1), atom(2), atom(3), linear(vec![atom(4)])])], &[])
                    .with_decider(0, 1, 7, depth),
            )
        };
        let targets = |depth| {
            let compiled = compile(&build(depth)).unwrap();
            names(&compiled, &compiled.deciders[0].targets)
        };
        assert_eq!(targets(DeciderDepth::Neighbors), ["b", "c"]);
        assert_eq!(targets(DeciderDepth::Flow), ["b", "c", "d"]);
        assert_eq!(targets(DeciderDepth::All), ["b", "c", "d", "e"]);
    }

    #[test]
    fn decider_into_a_retried_flow_is_held_by_its_retry() {
        let spec = spec(
            &["a", "r", "b", "c"],
            graph(vec![atom(0), unordered(vec![atom(2), atom(3)]).with_retry(1)], &[]).with_decider(
                0,
                1,
                3,
                DeciderDepth::Neighbors,
            ),
        );
        let compiled = compile(&spec).unwrap();
        let decider = &compiled.deciders[0];
        assert_eq!(names(&compiled, &decider.entry_atoms), ["r"]);
        assert_eq!(names(&compiled, &decider.targets), ["r", "b", "c"]);
        // The link itself still orders the graph.
        assert_eq!(compiled.succs.neighbours(0), &[1]);
    }

    #[test]
    fn decider_into_unordered_flow_has_every_child_as_entry() {
        let spec = spec(
            &["a", "b", "c"],
            graph(vec![atom(0), unordered(vec![atom(1), atom(2)])], &[]).with_decider(0, 1, 4, DeciderDepth::Atom),
        );
        let compiled = compile(&spec).unwrap();
        assert_eq!(names(&compiled, &compiled.deciders[0].entry_atoms), ["b", "c"]);
        assert_eq!(names(&compiled, &compiled.deciders[0].targets), ["b", "c"]);
    }

    #[test]
    fn decider_flow_depth_follows_links_inside_a_target_graph_flow() {
        // TaskFlow probe: graph[a, inner=graph[x -> y -> z]], a -> inner with FLOW: x, y, z ignored.
        let chained = spec(
            &["a", "x", "y", "z"],
            graph(vec![atom(0), graph(vec![atom(1), atom(2), atom(3)], &[(0, 1), (1, 2)])], &[]).with_decider(
                0,
                1,
                9,
                DeciderDepth::Flow,
            ),
        );
        let compiled = compile(&chained).unwrap();
        assert_eq!(names(&compiled, &compiled.deciders[0].entry_atoms), ["x"]);
        assert_eq!(names(&compiled, &compiled.deciders[0].targets), ["x", "y", "z"]);
        // With ATOM depth a retried target flow only loses its retry.
        let retried = spec(
            &["a", "r", "b"],
            graph(vec![atom(0), unordered(vec![atom(2)]).with_retry(1)], &[]).with_decider(0, 1, 9, DeciderDepth::Atom),
        );
        let compiled = compile(&retried).unwrap();
        assert_eq!(names(&compiled, &compiled.deciders[0].targets), ["r"]);
    }

    #[test]
    fn decider_into_an_empty_flow_has_no_entry() {
        let spec = spec(&["a"], graph(vec![atom(0), empty()], &[]).with_decider(0, 1, 9, DeciderDepth::All));
        let compiled = compile(&spec).unwrap();
        assert!(compiled.deciders[0].entry_atoms.is_empty());
        assert!(compiled.deciders[0].targets.is_empty());
    }

    /// Builds `depth` nested flows (cycling linear / unordered / graph), one task per level, a
    /// retry every 100 levels, each task requiring what the task one level up provides.
    fn deep_spec(depth: usize) -> crate::spec::FlowSpec {
        let mut atoms = Vec::with_capacity(depth + depth / 100 + 1);
        for level in 0..depth {
            let requires = if level == 0 { Vec::new() } else { vec![format!("v{}", level - 1)] };
            let requires: Vec<&str> = requires.iter().map(String::as_str).collect();
            atoms.push(AtomSpec::task(&format!("t{level}"), &requires, &[&format!("v{level}")]));
        }
        let mut inner: Option<Node> = None;
        for level in (0..depth).rev() {
            let mut children = vec![atom(level)];
            children.extend(inner.take());
            let mut node = match level % 3 {
                0 => linear(children),
                1 => unordered(children),
                _ => graph(children, &[]),
            };
            if level % 100 == 0 {
                atoms.push(AtomSpec::task(&format!("r{level}"), &[], &[]));
                node = node.with_retry(atoms.len() - 1);
            }
            inner = Some(node);
        }
        spec_with(atoms, inner.unwrap())
    }

    #[test]
    fn deep_nesting_compiles_without_recursion() {
        let spec = deep_spec(5_000);
        let started = Instant::now();
        let compiled = compile(&spec).unwrap();
        eprintln!("deep nesting (5,000 levels): compiled in {:?}", started.elapsed());
        assert_eq!(compiled.topo.len(), spec.atoms.len());
        // t1 (in an unordered flow) sees t0 at the level above.
        assert_eq!(compiled.providers.execute(1), [0]);
        assert_eq!(compiled.providers.execute(4_999), [4_998]);
        // Retries are appended innermost first: the outermost one (level 0) is the last atom.
        let outermost = spec.atoms.len() - 1;
        assert_eq!(compiled.retry_of[0], outermost as u32);
        assert_eq!(compiled.retry_of[outermost], NONE);
        assert_eq!(compiled.retry_scope[outermost].len(), spec.atoms.len() - 1);
        assert_eq!(compiled.retry_of[4_999], 5_000, "t4999 is under the retry of level 4,900");
    }

    #[test]
    fn large_linear_flow_compiles_fast() {
        let count = 100_000;
        let atoms: Vec<AtomSpec> = (0..count)
            .map(|i| {
                let requires = if i == 0 { String::new() } else { format!("v{}", i - 1) };
                let requires: Vec<&str> = if i == 0 { vec![] } else { vec![&requires] };
                AtomSpec::task(&format!("t{i}"), &requires, &[&format!("v{i}"), "shared"])
            })
            .collect();
        let children = (0..count).map(atom).collect();
        let spec = spec_with(atoms, linear(children));
        let started = Instant::now();
        let compiled = compile(&spec).unwrap();
        eprintln!("linear flow of 100,000 atoms: compiled in {:?}", started.elapsed());
        assert_eq!(compiled.topo.len(), count);
        assert_eq!(compiled.providers.execute(count - 1), [(count - 2) as u32]);
        assert_eq!(compiled.succs.targets.len(), count - 1);
    }

    #[test]
    fn large_graph_flow_compiles_fast() {
        let count = 100_000;
        let atoms: Vec<AtomSpec> = (0..count)
            .map(|i| {
                let requires = format!("v{}", i / 2);
                let requires: Vec<&str> = if i == 0 { vec![] } else { vec![&requires] };
                AtomSpec::task(&format!("t{i}"), &requires, &[&format!("v{i}")])
            })
            .collect();
        let links: Vec<(usize, usize)> = (1..count).map(|i| (i / 2, i)).collect();
        let spec = spec_with(atoms, graph((0..count).map(atom).collect(), &links));
        let started = Instant::now();
        let compiled = compile(&spec).unwrap();
        eprintln!("graph flow of 100,000 atoms (binary tree links): compiled in {:?}", started.elapsed());
        assert_eq!(compiled.topo.len(), count);
        assert_eq!(compiled.providers.execute(count - 1), [((count - 1) / 2) as u32]);
    }

    #[test]
    fn linear_of_many_unordered_groups_compiles_fast() {
        let groups = 1_000;
        let per_group = 100;
        let spec = spec(
            &(0..groups * per_group)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            linear((0..groups).map(|g| unordered((0..per_group).map(|i| atom(g * per_group + i)).collect())).collect()),
        );
        let started = Instant::now();
        let compiled = compile(&spec).unwrap();
        eprintln!("linear of 1,000 unordered x 100: compiled in {:?}", started.elapsed());
        assert_eq!(compiled.node_count, groups * per_group + groups - 1);
        assert_eq!(compiled.succs.targets.len(), 2 * per_group * (groups - 1));
    }

    // -- benchmarks: `cargo test --release --lib -- --ignored --nocapture bench_compile` ----------

    const BENCH_ATOMS: usize = 100_000;
    const BENCH_ROUNDS: usize = 5;

    /// Best of `BENCH_ROUNDS` compilations of `spec` (`compile_owned`, as the Python binding
    /// calls it; the copy it is given is made before the clock starts), printed with the time per atom.
    fn bench_compile(what: &str, spec: &FlowSpec) -> CompiledFlow {
        let mut best = std::time::Duration::MAX;
        let mut compiled = None;
        for _ in 0..BENCH_ROUNDS {
            let copy = spec.clone();
            let started = Instant::now();
            let done = compile_owned(copy).unwrap();
            best = best.min(started.elapsed());
            drop(compiled.replace(done));
        }
        let per_atom = best.as_secs_f64() * 1e6 / f64::from(u32::try_from(spec.atoms.len()).unwrap());
        eprintln!("compile {what}: {best:?} (best of {BENCH_ROUNDS}), {per_atom:.3} us/atom");
        compiled.unwrap()
    }

    /// Atom `i` requires what atom `parent(i)` provides (`v{parent}`) and provides `v{i}`.
    fn chained_atoms(parent: impl Fn(usize) -> Option<usize>) -> Vec<AtomSpec> {
        (0..BENCH_ATOMS)
            .map(|i| {
                let requires = parent(i).map(|p| format!("v{p}"));
                let requires: Vec<&str> = requires.as_deref().into_iter().collect();
                AtomSpec::task(&format!("t{i}"), &requires, &[&format!("v{i}")])
            })
            .collect()
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_compile_100k_linear_no_arguments() {
        // (what `ferroflow plan` compiles for a flow of no-op tasks)
        let names: Vec<String> = (0..BENCH_ATOMS).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let spec = spec(&names, linear((0..BENCH_ATOMS).map(atom).collect()));
        let compiled = bench_compile("linear flow of 100,000 no-argument atoms", &spec);
        assert_eq!(compiled.topo.len(), BENCH_ATOMS);
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_compile_100k_linear_chain() {
        let atoms = chained_atoms(|i| i.checked_sub(1));
        let spec = spec_with(atoms, linear((0..BENCH_ATOMS).map(atom).collect()));
        let compiled = bench_compile("linear chain of 100,000 atoms (each requires the previous)", &spec);
        assert_eq!(compiled.providers.execute(BENCH_ATOMS - 1), [(BENCH_ATOMS - 2) as u32]);
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_compile_100k_graph_tree() {
        let atoms = chained_atoms(|i| if i == 0 { None } else { Some(i / 2) });
        let links: Vec<(usize, usize)> = (1..BENCH_ATOMS).map(|i| (i / 2, i)).collect();
        let spec = spec_with(atoms, graph((0..BENCH_ATOMS).map(atom).collect(), &links));
        let compiled = bench_compile("graph flow of 100,000 atoms (binary tree links)", &spec);
        assert_eq!(compiled.providers.execute(BENCH_ATOMS - 1), [((BENCH_ATOMS - 1) / 2) as u32]);
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_compile_100k_random_dag() {
        // (the benchmarks' random DAG, `ferroflow.benchmarking.flows.random_dag`: each atom requires
        // up to 3 earlier ones, linked from each; drawn here with a fixed LCG)
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut draw = |bound: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % bound
        };
        let mut links: Vec<(usize, usize)> = Vec::new();
        let atoms: Vec<AtomSpec> = (0..BENCH_ATOMS)
            .map(|i| {
                let mut required: Vec<usize> = Vec::new();
                if i > 0 {
                    for _ in 0..draw(4).min(i) {
                        let earlier = draw(i);
                        if !required.contains(&earlier) {
                            required.push(earlier);
                        }
                    }
                }
                links.extend(required.iter().map(|&earlier| (earlier, i)));
                let names: Vec<String> = required.iter().map(|earlier| format!("v{earlier}")).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                AtomSpec::task(&format!("t{i}"), &names, &[&format!("v{i}")])
            })
            .collect();
        let link_count = links.len();
        let spec = spec_with(atoms, graph((0..BENCH_ATOMS).map(atom).collect(), &links));
        let compiled = bench_compile(&format!("random DAG of 100,000 atoms ({link_count} links)"), &spec);
        assert_eq!(compiled.topo.len(), BENCH_ATOMS);
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_compile_100k_nested_unordered() {
        let (groups, per_group) = (1_000, BENCH_ATOMS / 1_000);
        let names: Vec<String> = (0..BENCH_ATOMS).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let root =
            linear((0..groups).map(|g| unordered((0..per_group).map(|i| atom(g * per_group + i)).collect())).collect());
        let compiled = bench_compile("linear of 1,000 unordered flows x 100 atoms", &spec(&names, root));
        assert_eq!(compiled.topo.len(), BENCH_ATOMS);
    }
}
