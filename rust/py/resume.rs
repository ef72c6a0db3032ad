//! Resumption across code changes (`crate::resume`) for Python: the plan — from saved details
//! given as tuples, or read straight from a SQLite store without making a Python object per row —
//! migration checks, input fingerprints and rewind order.
//!
//! Tuples:
//! - saved detail: `(name, is_retry, state, intention, version, inputs, revert_kind, revert_name,
//!   retired_by)` (see `resume::SavedAtom`);
//! - migration: `(kind, sources, targets, mapped)` with kind `"rename"`, `"split"` or `"merge"`;
//! - pending reverts: `(reason, names to revert in order, names to run again)`.
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use pyo3::{IntoPyObject, IntoPyObjectExt};

use super::errors::PyCoreError;
use super::flow::CompiledFlow;
use super::store::SqliteStore;
use crate::error::CoreResult;
use crate::graph::{self, NONE};
use crate::resume::{
    self, Migration, MigrationKind, PendingReverts, Plan, PlanAction, PlanEntry, PlanRequest, ProviderPolicy,
    SavedAtom, VersionPolicy,
};
use crate::store::{AtomType, RestoreRow, ResumeRow, Store, TextColumn};

type SavedTuple = (
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
type MigrationTuple = (String, Vec<String>, Vec<String>, bool);
type RevertsTuple = (String, Vec<String>, Vec<String>);

/// A computed plan: entries built into Python objects only when asked for.
#[pyclass(frozen, module = "ferroflow._core")]
pub struct ResumePlan {
    flow: Arc<graph::CompiledFlow>,
    saved: Vec<SavedAtom>,
    plan: Plan,
    problems: Vec<String>,
    /// Read with the plan when asked (`resume_plan_stored(restoring=True)`).
    payloads: Option<Payloads>,
}

impl ResumePlan {
    /// Plans, and checks the pending migrations when there is something to migrate.
    fn new(flow: Arc<graph::CompiledFlow>, saved: Vec<SavedAtom>, options: &Options) -> ResumePlan {
        let plan = options.plan(&flow, &saved);
        let has_saved_atoms = saved.iter().any(SavedAtom::matchable);
        let problems = if has_saved_atoms && !options.pending.is_empty() {
            resume::check_migrations(&saved, &flow, &options.pending)
        } else {
            Vec::new()
        };
        ResumePlan { flow, saved, plan, problems, payloads: None }
    }

    /// What entries folded together share: saved state, saved version, version, action, reason.
    fn fold_key<'a>(
        &'a self,
        entry: &'a PlanEntry,
    ) -> (Option<&'a str>, Option<&'a str>, &'a str, PlanAction, &'a str) {
        let detail = entry.saved.map(|s| &self.saved[s as usize]);
        (
            detail.map(|d| d.state().name()),
            detail.and_then(|d| d.version.as_deref()),
            entry.atom.map_or("", |a| self.flow.atoms[a as usize].version.as_str()),
            entry.action,
            entry.reason.as_ref(),
        )
    }
}

#[pymethods]
impl ResumePlan {
    /// Per compiled atom, the index of its saved detail, or -1 when it needs a new one.
    #[getter]
    fn matched(&self) -> Vec<i64> {
        self.plan.matched.iter().map(|&s| if s == NONE { -1 } else { i64::from(s) }).collect()
    }

    /// Per compiled atom, its action code (see `RESUME_ACTIONS`).
    #[getter]
    fn actions(&self) -> Vec<u8> {
        self.plan.actions.iter().map(|&a| a as u8).collect()
    }

    /// Why the pending migrations cannot be applied (empty: they can, or there are none).
    #[getter]
    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    /// Indices of saved details a rollback must consider (orphans).
    #[getter]
    fn orphans(&self) -> Vec<u32> {
        self.plan.orphans.clone()
    }

