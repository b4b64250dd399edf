//! Strong single-row commits from 1 and 8 threads: statelog strong (concurrent commits share
//! an fsync) against SQLite FULL and NORMAL and redb Immediate, with the raw fdatasync rate
//! around the 1-thread run and, for 8 threads, the group-commit floors with no engine.

use std::path::Path;
use std::time::Instant;

use crate::engines::redb::{open_redb, redb_write};
use crate::engines::sqlite::{open_sqlite, remove_sqlite, sqlite_upsert};
use crate::engines::statelog::open_store;
use crate::floors::{allocated_fdatasyncs, group_commit_floor, own_file_fdatasyncs};
use crate::table::{Better, Report, c, cn, fmt_num, na, shown};
use crate::util::{per_sec, progress, row};

pub fn run(wp: &Path, report: &mut Report) {
    // Strong single-row commits: statelog strong (concurrent commits share an fsync) vs
    // SQLite WAL synchronous FULL and NORMAL (NORMAL: the WAL is fsynced only at
    // checkpoints, so commits are not durable when they return) and redb Immediate.
    for threads in [1u64, 8] {
        let per: u64 = if threads == 1 { 5000 } else { 2000 };
        let total = (threads * per) as usize;
        // 1 thread: the raw rate it is held to, measured right before and right after (the
        // disk's speed drifts between the machine limits above and this row).
        let raw_before = (threads == 1).then(|| allocated_fdatasyncs(wp, 2000));
        progress(&format!("strong commits, {threads} thread(s): statelog"));
        let d = wp.join(format!("strong{threads}"));
        let (store, t) = open_store(&d);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (store, t) = (&store, &t);
                s.spawn(move || {
                    for i in 0..per {
                        let id = th * per + i;
                        store.write(|tx| tx.insert(t, &id, &row(id))).unwrap();
                    }
                });
            }
        });
        let ours = per_sec(total, t0.elapsed());
        drop((store, t));
        let _ = std::fs::remove_dir_all(&d);
        let raw_around = raw_before.map(|before| (before, allocated_fdatasyncs(wp, 2000)));
        let mut sqlite = [0.0; 2];
        for (k, sync) in ["FULL", "NORMAL"].into_iter().enumerate() {
            progress(&format!(
                "strong commits, {threads} thread(s): SQLite {sync}"
            ));
            let db = wp.join(format!("strong{threads}-{sync}.sqlite"));
            drop(open_sqlite(&db, sync));
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for th in 0..threads {
                    let db = &db;
                    s.spawn(move || {
                        let c = open_sqlite(db, sync);
                        for i in 0..per {
                            sqlite_upsert(&c, &row(th * per + i));
                        }
                    });
                }
            });
            sqlite[k] = per_sec(total, t0.elapsed());
            remove_sqlite(&db);
        }
        progress(&format!("strong commits, {threads} thread(s): redb"));
        let path = wp.join(format!("strong{threads}.redb"));
        let db = open_redb(&path);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let db = &db;
                s.spawn(move || {
                    for i in 0..per {
                        redb_write(db, [row(th * per + i)]);
                    }
                });
            }
        });
        let redb = per_sec(total, t0.elapsed());
        drop(db);
        let _ = std::fs::remove_file(&path);
        report.add(
            &format!(
                "strong single-row commits, {threads} thread{}, /s",
                if threads == 1 { "" } else { "s" }
            ),
            0,
            Better::Higher,
            c(ours),
            [
                c(sqlite[0]),
                shown(sqlite[1], "not durable"),
                cn(redb, "Immediate"),
            ],
        );
        if let Some((before, after)) = raw_around {
            let raw = (before + after) / 2.0;
            report.add(
                "  fdatasync after a 100-byte write into allocated space, just before and after, /s",
                0,
                Better::Neither,
                cn(
                    raw,
                    &format!(
                        "{} before, {} after; statelog at {:.2} of it",
                        fmt_num(before, 0),
                        fmt_num(after, 0),
                        ours / raw
                    ),
                ),
                [na(), na(), na()],
            );
        }
        if threads > 1 {
            // The floor for every single-log engine, measured beside the engines.
            for gather in [false, true] {
                let how = if gather { ", gathering" } else { "" };
                progress(&format!(
                    "strong commits, {threads} threads: group commit with no engine{how}"
                ));
                let (rate, per_sync) = group_commit_floor(wp, threads, per, gather);
                report.add(
                    &format!("  group commit with no engine{how}, {threads} threads, /s"),
                    0,
                    Better::Neither,
                    cn(
                        rate,
                        &format!(
                            "{per_sync:.1} per fdatasync; {:.1}x SQLite FULL",
                            rate / sqlite[0]
                        ),
                    ),
                    [na(), na(), na()],
                );
            }
            progress(&format!(
                "strong commits, {threads} threads: each its own file, no group commit"
            ));
            let rate = own_file_fdatasyncs(wp, threads, per);
            report.add(
                &format!("  {threads} threads each fdatasyncing its own file, /s"),
                0,
                Better::Neither,
                cn(
                    rate,
                    &format!(
                        "1 write per fdatasync; {:.1}x SQLite FULL",
                        rate / sqlite[0]
                    ),
                ),
                [na(), na(), na()],
            );
        }
    }
}
