//! The scheduler: owns every atom's state and intention and decides what runs next.
//!
//! Poll/complete shape (the engine in Python drives it): `schedule()` hands out ready actions and
//! marks them RUNNING / REVERTING, the engine runs the user's code and reports back with
//! `complete_execute()` / `complete_revert()`. Every state or intention change is appended to a
//! transition log that the engine drains (`take_transitions`) to persist and notify.
//!
//! Readiness is incremental: each node keeps a count of predecessors that are not yet satisfied
//! (`waiting`) and of successors that still block its revert (`blocking`); a state change touches
//! only the node's direct neighbours. No step scans all atoms. Join nodes (see `graph::CompiledFlow`)
//! hold no state: a join is satisfied when all its predecessors are, and blocks when any successor
//! does, so resets and reverts never have to visit them.
//!
//! An atom is satisfied when it completed (SUCCESS or IGNORE, to be executed) *and* its own
//! predecessors are satisfied: readiness follows the graph of providers, not the saved states
//! alone. A completed atom kept on resume while an atom upstream of it runs again (a version or
//! provider policy, a split, a rewind) therefore holds back everything after it until that atom has
//! run, the order the graph (and the resume plan) promise. In a run that only moves forward the
//! extra condition always holds, so it costs nothing there.
mod states;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

pub use states::{atom_transition_allowed, Intention, State};

use crate::error::{CoreError, CoreResult};
use crate::graph::{CompiledFlow, NONE};
use crate::spec::AtomKind;

/// What the engine must do with an atom handed out by `schedule()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    Execute = 0,
    Revert = 1,
    /// Deciders guard this atom: the engine calls them, then `ignore()`s what they rule out or
    /// calls `decided()` to let the atom run. The atom stays PENDING meanwhile.
    Decide = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    pub atom: u32,
    pub kind: ActionKind,
}

/// One recorded change of an atom's state and/or intention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub atom: u32,
    pub state: State,
    pub intention: Intention,
}

/// How a failure is resolved (TaskFlow's retry `Decision`, already walked up the retry chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Revert the given retry and every atom it controls.
    Revert(u32),
    /// Revert the atoms the retry controls, then run the retry and its atoms again.
    Retry(u32),
    /// Revert every atom of the flow.
    RevertAll,
}

/// The flow's end, once nothing is ready and nothing runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Reverted,
    Failure,
}

pub struct Scheduler {
    flow: Arc<CompiledFlow>,
    atom_count: usize,
    state: Vec<State>,
    intention: Vec<Intention>,
    /// Predecessors not yet satisfied (for atoms and joins).
    waiting: Vec<u32>,
    /// Successors that block a revert (for atoms and joins).
    blocking: Vec<u32>,
    topo_pos: Vec<u32>,
    /// When each atom last started executing: reverts run most recent first.
    run_seq: Vec<u64>,
    next_seq: u64,
    exec_ready: BinaryHeap<(i32, Reverse<u32>, u32)>,
    revert_ready: BinaryHeap<(u64, u32)>,
    queued_exec: Vec<bool>,
    queued_revert: Vec<bool>,
    /// Atoms whose counters reached zero, to be examined once the current change is done.
    to_consider: Vec<u32>,
    /// The nodes left to visit by a propagation, kept allocated between transitions.
    walk: Vec<u32>,
    in_flight: u32,
    done: u32,
    revert_failures: u32,
    unresolved_failures: u32,
    halted: bool,
    started: bool,
    transitions: Vec<Transition>,
    /// Atoms some decider is attached to, and whether their deciders were consulted this run.
    gated: Vec<bool>,
    decided: Vec<bool>,
}

fn satisfied(state: State, intention: Intention) -> bool {
    matches!(state, State::Success | State::Ignore) && matches!(intention, Intention::Execute | Intention::Ignore)
}

fn blocks(state: State) -> bool {
    !matches!(state, State::Pending | State::Reverted | State::Ignore)
}

