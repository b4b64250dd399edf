//! Issue 20: upserts of uniform random existing ids (300,000 on the 1,000,000-row state of
//! the random-name load: 0.3 times the rows) in 1,000-row transactions, every engine on the
//! same ids: statelog buffered (one final sync) and strong, SQLite FULL and NORMAL, redb.

use std::time::Instant;

use redb::Database;
use statelog::Durability;

use crate::bulk::Dbs;
use crate::engines::redb::redb_write;
use crate::engines::sqlite::{open_sqlite, sqlite_write};
use crate::engines::statelog::{open_store, statelog_write};
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{Rng, Row, per_sec, progress, random_row};

/// Rows per transaction.
const CHUNK: usize = 1000;

/// Runs `write` on each 1,000-row transaction of version `v` of the rows `ids`; rows per
/// second.
fn upserts(ids: &[u64], v: u64, mut write: impl FnMut(&[Row])) -> f64 {
    let t0 = Instant::now();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<Row> = chunk.iter().map(|&id| random_row(id, v)).collect();
        write(&rows);
    }
    per_sec(ids.len(), t0.elapsed())
}

pub fn run(rows: usize, dbs: &Dbs, report: &mut Report) {
    let n = rows as u64;
    let count = rows * 3 / 10;
    let mut rng = Rng(31);
    let ids: Vec<u64> = (0..count).map(|_| rng.below(n)).collect();

    progress(&format!("random upserts: {count}: statelog"));
    let (store, t) = open_store(&dbs.sdir);
    let buffered = {
        let t0 = Instant::now();
        upserts(&ids, 1, |r| {
            statelog_write(&store, &t, r, Durability::Buffered)
        });
        store.sync().unwrap();
        per_sec(count, t0.elapsed())
    };
    let strong = upserts(&ids, 2, |r| {
        statelog_write(&store, &t, r, Durability::Strong)
    });
    drop((store, t));

    let mut sqlite = [0.0; 2];
    for (k, sync) in ["FULL", "NORMAL"].into_iter().enumerate() {
        progress(&format!("random upserts: {count}: SQLite {sync}"));
        let conn = open_sqlite(&dbs.sqlite_db, sync);
        sqlite[k] = upserts(&ids, 3 + k as u64, |r| sqlite_write(&conn, r));
    }

    progress(&format!("random upserts: {count}: redb"));
    let db = Database::create(&dbs.redb_path).unwrap();
    let redb = upserts(&ids, 5, |r| redb_write(&db, r.iter().cloned()));
    drop(db);

    report.add(
        &format!(
            "random upserts: {} of random existing ids on {} rows, 1,000-row transactions, rows/s",
            fmt_num(count as f64, 0),
            fmt_num(rows as f64, 0)
        ),
        0,
        Better::Higher,
        cn(buffered, "buffered, final sync"),
        [c(sqlite[0]), c(sqlite[1]), cn(redb, "Immediate, default")],
    );
    report.add(
        "  the same, every transaction fsynced, rows/s",
        0,
        Better::Higher,
        cn(strong, "strong"),
        [c(sqlite[0]), na(), cn(redb, "Immediate")],
    );
}
