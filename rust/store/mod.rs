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
//! naming the path, never a panic.
mod schema;
mod sqlite;
#[cfg(test)]
mod tests;

pub use schema::LATEST_VERSION;
pub use sqlite::{Durability, Lease, Store};

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

/// The hot-path write: a change to some columns of one existing atom detail, found by uuid.
///
/// `None` (or [`Nullable::Keep`]) leaves a column unchanged, so a transition costs one row update
/// whatever the flow's size. Build one with struct update syntax:
/// `Transition { state: Some("SUCCESS".into()), ..Transition::new(uuid) }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transition {
    pub atom_uuid: String,
    pub state: Option<String>,
    pub intention: Option<String>,
    pub results: Option<String>,
    pub failure: Nullable,
    pub revert_results: Option<String>,
    pub revert_failure: Nullable,
    pub meta: Option<String>,
    pub updated_at: Option<f64>,
}

impl Transition {
    /// A transition of `atom_uuid` that changes nothing yet.
    pub fn new(atom_uuid: impl Into<String>) -> Transition {
        Transition { atom_uuid: atom_uuid.into(), ..Transition::default() }
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

/// Writes committed together in one transaction (group commit): new or replaced atom details, then
/// atom transitions, then flow state changes, in that order. If any part fails nothing is applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub atom_details: Vec<AtomDetailRow>,
    pub transitions: Vec<Transition>,
    pub flow_states: Vec<FlowStateChange>,
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

    /// Whether the batch holds no write at all.
    pub fn is_empty(&self) -> bool {
        self.atom_details.is_empty() && self.transitions.is_empty() && self.flow_states.is_empty()
    }
}