impl Scheduler {
    /// A scheduler with every atom PENDING / EXECUTE. Call `restore` for saved states, then `start`.
    pub fn new(flow: Arc<CompiledFlow>) -> Self {
        let atom_count = flow.atoms.len();
        let node_count = flow.node_count;
        let mut gated = vec![false; atom_count];
        for decider in &flow.deciders {
            for &atom in &decider.entry_atoms {
                gated[atom as usize] = true;
            }
        }
        let topo_pos = flow.topo_positions();
        Scheduler {
            atom_count,
            state: vec![State::Pending; atom_count],
            intention: vec![Intention::Execute; atom_count],
            waiting: vec![0; node_count],
            blocking: vec![0; node_count],
            topo_pos,
            run_seq: vec![0; atom_count],
            next_seq: atom_count as u64,
            exec_ready: BinaryHeap::new(),
            revert_ready: BinaryHeap::new(),
            queued_exec: vec![false; atom_count],
            queued_revert: vec![false; atom_count],
            to_consider: Vec::new(),
            walk: Vec::new(),
            in_flight: 0,
            done: 0,
            revert_failures: 0,
            unresolved_failures: 0,
            halted: false,
            started: false,
            transitions: Vec::new(),
            gated,
            decided: vec![false; atom_count],
            flow,
        }
    }

    pub fn flow(&self) -> &Arc<CompiledFlow> {
        &self.flow
    }

    pub fn state(&self, atom: u32) -> State {
        self.state[atom as usize]
    }

    pub fn intention(&self, atom: u32) -> Intention {
        self.intention[atom as usize]
    }

    fn is_retry(&self, atom: u32) -> bool {
        self.flow.atoms[atom as usize].kind == AtomKind::Retry
    }

    fn check_atom(&self, atom: u32) -> CoreResult<()> {
        if (atom as usize) < self.atom_count {
            Ok(())
        } else {
            Err(CoreError::NotFound(format!("no atom with index {atom} (the flow has {})", self.atom_count)))
        }
    }

    /// Sets a saved state before `start()` (resumption). States of an interrupted run are
    /// normalised the way resumption needs them: RUNNING runs again, REVERTING reverts again.
    pub fn restore(&mut self, atom: u32, state: State, intention: Intention) -> CoreResult<()> {
        self.check_atom(atom)?;
        if self.started {
            return Err(CoreError::InvalidState("atom states can only be restored before the run starts".into()));
        }
        let (state, intention) = match state {
            State::Running if intention == Intention::Execute => (State::Pending, Intention::Execute),
            // Interrupted while the flow was already reverting: its execute may have had effects,
            // so it is reverted (the engine hands its revert an "interrupted" failure as result).
            State::Running => (State::Failure, intention),
            State::Reverting => {
                (State::Success, if intention == Intention::Retry { Intention::Retry } else { Intention::Revert })
            }
            State::Retrying => (State::Retrying, Intention::Execute),
            _ => (state, intention),
        };
        let i = atom as usize;
        self.state[i] = state;
        self.intention[i] = intention;
        self.run_seq[i] = u64::from(self.topo_pos[i]);
        Ok(())
    }

    /// Computes the readiness counters from the current states (O(nodes + edges), once per run)
    /// and returns the atoms whose saved FAILURE still has to be resolved by the engine.
    pub fn start(&mut self) -> Vec<u32> {
        self.started = true;
        self.exec_ready.clear();
        self.revert_ready.clear();
        self.queued_exec.iter_mut().for_each(|q| *q = false);
        self.queued_revert.iter_mut().for_each(|q| *q = false);
        // A retry found RETRYING crashed between reverting its atoms and running them again.
        for atom in 0..self.atom_count as u32 {
            if self.state[atom as usize] == State::Retrying {
                for member in self.descendants(atom) {
                    let m = member as usize;
                    if !matches!(self.state[m], State::Pending) || self.intention[m] != Intention::Execute {
                        self.state[m] = State::Pending;
                        self.intention[m] = Intention::Execute;
                        self.transitions.push(Transition {
                            atom: member,
                            state: State::Pending,
                            intention: Intention::Execute,
                        });
                    }
                }
            }
        }
        self.recount();
        // A revert that failed is retried only when asked (engine.reset()); resuming must not
        // quietly carry on around it.
        if self.revert_failures > 0 {
            self.halted = true;
        }
        (0..self.atom_count as u32)
            .filter(|&a| self.state[a as usize] == State::Failure && self.intention[a as usize] == Intention::Execute)
            .collect()
    }

    /// Satisfied for its successors: completed (atoms) and with every predecessor satisfied
    /// (atoms and joins). `waiting[node]` must already be counted.
    fn node_satisfied(&self, node: usize) -> bool {
        self.waiting[node] == 0 && (node >= self.atom_count || satisfied(self.state[node], self.intention[node]))
    }

