//! The serial engine's fast lane: plain rounds run straight from Rust.
//!
//! When nothing observes a run (no store, no listeners, no reported progress, not stepping) and
//! nothing has failed, the Python loop's own bookkeeping per atom costs several times what a
//! no-op atom does. The lane takes that loop over: it schedules rounds and, for each execute of a
//! plain task (no pre/post hooks, inject or retry role), finds the arguments, calls `execute`,
//! stores the result and completes the atom in the scheduler, mirroring every transition into the
//! engine's storage lists exactly as the Python loop does. Any other execute in a round (a retry,
//! a hooked task, arguments the fast lookup cannot decide) is handed to the engine's `_step`,
//! which runs and completes it the general way, in its place in the round.
//!
//! Anything else ends the lane and goes back to the engine: a round with a revert or a decider
//! (given back whole, already handed out), a failure (the exception, then the rest of the round),
//! an observer appearing mid-run or a `_step` that closed the lane (the rest of the round), a
//! suspend request (at the next round: a round handed out runs to its end, as on the general path).
//! What it gives back is already handed out and mirrored: the engine runs it, never takes it back.
//!
//! A run persisted on SQLite's fast path runs in the lane too, which then writes the steps it
//! runs itself (`LaneWriter`: a task starting; a task succeeding, with its result's JSON, its
//! progress meta and its resume record) in the batches the engine's persister writes them in: a
//! round's starts with the completion before them, then each completion before the next atom
//! runs; one transaction each, or into the store's open group with `durability="batch"` (where
//! the Python per step was most of the cost). A completion it cannot write that way (a result the
//! engine must check, a revert reference naming code, progress the task reported) goes back to
//! the engine, which checks and writes it; before any atom starts, a lost lease stops the lane.
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::types::{PyDict, PyInt, PyList, PyString};

use super::flag::Flag;
use super::scheduler::Scheduler;
use super::store::{self, SqliteStore};
use crate::graph::hash::FastMap;
use crate::graph::{CompiledFlow, NONE};
use crate::resume;
use crate::sched::{Action, ActionKind, Intention, State, Transition};
use crate::spec::AtomKind;
use crate::store::{Fence, Text, Transition as StoreTransition, RESUME_FIELD_END as FIELD_END};

/// `(atoms completed, actions handed out but not run, failed atom and its exception, an atom
/// that ran and whose completion the engine records itself, with its result)`.
type LaneStop = (u32, Vec<(u32, u8)>, Option<(u32, Py<PyAny>)>, Option<(u32, Py<PyAny>)>);

/// What the lane needs to persist the steps it runs (SQLite's fast path): given by the engine's
/// persister as `(store, fence, uuids, lease, is_noop_class, result_text, meta, metas,
/// progress_details)`.
type WriterArgs = (
    Py<SqliteStore>,
    Option<(String, String, i64)>,
    Py<PyList>,
    Py<PyAny>,
    Py<PyAny>,
    Py<PyAny>,
    String,
    Py<PyDict>,
    Py<PyDict>,
);

/// Writes the lane's steps into the store's open group, as the engine's persister writes them
/// (`Persister._steps`): a task starting (state, intention), a task succeeding (its result as
/// JSON text, its progress meta and its resume record). Steps are held until the lane hands over,
/// calls into the engine, or starts its next atom, then written as one batch.
struct LaneWriter {
    store: Py<SqliteStore>,
    fence: Option<Fence>,
    /// `storage._uuids`: each atom's detail uuid.
    uuids: Py<PyList>,
    /// The flow's lease (its `lost` is set once the heartbeat finds it lost), or None.
    lease: Py<PyAny>,
    /// `is_noop_class(atom) -> bool`: whether the atom's class reverts as a no-op (its resume
    /// record is then the input fingerprint and `noop`); asked once per class.
    is_noop: Py<PyAny>,
    noop: FastMap<usize, bool>,
    /// `result_text(atom, value) -> str | None`: the JSON text a result is saved as, None when
    /// only the engine may record it (a value that cannot be saved becomes a failure there).
    result_text: Py<PyAny>,
    /// The meta of a task that succeeded without reporting progress (borrowed when it is the
    /// usual one: cloned per atom).
    meta: Text,
    /// The persister's metas held beyond the progress, and `storage.progress_details`, by atom:
    /// an atom in either has more meta to write than `meta` (the engine writes it).
    metas: Py<PyDict>,
    progress_details: Py<PyDict>,
    pending: Vec<StoreTransition>,
}

