//! [`Store`]: one rusqlite connection to a ferroflow store file.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction (so a writer waits for the lock up front instead
//! of failing half way), and every statement is prepared once per connection (`prepare_cached`).
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{ffi, params, Connection, OptionalExtension, Row};

use super::checkpoint::Checkpointer;
use super::file::{self, Access};
use super::rowids::RowidHints;
use super::schema::{self, LATEST_VERSION, TABLE_COLUMNS};
use super::static_stmt::{Param, StaticStatement};
use super::{
    AtomDetailRow, AtomType, Batch, Fence, FlowDetailRow, FlowMetaChange, FlowStateChange, FreshAtoms, Interner,
    LogBookRow, Nullable, RestoreRow, RestoreRows, ResumeRecord, ResumeRow, Transition, RESUME_FIELD_END,
};
use crate::error::{CoreError, CoreResult};
use crate::graph::hash::FastMap;
use crate::sched::State;

/// `(atom uuid, inputs, revert kind, revert name)`: see [`Store::resume_summaries`].
pub type ResumeSummary = (String, Option<String>, Option<String>, Option<String>);

/// How long a writer waits for another connection's write lock before failing.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for every statement below, so none is ever evicted and re-parsed.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// Upper bound of each connection's page cache (it grows only as pages are used): enough for the
/// rows of a 100,000-atom flow.
const PAGE_CACHE_KIB: i64 = 32 * 1024;
/// Bytes of room a fresh atom row is inserted with (its `reserve` column) and gives back at its
/// first transition. A run makes a row grow: progress in `meta` (`{}` -> `{"progress":1.0}`, 14
/// bytes) and the resume record (7 bytes plus about 6 per input). Fresh rows are packed into full
/// pages, so without room every page splits once during the run, in the order atoms run: for a
/// graph that order is scattered over the table, and each split rewrites pages (and makes the
/// commit after it scan the page cache). 32 bytes covers a task with up to two inputs; wider rows
/// grow by the rest, rarely enough to split.
pub(super) const ROW_RESERVE: i64 = 32;

/// What a committed transaction survives; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL + `synchronous=NORMAL`: survives the process being killed at any instant.
    #[default]
    Process,
    /// WAL + `synchronous=FULL`: also survives power loss and OS crashes (one fsync per commit).
    Fsync,
    /// WAL + `synchronous=NORMAL`, with [`Store::apply`] batches committed in groups
    /// ([`GroupCommit`]): a kill loses at most the last open group, never a committed one.
    Batch,
}

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Durability::Process | Durability::Batch => "NORMAL",
            Durability::Fsync => "FULL",
        }
    }
}

/// When [`Durability::Batch`] commits the group of [`Store::apply`] transitions it holds: once it
/// holds `max_transitions` of them, once its first is `max_delay` old (checked at each apply and
/// by whoever calls [`Store::flush_due`]), at a flow state change, and before any other write.
/// What a kill can lose is therefore bounded by both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    pub max_transitions: usize,
    pub max_delay: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit { max_transitions: 256, max_delay: Duration::from_millis(10) }
    }
}

/// The open group of a [`Durability::Batch`] store: transitions applied but not yet written, one
/// per atom (a later transition of an atom is merged into its earlier one, so an atom that starts
/// and finishes within a group costs one row write).
#[derive(Debug, Default)]
struct OpenGroup {
    since: Option<Instant>,
    /// Transitions applied since the group opened (before merging): the `max_transitions` bound.
    applied: usize,
    transitions: Vec<Transition>,
    /// Where each atom's transition is in `transitions`, by atom uuid (kept allocated from one
    /// group to the next: groups are alike in size).
    by_atom: FastMap<String, usize>,
    /// The fence of the group's batches, checked when the group is written.
    fence: Option<Fence>,
    /// Flow states that joined the group (`Batch::grouped`: a run starting), one per flow,
    /// written after its transitions.
    flow_states: Vec<FlowStateChange>,
}

impl OpenGroup {
    fn add(&mut self, transition: Transition) {
        self.applied += 1;
        if let Some(&at) = self.by_atom.get(&transition.atom_uuid) {
            self.transitions[at].merge(transition);
        } else {
            self.by_atom.insert(transition.atom_uuid.clone(), self.transitions.len());
            self.transitions.push(transition);
        }
    }

    /// A flow's state joining the group: it replaces the flow's earlier one.
    fn add_flow_state(&mut self, change: FlowStateChange) {
        self.applied += 1;
        merge_flow_state(&mut self.flow_states, change);
    }

    fn is_empty(&self) -> bool {
        self.transitions.is_empty() && self.flow_states.is_empty()
    }

    /// Takes the group's writes, leaving it empty (its allocations kept).
    fn take(&mut self) -> Group {
        self.since = None;
        self.applied = 0;
        self.by_atom.clear();
        let capacity = self.transitions.len();
        Group {
            transitions: std::mem::replace(&mut self.transitions, Vec::with_capacity(capacity)),
            flow_states: std::mem::take(&mut self.flow_states),
            fence: self.fence.take(),
        }
    }
}

/// The writes of an open group, taken to be written.
struct Group {
    transitions: Vec<Transition>,
    flow_states: Vec<FlowStateChange>,
    fence: Option<Fence>,
}

/// Adds `change` to `states`, replacing the state it holds for the same flow (a later state of a
/// flow is the one to write).
fn merge_flow_state(states: &mut Vec<FlowStateChange>, change: FlowStateChange) {
    match states.iter_mut().find(|known| known.flow_uuid == change.flow_uuid) {
        Some(known) => *known = change,
        None => states.push(change),
    }
}

/// A write transaction held open across writes ([`Store::begin_hold`]): each write runs in a
/// savepoint of it (still all or nothing), and the transaction commits on the group bounds.
#[derive(Debug, Default)]
struct Held {
    /// When the open transaction began (`None`: none open; the next write begins one).
    since: Option<Instant>,
    /// Writes made in the open transaction.
    writes: usize,
}

/// The current owner of a flow detail and when its lease ends (unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub until: f64,
    /// The fencing epoch: raised each time the lease changes hands.
    pub epoch: i64,
}

/// A connection to one store file (or to a private in-memory database).
///
/// A `Store` is `Send` but not `Sync`: share it between threads behind a mutex, or open one per
/// thread (handles on one file see each other's commits).
#[derive(Debug)]
pub struct Store {
    /// The transition UPDATEs and fresh rows' INSERTs, prepared once; declared before `conn` so
    /// that they are finalized before it closes (SQLite refuses to close a connection with live
    /// statements).
    statements: RefCell<WriteStatements>,
    conn: Connection,
    /// The path, for error messages.
    label: String,
    /// Checkpoints the WAL of a file store off the writer's path (`None` in memory). Declared after
    /// `conn`, whose commit hook reads its progress: the connection closes first.
    checkpointer: Option<Checkpointer>,
    /// Opened by [`Store::open_read_only`]: nothing is ever written to the file.
    read_only: bool,
    /// Set with [`Durability::Batch`]: [`Store::apply`] commits in groups.
    group: Option<GroupCommit>,
    /// The transitions applied but not written yet ([`Durability::Batch`]).
    open_group: RefCell<OpenGroup>,
    /// Why a commit made by [`Store::flush_due`] (off the caller's path) failed: the next apply
    /// reports it.
    flush_failure: Option<String>,
    /// Set between [`Store::begin_hold`] and [`Store::end_hold`].
    held: RefCell<Option<Held>>,
    /// Rows of the atom details this handle inserted or read (`rowids`): transitions find them
    /// by rowid.
    rowids: RefCell<RowidHints>,
    /// Rows changed by this handle's lease statements (see [`Store::own_data_changes`]).
    lease_changes: Cell<u64>,
    /// The file this handle opened, as (device, inode); `None` in memory or when unknown.
    identity: Option<(u64, u64)>,
    /// Texts the saved rows repeat (states, versions, names of flows built alike), shared across
    /// reads: resuming many small flows does not allocate them again for each.
    texts: RefCell<Interner>,
}

