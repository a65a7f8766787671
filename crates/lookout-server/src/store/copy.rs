//! Copying an embedded store into PostgreSQL: what `lookout migrate` runs.
//!
//! [`copy_store`] reads every table of the SQLite file (the list and each table's columns
//! come from the file itself, so a table needs no code here) and writes it into a PostgreSQL
//! database that no server has used yet, keeping every id. Everything is written in one
//! PostgreSQL transaction, in batches of [`BATCH_ROWS`] rows per `INSERT`, parents before
//! children; a copy that fails for any reason leaves the target as empty as it found it, so
//! it can be run again. Before committing, each identity sequence is set past the largest id
//! copied (and past what SQLite's `AUTOINCREMENT` had handed out), and each table's row count
//! is compared with the source's.
//!
//! The source is read in one SQLite read transaction: a consistent snapshot, even if a server
//! is still writing (stop it first all the same, or what it accepts after the snapshot stays
//! behind). The inbox file's envelopes that the digest has not reached yet (rows after the
//! digest cursor of that snapshot) go into PostgreSQL's shared inbox, undigested, so that no
//! envelope a client was answered 200 for is lost in the move: the first node started on the
//! database digests them.

use super::sql::{Backend, Conn, OptionalExtension, PgConn, Row, Value, off_runtime, params};
use super::{Result, Store, StoreError, inbox};
use crate::config::Synchronous;
use postgres::types::ToSql;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rows per `INSERT` (one statement of column arrays, `INSERT … SELECT FROM unnest(…)`).
pub const BATCH_ROWS: usize = 5_000;

/// Bytes of values after which a batch is sent before it has [`BATCH_ROWS`] rows (events
/// carry their payloads).
const BATCH_BYTES: usize = 16 << 20;

/// Tables the PostgreSQL schema fills as it creates them (one cursor row each); the
/// source's rows replace theirs.
const SEEDED: &[&str] = &["digest_cursor", "alert_cursor"];

/// The advisory lock a copy holds for its transaction, so that two copies into one database
/// run one after the other (and the second finds the target not empty). "MIGR" in ASCII.
const COPY_LOCK: i64 = 0x4d49_4752;

/// One table copied and its row count, the same in the source and in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table's name.
    pub table: String,
    /// Rows in the source, copied and counted again in the target.
    pub rows: u64,
}

/// What [`copy_store`] copied.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Every table of the embedded store, in the order copied (parents first), each with its
    /// row count, verified equal in the source and the target.
    pub tables: Vec<TableCount>,
    /// Envelopes accepted but not yet digested (inbox rows after the digest cursor), now in
    /// PostgreSQL's shared inbox as undigested: the first node to start digests them.
    pub inbox_undigested: u64,
    /// Envelopes the embedded inbox still kept after digesting them (kept for inspection
    /// for `ingest.inbox_retention_secs`). What they held is in the tables; they are not
    /// copied.
    pub inbox_digested_left: u64,
    /// The digest cursor copied (the last inbox row digested).
    pub digest_cursor: i64,
    /// The alert cursor copied (the last alert feed entry the alert stage handled).
    pub alert_cursor: i64,
    /// How long the copy took, verification included.
    pub elapsed: Duration,
}

