//! redb 2.x: the table `rows` (id -> bincode-encoded row) and the table `names` (name -> id)
//! kept exact as a unique index; upserts, gets, full reads.

use std::ops::Range;
use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::util::{Row, row_v};

pub const REDB_ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
pub const REDB_NAMES: TableDefinition<&str, u64> = TableDefinition::new("names");

pub fn encode(r: &Row) -> Vec<u8> {
    bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap()
}

pub fn decode(b: &[u8]) -> Row {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .unwrap()
        .0
}

pub fn open_redb(path: &Path) -> Database {
    let db = Database::create(path).unwrap();
    let w = db.begin_write().unwrap();
    w.open_table(REDB_ROWS).unwrap();
    w.open_table(REDB_NAMES).unwrap();
    w.commit().unwrap();
    db
}

/// Inserts or replaces a row, keeping the name index exact (a name owned by another id is an
/// error; a changed name frees the old one), as statelog's unique index and SQLite's UNIQUE do.
pub fn redb_upsert(
    rows: &mut redb::Table<'_, u64, &[u8]>,
    names: &mut redb::Table<'_, &str, u64>,
    r: &Row,
) {
    if let Some(owner) = names.get(r.name.as_str()).unwrap() {
        assert_eq!(owner.value(), r.id, "unique name {} taken", r.name);
    }
    let bytes = encode(r);
    let old_name = rows
        .insert(r.id, bytes.as_slice())
        .unwrap()
        .map(|old| decode(old.value()).name);
    match old_name {
        Some(old) if old == r.name => {}
        Some(old) => {
            names.remove(old.as_str()).unwrap();
            names.insert(r.name.as_str(), r.id).unwrap();
        }
        None => {
            names.insert(r.name.as_str(), r.id).unwrap();
        }
    }
}

/// One write transaction upserting `rows`, with redb's default durability (Immediate).
pub fn redb_write(db: &Database, rows: impl IntoIterator<Item = Row>) {
    let w = db.begin_write().unwrap();
    {
        let mut t = w.open_table(REDB_ROWS).unwrap();
        let mut names = w.open_table(REDB_NAMES).unwrap();
        for r in rows {
            redb_upsert(&mut t, &mut names, &r);
        }
    }
    w.commit().unwrap();
}

/// Upserts version `v` of the rows `ids` in write transactions of `chunk` rows.
pub fn redb_bulk(db: &Database, ids: Range<u64>, chunk: u64, v: u64) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        redb_write(db, (from..to).map(|id| row_v(id, v)));
        from = to;
    }
}

/// Upserts the rows `make(id)` for `ids` in write transactions of `chunk` rows.
pub fn redb_bulk_with(db: &Database, ids: Range<u64>, chunk: u64, make: impl Fn(u64) -> Row) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        redb_write(db, (from..to).map(&make));
        from = to;
    }
}

pub fn redb_get(db: &Database, id: u64) -> Row {
    let r = db.begin_read().unwrap();
    let t = r.open_table(REDB_ROWS).unwrap();
    let v = t.get(id).unwrap().unwrap();
    decode(v.value())
}

pub fn redb_all(db: &Database) -> Vec<Row> {
    let r = db.begin_read().unwrap();
    let t = r.open_table(REDB_ROWS).unwrap();
    let mut all = Vec::with_capacity(t.len().unwrap() as usize);
    for e in t.iter().unwrap() {
        let (_, v) = e.unwrap();
        all.push(decode(v.value()));
    }
    all
}

pub const REDB_VERSION: &str = "2.6";
