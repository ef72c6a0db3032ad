//! `SqliteStore`: the sqlite store ([`crate::store::Store`]) as a Python class.
//!
//! Thin on purpose: no logic beyond conversion. Rows cross as tuples of `str` / `float` / `None` in
//! the field order of the `store` row structs, JSON payloads stay opaque strings (Python's `json`
//! writes and reads them), every sqlite call runs with the GIL released, and the one connection is
//! shared between Python threads behind a mutex (a `Store` is `Send` but not `Sync`).
//!
//! Row tuples:
//! - logbook: `(uuid, name, meta, created_at, updated_at)`
//! - flow detail: `(uuid, parent_uuid, name, state, meta, created_at, updated_at)`
//! - atom detail: `(uuid, parent_uuid, name, atom_type, state, intention, results, failure,
//!   revert_results, revert_failure, version, meta, created_at, updated_at)`
//! - flow state change: `(flow_uuid, state, updated_at)`
//!
//! A transition is a dict with the atom's `uuid` and only the columns it changes: `state`,
//! `intention`, `results`, `revert_results`, `meta`, `updated_at` (`None` keeps the column),
//! `failure`, `revert_failure` (`None` clears the column, a missing key keeps it) and `resume` (the
//! atom's new resume record, JSON text).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString, PyTuple};

use super::errors::PyCoreError;
use super::fresh::FreshRows;
use super::read_ahead::ReadAhead;
use super::resume::Payloads;
use crate::error::{CoreError, CoreResult};
use crate::resume::SavedAtom;
use crate::store::{
    AtomDetailRow, AtomType, Batch, Durability, Fence, FlowDetailRow, FlowMetaChange, FlowStateChange, FreshAtoms,
    GroupCommit, LogBookRow, Nullable, ResumeRecord, ResumeSummary, Store, Text, Transition,
};

type LogBookTuple = (String, String, String, f64, Option<f64>);
type FlowTuple = (String, String, String, Option<String>, String, f64, Option<f64>);
type FlowStateTuple = (String, String, Option<f64>);
type StepTuple = (String, String, String, Option<String>, Option<String>, Option<String>);

/// Number of fields of an atom detail tuple.
const ATOM_FIELDS: usize = 14;

/// A handle on one ferroflow sqlite store file (or a private in-memory store).
///
/// `frozen`: every method takes `&self` (the mutex is the only mutable state), so threads never
/// contend on a Python-side borrow flag.
#[pyclass(frozen, module = "ferroflow._core")]
pub struct SqliteStore {
    /// `None` once closed.
    inner: Arc<Mutex<Option<Store>>>,
    /// The path, for the "closed" error and the `path` property.
    path: String,
    /// `durability="batch"`: the thread that commits a group once it is due, even while the
    /// engine is busy running a long atom.
    flusher: Option<Flusher>,
    /// Atom rows written through this handle (inserted, replaced or changed by a transition).
    rows_written: AtomicU64,
    /// The saved details of one flow being read ahead (`read_ahead`).
    read_ahead: Mutex<Option<ReadAhead>>,
    /// Reads ahead taken instead of reading (`read_aheads_taken`).
    read_aheads_taken: AtomicU64,
}

/// Commits the open group of a batch-durability store once it is `max_delay` old. It parks while
/// no group is open (each apply unparks it), and holds no reference to the store while it sleeps.
struct Flusher {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Flusher {
    fn start(store: Weak<Mutex<Option<Store>>>) -> std::io::Result<Flusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new().name("ferroflow-group-commit".into()).spawn(move || loop {
            thread::park();
            loop {
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                let Some(inner) = store.upgrade() else { return };
                let wait = match inner.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    Some(store) => store.flush_due(),
                    None => return,
                };
                drop(inner);
                match wait {
                    Some(wait) => thread::sleep(wait),
                    None => break,
                }
            }
        })?;
        Ok(Flusher { thread, stop })
    }

    fn wake(&self) {
        self.thread.thread().unpark();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.stop.store(true, Ordering::Release);
            flusher.wake();
            // (not joined: it may be waiting for the lock this drop could be called under)
        }
        // A store dropped without close() still commits its open group and held writes: only a
        // kill loses them.
        if let Some(store) = self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            let _ = store.end_hold();
        }
    }
}

