//! statelog as the bench opens it: retention of one epoch, no automatic compaction, the table
//! `rows` with a unique index on the name; bulk upserts in transactions.

use std::ops::Range;
use std::path::Path;

use statelog::{Durability, Store, StoreOptions, Table, TableDef};

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
    let store = Store::open(dir, store_options(keep_epochs)).unwrap();
    let t = store
        .table(TableDef::<u64, Row>::new("rows").unique("name", |r| r.name.clone()))
        .unwrap();
    (store, t)
}

pub fn open_store(dir: &Path) -> (Store, Table<u64, Row>) {
    open_store_keep(dir, 1)
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
