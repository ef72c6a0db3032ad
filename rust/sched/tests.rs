//! Scheduler tests on hand-built execution graphs (no compiler needed).
use super::*;
use crate::graph::{Csr, Providers};
use crate::spec::AtomSpec;

/// A compiled flow from atom names, (from, to) edges over nodes, and optional retry scopes
/// `(retry, members)`. Nodes past the atoms are joins.
fn flow(names: &[&str], joins: usize, edges: &[(u32, u32)], retries: &[(u32, &[u32])]) -> Arc<CompiledFlow> {
    let mut atoms: Vec<AtomSpec> = names.iter().map(|n| AtomSpec::task(n, &[], &[])).collect();
    let node_count = atoms.len() + joins;
    let reversed: Vec<(u32, u32)> = edges.iter().map(|&(a, b)| (b, a)).collect();
    let mut retry_of = vec![NONE; atoms.len()];
    let mut retry_scope = vec![Vec::new(); atoms.len()];
    for &(retry, members) in retries {
        atoms[retry as usize].kind = AtomKind::Retry;
        retry_scope[retry as usize] = members.to_vec();
        for &m in members {
            if retry_of[m as usize] == NONE || members.len() < retry_scope[retry_of[m as usize] as usize].len() {
                retry_of[m as usize] = retry;
            }
        }
    }
    let topo = (0..atoms.len() as u32).collect();
    Arc::new(CompiledFlow {
        providers: Providers::default(),
        atoms,
        node_count,
        preds: Csr::from_edges(node_count, &reversed),
        succs: Csr::from_edges(node_count, edges),
        topo,
        retry_of,
        retry_scope,
        deciders: Vec::new(),
    })
}

fn chain(n: u32) -> Arc<CompiledFlow> {
    let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let edges: Vec<(u32, u32)> = (1..n).map(|i| (i - 1, i)).collect();
    flow(&refs, 0, &edges, &[])
}

fn next(s: &mut Scheduler) -> Vec<Action> {
    let mut out = Vec::new();
    s.schedule(usize::MAX, &mut out);
    out
}

fn exec(atoms: &[u32]) -> Vec<Action> {
    atoms.iter().map(|&atom| Action { atom, kind: ActionKind::Execute }).collect()
}

fn revert(atoms: &[u32]) -> Vec<Action> {
    atoms.iter().map(|&atom| Action { atom, kind: ActionKind::Revert }).collect()
}

/// Runs the flow serially; `fails` lists atoms whose execute fails (resolved by reverting all).
/// Returns the actions in the order they ran.
fn run(s: &mut Scheduler, fails: &[u32]) -> Vec<Action> {
    let mut log = Vec::new();
    loop {
        let mut batch = Vec::new();
        s.schedule(1, &mut batch);
        let Some(&action) = batch.first() else { break };
        log.push(action);
        match action.kind {
            ActionKind::Execute => {
                if s.complete_execute(action.atom, !fails.contains(&action.atom)).unwrap() {
                    s.resolve(Resolution::RevertAll).unwrap();
                }
            }
            ActionKind::Revert => s.complete_revert(action.atom, true).unwrap(),
            ActionKind::Decide => s.decided(action.atom).unwrap(),
        }
    }
    log
}

