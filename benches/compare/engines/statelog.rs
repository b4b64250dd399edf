//! statelog as the bench opens it: retention of one epoch, no automatic compaction, the table
//! `rows` with a unique index on the name; bulk upserts in transactions.

use std::ops::Range;
use std::path::Path;

use statelog::{Durability, Index, Store, StoreOptions, Table, TableDef};

use crate::util::{Row, row_v};

/// Retention of `keep_epochs` epochs; with 1, after compaction the directory holds only the
/// snapshot, as SQLite's file holds only the current rows (the default keeps one older epoch
/// for rewind).
pub fn store_options(keep_epochs: usize) -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        log: statelog::epoch::Options {
            retention: statelog::epoch::Retention {
                keep_epochs,
                keep_for: None,
            },
            ..Default::default()
        },
        ..StoreOptions::default()
    }
}

pub fn open_store_keep(dir: &Path, keep_epochs: usize) -> (Store, Table<u64, Row>) {
    open_store_with(dir, store_options(keep_epochs))
}

/// The table `rows`, with its unique index on the name.
pub fn rows_table(store: &Store) -> Table<u64, Row> {
    store.table(rows_def().0).unwrap()
}

/// The definition of the table `rows`, and its unique index on the name.
pub fn rows_def() -> (TableDef<u64, Row>, Index<u64, Row, String>) {
    let mut def = TableDef::<u64, Row>::new("rows");
    let by_name = def.unique_index("name", |r| r.name.clone());
    (def, by_name)
}

pub fn open_store(dir: &Path) -> (Store, Table<u64, Row>) {
    open_store_keep(dir, 1)
}

/// The table `rows` of a store opened with `options`.
pub fn open_store_with(dir: &Path, options: StoreOptions) -> (Store, Table<u64, Row>) {
    let store = Store::open(dir, options).unwrap();
    let t = rows_table(&store);
    (store, t)
}

/// Upserts the rows `make(id)` for `ids` in transactions of `chunk` rows.
pub fn statelog_bulk_with(
    store: &Store,
    t: &Table<u64, Row>,
    ids: Range<u64>,
    chunk: u64,
    d: Durability,
    make: impl Fn(u64) -> Row,
) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        store
            .write_with(d, |tx| {
                for id in from..to {
                    tx.insert(t, &id, &make(id))?;
                }
                Ok(())
            })
            .unwrap();
        from = to;
    }
}

/// One transaction upserting `rows`.
pub fn statelog_write(store: &Store, t: &Table<u64, Row>, rows: &[Row], d: Durability) {
    store
        .write_with(d, |tx| {
            for r in rows {
                tx.insert(t, &r.id, r)?;
            }
            Ok(())
        })
        .unwrap();
}

/// Upserts version `v` of the rows `ids` in transactions of `chunk` rows.
pub fn statelog_bulk(
    store: &Store,
    t: &Table<u64, Row>,
    ids: Range<u64>,
    chunk: u64,
    v: u64,
    d: Durability,
) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        store
            .write_with(d, |tx| {
                for id in from..to {
                    tx.insert(t, &id, &row_v(id, v))?;
                }
                Ok(())
            })
            .unwrap();
        from = to;
    }
}