/// An error inside a store operation, before it is given the operation's context.
enum Fail {
    Sql(rusqlite::Error),
    Core(CoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<CoreError> for Fail {
    fn from(e: CoreError) -> Self {
        Fail::Core(e)
    }
}

type Inner<T> = Result<T, Fail>;

/// An open `BEGIN IMMEDIATE` transaction, rolled back on drop unless committed. Unlike
/// `rusqlite::Transaction` it reuses prepared `BEGIN`/`COMMIT` statements, which matters when every
/// atom transition is its own transaction.
struct WriteTx<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn, committed: false })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // SQLite may already have rolled back by itself (I/O error, full disk); then there is nothing to do.
        if !self.committed && !self.conn.is_autocommit() {
            // A failed rollback leaves nothing more to undo here: the connection reports it on next use.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Store {
    /// Opens the store at `path` and upgrades its schema; a file that does not exist is created
    /// as a new store, readable and writable by its owner only (mode 0600, whatever the umask).
    ///
    /// Fails with [`CoreError::Storage`] naming the path, and leaves the file untouched, when the
    /// file is not a ferroflow store (an empty file, another application's database, not a SQLite
    /// database at all), is truncated or corrupt, or was written by a newer ferroflow: it is
    /// checked before anything is written to it.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> CoreResult<Store> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let (conn, identity) = file::open_identified(path, &label, Access::ReadWrite)?;
        let mut store = Store::configure(conn, label, Some(durability))?;
        store.identity = identity;
        if durability == Durability::Batch {
            store.group = Some(GroupCommit::default());
        }
        store.checkpointer = Checkpointer::start(path);
        if let Some(checkpointer) = &store.checkpointer {
            checkpointer.hook_writer(&store.conn); // (in place of SQLite's automatic checkpoint)
        }
        Ok(store)
    }

    /// Opens the existing store at `path` read-only (`SQLITE_OPEN_READONLY`): no journal mode
    /// switch, no schema upgrade, nothing written. A store of an older schema is read as it is
    /// (columns added since read as their defaults); writes fail with [`CoreError::Storage`].
    /// Refuses what [`Store::open`] refuses, and a path where no file exists.
    pub fn open_read_only(path: impl AsRef<Path>) -> CoreResult<Store> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let (conn, identity) = file::open_identified(path, &label, Access::ReadOnly)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_failed(&label, &e))?;
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB).map_err(|e| open_failed(&label, &e))?;
        if schema::read_version(&conn).map_err(|e| open_failed(&label, &e))? < LATEST_VERSION {
            schema::view_as_latest(&conn, &label)?;
        }
        Ok(Store { read_only: true, identity, ..Store::new(conn, label) })
    }

    /// A private, empty in-memory store (for tests; nothing is durable).
    pub fn open_in_memory() -> CoreResult<Store> {
        let label = ":memory:".to_owned();
        let conn = Connection::open_in_memory().map_err(|e| open_failed(&label, &e))?;
        Store::configure(conn, label, None)
    }

    /// Applies the connection settings and upgrades the schema; `durability` is `None` for an
    /// in-memory database (no WAL). A file is a ferroflow store by now (`file::open`).
    fn configure(mut conn: Connection, label: String, durability: Option<Durability>) -> CoreResult<Store> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_failed(&label, &e))?;
        // Reading the header first: a newer file is refused before anything is written to it.
        let version = schema::read_version(&conn).map_err(|e| open_failed(&label, &e))?;
        schema::check_not_newer(version, &label)?;
        if let Some(durability) = durability {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(|e| open_failed(&label, &e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(CoreError::Storage(format!(
                    "cannot open store '{label}': the file system refused WAL journal mode (got '{mode}')"
                )));
            }
            conn.pragma_update(None, "synchronous", durability.synchronous()).map_err(|e| open_failed(&label, &e))?;
        }
        conn.pragma_update(None, "foreign_keys", true).map_err(|e| open_failed(&label, &e))?;
        // An engine updates rows in the order its flow runs, which on a graph is all over the file:
        // SQLite's default 2 MiB page cache would re-read most pages from the OS at every commit.
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB).map_err(|e| open_failed(&label, &e))?;
        schema::migrate(&mut conn, &label)?;
        Ok(Store::new(conn, label))
    }

    fn new(conn: Connection, label: String) -> Store {
        Store {
            statements: RefCell::default(),
            conn,
            label,
            checkpointer: None,
            read_only: false,
            group: None,
            open_group: RefCell::default(),
            rowids: RefCell::default(),
            flush_failure: None,
            held: RefCell::new(None),
            lease_changes: Cell::new(0),
            identity: None,
            texts: RefCell::default(),
        }
    }

    /// The path this store was opened on (`:memory:` for an in-memory store).
    pub fn path(&self) -> &str {
        &self.label
    }

    /// Closes the connection (committing an open group first), reporting any error sqlite gives.
    pub fn close(self) -> CoreResult<()> {
        self.end_hold()?;
        let Store { statements, conn, label, checkpointer, .. } = self;
        drop(statements); // finalized before the connection closes
        if checkpointer.is_some() {
            Checkpointer::unhook_writer(&conn); // (the hook reads the checkpointer's progress)
        }
        drop(checkpointer); // stopped first: nothing else uses the file through this handle
        conn.close().map_err(|(_, e)| CoreError::Storage(format!("store '{label}': closing failed: {e}")))
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> CoreResult<i64> {
        self.finish("reading the schema version", schema::read_version(&self.conn).map_err(Fail::from))
    }

    /// Brings the schema up to date (already done by [`Store::open`]; cheap when nothing is to do).
    /// A read-only store is never upgraded: [`CoreError::Storage`] unless it is already up to date.
    pub fn upgrade(&mut self) -> CoreResult<i64> {
        if self.read_only {
            let version = self.schema_version()?;
            if version < LATEST_VERSION {
                return Err(CoreError::Storage(format!(
                    "store '{}' has schema v{version} and was opened read-only, so it is not upgraded to \
                     v{LATEST_VERSION}; open it read-write (for instance with `ferroflow resume`) to upgrade it",
                    self.label
                )));
            }
            return Ok(version);
        }
        self.flush()?;
        schema::migrate(&mut self.conn, &self.label)
    }

    /// Whether the store was opened by [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A cheap check that the file holds the schema this code expects: the version and every table
    /// and column the store uses. For a full page-level check see [`Store::integrity_check`].
    pub fn validate(&self) -> CoreResult<()> {
        let version = self.schema_version()?;
        if version != LATEST_VERSION {
            return Err(CoreError::Storage(format!(
                "store '{}' has schema v{version}, expected v{LATEST_VERSION}; call upgrade()",
                self.label
            )));
        }
        for (table, columns) in TABLE_COLUMNS {
            let probe = self.conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0"));
            if let Err(e) = probe {
                return Err(CoreError::Storage(format!("store '{}': table '{table}' is unusable: {e}", self.label)));
            }
        }
        Ok(())
    }

    /// Runs `PRAGMA integrity_check` (reads the whole file) and returns its report: `"ok"` when the
    /// file is sound, otherwise one problem per line.
    pub fn integrity_check(&self) -> CoreResult<String> {
        let report = (|| -> Inner<String> {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
            let lines = stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines.join("\n"))
        })();
        self.finish("checking integrity", report)
    }

    /// The journal mode in effect (`wal` for a file store, `memory` in memory).
    pub fn journal_mode(&self) -> CoreResult<String> {
        let mode = self.conn.pragma_query_value(None, "journal_mode", |row| row.get(0));
        self.finish("reading the journal mode", mode.map_err(Fail::from))
    }

    /// Deletes every logbook, flow detail and atom detail.
    pub fn clear_all(&mut self) -> CoreResult<()> {
        self.write("clearing the store", |conn| {
            // Children first: each DELETE is then a plain table truncation, with no cascade to walk.
            conn.execute_batch("DELETE FROM atomdetails; DELETE FROM flowdetails; DELETE FROM logbooks;")?;
            Ok(())
        })
    }

    // ---- logbooks -----------------------------------------------------------------------------

    /// Inserts the logbook, or replaces every field of the existing one except `created_at`
    /// (its flow details are kept).
    pub fn save_logbook(&mut self, book: &LogBookRow) -> CoreResult<()> {
        self.write("saving a logbook", |conn| {
            conn.prepare_cached(
                "INSERT INTO logbooks (uuid, name, meta, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(uuid) DO UPDATE SET
                     name = excluded.name, meta = excluded.meta, updated_at = excluded.updated_at",
            )?
            .execute(params![book.uuid, book.name, book.meta, book.created_at, book.updated_at])?;
            Ok(())
        })
    }

    /// The logbook `uuid` ([`CoreError::NotFound`] if there is none).
    pub fn get_logbook(&self, uuid: &str) -> CoreResult<LogBookRow> {
        let found = (|| -> Inner<Option<LogBookRow>> {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT uuid, name, meta, created_at, updated_at FROM logbooks WHERE uuid = ?1")?;
            Ok(stmt.query_row([uuid], logbook_from_row).optional()?)
        })();
        self.finish("loading a logbook", found)?.ok_or_else(|| not_found("logbook", uuid))
    }

    /// Every logbook, oldest first.
    pub fn list_logbooks(&self) -> CoreResult<Vec<LogBookRow>> {
        let books = (|| -> Inner<Vec<LogBookRow>> {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT uuid, name, meta, created_at, updated_at FROM logbooks ORDER BY rowid")?;
            let rows = stmt.query_map([], logbook_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })();
        self.finish("listing logbooks", books)
    }

    /// Deletes the logbook with its flow and atom details ([`CoreError::NotFound`] if there is none).
    pub fn destroy_logbook(&mut self, uuid: &str) -> CoreResult<()> {
        self.write("destroying a logbook", |conn| {
            let deleted = conn.prepare_cached("DELETE FROM logbooks WHERE uuid = ?1")?.execute([uuid])?;
            if deleted == 0 {
                return Err(not_found("logbook", uuid).into());
            }
            Ok(())
        })
    }

    /// Deletes a flow detail with its atom details, and its logbook when no other flow is left in
    /// it, in one transaction, unless an owner holds an unexpired lease on it (`lease_until > now`):
    /// then nothing is deleted and that owner is returned as `Ok(Err(owner))`. `owner_gone` names an
    /// owner known to be dead (its process no longer exists), whose lease does not protect the flow.
    /// [`CoreError::NotFound`] if the flow does not exist.
    pub fn delete_flow_detail(
        &mut self,
        uuid: &str,
        now: f64,
        owner_gone: Option<&str>,
    ) -> CoreResult<Result<(), String>> {
        self.write("deleting a flow detail", |conn| {
            let row: Option<(String, Option<String>, Option<f64>)> = conn
                .prepare_cached("SELECT parent_uuid, owner, lease_until FROM flowdetails WHERE uuid = ?1")?
                .query_row([uuid], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            let Some((book, owner, until)) = row else {
                return Err(not_found("flow detail", uuid).into());
            };
            if let Some(owner) = owner {
                if until.is_some_and(|until| until > now) && owner_gone != Some(owner.as_str()) {
                    return Ok(Err(owner));
                }
            }
            conn.prepare_cached("DELETE FROM flowdetails WHERE uuid = ?1")?.execute([uuid])?;
            conn.prepare_cached(
                "DELETE FROM logbooks WHERE uuid = ?1 AND NOT EXISTS (SELECT 1 FROM flowdetails WHERE parent_uuid = ?1)",
            )?
            .execute([&book])?;
            Ok(Ok(()))
        })
    }

    // ---- flow details -------------------------------------------------------------------------

    /// Inserts the flow detail into its logbook, or replaces every field of the existing one except
    /// `created_at` and the lease. [`CoreError::NotFound`] if the logbook does not exist.
    pub fn save_flow_detail(&mut self, flow: &FlowDetailRow) -> CoreResult<()> {
        self.write("saving a flow detail", |conn| {
            let saved = conn
                .prepare_cached(
                    "INSERT INTO flowdetails (uuid, parent_uuid, name, state, meta, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(uuid) DO UPDATE SET
                         parent_uuid = excluded.parent_uuid, name = excluded.name, state = excluded.state,
                         meta = excluded.meta, updated_at = excluded.updated_at",
                )?
                .execute(params![
                    flow.uuid,
                    flow.parent_uuid,
                    flow.name,
                    flow.state,
                    flow.meta,
                    flow.created_at,
                    flow.updated_at
                ]);
            missing_parent(saved, "logbook", &flow.parent_uuid, "flow detail", &flow.uuid)?;
            Ok(())
        })
    }

    /// Replaces `name`, `state`, `meta` and `updated_at` of an existing flow detail
    /// ([`CoreError::NotFound`] if there is none).
    pub fn update_flow_detail(&mut self, flow: &FlowDetailRow) -> CoreResult<()> {
        self.write("updating a flow detail", |conn| {
            let updated = conn
                .prepare_cached(
                    "UPDATE flowdetails SET name = ?2, state = ?3, meta = ?4, updated_at = ?5 WHERE uuid = ?1",
                )?
                .execute(params![flow.uuid, flow.name, flow.state, flow.meta, flow.updated_at])?;
            if updated == 0 {
                return Err(not_found("flow detail", &flow.uuid).into());
            }
            Ok(())
        })
    }

    /// Sets one flow detail's state (and `updated_at` when given) in its own transaction; use a
    /// [`Batch`] to commit it together with atom transitions.
    pub fn update_flow_state(&mut self, flow_uuid: &str, state: &str, updated_at: Option<f64>) -> CoreResult<()> {
        let change = FlowStateChange { flow_uuid: flow_uuid.to_owned(), state: state.to_owned(), updated_at };
        self.write("updating a flow state", |conn| {
            apply_parts(conn, &Parts { flow_states: std::slice::from_ref(&change), ..Parts::default() })
        })
    }

    /// The flow detail `uuid` ([`CoreError::NotFound`] if there is none).
    pub fn get_flow_detail(&self, uuid: &str) -> CoreResult<FlowDetailRow> {
        let found = (|| -> Inner<Option<FlowDetailRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT uuid, parent_uuid, name, state, meta, created_at, updated_at FROM flowdetails WHERE uuid = ?1",
            )?;
            Ok(stmt.query_row([uuid], flow_from_row).optional()?)
        })();
        self.finish("loading a flow detail", found)?.ok_or_else(|| not_found("flow detail", uuid))
    }

    /// The flow details of a logbook, oldest first (empty when the logbook does not exist, as in taskflow).
    pub fn flows_for_book(&self, book_uuid: &str) -> CoreResult<Vec<FlowDetailRow>> {
        let flows = (|| -> Inner<Vec<FlowDetailRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT uuid, parent_uuid, name, state, meta, created_at, updated_at FROM flowdetails
                 WHERE parent_uuid = ?1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([book_uuid], flow_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })();
        self.finish("loading the flow details of a logbook", flows)
    }

    // ---- atom details -------------------------------------------------------------------------

    /// The atom detail `uuid` ([`CoreError::NotFound`] if there is none).
    pub fn get_atom_detail(&self, uuid: &str) -> CoreResult<AtomDetailRow> {
        let found = (|| -> Inner<Option<AtomDetailRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT a.uuid, f.uuid, a.name, a.atom_type, a.state, a.intention, a.results, a.failure,
                        a.revert_results, a.revert_failure, a.version, a.meta, a.created_at, a.updated_at
                 FROM atomdetails AS a JOIN flowdetails AS f ON f.id = a.flow_id WHERE a.uuid = ?1",
            )?;
            Ok(stmt.query_row([uuid], atom_from_row).optional()?)
        })();
        self.finish("loading an atom detail", found)?.ok_or_else(|| not_found("atom detail", uuid))
    }

    /// Every atom detail of a flow in the order they were first saved, in one query (empty when the
    /// flow does not exist, as in taskflow).
    pub fn atoms_for_flow(&self, flow_uuid: &str) -> CoreResult<Vec<AtomDetailRow>> {
        let atoms = (|| -> Inner<Vec<AtomDetailRow>> {
            // The flow index holds (flow_id, rowid), so this ORDER BY needs no sort; the flow's
            // key is looked up once.
            let mut stmt = self.conn.prepare_cached(
                "SELECT uuid, ?1, name, atom_type, state, intention, results, failure, revert_results,
                        revert_failure, version, meta, created_at, updated_at
                 FROM atomdetails WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = ?1) ORDER BY rowid",
            )?;
            let rows = stmt.query_map([flow_uuid], atom_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })();
        self.finish("loading the atom details of a flow", atoms)
    }

    /// What resuming needs from every atom detail of a flow (`crate::resume`), in the order they
    /// were first saved, in one query that never loads results or failures.
    pub fn resume_rows(&self, flow_uuid: &str) -> CoreResult<Vec<ResumeRow>> {
        let rows = (|| -> Inner<Vec<ResumeRow>> {
            // The migration marker is rare: meta is parsed only when it may hold one.
            let mut stmt = self.conn.prepare_cached(
                "SELECT name, atom_type, state, intention, version, resume,
                        CASE WHEN instr(meta, 'migrated') AND json_valid(meta)
                             THEN json_extract(meta, '$.ferroflow.migrated.migration') END
                 FROM atomdetails WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = ?1) ORDER BY rowid",
            )?;
            let mut texts = self.texts.borrow_mut();
            let mut rows = Vec::new();
            let mut query = stmt.query([flow_uuid])?;
            while let Some(row) = query.next()? {
                rows.push(resume_row(row, &mut texts)?);
            }
            Ok(rows)
        })();
        self.finish("reading the atom details of a flow for resuming", rows)
    }

    /// Every atom detail of a flow as an engine's prepare restores it ([`RestoreRows`]): one pass
    /// that reads what [`Store::resume_rows`] reads and the payload columns, with JSON `null`
    /// payloads and repeated metas kept as nothing and once.
    pub fn restore_rows(&self, flow_uuid: &str) -> CoreResult<RestoreRows> {
        let mut rows = Vec::new();
        let metas = self.restore_rows_each(flow_uuid, |row| rows.push(row))?;
        Ok(RestoreRows { rows, metas })
    }

    /// [`Store::restore_rows`] handing each row to `on_row` as it is read (no list of them all:
    /// a million-atom flow's rows are never held twice); returns the distinct metas.
    pub fn restore_rows_each(&self, flow_uuid: &str, mut on_row: impl FnMut(RestoreRow)) -> CoreResult<Vec<String>> {
        let metas = (|| -> Inner<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT name, atom_type, state, intention, version, resume,
                        CASE WHEN instr(meta, 'migrated') AND json_valid(meta)
                             THEN json_extract(meta, '$.ferroflow.migrated.migration') END,
                        uuid, results, failure IS NOT NULL, revert_results, revert_failure IS NOT NULL, meta, rowid
                 FROM atomdetails WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = ?1) ORDER BY rowid",
            )?;
            let mut metas = Vec::new();
            let mut meta_index: FastMap<String, u32> = FastMap::default();
            let mut texts = self.texts.borrow_mut();
            let mut rowids = self.rowids.borrow_mut(); // (the engine that restores updates them next)
            let mut query = stmt.query([flow_uuid])?;
            while let Some(row) = query.next()? {
                let restored = restore_row(row, &mut texts, &mut meta_index, &mut metas)?;
                // (a finished atom's row is rarely written again: no hint for it)
                if restored.resume.state.as_deref() != Some(State::Success.name()) {
                    rowids.learn(&restored.uuid, row.get(13)?);
                }
                on_row(restored);
            }
            Ok(metas)
        })();
        self.finish("reading the atom details of a flow for resuming", metas)
    }

    /// The file this handle opened, as (device, inode): another handle on the same path reads the
    /// same file only if its identity is this one (the path may name a replaced file by then).
    /// `None` in memory, or when it cannot be known.
    pub fn file_identity(&self) -> Option<(u64, u64)> {
        self.identity
    }

    /// `PRAGMA data_version`: it changes whenever another connection commits to the file, never
    /// for this handle's own commits (what a read made ahead on another connection is checked
    /// with: see `ferroflow_core::py::read_ahead`).
    pub fn data_version(&self) -> CoreResult<i64> {
        let version = self.conn.query_row("PRAGMA data_version", [], |row| row.get(0));
        self.finish("reading the data version", version.map_err(Fail::from))
    }

    /// Rows this handle has inserted, changed or deleted since it was opened, but for its lease
    /// statements (taking, renewing or giving up a lease writes a flow's own row, no data): what a
    /// read made ahead on another connection is checked with, with [`Store::data_version`].
    pub fn own_data_changes(&self) -> u64 {
        self.conn.total_changes() - self.lease_changes.get()
    }

    /// The rowid hints this handle learnt while reading (see [`RowidHints`]), handed over to
    /// another handle on the same file ([`Store::adopt_rowid_hints`]).
    pub fn take_rowid_hints(&self) -> RowidHints {
        std::mem::take(&mut *self.rowids.borrow_mut())
    }

    /// Adds hints another handle on the same file learnt (a stale one only costs a lookup).
    pub fn adopt_rowid_hints(&self, hints: RowidHints) {
        self.rowids.borrow_mut().merge(hints);
    }

    /// The resume records of a flow's atom details that have one, as `(atom uuid, inputs,
    /// revert kind, revert name)` (see [`ResumeRow`]), in the order the details were first saved.
    pub fn resume_summaries(&self, flow_uuid: &str) -> CoreResult<Vec<ResumeSummary>> {
        let rows = (|| -> Inner<Vec<ResumeSummary>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT uuid, resume FROM atomdetails
                 WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = ?1) AND resume IS NOT NULL ORDER BY rowid",
            )?;
            let rows = stmt
                .query_map([flow_uuid], |row| {
                    let record = ResumeRecordFields::parse(row.get_ref(1)?.as_str()?);
                    Ok((row.get(0)?, record.inputs, record.revert_kind, record.revert_name))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })();
        self.finish("reading the resume records of a flow", rows)
    }

    /// The whole resume record of an atom detail (see [`ResumeRecord`]); `None` when it has none.
    /// [`CoreError::NotFound`] if the detail does not exist.
    pub fn resume_record(&self, atom_uuid: &str) -> CoreResult<Option<String>> {
        let found = (|| -> Inner<Option<Option<String>>> {
            let mut stmt = self.conn.prepare_cached("SELECT resume FROM atomdetails WHERE uuid = ?1")?;
            Ok(stmt.query_row([atom_uuid], |row| row.get(0)).optional()?)
        })();
        self.finish("reading a resume record", found)?.ok_or_else(|| not_found("atom detail", atom_uuid))
    }

    /// Inserts or replaces (every field but `created_at`) these atom details in one transaction.
    /// [`CoreError::NotFound`] naming the flow if a parent flow detail does not exist; then none is saved.
    pub fn upsert_atom_details(&mut self, atoms: &[AtomDetailRow]) -> CoreResult<()> {
        if atoms.is_empty() {
            return Ok(());
        }
        self.write("saving atom details", |conn| apply_parts(conn, &Parts { atoms, ..Parts::default() }))
    }

    /// Applies atom transitions in one transaction. [`CoreError::NotFound`] if an atom detail does
    /// not exist; then none is applied.
    pub fn apply_transitions(&mut self, transitions: &[Transition]) -> CoreResult<()> {
        if transitions.is_empty() {
            return Ok(());
        }
        self.write("applying atom transitions", |conn| {
            apply_parts(
                conn,
                &Parts {
                    transitions,
                    rowids: Some(&self.rowids),
                    statements: Some(&self.statements),
                    ..Parts::default()
                },
            )
        })
    }

    /// Commits a [`Batch`] in one transaction: all of it, or (on any error) none of it.
    pub fn apply(&mut self, batch: &Batch) -> CoreResult<()> {
        self.apply_either(Cow::Borrowed(batch))
    }

    /// [`Store::apply`] taking the batch: with [`Durability::Batch`], its transitions move into
    /// the open group rather than being copied (the engine's hot path).
    pub fn apply_owned(&mut self, batch: Batch) -> CoreResult<()> {
        self.apply_either(Cow::Owned(batch))
    }

    /// [`Store::apply`], copying a borrowed batch only for the open group, which keeps it.
    fn apply_either(&mut self, batch: Cow<'_, Batch>) -> CoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.group {
            None => self.write_batch("applying a batch", &batch),
            Some(group) => self.apply_in_group(batch.into_owned(), group),
        }
    }

    /// [`Durability::Batch`]: a batch of atom transitions only joins the open group (written when
    /// the group commits: a missing atom or a lost lease is reported then, and the whole group is
    /// refused), as does a flow state written `grouped` (a run starting: committed with the steps
    /// after it); any other batch commits the group, then itself.
    fn apply_in_group(&mut self, batch: Batch, group: GroupCommit) -> CoreResult<()> {
        if let Some(failure) = self.flush_failure.take() {
            return Err(CoreError::Storage(failure));
        }
        let joins = batch.atom_details.is_empty()
            && batch.fresh_atoms.is_none()
            && batch.resume_records.is_empty()
            && (batch.flow_states.is_empty() || batch.grouped)
            && batch.flow_metas.is_empty()
            && !batch.release;
        if !joins {
            return self.write_after_group(batch);
        }
        if self.open_group.borrow().fence != batch.fence {
            self.flush()?; // a group is written under one fence
        }
        let due = {
            let mut open = self.open_group.borrow_mut();
            open.fence = batch.fence;
            let since = *open.since.get_or_insert_with(Instant::now);
            for transition in batch.transitions {
                open.add(transition);
            }
            for change in batch.flow_states {
                open.add_flow_state(change);
            }
            open.applied >= group.max_transitions || since.elapsed() >= group.max_delay
        };
        if due {
            self.flush()?;
        }
        Ok(())
    }

    /// [`Store::apply_in_group`] of a batch that does not join the group (a flow's state, most
    /// often): the open group, then the batch. When the batch replaces no whole row and carries
    /// the group's fence, both are written in one transaction, the group's writes first and a
    /// flow's state from the batch replacing the group's (a flow ending writes its last steps
    /// and its state in one commit, not two). Should that
    /// write fail, the group and then the batch are written apart, so that the outcome of each is
    /// what it would have been without joining.
    fn write_after_group(&mut self, mut batch: Batch) -> CoreResult<()> {
        let joins = batch.atom_details.is_empty() && batch.fresh_atoms.is_none() && {
            let open = self.open_group.borrow();
            !open.is_empty() && open.fence == batch.fence
        };
        if !joins {
            return self.write_batch("applying a batch", &batch);
        }
        let mut group = self.open_group.borrow_mut().take();
        let grouped = group.transitions.len();
        let own_states = std::mem::take(&mut batch.flow_states);
        group.transitions.append(&mut batch.transitions);
        batch.transitions = std::mem::take(&mut group.transitions);
        batch.flow_states.clone_from(&group.flow_states);
        for change in own_states.iter().cloned() {
            merge_flow_state(&mut batch.flow_states, change);
        }
        let joined = self.write_batch("applying a batch with the open group", &batch);
        if joined.is_ok() {
            return joined;
        }
        // (nothing of it was written: each part again, apart)
        let own_transitions = batch.transitions.split_off(grouped);
        group.transitions = std::mem::replace(&mut batch.transitions, own_transitions);
        batch.flow_states = own_states;
        self.write_group(group)?;
        self.write_batch("applying a batch", &batch)
    }

    /// Writes `batch` in one transaction (see [`Store::write`] and `apply_batch`).
    fn write_batch(&self, doing: &str, batch: &Batch) -> CoreResult<()> {
        self.write(doing, |conn| apply_batch(conn, batch, &self.rowids, &self.statements, &self.lease_changes))
    }

    /// Sets when a [`Durability::Batch`] store commits its groups.
    pub fn set_group_commit(&mut self, group: GroupCommit) {
        if self.group.is_some() {
            self.group = Some(group);
        }
    }

    /// The group commit settings (`None` unless the store was opened with [`Durability::Batch`]).
    pub fn group_commit(&self) -> Option<GroupCommit> {
        self.group
    }

    /// Writes and commits the open group of applied transitions, if any ([`Durability::Batch`]; a
    /// no-op otherwise). On failure the group is dropped, as a kill would lose it.
    pub fn flush(&self) -> CoreResult<()> {
        if self.open_group.borrow().is_empty() {
            return Ok(());
        }
        let group = self.open_group.borrow_mut().take();
        self.write_group(group)
    }

    /// Writes a group in one transaction, under its fence.
    fn write_group(&self, group: Group) -> CoreResult<()> {
        let Group { transitions, flow_states, fence } = group;
        let batch = Batch { transitions, flow_states, fence, ..Batch::default() };
        self.write_batch("committing a group of transitions", &batch)
    }

    /// For a timer off the writer's path: commits the open group if it is older than its
    /// `max_delay`, and returns how long until the open group is due (`None`: no group open). A
    /// failed commit is reported by the next apply.
    pub fn flush_due(&mut self) -> Option<Duration> {
        let group = self.group?;
        let held_since = self.held.borrow().as_ref().and_then(|held| held.since);
        let since = match (self.open_group.borrow().since, held_since) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        if let Some(left) = group.max_delay.checked_sub(since.elapsed()).filter(|left| !left.is_zero()) {
            return Some(left);
        }
        if let Err(e) = self.flush().and_then(|()| self.commit_held()) {
            self.flush_failure = Some(e.to_string());
        }
        None
    }

    // ---- held transactions ---------------------------------------------------------------------

    /// [`Durability::Batch`]: from now on, every write of this handle (flow states, leases, new
    /// details, the groups of transitions) joins one open transaction instead of committing
    /// alone, which commits once it is `max_delay` old or holds `max_transitions` writes (checked
    /// at each write and by [`Store::flush_due`]), and at [`Store::end_hold`]. Each write is
    /// still all or nothing (a savepoint), and the file only ever holds what a committed prefix
    /// of the writes made: a kill loses at most the open transaction, as it loses an open group.
    /// For work made of many small writes, such as resuming many small flows. Other writers
    /// wait for the open transaction (at most `max_delay` plus one write). Returns false, and
    /// holds nothing, on a store of another durability.
    pub fn begin_hold(&mut self) -> CoreResult<bool> {
        if self.group.is_none() {
            return Ok(false);
        }
        if self.held.borrow().is_none() {
            self.flush()?;
            *self.held.borrow_mut() = Some(Held::default());
        }
        Ok(true)
    }

    /// Commits what [`Store::begin_hold`] held and goes back to one transaction per write.
    pub fn end_hold(&self) -> CoreResult<()> {
        let flushed = self.flush();
        let committed = self.commit_held();
        *self.held.borrow_mut() = None;
        flushed.and(committed)
    }

    /// Whether this handle has written something not committed yet: an open group, or an open
    /// held transaction (another connection cannot see it yet).
    pub fn has_uncommitted_writes(&self) -> bool {
        !self.open_group.borrow().transitions.is_empty()
            || self.held.borrow().as_ref().is_some_and(|held| held.since.is_some())
    }

    /// Whether writes are held ([`Store::begin_hold`]).
    pub fn holding(&self) -> bool {
        self.held.borrow().is_some()
    }

    /// Commits the held transaction, if one is open.
    fn commit_held(&self) -> CoreResult<()> {
        let open = self.held.borrow_mut().as_mut().and_then(|held| {
            held.writes = 0;
            held.since.take()
        });
        if open.is_none() || self.conn.is_autocommit() {
            return Ok(());
        }
        let committed = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).map(drop);
        if committed.is_err() && !self.conn.is_autocommit() {
            // (a failed rollback leaves nothing more to undo: the connection reports it on next use)
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.finish("committing held writes", committed.map_err(Fail::from))
    }

    /// [`Store::write`] while held: `body` in a savepoint of the held transaction (begun first if
    /// none is open), which then commits if it is due.
    fn write_held<T>(&self, doing: &str, body: impl FnOnce(&Connection) -> Inner<T>) -> CoreResult<T> {
        let result = (|| -> Inner<T> {
            let began = self.held.borrow().as_ref().is_some_and(|held| held.since.is_some());
            if !began {
                self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                if let Some(held) = self.held.borrow_mut().as_mut() {
                    held.since = Some(Instant::now());
                }
            }
            self.conn.prepare_cached("SAVEPOINT ferroflow_write")?.execute([])?;
            match body(&self.conn) {
                Ok(value) => {
                    self.conn.prepare_cached("RELEASE ferroflow_write")?.execute([])?;
                    Ok(value)
                }
                Err(fail) => {
                    if self.conn.is_autocommit() {
                        // SQLite rolled the whole transaction back (I/O error, full disk): the
                        // writes held since the last commit are gone, as a kill would lose them.
                        if let Some(held) = self.held.borrow_mut().as_mut() {
                            held.since = None;
                            held.writes = 0;
                        }
                        return Err(CoreError::Storage(format!(
                            "store '{}': {doing} failed and the writes held since the last commit were rolled back: {}",
                            self.label,
                            match fail {
                                Fail::Sql(e) => e.to_string(),
                                Fail::Core(e) => e.to_string(),
                            }
                        ))
                        .into());
                    }
                    self.conn.execute_batch("ROLLBACK TO ferroflow_write; RELEASE ferroflow_write")?;
                    Err(fail)
                }
            }
        })();
        let value = self.finish(doing, result)?;
        let due = self.held.borrow_mut().as_mut().is_some_and(|held| {
            held.writes += 1;
            let group = self.group.unwrap_or_default();
            held.writes >= group.max_transitions || held.since.is_some_and(|since| since.elapsed() >= group.max_delay)
        });
        if due {
            self.commit_held()?;
        }
        Ok(value)
    }

    // ---- ownership ----------------------------------------------------------------------------

    /// Takes the lease of a flow detail for `owner` until `now + lease_seconds`, atomically: if the
    /// flow is unowned, its lease expired (`lease_until <= now`) or `owner` already holds it.
    /// Returns `Ok(Ok(epoch))`: the fencing epoch, raised whenever the lease changes hands, which
    /// every write of the new owner then carries ([`Fence`]). Otherwise returns
    /// `Ok(Err(current_owner))`. [`CoreError::NotFound`] if the flow does not exist.
    pub fn acquire_lease(
        &mut self,
        flow_uuid: &str,
        owner: &str,
        lease_seconds: f64,
        now: f64,
    ) -> CoreResult<Result<i64, String>> {
        Ok(self.acquire_lease_reading(flow_uuid, owner, lease_seconds, now)?.map(|(epoch, _)| epoch))
    }

    /// [`Store::acquire_lease`], also returning the flow detail's row as the lease was taken:
    /// what an engine's prepare reads next, read by the same statement.
    pub fn acquire_lease_reading(
        &mut self,
        flow_uuid: &str,
        owner: &str,
        lease_seconds: f64,
        now: f64,
    ) -> CoreResult<Result<(i64, FlowDetailRow), String>> {
        let until = lease_end(lease_seconds, now)?;
        self.lease_write("acquiring a flow lease", |conn| {
            // (an UPDATE then a SELECT of the row in the same transaction, not `RETURNING`:
            // SQLite buffers returned rows in a temporary table, opened and closed per call,
            // which cost more than the second statement)
            let taken = conn
                .prepare_cached(
                    "UPDATE flowdetails SET lease_epoch = lease_epoch + (owner IS NOT ?2), owner = ?2, lease_until = ?3
                     WHERE uuid = ?1 AND (owner IS NULL OR owner = ?2 OR lease_until IS NULL OR lease_until <= ?4)",
                )?
                .execute(params![flow_uuid, owner, until, now])?;
            if taken == 1 {
                let row = conn
                    .prepare_cached(
                        "SELECT uuid, parent_uuid, name, state, meta, created_at, updated_at, lease_epoch
                         FROM flowdetails WHERE uuid = ?1",
                    )?
                    .query_row([flow_uuid], |row| Ok((row.get(7)?, flow_from_row(row)?)))?;
                return Ok(Ok(row));
            }
            match current_lease(conn, flow_uuid)? {
                Some(lease) => Ok(Err(lease.owner)),
                None => Err(not_found("flow detail", flow_uuid).into()),
            }
        })
    }

    /// Extends the lease `owner` took at `epoch` to `now + lease_seconds`. [`CoreError::LeaseLost`]
    /// if it no longer holds it (it expired and another owner took it, or it was released).
    pub fn renew_lease(
        &mut self,
        flow_uuid: &str,
        owner: &str,
        epoch: i64,
        lease_seconds: f64,
        now: f64,
    ) -> CoreResult<()> {
        let until = lease_end(lease_seconds, now)?;
        self.lease_write("renewing a flow lease", |conn| {
            let renewed = conn
                .prepare_cached(
                    "UPDATE flowdetails SET lease_until = ?4 WHERE uuid = ?1 AND owner = ?2 AND lease_epoch = ?3",
                )?
                .execute(params![flow_uuid, owner, epoch, until])?;
            if renewed == 1 {
                return Ok(());
            }
            Err(lost(conn, flow_uuid, owner, epoch, "renew its lease")?.into())
        })
    }

    /// Gives up `owner`'s lease. Returns whether `owner` held it; another owner's lease is never
    /// touched. [`CoreError::NotFound`] if the flow does not exist.
    pub fn release_lease(&mut self, flow_uuid: &str, owner: &str) -> CoreResult<bool> {
        self.lease_write("releasing a flow lease", |conn| release_held(conn, flow_uuid, owner))
    }

    /// The current lease of a flow detail, expired or not (`None` when unowned).
    pub fn lease(&self, flow_uuid: &str) -> CoreResult<Option<Lease>> {
        let lease = (|| -> Inner<Option<Lease>> {
            if !flow_exists(&self.conn, flow_uuid)? {
                return Err(not_found("flow detail", flow_uuid).into());
            }
            current_lease(&self.conn, flow_uuid)
        })();
        self.finish("reading a flow lease", lease)
    }

    // ---- plumbing -----------------------------------------------------------------------------

    /// Runs `body` in one immediate transaction, committing only if it succeeds.
    fn write<T>(&self, doing: &str, body: impl FnOnce(&Connection) -> Inner<T>) -> CoreResult<T> {
        // Writes stay in order: an open group commits before anything else is written.
        self.flush()?;
        if self.held.borrow().is_some() {
            return self.write_held(doing, body);
        }
        let result = (|| -> Inner<T> {
            let tx = WriteTx::begin(&self.conn)?;
            let value = body(&self.conn)?;
            tx.commit()?;
            Ok(value)
        })();
        self.finish(doing, result)
    }

    /// [`Store::write`] of a lease statement: the rows it changes are not counted in
    /// [`Store::own_data_changes`].
    fn lease_write<T>(&self, doing: &str, body: impl FnOnce(&Connection) -> Inner<T>) -> CoreResult<T> {
        self.write(doing, |conn| {
            let before = conn.total_changes();
            let result = body(conn);
            self.lease_changes.set(self.lease_changes.get() + (conn.total_changes() - before));
            result
        })
    }

    /// Gives an sqlite error the operation and the path.
    fn finish<T>(&self, doing: &str, result: Inner<T>) -> CoreResult<T> {
        result.map_err(|fail| match fail {
            Fail::Core(e) => e,
            Fail::Sql(e) => CoreError::Storage(format!("store '{}': {doing} failed: {e}", self.label)),
        })
    }
}