#[test]
fn linear_runs_in_order_and_succeeds() {
    let mut s = Scheduler::new(chain(4));
    assert_eq!(run(&mut s, &[]), exec(&[0, 1, 2, 3]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn only_one_ready_at_a_time_in_a_chain() {
    let mut s = Scheduler::new(chain(3));
    assert_eq!(next(&mut s), exec(&[0]));
    assert_eq!(next(&mut s), vec![]);
    assert_eq!(s.outcome(), None);
    s.complete_execute(0, true).unwrap();
    assert_eq!(next(&mut s), exec(&[1]));
}

#[test]
fn failure_reverts_what_ran_in_reverse_order_and_nothing_else() {
    let mut s = Scheduler::new(chain(5));
    let log = run(&mut s, &[2]);
    let mut expected = exec(&[0, 1, 2]);
    expected.extend(revert(&[2, 1, 0]));
    assert_eq!(log, expected);
    assert_eq!(s.outcome(), Some(Outcome::Reverted));
    assert_eq!(s.state(3), State::Pending);
    assert_eq!(s.state(4), State::Pending);
    assert_eq!(s.state(0), State::Reverted);
}

#[test]
fn independent_atoms_are_ready_together_and_priority_orders_them() {
    let mut f = (*flow(&["a", "b", "c"], 0, &[], &[])).clone();
    f.atoms[2].priority = 5;
    let mut s = Scheduler::new(Arc::new(f));
    assert_eq!(next(&mut s), exec(&[2, 0, 1]));
}

#[test]
fn joins_relay_readiness_between_groups() {
    // {a, b} -> join(4) -> {c, d}
    let f = flow(&["a", "b", "c", "d"], 1, &[(0, 4), (1, 4), (4, 2), (4, 3)], &[]);
    let mut s = Scheduler::new(f);
    assert_eq!(next(&mut s), exec(&[0, 1]));
    s.complete_execute(0, true).unwrap();
    assert_eq!(next(&mut s), vec![]);
    s.complete_execute(1, true).unwrap();
    assert_eq!(next(&mut s), exec(&[2, 3]));
    // d fails: revert all; c must finish first, then reverts cross the join backwards.
    s.complete_execute(3, false).unwrap();
    s.resolve(Resolution::RevertAll).unwrap();
    assert_eq!(next(&mut s), revert(&[3]));
    s.complete_execute(2, true).unwrap();
    assert_eq!(next(&mut s), revert(&[2]));
    s.complete_revert(3, true).unwrap();
    assert_eq!(next(&mut s), vec![]);
    s.complete_revert(2, true).unwrap();
    assert_eq!(next(&mut s), revert(&[1, 0]));
}

#[test]
fn parallel_failure_reverts_running_atoms_after_they_finish() {
    let f = flow(&["a", "b"], 0, &[], &[]);
    let mut s = Scheduler::new(f);
    assert_eq!(next(&mut s), exec(&[0, 1]));
    assert!(s.complete_execute(1, false).unwrap());
    s.resolve(Resolution::RevertAll).unwrap();
    assert_eq!(next(&mut s), revert(&[1]));
    // a was running when b failed: its success is followed by its revert.
    assert!(!s.complete_execute(0, true).unwrap());
    assert_eq!(next(&mut s), revert(&[0]));
}

#[test]
fn revert_failure_halts_and_ends_in_failure() {
    let mut s = Scheduler::new(chain(3));
    for atom in 0..2 {
        next(&mut s);
        s.complete_execute(atom, true).unwrap();
    }
    next(&mut s);
    assert!(s.complete_execute(2, false).unwrap());
    s.resolve(Resolution::RevertAll).unwrap();
    assert_eq!(next(&mut s), revert(&[2]));
    s.complete_revert(2, false).unwrap();
    assert_eq!(next(&mut s), vec![]);
    assert_eq!(s.outcome(), Some(Outcome::Failure));
    assert_eq!(s.state(1), State::Success);
}

#[test]
fn unresolved_failure_ends_in_failure() {
    let mut s = Scheduler::new(chain(2));
    next(&mut s);
    assert!(s.complete_execute(0, false).unwrap());
    s.halt();
    assert_eq!(s.outcome(), Some(Outcome::Failure));
}

#[test]
fn transitions_are_logged_in_order() {
    let mut s = Scheduler::new(chain(2));
    next(&mut s);
    s.complete_execute(0, true).unwrap();
    let t = s.take_transitions();
    assert_eq!(
        t,
        vec![
            Transition { atom: 0, state: State::Running, intention: Intention::Execute },
            Transition { atom: 0, state: State::Success, intention: Intention::Execute },
        ]
    );
    assert!(s.take_transitions().is_empty());
}

#[test]
fn resume_skips_success_and_reruns_running() {
    let mut s = Scheduler::new(chain(4));
    s.restore(0, State::Success, Intention::Execute).unwrap();
    s.restore(1, State::Running, Intention::Execute).unwrap();
    assert!(s.start().is_empty());
    assert_eq!(run(&mut s, &[]), exec(&[1, 2, 3]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn resume_continues_a_revert_in_progress() {
    let mut s = Scheduler::new(chain(4));
    s.restore(0, State::Success, Intention::Revert).unwrap();
    s.restore(1, State::Reverting, Intention::Revert).unwrap();
    s.restore(2, State::Reverted, Intention::Revert).unwrap();
    s.restore(3, State::Pending, Intention::Revert).unwrap();
    assert!(s.start().is_empty());
    assert_eq!(run(&mut s, &[]), revert(&[1, 0]));
    assert_eq!(s.outcome(), Some(Outcome::Reverted));
}

#[test]
fn resume_reports_saved_failures_for_resolution() {
    let mut s = Scheduler::new(chain(3));
    s.restore(0, State::Success, Intention::Execute).unwrap();
    s.restore(1, State::Failure, Intention::Execute).unwrap();
    assert_eq!(s.start(), vec![1]);
    s.resolve(Resolution::RevertAll).unwrap();
    assert_eq!(run(&mut s, &[]), revert(&[1, 0]));
}

#[test]
fn retry_reverts_its_scope_then_runs_it_again() {
    // r(0) -> a(1) -> b(2); r controls a and b.
    let f = flow(&["r", "a", "b"], 0, &[(0, 1), (1, 2)], &[(0, &[1, 2])]);
    let mut s = Scheduler::new(f);
    let mut log = Vec::new();
    let mut attempts = 0;
    loop {
        let mut batch = Vec::new();
        s.schedule(1, &mut batch);
        let Some(&action) = batch.first() else { break };
        log.push(action);
        match action.kind {
            ActionKind::Execute => {
                let fail = action.atom == 2 && attempts < 1;
                if action.atom == 2 {
                    attempts += 1;
                }
                if s.complete_execute(action.atom, !fail).unwrap() {
                    assert_eq!(s.retry_of(2), Some(0));
                    s.resolve(Resolution::Retry(0)).unwrap();
                }
            }
            ActionKind::Revert => s.complete_revert(action.atom, true).unwrap(),
            ActionKind::Decide => s.decided(action.atom).unwrap(),
        }
    }
    let mut expected = exec(&[0, 1, 2]);
    expected.extend(revert(&[2, 1]));
    expected.extend(exec(&[0, 1, 2]));
    assert_eq!(log, expected);
    assert_eq!(s.outcome(), Some(Outcome::Success));
    let retrying = s.take_transitions().iter().any(|t| t.atom == 0 && t.state == State::Retrying);
    assert!(retrying);
}

#[test]
fn retry_revert_decision_reverts_only_its_scope() {
    // x(0) -> r(1) -> a(2); r controls a.
    let f = flow(&["x", "r", "a"], 0, &[(0, 1), (1, 2)], &[(1, &[2])]);
    let mut s = Scheduler::new(f);
    for atom in 0..2 {
        assert_eq!(next(&mut s), exec(&[atom]));
        s.complete_execute(atom, true).unwrap();
    }
    next(&mut s);
    assert!(s.complete_execute(2, false).unwrap());
    s.resolve(Resolution::Revert(1)).unwrap();
    assert_eq!(run(&mut s, &[]), revert(&[2, 1]));
    assert_eq!(s.state(0), State::Success);
    assert_eq!(s.outcome(), Some(Outcome::Reverted));
}

#[test]
fn resume_of_a_retrying_retry_resets_its_scope() {
    let f = flow(&["r", "a"], 0, &[(0, 1)], &[(0, &[1])]);
    let mut s = Scheduler::new(f);
    s.restore(0, State::Retrying, Intention::Retry).unwrap();
    s.restore(1, State::Reverted, Intention::Revert).unwrap();
    s.start();
    assert_eq!(run(&mut s, &[]), exec(&[0, 1]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn ignored_atoms_satisfy_successors() {
    let mut s = Scheduler::new(chain(3));
    s.ignore(&[1]).unwrap();
    assert_eq!(run(&mut s, &[]), exec(&[0, 2]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn bad_reports_are_errors_not_panics() {
    let mut s = Scheduler::new(chain(2));
    assert!(matches!(s.complete_execute(7, true), Err(CoreError::NotFound(_))));
    assert!(matches!(s.complete_execute(1, true), Err(CoreError::InvalidState(_))));
    assert!(matches!(s.complete_revert(0, true), Err(CoreError::InvalidState(_))));
    assert!(matches!(s.resolve(Resolution::Retry(0)), Err(CoreError::InvalidState(_))));
}

#[test]
fn large_chain_is_linear() {
    let n = 200_000;
    let mut s = Scheduler::new(chain(n));
    let started = std::time::Instant::now();
    let log = run(&mut s, &[]);
    assert_eq!(log.len(), n as usize);
    assert_eq!(s.outcome(), Some(Outcome::Success));
    eprintln!("200k-atom chain scheduled in {:?}", started.elapsed());
}

#[test]
fn resume_with_a_revert_failure_runs_nothing() {
    let mut s = Scheduler::new(chain(3));
    s.restore(0, State::Success, Intention::Revert).unwrap();
    s.restore(1, State::RevertFailure, Intention::Revert).unwrap();
    s.restore(2, State::Reverted, Intention::Revert).unwrap();
    s.start();
    assert_eq!(next(&mut s), vec![]);
    assert_eq!(s.outcome(), Some(Outcome::Failure));
}

fn gated_chain() -> Arc<CompiledFlow> {
    let mut f = (*chain(3)).clone();
    f.deciders.push(crate::graph::EdgeDecider {
        decider: 0,
        history_atoms: vec![0],
        entry_atoms: vec![1],
        targets: vec![1, 2],
        depth: crate::spec::DeciderDepth::All,
    });
    Arc::new(f)
}

#[test]
fn a_gated_atom_is_decided_before_it_runs() {
    let mut s = Scheduler::new(gated_chain());
    assert_eq!(next(&mut s), exec(&[0]));
    s.complete_execute(0, true).unwrap();
    assert_eq!(next(&mut s), vec![Action { atom: 1, kind: ActionKind::Decide }]);
    assert_eq!(s.state(1), State::Pending);
    s.decided(1).unwrap();
    assert_eq!(next(&mut s), exec(&[1]));
}

#[test]
fn a_decider_saying_no_ignores_its_targets() {
    let mut s = Scheduler::new(gated_chain());
    next(&mut s);
    s.complete_execute(0, true).unwrap();
    next(&mut s);
    s.ignore(&[1, 2]).unwrap();
    assert_eq!(next(&mut s), vec![]);
    assert_eq!(s.state(2), State::Ignore);
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn resume_reverts_an_atom_interrupted_while_the_flow_was_reverting() {
    let mut s = Scheduler::new(chain(3));
    s.restore(0, State::Success, Intention::Revert).unwrap();
    s.restore(1, State::Running, Intention::Revert).unwrap();
    s.restore(2, State::Pending, Intention::Revert).unwrap();
    assert!(s.start().is_empty());
    assert_eq!(run(&mut s, &[]), revert(&[1, 0]));
    assert_eq!(s.outcome(), Some(Outcome::Reverted));
}

#[test]
fn rerun_before_start_runs_the_atoms_again_after_their_predecessors() {
    let mut s = Scheduler::new(chain(4));
    for atom in 0..4 {
        s.restore(atom, State::Success, Intention::Execute).unwrap();
    }
    s.rerun(&[3, 2]).unwrap();
    let logged: Vec<(u32, State)> = s.take_transitions().iter().map(|t| (t.atom, t.state)).collect();
    assert_eq!(logged, vec![(3, State::Pending), (2, State::Pending)]);
    assert_eq!(run(&mut s, &[]), exec(&[2, 3]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn rerun_after_a_finished_run_makes_work_ready_again() {
    let mut s = Scheduler::new(chain(3));
    assert_eq!(run(&mut s, &[]), exec(&[0, 1, 2]));
    s.rerun(&[1, 2]).unwrap();
    assert_eq!(s.outcome(), None);
    assert_eq!(run(&mut s, &[]), exec(&[1, 2]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn reverted_outside_the_schedule_then_rerun() {
    let mut s = Scheduler::new(chain(3));
    assert_eq!(run(&mut s, &[]), exec(&[0, 1, 2]));
    s.reverted(2, true).unwrap();
    s.reverted(1, true).unwrap();
    assert_eq!((s.state(1), s.intention(1)), (State::Reverted, Intention::Revert));
    s.rerun(&[1, 2]).unwrap();
    assert_eq!(run(&mut s, &[]), exec(&[1, 2]));
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn a_failed_revert_outside_the_schedule_halts_the_flow() {
    let mut s = Scheduler::new(chain(3));
    for atom in 0..3 {
        s.restore(atom, State::Success, Intention::Execute).unwrap();
    }
    s.reverted(2, false).unwrap();
    s.rerun(&[1]).unwrap();
    assert_eq!(run(&mut s, &[]), vec![], "nothing runs after a failed revert");
    assert_eq!(s.outcome(), Some(Outcome::Failure));
}

#[test]
fn atoms_in_flight_cannot_be_rerun_or_marked_reverted() {
    let mut s = Scheduler::new(chain(2));
    assert_eq!(next(&mut s), exec(&[0]));
    assert!(matches!(s.rerun(&[0]), Err(CoreError::InvalidState(_))));
    assert!(matches!(s.reverted(0, true), Err(CoreError::InvalidState(_))));
    assert!(matches!(s.rerun(&[7]), Err(CoreError::NotFound(_))));
    assert_eq!(s.state(1), State::Pending, "a refused call changes nothing");
}

#[test]
fn unscheduled_actions_return_to_pending_silently() {
    let mut s = Scheduler::new(chain(2));
    assert_eq!(next(&mut s), exec(&[0]));
    s.take_transitions();
    s.unschedule(&[0]).unwrap();
    assert!(s.take_transitions().is_empty());
    assert_eq!(s.state(0), State::Pending);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(next(&mut s), exec(&[0]));
    assert!(matches!(s.unschedule(&[1]), Err(CoreError::InvalidState(_))));
}

/// The `next` batches until nothing is ready, every execute succeeding (what may run at once).
fn waves(s: &mut Scheduler) -> Vec<Vec<u32>> {
    let mut waves = Vec::new();
    loop {
        let batch = next(s);
        if batch.is_empty() {
            return waves;
        }
        for action in &batch {
            assert_eq!(action.kind, ActionKind::Execute);
            s.complete_execute(action.atom, true).unwrap();
        }
        waves.push(batch.iter().map(|a| a.atom).collect());
    }
}

#[test]
fn a_kept_atom_holds_back_its_successors_until_the_atoms_before_it_ran_again() {
    // a → b → c → d: c kept (SUCCESS), d still to run, a and b run again (a version policy).
    let mut s = Scheduler::new(chain(4));
    s.restore(0, State::Success, Intention::Execute).unwrap();
    s.restore(1, State::Success, Intention::Execute).unwrap();
    s.restore(2, State::Success, Intention::Execute).unwrap();
    s.restore(3, State::Running, Intention::Execute).unwrap();
    s.rerun(&[0, 1]).unwrap();
    assert_eq!(waves(&mut s), vec![vec![0], vec![1], vec![3]], "d waits for b, through c");
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn a_kept_atom_holds_back_its_successors_after_start_too() {
    let mut s = Scheduler::new(chain(4));
    for atom in 0..3 {
        s.restore(atom, State::Success, Intention::Execute).unwrap();
    }
    assert!(s.start().is_empty());
    s.rerun(&[1]).unwrap(); // after start (a rewind's rerun)
    assert_eq!(waves(&mut s), vec![vec![1], vec![3]]);
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn kept_atoms_relay_through_joins_and_fan_in() {
    // 0 → 1 → join(4) → 2 → 3; and 0 → 3 directly. 1 and 2 kept, 0 runs again.
    let mut s = Scheduler::new(flow(&["a", "b", "c", "d"], 1, &[(0, 1), (1, 4), (4, 2), (2, 3), (0, 3)], &[]));
    s.restore(1, State::Success, Intention::Execute).unwrap();
    s.restore(2, State::Success, Intention::Execute).unwrap();
    assert_eq!(waves(&mut s), vec![vec![0], vec![3]]);
    assert_eq!(s.outcome(), Some(Outcome::Success));
}

#[test]
fn a_revert_waits_for_successors_behind_an_ignored_atom() {
    // 0 → 1 → 2 with 1 ignored: 2 fails; 0 reverts only once 2 is reverted (TaskFlow's order).
    let mut s = Scheduler::new(chain(3));
    s.restore(1, State::Ignore, Intention::Ignore).unwrap();
    s.start();
    assert_eq!(next(&mut s), exec(&[0]));
    s.complete_execute(0, true).unwrap();
    assert_eq!(next(&mut s), exec(&[2]));
    assert!(s.complete_execute(2, false).unwrap());
    s.resolve(Resolution::RevertAll).unwrap();
    assert_eq!(next(&mut s), revert(&[2]));
    s.complete_revert(2, true).unwrap();
    assert_eq!(next(&mut s), revert(&[0]));
    s.complete_revert(0, true).unwrap();
    assert_eq!(s.outcome(), Some(Outcome::Reverted));
}

#[test]
fn ignored_atoms_satisfy_once_their_predecessors_are() {
    // 0 → 1 → 2: 1 ignored before 0 ran (a decider), 2 waits for 0 all the same.
    let mut s = Scheduler::new(chain(3));
    s.restore(1, State::Ignore, Intention::Ignore).unwrap();
    assert_eq!(waves(&mut s), vec![vec![0], vec![2]]);
    assert_eq!(s.outcome(), Some(Outcome::Success));
}
