//! The embedded sqlite store: taskflow's `LogBook → FlowDetail → AtomDetail` model in one file.
//!
//! Rust never interprets user payloads: `results`, `failure`, `revert_results`, `revert_failure` and
//! `meta` are opaque JSON text produced (and read back) by the Python side.
//!
//! # Durability
//!
//! The file is always in WAL journal mode. A write method returns only after its transaction has
//! committed, and each public write method is exactly one transaction: it is applied entirely or
//! not at all.
//!
//! - [`Durability::Process`] (`synchronous=NORMAL`, the default): a committed transaction is in the
//!   WAL file, handed to the operating system, before the call returns. Killing the process at any
//!   instant (`kill -9`, a panic, an abort) loses **no committed transaction**; a transaction that
//!   was in flight is rolled back when the file is next opened. A power loss or OS crash may lose the
//!   last transactions committed since the previous checkpoint (never corrupting the file).
//! - [`Durability::Fsync`] (`synchronous=FULL`): the WAL is also fsync'ed at every commit, so a
//!   committed transaction also survives power loss and OS crashes, at the price of one fsync per
//!   commit. Group commit ([`Batch`]) amortises it over the atoms that finish together.
//! - [`Durability::Batch`] (`synchronous=NORMAL`): the atom transitions of [`Store::apply`] are
//!   held in memory and committed in groups ([`GroupCommit`]: every few milliseconds or every few
//!   hundred transitions, at each flow state change, and before any other write), an atom's
//!   transitions within a group merged into one row write. A group commits whole, in order, so
//!   what a kill leaves is always a state the store passed through: a kill loses at most the open
//!   group (its atoms run again on resume), never a committed one, and never corrupts the file.
//!   Reads of this handle see the open group once [`Store::flush`]ed (the Python class flushes
//!   before every other call), and someone must call [`Store::flush_due`] on a timer (the Python
//!   class does).
//!
//! Several handles, in one or several processes, may share a file: readers never block the writer,
//! writers queue behind each other for up to a busy timeout, and each flow detail carries an owner
//! lease ([`Store::acquire_lease`]) so that two engines never run the same flow at once.
//!
//! # Schema
//!
//! The schema version is kept in `PRAGMA user_version` and upgraded forward on open, inside a
//! transaction. A file written by a newer ferroflow is refused, as is a file that is not an sqlite
//! database or whose header is damaged; both give [`CoreError::Storage`](crate::error::CoreError)
//! naming the path, never a panic. Since v5 an atom row names its flow by the flow detail's
//! integer key (`flowdetails.id`), not its uuid: only the SQL maps one to the other, the rows and
//! this API still speak uuids. Upgrading an older file to v5 rebuilds its flow and atom tables
//! (time in proportion to its rows, in the same one transaction); a read-only handle reads an
//! older file as it is.
mod checkpoint;
mod file;
mod fresh;
mod rowids;
mod schema;
mod sqlite;
mod static_stmt;
#[cfg(test)]
mod tests;

pub use file::recover_wal;
pub use fresh::{FreshRows, TextColumn};
pub use rowids::RowidHints;
pub use schema::LATEST_VERSION;
pub use sqlite::{Durability, GroupCommit, Lease, ResumeSummary, Store};

use std::sync::Arc;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// One logbook (`taskflow.persistence.models.LogBook`), without its flow details.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBookRow {
    pub uuid: String,
    pub name: String,
    /// JSON text.
    pub meta: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds; `None` until first updated.
    pub updated_at: Option<f64>,
}

/// One flow detail (`models.FlowDetail`), without its atom details or its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowDetailRow {
    pub uuid: String,
    /// The owning logbook.
    pub parent_uuid: String,
    pub name: String,
    /// Flow state name (`PENDING`, `RUNNING`...); `None` before the flow was ever run.
    pub state: Option<String>,
    /// JSON text.
    pub meta: String,
    pub created_at: f64,
    pub updated_at: Option<f64>,
}

/// Which kind of atom a detail records; stored as taskflow's type tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomType {
    /// `TASK_DETAIL`.
    Task,
    /// `RETRY_DETAIL`.
    Retry,
}

impl AtomType {
    /// taskflow's type tag for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            AtomType::Task => "TASK_DETAIL",
            AtomType::Retry => "RETRY_DETAIL",
        }
    }

    /// Parses taskflow's type tag; `None` for anything else.
    pub fn from_tag(tag: &str) -> Option<AtomType> {
        match tag {
            "TASK_DETAIL" => Some(AtomType::Task),
            "RETRY_DETAIL" => Some(AtomType::Retry),
            _ => None,
        }
    }
}

impl ToSql for AtomType {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
    }
}

impl FromSql for AtomType {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let tag = value.as_str()?;
        AtomType::from_tag(tag).ok_or_else(|| FromSqlError::Other(format!("unknown atom_type '{tag}'").into()))
    }
}