/// The fields of a resume record the plan reads (see [`ResumeRecord`]); a malformed record reads
/// as nothing recorded.
#[derive(Default)]
struct ResumeRecordFields {
    inputs: Option<String>,
    revert_kind: Option<String>,
    revert_name: Option<String>,
}

impl ResumeRecordFields {
    fn parse(record: &str) -> ResumeRecordFields {
        let mut fields = record.splitn(4, RESUME_FIELD_END);
        let (Some(inputs), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
            return ResumeRecordFields::default();
        };
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ResumeRecordFields { inputs: Some(inputs.to_owned()), revert_kind: text(kind), revert_name: text(name) }
    }
}

/// The [`ResumeRow`] of a row whose first 7 columns are those of [`Store::resume_rows`].
fn resume_row(row: &Row<'_>, texts: &mut Interner) -> rusqlite::Result<ResumeRow> {
    let mut text = |index: usize| -> rusqlite::Result<Option<Arc<str>>> {
        Ok(match row.get_ref(index)? {
            rusqlite::types::ValueRef::Text(bytes) => Some(texts.get(&String::from_utf8_lossy(bytes))),
            _ => None,
        })
    };
    let state = text(2)?;
    let intention = text(3)?.unwrap_or_else(|| Arc::from(""));
    let version = text(4)?;
    let retired_by = text(6)?;
    let (mut inputs, mut revert_kind, mut revert_name) = (None, None, None);
    if let Some(record) = row.get_ref(5)?.as_str_or_null()? {
        let mut fields = record.splitn(4, RESUME_FIELD_END);
        if let (Some(i), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next()) {
            inputs = Some(texts.get(i));
            revert_kind = (!kind.is_empty()).then(|| texts.get(kind));
            revert_name = (!name.is_empty()).then(|| texts.get(name));
        }
    }
    Ok(ResumeRow {
        name: row.get(0)?,
        atom_type: row.get(1)?,
        state,
        intention,
        version,
        inputs,
        revert_kind,
        revert_name,
        retired_by,
    })
}