    /// What an engine's prepare restores from a plan read with `restoring=True`, per compiled
    /// atom, as columns: `(states, intentions, uuids, versions, results, revert_results, metas,
    /// slow, fresh, restore, interrupted)`.
    ///
    /// A *plain* matched detail (a task's, without failures, that no version policy touches:
    /// reused when SUCCESS, else saved at the atom's current version) is restored from these:
    /// `states`/`intentions` its codes (the scheduler's), `versions` its saved version,
    /// `results`/`revert_results` `(atom, JSON text)` of the payloads that are not null, `metas`
    /// `(meta JSON text, [atoms])` for metas other than `{}`, `restore` `(atom, state,
    /// intention)` of those not PENDING/EXECUTE, `interrupted` those saved RUNNING while
    /// reverting. `uuids` holds the saved uuid of every matched atom (None: `fresh`, no detail
    /// yet); `slow` lists the matched atoms that are not plain (restored from models).
    fn restore_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let Some(p) = &self.payloads else {
            return Err(PyValueError::new_err("this plan was not read with restoring=True"));
        };
        let n = self.flow.atoms.len();
        // (u32, not u8: a Vec<u8> would reach Python as bytes, not a list)
        let mut states = vec![0u32; n];
        let mut intentions = vec![0u32; n];
        let mut uuids: Vec<Bound<'py, PyAny>> = Vec::with_capacity(n);
        // (one Python string per run of equal versions: atoms mostly share one, "1.0")
        let mut versions: Vec<Option<Bound<'py, PyString>>> = vec![None; n];
        let mut last_version: Option<(&str, Bound<'py, PyString>)> = None;
        let (mut results, mut revert_results) = (Vec::new(), Vec::new());
        let mut by_meta: Vec<Vec<u32>> = vec![Vec::new(); p.metas.len()];
        let (mut slow, mut fresh, mut restore, mut interrupted) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (atom, spec) in self.flow.atoms.iter().enumerate() {
            let index = u32::try_from(atom).unwrap_or(u32::MAX);
            let position = self.plan.matched[atom];
            if position == NONE {
                fresh.push(index);
                uuids.push(py.None().into_bound(py));
                continue;
            }
            let at = position as usize;
            uuids.push(PyString::new(py, p.uuid(at).unwrap_or_default()).into_any());
            let saved = &self.saved[at];
            let state = saved.state();
            let plain = !saved.is_retry
                && !p.has_failure[at]
                && !p.has_revert_failure[at]
                && if state == crate::sched::State::Success {
                    self.plan.actions[atom] == PlanAction::Reuse
                } else {
                    spec.version.is_empty() || saved.version.as_deref() == Some(spec.version.as_str())
                };
            if !plain {
                slow.push(index);
                continue;
            }
            let intention = saved.intention();
            states[atom] = state as u32;
            intentions[atom] = intention as u32;
            versions[atom] = saved.version.as_deref().map(|text| match &last_version {
                Some((seen, made)) if *seen == text => made.clone(),
                _ => last_version.insert((text, PyString::new(py, text))).1.clone(),
            });
            if let Some(text) = Payloads::payload(&p.results, at) {
                results.push((index, text));
            }
            if let Some(text) = Payloads::payload(&p.revert_results, at) {
                revert_results.push((index, text));
            }
            let meta = p.meta[at] as usize;
            if p.metas[meta] != "{}" {
                by_meta[meta].push(index);
            }
            if state as u8 != 0 || intention as u8 != 0 {
                restore.push((index, state as u8, intention as u8));
            }
            if state == crate::sched::State::Running && intention != crate::sched::Intention::Execute {
                interrupted.push(index);
            }
        }
        let metas: Vec<(&str, Vec<u32>)> = p
            .metas
            .iter()
            .zip(by_meta)
            .filter(|(_, atoms)| !atoms.is_empty())
            .map(|(text, atoms)| (text.as_str(), atoms))
            .collect();
        (states, intentions, uuids, versions, results, revert_results, metas, slow, fresh, restore, interrupted)
            .into_pyobject(py)
    }

    /// Whether the plan was read with its payloads (`restoring=True`).
    #[getter]
    fn has_payloads(&self) -> bool {
        self.payloads.is_some()
    }

