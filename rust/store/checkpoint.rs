//! Background WAL checkpoints.
//!
//! A commit appends its pages to the WAL. SQLite's automatic checkpoint makes the commit that
//! crosses the threshold copy every page of the WAL into the database file and sync it, so one
//! engine step in a few hundred pays for all of them (about a fifth of the cost per atom of a
//! chain). Instead a thread with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` (never
//! waiting for, nor blocking, readers and writers) a few times a second; the writer's automatic
//! checkpoint stays, at a higher threshold, as the bound on the WAL's size should this thread
//! fall behind. Durability is unchanged: checkpoints only move committed pages.
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(50);

/// WAL pages after which a writer checkpoints by itself (SQLite's default is 1,000). The thread
/// has copied nearly all of them by then, so the writer's checkpoint is short, and it is what lets
/// the WAL start over from its beginning. It bounds what opening the file after a kill reads to
/// rebuild the WAL index: at 4,000 pages about 5 ms, against about 42 ms at 20,000 (a 100,001-atom
/// flow killed halfway); no difference in run time measured between the two (random DAG and
/// linear flows on SQLite, 10k and 100k atoms, interleaved runs), while 1,000 cost 10–25% more.
pub(super) const WRITER_CHECKPOINT_PAGES: i64 = 4_000;

/// The checkpoint thread of one store handle; stopped (and joined) when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a child made by `fork()` has no such thread and must
    /// never wait for it.
    pid: u32,
}

impl Checkpointer {
    /// Starts checkpointing the WAL of the database at `path`; `None` if that is not possible (the
    /// writer's own checkpoints then keep the WAL bounded, as with plain SQLite).
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ferroflow-checkpoint".to_owned())
            .spawn(move || {
                // Until told to stop (or the handle is gone); a busy or failed checkpoint is simply
                // tried again at the next tick.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Checkpointer { stop: Some(stop), thread: Some(thread), pid: std::process::id() })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if std::process::id() == self.pid {
                // The thread only ends by itself once told to: a panic there is already reported.
                let _ = thread.join();
            }
        }
    }
}