/// One row of [`Store::restore_rows`]; its meta text is added to `metas` if new.
fn restore_row(
    row: &Row<'_>,
    texts: &mut Interner,
    meta_index: &mut FastMap<String, u32>,
    metas: &mut Vec<String>,
) -> rusqlite::Result<RestoreRow> {
    let meta_text = row.get_ref(12)?.as_str_or_null()?.unwrap_or("{}");
    let meta = if let Some(&known) = meta_index.get(meta_text) {
        known
    } else {
        let next = u32::try_from(metas.len()).unwrap_or(u32::MAX);
        meta_index.insert(meta_text.to_owned(), next);
        metas.push(meta_text.to_owned());
        next
    };
    Ok(RestoreRow {
        resume: resume_row(row, texts)?,
        uuid: row.get(7)?,
        results: json_payload(row, 8)?,
        has_failure: row.get(9)?,
        revert_results: json_payload(row, 10)?,
        has_revert_failure: row.get(11)?,
        meta,
    })
}

/// A JSON payload column: `None` for JSON `null` (or SQL NULL), else its text.
fn json_payload(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)?.as_str_or_null()? {
        None | Some("null") => None,
        Some(text) => Some(text.to_owned()),
    })
}

/// The parts of one write transaction (see [`Batch`]).
#[derive(Default)]
struct Parts<'a> {
    atoms: &'a [AtomDetailRow],
    fresh: Option<&'a FreshAtoms>,
    transitions: &'a [Transition],
    resume_records: &'a [ResumeRecord],
    flow_states: &'a [FlowStateChange],
    flow_metas: &'a [FlowMetaChange],
    /// Where the rows are (see `rowids`): learnt from inserts, used by transitions.
    rowids: Option<&'a RefCell<RowidHints>>,
    /// The handle's prepared write statements (prepared for this call when `None`).
    statements: Option<&'a RefCell<WriteStatements>>,
}

