//! Background WAL checkpoints.
//!
//! A commit appends its pages to the WAL. SQLite's automatic checkpoint makes the commit that
//! crosses the threshold copy every page of the WAL into the database file and sync it, so one
//! engine step in a few hundred pays for all of them (about a fifth of the cost per atom of a
//! chain). Instead a thread with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` (never
//! waiting for, nor blocking, readers and writers) a few times a second; the writer's own
//! checkpoint (a commit hook of ours, in place of SQLite's) stays, at a higher threshold, as the
//! bound on the WAL's size, and leaves a big commit the thread has not copied yet to the thread
//! (see [`Progress::writer_should_checkpoint`]). Durability is unchanged: checkpoints only move
//! committed pages.
use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{ffi, Connection, OpenFlags};

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(50);

/// WAL pages from which a writer checkpoints by itself (SQLite's default is 1,000): the bound on
/// the WAL's size, and what lets it start over from its beginning (the thread's checkpoint rarely
/// ends with nothing left to copy while an engine commits). Each such checkpoint syncs the WAL and
/// the database file on the writer's path: at 4,000 pages a linear flow's run on SQLite cost 10%
/// more per atom than at 20,000 (16.8–18.5 against 15.3–17.4 µs, interleaved), though opening a
/// store after a kill then rebuilds its WAL index from at most 4,000 pages (~5 ms) instead of
/// up to 20,000 (~42 ms): the run matters more.
pub(super) const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

/// A commit that adds at least this many pages at once (a new flow's rows: 100,000 atoms are
/// about 6,700 pages) is left for the thread to copy.
const BIG_COMMIT_PAGES: i64 = WRITER_CHECKPOINT_PAGES / 2;

/// What the writer's commit hook knows: the thread's last checkpoint and the writer's own commits.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Pages in the WAL, and pages of it copied into the database file, at the thread's last
    /// checkpoint.
    log: AtomicI64,
    copied: AtomicI64,
    /// Pages in the WAL after the writer's last commit.
    committed: AtomicI64,
    /// The WAL's size after the last big commit ([`BIG_COMMIT_PAGES`]) not yet copied (0: none).
    big_until: AtomicI64,
    /// Checkpoints the writer ran itself.
    writer_checkpoints: AtomicU64,
}

impl Progress {
    /// Whether the writer, whose commit left `pages` pages in the WAL, checkpoints now: from
    /// [`WRITER_CHECKPOINT_PAGES`], as SQLite's automatic checkpoint would, except that the pages
    /// of a big commit ([`BIG_COMMIT_PAGES`], a new flow's rows) the thread has not copied yet do
    /// not count: they are the thread's to copy, off the writer's path (SQLite's would copy all
    /// of a million-atom flow's new rows, ~67,000 pages, before its first atom runs).
    pub(super) fn writer_should_checkpoint(&self, pages: i64) -> bool {
        let before = self.committed.swap(pages, Ordering::Relaxed);
        // (fewer pages than before: the WAL started over)
        let added = if pages >= before { pages - before } else { pages };
        if added >= BIG_COMMIT_PAGES {
            self.big_until.store(pages, Ordering::Relaxed);
        }
        // (a log the thread saw larger than the WAL is now: the WAL started over since, and the
        // thread has copied none of its new pages)
        let copied = if pages < self.log.load(Ordering::Relaxed) { 0 } else { self.copied.load(Ordering::Relaxed) };
        let big_until = self.big_until.load(Ordering::Relaxed);
        let left_to_the_thread = if copied < big_until { big_until } else { 0 };
        pages - left_to_the_thread >= WRITER_CHECKPOINT_PAGES
    }

    fn thread_saw(&self, log: i64, copied: i64) {
        self.log.store(log, Ordering::Relaxed);
        self.copied.store(copied, Ordering::Relaxed);
    }

    /// After the writer's checkpoint: the WAL starts over at the next commit.
    fn writer_checkpointed(&self) {
        self.thread_saw(0, 0);
        self.big_until.store(0, Ordering::Relaxed);
        self.writer_checkpoints.fetch_add(1, Ordering::Relaxed);
    }

    /// How many checkpoints the writer ran itself.
    #[cfg(test)]
    pub(super) fn writer_checkpoints(&self) -> u64 {
        self.writer_checkpoints.load(Ordering::Relaxed)
    }
}