impl SqliteStore {
    fn wrap(store: Store) -> PyResult<SqliteStore> {
        let path = store.path().to_owned();
        let batched = store.group_commit().is_some();
        let inner = Arc::new(Mutex::new(Some(store)));
        let flusher = if batched {
            Some(Flusher::start(Arc::downgrade(&inner)).map_err(|e| {
                PyCoreError(CoreError::Storage(format!("store '{path}': cannot start its group commit thread: {e}")))
            })?)
        } else {
            None
        };
        Ok(SqliteStore {
            inner,
            path,
            flusher,
            rows_written: AtomicU64::new(0),
            read_ahead: Mutex::new(None),
            read_aheads_taken: AtomicU64::new(0),
        })
    }

    /// Applies engine steps (see `apply_steps`) as one batch: what the serial engine's lane
    /// writes from Rust (`super::lane`), without Python tuples.
    pub(super) fn apply_step_batch(
        &self,
        py: Python<'_>,
        transitions: Vec<Transition>,
        fence: Option<Fence>,
    ) -> PyResult<()> {
        let batch = Batch { transitions, fence, ..Batch::default() };
        let rows = batch_rows(&batch);
        self.with_open_group(py, move |s| s.apply_owned(batch))?;
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
        if let Some(flusher) = &self.flusher {
            flusher.wake();
        }
        Ok(())
    }

    /// The path the store was opened on (`:memory:` in memory).
    pub(super) fn label(&self) -> &str {
        &self.path
    }

    /// What `read_ahead` read of `flow_uuid` (as `restoring` asks), if it is still what a read
    /// now would give (see `super::read_ahead`); the read is given up otherwise.
    pub(super) fn take_read_ahead(
        &self,
        py: Python<'_>,
        flow_uuid: &str,
        restoring: bool,
    ) -> PyResult<Option<(Vec<SavedAtom>, Option<Payloads>)>> {
        let taken = {
            let mut slot = self.read_ahead.lock().unwrap_or_else(PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|read| read.serves(flow_uuid, restoring)) {
                return Ok(None);
            }
            slot.take()
        };
        let Some(read) = taken else { return Ok(None) };
        let (version, written) = self.with_open_group(py, |s| Ok((s.data_version()?, s.own_data_changes())))?;
        let Some(rows) = py.detach(|| read.finish(version, written)) else { return Ok(None) };
        self.with_open_group(py, move |s| {
            s.adopt_rowid_hints(rows.hints);
            Ok(())
        })?;
        self.read_aheads_taken.fetch_add(1, Ordering::Relaxed);
        Ok(Some((rows.saved, rows.payloads)))
    }