    /// Blocks the revert of its predecessors: an atom that ran (and is not reverted), an ignored
    /// atom whose successors block (its predecessors wait for what ran after it, as in `TaskFlow`,
    /// where every transitive successor must be reverted first), a join whose successors block.
    fn node_blocks(&self, node: usize) -> bool {
        if node < self.atom_count {
            blocks(self.state[node]) || (self.state[node] == State::Ignore && self.blocking[node] > 0)
        } else {
            self.blocking[node] > 0
        }
    }

    fn recount(&mut self) {
        let flow = self.flow.clone();
        let order = node_topo_order(&flow);
        for &node in &order {
            let unsatisfied = flow.preds.neighbours(node).iter().filter(|&&p| !self.node_satisfied(p as usize)).count();
            self.waiting[node as usize] = unsatisfied as u32;
        }
        for &node in order.iter().rev() {
            let blocking = flow.succs.neighbours(node).iter().filter(|&&s| self.node_blocks(s as usize)).count();
            self.blocking[node as usize] = blocking as u32;
        }
        self.done = 0;
        self.revert_failures = 0;
        self.unresolved_failures = 0;
        for atom in 0..self.atom_count {
            self.count(atom, 1);
            self.to_consider.push(atom as u32);
        }
        self.drain_considered();
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) the atom's contribution to the outcome counters.
    fn count(&mut self, atom: usize, sign: i32) {
        let apply = |counter: &mut u32| {
            *counter = counter.wrapping_add_signed(sign);
        };
        match (self.state[atom], self.intention[atom]) {
            (State::Success | State::Ignore, _) => apply(&mut self.done),
            (State::RevertFailure, _) => apply(&mut self.revert_failures),
            (State::Failure, Intention::Execute) => apply(&mut self.unresolved_failures),
            _ => {}
        }
    }

    /// The one place an atom's state or intention changes: keeps counters and heaps in step.
    fn set(&mut self, atom: u32, state: State, intention: Intention) {
        let i = atom as usize;
        if self.state[i] == state && self.intention[i] == intention {
            return;
        }
        let was_satisfied = self.node_satisfied(i);
        let was_blocking = self.node_blocks(i);
        self.count(i, -1);
        if state == State::Pending {
            self.decided[i] = false;
        }
        self.state[i] = state;
        self.intention[i] = intention;
        self.count(i, 1);
        self.transitions.push(Transition { atom, state, intention });
        if !self.started {
            return; // `start()` counts everything once
        }
        let now_satisfied = self.node_satisfied(i);
        if was_satisfied != now_satisfied {
            self.propagate_satisfied(atom, now_satisfied);
        }
        let now_blocking = self.node_blocks(i);
        if was_blocking != now_blocking {
            self.propagate_blocking(atom, now_blocking);
        }
        self.to_consider.push(atom);
    }

    /// A node became (un)satisfied: its successors wait one predecessor less (more). Joins relay,
    /// and so do completed atoms (satisfied only once their predecessors are: see the module).
    fn propagate_satisfied(&mut self, node: u32, now_satisfied: bool) {
        let flow = self.flow.clone();
        let mut stack = std::mem::take(&mut self.walk);
        stack.push(node);
        while let Some(n) = stack.pop() {
            for &succ in flow.succs.neighbours(n) {
                let s = succ as usize;
                let before = self.waiting[s];
                self.waiting[s] = if now_satisfied { before - 1 } else { before + 1 };
                let crossed = (before == 0) != (self.waiting[s] == 0);
                if s >= self.atom_count {
                    if crossed {
                        stack.push(succ);
                    }
                } else {
                    if crossed && satisfied(self.state[s], self.intention[s]) {
                        stack.push(succ);
                    }
                    if self.waiting[s] == 0 {
                        self.to_consider.push(succ);
                    }
                }
            }
        }
        self.walk = stack; // (empty: kept for its allocation)
    }

