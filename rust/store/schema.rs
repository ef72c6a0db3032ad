//! Table definitions and forward migrations. The schema version lives in `PRAGMA user_version`;
//! `MIGRATIONS[i]` upgrades a file from version `i` to `i + 1`, so a new version appends one entry
//! and never edits an old one.
use rusqlite::{Connection, OptionalExtension};

use crate::error::{CoreError, CoreResult};

/// v1: taskflow's three tables, plus the owner lease of a flow detail.
const V1: &str = "
CREATE TABLE logbooks (
    uuid        TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    meta        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL
);
CREATE TABLE flowdetails (
    uuid        TEXT PRIMARY KEY NOT NULL,
    parent_uuid TEXT NOT NULL REFERENCES logbooks(uuid) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    state       TEXT,
    meta        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL,
    owner       TEXT,
    lease_until REAL
);
CREATE INDEX flowdetails_parent ON flowdetails(parent_uuid);
CREATE TABLE atomdetails (
    uuid           TEXT PRIMARY KEY NOT NULL,
    parent_uuid    TEXT NOT NULL REFERENCES flowdetails(uuid) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    atom_type      TEXT NOT NULL CHECK (atom_type IN ('TASK_DETAIL', 'RETRY_DETAIL')),
    state          TEXT,
    intention      TEXT NOT NULL,
    results        TEXT NOT NULL,
    failure        TEXT,
    revert_results TEXT NOT NULL,
    revert_failure TEXT,
    version        TEXT,
    meta           TEXT NOT NULL,
    created_at     REAL NOT NULL,
    updated_at     REAL
);
-- Not UNIQUE(parent_uuid, name): orphaned details of removed atoms may share a name with new ones.
CREATE INDEX atomdetails_parent ON atomdetails(parent_uuid);
";

/// v2: what resuming across code changes needs per atom detail (`crate::resume`), kept beside
/// the detail rather than in its `meta` so that `meta` stays exactly what `TaskFlow` writes: who
/// provided the atom's inputs and how to revert it once its code is gone (see
/// `store::ResumeRecord`). NULL until the atom first completes.
const V2: &str = "ALTER TABLE atomdetails ADD COLUMN resume TEXT;";

/// v3: the fencing epoch of a flow detail's lease: raised each time the lease changes hands, and
/// checked (with the owner) by every write of an owned flow, so an owner that lost its lease can
/// never overwrite its successor's state.
const V3: &str = "ALTER TABLE flowdetails ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;";

/// v4: room a fresh atom row holds for what its run adds (see `store::sqlite::ROW_RESERVE`),
/// given back (set to NULL) by the atom's first transition. NULL in rows written whole.
const V4: &str = "ALTER TABLE atomdetails ADD COLUMN reserve BLOB;";

/// `MIGRATIONS[i]` takes a file from schema version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The newest schema version this code writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Tables and the columns the store reads and writes; `validate` checks they are all there.
pub(crate) const TABLE_COLUMNS: &[(&str, &str)] = &[
    ("logbooks", "uuid, name, meta, created_at, updated_at"),
    ("flowdetails", "uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until, lease_epoch"),
    (
        "atomdetails",
        "uuid, parent_uuid, name, atom_type, state, intention, results, failure, revert_results, \
         revert_failure, version, meta, created_at, updated_at, resume, reserve",
    ),
];

/// Reads the schema version of an open connection.
pub(crate) fn read_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Refuses a schema this code does not know.
pub(crate) fn check_not_newer(version: i64, label: &str) -> CoreResult<()> {
    if version > LATEST_VERSION {
        return Err(CoreError::Storage(format!(
            "store '{label}' was written by a newer ferroflow (schema v{version}, this version knows up to \
             v{LATEST_VERSION}); upgrade ferroflow"
        )));
    }
    if version < 0 {
        return Err(CoreError::Storage(format!("store '{label}' has an invalid schema version {version}")));
    }
    Ok(())
}