    /// The uuid of saved detail `index`, when read with the payloads (else None).
    fn saved_uuid(&self, index: usize) -> Option<String> {
        self.payloads.as_ref().and_then(|p| p.uuid(index)).map(str::to_owned)
    }

    /// The index of the first saved detail named `name`, or None.
    fn saved_position(&self, name: &str) -> Option<usize> {
        self.saved.iter().position(|s| s.name == name)
    }

    /// The name of saved detail `index` (as the plan read it), or None past the end.
    fn saved_name(&self, index: usize) -> Option<String> {
        self.saved.get(index).map(|s| s.name.clone())
    }

    /// How many entries the plan has.
    #[getter]
    fn entry_count(&self) -> usize {
        self.plan.entries.len()
    }

    /// How many entries take each action, as `{action name: count}`.
    fn action_counts(&self) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::new();
        for entry in &self.plan.entries {
            *counts.entry(entry.action.name()).or_insert(0) += 1;
        }
        counts
    }

    /// The plan's entries in segments `(start, end)` that cover them in order: each run of at
    /// least `min_run` consecutive entries alike (same saved state, saved version, version, action
    /// and reason) is one segment, every other entry a segment of its own. A 100,000-atom plan's
    /// folded table then needs a few entries, not a Python tuple per atom.
    fn fold_runs(&self, min_run: usize) -> Vec<(usize, usize)> {
        let entries = &self.plan.entries;
        let mut segments = Vec::new();
        let mut start = 0;
        while start < entries.len() {
            let key = self.fold_key(&entries[start]);
            let end = (start + 1..entries.len()).find(|&i| self.fold_key(&entries[i]) != key).unwrap_or(entries.len());
            if end - start >= min_run.max(1) {
                segments.push((start, end));
            } else {
                segments.extend((start..end).map(|i| (i, i + 1)));
            }
            start = end;
        }
        segments
    }

    /// Every entry (or those at `indices`, in that order) as `(name, saved_state, saved_version,
    /// version, action, reason, atom index, saved index)`, in plan order. Repeated strings
    /// (states, versions, reasons) are shared.
    #[pyo3(signature = (indices=None))]
    #[allow(clippy::needless_pass_by_value)] // (extracted from Python as an owned list)
    fn entries<'py>(&self, py: Python<'py>, indices: Option<Vec<usize>>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let count = self.plan.entries.len();
        if let Some(bad) = indices.iter().flatten().find(|&&i| i >= count) {
            return Err(PyIndexError::new_err(format!("plan entry {bad} out of range (the plan has {count})")));
        }
        let picked: Box<dyn Iterator<Item = &PlanEntry>> = match &indices {
            Some(indices) => Box::new(indices.iter().map(|&i| &self.plan.entries[i])),
            None => Box::new(self.plan.entries.iter()),
        };
        let mut shared: HashMap<String, Bound<'py, PyString>> = HashMap::new();
        let mut text = |value: &str| -> Bound<'py, PyAny> {
            if let Some(known) = shared.get(value) {
                return known.clone().into_any();
            }
            let created = PyString::new(py, value);
            shared.insert(value.to_owned(), created.clone());
            created.into_any()
        };
        let none = || py.None().into_bound(py);
        let mut out = Vec::with_capacity(indices.as_ref().map_or(count, Vec::len));
        for entry in picked {
            let detail = entry.saved.map(|s| &self.saved[s as usize]);
            let spec = entry.atom.map(|a| &self.flow.atoms[a as usize]);
            let name = spec.map_or_else(|| detail.map_or("", |d| d.name.as_str()), |a| a.name.as_str());
            let saved_state = match detail {
                Some(d) => text(d.state().name()),
                None => none(),
            };
            let saved_version = match detail.and_then(|d| d.version.as_deref()) {
                Some(v) => text(v),
                None => none(),
            };
            let version = match spec.map(|a| a.version.as_str()).filter(|v| !v.is_empty()) {
                Some(v) => text(v),
                None => none(),
            };
            let reason = match &entry.reason {
                std::borrow::Cow::Borrowed(r) => text(r),
                std::borrow::Cow::Owned(r) => PyString::new(py, r).into_any(),
            };
            let fields: [Bound<'py, PyAny>; 8] = [
                PyString::new(py, name).into_any(),
                saved_state,
                saved_version,
                version,
                text(entry.action.name()),
                reason,
                entry.atom.into_bound_py_any(py)?,
                entry.saved.into_bound_py_any(py)?,
            ];
            out.push(PyTuple::new(py, fields)?);
        }
        Ok(out)
    }
}

