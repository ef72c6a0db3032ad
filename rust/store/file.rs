//! The store file on disk: whether an existing file is a ferroflow store, decided before anything
//! is written to it, and the private, atomic creation of a new one.
//!
//! A file that exists is opened only if it already holds ferroflow's schema; anything else (an
//! empty file, another application's SQLite database, a text file) is refused and left exactly as
//! it was: the check reads it through a read-only connection, so no journal mode is switched, no
//! table added and no `-wal`/`-shm` file made. A store is created only where no file exists: its
//! schema is written into a private temporary file (mode 0600 whatever the umask; SQLite gives its
//! `-wal` and `-shm` files the same mode) that is then linked into place, so no other process ever
//! sees a half-made store, and of two processes creating one store at once exactly one succeeds
//! and the other opens the store it made.
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::error::{CoreError, CoreResult};

/// Mode bits of a new store file: read and write for its owner only.
#[cfg(unix)]
const STORE_FILE_MODE: u32 = 0o600;

/// How a store file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    ReadWrite,
    ReadOnly,
}

/// Which file `path` names (device and inode), or `None` where that cannot be known.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// [`open`], with the identity of the file opened (`None` when unknown, or when `path` named
/// another existing file before it was opened: replaced meanwhile).
pub(super) fn open_identified(
    path: &Path,
    label: &str,
    access: Access,
) -> CoreResult<(Connection, Option<(u64, u64)>)> {
    let before = identity(path);
    let conn = open(path, label, access)?;
    let after = identity(path);
    // (no file before: the open created it)
    Ok((conn, if before.is_none() || before == after { after } else { None }))
}

/// Opens the ferroflow store at `path`; with [`Access::ReadWrite`], a file that does not exist is
/// created as a new store. Fails with [`CoreError::Storage`] naming the path, the file untouched,
/// when it is not a ferroflow store, is damaged or was written by a newer ferroflow.
pub(super) fn open(path: &Path, label: &str, access: Access) -> CoreResult<Connection> {
    let mut created = false;
    if !inspect(path, label)? {
        if access == Access::ReadOnly {
            return Err(CoreError::Storage(format!(
                "cannot open store '{label}': there is no such file (a read-only open never creates one)"
            )));
        }
        refuse_orphan_wal(path, label)?;
        // `false`: another process created it meanwhile; it is then checked like any existing file.
        created = create(path, label)?;
    }
    if !created {
        schema::recognise(&probe(path, label)?, label)?;
    }
    let flags = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    };
    connect(path, label, flags)
}

/// Refuses to create a store where a write-ahead log of a database that is gone lies (the file was
/// deleted or moved without its `-wal`): SQLite would replay that log into the new, empty file
/// and damage it. (A log that appears with its database, another process creating the store
/// meanwhile, is no orphan: the database is checked for again.)
fn refuse_orphan_wal(path: &Path, label: &str) -> CoreResult<()> {
    let orphan = fs::metadata(wal_path(path)).is_ok_and(|meta| meta.len() > 0) && !path.exists();
    if !orphan {
        return Ok(());
    }
    Err(CoreError::Storage(format!(
        "cannot create store '{label}': its write-ahead log '{label}-wal' is there without it (the store \
         was deleted or moved without its -wal and -shm files); a new store would take that log's pages \
         and be damaged. Put the store file back, or remove '{label}-wal' and '{label}-shm' to start a \
         new store"
    )))
}