/// Brings the schema up to [`LATEST_VERSION`] in one immediate transaction and returns the version.
///
/// The version is read again inside the transaction, so two processes opening a new file at once
/// migrate it exactly once.
pub(crate) fn migrate(conn: &mut Connection, label: &str) -> CoreResult<i64> {
    let failed = |e: rusqlite::Error| CoreError::Storage(format!("store '{label}': schema upgrade failed: {e}"));
    let found = read_version(conn).map_err(failed)?;
    check_not_newer(found, label)?;
    if found == LATEST_VERSION {
        return Ok(LATEST_VERSION);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    let found = read_version(&tx).map_err(failed)?;
    check_not_newer(found, label)?;
    if found == 0 {
        refuse_foreign_tables(&tx, label)?;
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| {
            CoreError::Storage(format!("store '{label}': migration from schema v{from} to v{} failed: {e}", from + 1))
        })?;
    }
    // PRAGMA takes no bound parameters; the value is our own integer constant.
    tx.execute_batch(&format!("PRAGMA user_version = {LATEST_VERSION}")).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(LATEST_VERSION)
}

/// Decides, reading only, whether the file of `conn` is a ferroflow store, and returns its schema
/// version (`1..=LATEST_VERSION`). Anything else is refused with [`CoreError::Storage`] naming the
/// file: a newer schema, a database without ferroflow's schema version (another application's, or
/// a `TaskFlow` `SQLAlchemy` one), or one with a version but without ferroflow's tables.
pub(crate) fn recognise(conn: &Connection, label: &str) -> CoreResult<i64> {
    let failed =
        |e: rusqlite::Error| CoreError::Storage(format!("cannot open store '{label}': reading it failed: {e}"));
    let version = read_version(conn).map_err(failed)?;
    check_not_newer(version, label)?;
    if version == 0 {
        refuse_foreign_tables(conn, label)?;
        return Err(CoreError::Storage(format!(
            "cannot open store '{label}': it is a SQLite database without a ferroflow schema (another application's?) \
             and was left untouched; ferroflow creates a store only where no file exists, so choose another path"
        )));
    }
    for (table, _) in TABLE_COLUMNS {
        let found = conn
            .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |_| Ok(()))
            .optional()
            .map_err(failed)?;
        if found.is_none() {
            return Err(CoreError::Storage(format!(
                "cannot open store '{label}': it records schema version {version} but has no '{table}' table, so it \
                 is not a ferroflow store (another application's SQLite database?); it was left untouched"
            )));
        }
    }
    Ok(version)
}

/// Lets a read-only connection read a store of an older schema as the latest one, without
/// upgrading the file: each table that lacks columns is shadowed by a `TEMP` view (unqualified
/// names find the temp schema first) adding them with their default value. This relies on every
/// migration only adding columns, which `MIGRATIONS` keeps to.
pub(crate) fn view_as_latest(conn: &Connection, label: &str) -> CoreResult<()> {
    let failed = |e: rusqlite::Error| {
        CoreError::Storage(format!("store '{label}': reading its older schema as v{LATEST_VERSION} failed: {e}"))
    };
    let mut latest = Connection::open_in_memory().map_err(failed)?;
    migrate(&mut latest, ":memory:")?;
    conn.execute_batch("PRAGMA temp_store = MEMORY").map_err(failed)?;
    for (table, _) in TABLE_COLUMNS {
        let have = columns(conn, table).map_err(failed)?;
        let want = columns(&latest, table).map_err(failed)?;
        if want.iter().all(|(name, _)| have.iter().any(|(column, _)| column == name)) {
            continue;
        }
        let select: Vec<String> = want
            .iter()
            .map(|(name, default)| {
                if have.iter().any(|(column, _)| column == name) {
                    format!("\"{name}\"")
                } else {
                    format!("{} AS \"{name}\"", default.as_deref().unwrap_or("NULL"))
                }
            })
            .collect();
        // `rowid` too: the store orders rows by it.
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW \"{table}\" AS SELECT rowid AS rowid, {} FROM main.\"{table}\"",
            select.join(", ")
        ))
        .map_err(failed)?;
    }
    Ok(())
}

/// `(name, default value as SQL)` of each column of `main.table`.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, Option<String>)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA main.table_info(\"{table}\")"))?;
    let rows = stmt.query_map([], |row| Ok((row.get(1)?, row.get(4)?)))?;
    rows.collect()
}

