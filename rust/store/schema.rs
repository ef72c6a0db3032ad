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

/// v5: an atom detail names its flow by the flow detail's integer key `flow_id` instead of the
/// flow's 36-character uuid, in its row and in its index (a new 100,000-atom flow's rows go in
/// about 13% faster, and the file is about a quarter smaller): `flowdetails` gets `id INTEGER PRIMARY KEY` (a
/// rowid alias, which VACUUM never renumbers) beside its `uuid`, still unique. SQLite cannot
/// change a column or a foreign key in place, so both tables are rebuilt (SQLite's "other kinds
/// of table schema changes"): `migrate` runs this with foreign keys off (a `DROP TABLE
/// flowdetails` would otherwise delete every atom row) and checks them before it commits. Every
/// flow keeps its rowid as its id and every atom row its rowid (the store reads a flow's rows in
/// rowid order, and keeps rowid hints).
const V5: &str = "
CREATE TABLE flowdetails_v5 (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    parent_uuid TEXT NOT NULL REFERENCES logbooks(uuid) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    state       TEXT,
    meta        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL,
    owner       TEXT,
    lease_until REAL,
    lease_epoch INTEGER NOT NULL DEFAULT 0
);
INSERT INTO flowdetails_v5 (id, uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until,
                            lease_epoch)
    SELECT rowid, uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until, lease_epoch
    FROM flowdetails ORDER BY rowid;
CREATE TABLE atomdetails_v5 (
    uuid           TEXT PRIMARY KEY NOT NULL,
    flow_id        INTEGER NOT NULL REFERENCES flowdetails(id) ON DELETE CASCADE,
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
    updated_at     REAL,
    resume         TEXT,
    reserve        BLOB
);
-- (an atom whose flow detail is missing gets no key: its NOT NULL refuses the upgrade, which
-- `migrate` checks for first to say so plainly)
INSERT INTO atomdetails_v5 (rowid, uuid, flow_id, name, atom_type, state, intention, results, failure,
                            revert_results, revert_failure, version, meta, created_at, updated_at, resume, reserve)
    SELECT a.rowid, a.uuid, f.rowid, a.name, a.atom_type, a.state, a.intention, a.results, a.failure,
           a.revert_results, a.revert_failure, a.version, a.meta, a.created_at, a.updated_at, a.resume, a.reserve
    FROM atomdetails AS a LEFT JOIN flowdetails AS f ON f.uuid = a.parent_uuid ORDER BY a.rowid;
DROP TABLE atomdetails;
DROP TABLE flowdetails;
ALTER TABLE flowdetails_v5 RENAME TO flowdetails;
ALTER TABLE atomdetails_v5 RENAME TO atomdetails;
CREATE INDEX flowdetails_parent ON flowdetails(parent_uuid);
-- Holds (flow_id, rowid): a flow's rows are read in rowid order without a sort.
-- Not UNIQUE(flow_id, name): orphaned details of removed atoms may share a name with new ones.
CREATE INDEX atomdetails_flow ON atomdetails(flow_id);
";

/// `MIGRATIONS[i]` takes a file from schema version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The first version whose migration rebuilds tables (and so runs with foreign keys off).
const FIRST_REBUILD: i64 = 5;

