//! SQLite (bundled, WAL, prepared statements, busy_timeout): the table `rows` with a UNIQUE
//! name; upserts, gets, full reads, the database's size on disk.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::util::{Row, row_v};

pub fn open_sqlite(path: &Path, synchronous: &str) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", synchronous).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
         tags TEXT NOT NULL, score REAL NOT NULL, created_at INTEGER NOT NULL)",
    )
    .unwrap();
    c
}

pub fn sqlite_upsert(c: &Connection, r: &Row) {
    let mut st = c
        .prepare_cached(
            "INSERT INTO rows (id, name, tags, score, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, tags = excluded.tags, \
             score = excluded.score, created_at = excluded.created_at",
        )
        .unwrap();
    st.execute(params![
        r.id as i64,
        r.name,
        r.tags.join("\u{1f}"),
        r.score,
        r.created_at
    ])
    .unwrap();
}

pub fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let tags: String = r.get(2)?;
    Ok(Row {
        id: r.get::<_, i64>(0)? as u64,
        name: r.get(1)?,
        tags: tags.split('\u{1f}').map(str::to_string).collect(),
        score: r.get(3)?,
        created_at: r.get(4)?,
    })
}

pub const SQLITE_GET: &str = "SELECT id, name, tags, score, created_at FROM rows WHERE id = ?1";

pub fn sqlite_get(c: &Connection, id: u64) -> Row {
    let mut st = c.prepare_cached(SQLITE_GET).unwrap();
    st.query_row(params![id as i64], sqlite_row).unwrap()
}

/// Upserts version `v` of the rows `ids` in transactions of `chunk` rows.
pub fn sqlite_bulk(c: &Connection, ids: Range<u64>, chunk: u64, v: u64) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        c.execute_batch("BEGIN").unwrap();
        for id in from..to {
            sqlite_upsert(c, &row_v(id, v));
        }
        c.execute_batch("COMMIT").unwrap();
        from = to;
    }
}

/// Upserts the rows `make(id)` for `ids` in transactions of `chunk` rows.
pub fn sqlite_bulk_with(c: &Connection, ids: Range<u64>, chunk: u64, make: impl Fn(u64) -> Row) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        c.execute_batch("BEGIN").unwrap();
        for id in from..to {
            sqlite_upsert(c, &make(id));
        }
        c.execute_batch("COMMIT").unwrap();
        from = to;
    }
}

/// One transaction upserting `rows`.
pub fn sqlite_write(c: &Connection, rows: &[Row]) {
    c.execute_batch("BEGIN").unwrap();
    for r in rows {
        sqlite_upsert(c, r);
    }
    c.execute_batch("COMMIT").unwrap();
}

/// The row whose unique name is `name`.
pub fn sqlite_get_by_name(c: &Connection, name: &str) -> Row {
    let mut st = c
        .prepare_cached("SELECT id, name, tags, score, created_at FROM rows WHERE name = ?1")
        .unwrap();
    st.query_row(params![name], sqlite_row).unwrap()
}

pub fn sqlite_all(c: &Connection) -> Vec<Row> {
    let mut st = c
        .prepare("SELECT id, name, tags, score, created_at FROM rows")
        .unwrap();
    st.query_map([], sqlite_row)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

pub fn sqlite_bytes(path: &Path) -> u64 {
    let wal = format!("{}-wal", path.display());
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

pub fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