impl CopyReport {
    /// Rows copied, over every table (the inbox not included).
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Copy the embedded store `from` into the PostgreSQL store `to` (opened with
/// [`Store::open_postgres`], which creates the schema) and verify every table's row count.
///
/// `progress` is called with a table's name and the rows copied from it so far, after each
/// batch and once more when the table is done.
///
/// Refused with [`StoreError::Invalid`], before anything is written, when `from` is not an
/// embedded store, when `to` is not PostgreSQL, or when the target already holds data (its
/// message names the tables and their rows): a database a server has run on is not empty
/// (the server creates its default project when it first starts). Runs in one transaction:
/// a failed copy leaves the target empty. Blocks; call it from a blocking thread.
pub fn copy_store(
    from: &Store,
    to: &Store,
    mut progress: impl FnMut(&str, u64),
) -> Result<CopyReport> {
    let started = Instant::now();
    let Some(data_dir) = from.data_dir() else {
        return Err(StoreError::Invalid(
            "the source of a copy must be an embedded (SQLite) store; this one is on PostgreSQL"
                .into(),
        ));
    };
    if to.backend() != Backend::Postgres {
        return Err(StoreError::Invalid(
            "the target of a copy must be a PostgreSQL database; this one is an embedded (SQLite) store"
                .into(),
        ));
    }

    // The source: one read transaction, so every table comes from the same moment.
    let source = from.db.reader()?;
    let snapshot = ReadSnapshot::begin(&source)?;
    let tables = source_tables(&source)?;
    let digest_cursor: i64 = source
        .query_row(
            "SELECT last_inbox_id FROM digest_cursor WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let alert_cursor: i64 = source
        .query_row("SELECT last_seq FROM alert_cursor WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0);
    // What AUTOINCREMENT handed out, which may be past the largest id left (the alert feed
    // is trimmed): new ids must not reuse those numbers.
    let mut floors = sqlite_sequences(&source)?;
    raise(&mut floors, "alert_feed", alert_cursor);

    let target = to.db.writer()?;
    let tx = target.begin()?;
    tx.query_row("SELECT pg_advisory_xact_lock(?1)", [COPY_LOCK], |_| Ok(()))?;
    let target_columns = target_columns(&tx)?;
    let plans = plan(&tables, &target_columns)?;
    refuse_unless_empty(&tx, &tables)?;
    for table in SEEDED {
        if target_columns.contains_key(*table) {
            tx.execute(&format!("DELETE FROM {}", quote(table)), [])?;
        }
    }

    let mut report = CopyReport {
        tables: Vec::with_capacity(tables.len()),
        inbox_undigested: 0,
        inbox_digested_left: 0,
        digest_cursor,
        alert_cursor,
        elapsed: Duration::ZERO,
    };
    let pg = postgres_of(&tx)?;
    for plan in &plans {
        let name = plan.table.as_str();
        let expected: i64 =
            source.query_row(&format!("SELECT COUNT(*) FROM {}", quote(name)), [], |r| {
                r.get(0)
            })?;
        progress(name, 0);
        let select = format!(
            "SELECT {} FROM {}",
            plan.columns
                .iter()
                .map(|(c, _)| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote(name)
        );
        let mut batch = Batch::prepare(pg, name, &plan.columns)?;
        let copied = copy_rows(&source, &select, [], pg, &mut batch, &mut progress)?;
        let written: i64 =
            tx.query_row(&format!("SELECT COUNT(*) FROM {}", quote(name)), [], |r| {
                r.get(0)
            })?;
        verify(name, expected, copied, written)?;
        report.tables.push(TableCount {
            table: plan.table.clone(),
            rows: copied,
        });
    }
    drop(snapshot);

    // The inbox: read after the snapshot, so it holds at least every row the snapshot's
    // digest cursor covers; the rows after the cursor are copied undigested, with their ids
    // (the cursor refers to them).
    let inbox_path = inbox::path(data_dir);
    if inbox_path.exists() {
        let inbox = Conn::Lite(inbox::open(data_dir, Synchronous::Normal)?);
        let inbox_snapshot = ReadSnapshot::begin(&inbox)?;
        let mut inbox_floors = sqlite_sequences(&inbox)?;
        raise(&mut inbox_floors, "inbox", digest_cursor);
        raise(
            &mut floors,
            "inbox",
            inbox_floors.get("inbox").copied().unwrap_or(0),
        );
        let expected: i64 = inbox.query_row(
            "SELECT COUNT(*) FROM inbox WHERE id > ?1",
            [digest_cursor],
            |r| r.get(0),
        )?;
        let left: i64 = inbox.query_row(
            "SELECT COUNT(*) FROM inbox WHERE id <= ?1",
            [digest_cursor],
            |r| r.get(0),
        )?;
        const COLUMNS: [&str; 8] = [
            "id",
            "project_id",
            "key_id",
            "received_at",
            "event_id",
            "item_types",
            "encoding",
            "envelope",
        ];
        let columns = COLUMNS
            .iter()
            .map(|c| {
                let kind = target_columns
                    .get("inbox")
                    .and_then(|t| t.column(c))
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "the PostgreSQL database has no column inbox.{c}"
                        ))
                    })?;
                Ok(((*c).to_owned(), kind))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut batch = Batch::prepare(pg, "inbox", &columns)?;
        let select = format!(
            "SELECT {} FROM inbox WHERE id > ?1 ORDER BY id",
            COLUMNS.join(", ")
        );
        progress("inbox", 0);
        let copied = copy_rows(
            &inbox,
            &select,
            [digest_cursor],
            pg,
            &mut batch,
            &mut progress,
        )?;
        drop(inbox_snapshot);
        let written: i64 = tx.query_row(
            "SELECT COUNT(*) FROM inbox WHERE digested_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        verify("inbox", expected, copied, written)?;
        report.inbox_undigested = copied;
        report.inbox_digested_left = u64::try_from(left).unwrap_or(0);
    }

    // Identity columns continue after the largest id copied, or what SQLite handed out.
    let copied_tables: Vec<&str> = report
        .tables
        .iter()
        .map(|t| t.table.as_str())
        .chain(std::iter::once("inbox"))
        .collect();
    for table in copied_tables {
        let Some(columns) = target_columns.get(table) else {
            continue;
        };
        for column in &columns.identity {
            let floor = floors.get(table).copied().unwrap_or(0);
            tx.query_row(
                &format!(
                    "SELECT setval(pg_get_serial_sequence(?1, ?2), GREATEST(COALESCE(MAX({col}), 0), ?3) + 1, false) FROM {t}",
                    col = quote(column),
                    t = quote(table)
                ),
                params![quote(table), column, floor],
                |_| Ok(()),
            )?;
        }
    }
    // The planner's statistics for what was just loaded.
    tx.execute_batch("ANALYZE")?;
    tx.commit()?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A read transaction on a SQLite connection (a snapshot in WAL mode), ended when dropped.
struct ReadSnapshot<'c>(&'c Conn);

impl<'c> ReadSnapshot<'c> {
    fn begin(conn: &'c Conn) -> Result<ReadSnapshot<'c>> {
        conn.execute_batch("BEGIN")?;
        Ok(ReadSnapshot(conn))
    }
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        // Nothing was written: ending it is all there is to do.
        if let Err(e) = self.0.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "ending the source's read transaction failed");
        }
    }
}

/// A table of the source: its columns, and the tables its foreign keys name.
#[derive(Debug)]
struct SourceTable {
    name: String,
    columns: Vec<String>,
    parents: Vec<String>,
}

/// The source's tables (SQLite's own left out), ordered so that every table comes after the
/// tables it references, and otherwise in the order they were created.
fn source_tables(source: &Conn) -> Result<Vec<SourceTable>> {
    let names: Vec<String> = source
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_>>()?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let columns: Vec<String> = source
            .prepare(&format!("PRAGMA table_info({})", quote(&name)))?
            .query_map([], |r| r.get(1))?
            .collect::<Result<_>>()?;
        let mut parents: Vec<String> = source
            .prepare(&format!("PRAGMA foreign_key_list({})", quote(&name)))?
            .query_map([], |r| r.get(2))?
            .collect::<Result<_>>()?;
        parents.retain(|p| *p != name);
        parents.dedup();
        tables.push(SourceTable {
            name,
            columns,
            parents,
        });
    }
    Ok(parents_first(tables))
}

/// `tables` with each after the tables it references (a stable topological order). Tables
/// in a cycle keep their order, after the others.
fn parents_first(mut pending: Vec<SourceTable>) -> Vec<SourceTable> {
    let mut ordered: Vec<SourceTable> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.parents.iter().all(|p| {
                ordered.iter().any(|o| o.name == *p) || !pending.iter().any(|q| q.name == *p)
            })
        });
        // A cycle (none ready): take the first as it is; PostgreSQL says if a row is orphaned.
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered
}

