//! Reads of the bulk load's rows: point gets of uniform random ids (decoded) and range scans
//! of 100 rows; after the mixed workload's updates, the same gets again, and statelog's after
//! 250,000 more single-row updates.

use std::hint::black_box;
use std::time::Instant;

use redb::Database;
use rusqlite::{Connection, params};
use statelog::{Durability, Readable, Store, Table};

use crate::bulk::Opened;
use crate::engines::redb::{REDB_ROWS, decode};
use crate::engines::sqlite::{sqlite_get, sqlite_row};
use crate::table::{Better, Report, c, na};
use crate::util::{Rng, Row, per_sec, progress, row_v};

/// Point gets per engine in each of the get rows.
const GETS: usize = 500_000;

/// `gets` point gets of uniform random ids below `n`, decoded into rows, from statelog (one
/// snapshot), SQLite (one connection, a prepared statement) and redb (one read transaction):
/// each engine's gets per second.
pub fn point_gets(
    n: u64,
    gets: usize,
    store: &Store,
    t: &Table<u64, Row>,
    conn: &Connection,
    rdb: &Database,
) -> (f64, f64, f64) {
    let ours = statelog_gets(n, gets, store, t);
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        black_box(sqlite_get(conn, rng.below(n)));
    }
    let theirs = per_sec(gets, t0.elapsed());
    let rtx = rdb.begin_read().unwrap();
    let rt = rtx.open_table(REDB_ROWS).unwrap();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        let v = rt.get(rng.below(n)).unwrap().unwrap();
        black_box(decode(v.value()));
    }
    let redb_gets = per_sec(gets, t0.elapsed());
    (ours, theirs, redb_gets)
}

/// Statelog's part of [`point_gets`]: gets per second from one snapshot.
pub fn statelog_gets(n: u64, gets: usize, store: &Store, t: &Table<u64, Row>) -> f64 {
    let snap = store.read();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        black_box(snap.get(t, &rng.below(n)).unwrap());
    }
    per_sec(gets, t0.elapsed())
}

/// Point gets and range scans right after the bulk load.
pub fn gets_and_scans(n: u64, o: &Opened, report: &mut Report) {
    let Opened {
        store,
        t,
        conn,
        rdb,
    } = o;
    let gets = GETS;
    // Point gets, uniform random ids, decoded into structs; one snapshot / read
    // transaction for all of them (SQLite: one connection, a prepared statement).
    progress("point gets");
    let (ours, theirs, redb_gets) = point_gets(n, gets, store, t, conn, rdb);
    report.add(
        "point gets (uniform random ids, decoded), /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_gets)],
    );

    // Range scans of 100 rows.
    progress("range scans");
    let scans = 20_000;
    let snap = store.read();
    let rtx = rdb.begin_read().unwrap();
    let rt = rtx.open_table(REDB_ROWS).unwrap();
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n);
        let mut k = 0;
        for r in snap.range(t, from..from + 100).unwrap() {
            black_box(r.unwrap());
            k += 1;
        }
        black_box(k);
    }
    let ours = per_sec(scans, t0.elapsed());
    let mut st = conn
        .prepare_cached(
            "SELECT id, name, tags, score, created_at FROM rows WHERE id >= ?1 AND id < ?2 \
             ORDER BY id",
        )
        .unwrap();
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n) as i64;
        let mut k = 0;
        for r in st.query_map(params![from, from + 100], sqlite_row).unwrap() {
            black_box(r.unwrap());
            k += 1;
        }
        black_box(k);
    }
    let theirs = per_sec(scans, t0.elapsed());
    drop(st);
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n);
        let mut k = 0;
        for e in rt.range(from..from + 100).unwrap() {
            let (_, v) = e.unwrap();
            black_box(decode(v.value()));
            k += 1;
        }
        black_box(k);
    }
    let redb_scans = per_sec(scans, t0.elapsed());
    drop(rt);
    drop(rtx);
    drop(snap);
    report.add(
        "range scans of 100 rows, /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_scans)],
    );
}

/// Point gets after the mixed workload's updates, and statelog's after more updates.
pub fn after_updates(n: u64, o: &Opened, report: &mut Report) {
    let Opened {
        store,
        t,
        conn,
        rdb,
    } = o;
    let gets = GETS;
    // The same point gets after the mixed workload's updates: statelog's changes since the
    // last compaction are a tree over the base (a key filter spares most gets the tree);
    // SQLite's are pages in its WAL (checkpointed every 1,000 pages); redb's are in place.
    progress("point gets after the mixed workload's updates");
    let (ours, theirs, redb_gets) = point_gets(n, gets, store, t, conn, rdb);
    report.add(
        "point gets after the mixed workload's updates (not compacted), /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_gets)],
    );

    // Gets as changes pile up between compactions (statelog only): 250,000 more single-row
    // updates of random ids, buffered, then the same point gets.
    progress("statelog: 250,000 single-row updates, then point gets");
    let mut rng = Rng(3);
    for i in 0..250_000u64 {
        let id = rng.below(n);
        store
            .write_with(Durability::Buffered, |tx| {
                tx.insert(t, &id, &row_v(id, i + 2))
            })
            .unwrap();
    }
    let ours = statelog_gets(n, gets, store, t);
    report.add(
        "  statelog after 250,000 more single-row updates (not compacted), /s",
        0,
        Better::Neither,
        c(ours),
        [na(), na(), na()],
    );
}
