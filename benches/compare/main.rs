//! One comparison program: the store against SQLite (WAL mode, the settings a careful user
//! picks: prepared statements, transactions; synchronous FULL and NORMAL) and redb, on the same
//! rows, in one run. Prints the machine's limits measured in the same run, then one table of
//! figures with statelog's ratio to the best other engine, then a second table for the issue
//! 20 workloads (names in random order, random upserts, restore with a long tail, commits
//! beside automatic compactions, memory) with each target and whether it is met.
//!
//! Run with `BENCH_DIR=/tmp cargo bench --bench compare` (default 1,000,000 rows). Options
//! after `--`: `--rows N`, `--quick` (100,000 rows), `--growth-max N` (largest size of the
//! growth workload; default the `--rows` value; 10,000, 100,000, 1,000,000 and 5,000,000 are
//! the sizes), `--mixed-secs S` (duration of each phase of the mixed workload; default 3),
//! `--no-issue20` (leaves out the issue 20 workloads, the longest part of the run),
//! `--only-issue20` (runs only those, after the machine's limits). Progress goes to standard
//! error. Figures are recorded in BENCHMARKS.md.
//!
//! This file parses the options and runs the workloads in order; each engine is in
//! `engines/`, each workload family in a module of its own, the printed tables in `table.rs`.
#![allow(missing_docs)]

mod bulk;
mod children;
mod commits;
mod engines;
mod floors;
mod growth;
mod latency;
mod mixed;
mod names;
mod reads;
mod restore;
mod table;
mod tail;
mod upserts;
mod util;
mod weak;

use children::{bulk_child, restore_child};
use engines::redb::REDB_VERSION;
use floors::{engine_free_floors, machine_limits};
use table::Report;
use util::{load_average, progress};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "restore-child") {
        restore_child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "bulk-child") {
        bulk_child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "latency-child") {
        latency::latency_child(&args[i + 1..]);
        return;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let issue20 = !args.iter().any(|a| a == "--no-issue20");
    let only_issue20 = args.iter().any(|a| a == "--only-issue20");
    let rows: usize = value("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let growth_max: usize = value("--growth-max")
        .and_then(|v| v.parse().ok())
        .unwrap_or(rows);
    let mixed_secs: f64 = value("--mixed-secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let n = rows as u64;
    progress(&format!("rows {rows}, growth up to {growth_max}"));
    let work =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let wp = work.path();
    let mut report = Report::default();

    println!(
        "rows: {rows}; machine: {} cores; BENCH_DIR: {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        wp.parent().map_or(wp, |p| p).display(),
        load_average()
    );
    println!();
    println!("Machine limits, measured in this run:");
    machine_limits(wp);
    println!();
    println!("Floors without an engine, measured in this run:");
    engine_free_floors(rows);
    println!();

    if !only_issue20 {
        commits::run(wp, &mut report);
        let dbs = bulk::run(wp, rows, &mut report);
        let opened = dbs.open();
        reads::gets_and_scans(n, &opened, &mut report);
        mixed::run(n, mixed_secs, wp, &dbs.sqlite_db, &opened, &mut report);
        reads::after_updates(n, &opened, &mut report);
        restore::run(rows, dbs, opened, &mut report);
        weak::run(wp, &mut report);
        growth::run(wp, growth_max, &mut report);
    }

    // Issue 20: names in random order, random upserts, restore with a long tail, commits
    // beside automatic compactions (default options) and memory; a table of their own.
    let mut issue20_report = Report::default();
    if issue20 {
        let r = &mut issue20_report;
        let dbs = names::bulk(wp, rows, r);
        names::lookups(rows, &dbs, r);
        upserts::run(rows, &dbs, r);
        tail::run(rows, &dbs, r);
        latency::run(wp, rows, &dbs, r);
        let _ = std::fs::remove_dir_all(&dbs.sdir);
        engines::sqlite::remove_sqlite(&dbs.sqlite_db);
        let _ = std::fs::remove_file(&dbs.redb_path);
    }

    progress("done");
    println!("Engines: statelog Store (retention of one epoch, no auto-compaction); SQLite");
    println!("(bundled, WAL, prepared statements, busy_timeout); redb {REDB_VERSION} (table rows:");
    println!("u64 -> bincode row, table names: name -> id). synchronous NORMAL commits are not");
    println!(
        "durable when they return (the WAL is fsynced at checkpoints). Reads do not depend on"
    );
    println!("synchronous: SQLite's read figures are shown once, under NORMAL. The last column:");
    println!("how many times better statelog is than the best other engine in the row (above 1:");
    println!("statelog better; for times, latencies, memory and bytes lower is better), leaving");
    println!("out commits that are not durable when they return from rows of durable commits.");
    println!();
    if !only_issue20 {
        report.print();
        println!();
    }
    if issue20 {
        println!("The issue 20 workloads: unique names in random order (a hash of the id); the");
        println!(
            "rows of \"commits beside compactions\" and \"compaction\" use statelog's DEFAULT"
        );
        println!("options (automatic compaction on; retention of two epochs), the others the");
        println!("engine above. The last column: the issue's target and whether it is met.");
        println!();
        issue20_report.print();
        println!();
    }
    println!("load average at the end: {}", load_average());
}