/// Each `sqlite_sequence` entry: the largest id `AUTOINCREMENT` has handed out per table.
fn sqlite_sequences(conn: &Conn) -> Result<HashMap<String, i64>> {
    let exists: bool = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(HashMap::new());
    }
    conn.prepare("SELECT name, seq FROM sqlite_sequence")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn raise(floors: &mut HashMap<String, i64>, table: &str, at_least: i64) {
    let floor = floors.entry(table.to_owned()).or_insert(0);
    *floor = (*floor).max(at_least);
}

/// How a PostgreSQL column's values are sent: the array type of one `unnest` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Text,
    Bytes,
}

impl Kind {
    /// The kind for a PostgreSQL type name (`pg_type.typname`), if Lookout's schema uses it.
    fn of(typname: &str) -> Option<Kind> {
        Some(match typname {
            "int8" | "int4" | "int2" => Kind::Int,
            "float8" | "float4" | "numeric" => Kind::Real,
            "text" | "varchar" | "bpchar" => Kind::Text,
            "bytea" => Kind::Bytes,
            _ => return None,
        })
    }

    fn array(self) -> &'static str {
        match self {
            Kind::Int => "bigint[]",
            Kind::Real => "double precision[]",
            Kind::Text => "text[]",
            Kind::Bytes => "bytea[]",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Real => "a number",
            Kind::Text => "a text",
            Kind::Bytes => "a bytes",
        }
    }
}

