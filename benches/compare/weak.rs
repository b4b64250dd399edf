//! Weak durability (issue 8 workload 5): mark 100,000 changed rows dirty and flush them (one
//! transaction, fsynced) against SQLite upserting the same rows in one transaction and redb in
//! one write transaction (Immediate).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use statelog::weak::{DirtySet, Flusher};

use crate::engines::redb::{open_redb, redb_bulk};
use crate::engines::sqlite::{open_sqlite, remove_sqlite, sqlite_bulk};
use crate::engines::statelog::open_store;
use crate::table::{Better, Report, c, cn};
use crate::util::{Row, median_ms, median_of, progress, row, row_v};

pub fn run(wp: &Path, report: &mut Report) {
    const WEAK_ROWS: u64 = 100_000;
    const WEAK_RUNS: u64 = 3;
    progress("weak flush: statelog");
    let (weak, t) = open_store(&wp.join("weak"));
    let memory: Arc<Mutex<HashMap<u64, Row>>> =
        Arc::new(Mutex::new((0..WEAK_ROWS).map(|i| (i, row(i))).collect()));
    let dirty = Arc::new(DirtySet::<u64>::new());
    let m = memory.clone();
    // The flush borrows each value under the application's lock (no copy of the row).
    let flusher = Flusher::new(weak.clone()).source_borrowed(&t, dirty.clone(), move |k, lend| {
        if let Some(v) = m.lock().unwrap().get(k) {
            lend(v);
        }
    });
    // A first flush fills the table; the measured one rewrites every row, changed.
    for i in 0..WEAK_ROWS {
        dirty.mark_upsert(i);
    }
    flusher.flush().unwrap();
    // Median of WEAK_RUNS runs, each rewriting every row, changed.
    let mut runs = Vec::new();
    for v in 1..=WEAK_RUNS {
        for (i, r) in memory.lock().unwrap().iter_mut() {
            *r = row_v(*i, v);
        }
        let t0 = Instant::now();
        for i in 0..WEAK_ROWS {
            dirty.mark_upsert(i);
        }
        let flushed = flusher.flush().unwrap();
        runs.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(flushed.rows(), WEAK_ROWS as usize);
    }
    let ours = median_of(runs);
    drop((flusher, weak, t));
    let mut sqlite = [0.0; 2];
    for (k, sync) in ["FULL", "NORMAL"].into_iter().enumerate() {
        progress(&format!("weak flush: SQLite {sync}"));
        let db = wp.join(format!("weak-{sync}.sqlite"));
        let c = open_sqlite(&db, sync);
        sqlite_bulk(&c, 0..WEAK_ROWS, WEAK_ROWS, 0);
        sqlite[k] = median_ms(WEAK_RUNS, |v| sqlite_bulk(&c, 0..WEAK_ROWS, WEAK_ROWS, v));
        drop(c);
        remove_sqlite(&db);
    }
    progress("weak flush: redb");
    let path = wp.join("weak.redb");
    let db = open_redb(&path);
    redb_bulk(&db, 0..WEAK_ROWS, WEAK_ROWS, 0);
    let redb_ms = median_ms(WEAK_RUNS, |v| redb_bulk(&db, 0..WEAK_ROWS, WEAK_ROWS, v));
    drop(db);
    let _ = std::fs::remove_file(&path);
    report.add(
        "weak: mark 100,000 changed rows + flush (1 fsynced txn), median of 3, ms",
        1,
        Better::Lower,
        c(ours),
        [
            cn(sqlite[0], "1 txn"),
            cn(sqlite[1], "1 txn, not fsynced"),
            cn(redb_ms, "1 txn, Immediate"),
        ],
    );
}