/// One atom detail (`models.TaskDetail` / `models.RetryDetail`).
#[derive(Debug, Clone, PartialEq)]
pub struct AtomDetailRow {
    pub uuid: String,
    /// The owning flow detail.
    pub parent_uuid: String,
    pub name: String,
    pub atom_type: AtomType,
    /// Atom state name; `None` for a detail never given a state.
    pub state: Option<String>,
    /// `EXECUTE`, `REVERT`, `RETRY` or `IGNORE`.
    pub intention: String,
    /// JSON text (`"null"` when there is no result).
    pub results: String,
    /// JSON text of a failure's dict form.
    pub failure: Option<String>,
    /// JSON text.
    pub revert_results: String,
    /// JSON text of a failure's dict form.
    pub revert_failure: Option<String>,
    /// The atom's version, as a string.
    pub version: Option<String>,
    /// JSON text.
    pub meta: String,
    pub created_at: f64,
    pub updated_at: Option<f64>,
}

/// How a transition changes a nullable column (`failure`, `revert_failure`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Nullable {
    /// Leave the column as it is.
    #[default]
    Keep,
    /// Set the column to NULL.
    Clear,
    /// Set the column to this JSON text.
    Set(String),
}

/// A column's text in a [`Transition`]: the engine's constant texts (state and intention names,
/// the meta of a task done, the result `null`) are borrowed, not allocated, once per atom.
pub type Text = std::borrow::Cow<'static, str>;

/// The hot-path write: a change to some columns of one existing atom detail, found by uuid.
///
/// `None` (or [`Nullable::Keep`]) leaves a column unchanged, so a transition costs one row update
/// whatever the flow's size. Build one with struct update syntax:
/// `Transition { state: Some("SUCCESS".into()), ..Transition::new(uuid) }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transition {
    pub atom_uuid: String,
    pub state: Option<Text>,
    pub intention: Option<Text>,
    pub results: Option<Text>,
    pub failure: Nullable,
    pub revert_results: Option<Text>,
    pub revert_failure: Nullable,
    pub meta: Option<Text>,
    pub updated_at: Option<f64>,
    /// The atom's new resume record (see [`ResumeRecord`]); `None` keeps it.
    pub resume: Option<String>,
}

impl Transition {
    /// A transition of `atom_uuid` that changes nothing yet.
    pub fn new(atom_uuid: impl Into<String>) -> Transition {
        Transition { atom_uuid: atom_uuid.into(), ..Transition::default() }
    }

    /// Folds a later transition of the same atom into this one: what `later` changes wins, what
    /// it keeps stays as this one left it (writing the result equals writing both in order).
    pub fn merge(&mut self, later: Transition) {
        fn take<T>(column: &mut Option<T>, later: Option<T>) {
            if later.is_some() {
                *column = later;
            }
        }
        fn take_nullable(column: &mut Nullable, later: Nullable) {
            if later != Nullable::Keep {
                *column = later;
            }
        }
        take(&mut self.state, later.state);
        take(&mut self.intention, later.intention);
        take(&mut self.results, later.results);
        take_nullable(&mut self.failure, later.failure);
        take(&mut self.revert_results, later.revert_results);
        take_nullable(&mut self.revert_failure, later.revert_failure);
        take(&mut self.meta, later.meta);
        take(&mut self.updated_at, later.updated_at);
        take(&mut self.resume, later.resume);
    }
}

/// A change of one flow detail's state.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStateChange {
    pub flow_uuid: String,
    pub state: String,
    /// `Some` also sets `updated_at`.
    pub updated_at: Option<f64>,
}

/// A change of one flow detail's meta (JSON text), e.g. the record of migrations applied with
/// the atom details they changed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMetaChange {
    pub flow_uuid: String,
    pub meta: String,
    /// `Some` also sets `updated_at`.
    pub updated_at: Option<f64>,
}

/// Separates the fields of a resume record.
pub const RESUME_FIELD_END: char = '\u{1d}';

/// A new resume record (the `resume` column, see `schema.rs`) for an atom detail. The record is
/// text written once when the atom completes, so it is kept short: four fields separated by
/// [`RESUME_FIELD_END`] — the atom's input fingerprint (`crate::resume::input_fingerprint`),
/// its revert reference's kind (`noop`, `class`, `unavailable`) and importable name, and the
/// rest of the reference as JSON (empty when there is none). Only the first three are read here.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeRecord {
    pub atom_uuid: String,
    pub record: String,
}

/// Writes committed together in one transaction (group commit): new or replaced atom details, then
/// atom transitions, then resume records, then flow state changes, then flow meta changes,
/// in that order. If any part fails nothing is applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub atom_details: Vec<AtomDetailRow>,
    /// New details inserted without a full row each (a fresh flow's atoms).
    pub fresh_atoms: Option<FreshAtoms>,
    pub transitions: Vec<Transition>,
    pub resume_records: Vec<ResumeRecord>,
    pub flow_states: Vec<FlowStateChange>,
    pub flow_metas: Vec<FlowMetaChange>,
    /// When set, the batch commits only if this owner still holds the flow's lease at this epoch
    /// (checked inside the same transaction); otherwise nothing is written (`CoreError::LeaseLost`).
    pub fence: Option<Fence>,
    /// The fence's owner gives the flow's lease up after the batch, in its transaction: a run's
    /// last write (its final state) and the release commit together, not one after the other.
    pub release: bool,
    /// With [`Durability::Batch`], the batch's flow states may join the open group of steps like
    /// its transitions (a run starting: committed with the steps after it, within the group's
    /// bounds) instead of committing the group and themselves at once. Ignored otherwise.
    pub grouped: bool,
}