/// A table of the target: its columns' kinds (or type names Lookout does not copy into),
/// and its identity columns.
#[derive(Debug, Default)]
struct TargetTable {
    columns: HashMap<String, std::result::Result<Kind, String>>,
    identity: Vec<String>,
}

impl TargetTable {
    fn column(&self, name: &str) -> Option<Kind> {
        self.columns
            .get(name)
            .and_then(|k| k.as_ref().ok().copied())
    }
}

/// The target's tables in its current schema, from PostgreSQL's catalog.
fn target_columns(tx: &Conn) -> Result<HashMap<String, TargetTable>> {
    let mut tables: HashMap<String, TargetTable> = HashMap::new();
    let rows = tx
        .prepare(
            "SELECT c.relname::text, a.attname::text, t.typname::text, a.attidentity <> ''
             FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid
             JOIN pg_type t ON t.oid = a.atttypid
             WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND c.relkind IN ('r', 'p')
               AND a.attnum > 0 AND NOT a.attisdropped",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>>>()?;
    for (table, column, typname, identity) in rows {
        let t = tables.entry(table).or_default();
        if identity {
            t.identity.push(column.clone());
        }
        t.columns.insert(column, Kind::of(&typname).ok_or(typname));
    }
    Ok(tables)
}

/// One table's copy: its name and its columns with their kinds in the target.
#[derive(Debug)]
struct Plan {
    table: String,
    columns: Vec<(String, Kind)>,
}

/// Match every source table and column with the target's; refuse what has no counterpart.
fn plan(tables: &[SourceTable], target: &HashMap<String, TargetTable>) -> Result<Vec<Plan>> {
    let mut plans = Vec::with_capacity(tables.len());
    let mut missing = Vec::new();
    for t in tables {
        let Some(target_table) = target.get(&t.name) else {
            missing.push(format!("table {}", t.name));
            continue;
        };
        let mut columns = Vec::with_capacity(t.columns.len());
        for c in &t.columns {
            match target_table.columns.get(c) {
                Some(Ok(kind)) => columns.push((c.clone(), *kind)),
                Some(Err(typname)) => missing.push(format!(
                    "column {}.{c} (PostgreSQL type {typname} is not one a copy writes)",
                    t.name
                )),
                None => missing.push(format!("column {}.{c}", t.name)),
            }
        }
        plans.push(Plan {
            table: t.name.clone(),
            columns,
        });
    }
    if !missing.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the PostgreSQL schema has no place for {} of the embedded store; is this lookout older than the one that wrote the data directory?",
            missing.join(", ")
        )));
    }
    Ok(plans)
}

/// Refuse a target holding anything but the rows its schema creates.
fn refuse_unless_empty(tx: &Conn, tables: &[SourceTable]) -> Result<()> {
    let mut found = Vec::new();
    let names = tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|t| !SEEDED.contains(t))
        .chain(std::iter::once("inbox"));
    for table in names {
        let any: bool = tx.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {})", quote(table)),
            [],
            |r| r.get(0),
        )?;
        if any {
            let rows: i64 =
                tx.query_row(&format!("SELECT COUNT(*) FROM {}", quote(table)), [], |r| {
                    r.get(0)
                })?;
            found.push(format!(
                "{table} ({rows} row{})",
                if rows == 1 { "" } else { "s" }
            ));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "the target database is not empty: it holds {}. A copy goes only into a database no Lookout server has used (a server creates its default project when it first starts, and a copy that completed leaves its data there): create a new database for it",
        found.join(", ")
    )))
}

fn postgres_of(conn: &Conn) -> Result<&PgConn> {
    conn.postgres()
        .ok_or_else(|| StoreError::Invalid("the target is not a PostgreSQL connection".into()))
}