fn saved_atom(t: SavedTuple) -> SavedAtom {
    let (name, is_retry, state, intention, version, inputs, revert_kind, revert_name, retired_by) = t;
    let shared = |text: Option<String>| text.map(Arc::from);
    SavedAtom {
        name,
        is_retry,
        state: shared(state),
        intention: shared(intention),
        version: shared(version),
        inputs: shared(inputs),
        revert_kind: shared(revert_kind),
        revert_name: shared(revert_name),
        retired_by: shared(retired_by),
    }
}

fn saved_from_row(row: ResumeRow) -> SavedAtom {
    SavedAtom {
        name: row.name,
        is_retry: row.atom_type == Some(AtomType::Retry),
        state: row.state,
        intention: Some(row.intention),
        version: row.version,
        inputs: row.inputs,
        revert_kind: row.revert_kind,
        revert_name: row.revert_name,
        retired_by: row.retired_by,
    }
}

fn migration(t: MigrationTuple) -> PyResult<Migration> {
    let (kind, sources, targets, mapped) = t;
    let kind = MigrationKind::from_name(&kind).ok_or_else(|| {
        PyValueError::new_err(format!("unknown migration kind {kind:?}; expected rename, split or merge"))
    })?;
    Ok(Migration { kind, sources, targets, mapped })
}

fn migrations(list: Vec<MigrationTuple>) -> PyResult<Vec<Migration>> {
    list.into_iter().map(migration).collect()
}

fn version_policy(name: &str) -> PyResult<VersionPolicy> {
    VersionPolicy::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown on_version_change policy {name:?}; expected reuse, rerun, revert_then_rerun, fail or a callable"
        ))
    })
}

/// The options of a plan, converted once.
struct Options {
    policies: HashMap<u32, VersionPolicy>,
    default_policy: VersionPolicy,
    provider_policy: ProviderPolicy,
    flow_reverted: bool,
    pending: Vec<Migration>,
    applied: Vec<Migration>,
    reverts: Option<PendingReverts>,
    misfits: HashMap<u32, String>,
    unrevertable: HashMap<u32, String>,
}

impl Options {
    #[allow(clippy::too_many_arguments)]
    fn new(
        policies: HashMap<u32, String>,
        default_policy: &str,
        provider_policy: &str,
        flow_reverted: bool,
        pending: Vec<MigrationTuple>,
        applied: Vec<MigrationTuple>,
        reverts: Option<RevertsTuple>,
        misfits: HashMap<u32, String>,
        unrevertable: HashMap<u32, String>,
    ) -> PyResult<Options> {
        let policies =
            policies.into_iter().map(|(atom, name)| Ok((atom, version_policy(&name)?))).collect::<PyResult<_>>()?;
        let provider_policy = ProviderPolicy::from_name(provider_policy).ok_or_else(|| {
            PyValueError::new_err(format!("unknown provider_change policy {provider_policy:?}; expected keep or rerun"))
        })?;
        Ok(Options {
            policies,
            default_policy: version_policy(default_policy)?,
            provider_policy,
            flow_reverted,
            pending: migrations(pending)?,
            applied: migrations(applied)?,
            reverts: reverts.map(|(reason, revert, rerun)| PendingReverts { reason, revert, rerun }),
            misfits,
            unrevertable,
        })
    }

