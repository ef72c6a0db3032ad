//! Topological order of the execution graph, and naming the atoms of a cycle when there is none.
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::build::ExecGraph;
use super::tree::FlatTree;
use super::{CompiledFlow, Csr, NONE};
use crate::error::{CoreError, CoreResult};
use crate::spec::AtomSpec;

/// Kahn's algorithm over all nodes; among ready atoms the lowest index goes first (joins are passed
/// through as soon as they are ready and left out of the result).
pub(crate) fn topo_order(
    atoms: &[AtomSpec],
    tree: &FlatTree,
    graph: &ExecGraph,
    preds: &Csr,
    succs: &Csr,
) -> CoreResult<Vec<u32>> {
    let atom_count = atoms.len();
    let mut in_degree: Vec<u32> =
        (0..graph.node_count as u32).map(|node| preds.neighbours(node).len() as u32).collect();
    let mut ready_atoms: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut ready_joins: Vec<u32> = Vec::new();
    for (node, &degree) in in_degree.iter().enumerate() {
        if degree == 0 {
            if node < atom_count {
                ready_atoms.push(Reverse(node as u32));
            } else {
                ready_joins.push(node as u32);
            }
        }
    }
    let mut order = Vec::with_capacity(atom_count);
    let mut done = 0usize;
    loop {
        let node = if let Some(join) = ready_joins.pop() {
            join
        } else if let Some(Reverse(atom)) = ready_atoms.pop() {
            order.push(atom);
            atom
        } else {
            break;
        };
        done += 1;
        for &next in succs.neighbours(node) {
            in_degree[next as usize] -= 1;
            if in_degree[next as usize] == 0 {
                if (next as usize) < atom_count {
                    ready_atoms.push(Reverse(next));
                } else {
                    ready_joins.push(next);
                }
            }
        }
    }
    if done == graph.node_count {
        Ok(order)
    } else {
        Err(cycle_error(atoms, tree, graph, preds, &in_degree))
    }
}

/// The order a serial engine runs the atoms of `flow` when every one succeeds: rounds, each the
/// atoms made ready by the round before (joins passed through at once), each round highest
/// priority first, then in topological order (as the scheduler hands them out). `None` when
/// that is the atoms' own order (a linear or unordered flow, for one).
///
/// A new flow's rows are laid out in this order (`ferroflow.engines.persist`): a random DAG run
/// in index order touches a different page of its rows at nearly every step.
pub fn round_order(flow: &CompiledFlow) -> Option<Vec<u32>> {
    let atom_count = flow.atoms.len();
    // Each atom's sort key packed in one word (priority, highest first, then topological
    // position): read from a compact array, not from each atom's spec, a cache miss per
    // comparison on a big flow.
    let mut keys: Vec<u64> = flow.topo_positions().into_iter().map(u64::from).collect();
    for (key, atom) in keys.iter_mut().zip(&flow.atoms) {
        // (a priority's order flipped to its unsigned rank, highest first)
        *key |= u64::from(!(atom.priority as u32 ^ 0x8000_0000)) << 32;
    }
    let mut waiting: Vec<u32> =
        (0..flow.node_count as u32).map(|node| flow.preds.neighbours(node).len() as u32).collect();
    let mut round: Vec<u32> = Vec::new();
    let mut joins: Vec<u32> = Vec::new();
    for node in 0..flow.node_count as u32 {
        if waiting[node as usize] == 0 {
            if (node as usize) < atom_count {
                round.push(node);
            } else {
                joins.push(node);
            }
        }
    }
    let mut order = Vec::with_capacity(atom_count);
    let mut next = Vec::new();
    while !round.is_empty() || !joins.is_empty() {
        round.sort_unstable_by_key(|&atom| keys[atom as usize]);
        order.extend_from_slice(&round);
        // What this round (and the joins it frees, at once) makes ready runs in the next one.
        let mut done = std::mem::take(&mut round);
        done.append(&mut joins);
        while let Some(node) = done.pop() {
            for &succ in flow.succs.neighbours(node) {
                waiting[succ as usize] -= 1;
                if waiting[succ as usize] == 0 {
                    if (succ as usize) < atom_count {
                        next.push(succ);
                    } else {
                        done.push(succ);
                    }
                }
            }
        }
        std::mem::swap(&mut round, &mut next);
    }
    let identity = order.iter().enumerate().all(|(i, &atom)| atom as usize == i);
    (!identity && order.len() == atom_count).then_some(order)
}

/// Finds one cycle among the nodes Kahn could not finish and names it. Every unfinished node has an
/// unfinished predecessor, so walking predecessors from one of them must come back on itself.
fn cycle_error(atoms: &[AtomSpec], tree: &FlatTree, graph: &ExecGraph, preds: &Csr, in_degree: &[u32]) -> CoreError {
    let unfinished = |node: u32| in_degree[node as usize] > 0;
    let start = (0..graph.node_count as u32).find(|&node| unfinished(node)).unwrap_or(0);
    let mut step_of = vec![NONE; graph.node_count];
    let mut walk = Vec::new();
    let mut node = start;
    while step_of[node as usize] == NONE {
        step_of[node as usize] = walk.len() as u32;
        walk.push(node);
        node = preds.neighbours(node).iter().copied().find(|&pred| unfinished(pred)).unwrap_or(node);
    }
    // `walk` went backwards; the cycle is its tail from the repeated node, reversed.
    let mut cycle: Vec<u32> = walk[step_of[node as usize] as usize..].iter().rev().copied().collect();
    // Start from the lowest node (atoms come before joins) so the message is deterministic.
    let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
    cycle.rotate_left(first);
    let atom_count = atoms.len() as u32;
    let cycle_atoms: Vec<u32> = cycle.iter().copied().filter(|&node| node < atom_count).collect();
    if cycle_atoms.is_empty() {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&join| graph.join_flow[(join - atom_count) as usize])
            .filter(|&flow| flow != NONE)
            .map(|flow| tree.flows[flow as usize].name)
            .collect();
        return CoreError::Cycle(format!("Dependency cycle between empty subflows: {}", closed_path(&names)));
    }
    cycle.retain(|&node| node < atom_count);
    let names: Vec<&str> = cycle.iter().map(|&atom| atoms[atom as usize].name.as_str()).collect();
    CoreError::Cycle(format!("Dependency cycle between atoms: {}", closed_path(&names)))
}