/// The meta of a task done that reported no progress, as the engine writes it (`persist.py`).
const DONE_META: &str = r#"{"progress":1.0}"#;

impl LaneWriter {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for held in [
            self.store.as_any(),
            self.uuids.as_any(),
            &self.lease,
            &self.is_noop,
            &self.result_text,
            self.metas.as_any(),
            self.progress_details.as_any(),
        ] {
            visit.call(held)?;
        }
        Ok(())
    }

    fn new(args: WriterArgs) -> LaneWriter {
        let (store, fence, uuids, lease, is_noop, result_text, meta, metas, progress_details) = args;
        LaneWriter {
            store,
            fence: fence.map(super::store::fence_of),
            uuids,
            lease,
            is_noop,
            noop: FastMap::default(),
            result_text,
            meta: if meta == DONE_META { Text::Borrowed(DONE_META) } else { Text::Owned(meta) },
            metas,
            progress_details,
            pending: Vec::new(),
        }
    }

    fn uuid(&self, py: Python<'_>, atom: u32) -> PyResult<Option<String>> {
        let value = self.uuids.bind(py).get_item(atom as usize)?;
        if value.is_none() {
            return Ok(None);
        }
        Ok(Some(value.extract()?))
    }

    fn lease_lost(&self, py: Python<'_>) -> PyResult<bool> {
        let lease = self.lease.bind(py);
        Ok(!lease.is_none() && !lease.getattr(intern!(py, "lost"))?.is_none())
    }

    /// The SUCCESS step of `atom` with result `value`, or None when the engine must record it.
    fn success(
        &mut self,
        py: Python<'_>,
        flow: &CompiledFlow,
        atom: u32,
        task: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Option<StoreTransition>> {
        let key = task.get_type().as_ptr() as usize;
        let noop = if let Some(&noop) = self.noop.get(&key) {
            noop
        } else {
            let noop = self.is_noop.call1(py, (task,))?.is_truthy(py)?;
            self.noop.insert(key, noop);
            noop
        };
        if !noop {
            return Ok(None);
        }
        let (metas, details) = (self.metas.bind(py), self.progress_details.bind(py));
        if (!metas.is_empty() && metas.contains(atom)?) || (!details.is_empty() && details.contains(atom)?) {
            return Ok(None);
        }
        let text = if value.is_none() {
            Text::Borrowed("null")
        } else if value.is_exact_instance_of::<PyInt>() {
            // An int's text is its JSON (what `result_text` would give, without a Python call).
            Text::Owned(value.str()?.to_str()?.to_owned())
        } else {
            let text = self.result_text.bind(py).call1((atom, value))?;
            if text.is_none() {
                return Ok(None);
            }
            Text::Owned(text.extract()?)
        };
        let Some(uuid) = self.uuid(py, atom)? else { return Ok(None) };
        // (pushed rather than format!ted: this runs once per atom)
        let mut record = resume::input_fingerprint(flow, atom as usize);
        record.push(FIELD_END);
        record.push_str("noop");
        record.push(FIELD_END);
        record.push(FIELD_END);
        Ok(Some(store::step(
            uuid,
            Text::Borrowed(State::Success.name()),
            Text::Borrowed(Intention::Execute.name()),
            Some(text),
            Some(self.meta.clone()),
            Some(record),
            0.0,
        )))
    }

    /// Writes the held steps (one batch in the store's group).
    fn flush(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut steps = std::mem::take(&mut self.pending);
        for step in &mut steps {
            step.updated_at = Some(now);
        }
        self.store.bind(py).get().apply_step_batch(py, steps, self.fence.clone())
    }
}

