//! Compaction, then open + restore in a child process (time and memory, issue 8 workload 7),
//! warm and with the page cache dropped: statelog's open against SQLite's and redb's open +
//! every row read into a `Vec<Row>`; and the bytes per row on disk.

use crate::bulk::{Dbs, Opened};
use crate::children::{restore3, restore3_cold};
use crate::engines::sqlite::{remove_sqlite, sqlite_bytes};
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{dir_bytes, progress};

pub fn run(rows: usize, dbs: Dbs, o: Opened, report: &mut Report) {
    let Dbs {
        sdir,
        sqlite_db,
        redb_path,
    } = dbs;
    let Opened {
        store,
        t,
        conn,
        mut rdb,
    } = o;
    // Compact, then open + restore in a child process (time and memory, issue 8 workload 7):
    // statelog's open; SQLite's and redb's open + every row read into a Vec<Row>.
    progress("compacting");
    store.compact().unwrap();
    drop((store, t));
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    for _ in 0..10 {
        if !rdb.compact().unwrap() {
            break;
        }
    }
    drop(rdb);
    let ours_bytes = dir_bytes(&sdir) as f64;
    let sqlite_bytes = sqlite_bytes(&sqlite_db) as f64;
    let redb_bytes = std::fs::metadata(&redb_path).unwrap().len() as f64;
    progress("restore: statelog");
    let (secs, retained, peak) = restore3("statelog", &sdir, 1, rows);
    progress("restore: SQLite");
    let (s_secs, s_retained, s_peak) = restore3("sqlite", &sqlite_db, 1, rows);
    progress("restore: redb");
    let (r_secs, r_retained, r_peak) = restore3("redb", &redb_path, 1, rows);
    report.add(
        &format!(
            "open + restore {} rows into memory (warm cache), s",
            fmt_num(rows as f64, 0)
        ),
        3,
        Better::Lower,
        c(secs),
        [
            na(),
            cn(s_secs, "SELECT * into Vec"),
            cn(r_secs, "all into Vec"),
        ],
    );
    progress("restore after dropping caches");
    let cold = [
        restore3_cold("statelog", &sdir, 1, rows),
        restore3_cold("sqlite", &sqlite_db, 1, rows),
        restore3_cold("redb", &redb_path, 1, rows),
    ];
    match cold {
        [Some(ours), Some(sqlite), Some(redb)] => report.add(
            &format!(
                "open + restore {} rows, page cache dropped, s",
                fmt_num(rows as f64, 0)
            ),
            3,
            Better::Lower,
            c(ours),
            [
                na(),
                cn(sqlite, "SELECT * into Vec"),
                cn(redb, "all into Vec"),
            ],
        ),
        _ => report.add(
            "open + restore, page cache dropped (needs root: not measured)",
            0,
            Better::Neither,
            na(),
            [na(), na(), na()],
        ),
    }
    report.add(
        "  restore peak memory (VmHWM), MiB",
        0,
        Better::Lower,
        c(peak / 1024.0),
        [na(), c(s_peak / 1024.0), c(r_peak / 1024.0)],
    );
    report.add(
        "  restore retained memory (VmRSS), MiB",
        0,
        Better::Lower,
        c(retained / 1024.0),
        [na(), c(s_retained / 1024.0), c(r_retained / 1024.0)],
    );
    report.add(
        "  restore memory, peak / retained",
        2,
        Better::Neither,
        c(peak / retained.max(1.0)),
        [
            na(),
            c(s_peak / s_retained.max(1.0)),
            c(r_peak / r_retained.max(1.0)),
        ],
    );
    report.add(
        "disk bytes per row after compaction",
        1,
        Better::Lower,
        c(ours_bytes / rows as f64),
        [
            na(),
            cn(sqlite_bytes / rows as f64, "checkpointed"),
            cn(redb_bytes / rows as f64, "compact()"),
        ],
    );
    let _ = std::fs::remove_dir_all(&sdir);
    remove_sqlite(&sqlite_db);
    let _ = std::fs::remove_file(&redb_path);
}
