//! Reading a flow's saved atom details ahead, while its flow is being built and compiled.
//!
//! Resuming or planning a big flow reads every saved row (about 90 ms of a 100,000-atom resume)
//! only after the factory has built the flow and it is compiled (about 0.25 s of Python before
//! that). The rows do not depend on either: `SqliteStore.read_ahead(flow_uuid)` reads them on a
//! thread of its own, with a read-only connection of its own and without the GIL, and
//! `resume_plan_stored` takes what it read instead of reading again.
//!
//! Only when it is still what a read now would give: the handle that asked records its
//! `data_version` (which changes whenever another connection commits to the file) and the rows it
//! has changed itself (`Store::own_data_changes`, which leaves out its lease statements); if either
//! changed by the time the rows are taken, they are dropped and read again. A lease taken in
//! between writes the flow's own row, never an atom row, so it leaves them valid. The reading
//! connection must also have opened the very file the asking handle has open (same device and
//! inode: `Store::file_identity`), not a file put in its place since. What went wrong on the
//! thread (a failed read, a panic) is never reported from there: the read done instead reports
//! it, as it would have anyway.
//!
//! Also here: `recover_wal`, which has SQLite rebuild a killed store's WAL index on a thread while
//! the command line loads (`ferroflow.cli.ahead`).
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use pyo3::prelude::*;

use super::resume::{read_saved, Payloads};
use crate::error::{CoreError, CoreResult};
use crate::resume::SavedAtom;
use crate::store::{RowidHints, Store};

/// The saved details read ahead (and the payload columns, when asked for), with the rowid hints
/// learnt while reading them (for the writes of the run that follows).
pub(super) struct ReadRows {
    pub(super) saved: Vec<SavedAtom>,
    pub(super) payloads: Option<Payloads>,
    pub(super) hints: RowidHints,
}

/// A read ahead of one flow's saved details, running or done.
pub(super) struct ReadAhead {
    flow_uuid: String,
    restoring: bool,
    /// The asking handle's `data_version` and own data changes when it asked.
    data_version: i64,
    changes: u64,
    thread: JoinHandle<CoreResult<ReadRows>>,
}

impl ReadAhead {
    /// Starts reading the details of `flow_uuid` in the store file at `path` (with their payloads
    /// when `restoring`, as an engine's prepare reads them), if it is still the file `identity`
    /// (the asking handle's: `Store::file_identity`).
    pub(super) fn start(
        path: String,
        flow_uuid: String,
        restoring: bool,
        identity: (u64, u64),
        data_version: i64,
        changes: u64,
    ) -> std::io::Result<ReadAhead> {
        let uuid = flow_uuid.clone();
        let thread = thread::Builder::new().name("ferroflow-read-ahead".into()).spawn(move || {
            let store = Store::open_read_only(&path)?;
            if store.file_identity() != Some(identity) {
                // (the path names another file than the asking handle's: replaced meanwhile)
                return Err(CoreError::Storage(format!("store '{path}' is not the file the reader opened")));
            }
            let (saved, payloads) = read_saved(&store, &uuid, restoring, 0)?; // (started before the flow is built)
            Ok(ReadRows { saved, payloads, hints: store.take_rowid_hints() })
        })?;
        Ok(ReadAhead { flow_uuid, restoring, data_version, changes, thread })
    }

    /// Whether this read is of `flow_uuid`, as `restoring` asks.
    pub(super) fn serves(&self, flow_uuid: &str, restoring: bool) -> bool {
        self.flow_uuid == flow_uuid && self.restoring == restoring
    }

    /// What was read, waiting for the thread if it is still reading: `None` if the asking
    /// handle's `data_version` or own data changes are no longer those recorded, or the read
    /// failed.
    pub(super) fn finish(self, data_version: i64, changes: u64) -> Option<ReadRows> {
        if data_version != self.data_version || changes != self.changes {
            return None; // (the thread finishes by itself; what it read is dropped)
        }
        self.thread.join().ok()?.ok()
    }
}

/// A connection that had SQLite rebuild a store's WAL index (`recover_wal`), kept open until
/// `close()`: SQLite resets the shared index when the last connection to the file goes, so it
/// must stay until the store's own connection is open, and go before that one closes (the last
/// to close checkpoints the WAL; this one never does).
#[pyclass(frozen, module = "ferroflow._core")]
pub struct RecoveredWal {
    conn: Mutex<Option<rusqlite::Connection>>,
}

#[pymethods]
impl RecoveredWal {
    /// Closes the connection (again: nothing).
    fn close(&self, py: Python<'_>) {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner).take();
        py.detach(move || drop(conn));
    }
}

/// Rebuilds the WAL index of the SQLite file at `path` (see `store::recover_wal`), without the
/// GIL: the command line has it done on a thread while it imports what its command needs.
/// `None` when it could not (the store's own open reports why).
#[pyfunction]
pub fn recover_wal(py: Python<'_>, path: PathBuf) -> Option<RecoveredWal> {
    let conn = py.detach(move || crate::store::recover_wal(&path).ok())?;
    Some(RecoveredWal { conn: Mutex::new(Some(conn)) })
}