    fn plan(&self, flow: &graph::CompiledFlow, saved: &[SavedAtom]) -> Plan {
        resume::plan(&PlanRequest {
            flow,
            saved,
            policies: &self.policies,
            default_policy: self.default_policy,
            provider_policy: self.provider_policy,
            flow_reverted: self.flow_reverted,
            pending: &self.pending,
            applied: &self.applied,
            reverts: self.reverts.as_ref(),
            misfits: &self.misfits,
            unrevertable: &self.unrevertable,
        })
    }
}

/// Action names by the codes `ResumePlan.actions` uses.
pub fn action_names() -> Vec<&'static str> {
    PlanAction::ALL.iter().map(|a| a.name()).collect()
}

/// The resumption plan of `flow` against saved details given as tuples.
#[pyfunction]
#[pyo3(signature = (
    flow, saved, policies, default_policy = "reuse", provider_policy = "keep", flow_reverted = false,
    pending = Vec::new(), applied = Vec::new(), reverts = None, misfits = HashMap::new(), unrevertable = HashMap::new()
))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
pub fn resume_plan(
    py: Python<'_>,
    flow: &CompiledFlow,
    saved: Vec<SavedTuple>,
    policies: HashMap<u32, String>,
    default_policy: &str,
    provider_policy: &str,
    flow_reverted: bool,
    pending: Vec<MigrationTuple>,
    applied: Vec<MigrationTuple>,
    reverts: Option<RevertsTuple>,
    misfits: HashMap<u32, String>,
    unrevertable: HashMap<u32, String>,
) -> PyResult<ResumePlan> {
    let options = Options::new(
        policies,
        default_policy,
        provider_policy,
        flow_reverted,
        pending,
        applied,
        reverts,
        misfits,
        unrevertable,
    )?;
    let saved: Vec<SavedAtom> = saved.into_iter().map(saved_atom).collect();
    resume::check_saved(&saved, "").map_err(PyCoreError)?;
    let compiled = flow.inner.clone();
    Ok(py.detach(|| ResumePlan::new(compiled, saved, &options)))
}

/// The resumption plan of `flow` against the atom details of `flow_uuid` in a SQLite store, read
/// and matched without the GIL and without a Python object per saved detail.
///
/// With `restoring`, the payload columns are read in the same pass and kept with the plan, for
/// [`ResumePlan::restore_columns`] (an engine's prepare).
#[pyfunction]
#[pyo3(signature = (
    store, flow_uuid, flow, policies, default_policy = "reuse", provider_policy = "keep", flow_reverted = false,
    pending = Vec::new(), applied = Vec::new(), reverts = None, misfits = HashMap::new(), unrevertable = HashMap::new(),
    restoring = false
))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
pub fn resume_plan_stored(
    py: Python<'_>,
    store: &SqliteStore,
    flow_uuid: &str,
    flow: &CompiledFlow,
    policies: HashMap<u32, String>,
    default_policy: &str,
    provider_policy: &str,
    flow_reverted: bool,
    pending: Vec<MigrationTuple>,
    applied: Vec<MigrationTuple>,
    reverts: Option<RevertsTuple>,
    misfits: HashMap<u32, String>,
    unrevertable: HashMap<u32, String>,
    restoring: bool,
) -> PyResult<ResumePlan> {
    let options = Options::new(
        policies,
        default_policy,
        provider_policy,
        flow_reverted,
        pending,
        applied,
        reverts,
        misfits,
        unrevertable,
    )?;
    // (read ahead while the flow was built, when asked for and still what a read now gives)
    let (saved, payloads) = match store.take_read_ahead(py, flow_uuid, restoring)? {
        Some(read) => read,
        None => store.with(py, |s| read_saved(s, flow_uuid, restoring, flow.inner.atoms.len()))?,
    };
    let of_flow = format!(" of flow detail '{flow_uuid}' in store '{}'", store.label());
    resume::check_saved(&saved, &of_flow).map_err(PyCoreError)?;
    let compiled = flow.inner.clone();
    let mut plan = py.detach(|| ResumePlan::new(compiled, saved, &options));
    plan.payloads = payloads;
    Ok(plan)
}