    /// A node started (stopped) blocking the revert of its predecessors; joins relay.
    fn propagate_blocking(&mut self, node: u32, now_blocking: bool) {
        let flow = self.flow.clone();
        let mut stack = std::mem::take(&mut self.walk);
        stack.push(node);
        while let Some(n) = stack.pop() {
            for &pred in flow.preds.neighbours(n) {
                let p = pred as usize;
                let before = self.blocking[p];
                self.blocking[p] = if now_blocking { before + 1 } else { before - 1 };
                let crossed = (before == 0) != (self.blocking[p] == 0);
                if p >= self.atom_count || self.state[p] == State::Ignore {
                    // Joins and ignored atoms relay: they block only through their successors.
                    if crossed {
                        stack.push(pred);
                    }
                } else if self.blocking[p] == 0 {
                    self.to_consider.push(pred);
                }
            }
        }
        self.walk = stack; // (empty: kept for its allocation)
    }

    fn exec_eligible(&self, atom: usize) -> bool {
        matches!(self.state[atom], State::Pending | State::Retrying)
            && self.intention[atom] == Intention::Execute
            && self.waiting[atom] == 0
    }

    fn revert_eligible(&self, atom: usize) -> bool {
        matches!(self.state[atom], State::Success | State::Failure)
            && matches!(self.intention[atom], Intention::Revert | Intention::Retry)
            && self.blocking[atom] == 0
    }

    fn drain_considered(&mut self) {
        while let Some(atom) = self.to_consider.pop() {
            let i = atom as usize;
            if self.exec_eligible(i) && !self.queued_exec[i] {
                self.queued_exec[i] = true;
                let priority = self.flow.atoms[i].priority;
                self.exec_ready.push((priority, Reverse(self.topo_pos[i]), atom));
            }
            if self.revert_eligible(i) && !self.queued_revert[i] {
                self.queued_revert[i] = true;
                self.revert_ready.push((self.run_seq[i], atom));
            }
        }
    }

    /// Hands out up to `max` ready actions, reverts first (most recently run first), then executes
    /// (highest priority first, then flow order), marking each REVERTING or RUNNING.
    pub fn schedule(&mut self, max: usize, out: &mut Vec<Action>) {
        if !self.started {
            self.start();
        }
        while out.len() < max && !self.halted {
            if let Some((_, atom)) = self.revert_ready.pop() {
                let i = atom as usize;
                self.queued_revert[i] = false;
                if !self.revert_eligible(i) {
                    continue;
                }
                if self.intention[i] == Intention::Retry {
                    // Its atoms are all reverted: run the retry (and then its atoms) again.
                    self.restart_retry(atom);
                    self.drain_considered();
                    continue;
                }
                self.set(atom, State::Reverting, self.intention[i]);
                self.in_flight += 1;
                out.push(Action { atom, kind: ActionKind::Revert });
                self.drain_considered();
                continue;
            }
            let Some((_, _, atom)) = self.exec_ready.pop() else { break };
            let i = atom as usize;
            self.queued_exec[i] = false;
            if !self.exec_eligible(i) {
                continue;
            }
            if self.gated[i] && !self.decided[i] {
                self.decided[i] = true;
                out.push(Action { atom, kind: ActionKind::Decide });
                continue;
            }
            self.run_seq[i] = self.next_seq;
            self.next_seq += 1;
            self.set(atom, State::Running, Intention::Execute);
            self.in_flight += 1;
            out.push(Action { atom, kind: ActionKind::Execute });
            self.drain_considered();
        }
    }

    fn restart_retry(&mut self, retry: u32) {
        self.set(retry, State::Retrying, Intention::Execute);
        for member in self.descendants(retry) {
            self.set(member, State::Pending, Intention::Execute);
        }
    }

    fn finish_in_flight(&mut self, atom: u32, expected: State) -> CoreResult<()> {
        self.check_atom(atom)?;
        let current = self.state[atom as usize];
        if current != expected {
            return Err(CoreError::InvalidState(format!(
                "atom '{}' reported as finished while {} (expected {})",
                self.flow.atoms[atom as usize].name,
                current.name(),
                expected.name()
            )));
        }
        self.in_flight -= 1;
        Ok(())
    }

    /// Reports the end of an execute. Returns true when the failure must be resolved by the engine
    /// (ask the retries, then call `resolve`); false on success or when a revert already covers it.
    pub fn complete_execute(&mut self, atom: u32, ok: bool) -> CoreResult<bool> {
        self.finish_in_flight(atom, State::Running)?;
        let intention = self.intention[atom as usize];
        self.set(atom, if ok { State::Success } else { State::Failure }, intention);
        self.drain_considered();
        Ok(!ok && intention == Intention::Execute)
    }