/// A handle's write statements, prepared when first used, bound without copies (`static_stmt`):
/// the two forms of a transition's UPDATE, by the row's rowid hint (the uuid checked too) and by
/// uuid, and the INSERTs of fresh atom details, of one row and of `FRESH_ROWS_PER_INSERT` rows.
#[derive(Debug, Default)]
struct WriteStatements {
    by_rowid: Option<StaticStatement>,
    by_uuid: Option<StaticStatement>,
    fresh_row: Option<StaticStatement>,
    fresh_rows: Option<StaticStatement>,
}

/// Rows one INSERT of fresh atom details writes at most: a new flow's rows go in statements of
/// this many, the rest one by one. Stepping and resetting a statement per row was a fifth of
/// inserting and committing a new 100,000-atom flow's rows (0.199 against 0.157 s with the
/// bundled SQLite; 64 rows saved half as much, 1,024 no more).
const FRESH_ROWS_PER_INSERT: usize = 256;

/// Parameters shared by the rows of a fresh atoms' INSERT (`?1` the flow's key, `flowdetails.id`,
/// looked up once per batch; `?2` created; `?3` the row reserve), then four per row (uuid, name,
/// kind, version).
const FRESH_SHARED_PARAMS: usize = 3;
const FRESH_ROW_PARAMS: usize = 4;

/// The INSERT of `rows` fresh atom details (see `FRESH_SHARED_PARAMS`).
fn fresh_insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let at = FRESH_SHARED_PARAMS + 1 + row * FRESH_ROW_PARAMS;
            format!(
                "(?{at}, ?1, ?{}, ?{}, 'PENDING', 'EXECUTE', 'null', NULL, 'null', NULL, ?{}, '{{}}', ?2, ?2, zeroblob(?3))",
                at + 1,
                at + 2,
                at + 3
            )
        })
        .collect();
    format!(
        "INSERT INTO atomdetails (uuid, flow_id, name, atom_type, state, intention, results, failure,
                                  revert_results, revert_failure, version, meta, created_at, updated_at, reserve)
         VALUES {}",
        values.join(", ")
    )
}

