//! Issue 20: unique names in random order (a hash of the id) instead of increasing ones. The
//! bulk load of those rows in 1,000-row transactions (each engine in a child process; statelog
//! also in turn with its load of increasing names, for the target), then point
//! lookups by name; the databases it leaves are the random upserts', the long tail's
//! and the commit latency workload's.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use redb::Database;
use statelog::Readable;

use crate::bulk::Dbs;
use crate::children::child;
use crate::engines::redb::{REDB_NAMES, REDB_ROWS, decode};
use crate::engines::sqlite::{open_sqlite, remove_sqlite, sqlite_get_by_name};
use crate::engines::statelog::{open_store, rows_def};
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{Rng, Row, median_of, per_sec, progress, random_name};

/// Lookups by name per engine.
const LOOKUPS: usize = 500_000;

/// Loads of each order the random-against-increasing row takes the median of.
const ORDER_ROUNDS: usize = 3;

/// The bulk load with names in random order; returns the databases it leaves.
pub fn bulk(wp: &Path, rows: usize, report: &mut Report) -> Dbs {
    let load = |engine: &str, path: &Path, names: &str| {
        progress(&format!("{names} names: bulk {rows} upserts: {engine}"));
        let f = child(&[
            "bulk-child".into(),
            engine.into(),
            path.display().to_string(),
            rows.to_string(),
            names.into(),
        ]);
        (rows as f64 / f[0], f[2] / 1024.0)
    };
    let bulk = |engine: &str, path: &Path| load(engine, path, "random");
    let sdir = wp.join("names");
    let (ours, ours_mem) = bulk("statelog-buffered", &sdir);
    // The same load with increasing names, the yardstick of the target: in turn with
    // the random one (three of each, medians), so the machine's drift does not pick a side.
    let seq_dir = wp.join("names-increasing");
    let (mut random_rates, mut increasing_rates) = (vec![ours], Vec::new());
    for round in 0..ORDER_ROUNDS {
        let _ = std::fs::remove_dir_all(&seq_dir);
        increasing_rates.push(load("statelog-buffered", &seq_dir, "increasing").0);
        if round + 1 < ORDER_ROUNDS {
            let again = wp.join("names-again");
            let _ = std::fs::remove_dir_all(&again);
            random_rates.push(bulk("statelog-buffered", &again).0);
            let _ = std::fs::remove_dir_all(&again);
        }
    }
    let _ = std::fs::remove_dir_all(&seq_dir);
    let (random_rate, increasing_rate) = (median_of(random_rates), median_of(increasing_rates));
    let strong_dir = wp.join("names-strong");
    let (ours_strong, _) = bulk("statelog-strong", &strong_dir);
    let _ = std::fs::remove_dir_all(&strong_dir);
    let sqlite_db = wp.join("names.sqlite");
    let (normal, normal_mem) = bulk("sqlite-NORMAL", &sqlite_db);
    let full_db = wp.join("names-full.sqlite");
    let (full, full_mem) = bulk("sqlite-FULL", &full_db);
    remove_sqlite(&full_db);
    let redb_path = wp.join("names.redb");
    let (redb, redb_mem) = bulk("redb", &redb_path);
    report.add(
        &format!(
            "random names: {} upserts in 1,000-row transactions, rows/s",
            fmt_num(rows as f64, 0)
        ),
        0,
        Better::Higher,
        cn(ours, "buffered, final sync"),
        [c(full), c(normal), cn(redb, "Immediate, default")],
    );
    report.add(
        &format!(
            "  statelog with names in random order against increasing names, buffered, rows/s (median of {ORDER_ROUNDS} each, in turn)"
        ),
        0,
        Better::Neither,
        cn(
            random_rate,
            &format!(
                "{:.2}x of {} increasing",
                random_rate / increasing_rate,
                fmt_num(increasing_rate, 0)
            ),
        ),
        [na(), na(), na()],
    );
    report.target(
        "random order at least half of increasing",
        random_rate >= 0.5 * increasing_rate,
    );
    report.add(
        "  the same, every transaction fsynced, rows/s",
        0,
        Better::Higher,
        cn(ours_strong, "strong"),
        [c(full), na(), cn(redb, "Immediate")],
    );
    report.add(
        "  peak memory of the bulk load (VmHWM), MiB",
        0,
        Better::Lower,
        cn(ours_mem, "buffered"),
        [c(full_mem), c(normal_mem), c(redb_mem)],
    );
    Dbs {
        sdir,
        sqlite_db,
        redb_path,
    }
}

/// Point lookups by name of uniform random existing rows, decoded: statelog through its
/// unique index (one snapshot), SQLite through its UNIQUE index (one connection, a prepared
/// statement), redb through its `names` table then `rows` (one read transaction).
pub fn lookups(rows: usize, dbs: &Dbs, report: &mut Report) {
    let n = rows as u64;
    let mut rng = Rng(5);
    let ids: Vec<u64> = (0..LOOKUPS).map(|_| rng.below(n)).collect();
    let names: Vec<String> = ids.iter().map(|&id| random_name(id)).collect();

    progress("random names: lookups by name: statelog");
    let (store, t) = open_store(&dbs.sdir);
    let by_name = rows_def().1;
    let snap = store.read();
    let t0 = Instant::now();
    for (name, &id) in names.iter().zip(&ids) {
        let (k, r): (u64, Row) = snap.get_by(&by_name, name).unwrap().unwrap();
        assert_eq!(k, id);
        black_box(r);
    }
    let ours = per_sec(LOOKUPS, t0.elapsed());
    drop((snap, store, t));

    progress("random names: lookups by name: SQLite");
    let conn = open_sqlite(&dbs.sqlite_db, "NORMAL");
    let t0 = Instant::now();
    for (name, &id) in names.iter().zip(&ids) {
        let r = sqlite_get_by_name(&conn, name);
        assert_eq!(r.id, id);
        black_box(r);
    }
    let sqlite = per_sec(LOOKUPS, t0.elapsed());
    drop(conn);

    progress("random names: lookups by name: redb");
    let db = Database::create(&dbs.redb_path).unwrap();
    let rtx = db.begin_read().unwrap();
    let by_name = rtx.open_table(REDB_NAMES).unwrap();
    let by_id = rtx.open_table(REDB_ROWS).unwrap();
    let t0 = Instant::now();
    for (name, &id) in names.iter().zip(&ids) {
        let k = by_name.get(name.as_str()).unwrap().unwrap().value();
        assert_eq!(k, id);
        black_box(decode(by_id.get(k).unwrap().unwrap().value()));
    }
    let redb = per_sec(LOOKUPS, t0.elapsed());
    report.add(
        "random names: point lookups by name (uniform random rows, decoded), /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(sqlite), c(redb)],
    );
}