/// Routes `update_progress` of the task the lane is running to the engine's storage: one per
/// lane, pointed at each task as it runs (`Task.update_progress` finds it through a thread-local
/// while the lane runs), so running an atom makes no object and sets no attribute.
#[pyclass(frozen, module = "ferroflow._core")]
pub struct ProgressSink {
    report: Py<PyAny>,
    atom: AtomicU32,
    /// The running task object's address; 0 between tasks.
    task: AtomicUsize,
}

#[pymethods]
impl ProgressSink {
    /// What the collector must see of it (it may be part of a cycle through the storage).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.report)
    }

    /// Reports `progress` when `task` is the task the lane is running; returns whether it did.
    fn report(&self, py: Python<'_>, task: &Bound<'_, PyAny>, progress: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.task.load(Ordering::Relaxed) != task.as_ptr() as usize {
            return Ok(false);
        }
        self.report.call1(py, (self.atom.load(Ordering::Relaxed), progress))?;
        Ok(true)
    }
}

impl ProgressSink {
    fn point_at(&self, atom: u32, task: &Bound<'_, PyAny>) {
        self.atom.store(atom, Ordering::Relaxed);
        self.task.store(task.as_ptr() as usize, Ordering::Relaxed);
    }

    fn clear(&self) {
        self.task.store(0, Ordering::Relaxed);
    }
}

/// One run's lane: the engine's storage lists and what decides whether an atom is plain.
#[pyclass(module = "ferroflow._core")]
pub struct Lane {
    engine: Py<PyAny>,
    atoms: Py<PyList>,
    results: Py<PyList>,
    states: Py<PyList>,
    intentions: Py<PyList>,
    save_as: Py<PyList>,
    store: Py<PyDict>,
    transient: Py<PyDict>,
    /// `storage.progress` and the atom notifier (its `_topics`, a dict replaced on every
    /// registration): non-empty means someone now observes.
    progress: Py<PyDict>,
    notifier: Py<PyAny>,
    /// The notifier's `_listening` and the engine's `_suspend_flag` (`super::flag`), read for an
    /// atomic load between atoms; `None` for objects without them (their attributes are read).
    listening: Option<Py<Flag>>,
    suspend: Option<Py<Flag>>,
    sink: Py<ProgressSink>,
    /// `has_execute_hooks(cls) -> bool`, asked once per class.
    has_hooks: Py<PyAny>,
    hooked: FastMap<usize, bool>,
    /// `identity_arg_names(atom)`: the argument names of an atom built lazily with `requires`
    /// alone (each maps to itself), or None. Asked for atoms whose `__dict__` holds `_lazy_args`
    /// instead of reading `rebind`, which would make mappings that then stay on the atom (tracked
    /// objects feeding the collector's full passes on big flows).
    identity_names: Option<Py<PyAny>>,
    batch: usize,
    /// Set when the run is persisted (see `LaneWriter`).
    writer: Option<LaneWriter>,
}