    /// Runs `op` on the open store with the GIL released, after committing the open group of a
    /// batch-durability store (so that every read sees what was applied, and writes stay in order).
    pub(super) fn with<T, F>(&self, py: Python<'_>, op: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(&mut Store) -> CoreResult<T> + Send,
    {
        self.with_open_group(py, |store| {
            store.flush()?;
            op(store)
        })
    }

    /// [`SqliteStore::with`] without committing the open group first (`apply` joins it).
    fn with_open_group<T, F>(&self, py: Python<'_>, op: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(&mut Store) -> CoreResult<T> + Send,
    {
        py.detach(|| {
            // A panic cannot leave a transaction open (`WriteTx` rolls back on unwind), so the
            // store behind a poisoned lock is still consistent.
            let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match guard.as_mut() {
                Some(store) => op(store),
                None => Err(CoreError::Storage(format!("store '{}' is closed", self.path))),
            }
        })
        .map_err(|e| PyCoreError(e).into())
    }
}

/// The atom rows a batch writes (see `SqliteStore::rows_written`).
fn batch_rows(batch: &Batch) -> u64 {
    let fresh = batch.fresh_atoms.as_ref().map_or(0, |f| f.rows.len());
    (batch.atom_details.len() + batch.transitions.len() + fresh) as u64
}

/// One engine step (see `SqliteStore::apply_steps`): `results` set also clears the failure (a
/// task succeeding); `None` keeps a column.
pub(super) fn step(
    atom_uuid: String,
    state: Text,
    intention: Text,
    results: Option<Text>,
    meta: Option<Text>,
    resume: Option<String>,
    updated_at: f64,
) -> Transition {
    Transition {
        failure: if results.is_some() { Nullable::Clear } else { Nullable::Keep },
        atom_uuid,
        state: Some(state),
        intention: Some(intention),
        results,
        meta,
        resume,
        updated_at: Some(updated_at),
        ..Transition::default()
    }
}

#[pymethods]
impl SqliteStore {
    /// Opens the store file at `path` and upgrades its schema; a file that does not exist is
    /// created as a new store (mode 0600). With `read_only`, opens an existing store read-only:
    /// nothing is written (no WAL switch, no upgrade). A file that is not a ferroflow store is
    /// refused with `StorageFailure`, untouched.
    ///
    /// `durability="batch"` commits engine batches in groups of at most `batch_transitions` atom
    /// rows and `batch_ms` milliseconds (see `GroupCommit`).
    #[new]
    #[pyo3(signature = (path, durability = "process", read_only = false, batch_transitions = None, batch_ms = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durability: &str,
        read_only: bool,
        batch_transitions: Option<usize>,
        batch_ms: Option<f64>,
    ) -> PyResult<SqliteStore> {
        let durability = match durability {
            "process" => Durability::Process,
            "fsync" => Durability::Fsync,
            "batch" => Durability::Batch,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown durability {other:?}; expected 'process', 'fsync' or 'batch'"
                )))
            }
        };
        let mut group = GroupCommit::default();
        if let Some(rows) = batch_transitions {
            if rows == 0 {
                return Err(PyValueError::new_err("batch_transitions must be at least 1"));
            }
            group.max_transitions = rows;
        }
        if let Some(ms) = batch_ms {
            if !(ms.is_finite() && ms > 0.0 && ms <= 60_000.0) {
                return Err(PyValueError::new_err(format!("batch_ms must be in (0, 60000], not {ms}")));
            }
            group.max_delay = Duration::from_secs_f64(ms / 1000.0);
        }
        let store = py
            .detach(move || {
                let mut store = if read_only { Store::open_read_only(path) } else { Store::open(path, durability) }?;
                store.set_group_commit(group);
                Ok(store)
            })
            .map_err(PyCoreError)?;
        SqliteStore::wrap(store)
    }

    /// `(max atom rows, max milliseconds)` of a group with `durability="batch"`, else `None`.
    #[getter]
    fn group_commit(&self, py: Python<'_>) -> PyResult<Option<(usize, f64)>> {
        self.with(py, |s| Ok(s.group_commit().map(|g| (g.max_transitions, g.max_delay.as_secs_f64() * 1000.0))))
    }

    /// Starts reading the saved atom details of flow `flow_uuid` on a thread of its own, with a
    /// connection of its own (with their payload columns when `restoring`, as an engine's prepare
    /// reads them): `resume_plan_stored` then takes them instead of reading, if nothing else
    /// committed to the file and this handle changed no row but leases in between (see
    /// `ferroflow_core::py::read_ahead`). For a big flow whose factory takes a while. Returns
    /// whether it started (never for an in-memory store or a file whose identity is unknown, nor
    /// while this handle holds writes not committed yet); a read asked for earlier is given up.
    #[pyo3(signature = (flow_uuid, restoring = false))]
    fn read_ahead(&self, py: Python<'_>, flow_uuid: String, restoring: bool) -> PyResult<bool> {
        // (what this handle wrote and did not commit yet, another connection cannot read)
        let asked = self.with_open_group(py, |s| match s.file_identity() {
            Some(identity) if !s.has_uncommitted_writes() => {
                Ok(Some((identity, s.data_version()?, s.own_data_changes())))
            }
            _ => Ok(None),
        })?;
        let Some((identity, version, written)) = asked else { return Ok(false) };
        let read =
            ReadAhead::start(self.path.clone(), flow_uuid, restoring, identity, version, written).map_err(|e| {
                PyCoreError(CoreError::Storage(format!("store '{}': cannot start reading ahead: {e}", self.path)))
            })?;
        *self.read_ahead.lock().unwrap_or_else(PoisonError::into_inner) = Some(read);
        Ok(true)
    }

    /// How many reads ahead (`read_ahead`) were taken instead of reading.
    #[getter]
    fn read_aheads_taken(&self) -> u64 {
        self.read_aheads_taken.load(Ordering::Relaxed)
    }

    /// Whether a read ahead is kept, not taken yet.
    #[getter]
    fn reading_ahead(&self) -> bool {
        self.read_ahead.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Gives up the read ahead not taken, if any (what it read is dropped, its thread left to end).
    fn forget_read_ahead(&self) {
        drop(self.read_ahead.lock().unwrap_or_else(PoisonError::into_inner).take());
    }

    /// Commits the open group of applied batches now (`durability="batch"`; a no-op otherwise).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |_| Ok(()))
    }

    /// `durability="batch"`: from now on every write of this store joins one open transaction,
    /// committed on the group bounds (`batch_ms`, `batch_transitions` writes) and by `end_hold()`,
    /// instead of committing alone (see `Store::begin_hold`: a kill loses at most the open
    /// transaction). Returns False, holding nothing, on another durability.
    fn begin_hold(&self, py: Python<'_>) -> PyResult<bool> {
        let held = self.with(py, Store::begin_hold)?;
        if let Some(flusher) = &self.flusher {
            flusher.wake();
        }
        Ok(held)
    }

    /// Commits what `begin_hold()` held; writes commit one by one again.
    fn end_hold(&self, py: Python<'_>) -> PyResult<()> {
        self.with_open_group(py, |s| s.end_hold())
    }

    /// Whether writes are held (`begin_hold()`).
    #[getter]
    fn holding(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_open_group(py, |s| Ok(s.holding()))
    }

    /// Whether the store was opened read-only.
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |s| Ok(s.is_read_only()))
    }

    /// A private, empty in-memory store (nothing is durable; no WAL).
    #[staticmethod]
    fn in_memory(py: Python<'_>) -> PyResult<SqliteStore> {
        let store = py.detach(Store::open_in_memory).map_err(PyCoreError)?;
        SqliteStore::wrap(store)
    }

    /// The path the store was opened on (`:memory:` in memory).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.lock().unwrap_or_else(PoisonError::into_inner).is_none())
    }

    /// Closes the connection; later calls raise `StorageFailure`. Closing twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.forget_read_ahead();
        py.detach(|| {
            let store = self.inner.lock().unwrap_or_else(PoisonError::into_inner).take();
            store.map_or(Ok(()), Store::close)
        })
        .map_err(|e| PyCoreError(e).into())
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    fn schema_version(&self, py: Python<'_>) -> PyResult<i64> {
        self.with(py, |s| s.schema_version())
    }

    fn upgrade(&self, py: Python<'_>) -> PyResult<i64> {
        self.with(py, Store::upgrade)
    }

    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |s| s.validate())
    }

    /// `"ok"`, or one problem per line.
    fn integrity_check(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.integrity_check())
    }

    fn journal_mode(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.journal_mode())
    }

    fn clear_all(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Store::clear_all)
    }

    // ---- logbooks -----------------------------------------------------------------------------

    fn save_logbook(&self, py: Python<'_>, book: LogBookTuple) -> PyResult<()> {
        let (uuid, name, meta, created_at, updated_at) = book;
        let row = LogBookRow { uuid, name, meta, created_at, updated_at };
        self.with(py, move |s| s.save_logbook(&row))
    }

    fn get_logbook(&self, py: Python<'_>, uuid: &str) -> PyResult<LogBookTuple> {
        self.with(py, |s| s.get_logbook(uuid)).map(logbook_tuple)
    }

    fn list_logbooks(&self, py: Python<'_>) -> PyResult<Vec<LogBookTuple>> {
        Ok(self.with(py, |s| s.list_logbooks())?.into_iter().map(logbook_tuple).collect())
    }

    fn destroy_logbook(&self, py: Python<'_>, uuid: &str) -> PyResult<()> {
        self.with(py, |s| s.destroy_logbook(uuid))
    }

    /// Deletes the flow detail, its atoms, and its logbook if left empty; returns the owner of an
    /// unexpired lease instead (nothing deleted), unless that owner is `owner_gone`.
    #[pyo3(signature = (uuid, now, owner_gone=None))]
    fn delete_flow_detail(
        &self,
        py: Python<'_>,
        uuid: &str,
        now: f64,
        owner_gone: Option<&str>,
    ) -> PyResult<Option<String>> {
        Ok(self.with(py, |s| s.delete_flow_detail(uuid, now, owner_gone))?.err())
    }

    // ---- flow details -------------------------------------------------------------------------

    fn save_flow_detail(&self, py: Python<'_>, flow: FlowTuple) -> PyResult<()> {
        let row = flow_row(flow);
        self.with(py, move |s| s.save_flow_detail(&row))
    }

    fn update_flow_detail(&self, py: Python<'_>, flow: FlowTuple) -> PyResult<()> {
        let row = flow_row(flow);
        self.with(py, move |s| s.update_flow_detail(&row))
    }

    #[pyo3(signature = (flow_uuid, state, updated_at = None))]
    fn update_flow_state(&self, py: Python<'_>, flow_uuid: &str, state: &str, updated_at: Option<f64>) -> PyResult<()> {
        self.with(py, |s| s.update_flow_state(flow_uuid, state, updated_at))
    }

    fn get_flow_detail(&self, py: Python<'_>, uuid: &str) -> PyResult<FlowTuple> {
        self.with(py, |s| s.get_flow_detail(uuid)).map(flow_tuple)
    }

    fn flows_for_book(&self, py: Python<'_>, book_uuid: &str) -> PyResult<Vec<FlowTuple>> {
        Ok(self.with(py, |s| s.flows_for_book(book_uuid))?.into_iter().map(flow_tuple).collect())
    }

    // ---- atom details -------------------------------------------------------------------------

    fn get_atom_detail<'py>(&self, py: Python<'py>, uuid: &str) -> PyResult<Bound<'py, PyTuple>> {
        let row = self.with(py, |s| s.get_atom_detail(uuid))?;
        atom_tuple(&row, &mut SharedStrings::new(py))
    }

    /// Every atom detail of a flow, in the order they were first saved.
    fn atoms_for_flow<'py>(&self, py: Python<'py>, flow_uuid: &str) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let rows = self.with(py, |s| s.atoms_for_flow(flow_uuid))?;
        let mut shared = SharedStrings::new(py);
        rows.iter().map(|row| atom_tuple(row, &mut shared)).collect()
    }

    /// Every atom detail of a flow as parallel columns, in the order of `atoms_for_flow` (and of
    /// `resume_rows`): `(uuids, names, is_retry, states, intentions, versions, results, failures,
    /// revert_results, revert_failures, metas)`. What a prepare restores without a Python object
    /// per row: repeated values (states, versions, the usual JSON payloads and metas) are shared.
    fn atom_columns<'py>(&self, py: Python<'py>, flow_uuid: &str) -> PyResult<Bound<'py, PyTuple>> {
        let rows = self.with(py, |s| s.atoms_for_flow(flow_uuid))?;
        let mut shared = SharedStrings::new(py);
        let n = rows.len();
        let mut columns: [Vec<Bound<'py, PyAny>>; 11] = Default::default();
        for column in &mut columns {
            column.reserve_exact(n);
        }
        for row in &rows {
            let values = [
                PyString::new(py, &row.uuid).into_any(),
                PyString::new(py, &row.name).into_any(),
                pyo3::types::PyBool::new(py, row.atom_type == AtomType::Retry).to_owned().into_any(),
                shared.get_optional(row.state.as_deref()),
                shared.get(&row.intention),
                shared.get_optional(row.version.as_deref()),
                json_text(py, &row.results),
                optional_text(py, row.failure.as_deref()),
                json_text(py, &row.revert_results),
                optional_text(py, row.revert_failure.as_deref()),
                shared.get(&row.meta),
            ];
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
        }
        let lists = columns.into_iter().map(|c| pyo3::types::PyList::new(py, c)).collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, lists)
    }

    fn upsert_atom_details(&self, py: Python<'_>, atoms: Vec<AtomRowArg>) -> PyResult<()> {
        let rows: Vec<AtomDetailRow> = atoms.into_iter().map(|a| a.0).collect();
        self.with(py, move |s| s.upsert_atom_details(&rows))
    }

    fn apply_transitions(&self, py: Python<'_>, transitions: Vec<TransitionArg>) -> PyResult<()> {
        let transitions: Vec<Transition> = transitions.into_iter().map(|t| t.0).collect();
        self.with(py, move |s| s.apply_transitions(&transitions))
    }

    /// Group commit: inserts or replaces `new_atoms`, then applies `transitions`, then merges
    /// sets `resume_records` (`(atom uuid, JSON text)`), then
    /// `flow_states`, then `flow_metas` (`(flow_uuid, meta JSON, updated_at)`), in one transaction
    /// (all or nothing).
    ///
    /// `fresh_atoms`, `(flow_uuid, created_at, rows)`, inserts new details (PENDING, to EXECUTE,
    /// nothing saved yet) from columns (`FreshRows`, taken over), before everything else.
    ///
    /// With `release`, the fence's owner also gives the flow's lease up in that transaction (a
    /// run's final state and its release commit together). With `grouped` and
    /// `durability="batch"`, flow states join the open group of steps (see `Batch::grouped`).
    #[pyo3(signature = (
        new_atoms, transitions, flow_states, flow_metas = Vec::new(), resume_records = Vec::new(), fresh_atoms = None,
        fence = None, release = false, grouped = false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        py: Python<'_>,
        new_atoms: Vec<AtomRowArg>,
        transitions: Vec<TransitionArg>,
        flow_states: Vec<FlowStateTuple>,
        flow_metas: Vec<FlowStateTuple>,
        resume_records: Vec<(String, String)>,
        fresh_atoms: Option<(String, f64, Bound<'_, FreshRows>)>,
        fence: Option<(String, String, i64)>,
        release: bool,
        grouped: bool,
    ) -> PyResult<()> {
        if release && fence.is_none() {
            return Err(PyValueError::new_err("release=True gives up the lease of the fence's owner: pass the fence"));
        }
        let batch = Batch {
            release,
            grouped,
            fence: fence.map(fence_of),
            atom_details: new_atoms.into_iter().map(|a| a.0).collect(),
            fresh_atoms: fresh_atoms
                .map(|(parent_uuid, created_at, rows)| -> PyResult<FreshAtoms> {
                    Ok(FreshAtoms { parent_uuid, created_at, rows: rows.borrow_mut().take()? })
                })
                .transpose()?,
            transitions: transitions.into_iter().map(|t| t.0).collect(),
            resume_records: resume_records
                .into_iter()
                .map(|(atom_uuid, record)| ResumeRecord { atom_uuid, record })
                .collect(),
            flow_states: flow_states
                .into_iter()
                .map(|(flow_uuid, state, updated_at)| FlowStateChange { flow_uuid, state, updated_at })
                .collect(),
            flow_metas: flow_metas
                .into_iter()
                .map(|(flow_uuid, meta, updated_at)| FlowMetaChange { flow_uuid, meta, updated_at })
                .collect(),
        };
        let rows = batch_rows(&batch);
        self.with_open_group(py, move |s| s.apply_owned(batch))?;
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
        if let Some(flusher) = &self.flusher {
            flusher.wake();
        }
        Ok(())
    }

    /// The commonest engine transitions, without a dict each: `(atom uuid, state, intention,
    /// results, meta, resume record)`, all at `updated_at`, as one batch (see `apply`). `results`
    /// set also clears the failure (a task succeeding); `None` keeps a column.
    #[pyo3(signature = (steps, updated_at, fence = None))]
    fn apply_steps(
        &self,
        py: Python<'_>,
        steps: Vec<StepTuple>,
        updated_at: f64,
        fence: Option<(String, String, i64)>,
    ) -> PyResult<()> {
        let transitions = steps
            .into_iter()
            .map(|(atom_uuid, state, intention, results, meta, resume)| {
                let (state, intention) = (Text::Owned(state), Text::Owned(intention));
                step(atom_uuid, state, intention, results.map(Text::Owned), meta.map(Text::Owned), resume, updated_at)
            })
            .collect();
        self.apply_step_batch(py, transitions, fence.map(fence_of))
    }

    /// How many atom rows this handle has written (each insert, replacement or transition of
    /// one row counts once; the rows of a group count when they join it).
    #[getter]
    fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    /// `(atom uuid, inputs, revert kind, revert name)` of the flow's details with a resume record.
    fn resume_summaries(&self, py: Python<'_>, flow_uuid: &str) -> PyResult<Vec<ResumeSummary>> {
        self.with(py, |s| s.resume_summaries(flow_uuid))
    }

    /// The resume record (JSON text) of an atom detail, `None` when it has none.
    fn resume_record(&self, py: Python<'_>, atom_uuid: &str) -> PyResult<Option<String>> {
        self.with(py, |s| s.resume_record(atom_uuid))
    }

    // ---- ownership ----------------------------------------------------------------------------

    /// Takes the flow's lease for `owner` until `now + lease_seconds`: `(epoch, None, flow row)`
    /// when taken (the fencing epoch its writes carry, and the flow detail's row as it was
    /// taken), else `(0, current owner, None)`.
    fn acquire_lease(
        &self,
        py: Python<'_>,
        flow_uuid: &str,
        owner: &str,
        lease_seconds: f64,
        now: f64,
    ) -> PyResult<(i64, Option<String>, Option<FlowTuple>)> {
        Ok(match self.with(py, |s| s.acquire_lease_reading(flow_uuid, owner, lease_seconds, now))? {
            Ok((epoch, row)) => (epoch, None, Some(flow_tuple(row))),
            Err(holder) => (0, Some(holder), None),
        })
    }

    /// Extends the lease `owner` took at `epoch`; `LeaseLost` when it no longer holds it.
    fn renew_lease(
        &self,
        py: Python<'_>,
        flow_uuid: &str,
        owner: &str,
        epoch: i64,
        lease_seconds: f64,
        now: f64,
    ) -> PyResult<()> {
        self.with(py, |s| s.renew_lease(flow_uuid, owner, epoch, lease_seconds, now))
    }

    fn release_lease(&self, py: Python<'_>, flow_uuid: &str, owner: &str) -> PyResult<bool> {
        self.with(py, |s| s.release_lease(flow_uuid, owner))
    }

    /// `(owner, until, epoch)` of the flow's lease, expired or not; `None` when unowned.
    fn lease(&self, py: Python<'_>, flow_uuid: &str) -> PyResult<Option<(String, f64, i64)>> {
        Ok(self.with(py, |s| s.lease(flow_uuid))?.map(|l| (l.owner, l.until, l.epoch)))
    }

    fn __repr__(&self) -> String {
        format!("<SqliteStore {:?}>", self.path)
    }
}

