//! The scheduler handle: poll (`schedule`) / complete, with transitions drained in batches.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::errors::PyCoreError;
use super::flow::CompiledFlow;
use crate::sched::{self, Action, Intention, Outcome, Resolution, State};

/// Owns atom states and intentions for one run of a compiled flow.
#[pyclass(module = "ferroflow._core")]
pub struct Scheduler {
    pub(super) inner: sched::Scheduler,
    actions: Vec<Action>,
}

fn state(code: u8) -> PyResult<State> {
    State::from_code(code).ok_or_else(|| PyValueError::new_err(format!("unknown atom state code {code}")))
}

fn intention(code: u8) -> PyResult<Intention> {
    Intention::from_code(code).ok_or_else(|| PyValueError::new_err(format!("unknown intention code {code}")))
}

type Transitions = Vec<(u32, u8, u8)>;
/// (needs resolution, next actions, transitions of the completion, transitions of the scheduling).
type Completion = (bool, Vec<(u32, u8)>, Transitions, Transitions);

#[pymethods]
impl Scheduler {
    #[new]
    fn new(flow: &CompiledFlow) -> Self {
        Scheduler { inner: sched::Scheduler::new(flow.inner.clone()), actions: Vec::new() }
    }

    /// Sets saved `(atom, state code, intention code)` triples before `start()`. Returns those the
    /// scheduler normalised (an interrupted atom is to run or revert again), as it keeps them.
    fn restore(&mut self, saved: Vec<(u32, u8, u8)>) -> PyResult<Transitions> {
        let mut normalised = Vec::new();
        for (atom, s, i) in saved {
            self.inner.restore(atom, state(s)?, intention(i)?).map_err(PyCoreError::from)?;
            let kept = (self.inner.state(atom) as u8, self.inner.intention(atom) as u8);
            if kept != (s, i) {
                normalised.push((atom, kept.0, kept.1));
            }
        }
        Ok(normalised)
    }

    /// Counts readiness from the states; returns atoms whose saved failure must be resolved.
    fn start(&mut self) -> Vec<u32> {
        self.inner.start()
    }

    /// Up to `max` ready `(atom, kind)` pairs (kind 0 = execute, 1 = revert, both already marked
    /// RUNNING / REVERTING; 2 = consult the atom's deciders first), plus the transitions so far.
    fn schedule(&mut self, max: usize) -> (Vec<(u32, u8)>, Transitions) {
        self.actions.clear();
        self.inner.schedule(max, &mut self.actions);
        let actions = self.actions.iter().map(|a| (a.atom, a.kind as u8)).collect();
        (actions, self.take_transitions())
    }

    /// Reports an execute's end; returns (needs resolution, transitions).
    fn complete_execute(&mut self, atom: u32, ok: bool) -> PyResult<(bool, Transitions)> {
        let unresolved = self.inner.complete_execute(atom, ok).map_err(PyCoreError::from)?;
        Ok((unresolved, self.take_transitions()))
    }

    /// Reports an execute's (kind 0) or revert's (kind 1) end and, unless the failure needs
    /// resolving first, hands out up to `max` next actions in the same call (the hot path of a
    /// serial run). Returns (needs resolution, next actions, transitions of the completion,
    /// transitions of the scheduling) — kept apart so the engine can publish the first and still
    /// take the next actions back (`unschedule`) if a listener asked to suspend.
    fn complete(&mut self, atom: u32, kind: u8, ok: bool, max: usize) -> PyResult<Completion> {
        let unresolved = match kind {
            0 => self.inner.complete_execute(atom, ok).map_err(PyCoreError::from)?,
            1 => {
                self.inner.complete_revert(atom, ok).map_err(PyCoreError::from)?;
                false
            }
            other => return Err(PyValueError::new_err(format!("cannot complete an action of kind {other}"))),
        };
        let completed = self.take_transitions();
        self.actions.clear();
        if !unresolved && max > 0 {
            self.inner.schedule(max, &mut self.actions);
        }
        let actions = self.actions.iter().map(|a| (a.atom, a.kind as u8)).collect();
        Ok((unresolved, actions, completed, self.take_transitions()))
    }

    /// Takes back handed-out actions whose code never started (see `complete`).
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
    fn unschedule(&mut self, atoms: Vec<u32>) -> PyResult<()> {
        self.inner.unschedule(&atoms).map_err(PyCoreError::from)?;
        Ok(())
    }

    /// Reports a revert's end; returns the transitions.
    fn complete_revert(&mut self, atom: u32, ok: bool) -> PyResult<Transitions> {
        self.inner.complete_revert(atom, ok).map_err(PyCoreError::from)?;
        Ok(self.take_transitions())
    }

    /// Applies a resolution: kind 0 = revert `retry` and its atoms, 1 = retry them, 2 = revert all.
    #[pyo3(signature = (kind, retry=None))]
    fn resolve(&mut self, kind: u8, retry: Option<u32>) -> PyResult<Transitions> {
        let resolution = match (kind, retry) {
            (0, Some(r)) => Resolution::Revert(r),
            (1, Some(r)) => Resolution::Retry(r),
            (2, _) => Resolution::RevertAll,
            _ => return Err(PyValueError::new_err(format!("bad resolution {kind} for retry {retry:?}"))),
        };
        self.inner.resolve(resolution).map_err(PyCoreError::from)?;
        Ok(self.take_transitions())
    }

    /// The deciders of a gated atom (action kind 2) let it run.
    fn decided(&mut self, atom: u32) -> PyResult<()> {
        self.inner.decided(atom).map_err(PyCoreError::from)?;
        Ok(())
    }

    /// Sets atoms back to PENDING / EXECUTE (they run again); returns the transitions.
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
    fn rerun(&mut self, atoms: Vec<u32>) -> PyResult<Transitions> {
        self.inner.rerun(&atoms).map_err(PyCoreError::from)?;
        Ok(self.take_transitions())
    }

    /// Records a revert the engine ran itself (REVERTED, or `REVERT_FAILURE` when not `ok`).
    fn reverted(&mut self, atom: u32, ok: bool) -> PyResult<Transitions> {
        self.inner.reverted(atom, ok).map_err(PyCoreError::from)?;
        Ok(self.take_transitions())
    }

    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
    fn ignore(&mut self, atoms: Vec<u32>) -> PyResult<Transitions> {
        self.inner.ignore(&atoms).map_err(PyCoreError::from)?;
        Ok(self.take_transitions())
    }

    fn halt(&mut self) {
        self.inner.halt();
    }

    fn reset(&mut self) -> Transitions {
        self.inner.reset();
        self.take_transitions()
    }

    /// Transitions not yet taken, as `(atom, state code, intention code)`.
    fn take_transitions(&mut self) -> Transitions {
        self.inner.take_transitions().into_iter().map(|t| (t.atom, t.state as u8, t.intention as u8)).collect()
    }

    fn state(&self, atom: u32) -> u8 {
        self.inner.state(atom) as u8
    }

    fn intention(&self, atom: u32) -> u8 {
        self.inner.intention(atom) as u8
    }

    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    #[getter]
    fn done_count(&self) -> u32 {
        self.inner.done_count()
    }

    fn has_ready(&mut self) -> bool {
        self.inner.has_ready()
    }

    /// None while work remains, else "SUCCESS" / "REVERTED" / "FAILURE".
    fn outcome(&mut self) -> Option<&'static str> {
        self.inner.outcome().map(|o| match o {
            Outcome::Success => "SUCCESS",
            Outcome::Reverted => "REVERTED",
            Outcome::Failure => "FAILURE",
        })
    }
}