/// Inserts new atom details (see [`FreshAtoms`]).
/// Rows go `FRESH_ROWS_PER_INSERT` to a statement, the rest one by one; each row's rowid becomes
/// a hint (those of one statement are consecutive, as SQLite numbers new rows; a hint is only a
/// hint, see `rowids`).
fn insert_fresh(
    conn: &Connection,
    fresh: &FreshAtoms,
    rowids: Option<&RefCell<RowidHints>>,
    statements: &mut WriteStatements,
) -> Inner<()> {
    let n = fresh.rows.len();
    if n == 0 {
        return Ok(());
    }
    let Some(flow_id) = flow_key(conn, &fresh.parent_uuid)? else {
        let first_uuid = fresh.rows.uuids().get(0).unwrap_or_default();
        return Err(parent_not_found("flow detail", &fresh.parent_uuid, "atom detail", first_uuid).into());
    };
    if let Some(hints) = rowids {
        hints.borrow_mut().reserve(n);
    }
    let mut params: Vec<Param<'_>> =
        Vec::with_capacity(FRESH_SHARED_PARAMS + FRESH_ROW_PARAMS * n.min(FRESH_ROWS_PER_INSERT));
    let mut start = 0;
    while start < n {
        let rows = if n - start >= FRESH_ROWS_PER_INSERT { FRESH_ROWS_PER_INSERT } else { 1 };
        let insert = match if rows == 1 { &mut statements.fresh_row } else { &mut statements.fresh_rows } {
            Some(insert) => insert,
            slot => slot.insert(StaticStatement::prepare(conn, &fresh_insert_sql(rows))?),
        };
        params.clear();
        params.extend([Param::Int(flow_id), Param::Real(fresh.created_at), Param::Int(ROW_RESERVE)]);
        for (uuid, name, is_retry, version) in (start..start + rows).filter_map(|at| fresh.rows.row(at)) {
            let kind = if is_retry { AtomType::Retry } else { AtomType::Task };
            params.extend([Param::Text(uuid), Param::Text(name), Param::Text(kind.as_str()), version.into()]);
        }
        // (bound in place: the texts are not copied per row; see `static_stmt`)
        let saved = insert.execute(&params);
        let first_uuid = fresh.rows.uuids().get(start).unwrap_or_default();
        missing_parent(saved, "flow detail", &fresh.parent_uuid, "atom detail", first_uuid)?;
        if let Some(hints) = rowids {
            let first = conn.last_insert_rowid() - (rows as i64 - 1);
            let mut hints = hints.borrow_mut();
            let uuids = fresh.rows.uuids();
            for (offset, uuid) in (start..start + rows).filter_map(|at| uuids.get(at)).enumerate() {
                hints.learn(uuid, first + offset as i64);
            }
        }
        start += rows;
    }
    Ok(())
}

/// Inserts or replaces whole atom details (keeping an existing row's `created_at`).
fn upsert_atoms(conn: &Connection, atoms: &[AtomDetailRow]) -> Inner<()> {
    if atoms.is_empty() {
        return Ok(());
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO atomdetails (uuid, flow_id, name, atom_type, state, intention, results, failure,
                                  revert_results, revert_failure, version, meta, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(uuid) DO UPDATE SET
             flow_id = excluded.flow_id, name = excluded.name, atom_type = excluded.atom_type,
             state = excluded.state, intention = excluded.intention, results = excluded.results,
             failure = excluded.failure, revert_results = excluded.revert_results,
             revert_failure = excluded.revert_failure, version = excluded.version, meta = excluded.meta,
             updated_at = excluded.updated_at, reserve = NULL",
    )?;
    // The flow's key is looked up once per run of atoms of one flow (a batch's are usually all).
    let mut flow: Option<(&str, i64)> = None;
    for atom in atoms {
        let flow_id = match flow {
            Some((uuid, id)) if uuid == atom.parent_uuid => id,
            _ => {
                let Some(id) = flow_key(conn, &atom.parent_uuid)? else {
                    return Err(parent_not_found("flow detail", &atom.parent_uuid, "atom detail", &atom.uuid).into());
                };
                flow = Some((&atom.parent_uuid, id));
                id
            }
        };
        let saved = upsert.execute(params![
            atom.uuid,
            flow_id,
            atom.name,
            atom.atom_type,
            atom.state,
            atom.intention,
            atom.results,
            atom.failure,
            atom.revert_results,
            atom.revert_failure,
            atom.version,
            atom.meta,
            atom.created_at,
            atom.updated_at
        ]);
        missing_parent(saved, "flow detail", &atom.parent_uuid, "atom detail", &atom.uuid)?;
    }
    Ok(())
}

/// Gives `owner`'s lease of `flow_uuid` up (another owner's is never touched); whether it held it.
fn release_held(conn: &Connection, flow_uuid: &str, owner: &str) -> Inner<bool> {
    let released = conn
        .prepare_cached("UPDATE flowdetails SET owner = NULL, lease_until = NULL WHERE uuid = ?1 AND owner = ?2")?
        .execute([flow_uuid, owner])?;
    if released == 0 && !flow_exists(conn, flow_uuid)? {
        return Err(not_found("flow detail", flow_uuid).into());
    }
    Ok(released == 1)
}

/// Applies a [`Batch`] inside the caller's transaction under its fence (see below), each row
/// with one indexed statement; a release made by a statement of its own is counted in
/// `lease_changes`.
fn apply_batch(
    conn: &Connection,
    batch: &Batch,
    rowids: &RefCell<RowidHints>,
    statements: &RefCell<WriteStatements>,
    lease_changes: &Cell<u64>,
) -> Inner<()> {
    // The fenced flow's own state (a run starting or ending) is written by an UPDATE that checks
    // the fence in its WHERE (and gives the lease up with `release`): one statement on the flow's
    // row instead of a read of the lease, the write and the release. Anything else fenced reads
    // the lease first. (A lost lease fails the batch either way: the caller rolls it back.)
    let own = batch.fence.as_ref().and_then(|fence| {
        let at = batch.flow_states.iter().position(|change| *change.flow_uuid == *fence.flow_uuid)?;
        Some((fence, at))
    });
    if let (Some(fence), None) = (&batch.fence, own) {
        check_fence(conn, fence)?;
    }
    let others: Vec<FlowStateChange>;
    let flow_states = match own {
        None => &batch.flow_states[..],
        Some(_) if batch.flow_states.len() == 1 => &[],
        Some((_, at)) => {
            others = batch.flow_states.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, c)| c.clone()).collect();
            &others[..]
        }
    };
    apply_parts(
        conn,
        &Parts {
            atoms: &batch.atom_details,
            fresh: batch.fresh_atoms.as_ref(),
            transitions: &batch.transitions,
            resume_records: &batch.resume_records,
            flow_states,
            flow_metas: &batch.flow_metas,
            rowids: Some(rowids),
            statements: Some(statements),
        },
    )?;
    match (own, &batch.fence) {
        (Some((fence, at)), _) => {
            let change = &batch.flow_states[at];
            let written = conn
                .prepare_cached(
                    "UPDATE flowdetails SET state = ?4, updated_at = coalesce(?5, updated_at),
                            owner = iif(?6, NULL, owner), lease_until = iif(?6, NULL, lease_until)
                     WHERE uuid = ?1 AND owner = ?2 AND lease_epoch = ?3",
                )?
                .execute(params![
                    fence.flow_uuid,
                    fence.owner,
                    fence.epoch,
                    change.state,
                    change.updated_at,
                    batch.release
                ])?;
            if written == 0 {
                return Err(lost(conn, &fence.flow_uuid, &fence.owner, fence.epoch, "write")?.into());
            }
        }
        (None, Some(fence)) if batch.release => {
            let before = conn.total_changes();
            release_held(conn, &fence.flow_uuid, &fence.owner)?;
            lease_changes.set(lease_changes.get() + (conn.total_changes() - before));
        }
        _ => {}
    }
    Ok(())
}

fn apply_parts(conn: &Connection, parts: &Parts<'_>) -> Inner<()> {
    let Parts { atoms, fresh, transitions, resume_records, flow_states, flow_metas, rowids, statements } = *parts;
    let (mut local, mut shared) = (WriteStatements::default(), statements.map(RefCell::borrow_mut));
    let statements = match &mut shared {
        Some(statements) => &mut **statements,
        None => &mut local,
    };
    if let Some(fresh) = fresh {
        insert_fresh(conn, fresh, rowids, statements)?;
    }
    upsert_atoms(conn, atoms)?;
    if !transitions.is_empty() {
        update_transitions(conn, transitions, rowids, statements)?;
    }
    if !resume_records.is_empty() {
        let mut set = conn.prepare_cached("UPDATE atomdetails SET resume = ?2, reserve = NULL WHERE uuid = ?1")?;
        for change in resume_records {
            if set.execute(params![change.atom_uuid, change.record])? == 0 {
                return Err(not_found("atom detail", &change.atom_uuid).into());
            }
        }
    }
    if !flow_states.is_empty() {
        let mut update = conn.prepare_cached(
            "UPDATE flowdetails SET state = ?2, updated_at = coalesce(?3, updated_at) WHERE uuid = ?1",
        )?;
        for change in flow_states {
            if update.execute(params![change.flow_uuid, change.state, change.updated_at])? == 0 {
                return Err(not_found("flow detail", &change.flow_uuid).into());
            }
        }
    }
    if !flow_metas.is_empty() {
        let mut update = conn.prepare_cached(
            "UPDATE flowdetails SET meta = ?2, updated_at = coalesce(?3, updated_at) WHERE uuid = ?1",
        )?;
        for change in flow_metas {
            if update.execute(params![change.flow_uuid, change.meta, change.updated_at])? == 0 {
                return Err(not_found("flow detail", &change.flow_uuid).into());
            }
        }
    }
    Ok(())
}

/// Writes atom transitions: one UPDATE per transition, the row found by its rowid hint or uuid.
fn update_transitions(
    conn: &Connection,
    transitions: &[Transition],
    rowids: Option<&RefCell<RowidHints>>,
    statements: &mut WriteStatements,
) -> Inner<()> {
    // One statement for every shape of transition: NULL / a false flag keeps the column; the
    // row's reserve is given back for what the transition adds (`ROW_RESERVE`). A
    // row found by its rowid hint skips the uuid index (`rowids`); a wrong hint finds nothing
    // (the uuid is checked too) and the uuid is searched.
    macro_rules! update {
        ($which:literal) => {
            concat!(
                "UPDATE atomdetails SET
                     state = coalesce(?2, state),
                     intention = coalesce(?3, intention),
                     results = coalesce(?4, results),
                     revert_results = coalesce(?5, revert_results),
                     meta = coalesce(?6, meta),
                     updated_at = coalesce(?7, updated_at),
                     failure = CASE WHEN ?8 THEN ?9 ELSE failure END,
                     revert_failure = CASE WHEN ?10 THEN ?11 ELSE revert_failure END,
                     resume = coalesce(?12, resume),
                     reserve = NULL
                 WHERE ",
                $which
            )
        };
    }
    for t in transitions {
        let (failure_changes, failure) = nullable_params(&t.failure);
        let (revert_failure_changes, revert_failure) = nullable_params(&t.revert_failure);
        let hint = rowids.and_then(|hints| hints.borrow().get(&t.atom_uuid));
        let values: [Param<'_>; 13] = [
            Param::Text(&t.atom_uuid),
            t.state.as_deref().into(),
            t.intention.as_deref().into(),
            t.results.as_deref().into(),
            t.revert_results.as_deref().into(),
            t.meta.as_deref().into(),
            t.updated_at.into(),
            failure_changes.into(),
            failure.into(),
            revert_failure_changes.into(),
            revert_failure.into(),
            t.resume.as_deref().into(),
            Param::Int(hint.unwrap_or_default()),
        ];
        let mut changed = 0;
        if hint.is_some() {
            let update = match &mut statements.by_rowid {
                Some(update) => update,
                slot => slot.insert(StaticStatement::prepare(conn, update!("rowid = ?13 AND uuid = ?1"))?),
            };
            changed = update.execute(&values)?;
            if changed == 0 {
                if let Some(hints) = rowids {
                    hints.borrow_mut().forget(&t.atom_uuid);
                }
            }
        }
        if changed == 0 {
            let update = match &mut statements.by_uuid {
                Some(update) => update,
                slot => slot.insert(StaticStatement::prepare(conn, update!("uuid = ?1"))?),
            };
            changed = update.execute(&values[..12])?;
        }
        if changed == 0 {
            return Err(not_found("atom detail", &t.atom_uuid).into());
        }
    }
    Ok(())
}