// ---- rows in ----------------------------------------------------------------------------------

fn flow_row(flow: FlowTuple) -> FlowDetailRow {
    let (uuid, parent_uuid, name, state, meta, created_at, updated_at) = flow;
    FlowDetailRow { uuid, parent_uuid, name, state, meta, created_at, updated_at }
}

/// An atom detail tuple (too long for pyo3's tuple conversions, which stop at 12).
struct AtomRowArg(AtomDetailRow);

impl<'a, 'py> FromPyObject<'a, 'py> for AtomRowArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let t = obj.cast::<PyTuple>()?;
        if t.len() != ATOM_FIELDS {
            return Err(PyValueError::new_err(format!("an atom detail row has {ATOM_FIELDS} fields, got {}", t.len())));
        }
        let tag: String = t.get_item(3)?.extract()?;
        let atom_type = AtomType::from_tag(&tag).ok_or_else(|| {
            PyValueError::new_err(format!("unknown atom type {tag:?}; expected 'TASK_DETAIL' or 'RETRY_DETAIL'"))
        })?;
        Ok(AtomRowArg(AtomDetailRow {
            uuid: t.get_item(0)?.extract()?,
            parent_uuid: t.get_item(1)?.extract()?,
            name: t.get_item(2)?.extract()?,
            atom_type,
            state: t.get_item(4)?.extract()?,
            intention: t.get_item(5)?.extract()?,
            results: t.get_item(6)?.extract()?,
            failure: t.get_item(7)?.extract()?,
            revert_results: t.get_item(8)?.extract()?,
            revert_failure: t.get_item(9)?.extract()?,
            version: t.get_item(10)?.extract()?,
            meta: t.get_item(11)?.extract()?,
            created_at: t.get_item(12)?.extract()?,
            updated_at: t.get_item(13)?.extract()?,
        }))
    }
}

