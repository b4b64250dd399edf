//! Child processes of this program, for figures that need a process of their own (time and
//! memory from a clean start): `restore-child` opens a database and reads every row into
//! memory, `bulk-child` loads one; and the helpers that run them (three times, median; with
//! the page cache dropped when the bench runs as root).

use std::path::Path;
use std::time::Instant;

use redb::Database;
use statelog::{Durability, Readable, Store};

use crate::engines::redb::{open_redb, redb_all, redb_bulk, redb_bulk_with};
use crate::engines::sqlite::{open_sqlite, sqlite_all, sqlite_bulk, sqlite_bulk_with};
use crate::engines::statelog::{
    open_store, rows_table, statelog_bulk, statelog_bulk_with, store_options,
};
use crate::util::{memory_kib, random_row};

/// Child mode `restore-child ENGINE PATH [KEEP_EPOCHS]`: open the database and bring every
/// row into memory (statelog: open, which restores the state; SQLite and redb: open and read
/// every row into a `Vec<Row>`), then print rows, seconds, retained and peak KiB over the
/// process's resident memory before opening, and the seconds of the open alone (statelog:
/// `Store::open`, before the table's first open with its unique index; the others: all).
pub fn restore_child(args: &[String]) {
    let path = Path::new(&args[1]);
    let (base, _) = memory_kib();
    let t0 = Instant::now();
    let mut opened = None;
    let (n, kept): (usize, Box<dyn std::any::Any>) = match args[0].as_str() {
        "statelog" => {
            let keep = args.get(2).and_then(|k| k.parse().ok()).unwrap_or(1);
            let store = Store::open(path, store_options(keep)).unwrap();
            opened = Some(t0.elapsed());
            let t = rows_table(&store);
            let n = store.read().count(&t).unwrap();
            (n, Box::new((store, t)))
        }
        "sqlite" => {
            let c = open_sqlite(path, "NORMAL");
            let all = sqlite_all(&c);
            (all.len(), Box::new((c, all)))
        }
        "redb" => {
            let db = Database::open(path).unwrap();
            let all = redb_all(&db);
            (all.len(), Box::new((db, all)))
        }
        other => panic!("unknown engine {other}"),
    };
    let took = t0.elapsed();
    let (rss, hwm) = memory_kib();
    println!(
        "{n} {} {} {} {}",
        took.as_secs_f64(),
        rss.saturating_sub(base),
        hwm.saturating_sub(base),
        opened.unwrap_or(took).as_secs_f64()
    );
    drop(kept);
}

/// Child mode `bulk-child ENGINE PATH ROWS [random|increasing]`: upsert ROWS rows in 1,000-row
/// transactions into a new database, then print seconds, resident and peak KiB over the
/// process's resident memory before opening. ENGINE: statelog-buffered (then one sync),
/// statelog-strong, sqlite-NORMAL, sqlite-FULL, redb (default durability, Immediate). With
/// `random`, the rows' unique names are in random order ([`random_row`]); else increasing.
pub fn bulk_child(args: &[String]) {
    let path = Path::new(&args[1]);
    let rows: u64 = args[2].parse().unwrap();
    let random = args.get(3).is_some_and(|a| a == "random");
    let (base, _) = memory_kib();
    let took = match args[0].as_str() {
        "statelog-buffered" | "statelog-strong" => {
            let (store, t) = open_store(path);
            let d = if args[0] == "statelog-strong" {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            let t0 = Instant::now();
            if random {
                statelog_bulk_with(&store, &t, 0..rows, 1000, d, |id| random_row(id, 0));
            } else {
                statelog_bulk(&store, &t, 0..rows, 1000, 0, d);
            }
            store.sync().unwrap();
            t0.elapsed()
        }
        "sqlite-NORMAL" | "sqlite-FULL" => {
            let c = open_sqlite(path, &args[0]["sqlite-".len()..]);
            let t0 = Instant::now();
            if random {
                sqlite_bulk_with(&c, 0..rows, 1000, |id| random_row(id, 0));
            } else {
                sqlite_bulk(&c, 0..rows, 1000, 0);
            }
            t0.elapsed()
        }
        "redb" => {
            let db = open_redb(path);
            let t0 = Instant::now();
            if random {
                redb_bulk_with(&db, 0..rows, 1000, |id| random_row(id, 0));
            } else {
                redb_bulk(&db, 0..rows, 1000, 0);
            }
            t0.elapsed()
        }
        other => panic!("unknown engine {other}"),
    };
    let (rss, hwm) = memory_kib();
    println!(
        "{} {} {}",
        took.as_secs_f64(),
        rss.saturating_sub(base),
        hwm.saturating_sub(base)
    );
}

/// Runs this program in a child mode and returns the numbers it printed.
pub fn child(args: &[String]) -> Vec<f64> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe).args(args).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "child {args:?}: {line} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    line.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// Restores in a child three times; returns (seconds, retained KiB, peak KiB) of the median
/// run by time.
pub fn restore3(engine: &str, path: &Path, keep: usize, rows: usize) -> (f64, f64, f64) {
    let (secs, retained, peak, _) = restore3_open(engine, path, keep, rows);
    (secs, retained, peak)
}

/// [`restore3`] with the seconds of the open alone in the same run (see [`restore_child`]).
pub fn restore3_open(engine: &str, path: &Path, keep: usize, rows: usize) -> (f64, f64, f64, f64) {
    let mut runs: Vec<(f64, f64, f64, f64)> = (0..3)
        .map(|_| {
            let f = restore_once(engine, path, keep, rows);
            (f[1], f[2], f[3], f[4])
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[1]
}

/// One restore in a child: rows, seconds, retained KiB, peak KiB.
pub fn restore_once(engine: &str, path: &Path, keep: usize, rows: usize) -> Vec<f64> {
    let f = child(&[
        "restore-child".into(),
        engine.into(),
        path.display().to_string(),
        keep.to_string(),
    ]);
    assert_eq!(f.first().copied(), Some(rows as f64), "{engine}: {f:?}");
    f
}

/// Drops the kernel's page cache (root only); false if it cannot.
pub fn drop_caches() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Restores in a child three times, each after dropping the page cache; the median seconds,
/// or `None` when the cache cannot be dropped (not root).
pub fn restore3_cold(engine: &str, path: &Path, keep: usize, rows: usize) -> Option<f64> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        if !drop_caches() {
            return None;
        }
        runs.push(restore_once(engine, path, keep, rows)[1]);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs.get(1).copied()
}