#[pymethods]
impl Lane {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        engine, atoms, results, states, intentions, save_as, store, transient, progress, notifier, report, has_hooks,
        batch, writer = None, identity_names = None
    ))]
    fn new(
        py: Python<'_>,
        engine: Py<PyAny>,
        atoms: Py<PyList>,
        results: Py<PyList>,
        states: Py<PyList>,
        intentions: Py<PyList>,
        save_as: Py<PyList>,
        store: Py<PyDict>,
        transient: Py<PyDict>,
        progress: Py<PyDict>,
        notifier: Py<PyAny>,
        report: Py<PyAny>,
        has_hooks: Py<PyAny>,
        batch: usize,
        writer: Option<WriterArgs>,
        identity_names: Option<Py<PyAny>>,
    ) -> PyResult<Lane> {
        let sink = Py::new(py, ProgressSink { report, atom: AtomicU32::new(0), task: AtomicUsize::new(0) })?;
        let flag = |owner: &Py<PyAny>, name: &str| -> Option<Py<Flag>> {
            owner.bind(py).getattr(name).ok()?.cast_into::<Flag>().ok().map(Bound::unbind)
        };
        let (listening, suspend) = (flag(&notifier, "_listening"), flag(&engine, "_suspend_flag"));
        Ok(Lane {
            listening,
            suspend,
            engine,
            atoms,
            results,
            states,
            intentions,
            save_as,
            store,
            transient,
            progress,
            notifier,
            sink,
            has_hooks,
            hooked: FastMap::default(),
            identity_names,
            batch,
            writer: writer.map(LaneWriter::new),
        })
    }

    /// What the collector must see of the lane: it refers back to its engine (which holds it
    /// while a run lasts), so without this an engine dropped with its lane alive is never freed.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for held in [
            &self.engine,
            self.atoms.as_any(),
            self.results.as_any(),
            self.states.as_any(),
            self.intentions.as_any(),
            self.save_as.as_any(),
            self.store.as_any(),
            self.transient.as_any(),
            self.progress.as_any(),
            &self.notifier,
            self.sink.as_any(),
            &self.has_hooks,
        ] {
            visit.call(held)?;
        }
        visit.call(self.identity_names.as_ref())?;
        if let Some(writer) = &self.writer {
            writer.traverse(&visit)?;
        }
        Ok(())
    }

    /// What `Task.update_progress` reports through while this lane runs.
    #[getter]
    fn sink(&self, py: Python<'_>) -> Py<ProgressSink> {
        self.sink.clone_ref(py)
    }

    /// Runs plain rounds until the flow has nothing ready or something needs the engine (see the
    /// module documentation); returns what it stopped at. A persisted run's steps are all written
    /// (into the store's open group) before it returns.
    fn run(&mut self, py: Python<'_>, scheduler: &Bound<'_, Scheduler>) -> PyResult<LaneStop> {
        let stop = self.run_rounds(py, scheduler);
        let flushed = match &mut self.writer {
            Some(writer) => writer.flush(py),
            None => Ok(()),
        };
        let stop = stop?;
        flushed?;
        Ok(stop)
    }
}