/// A transition dict: `uuid` plus the columns it changes (see the module documentation).
struct TransitionArg(Transition);

impl<'a, 'py> FromPyObject<'a, 'py> for TransitionArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let dict = obj.cast::<PyDict>()?;
        let mut transition = Transition::default();
        let mut uuid = None;
        for (key, value) in dict.iter() {
            let key = key.cast::<PyString>()?;
            match key.to_str()? {
                "uuid" => uuid = Some(value.extract::<String>()?),
                "state" => transition.state = text(&value)?,
                "intention" => transition.intention = text(&value)?,
                "results" => transition.results = text(&value)?,
                "revert_results" => transition.revert_results = text(&value)?,
                "meta" => transition.meta = text(&value)?,
                "updated_at" => transition.updated_at = value.extract()?,
                "resume" => transition.resume = value.extract()?,
                "failure" => transition.failure = nullable(&value)?,
                "revert_failure" => transition.revert_failure = nullable(&value)?,
                other => return Err(PyValueError::new_err(format!("unknown transition field {other:?}"))),
            }
        }
        transition.atom_uuid = uuid.ok_or_else(|| PyValueError::new_err("a transition needs the atom's 'uuid'"))?;
        Ok(TransitionArg(transition))
    }
}

/// The fence of a `(flow uuid, owner, epoch)` tuple.
pub(super) fn fence_of((flow_uuid, owner, epoch): (String, String, i64)) -> Fence {
    Fence { flow_uuid: flow_uuid.into(), owner: owner.into(), epoch }
}