fn verify(table: &str, source: i64, copied: u64, target: i64) -> Result<()> {
    if i64::try_from(copied).ok() == Some(source) && target == source {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "table {table}: {source} rows in the source, {copied} copied, {target} in the target; nothing was written"
    )))
}

/// Stream the rows of `select` into `batch`, sending it whenever it is full; the rows copied.
fn copy_rows(
    source: &Conn,
    select: &str,
    params: impl super::sql::Params,
    pg: &PgConn,
    batch: &mut Batch,
    progress: &mut impl FnMut(&str, u64),
) -> Result<u64> {
    let mut copied = 0u64;
    source.prepare(select)?.for_each(params, |row| {
        batch.push(row)?;
        if batch.full() {
            copied += batch.send(pg)?;
            progress(&batch.table, copied);
        }
        Ok(())
    })?;
    copied += batch.send(pg)?;
    progress(&batch.table, copied);
    Ok(copied)
}

/// One column's values of a batch.
#[derive(Debug)]
enum Values {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        match kind {
            Kind::Int => Values::Int(Vec::with_capacity(BATCH_ROWS)),
            Kind::Real => Values::Real(Vec::with_capacity(BATCH_ROWS)),
            Kind::Text => Values::Text(Vec::with_capacity(BATCH_ROWS)),
            Kind::Bytes => Values::Bytes(Vec::with_capacity(BATCH_ROWS)),
        }
    }

    /// Append `v`, converted as SQLite's storage classes convert into this column's type;
    /// the bytes it takes, or why it cannot go there.
    fn push(&mut self, v: Value) -> std::result::Result<usize, String> {
        let class = match &v {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        };
        let refused = |kind: Kind| format!("{class} cannot be stored in {} column", kind.name());
        match self {
            Values::Int(out) => out.push(match v {
                Value::Null => None,
                Value::Integer(i) => Some(i),
                Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(f as i64),
                Value::Text(s) => Some(s.trim().parse().map_err(|_| {
                    format!(
                        "text {:?} is not an integer",
                        s.chars().take(32).collect::<String>()
                    )
                })?),
                _ => return Err(refused(Kind::Int)),
            }),
            Values::Real(out) => out.push(match v {
                Value::Null => None,
                Value::Real(f) => Some(f),
                Value::Integer(i) => Some(i as f64),
                Value::Text(s) => Some(s.trim().parse().map_err(|_| {
                    format!(
                        "text {:?} is not a number",
                        s.chars().take(32).collect::<String>()
                    )
                })?),
                Value::Blob(_) => return Err(refused(Kind::Real)),
            }),
            Values::Text(out) => {
                let s = match v {
                    Value::Null => None,
                    Value::Text(s) => Some(s),
                    Value::Integer(i) => Some(i.to_string()),
                    Value::Real(f) => Some(f.to_string()),
                    Value::Blob(b) => Some(
                        String::from_utf8(b)
                            .map_err(|_| "bytes that are not UTF-8 cannot be stored as text")?,
                    ),
                };
                let len = s.as_ref().map_or(0, String::len);
                out.push(s);
                return Ok(len);
            }
            Values::Bytes(out) => {
                let b = match v {
                    Value::Null => None,
                    Value::Blob(b) => Some(b),
                    Value::Text(s) => Some(s.into_bytes()),
                    _ => return Err(refused(Kind::Bytes)),
                };
                let len = b.as_ref().map_or(0, Vec::len);
                out.push(b);
                return Ok(len);
            }
        }
        Ok(8)
    }

    fn clear(&mut self) {
        match self {
            Values::Int(v) => v.clear(),
            Values::Real(v) => v.clear(),
            Values::Text(v) => v.clear(),
            Values::Bytes(v) => v.clear(),
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Values::Int(v) => v,
            Values::Real(v) => v,
            Values::Text(v) => v,
            Values::Bytes(v) => v,
        }
    }
}

/// Rows on their way into one table: a column of values per column, and the prepared
/// `INSERT … SELECT FROM unnest(…)` that sends them in one statement.
#[derive(Debug)]
struct Batch {
    table: String,
    names: Vec<String>,
    values: Vec<Values>,
    rows: usize,
    bytes: usize,
    insert: postgres::Statement,
}