/// `a -> b -> c -> a`.
fn closed_path(names: &[&str]) -> String {
    let mut path = names.join(" -> ");
    if let Some(first) = names.first() {
        path.push_str(" -> ");
        path.push_str(first);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::build::build;
    use crate::graph::testutil::*;
    use crate::graph::tree::{flatten, LocalLinks};
    use crate::spec::FlowSpec;

    fn topo(spec: &FlowSpec) -> CoreResult<Vec<u32>> {
        let tree = flatten(spec).unwrap();
        let graph = build(&tree, &LocalLinks::new(&tree));
        let succs = Csr::from_edges(graph.node_count, &graph.edges);
        let reversed: Vec<(u32, u32)> = graph.edges.iter().map(|&(a, b)| (b, a)).collect();
        let preds = Csr::from_edges(graph.node_count, &reversed);
        topo_order(&spec.atoms, &tree, &graph, &preds, &succs)
    }

    #[test]
    fn ties_go_by_atom_index() {
        let order = topo(&spec(&["a", "b", "c"], unordered(vec![atom(2), atom(0), atom(1)]))).unwrap();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn edges_win_over_index() {
        let order = topo(&spec(&["a", "b", "c"], graph(vec![atom(0), atom(1), atom(2)], &[(2, 0), (1, 2)]))).unwrap();
        assert_eq!(order, vec![1, 2, 0]);
    }

    #[test]
    fn cycle_is_named_from_its_lowest_atom() {
        let err = topo(&spec(
            &["x", "a", "b", "c"],
            linear(vec![atom(0), graph(vec![atom(2), atom(3), atom(1)], &[(0, 1), (1, 2), (2, 0)])]),
        ))
        .unwrap_err();
        assert_eq!(err, CoreError::Cycle("Dependency cycle between atoms: a -> b -> c -> a".into()));
    }

    #[test]
    fn cycle_through_nested_flows_names_atoms() {
        // sub1 = [a, b] linear, sub2 = [c] ; sub1 -> sub2 -> sub1.
        let err = topo(&spec(
            &["a", "b", "c"],
            graph(vec![linear(vec![atom(0), atom(1)]), linear(vec![atom(2)])], &[(0, 1), (1, 0)]),
        ))
        .unwrap_err();
        assert_eq!(err, CoreError::Cycle("Dependency cycle between atoms: a -> b -> c -> a".into()));
    }

    #[test]
    fn self_link_is_a_cycle() {
        let err = topo(&spec(&["a"], graph(vec![atom(0)], &[(0, 0)]))).unwrap_err();
        assert_eq!(err, CoreError::Cycle("Dependency cycle between atoms: a -> a".into()));
    }

    #[test]
    fn cycle_of_empty_subflows_names_them() {
        let err =
            topo(&spec(&["a"], graph(vec![atom(0), empty().named("e1"), empty().named("e2")], &[(1, 2), (2, 1)])))
                .unwrap_err();
        assert_eq!(err, CoreError::Cycle("Dependency cycle between empty subflows: e1 -> e2 -> e1".into()));
    }

    fn rounds(spec: &FlowSpec) -> Option<Vec<u32>> {
        round_order(&crate::graph::compile(spec).unwrap())
    }

    #[test]
    fn flows_run_in_index_order_have_no_round_order() {
        assert_eq!(rounds(&spec(&["a", "b", "c"], linear(vec![atom(0), atom(1), atom(2)]))), None);
        assert_eq!(rounds(&spec(&["a", "b", "c"], unordered(vec![atom(0), atom(1), atom(2)]))), None);
        let groups = linear(vec![unordered(vec![atom(0), atom(1)]), unordered(vec![atom(2), atom(3)])]);
        assert_eq!(rounds(&spec(&["a", "b", "c", "d"], groups)), None, "joins pass through");
    }

    #[test]
    fn a_graph_runs_by_rounds_of_ready_atoms() {
        // b and d wait for a; c waits for b: rounds [a, c'], [b, d], [c] where c' is independent.
        let flow = graph(vec![atom(0), atom(1), atom(2), atom(3), atom(4)], &[(0, 1), (1, 2), (0, 3)]);
        assert_eq!(rounds(&spec(&["a", "b", "c", "d", "e"], flow)), Some(vec![0, 4, 1, 3, 2]));
    }

    #[test]
    fn higher_priority_goes_first_within_a_round() {
        let mut flow = spec(&["a", "b", "c"], unordered(vec![atom(0), atom(1), atom(2)]));
        flow.atoms[2].priority = 5;
        assert_eq!(rounds(&flow), Some(vec![2, 0, 1]));
        let mut flow = spec(&["a", "b", "c", "d", "e"], unordered((0..5).map(atom).collect()));
        for (atom, priority) in flow.atoms.iter_mut().zip([-1, i32::MIN, 0, i32::MAX, -1]) {
            atom.priority = priority;
        }
        assert_eq!(rounds(&flow), Some(vec![3, 2, 0, 4, 1]), "then topological order among equals");
    }
}