/// A text column's value: `None` keeps the column.
fn text(value: &Bound<'_, PyAny>) -> PyResult<Option<Text>> {
    Ok(value.extract::<Option<String>>()?.map(Text::Owned))
}

/// A present failure key: `None` clears the column, a string sets it.
fn nullable(value: &Bound<'_, PyAny>) -> PyResult<Nullable> {
    Ok(match value.extract::<Option<String>>()? {
        None => Nullable::Clear,
        Some(json) => Nullable::Set(json),
    })
}

// ---- rows out ---------------------------------------------------------------------------------

fn logbook_tuple(row: LogBookRow) -> LogBookTuple {
    (row.uuid, row.name, row.meta, row.created_at, row.updated_at)
}

fn flow_tuple(row: FlowDetailRow) -> FlowTuple {
    (row.uuid, row.parent_uuid, row.name, row.state, row.meta, row.created_at, row.updated_at)
}

/// One Python string per distinct value of the low-cardinality columns: the rows of a flow share
/// one parent uuid and a handful of type, state, intention and version names, so a 100,000-row
/// load makes a few strings there instead of 500,000.
struct SharedStrings<'py> {
    py: Python<'py>,
    seen: HashMap<String, Bound<'py, PyString>>,
}

impl<'py> SharedStrings<'py> {
    fn new(py: Python<'py>) -> Self {
        SharedStrings { py, seen: HashMap::new() }
    }