/// The newest schema version this code writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Tables and the columns the store reads and writes; `validate` checks they are all there.
pub(crate) const TABLE_COLUMNS: &[(&str, &str)] = &[
    ("logbooks", "uuid, name, meta, created_at, updated_at"),
    (
        "flowdetails",
        "id, uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until, lease_epoch",
    ),
    (
        "atomdetails",
        "uuid, flow_id, name, atom_type, state, intention, results, failure, revert_results, \
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
/// migrate it exactly once. An upgrade that rebuilds tables (v5) runs with foreign keys off (they
/// cannot change inside a transaction, and dropping the old `flowdetails` would cascade to every
/// atom row), checks them with `PRAGMA foreign_key_check` before it commits, and turns them back
/// to what they were, whatever the outcome.
pub(crate) fn migrate(conn: &mut Connection, label: &str) -> CoreResult<i64> {
    let failed = |e: rusqlite::Error| CoreError::Storage(format!("store '{label}': schema upgrade failed: {e}"));
    let found = read_version(conn).map_err(failed)?;
    check_not_newer(found, label)?;
    if found == LATEST_VERSION {
        return Ok(LATEST_VERSION);
    }
    if found >= FIRST_REBUILD {
        return migrate_in_transaction(conn, label);
    }
    let keys: bool = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0)).map_err(failed)?;
    if keys {
        conn.pragma_update(None, "foreign_keys", false).map_err(failed)?;
    }
    let migrated = migrate_in_transaction(conn, label);
    if keys {
        // (after the transaction ended, committed or rolled back: the pragma is a no-op inside one)
        let restored = conn.pragma_update(None, "foreign_keys", true).map_err(failed);
        let on = restored
            .and_then(|()| conn.pragma_query_value(None, "foreign_keys", |row| row.get::<_, bool>(0)).map_err(failed));
        match on {
            Ok(true) => {}
            Ok(false) => {
                return Err(CoreError::Storage(format!(
                    "store '{label}': foreign keys could not be turned back on after the schema upgrade"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    migrated
}

/// The transaction of [`migrate`] (foreign keys already off if it rebuilds tables).
fn migrate_in_transaction(conn: &mut Connection, label: &str) -> CoreResult<i64> {
    let failed = |e: rusqlite::Error| CoreError::Storage(format!("store '{label}': schema upgrade failed: {e}"));
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    let found = read_version(&tx).map_err(failed)?;
    check_not_newer(found, label)?;
    if found == 0 {
        refuse_foreign_tables(&tx, label)?;
    }
    let rebuilds = found < FIRST_REBUILD;
    if rebuilds && found > 0 {
        // Rows whose parent is missing (written with foreign keys off) would be lost or refused
        // half-way by the rebuild: name them instead.
        refuse_dangling(&tx, label, found)?;
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| {
            CoreError::Storage(format!("store '{label}': migration from schema v{from} to v{} failed: {e}", from + 1))
        })?;
    }
    if rebuilds {
        refuse_dangling(&tx, label, found)?;
    }
    // PRAGMA takes no bound parameters; the value is our own integer constant.
    tx.execute_batch(&format!("PRAGMA user_version = {LATEST_VERSION}")).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(LATEST_VERSION)
}

/// Refuses the upgrade (the transaction is rolled back, the file left as it was) when
/// `PRAGMA foreign_key_check` finds a row whose parent row is missing.
fn refuse_dangling(conn: &Connection, label: &str, found: i64) -> CoreResult<()> {
    let failed = |e: rusqlite::Error| CoreError::Storage(format!("store '{label}': schema upgrade failed: {e}"));
    let mut check = conn.prepare("PRAGMA foreign_key_check").map_err(failed)?;
    let dangling: Vec<(String, Option<i64>, String)> = check
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(failed)?
        .collect::<rusqlite::Result<_>>()
        .map_err(failed)?;
    let Some((table, rowid, parent)) = dangling.first() else {
        return Ok(());
    };
    let rowid = rowid.map_or_else(|| "?".to_owned(), |r| r.to_string());
    Err(CoreError::Storage(format!(
        "store '{label}': the upgrade from schema v{found} to v{LATEST_VERSION} was refused and the file left \
         unchanged: {} row(s) refer to a missing parent row (the first: {table} row {rowid}, whose {parent} row \
         is missing)",
        dangling.len()
    )))
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
/// names find the temp schema first) adding them. A column an older migration added reads as its
/// default value; v5's keys are computed: `flowdetails.id` is the flow's rowid (which v5 keeps
/// as its id) and `atomdetails.flow_id` the rowid of the flow detail its `parent_uuid` names (a
/// join on `flowdetails`' uuid, whose index keeps a flow's rows found through
/// `atomdetails_parent`, in rowid order). Each view exposes its table's `rowid` too.
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
        let has = |name: &str| have.iter().any(|(column, _)| column == name);
        if want.iter().all(|(name, _)| has(name)) {
            continue;
        }
        let mut from = format!("main.\"{table}\" AS t");
        let select: Vec<String> = want
            .iter()
            .map(|(name, default)| match (*table, name.as_str()) {
                _ if has(name) => format!("t.\"{name}\""),
                ("flowdetails", "id") => "t.rowid AS id".to_owned(),
                ("atomdetails", "flow_id") => {
                    from.push_str(" LEFT JOIN main.flowdetails AS f ON f.uuid = t.parent_uuid");
                    "f.rowid AS flow_id".to_owned()
                }
                _ => format!("{} AS \"{name}\"", default.as_deref().unwrap_or("NULL")),
            })
            .collect();
        // `rowid` too: the store orders rows by it.
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW \"{table}\" AS SELECT t.rowid AS rowid, {} FROM {from}",
            select.join(", ")
        ))
        .map_err(failed)?;
    }
    Ok(())
}

/// Makes a new database a store of schema `version` exactly as that version's code made it (for
/// tests of upgrades and of older files).
#[cfg(test)]
pub(crate) fn create_at(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    for sql in &MIGRATIONS[..usize::try_from(version).unwrap()] {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {version}"))
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
                "store 'x.db' was written by a newer ferroflow (schema v99, this version knows up to v5); upgrade \
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
             INSERT INTO flowdetails VALUES (7, 'f', 'b', 'f', NULL, '{}', 0, NULL, NULL, NULL, 0);",
        )
        .unwrap();
        let insert = |atom_type: &str| {
            conn.execute(
                "INSERT INTO atomdetails (uuid, flow_id, name, atom_type, intention, results, revert_results, \
                 meta, created_at) VALUES ('a', 7, 'a', ?1, 'EXECUTE', 'null', 'null', '{}', 0)",
                [atom_type],
            )
        };
        assert!(insert("BOGUS").is_err());
        assert!(insert("TASK_DETAIL").is_ok(), "only the type is wrong above");
    }
    /// A v4 file: logbook `b`; flows `f` (leased by `me` at epoch 3) and `g` at rowids 2 and 3
    /// (a deleted flow left rowid 1 free); atoms at rowids out of insertion order, with resume
    /// records and reserves; foreign keys on, as the store opens files.
    fn v4_file() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        create_at(&conn, 4).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
             INSERT INTO flowdetails VALUES ('x', 'b', 'x', NULL, '{}', 0, NULL, NULL, NULL, 0);
             INSERT INTO flowdetails VALUES ('f', 'b', 'f', 'RUNNING', '{\"m\": 1}', 1.5, 2.5, 'me', 99.5, 3);
             INSERT INTO flowdetails VALUES ('g', 'b', 'g', NULL, '{}', 4, NULL, NULL, NULL, 0);
             DELETE FROM flowdetails WHERE uuid = 'x';
             INSERT INTO atomdetails (rowid, uuid, parent_uuid, name, atom_type, state, intention, results, failure,
                                      revert_results, revert_failure, version, meta, created_at, updated_at, resume,
                                      reserve)
             VALUES (40, 'f-a0', 'f', 'a0', 'TASK_DETAIL', 'SUCCESS', 'EXECUTE', '1', NULL, 'null', NULL, '1.0',
                     '{}', 0, 1, 'r0', NULL),
                    (12, 'g-a0', 'g', 'a0', 'TASK_DETAIL', 'PENDING', 'EXECUTE', 'null', NULL, 'null', NULL, NULL,
                     '{}', 0, NULL, NULL, zeroblob(32)),
                    (41, 'f-a1', 'f', 'a1', 'RETRY_DETAIL', 'FAILURE', 'REVERT', 'null', '{\"f\": 1}', '2',
                     '{\"r\": 1}', '2.0', '{\"p\": 0.5}', 0, 2, NULL, zeroblob(32)),
                    (7, 'f-a2', 'f', 'a2', 'TASK_DETAIL', NULL, 'EXECUTE', 'null', NULL, 'null', NULL, NULL, '{}', 0,
                     NULL, NULL, NULL);",
        )
        .unwrap();
        conn
    }

    /// Every row of both tables, the flow of an atom named by its uuid: what an upgrade keeps.
    fn rows(conn: &Connection, flows: &str, atoms: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [flows, atoms] {
            let mut stmt = conn.prepare(sql).unwrap();
            let width = stmt.column_count();
            let mut query = stmt.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let values: Vec<String> = (0..width).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
                out.push(values.join("|"));
            }
        }
        out
    }

    fn pragma_rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_v4_file_is_rebuilt_to_v5_keeping_every_row_its_rowid_its_flow_and_the_leases() {
        let mut conn = v4_file();
        let flow_columns =
            "uuid, parent_uuid, name, state, meta, created_at, updated_at, owner, lease_until, lease_epoch";
        let atom_columns = "name, atom_type, state, intention, results, failure, revert_results, revert_failure, \
                            version, meta, created_at, updated_at, resume, reserve";
        let before = rows(
            &conn,
            &format!("SELECT rowid, {flow_columns} FROM flowdetails ORDER BY rowid"),
            &format!("SELECT rowid, uuid, parent_uuid, {atom_columns} FROM atomdetails ORDER BY rowid"),
        );
        assert_eq!(migrate(&mut conn, "v4.db").unwrap(), LATEST_VERSION);
        assert_eq!(read_version(&conn).unwrap(), 5);
        let after = rows(
            &conn,
            &format!("SELECT id, {flow_columns} FROM flowdetails ORDER BY id"),
            &format!(
                "SELECT a.rowid, a.uuid, f.uuid, {} FROM atomdetails AS a JOIN flowdetails AS f ON f.id = a.flow_id
                 ORDER BY a.rowid",
                atom_columns.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
            ),
        );
        assert_eq!(after, before);
        assert_eq!(after.len(), 2 + 4);
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM flowdetails ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, [2, 3], "each flow keeps its rowid as its id");
        for (table, columns) in TABLE_COLUMNS {
            conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0")).unwrap();
        }
        assert!(conn.prepare("SELECT parent_uuid FROM atomdetails").is_err(), "the uuid column is gone");
        let mut indexes = pragma_rows(&conn, "SELECT type, tbl_name, sql, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name");
        indexes.sort();
        assert_eq!(indexes, ["atomdetails_flow", "flowdetails_parent"]);
        assert!(conn.prepare("PRAGMA foreign_key_check").unwrap().query([]).unwrap().next().unwrap().is_none());
        let keys: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(keys, "foreign keys are on again after the upgrade");
        // A flow's rows are read through the new index, in rowid order without a sort.
        let plan = pragma_rows(
            &conn,
            "EXPLAIN QUERY PLAN SELECT uuid FROM atomdetails
             WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = 'f') ORDER BY rowid",
        )
        .join("\n");
        assert!(plan.contains("atomdetails_flow") && !plan.contains("TEMP B-TREE"), "{plan}");
        // VACUUM keeps the keys; deleting a flow still deletes its atoms, and only its.
        conn.execute_batch("VACUUM").unwrap();
        assert_eq!(
            conn.query_row("SELECT id FROM flowdetails WHERE uuid = 'g'", [], |r| r.get::<_, i64>(0)).unwrap(),
            3
        );
        conn.execute("DELETE FROM flowdetails WHERE uuid = 'f'", []).unwrap();
        let left: Vec<String> = conn
            .prepare("SELECT uuid FROM atomdetails ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, ["g-a0"]);
        // And an atom naming no flow is refused by its foreign key.
        let orphan = conn.execute(
            "INSERT INTO atomdetails (uuid, flow_id, name, atom_type, intention, results, revert_results, meta,
                                      created_at) VALUES ('o', 2, 'o', 'TASK_DETAIL', 'EXECUTE', 'null', 'null', '{}', 0)",
            [],
        );
        assert!(orphan.is_err());
    }

    #[test]
    fn rows_whose_parent_is_missing_refuse_the_upgrade_and_leave_the_file_at_v4() {
        let mut conn = v4_file();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO atomdetails (uuid, parent_uuid, name, atom_type, intention, results, revert_results, meta,
                                      created_at) VALUES ('lost', 'gone', 'l', 'TASK_DETAIL', 'EXECUTE', 'null',
                                      'null', '{}', 0);
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
        let err = migrate(&mut conn, "v4.db").unwrap_err();
        assert!(
            matches!(&err, CoreError::Storage(m) if m.contains("'v4.db'") && m.contains("refused")
                && m.contains("1 row(s)") && m.contains("atomdetails")),
            "{err}"
        );
        assert_eq!(read_version(&conn).unwrap(), 4);
        let atoms: i64 =
            conn.query_row("SELECT count(*) FROM atomdetails WHERE parent_uuid IS NOT NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(atoms, 5, "the old table is left as it was");
        let keys: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(keys, "foreign keys are on again after a refused upgrade");
    }

    /// A read-only handle reads a v4 file through views with v5's keys, without changing it.
    #[test]
    fn the_views_of_a_v4_file_have_the_v5_keys() {
        let conn = v4_file();
        view_as_latest(&conn, "v4.db").unwrap();
        for (table, columns) in TABLE_COLUMNS {
            conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0")).unwrap();
        }
        let flows: Vec<(i64, String)> = conn
            .prepare("SELECT id, uuid FROM flowdetails ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(flows, [(2, "f".to_owned()), (3, "g".to_owned())]);
        let atoms: Vec<(i64, String)> = conn
            .prepare(
                "SELECT rowid, uuid FROM atomdetails WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = 'f')
                 ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(atoms, [(7, "f-a2".to_owned()), (40, "f-a0".to_owned()), (41, "f-a1".to_owned())]);
        // Through the old uuid index, in rowid order, without a sort or a scan of every atom.
        let plan = pragma_rows(
            &conn,
            "EXPLAIN QUERY PLAN SELECT uuid FROM atomdetails
             WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = 'f') ORDER BY rowid",
        )
        .join("\n");
        assert!(plan.contains("atomdetails_parent") && !plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(read_version(&conn).unwrap(), 4);
    }
}