impl Lane {
    fn run_rounds(&mut self, py: Python<'_>, scheduler: &Bound<'_, Scheduler>) -> PyResult<LaneStop> {
        let flow = scheduler.borrow().inner.flow().clone();
        let atoms = self.atoms.bind(py).clone();
        let results = self.results.bind(py).clone();
        let mut round: Vec<Action> = Vec::new();
        let mut completed = 0u32;
        loop {
            // Between rounds: the engine takes over once a suspend is asked for or someone
            // observes (a round, once handed out, runs to its end as on the general path).
            if self.suspended(py)? || self.observed(py)? {
                return Ok((completed, Vec::new(), None, None));
            }
            round.clear();
            let marked = {
                let mut sched = scheduler.borrow_mut();
                sched.inner.schedule(self.batch, &mut round);
                sched.inner.take_transitions()
            };
            self.mirror(py, &marked, None, None, true)?; // (nobody observed just above)
            if round.is_empty() {
                return Ok((completed, Vec::new(), None, None));
            }
            // Deciders are consulted for a whole round before any of it runs: the engine does it.
            if round.iter().any(|action| action.kind != ActionKind::Execute) {
                return Ok((completed, handed_out(&round), None, None));
            }
            for (position, action) in round.iter().enumerate() {
                let atom = action.atom;
                // Written before each atom runs, as the engine writes them: the round's starts
                // with the completion before them, then each completion on its own, so a kill
                // loses at most the atom in flight (with durability=batch these join the group).
                if let Some(writer) = &mut self.writer {
                    writer.flush(py)?;
                }
                if position > 0 && self.observed(py)? {
                    return Ok((completed, handed_out(&round[position..]), None, None));
                }
                // An engine that lost its flow starts nothing more: the engine raises LeaseLost.
                if let Some(writer) = &self.writer {
                    if writer.lease_lost(py)? {
                        return Ok((completed, handed_out(&round[position..]), None, None));
                    }
                }
                let task = atoms.get_item(atom as usize)?;
                let arguments = if self.is_plain(py, &flow, atom, &atoms)? {
                    self.arguments(py, &flow, scheduler, atom, &task)?
                } else {
                    Arguments::Undecided
                };
                let kwargs = match arguments {
                    Arguments::Nothing => None,
                    Arguments::Given(kwargs) => Some(kwargs),
                    Arguments::Undecided => {
                        // The engine runs and completes this one its own way, then says whether
                        // the lane may go on (a failure, a suspend or an observer end it).
                        if let Some(writer) = &mut self.writer {
                            writer.flush(py)?; // (the engine writes next: in order)
                        }
                        let go_on = self.engine.bind(py).call_method1(intern!(py, "_step"), (atom,))?;
                        if !go_on.is_truthy()? {
                            return Ok((completed, handed_out(&round[position + 1..]), None, None));
                        }
                        continue;
                    }
                };
                let sink = self.sink.get();
                sink.point_at(atom, &task);
                let outcome = task.call_method(intern!(py, "execute"), (), kwargs.as_ref());
                sink.clear();
                match outcome {
                    Ok(value) => {
                        let success = match &mut self.writer {
                            None => None,
                            Some(writer) => {
                                let Some(step) = writer.success(py, &flow, atom, &task, &value)? else {
                                    // A result to check, or a revert reference to record: the
                                    // engine completes this atom its own way.
                                    let rest = handed_out(&round[position + 1..]);
                                    return Ok((completed, rest, None, Some((atom, value.unbind()))));
                                };
                                Some(step)
                            }
                        };
                        results.set_item(atom as usize, &value)?;
                        let done = {
                            let mut sched = scheduler.borrow_mut();
                            sched.inner.complete_execute(atom, true).map_err(super::errors::PyCoreError::from)?;
                            sched.inner.take_transitions()
                        };
                        completed += 1;
                        self.mirror(py, &done, Some((atom, value)), success, false)?;
                    }
                    // As the engine's own call: an Exception is the atom's failure, anything else
                    // (KeyboardInterrupt, SystemExit) stops the run.
                    Err(err) if err.is_instance_of::<PyException>(py) => {
                        let rest = handed_out(&round[position + 1..]);
                        return Ok((completed, rest, Some((atom, err.into_value(py).into_any())), None));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
}

impl Lane {
    /// A task the lane may run: no retry role, no `inject`, no execute hooks.
    fn is_plain(
        &mut self,
        py: Python<'_>,
        flow: &CompiledFlow,
        atom: u32,
        atoms: &Bound<'_, PyList>,
    ) -> PyResult<bool> {
        if flow.atoms[atom as usize].kind != AtomKind::Task {
            return Ok(false);
        }
        let task = atoms.get_item(atom as usize)?;
        if task.getattr(intern!(py, "inject"))?.is_truthy()? {
            return Ok(false);
        }
        let cls = task.get_type();
        let key = cls.as_ptr() as usize;
        let hooked = if let Some(&hooked) = self.hooked.get(&key) {
            hooked
        } else {
            let hooked = self.has_hooks.call1(py, (cls,))?.is_truthy(py)?;
            self.hooked.insert(key, hooked);
            hooked
        };
        Ok(!hooked)
    }

    fn suspended(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.suspend {
            Some(flag) => Ok(flag.get().is_set()),
            None => self.engine.bind(py).getattr(intern!(py, "_suspend_requested"))?.is_truthy(),
        }
    }

    /// Whether someone now observes the run: a listener registered, progress reported.
    fn observed(&self, py: Python<'_>) -> PyResult<bool> {
        if !self.progress.bind(py).is_empty() {
            return Ok(true);
        }
        match &self.listening {
            Some(flag) => Ok(flag.get().is_set()),
            None => self.notifier.bind(py).getattr(intern!(py, "_topics"))?.is_truthy(),
        }
    }

    /// The keyword arguments of `atom`'s execute, found as the engine finds them (transient
    /// store, store, then the visible provider's result).
    fn arguments<'py>(
        &self,
        py: Python<'py>,
        flow: &CompiledFlow,
        scheduler: &Bound<'py, Scheduler>,
        atom: u32,
        task: &Bound<'py, PyAny>,
    ) -> PyResult<Arguments<'py>> {
        if let Some(names) = self.identity_arg_names(py, task)? {
            if names.is_empty() {
                return Ok(Arguments::Nothing);
            }
            return self.lookup(py, flow, scheduler, atom, names.iter().map(|name| (name.clone(), name)));
        }
        let rebind = task.getattr(intern!(py, "rebind"))?;
        // Anything unusual (a rebind or save_as that is not a dict, a name that is not a str)
        // is left to the engine, which reports it properly.
        let Ok(rebind) = rebind.cast::<PyDict>() else {
            return Ok(Arguments::Undecided);
        };
        if rebind.is_empty() {
            return Ok(Arguments::Nothing);
        }
        self.lookup(py, flow, scheduler, atom, rebind.iter())
    }

    /// The names of an atom built lazily with `requires` alone (see `identity_names`), or None
    /// (read its `rebind`).
    fn identity_arg_names<'py>(
        &self,
        py: Python<'py>,
        task: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyTuple>>> {
        let Some(identity) = &self.identity_names else { return Ok(None) };
        let Ok(state) = task.getattr(intern!(py, "__dict__")) else { return Ok(None) };
        let Ok(state) = state.cast_into::<PyDict>() else { return Ok(None) };
        if !state.contains(intern!(py, "_lazy_args"))? {
            return Ok(None);
        }
        let names = identity.call1(py, (task,))?.into_bound(py);
        Ok(names.cast_into::<pyo3::types::PyTuple>().ok())
    }

    /// Looks each `(argument, storage name)` up as the engine does (transient store, store, then
    /// the visible provider's result).
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        flow: &CompiledFlow,
        scheduler: &Bound<'py, Scheduler>,
        atom: u32,
        pairs: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    ) -> PyResult<Arguments<'py>> {
        let spec = &flow.atoms[atom as usize];
        let providers = flow.providers.execute(atom as usize);
        let store = self.store.bind(py);
        let transient = self.transient.bind(py);
        let kwargs = PyDict::new(py);
        for (arg, name) in pairs {
            if !transient.is_empty() {
                if let Some(value) = transient.get_item(&name)? {
                    kwargs.set_item(arg, value)?;
                    continue;
                }
            }
            if !store.is_empty() {
                if let Some(value) = store.get_item(&name)? {
                    kwargs.set_item(arg, value)?;
                    continue;
                }
            }
            let Ok(name_text) = name.cast::<PyString>() else {
                return Ok(Arguments::Undecided);
            };
            let Ok(text) = name_text.to_str() else {
                return Ok(Arguments::Undecided);
            };
            let Some(position) = spec.requires.iter().chain(&spec.optional).position(|n| n == text) else {
                return Ok(Arguments::Undecided);
            };
            let provider = providers[position];
            if provider == NONE || scheduler.borrow().inner.state(provider) != State::Success {
                return Ok(Arguments::Undecided);
            }
            let mut value = self.results.bind(py).get_item(provider as usize)?;
            let keys = self.save_as.bind(py).get_item(provider as usize)?;
            let Ok(keys) = keys.cast::<PyDict>() else {
                return Ok(Arguments::Undecided);
            };
            if let Some(key) = keys.get_item(&name)? {
                if !key.is_none() {
                    match value.get_item(key) {
                        Ok(item) => value = item,
                        Err(_) => return Ok(Arguments::Undecided),
                    }
                }
            }
            kwargs.set_item(arg, value)?;
        }
        Ok(Arguments::Given(kwargs))
    }

    /// Mirrors transitions into the storage lists. A batch holding a reset (PENDING) or a revert
    /// (REVERTED), or made while someone observes, goes through the engine's own `_apply` (which
    /// resets results, publishes and notifies), with `outcome`: the completed atom and its result.
    ///
    /// A persisted run holds the steps of the batch (a task starting; `success`, the completed
    /// atom's step) for the writer; a batch with anything else goes through the engine's `_apply`,
    /// which writes it (after the steps held so far). `unobserved`: the caller has just found that
    /// nobody observes, and no Python ran since.
    fn mirror(
        &mut self,
        py: Python<'_>,
        transitions: &[Transition],
        outcome: Option<(u32, Bound<'_, PyAny>)>,
        success: Option<StoreTransition>,
        unobserved: bool,
    ) -> PyResult<()> {
        if transitions.is_empty() {
            return Ok(());
        }
        let mut general = transitions.iter().any(|t| matches!(t.state, State::Pending | State::Reverted))
            || (!unobserved && self.observed(py)?);
        if !general {
            if let Some(writer) = &mut self.writer {
                match lean_steps(py, writer, transitions, outcome.as_ref().map(|(atom, _)| *atom), success)? {
                    Some(steps) => writer.pending.extend(steps),
                    None => general = true,
                }
            }
        }
        if general {
            if let Some(writer) = &mut self.writer {
                writer.flush(py)?;
            }
            let codes: Vec<(u32, u8, u8)> =
                transitions.iter().map(|t| (t.atom, t.state as u8, t.intention as u8)).collect();
            self.engine.bind(py).call_method1(intern!(py, "_apply"), (codes, outcome))?;
            return Ok(());
        }
        let states = self.states.bind(py);
        let intentions = self.intentions.bind(py);
        for t in transitions {
            states.set_item(t.atom as usize, t.state as u8)?;
            intentions.set_item(t.atom as usize, t.intention as u8)?;
        }
        Ok(())
    }
}

/// An atom's execute arguments as the lane finds them.
enum Arguments<'py> {
    /// The atom takes none.
    Nothing,
    Given(Bound<'py, PyDict>),
    /// The fast lookup cannot decide (no provider, a provider not done, a missing key): the
    /// engine finds them (or the error) itself.
    Undecided,
}

/// The writer's steps for `transitions` — tasks starting, and the completion of `completed`
/// (whose step is `success`) — or None when the batch holds anything else.
fn lean_steps(
    py: Python<'_>,
    writer: &LaneWriter,
    transitions: &[Transition],
    completed: Option<u32>,
    mut success: Option<StoreTransition>,
) -> PyResult<Option<Vec<StoreTransition>>> {
    let mut steps = Vec::with_capacity(transitions.len());
    for t in transitions {
        if t.intention != Intention::Execute {
            return Ok(None);
        }
        match t.state {
            State::Running => {
                let Some(uuid) = writer.uuid(py, t.atom)? else { return Ok(None) };
                let (running, execute) =
                    (Text::Borrowed(State::Running.name()), Text::Borrowed(Intention::Execute.name()));
                steps.push(store::step(uuid, running, execute, None, None, None, 0.0));
            }
            State::Success if completed == Some(t.atom) => match success.take() {
                Some(step) => steps.push(step),
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    Ok(Some(steps))
}

fn handed_out(actions: &[Action]) -> Vec<(u32, u8)> {
    actions.iter().map(|a| (a.atom, a.kind as u8)).collect()
}