/// A read-only connection to look at an existing file without leaving a trace. Closing it never
/// checkpoints a WAL into the file (closing a read-write one would). And when there is no `-wal`
/// file the database file is complete, so it is read as immutable: SQLite would otherwise create
/// `-wal` and `-shm` files beside a WAL-mode database, even for a read-only connection.
fn probe(path: &Path, label: &str) -> CoreResult<Connection> {
    if !wal_path(path).exists() {
        if let Some(uri) = immutable_uri(path) {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            return Connection::open_with_flags(uri, flags)
                .map_err(|e| CoreError::Storage(format!("cannot open store '{label}': {e}")));
        }
    }
    connect(path, label, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// `file:///abs/path?immutable=1`, the path percent-encoded (`None` for a path that is not UTF-8).
fn immutable_uri(path: &Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let mut uri = String::from("file://");
    for byte in absolute.to_str()?.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}"); // (writing to a String cannot fail)
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

/// A connection on an existing file (never created by SQLite: no `SQLITE_OPEN_CREATE`).
fn connect(path: &Path, label: &str, access: OpenFlags) -> CoreResult<Connection> {
    let failed = |e: rusqlite::Error| CoreError::Storage(format!("cannot open store '{label}': {e}"));
    let conn = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(failed)?;
    // Another process may be creating or upgrading the file right now (switching it to WAL takes
    // an exclusive lock): wait for it, as every store connection does, rather than fail "locked".
    conn.busy_timeout(super::sqlite::BUSY_TIMEOUT).map_err(failed)?;
    Ok(conn)
}

/// `false` when there is no file at `path`; `true` when there is one that may be a SQLite
/// database. Refuses a directory, an empty file and a file whose header is not a whole SQLite
/// header (SQLite itself would take a file shorter than one page for an *empty* database and
/// write over it).
fn inspect(path: &Path, label: &str) -> CoreResult<bool> {
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let not_a_store = |why: String| CoreError::Storage(format!("cannot open store '{label}': {why}"));
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(not_a_store(e.to_string())),
    };
    let metadata = file.metadata().map_err(|e| not_a_store(e.to_string()))?;
    if metadata.is_dir() {
        return Err(not_a_store("it is a directory".to_owned()));
    }
    let len = metadata.len();
    if len == 0 {
        return Err(not_a_store(
            "the file is empty (0 bytes), so it is not a ferroflow store; ferroflow creates a store only where no \
             file exists, and left this one untouched (remove it, or choose another path)"
                .to_owned(),
        ));
    }
    let mut header = [0u8; 100];
    if len < 100 {
        return Err(not_a_store(format!("the file is {len} bytes, too short for a SQLite header (truncated?)")));
    }
    file.read_exact(&mut header).map_err(|e| not_a_store(format!("reading its header failed: {e}")))?;
    if &header[..16] != MAGIC {
        return Err(not_a_store("the file is not a SQLite database; it was left untouched".to_owned()));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(not_a_store(format!("the SQLite header is corrupt (page size {page_size})")));
    }
    if len < page_size {
        return Err(not_a_store(format!(
            "the file is {len} bytes, shorter than its first {page_size}-byte page (truncated?)"
        )));
    }
    Ok(true)
}

/// Makes a new store at `path`: the schema is written into a private temporary file beside it,
/// which is then linked to `path` only if `path` still does not exist. Returns `false` (and
/// leaves no trace) when another process created `path` first.
fn create(path: &Path, label: &str) -> CoreResult<bool> {
    let failed = |e: &dyn std::fmt::Display| CoreError::Storage(format!("cannot create store '{label}': {e}"));
    let temp = temp_path(path);
    let result = (|| {
        let file = new_private_file(&temp).map_err(|e| failed(&e))?;
        drop(file);
        let mut conn = connect(&temp, label, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        schema::migrate(&mut conn, label)?;
        // WAL mode is kept in the file: switched here, before anyone else can open it, the file
        // needs no switch when processes that raced to create it open it at once (a switch needs
        // an exclusive lock, and connections upgrading their locks together can get "database is
        // locked" without waiting). A file system without WAL is reported by the first open.
        let _ = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        conn.close().map_err(|(_, e)| failed(&e))?;
        match fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links: a rename, which (unlike a link) would replace a
            // file created in the instant since `path` was found missing.
            Err(_) if !path.exists() => fs::rename(&temp, path).map(|()| true).map_err(|e| failed(&e)),
            Err(_) => Ok(false),
        }
    })();
    // Gone after a link or a failure; already gone after a rename.
    let _ = fs::remove_file(&temp);
    result
}

/// The write-ahead log SQLite keeps beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A temporary name beside `path`, unique to this process and call.
fn temp_path(path: &Path) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = path.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}-{nanos}.new", std::process::id()))
}

/// Creates `path`, which must not exist, readable and writable by its owner only (whatever the
/// umask: the mode is set again once the file exists).
fn new_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(STORE_FILE_MODE);
        let file = options.open(path)?;
        file.set_permissions(fs::Permissions::from_mode(STORE_FILE_MODE))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Has SQLite rebuild the WAL index of the existing file at `path`, as the first connection to a
/// WAL a killed writer left must (reading the whole WAL: ~40 ms for a big one), so that the store
/// opened next finds it done; returns the connection, which must stay open until then (SQLite
/// resets the index when the last connection to the file closes). Read-only, it never
/// checkpoints (on close either) nor rolls a journal back: nothing of the database or its WAL is
/// written, and nothing is created. A file that is not a SQLite database, or that another process
/// is busy with, is left to the store's own open to report or wait for.
pub fn recover_wal(path: &Path) -> rusqlite::Result<Connection> {
    // (the WAL index it rebuilds is SQLite's shared memory, written as by any reader)
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
}
