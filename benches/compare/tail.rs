//! Issue 20: restore with a long update tail against restore right after compaction. The
//! random-name state is compacted and restored (open + restore + the table with its unique
//! index, in a child process, median of 3; the open alone is shown beside it); then
//! single-row updates of random existing ids (buffered, no automatic compaction, so the tail
//! stays) until the tail is as large as the snapshot, and the same restore again. SQLite's
//! and redb's full loads of the same rows are measured beside it for reference.

use std::path::Path;

use statelog::Durability;

use crate::bulk::Dbs;
use crate::children::restore3_open;
use crate::engines::sqlite::open_sqlite;
use crate::engines::statelog::open_store;
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{Rng, dir_bytes, progress, random_row};

/// Writes single-row updates of random existing ids (below `n`) into the store in `dir` until
/// its update tail holds at least `bytes`; returns how many.
fn write_tail(dir: &Path, n: u64, bytes: u64) -> u64 {
    let (store, t) = open_store(dir);
    let mut rng = Rng(21);
    let mut k = 0u64;
    while store.log().update_bytes() < bytes {
        for _ in 0..1000 {
            let id = rng.below(n);
            store
                .write_with(Durability::Buffered, |tx| {
                    tx.insert(&t, &id, &random_row(id, 10 + k))
                })
                .unwrap();
            k += 1;
        }
    }
    store.sync().unwrap();
    k
}

pub fn run(rows: usize, dbs: &Dbs, report: &mut Report) {
    let n = rows as u64;
    progress("long tail: compacting the random-name state");
    let (store, t) = open_store(&dbs.sdir);
    store.compact().unwrap();
    drop((store, t));
    let snapshot = dir_bytes(&dbs.sdir);
    progress("long tail: restore right after compaction");
    let (fresh, _, fresh_peak, fresh_open) = restore3_open("statelog", &dbs.sdir, 1, rows);
    progress("long tail: single-row updates as large as the snapshot");
    let updates = write_tail(&dbs.sdir, n, snapshot);
    let tail = dir_bytes(&dbs.sdir) - snapshot;
    progress("long tail: restore with the tail");
    let (tailed, _, tailed_peak, tailed_open) = restore3_open("statelog", &dbs.sdir, 1, rows);

    progress("long tail: SQLite and redb load the same rows");
    let conn = open_sqlite(&dbs.sqlite_db, "NORMAL");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    let (sqlite, _, sqlite_peak, _) = restore3_open("sqlite", &dbs.sqlite_db, 1, rows);
    let (redb, _, redb_peak, _) = restore3_open("redb", &dbs.redb_path, 1, rows);

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    report.add(
        &format!(
            "random names: open + restore {} rows right after compaction, s",
            fmt_num(rows as f64, 0)
        ),
        3,
        Better::Lower,
        cn(
            fresh,
            &format!(
                "{:.1} MiB snapshot; Store::open {fresh_open:.3} s",
                mib(snapshot)
            ),
        ),
        [
            na(),
            cn(sqlite, "SELECT * into Vec"),
            cn(redb, "all into Vec"),
        ],
    );
    report.add(
        &format!(
            "  the same with a tail of {} single-row updates ({:.1} MiB), s",
            fmt_num(updates as f64, 0),
            mib(tail)
        ),
        3,
        Better::Lower,
        cn(
            tailed,
            &format!(
                "{:.2}x after compaction; Store::open {tailed_open:.3} s",
                tailed / fresh
            ),
        ),
        [
            na(),
            cn(sqlite, "SELECT * into Vec"),
            cn(redb, "all into Vec"),
        ],
    );
    report.target(
        &format!("at most 2x after compaction ({:.3} s)", 2.0 * fresh),
        tailed <= 2.0 * fresh,
    );
    report.add(
        "  restore peak memory (VmHWM) with the tail, MiB",
        0,
        Better::Lower,
        cn(
            tailed_peak / 1024.0,
            &format!("{:.0} after compaction", fresh_peak / 1024.0),
        ),
        [na(), c(sqlite_peak / 1024.0), c(redb_peak / 1024.0)],
    );
}