/// A file with our table names but no schema version was not written by ferroflow (a taskflow
/// `SQLAlchemy` database, for instance): refuse it rather than mix schemas.
fn refuse_foreign_tables(conn: &Connection, label: &str) -> CoreResult<()> {
    let clash: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('logbooks', 'flowdetails', 'atomdetails')",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| CoreError::Storage(format!("store '{label}': reading the schema failed: {e}")))?;
    match clash {
        Some(table) => Err(CoreError::Storage(format!(
            "store '{label}' already has a '{table}' table but no ferroflow schema version; it was not written \
             by ferroflow (a TaskFlow SQLAlchemy database?) and is left untouched"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_a_new_database_creates_every_table_at_the_latest_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, "mem").unwrap(), LATEST_VERSION);
        assert_eq!(read_version(&conn).unwrap(), LATEST_VERSION);
        for (table, columns) in TABLE_COLUMNS {
            conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0")).unwrap();
        }
        // Running it again is a no-op, not a "table already exists" error.
        assert_eq!(migrate(&mut conn, "mem").unwrap(), LATEST_VERSION);
    }

    #[test]
    fn a_v1_file_gets_the_resume_column_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(V1).unwrap();
        tx.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
             INSERT INTO flowdetails VALUES ('f', 'b', 'f', NULL, '{}', 0, NULL, NULL, NULL);
             INSERT INTO atomdetails VALUES ('a', 'f', 'a', 'TASK_DETAIL', 'SUCCESS', 'EXECUTE', '1', NULL, 'null',
                                             NULL, '1.0', '{}', 0, NULL);",
        )
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(migrate(&mut conn, "old.db").unwrap(), LATEST_VERSION);
        let (state, resume): (String, Option<String>) = conn
            .query_row("SELECT state, resume FROM atomdetails WHERE uuid = 'a'", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((state.as_str(), resume), ("SUCCESS", None));
        // v3: a flow saved before fencing starts at epoch 0.
        let epoch: i64 =
            conn.query_row("SELECT lease_epoch FROM flowdetails WHERE uuid = 'f'", [], |r| r.get(0)).unwrap();
        assert_eq!(epoch, 0);
        // v4: a row saved before the reserve holds none.
        let reserve: Option<Vec<u8>> =
            conn.query_row("SELECT reserve FROM atomdetails WHERE uuid = 'a'", [], |r| r.get(0)).unwrap();
        assert_eq!(reserve, None);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_unchanged() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn, "x.db").unwrap_err();
        assert_eq!(
            err,
            CoreError::Storage(
                "store 'x.db' was written by a newer ferroflow (schema v99, this version knows up to v4); upgrade \
                 ferroflow"
                    .into()
            )
        );
        assert_eq!(read_version(&conn).unwrap(), 99);
    }

    #[test]
    fn unversioned_taskflow_tables_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE logbooks (uuid TEXT PRIMARY KEY)").unwrap();
        let err = migrate(&mut conn, "tf.db").unwrap_err();
        assert!(
            matches!(&err, CoreError::Storage(m) if m.contains("'logbooks' table") && m.contains("tf.db")),
            "{err}"
        );
        assert_eq!(read_version(&conn).unwrap(), 0);
    }

    #[test]
    fn atom_type_is_checked_by_the_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "mem").unwrap();
        conn.execute_batch(
            "INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
             INSERT INTO flowdetails VALUES ('f', 'b', 'f', NULL, '{}', 0, NULL, NULL, NULL, 0);",
        )
        .unwrap();
        let insert = |atom_type: &str| {
            conn.execute(
                "INSERT INTO atomdetails (uuid, parent_uuid, name, atom_type, intention, results, revert_results, \
                 meta, created_at) VALUES ('a', 'f', 'a', ?1, 'EXECUTE', 'null', 'null', '{}', 0)",
                [atom_type],
            )
        };
        assert!(insert("BOGUS").is_err());
        assert!(insert("TASK_DETAIL").is_ok(), "only the type is wrong above");
    }
}