/// The checkpoint thread of one store handle; stopped (and joined) when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a child made by `fork()` has no such thread and must
    /// never wait for it.
    pid: u32,
    /// Shared with the writer's commit hook ([`Checkpointer::hook_writer`]).
    pub(super) progress: Arc<Progress>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL of the database at `path`; `None` if that is not possible (the
    /// writer's own checkpoints then keep the WAL bounded, as with plain SQLite).
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let progress = Arc::new(Progress::default());
        let seen = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("ferroflow-checkpoint".to_owned())
            .spawn(move || {
                // Until told to stop (or the handle is gone); a busy or failed checkpoint is simply
                // tried again at the next tick.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    });
                    // (-1 and -1 when it could not start: another checkpoint was running)
                    if let Ok((_, log @ 0.., copied @ 0..)) = done {
                        seen.thread_saw(log, copied);
                    }
                }
            })
            .ok()?;
        Some(Checkpointer { stop: Some(stop), thread: Some(thread), pid: std::process::id(), progress })
    }

    /// Makes `conn`'s commits checkpoint as [`Progress::writer_should_checkpoint`] says instead
    /// of SQLite's automatic checkpoint. [`Checkpointer::unhook_writer`] must undo it before this
    /// checkpointer is dropped while `conn` stays open.
    pub(super) fn hook_writer(&self, conn: &Connection) {
        // SAFETY: `progress` outlives the hook: the hook is removed (`unhook_writer`) or the
        // connection closed before this checkpointer, which holds it, is dropped.
        unsafe {
            ffi::sqlite3_wal_hook(conn.handle(), Some(on_commit), Arc::as_ptr(&self.progress).cast_mut().cast());
        }
    }

    /// Removes the hook [`Checkpointer::hook_writer`] set on `conn`.
    pub(super) fn unhook_writer(conn: &Connection) {
        // SAFETY: clears the callback; SQLite keeps no other reference to the argument.
        unsafe {
            ffi::sqlite3_wal_hook(conn.handle(), None, ptr::null_mut());
        }
    }
}

/// SQLite's WAL hook: called after each commit with the pages in the WAL. (Never panics: it is
/// called from C.)
unsafe extern "C" fn on_commit(arg: *mut c_void, db: *mut ffi::sqlite3, schema: *const c_char, pages: c_int) -> c_int {
    // SAFETY: `arg` is the `Progress` `hook_writer` registered, alive while the hook is set.
    let progress = unsafe { &*(arg.cast_const().cast::<Progress>()) };
    if progress.writer_should_checkpoint(i64::from(pages)) {
        // SAFETY: `db` and `schema` are the committing connection and database, as SQLite's own
        // automatic checkpoint uses them; a busy checkpoint (the thread's running) just returns.
        let status = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(db, schema, ffi::SQLITE_CHECKPOINT_PASSIVE, ptr::null_mut(), ptr::null_mut())
        };
        if status == ffi::SQLITE_OK {
            progress.writer_checkpointed();
        }
    }
    ffi::SQLITE_OK
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits of `step` pages each from `from` until the writer checkpoints; the WAL's size then.
    fn commit_until_checkpoint(progress: &Progress, from: i64, step: i64) -> i64 {
        let mut pages = from;
        while !progress.writer_should_checkpoint(pages) {
            pages += step;
            assert!(pages < 1_000_000, "the writer never checkpoints");
        }
        pages
    }

    #[test]
    fn the_writer_leaves_a_big_commit_to_the_thread_and_checkpoints_otherwise() {
        let progress = Progress::default();
        assert_eq!(commit_until_checkpoint(&progress, 100, 100), WRITER_CHECKPOINT_PAGES, "as SQLite's would");
        progress.writer_checkpointed();
        assert_eq!(progress.writer_checkpoints(), 1);
        // The WAL started over; a million-atom flow's rows come in one commit: left to the thread,
        // which has copied most of it only; what comes after is still bounded.
        let big = 100 + 67_000;
        assert!(!progress.writer_should_checkpoint(100));
        assert!(!progress.writer_should_checkpoint(big));
        progress.thread_saw(big - 1_000, big - 1_000);
        assert_eq!(commit_until_checkpoint(&progress, big + 10, 10), big + WRITER_CHECKPOINT_PAGES);
        progress.writer_checkpointed();
        // Once the thread has copied it, every page counts again.
        assert!(!progress.writer_should_checkpoint(big));
        progress.thread_saw(big, big);
        assert!(progress.writer_should_checkpoint(big + 10));
        // A log the thread saw larger than the WAL now belongs to the WAL before it started over:
        // none of the new big commit is copied.
        progress.writer_checkpointed();
        assert!(!progress.writer_should_checkpoint(25_000));
        progress.thread_saw(90_000, 90_000);
        assert!(!progress.writer_should_checkpoint(25_010));
    }
}
