//! A prepared statement whose text parameters are bound without a copy.
//!
//! rusqlite binds every string with `SQLITE_TRANSIENT`: SQLite copies it into memory of its own
//! (a malloc, a memcpy, and a free at the next bind), six times per atom transition on the hot
//! UPDATE, about a tenth of a transition's cost. With `SQLITE_STATIC` SQLite reads the caller's
//! bytes in place, which is sound only while they live: [`StaticStatement::execute`] binds, steps
//! to the end, resets and clears the bindings before it returns, so no pointer to the caller's
//! strings outlives the call.
use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

/// A parameter value, borrowed for one [`StaticStatement::execute`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Real(f64),
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Param::Null, Param::Text)
    }
}

impl From<Option<f64>> for Param<'_> {
    fn from(value: Option<f64>) -> Self {
        value.map_or(Param::Null, Param::Real)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}

/// A statement prepared on a connection's raw handle. It must be dropped (finalized) before its
/// connection is closed: the owner declares it before the connection.
#[derive(Debug)]
pub(super) struct StaticStatement {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
}

// SAFETY: the statement is used only through `&mut` of the store that owns it and its connection,
// so by one thread at a time, as the connection itself (opened with SQLITE_OPEN_NO_MUTEX) is.
unsafe impl Send for StaticStatement {}

impl StaticStatement {
    /// Prepares `sql` (one statement, kept prepared: `SQLITE_PREPARE_PERSISTENT`) on `conn`.
    pub(super) fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<StaticStatement> {
        // SAFETY: the handle is valid while `conn` lives; the owner drops this statement first.
        let db = NonNull::new(unsafe { conn.handle() }).ok_or(rusqlite::Error::InvalidQuery)?;
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the new statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &raw mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?; // (no statement in `sql`)
        Ok(StaticStatement { stmt, db })
    }

    /// Binds `params` to `?1`, `?2`, ..., runs the statement to its end and returns the rows it
    /// changed. The bindings are cleared before returning, whatever happened.
    pub(super) fn execute(&mut self, params: &[Param<'_>]) -> rusqlite::Result<usize> {
        let stmt = self.stmt.as_ptr();
        let outcome = self.bind_and_step(params);
        // SAFETY: `stmt` is a live statement. Reset makes it ready again (its error code was taken
        // from the step); clearing drops every pointer to the caller's strings.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        outcome
    }

    fn bind_and_step(&mut self, params: &[Param<'_>]) -> rusqlite::Result<usize> {
        let stmt = self.stmt.as_ptr();
        for (index, param) in params.iter().enumerate() {
            let column =
                c_int::try_from(index + 1).map_err(|_| rusqlite::Error::InvalidParameterCount(index + 1, 0))?;
            // SAFETY: `stmt` is live; a text is read in place until `execute` clears the bindings,
            // and `params` borrows it for at least that long.
            let rc = unsafe {
                match *param {
                    Param::Null => ffi::sqlite3_bind_null(stmt, column),
                    Param::Int(value) => ffi::sqlite3_bind_int64(stmt, column, value),
                    Param::Real(value) => ffi::sqlite3_bind_double(stmt, column, value),
                    Param::Text(text) => {
                        let len = c_int::try_from(text.len()).map_err(|_| {
                            rusqlite::Error::ToSqlConversionFailure("a text parameter longer than 2 GiB".into())
                        })?;
                        ffi::sqlite3_bind_text(stmt, column, text.as_ptr().cast(), len, ffi::SQLITE_STATIC())
                    }
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(error(self.db, rc));
            }
        }
        // SAFETY: every parameter is bound to live data.
        match unsafe { ffi::sqlite3_step(stmt) } {
            // SAFETY: the connection is live; its change count is the finished statement's.
            ffi::SQLITE_DONE => Ok(usize::try_from(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }).unwrap_or(0)),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(self.db, rc)),
        }
    }
}

impl Drop for StaticStatement {
    fn drop(&mut self) {
        // SAFETY: the statement is live and never used again.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's error for result code `rc`, with its message.
fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> rusqlite::Error {
    // SAFETY: the connection is live; its message is a NUL-terminated string SQLite owns, copied
    // here before anything else runs on the connection.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }.to_string_lossy().into_owned();
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER NOT NULL, r REAL)").unwrap();
        conn.execute_batch("INSERT INTO t VALUES ('a', NULL, 0, NULL), ('b', NULL, 0, NULL)").unwrap();
        conn
    }

    #[test]
    fn binds_in_place_and_counts_changed_rows() {
        let conn = table();
        let mut update = StaticStatement::prepare(&conn, "UPDATE t SET v = ?2, n = ?3, r = ?4 WHERE k = ?1").unwrap();
        for round in 0..3 {
            // A fresh String each round, dropped after the call: nothing may keep pointing at it.
            let value = format!("value {round}");
            let changed =
                update.execute(&[Param::Text("a"), Param::Text(&value), Param::Int(round), Param::Real(0.5)]).unwrap();
            assert_eq!(changed, 1);
        }
        assert_eq!(update.execute(&[Param::Text("none"), Param::Null, Param::Int(1), Param::Null]).unwrap(), 0);
        let row: (String, i64, f64) = conn
            .query_row("SELECT v, n, r FROM t WHERE k = 'a'", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        assert_eq!(row, ("value 2".to_owned(), 2, 0.5));
    }

    #[test]
    fn errors_carry_sqlite_messages_and_leave_the_statement_usable() {
        let conn = table();
        assert!(StaticStatement::prepare(&conn, "UPDATE nowhere SET v = 1").is_err());
        let mut update = StaticStatement::prepare(&conn, "UPDATE t SET n = ?2 WHERE k = ?1").unwrap();
        let err = update.execute(&[Param::Text("a"), Param::Null]).unwrap_err();
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        assert_eq!(update.execute(&[Param::Text("a"), Param::Int(7)]).unwrap(), 1);
        // A step after the bindings were cleared binds NULL, never a stale pointer.
        assert!(update.execute(&[Param::Text("a")]).is_err(), "n = NULL is refused");
    }
}