    /// Reports the end of a revert. A failed revert halts the flow: nothing new starts and it
    /// ends in FAILURE (TaskFlow keeps the revert failure and stops).
    pub fn complete_revert(&mut self, atom: u32, ok: bool) -> CoreResult<()> {
        self.finish_in_flight(atom, State::Reverting)?;
        let intention = self.intention[atom as usize];
        self.set(atom, if ok { State::Reverted } else { State::RevertFailure }, intention);
        if !ok {
            self.halted = true;
        }
        self.drain_considered();
        Ok(())
    }

    /// Applies the engine's resolution of a failure (after asking the retries).
    pub fn resolve(&mut self, resolution: Resolution) -> CoreResult<()> {
        let flow = self.flow.clone();
        match resolution {
            Resolution::RevertAll => {
                for atom in 0..self.atom_count as u32 {
                    if self.intention[atom as usize] != Intention::Ignore {
                        self.set(atom, self.state[atom as usize], Intention::Revert);
                    }
                }
            }
            Resolution::Revert(retry) | Resolution::Retry(retry) => {
                self.check_atom(retry)?;
                if !self.is_retry(retry) {
                    return Err(CoreError::InvalidState(format!(
                        "'{}' is not a retry",
                        flow.atoms[retry as usize].name
                    )));
                }
                let retry_intention =
                    if matches!(resolution, Resolution::Retry(_)) { Intention::Retry } else { Intention::Revert };
                self.set(retry, self.state[retry as usize], retry_intention);
                // TaskFlow marks everything after the retry in the execution graph, atoms outside
                // its flow included (they cannot have run: they wait for the retry's atoms).
                for member in self.descendants(retry) {
                    if self.intention[member as usize] != Intention::Ignore {
                        self.set(member, self.state[member as usize], Intention::Revert);
                    }
                }
            }
        }
        self.drain_considered();
        Ok(())
    }

    /// Stops handing out work (`never_resolve`, or an engine that gave up); running atoms finish.
    pub fn halt(&mut self) {
        self.halted = true;
    }

    /// Sets every atom PENDING / EXECUTE (TaskFlow's `engine.reset()`).
    pub fn reset(&mut self) {
        for atom in 0..self.atom_count as u32 {
            self.set(atom, State::Pending, Intention::Execute);
        }
        self.halted = false;
        self.in_flight = 0;
        self.drain_considered();
    }

    /// Sets atoms back to PENDING / EXECUTE so that they run again (a rewind, a version or
    /// provider policy). Allowed before or after `start()`; an atom still running or reverting
    /// is refused. Forgetting their results is the engine's job.
    pub fn rerun(&mut self, atoms: &[u32]) -> CoreResult<()> {
        for &atom in atoms {
            self.check_not_in_flight(atom)?;
        }
        for &atom in atoms {
            self.set(atom, State::Pending, Intention::Execute);
        }
        self.drain_considered();
        Ok(())
    }

    /// Records a revert the engine ran itself, outside `schedule()` (before a rewind or a
    /// `revert_then_rerun` runs atoms again): REVERTED, or `REVERT_FAILURE`, which halts the flow
    /// as a failed revert always does.
    pub fn reverted(&mut self, atom: u32, ok: bool) -> CoreResult<()> {
        self.check_not_in_flight(atom)?;
        self.set(atom, if ok { State::Reverted } else { State::RevertFailure }, Intention::Revert);
        if !ok {
            self.halted = true;
        }
        self.drain_considered();
        Ok(())
    }

    fn check_not_in_flight(&self, atom: u32) -> CoreResult<()> {
        self.check_atom(atom)?;
        let state = self.state[atom as usize];
        if self.started && matches!(state, State::Running | State::Reverting) {
            return Err(CoreError::InvalidState(format!(
                "atom '{}' is {} (handed out by schedule()): it cannot be changed before it is reported back",
                self.flow.atoms[atom as usize].name,
                state.name()
            )));
        }
        Ok(())
    }

    /// Marks atoms IGNORE (a decider said no). Only atoms that have not started are ignored.
    pub fn ignore(&mut self, atoms: &[u32]) -> CoreResult<()> {
        for &atom in atoms {
            self.check_atom(atom)?;
            if self.state[atom as usize] == State::Pending {
                self.set(atom, State::Ignore, Intention::Ignore);
            }
        }
        self.drain_considered();
        Ok(())
    }