/// `(whether the column changes, its new value)` for the UPDATE's `CASE WHEN` of a nullable column.
fn nullable_params(change: &Nullable) -> (bool, Option<&str>) {
    match change {
        Nullable::Keep => (false, None),
        Nullable::Clear => (true, None),
        Nullable::Set(json) => (true, Some(json)),
    }
}

/// Turns a foreign-key violation of an insert into `NotFound` naming the missing parent.
fn missing_parent(
    saved: rusqlite::Result<usize>,
    parent_kind: &str,
    parent_uuid: &str,
    child_kind: &str,
    child_uuid: &str,
) -> Inner<()> {
    match saved {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error().is_some_and(|s| s.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
            Err(parent_not_found(parent_kind, parent_uuid, child_kind, child_uuid).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The `NotFound` of a row saved under a parent that does not exist (see [`missing_parent`]).
fn parent_not_found(parent_kind: &str, parent_uuid: &str, child_kind: &str, child_uuid: &str) -> CoreError {
    CoreError::NotFound(format!("{parent_kind} '{parent_uuid}' not found (saving {child_kind} '{child_uuid}')"))
}

/// The key (`flowdetails.id`) atom rows name flow `flow_uuid` by; `None` when there is no such flow.
fn flow_key(conn: &Connection, flow_uuid: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM flowdetails WHERE uuid = ?1")?
        .query_row([flow_uuid], |row| row.get(0))
        .optional()
}

fn flow_exists(conn: &Connection, flow_uuid: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM flowdetails WHERE uuid = ?1")?.exists([flow_uuid])
}

/// The lease columns of a flow detail; `None` when the flow is unowned or does not exist.
fn current_lease(conn: &Connection, flow_uuid: &str) -> Inner<Option<Lease>> {
    let row: Option<(Option<String>, Option<f64>, i64)> = conn
        .prepare_cached("SELECT owner, lease_until, lease_epoch FROM flowdetails WHERE uuid = ?1")?
        .query_row([flow_uuid], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    Ok(match row {
        Some((Some(owner), until, epoch)) => Some(Lease { owner, until: until.unwrap_or(f64::NEG_INFINITY), epoch }),
        _ => None,
    })
}

/// Refuses a write unless `fence` still holds its flow's lease: one primary-key read inside the
/// write's own transaction, so a stale owner can never commit over its successor.
fn check_fence(conn: &Connection, fence: &Fence) -> Inner<()> {
    let holds = conn
        .prepare_cached("SELECT 1 FROM flowdetails WHERE uuid = ?1 AND owner = ?2 AND lease_epoch = ?3")?
        .exists(params![fence.flow_uuid, fence.owner, fence.epoch])?;
    if holds {
        return Ok(());
    }
    Err(lost(conn, &fence.flow_uuid, &fence.owner, fence.epoch, "write")?.into())
}

/// The [`CoreError::LeaseLost`] of `owner`, who took the lease of `flow_uuid` at `epoch` and tried
/// to `doing`, naming who holds the lease now.
fn lost(conn: &Connection, flow_uuid: &str, owner: &str, epoch: i64, doing: &str) -> Inner<CoreError> {
    if !flow_exists(conn, flow_uuid)? {
        return Ok(not_found("flow detail", flow_uuid));
    }
    let holder = match current_lease(conn, flow_uuid)? {
        Some(l) if l.owner == owner => format!("the same owner at a newer epoch {} (it was re-acquired)", l.epoch),
        Some(l) => format!("'{}' (epoch {})", l.owner, l.epoch),
        None => "nobody (it was released)".to_owned(),
    };
    Ok(CoreError::LeaseLost(format!(
        "'{owner}' lost the lease of flow detail '{flow_uuid}' (epoch {epoch}) and cannot {doing}: it is held by \
         {holder}; the flow continues under its current owner"
    )))
}

fn lease_end(lease_seconds: f64, now: f64) -> CoreResult<f64> {
    if !(lease_seconds.is_finite() && lease_seconds > 0.0 && now.is_finite()) {
        return Err(CoreError::InvalidState(format!(
            "a lease needs a positive, finite duration and a finite time (got lease_seconds={lease_seconds}, now={now})"
        )));
    }
    Ok(now + lease_seconds)
}

fn not_found(kind: &str, uuid: &str) -> CoreError {
    CoreError::NotFound(format!("{kind} '{uuid}' not found"))
}

fn open_failed(label: &str, e: &rusqlite::Error) -> CoreError {
    CoreError::Storage(format!("cannot open store '{label}': {e}"))
}

fn logbook_from_row(row: &Row<'_>) -> rusqlite::Result<LogBookRow> {
    Ok(LogBookRow {
        uuid: row.get(0)?,
        name: row.get(1)?,
        meta: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

fn flow_from_row(row: &Row<'_>) -> rusqlite::Result<FlowDetailRow> {
    Ok(FlowDetailRow {
        uuid: row.get(0)?,
        parent_uuid: row.get(1)?,
        name: row.get(2)?,
        state: row.get(3)?,
        meta: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

fn atom_from_row(row: &Row<'_>) -> rusqlite::Result<AtomDetailRow> {
    Ok(AtomDetailRow {
        uuid: row.get(0)?,
        parent_uuid: row.get(1)?,
        name: row.get(2)?,
        atom_type: row.get(3)?,
        state: row.get(4)?,
        intention: row.get(5)?,
        results: row.get(6)?,
        failure: row.get(7)?,
        revert_results: row.get(8)?,
        revert_failure: row.get(9)?,
        version: row.get(10)?,
        meta: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::checkpoint::WRITER_CHECKPOINT_PAGES;
    use crate::store::AtomType;
    use crate::store::FreshRows;

    fn pragma(store: &Store, name: &str) -> i64 {
        store.conn.pragma_query_value(None, name, |row| row.get(0)).unwrap()
    }

    /// An in-memory store holding logbook `b` with its flow detail `f`.
    fn store_with_flow() -> Store {
        with_flow(Store::open_in_memory().unwrap())
    }

    /// `store` with logbook `b` and its flow detail `f` added.
    fn with_flow(store: Store) -> Store {
        store
            .conn
            .execute_batch(
                "INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
                 INSERT INTO flowdetails VALUES (NULL, 'f', 'b', 'f', NULL, '{}', 0, NULL, NULL, NULL, 0);",
            )
            .unwrap();
        store
    }

    /// `n` fresh atom details `t0`, `t1`... of flow `f` (with `version`), and their uuids.
    fn fresh_atoms(n: usize, version: Option<&str>) -> (Vec<String>, FreshAtoms) {
        let uuids: Vec<String> = (0..n).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
        let fresh = fresh_of("f", &uuids, |i| (format!("t{i}"), false, version));
        (uuids, fresh)
    }

    /// Fresh atom details of flow `flow` with `uuids`, row `i` named, kinded and versioned by `row(i)`.
    fn fresh_of<'a>(
        flow: &str,
        uuids: &[String],
        row: impl Fn(usize) -> (String, bool, Option<&'a str>),
    ) -> FreshAtoms {
        let mut rows = FreshRows::with_capacity(uuids.len());
        for (i, uuid) in uuids.iter().enumerate() {
            let (name, is_retry, version) = row(i);
            rows.push(uuid, &name, is_retry, version);
        }
        FreshAtoms { parent_uuid: flow.into(), created_at: 1.0, rows }
    }

    #[test]
    fn durability_modes_set_the_synchronous_level_and_keys_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let process = Store::open(dir.path().join("p.db"), Durability::Process).unwrap();
        let fsync = Store::open(dir.path().join("f.db"), Durability::Fsync).unwrap();
        // 1 = NORMAL, 2 = FULL.
        assert_eq!((pragma(&process, "synchronous"), pragma(&fsync, "synchronous")), (1, 2));
        assert_eq!(pragma(&process, "foreign_keys"), 1);
        assert_eq!(pragma(&process, "busy_timeout"), 5_000);
    }

    #[test]
    fn a_transition_writes_one_row_whatever_the_flow_size() {
        let mut store = store_with_flow();
        let atoms: Vec<_> = (0..1_000)
            .map(|i| AtomDetailRow {
                uuid: format!("a{i}"),
                parent_uuid: "f".into(),
                name: format!("a{i}"),
                atom_type: AtomType::Task,
                state: None,
                intention: "EXECUTE".into(),
                results: "null".into(),
                failure: None,
                revert_results: "null".into(),
                revert_failure: None,
                version: None,
                meta: "{}".into(),
                created_at: 0.0,
                updated_at: None,
            })
            .collect();
        store.upsert_atom_details(&atoms).unwrap();
        let before = store.conn.total_changes();
        let mut batch = Batch::new();
        batch
            .transition(Transition { state: Some("RUNNING".into()), ..Transition::new("a500") })
            .flow_state("f", "RUNNING", None);
        store.apply(&batch).unwrap();
        assert_eq!(store.conn.total_changes() - before, 2);
    }

    /// Pages in the store after `n` fresh atoms ran (RUNNING, then SUCCESS with progress and a
    /// resume record naming two inputs) in an order scattered over the table; `keep_reserve: false`
    /// drops every row's reserve first, as rows without it were before schema v4.
    fn pages_before_and_after_a_scattered_run(n: usize, keep_reserve: bool) -> (i64, i64) {
        let mut store = store_with_flow();
        let (uuids, fresh) = fresh_atoms(n, Some("1.0"));
        store.apply(&Batch { fresh_atoms: Some(fresh), ..Batch::default() }).unwrap();
        if !keep_reserve {
            // (VACUUM packs the rows again, as they would have been inserted without it.)
            store.conn.execute_batch("UPDATE atomdetails SET reserve = NULL; VACUUM").unwrap();
        }
        let before = pragma(&store, "page_count");
        for step in 0..n {
            let uuid = &uuids[step * 7_919 % n];
            let running = Transition {
                state: Some("RUNNING".into()),
                meta: Some(r#"{"progress":0.0}"#.into()),
                ..Transition::new(uuid)
            };
            let success = Transition {
                state: Some("SUCCESS".into()),
                results: Some("1".into()),
                meta: Some(r#"{"progress":1.0}"#.into()),
                resume: Some("v0\u{1f}t0\u{1e}v1\u{1f}t1\u{1d}noop\u{1d}\u{1d}".into()),
                ..Transition::new(uuid)
            };
            store.apply_transitions(&[running]).unwrap();
            store.apply_transitions(&[success]).unwrap();
        }
        let reserved: i64 = store
            .conn
            .query_row("SELECT count(*) FROM atomdetails WHERE reserve IS NOT NULL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reserved, 0, "every transition gives the reserve back");
        (before, pragma(&store, "page_count"))
    }

    /// A commit of many pages at once (a new flow's rows) is left to the checkpoint thread, not
    /// copied on the writer's path; the writer checkpoints (a short copy, which lets the WAL
    /// start over) once the thread has caught up, so the WAL stays bounded through a run.
    #[test]
    fn a_big_commit_is_checkpointed_by_the_thread_and_the_wal_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = with_flow(Store::open(dir.path().join("w.db"), Durability::Process).unwrap());
        let n = 450_000; // (about 22,000 pages: past the writer's threshold in one commit)
        let (uuids, fresh) = fresh_atoms(n, None);
        let progress = Arc::clone(&store.checkpointer.as_ref().unwrap().progress);
        let wal_pages = |store: &Store| -> i64 {
            let wal = dir.path().join("w.db-wal");
            let bytes = std::fs::metadata(wal).map_or(0, |m| m.len());
            i64::try_from(bytes).unwrap() / (pragma(store, "page_size") + 24)
        };
        store.apply(&Batch { fresh_atoms: Some(fresh), ..Batch::default() }).unwrap();
        let committed = wal_pages(&store);
        assert!(committed > WRITER_CHECKPOINT_PAGES, "one commit of {committed} pages");
        assert_eq!(progress.writer_checkpoints(), 0, "the new rows are the thread's to copy");
        let started = std::time::Instant::now();
        let mut step = 0;
        while progress.writer_checkpoints() == 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "the writer never checkpointed");
            let uuid = &uuids[step % n];
            store.apply_transitions(&[Transition { state: Some("RUNNING".into()), ..Transition::new(uuid) }]).unwrap();
            step += 1;
        }
        // The WAL starts over from its beginning (again whenever the thread has caught up): it no
        // longer grows with every commit.
        let after_restart = wal_pages(&store);
        let commits = 12_000;
        for uuid in uuids.iter().take(commits) {
            store.apply_transitions(&[Transition { state: Some("SUCCESS".into()), ..Transition::new(uuid) }]).unwrap();
        }
        let grown = wal_pages(&store) - after_restart;
        assert!(grown < i64::try_from(commits).unwrap() / 2, "the WAL grew by {grown} pages over {commits} commits");
    }

    /// The transition UPDATEs are prepared on the raw connection (`static_stmt`): they are
    /// finalized before the connection closes, so closing still succeeds.
    #[test]
    fn a_store_that_wrote_transitions_closes_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = with_flow(Store::open(dir.path().join("c.db"), Durability::Process).unwrap());
        let fresh = fresh_of("f", &["a".to_owned()], |_| ("a".into(), false, None));
        store.apply(&Batch { fresh_atoms: Some(fresh), ..Batch::default() }).unwrap();
        store.apply_transitions(&[Transition { state: Some("RUNNING".into()), ..Transition::new("a") }]).unwrap();
        store.rowids.borrow_mut().forget("a"); // the uuid form too
        store.apply_transitions(&[Transition { state: Some("SUCCESS".into()), ..Transition::new("a") }]).unwrap();
        let statements = store.statements.borrow();
        assert!(statements.by_rowid.is_some() && statements.by_uuid.is_some());
        drop(statements);
        store.close().unwrap();
        let store = Store::open_read_only(dir.path().join("c.db")).unwrap();
        assert_eq!(store.atoms_for_flow("f").unwrap()[0].state.as_deref(), Some("SUCCESS"));
    }

    /// Fresh rows hold room for what their run adds, so running atoms in any order splits no page
    /// (which showed as a per-atom cost growing with the flow on graphs); without the reserve the
    /// same run grows the table by a third.
    #[test]
    fn fresh_rows_have_room_for_their_run() {
        let (before, after) = pages_before_and_after_a_scattered_run(3_000, true);
        assert_eq!(after, before, "a run with reserved rows adds no page");
        let (before, after) = pages_before_and_after_a_scattered_run(3_000, false);
        assert!(after > before + before / 5, "rows without room split their pages ({before} -> {after} pages)");
    }

    /// A new flow's rows go `FRESH_ROWS_PER_INSERT` to a statement and the rest one by one: every
    /// row is written as given, in order, each retry a `RETRY_DETAIL`, with the rowid its hint says;
    /// and a flow that is not there is named with the first row refused.
    #[test]
    fn fresh_rows_are_inserted_many_to_a_statement_in_order_with_their_rowids() {
        let mut store = store_with_flow();
        let n = 2 * FRESH_ROWS_PER_INSERT + 3;
        let uuids: Vec<String> = (0..n).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
        let fresh = fresh_of("f", &uuids, |i| {
            (format!("t{i}"), i == FRESH_ROWS_PER_INSERT + 1, if i == n - 1 { None } else { Some("2.0") })
        });
        store.apply(&Batch { fresh_atoms: Some(fresh), ..Batch::default() }).unwrap();
        let rows: Vec<(i64, String, String, String, Option<String>, String)> = store
            .conn
            .prepare("SELECT rowid, uuid, name, atom_type, version, state FROM atomdetails ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), n);
        for (at, (rowid, uuid, name, kind, version, state)) in rows.iter().enumerate() {
            assert_eq!((uuid, name.as_str(), state.as_str()), (&uuids[at], format!("t{at}").as_str(), "PENDING"));
            let retry = at == FRESH_ROWS_PER_INSERT + 1;
            assert_eq!(kind, if retry { "RETRY_DETAIL" } else { "TASK_DETAIL" });
            assert_eq!(version.as_deref(), if at == n - 1 { None } else { Some("2.0") });
            assert_eq!(store.rowids.borrow().get(uuid), Some(*rowid), "the hint of row {at}");
        }
        let statements = store.statements.borrow();
        assert!(statements.fresh_rows.is_some() && statements.fresh_row.is_some());
        drop(statements);
        let orphan_uuids: Vec<String> = (0..FRESH_ROWS_PER_INSERT).map(|i| format!("orphan-{i}")).collect();
        let orphans = fresh_of("no-such-flow", &orphan_uuids, |i| (format!("t{i}"), false, None));
        let refused = store.apply(&Batch { fresh_atoms: Some(orphans), ..Batch::default() }).unwrap_err();
        assert!(
            matches!(&refused, CoreError::NotFound(m) if m.contains("'no-such-flow'") && m.contains("'orphan-0'")),
            "{refused:?}"
        );
        assert_eq!(store.atoms_for_flow("f").unwrap().len(), n, "nothing of the refused batch written");
    }

    /// Rows found by their rowid hint, and by uuid when the hint is wrong: the row moved (as a
    /// vacuum or another process may move it), or the hint names another atom's row.
    #[test]
    fn transitions_use_rowid_hints_and_never_trust_a_wrong_one() {
        let mut store = store_with_flow();
        let uuids: Vec<String> = (0..3).map(|i| format!("a{i}")).collect();
        let fresh = fresh_of("f", &uuids, |i| (format!("a{i}"), false, None));
        store.apply(&Batch { fresh_atoms: Some(fresh), ..Batch::default() }).unwrap();
        assert_eq!(store.rowids.borrow().len(), 3);
        let state = |store: &Store, uuid: &str| -> String {
            store.conn.query_row("SELECT state FROM atomdetails WHERE uuid = ?1", [uuid], |r| r.get(0)).unwrap()
        };
        let set = |store: &mut Store, uuid: &str, to: &str| {
            store.apply_transitions(&[Transition { state: Some(to.to_owned().into()), ..Transition::new(uuid) }])
        };
        set(&mut store, "a0", "RUNNING").unwrap();
        assert_eq!(state(&store, "a0"), "RUNNING");
        // a0's row moves: its hint is stale.
        store.conn.execute("UPDATE atomdetails SET rowid = rowid + 1000 WHERE uuid = 'a0'", []).unwrap();
        set(&mut store, "a0", "SUCCESS").unwrap();
        assert_eq!(state(&store, "a0"), "SUCCESS");
        assert!(store.rowids.borrow().get("a0").is_none(), "a wrong hint is forgotten");
        // a1's hint names a2's row: a1 is written, a2 untouched.
        let a2_row: i64 =
            store.conn.query_row("SELECT rowid FROM atomdetails WHERE uuid = 'a2'", [], |r| r.get(0)).unwrap();
        store.rowids.borrow_mut().learn("a1", a2_row);
        set(&mut store, "a1", "RUNNING").unwrap();
        assert_eq!((state(&store, "a1").as_str(), state(&store, "a2").as_str()), ("RUNNING", "PENDING"));
        // A detail that does not exist is still refused.
        store.rowids.borrow_mut().learn("gone", a2_row);
        assert!(matches!(set(&mut store, "gone", "RUNNING"), Err(CoreError::NotFound(_))));
        assert_eq!(state(&store, "a2"), "PENDING");
    }

    #[test]
    fn deleting_a_flow_refuses_a_live_lease_and_drops_an_emptied_logbook() {
        let store = store_with_flow();
        store
            .conn
            .execute("INSERT INTO flowdetails VALUES (NULL, 'g', 'b', 'g', NULL, '{}', 0, NULL, NULL, NULL, 0)", [])
            .unwrap();
        let mut store = store;
        assert!(store.acquire_lease("f", "me", 30.0, 100.0).unwrap().is_ok());
        assert_eq!(store.delete_flow_detail("f", 110.0, None).unwrap(), Err("me".to_owned()));
        assert_eq!(store.delete_flow_detail("f", 110.0, Some("me")).unwrap(), Ok(()));
        assert!(store.get_flow_detail("f").is_err());
        assert_eq!(store.list_logbooks().unwrap().len(), 1); // g is still in it
        assert!(store.acquire_lease("g", "other", 30.0, 100.0).unwrap().is_ok());
        assert_eq!(store.delete_flow_detail("g", 131.0, None).unwrap(), Ok(())); // expired
        assert!(store.list_logbooks().unwrap().is_empty());
        assert!(matches!(store.delete_flow_detail("g", 131.0, None), Err(CoreError::NotFound(_))));
    }
}