/// The saved atom details of `flow_uuid` as the plan reads them; with `restoring`, their payload
/// columns too (read in the same pass). `expected`: how many there are likely to be (the flow's
/// atoms), reserved up front.
pub(super) fn read_saved(
    store: &Store,
    flow_uuid: &str,
    restoring: bool,
    expected: usize,
) -> CoreResult<(Vec<SavedAtom>, Option<Payloads>)> {
    if restoring {
        let (mut saved, mut payloads) = (Vec::with_capacity(expected), Payloads::with_capacity(expected));
        payloads.metas = store.restore_rows_each(flow_uuid, |row| saved.push(payloads.add(row)))?;
        Ok((saved, Some(payloads)))
    } else {
        Ok((store.resume_rows(flow_uuid)?.into_iter().map(saved_from_row).collect(), None))
    }
}

/// The payload columns of the saved details a plan was made from (see `restore_columns`), lean
/// for a million rows: uuids packed in one text, payloads kept only where not null.
#[derive(Default)]
pub(super) struct Payloads {
    /// Every uuid, in one buffer.
    uuids: TextColumn,
    /// `(saved index, JSON text)` of the payloads that are not null, by saved index.
    results: Vec<(u32, String)>,
    revert_results: Vec<(u32, String)>,
    has_failure: Vec<bool>,
    has_revert_failure: Vec<bool>,
    meta: Vec<u32>,
    metas: Vec<String>,
}

impl Payloads {
    /// Room for `rows` saved details (their sparse columns: for a few).
    fn with_capacity(rows: usize) -> Payloads {
        Payloads {
            uuids: TextColumn::with_capacity(rows, rows * 36),
            results: Vec::with_capacity(rows.min(64)),
            has_failure: Vec::with_capacity(rows),
            has_revert_failure: Vec::with_capacity(rows),
            meta: Vec::with_capacity(rows),
            ..Payloads::default()
        }
    }

    /// Keeps a row's payloads; its plan input is returned.
    fn add(&mut self, row: RestoreRow) -> SavedAtom {
        let index = u32::try_from(self.meta.len()).unwrap_or(u32::MAX);
        self.uuids.push(&row.uuid);
        if let Some(text) = row.results {
            self.results.push((index, text));
        }
        if let Some(text) = row.revert_results {
            self.revert_results.push((index, text));
        }
        self.has_failure.push(row.has_failure);
        self.has_revert_failure.push(row.has_revert_failure);
        self.meta.push(row.meta);
        saved_from_row(row.resume)
    }

    fn uuid(&self, index: usize) -> Option<&str> {
        self.uuids.get(index)
    }

    /// The payload of saved detail `at` in a sparse column.
    fn payload(column: &[(u32, String)], at: usize) -> Option<&str> {
        let at = u32::try_from(at).ok()?;
        column.binary_search_by_key(&at, |(index, _)| *index).ok().map(|found| column[found].1.as_str())
    }
}

/// Every reason why `migrations` cannot be applied to the saved details (empty: they can).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)]
pub fn check_migrations(
    flow: &CompiledFlow,
    saved: Vec<SavedTuple>,
    to_apply: Vec<MigrationTuple>,
) -> PyResult<Vec<String>> {
    let saved: Vec<SavedAtom> = saved.into_iter().map(saved_atom).collect();
    Ok(resume::check_migrations(&saved, &flow.inner, &migrations(to_apply)?))
}

/// Who provides each input of `atom`, as saved with a detail when the atom runs.
#[pyfunction]
pub fn input_fingerprint(flow: &CompiledFlow, atom: usize) -> String {
    resume::input_fingerprint(&flow.inner, atom)
}

/// The atoms a rewind to `atom` reverts, in the order it reverts them (latest first).
#[pyfunction]
pub fn rewind_order(flow: &CompiledFlow, atom: u32) -> Vec<u32> {
    resume::rewind_order(&flow.inner, atom)
}