    /// The deciders of a gated atom let it run: it is ready again (and will not be gated again
    /// until it is reset to PENDING).
    pub fn decided(&mut self, atom: u32) -> CoreResult<()> {
        self.check_atom(atom)?;
        self.to_consider.push(atom);
        self.drain_considered();
        Ok(())
    }

    /// Takes back actions handed out by `schedule()` whose code never started (the engine was
    /// asked to suspend in between): they return to PENDING as if never scheduled, and their
    /// RUNNING transitions are dropped from the log (the engine never published them).
    pub fn unschedule(&mut self, atoms: &[u32]) -> CoreResult<()> {
        for &atom in atoms {
            self.check_atom(atom)?;
            let i = atom as usize;
            if self.state[i] != State::Running {
                return Err(CoreError::InvalidState(format!(
                    "atom '{}' cannot be unscheduled from {}",
                    self.flow.atoms[i].name,
                    self.state[i].name()
                )));
            }
            let logged = self.transitions.len();
            let decided = self.decided[i];
            self.set(atom, State::Pending, self.intention[i]);
            self.transitions.truncate(logged);
            self.decided[i] = decided;
            self.in_flight -= 1;
        }
        self.drain_considered();
        Ok(())
    }

    /// The changes since the last call, in the order they happened.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// True when something could be scheduled now.
    pub fn has_ready(&mut self) -> bool {
        if self.halted {
            return false;
        }
        while let Some(&(_, atom)) = self.revert_ready.peek() {
            if self.revert_eligible(atom as usize) {
                return true;
            }
            self.revert_ready.pop();
            self.queued_revert[atom as usize] = false;
        }
        while let Some(&(_, _, atom)) = self.exec_ready.peek() {
            if self.exec_eligible(atom as usize) {
                return true;
            }
            self.exec_ready.pop();
            self.queued_exec[atom as usize] = false;
        }
        false
    }

    /// The flow's end state once nothing runs and nothing is ready; `None` while work remains.
    pub fn outcome(&mut self) -> Option<Outcome> {
        if self.in_flight > 0 || self.has_ready() {
            return None;
        }
        Some(if self.revert_failures > 0 || self.unresolved_failures > 0 {
            Outcome::Failure
        } else if self.done as usize == self.atom_count {
            Outcome::Success
        } else {
            Outcome::Reverted
        })
    }

    /// How many atoms are in SUCCESS or IGNORE.
    pub fn done_count(&self) -> u32 {
        self.done
    }

    /// The nearest retry controlling `atom`, if any.
    pub fn retry_of(&self, atom: u32) -> Option<u32> {
        let r = self.flow.retry_of[atom as usize];
        (r != NONE).then_some(r)
    }
}

impl Scheduler {
    /// Atoms reachable from `atom` in the execution graph (joins crossed, `atom` excluded), in
    /// breadth-first order. Used once per retry decision, never per step.
    fn descendants(&self, atom: u32) -> Vec<u32> {
        let flow = &self.flow;
        let mut seen = vec![false; flow.node_count];
        let mut queue = vec![atom];
        let mut found = Vec::new();
        seen[atom as usize] = true;
        let mut head = 0;
        while head < queue.len() {
            let node = queue[head];
            head += 1;
            for &succ in flow.succs.neighbours(node) {
                if !seen[succ as usize] {
                    seen[succ as usize] = true;
                    queue.push(succ);
                    if (succ as usize) < self.atom_count {
                        found.push(succ);
                    }
                }
            }
        }
        found
    }
}

/// Kahn's order over all nodes (atoms and joins); the graph is acyclic by construction.
fn node_topo_order(flow: &CompiledFlow) -> Vec<u32> {
    let n = flow.node_count;
    let mut indegree: Vec<u32> = (0..n as u32).map(|v| flow.preds.neighbours(v).len() as u32).collect();
    let mut order: Vec<u32> = (0..n as u32).filter(|&v| indegree[v as usize] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let v = order[head];
        head += 1;
        for &s in flow.succs.neighbours(v) {
            indegree[s as usize] -= 1;
            if indegree[s as usize] == 0 {
                order.push(s);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;
