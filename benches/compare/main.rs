//! One comparison program: the store against SQLite (WAL mode, the settings a careful user
//! picks: prepared statements, transactions; synchronous FULL and NORMAL) and redb, on the same
//! rows, in one run. Prints the machine's limits measured in the same run, then one table of
//! figures with statelog's ratio to the best other engine.
//!
//! Run with `BENCH_DIR=/tmp cargo bench --bench compare` (default 1,000,000 rows). Options
//! after `--`: `--rows N`, `--quick` (100,000 rows), `--growth-max N` (largest size of the
//! growth workload; default the `--rows` value; 10,000, 100,000, 1,000,000 and 5,000,000 are
//! the sizes), `--mixed-secs S` (duration of each phase of the mixed workload; default 3).
//! Progress goes to standard error. Figures are recorded in BENCHMARKS.md.
//!
//! This file parses the options and runs the workloads in order; each engine is in
//! `engines/`, each workload family in a module of its own, the printed table in `table.rs`.
#![allow(missing_docs)]

mod bulk;
mod children;
mod commits;
mod engines;
mod floors;
mod growth;
mod mixed;
mod reads;
mod restore;
mod table;
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
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let quick = args.iter().any(|a| a == "--quick");
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

    commits::run(wp, &mut report);
    let dbs = bulk::run(wp, rows, &mut report);
    let opened = dbs.open();
    reads::gets_and_scans(n, &opened, &mut report);
    mixed::run(n, mixed_secs, wp, &dbs.sqlite_db, &opened, &mut report);
    reads::after_updates(n, &opened, &mut report);
    restore::run(rows, dbs, opened, &mut report);
    weak::run(wp, &mut report);
    growth::run(wp, growth_max, &mut report);

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
    report.print();
    println!();
    println!("load average at the end: {}", load_average());
}