/// Who must hold a flow detail's lease for a write to commit: the owner and the epoch at which it
/// acquired the lease (`Store::acquire_lease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// (Shared texts: a fence is cloned for every batch the engine writes.)
    pub flow_uuid: std::sync::Arc<str>,
    pub owner: std::sync::Arc<str>,
    pub epoch: i64,
}

/// New atom details of one flow: `PENDING`, to `EXECUTE`, no results, failures or meta yet.
/// Given as columns ([`FreshRows`]) so that inserting a 100,000-atom flow allocates no row each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FreshAtoms {
    pub parent_uuid: String,
    pub created_at: f64,
    pub rows: FreshRows,
}

/// A saved atom detail as an engine's prepare restores it (`Store::restore_rows`): what the plan
/// needs, and the payload columns, read in the same pass. Payloads stay JSON text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestoreRow {
    pub resume: ResumeRow,
    pub uuid: String,
    /// JSON text of the result; `None` for JSON `null` (most atoms).
    pub results: Option<String>,
    pub revert_results: Option<String>,
    pub has_failure: bool,
    pub has_revert_failure: bool,
    /// Index into [`RestoreRows::metas`].
    pub meta: u32,
}

/// The rows of [`RestoreRow`] of one flow, in the order they were first saved, with each distinct
/// meta text kept once (most atoms share one of a few).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestoreRows {
    pub rows: Vec<RestoreRow>,
    pub metas: Vec<String>,
}

/// What resuming needs from one saved atom detail (see `crate::resume`), read without loading
/// its payloads: the first fields of its resume record, and the migration marker of its meta.
#[derive(Debug, Clone, PartialEq, Default)]
///
/// Texts that repeat across a flow's atoms (states, versions, input fingerprints, revert
/// references) share one allocation (`Arc<str>`): a million-atom flow holds a few of each.
pub struct ResumeRow {
    pub name: String,
    pub atom_type: Option<AtomType>,
    pub state: Option<Arc<str>>,
    pub intention: Arc<str>,
    pub version: Option<Arc<str>>,
    /// Who provided its inputs when it last completed.
    pub inputs: Option<Arc<str>>,
    /// How it is reverted once its atom is gone (see [`ResumeRecord`]).
    pub revert_kind: Option<Arc<str>>,
    pub revert_name: Option<Arc<str>>,
    /// `meta.ferroflow.migrated.migration`: the migration that retired this detail.
    pub retired_by: Option<Arc<str>>,
}

/// Shares one `Arc<str>` among equal texts read from many rows, up to [`Interner::MAX`] distinct
/// ones (past that, texts are mostly unique and sharing would only cost).
#[derive(Debug, Default)]
pub struct Interner(crate::graph::hash::FastSet<Arc<str>>);

impl Interner {
    pub const MAX: usize = 4096;

    pub fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.0.get(text) {
            return known.clone();
        }
        let made: Arc<str> = Arc::from(text);
        if self.0.len() < Self::MAX {
            self.0.insert(made.clone());
        }
        made
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds an atom detail to insert or replace.
    pub fn upsert_atom(&mut self, row: AtomDetailRow) -> &mut Batch {
        self.atom_details.push(row);
        self
    }

    /// Adds an atom transition.
    pub fn transition(&mut self, transition: Transition) -> &mut Batch {
        self.transitions.push(transition);
        self
    }

    /// Adds a flow state change.
    pub fn flow_state(
        &mut self,
        flow_uuid: impl Into<String>,
        state: impl Into<String>,
        updated_at: Option<f64>,
    ) -> &mut Batch {
        self.flow_states.push(FlowStateChange { flow_uuid: flow_uuid.into(), state: state.into(), updated_at });
        self
    }

    /// Adds a resume record (replacing the atom's).
    pub fn resume_record(&mut self, atom_uuid: impl Into<String>, record: impl Into<String>) -> &mut Batch {
        self.resume_records.push(ResumeRecord { atom_uuid: atom_uuid.into(), record: record.into() });
        self
    }

    /// Adds a flow meta change.
    pub fn flow_meta(
        &mut self,
        flow_uuid: impl Into<String>,
        meta: impl Into<String>,
        updated_at: Option<f64>,
    ) -> &mut Batch {
        self.flow_metas.push(FlowMetaChange { flow_uuid: flow_uuid.into(), meta: meta.into(), updated_at });
        self
    }

    /// Whether the batch holds no write at all.
    pub fn is_empty(&self) -> bool {
        self.atom_details.is_empty()
            && self.fresh_atoms.as_ref().is_none_or(|f| f.rows.is_empty())
            && self.transitions.is_empty()
            && self.resume_records.is_empty()
            && self.flow_states.is_empty()
            && self.flow_metas.is_empty()
            && !self.release
    }
}