impl Batch {
    fn prepare(pg: &PgConn, table: &str, columns: &[(String, Kind)]) -> Result<Batch> {
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({})",
            quote(table),
            columns
                .iter()
                .map(|(c, _)| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            columns
                .iter()
                .enumerate()
                .map(|(i, (_, k))| format!("${}::{}", i + 1, k.array()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut client = pg.client();
        let client = &mut *client;
        let insert = off_runtime(|| client.prepare(&sql))?;
        Ok(Batch {
            table: table.to_owned(),
            names: columns.iter().map(|(c, _)| c.clone()).collect(),
            values: columns.iter().map(|(_, k)| Values::new(*k)).collect(),
            rows: 0,
            bytes: 0,
            insert,
        })
    }

    /// Add one source row (its columns in this batch's order).
    fn push(&mut self, row: &Row<'_>) -> Result<()> {
        for (i, values) in self.values.iter_mut().enumerate() {
            let v: Value = row.get(i)?;
            self.bytes += values.push(v).map_err(|why| {
                StoreError::Invalid(format!(
                    "{}.{}: {why}",
                    self.table,
                    self.names.get(i).map_or("?", String::as_str)
                ))
            })?;
        }
        self.rows += 1;
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    /// Insert what is held; the rows inserted.
    fn send(&mut self, pg: &PgConn) -> Result<u64> {
        if self.rows == 0 {
            return Ok(0);
        }
        let args: Vec<&(dyn ToSql + Sync)> = self.values.iter().map(Values::as_sql).collect();
        let n = {
            let mut client = pg.client();
            let client = &mut *client;
            off_runtime(|| client.execute(&self.insert, &args))
        }
        .map_err(|e| {
            StoreError::Invalid(format!(
                "copying table {}: {}",
                self.table,
                StoreError::from(e)
            ))
        })?;
        for v in &mut self.values {
            v.clear();
        }
        self.rows = 0;
        self.bytes = 0;
        Ok(n)
    }
}

/// `name` as a quoted SQL identifier (both databases quote with `"`).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> SourceTable {
        SourceTable {
            name: name.into(),
            columns: Vec::new(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn names(tables: &[SourceTable]) -> Vec<&str> {
        tables.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn parents_come_first_and_cycles_end() {
        let ordered = parents_first(vec![
            table("deploys", &["releases"]),
            table("orgs", &[]),
            table("releases", &["orgs"]),
            table("elsewhere", &["not_copied"]),
        ]);
        assert_eq!(
            names(&ordered),
            ["orgs", "releases", "deploys", "elsewhere"]
        );
        let ordered = parents_first(vec![
            table("a", &["b"]),
            table("b", &["a"]),
            table("c", &[]),
        ]);
        assert_eq!(names(&ordered), ["c", "a", "b"]);
    }

    #[test]
    fn values_convert_as_sqlite_stored_them_or_say_why_not() {
        let mut ints = Values::new(Kind::Int);
        assert!(ints.push(Value::Text(" 42 ".into())).is_ok());
        assert!(ints.push(Value::Real(7.0)).is_ok());
        assert!(ints.push(Value::Null).is_ok());
        assert!(
            ints.push(Value::Text("many".into()))
                .is_err_and(|e| e.contains("\"many\" is not an integer"))
        );
        assert!(ints.push(Value::Real(0.5)).is_err());
        assert!(matches!(&ints, Values::Int(v) if *v == [Some(42), Some(7), None]));

        let mut reals = Values::new(Kind::Real);
        assert!(reals.push(Value::Integer(3)).is_ok());
        assert!(matches!(&reals, Values::Real(v) if *v == [Some(3.0)]));

        let mut text = Values::new(Kind::Text);
        assert_eq!(text.push(Value::Blob(b"abc".to_vec())), Ok(3));
        assert!(text.push(Value::Blob(vec![0xff, 0xfe])).is_err());
        assert!(text.push(Value::Integer(5)).is_ok());
        assert!(matches!(&text, Values::Text(v) if *v == [Some("abc".into()), Some("5".into())]));

        let mut bytes = Values::new(Kind::Bytes);
        assert_eq!(bytes.push(Value::Text("{}".into())), Ok(2));
        assert!(bytes.push(Value::Integer(1)).is_err());
        bytes.clear();
        assert!(matches!(&bytes, Values::Bytes(v) if v.is_empty()));
    }
}