    fn get(&mut self, value: &str) -> Bound<'py, PyAny> {
        if let Some(shared) = self.seen.get(value) {
            return shared.clone().into_any();
        }
        let created = PyString::new(self.py, value);
        self.seen.insert(value.to_owned(), created.clone());
        created.into_any()
    }

    fn get_optional(&mut self, value: Option<&str>) -> Bound<'py, PyAny> {
        match value {
            Some(v) => self.get(v),
            None => self.py.None().into_bound(self.py),
        }
    }
}

/// A JSON column: the usual empty payloads are interned, anything else is a new string.
fn json_text<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyAny> {
    match text {
        "null" => pyo3::intern!(py, "null").clone().into_any(),
        "{}" => pyo3::intern!(py, "{}").clone().into_any(),
        "[]" => pyo3::intern!(py, "[]").clone().into_any(),
        _ => PyString::new(py, text).into_any(),
    }
}

fn optional_text<'py>(py: Python<'py>, text: Option<&str>) -> Bound<'py, PyAny> {
    text.map_or_else(|| py.None().into_bound(py), |t| PyString::new(py, t).into_any())
}

fn optional_float(py: Python<'_>, value: Option<f64>) -> Bound<'_, PyAny> {
    value.map_or_else(|| py.None().into_bound(py), |v| PyFloat::new(py, v).into_any())
}

fn atom_tuple<'py>(row: &AtomDetailRow, shared: &mut SharedStrings<'py>) -> PyResult<Bound<'py, PyTuple>> {
    let py = shared.py;
    let fields: [Bound<'py, PyAny>; ATOM_FIELDS] = [
        PyString::new(py, &row.uuid).into_any(),
        shared.get(&row.parent_uuid),
        PyString::new(py, &row.name).into_any(),
        shared.get(row.atom_type.as_str()),
        shared.get_optional(row.state.as_deref()),
        shared.get(&row.intention),
        json_text(py, &row.results),
        optional_text(py, row.failure.as_deref()),
        json_text(py, &row.revert_results),
        optional_text(py, row.revert_failure.as_deref()),
        shared.get_optional(row.version.as_deref()),
        json_text(py, &row.meta),
        PyFloat::new(py, row.created_at).into_any(),
        optional_float(py, row.updated_at),
    ];
    PyTuple::new(py, fields)
}
