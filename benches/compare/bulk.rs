//! Bulk upserts in 1,000-row transactions, each engine in a child process (time and peak
//! memory); the databases it leaves are the ones the read, mixed and restore workloads use.

use std::path::{Path, PathBuf};

use redb::Database;
use rusqlite::Connection;
use statelog::{Store, Table};

use crate::children::child;
use crate::engines::sqlite::{open_sqlite, remove_sqlite};
use crate::engines::statelog::open_store;
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{Row, progress};

/// The databases the bulk load leaves, one per engine.
pub struct Dbs {
    pub sdir: PathBuf,
    pub sqlite_db: PathBuf,
    pub redb_path: PathBuf,
}

/// The bulk load's databases, open in this process.
pub struct Opened {
    pub store: Store,
    pub t: Table<u64, Row>,
    pub conn: Connection,
    pub rdb: Database,
}

pub fn run(wp: &Path, rows: usize, report: &mut Report) -> Dbs {
    // Bulk upserts in 1,000-row transactions, each in a child process (time and peak memory,
    // issue 8 workload 7). statelog: buffered commits (durable at the next sync, like SQLite
    // NORMAL, whose WAL is fsynced only at checkpoints), one final sync; and strong commits
    // (each transaction fsynced, like SQLite FULL and redb's default Immediate).
    let bulk = |engine: &str, path: &Path| {
        progress(&format!("bulk {rows} upserts: {engine}"));
        let f = child(&[
            "bulk-child".into(),
            engine.into(),
            path.display().to_string(),
            rows.to_string(),
        ]);
        (rows as f64 / f[0], f[2] / 1024.0)
    };
    let sdir = wp.join("bulk");
    let (ours_bulk, ours_bulk_mem) = bulk("statelog-buffered", &sdir);
    let strong_dir = wp.join("bulk-strong");
    let (ours_strong, _) = bulk("statelog-strong", &strong_dir);
    let _ = std::fs::remove_dir_all(&strong_dir);
    let sqlite_db = wp.join("bulk.sqlite");
    let (normal_bulk, normal_mem) = bulk("sqlite-NORMAL", &sqlite_db);
    let full_db = wp.join("bulk-full.sqlite");
    let (full_bulk, full_mem) = bulk("sqlite-FULL", &full_db);
    remove_sqlite(&full_db);
    let redb_path = wp.join("bulk.redb");
    let (redb_bulk_rate, redb_mem) = bulk("redb", &redb_path);
    report.add(
        &format!(
            "{} upserts in 1,000-row transactions, rows/s",
            fmt_num(rows as f64, 0)
        ),
        0,
        Better::Higher,
        cn(ours_bulk, "buffered, final sync"),
        [
            c(full_bulk),
            c(normal_bulk),
            cn(redb_bulk_rate, "Immediate, default"),
        ],
    );
    report.add(
        "  the same, every transaction fsynced, rows/s",
        0,
        Better::Higher,
        cn(ours_strong, "strong"),
        [c(full_bulk), na(), cn(redb_bulk_rate, "Immediate")],
    );
    report.add(
        "  peak memory of the bulk load (VmHWM), MiB",
        0,
        Better::Lower,
        cn(ours_bulk_mem, "buffered"),
        [c(full_mem), c(normal_mem), c(redb_mem)],
    );

    Dbs {
        sdir,
        sqlite_db,
        redb_path,
    }
}

impl Dbs {
    /// Opens the three databases in this process.
    pub fn open(&self) -> Opened {
        progress("opening the bulk databases in this process");
        let (store, t) = open_store(&self.sdir);
        let conn = open_sqlite(&self.sqlite_db, "NORMAL");
        let rdb = Database::create(&self.redb_path).unwrap();
        Opened {
            store,
            t,
            conn,
            rdb,
        }
    }
}
