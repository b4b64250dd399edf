//! Issue 20: commit latency beside automatic compactions. The random-name state is compacted
//! and copied twice; a child process opens (restores) a copy, then commits strong
//! transactions of 1,000 updates of random existing rows, timing each commit, until at least
//! three automatic compactions have run (statelog with DEFAULT options); the same number of
//! commits again with automatic compaction off, and on SQLite FULL and NORMAL (the
//! random-name database, capped in time). The statelog child also samples its memory and
//! whether a compaction runs every 2 ms (extra memory and duration of each compaction), the
//! peak over the updates (VmHWM, reset when they start), and at the end one compaction alone
//! (`Store::compact`, no writers) with its peak. A fresh restore of the state it leaves gives
//! the retained memory the targets are relative to.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use statelog::{Durability, Readable, Store, StoreOptions, Table};

use crate::bulk::Dbs;
use crate::children::{child, restore3};
use crate::engines::sqlite::{open_sqlite, sqlite_write};
use crate::engines::statelog::{open_store, open_store_with, statelog_write};
use crate::table::{Better, Cell, Report, c, cn, fmt_num, na, shown};
use crate::util::{
    Rng, Row, median_of, memory_kib, per_sec, progress, quantile, random_row, reset_peak,
};

/// Updates per transaction.
const CHUNK: u64 = 1000;
/// Automatic compactions the default run waits for.
const COMPACTIONS: u64 = 3;
/// Longest a statelog run may take, s (a safety stop).
const MAX_SECS: f64 = 180.0;
/// Longest an SQLite run may take, s (it may stop before the statelog run's commit count).
const SQLITE_MAX_SECS: f64 = 15.0;
/// How often the statelog child samples its memory and whether a compaction runs.
const SAMPLE: Duration = Duration::from_millis(2);

/// What a statelog run's sampler saw: the duration and the extra resident memory (KiB, peak
/// during it over the last sample before it) of each compaction.
#[derive(Default)]
struct Sampled {
    compactions: Vec<(f64, u64)>,
}

/// Samples every [`SAMPLE`] until `stop`.
fn sample(store: &Store, stop: &AtomicBool) -> Sampled {
    let mut out = Sampled::default();
    let (mut was, mut before, mut peak) = (false, 0, 0);
    let mut started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let running = store.compaction_running();
        let (rss, _) = memory_kib();
        if running && !was {
            started = Instant::now();
            peak = rss;
        }
        if running {
            peak = peak.max(rss);
        } else {
            if was {
                let extra = peak.saturating_sub(before);
                out.compactions
                    .push((started.elapsed().as_secs_f64(), extra));
            }
            before = rss;
        }
        was = running;
        std::thread::sleep(SAMPLE);
    }
    out
}

/// Commits transactions of [`CHUNK`] random updates with `commit` until `done` says so (given
/// the commits so far) or `max_secs` passed; returns each commit's latency, sorted, and the
/// loop's seconds.
fn commit_loop(
    rows: u64,
    max_secs: f64,
    mut commit: impl FnMut(&[Row]),
    mut done: impl FnMut(usize) -> bool,
) -> (Vec<Duration>, f64) {
    let mut rng = Rng(42);
    let mut lat = Vec::new();
    let t0 = Instant::now();
    loop {
        let v = lat.len() as u64 + 1;
        let batch: Vec<Row> = (0..CHUNK).map(|_| random_row(rng.below(rows), v)).collect();
        let c0 = Instant::now();
        commit(&batch);
        lat.push(c0.elapsed());
        if done(lat.len()) || t0.elapsed().as_secs_f64() > max_secs {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    (lat, secs)
}

/// The child's line: commits, seconds, p50, p99, p99.9, max (ms), commits over 10 and 100 ms,
/// then `more`.
fn print_run(lat: &[Duration], secs: f64, more: &[f64]) {
    let over = |ms: u64| {
        lat.iter()
            .filter(|d| **d > Duration::from_millis(ms))
            .count()
    };
    let mut f = vec![
        lat.len() as f64,
        secs,
        quantile(lat, 0.50),
        quantile(lat, 0.99),
        quantile(lat, 0.999),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        over(10) as f64,
        over(100) as f64,
    ];
    f.extend_from_slice(more);
    let line: Vec<String> = f.iter().map(|x| x.to_string()).collect();
    println!("{}", line.join(" "));
}

/// Child mode `latency-child ENGINE PATH ROWS COMMITS`: ENGINE statelog-default or
/// statelog-auto-off (the store PATH, ROWS rows, opened with default options or with
/// automatic compaction off), sqlite-FULL or sqlite-NORMAL (the database PATH, ROWS rows);
/// COMMITS commits, or with 0 until [`COMPACTIONS`] automatic compactions ran. Prints
/// [`print_run`]'s figures, then (KiB over the resident memory before opening): peak over the
/// updates, resident at their end; statelog only: resident after opening, compactions,
/// stalls, compactions sampled, their median seconds, the largest extra memory sampled, one
/// compaction alone: seconds, extra memory, resident before it.
pub fn latency_child(args: &[String]) {
    let path = Path::new(&args[1]);
    let rows: u64 = args[2].parse().unwrap();
    let commits: usize = args[3].parse().unwrap();
    let (base, _) = memory_kib();
    let kib = |k: u64| k.saturating_sub(base) as f64;
    match args[0].as_str() {
        "statelog-default" | "statelog-auto-off" => {
            let options = StoreOptions {
                auto_compact: args[0] == "statelog-default",
                ..StoreOptions::default()
            };
            let (store, t) = open_store_with(path, options);
            assert_eq!(store.read().count(&t).unwrap(), rows as usize);
            statelog_updates(&store, &t, rows, commits, base);
        }
        "sqlite-FULL" | "sqlite-NORMAL" => {
            let conn = open_sqlite(path, &args[0]["sqlite-".len()..]);
            reset_peak();
            let (lat, secs) = commit_loop(
                rows,
                SQLITE_MAX_SECS,
                |r| sqlite_write(&conn, r),
                |k| k >= commits,
            );
            let (rss, hwm) = memory_kib();
            print_run(&lat, secs, &[kib(hwm), kib(rss)]);
        }
        other => panic!("unknown engine {other}"),
    }
}

/// The statelog child's updates, sampled, and the compaction alone after them.
fn statelog_updates(store: &Store, t: &Table<u64, Row>, rows: u64, commits: usize, base: u64) {
    let kib = |k: u64| k.saturating_sub(base) as f64;
    let (restored, _) = memory_kib();
    let epoch0 = store.log().current_epoch();
    let stalls0 = store.compaction_stalls();
    reset_peak();
    let stop = AtomicBool::new(false);
    let (lat, secs, sampled) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample(store, &stop));
        let (lat, secs) = commit_loop(
            rows,
            MAX_SECS,
            |r| statelog_write(store, t, r, Durability::Strong),
            |k| {
                if let Some(e) = store.compaction_error() {
                    panic!("automatic compaction failed: {e}");
                }
                if commits > 0 {
                    k >= commits
                } else {
                    store.log().current_epoch() - epoch0 >= COMPACTIONS
                        && !store.compaction_running()
                }
            },
        );
        stop.store(true, Ordering::Relaxed);
        (lat, secs, sampler.join().unwrap())
    });
    let (rss, hwm) = memory_kib();
    let epochs = store.log().current_epoch() - epoch0;
    let stalls = store.compaction_stalls() - stalls0;
    let durations: Vec<f64> = sampled.compactions.iter().map(|c| c.0).collect();
    let extra = sampled.compactions.iter().map(|c| c.1).max().unwrap_or(0);
    // One compaction alone, no writers: its peak over the resident memory before it.
    let (alone, alone_extra, before) = if commits == 0 {
        // An automatic compaction the last commits started ends first: `compact` would wait
        // for it, and its time is not this one's.
        while store.compaction_running() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (before, _) = memory_kib();
        reset_peak();
        let t0 = Instant::now();
        store.compact().unwrap();
        let took = t0.elapsed().as_secs_f64();
        let (_, peak) = memory_kib();
        (took, peak.saturating_sub(before) as f64, kib(before))
    } else {
        (0.0, 0.0, 0.0)
    };
    print_run(
        &lat,
        secs,
        &[
            kib(hwm),
            kib(rss),
            kib(restored),
            epochs as f64,
            stalls as f64,
            durations.len() as f64,
            median_of(durations),
            extra as f64,
            alone,
            alone_extra,
            before,
        ],
    );
}

/// One run's figures, as the child printed them.
struct Run {
    commits: f64,
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    over10: f64,
    over100: f64,
    peak_mib: f64,
    end_mib: f64,
    rest: Vec<f64>,
}

fn run_child(engine: &str, path: &Path, rows: usize, commits: usize) -> Run {
    let f = child(&[
        "latency-child".into(),
        engine.into(),
        path.display().to_string(),
        rows.to_string(),
        commits.to_string(),
    ]);
    Run {
        commits: f[0],
        rate: f[0] * CHUNK as f64 / f[1],
        p50: f[2],
        p99: f[3],
        p999: f[4],
        max: f[5],
        over10: f[6],
        over100: f[7],
        peak_mib: f[8] / 1024.0,
        end_mib: f[9] / 1024.0,
        rest: f[10..].to_vec(),
    }
}

/// A copy of the store directory `from` (its files) in `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

pub fn run(wp: &Path, rows: usize, dbs: &Dbs, report: &mut Report) {
    progress("commits beside compactions: compacting the random-name state");
    let (store, t) = open_store(&dbs.sdir);
    store.compact().unwrap();
    drop((store, t));
    let dir = wp.join("latency-default");
    let off_dir = wp.join("latency-off");
    copy_dir(&dbs.sdir, &dir);
    copy_dir(&dbs.sdir, &off_dir);
    progress(&format!(
        "commits beside compactions: statelog, default options, until {COMPACTIONS} compactions"
    ));
    let ours = run_child("statelog-default", &dir, rows, 0);
    let commits = ours.commits as usize;
    progress(&format!(
        "commits beside compactions: statelog, auto-compaction off, {commits} commits"
    ));
    let off = run_child("statelog-auto-off", &off_dir, rows, commits);
    let _ = std::fs::remove_dir_all(&off_dir);
    let mut sqlite = Vec::new();
    for sync in ["FULL", "NORMAL"] {
        progress(&format!(
            "commits beside compactions: SQLite {sync}, {commits} commits or {SQLITE_MAX_SECS} s"
        ));
        sqlite.push(run_child(
            &format!("sqlite-{sync}"),
            &dbs.sqlite_db,
            rows,
            commits,
        ));
    }
    progress("commits beside compactions: a fresh restore of the state");
    let (_, retained, _) = restore3("statelog", &dir, 2, rows);
    let retained = retained / 1024.0;
    let _ = std::fs::remove_dir_all(&dir);

    let [
        restored,
        epochs,
        stalls,
        sampled,
        median_secs,
        extra_kib,
        alone_secs,
        alone_kib,
        _,
    ] = ours.rest[..9].try_into().unwrap();
    let others = |f: &dyn Fn(&Run) -> f64| -> [Cell; 3] {
        [c(f(&sqlite[0])), shown(f(&sqlite[1]), "not durable"), na()]
    };
    let ms = |v: f64| format!("{v:.1} ms");
    report.add(
        &format!(
            "commits beside compactions: strong txns of 1,000 random updates on {} rows, default options, rows/s",
            fmt_num(rows as f64, 0)
        ),
        0,
        Better::Higher,
        cn(
            ours.rate,
            &format!(
                "{} commits, {epochs} compactions, {stalls} stalls",
                fmt_num(ours.commits, 0)
            ),
        ),
        [
            cn(sqlite[0].rate, &format!("{} commits", fmt_num(sqlite[0].commits, 0))),
            shown(
                sqlite[1].rate,
                &format!("{} commits, not durable", fmt_num(sqlite[1].commits, 0)),
            ),
            na(),
        ],
    );
    report.add(
        "  the same, automatic compaction off, rows/s",
        0,
        Better::Neither,
        c(off.rate),
        [na(), na(), na()],
    );
    type Pick = fn(&Run) -> f64;
    let quantiles: [(&str, Pick); 4] = [
        ("p50", |r| r.p50),
        ("p99", |r| r.p99),
        ("p99.9", |r| r.p999),
        ("max", |r| r.max),
    ];
    for (name, pick) in quantiles {
        report.add(
            &format!("  commit latency {name}, ms"),
            2,
            Better::Lower,
            c(pick(&ours)),
            others(&pick),
        );
        if name == "p99.9" {
            report.target(
                &format!("at most 2x auto-compaction off ({})", ms(2.0 * off.p999)),
                ours.p999 <= 2.0 * off.p999,
            );
        }
        if name == "max" {
            report.target("at most 100 ms", ours.max <= 100.0);
        }
        report.add(
            &format!("    {name}, automatic compaction off, ms"),
            2,
            Better::Neither,
            c(pick(&off)),
            [na(), na(), na()],
        );
    }
    // Counts, with their share of the run's commits (the runs differ in length).
    let share = |r: &Run, k: f64| cn(k, &format!("{:.1}%", 100.0 * k / r.commits));
    let counts: [(&str, Pick); 2] = [("10", |r| r.over10), ("100", |r| r.over100)];
    for (limit, pick) in counts {
        report.add(
            &format!("  commits over {limit} ms"),
            0,
            Better::Neither,
            share(&ours, pick(&ours)),
            [
                share(&sqlite[0], pick(&sqlite[0])),
                share(&sqlite[1], pick(&sqlite[1])),
                na(),
            ],
        );
        if limit == "100" {
            report.target("none", ours.over100 == 0.0);
        }
        report.add(
            &format!("    over {limit} ms, automatic compaction off"),
            0,
            Better::Neither,
            share(&off, pick(&off)),
            [na(), na(), na()],
        );
    }
    report.add(
        "  peak memory over the updates (VmHWM), MiB",
        0,
        Better::Lower,
        cn(
            ours.peak_mib,
            &format!("{:.2}x a fresh restore", ours.peak_mib / retained),
        ),
        others(&|r| r.peak_mib),
    );
    report.target(
        &format!("at most 1.5x a fresh restore ({:.0} MiB)", 1.5 * retained),
        ours.peak_mib <= 1.5 * retained,
    );
    report.add(
        "    automatic compaction off, MiB",
        0,
        Better::Neither,
        c(off.peak_mib),
        [na(), na(), na()],
    );
    report.add(
        "  resident memory at the end of the updates (VmRSS), MiB",
        0,
        Better::Neither,
        cn(
            ours.end_mib,
            &format!("{:.2}x a fresh restore", ours.end_mib / retained),
        ),
        [na(), na(), na()],
    );
    report.add(
        "  resident memory when the updates start (VmRSS after opening), MiB",
        0,
        Better::Neither,
        c(restored / 1024.0),
        [na(), na(), na()],
    );
    report.add(
        "  retained memory after a fresh restore of the state they leave (VmRSS), MiB",
        0,
        Better::Neither,
        c(retained),
        [na(), na(), na()],
    );
    report.add(
        "  automatic compactions beside the writer (median), rows/s",
        0,
        Better::Neither,
        cn(
            rows as f64 / median_secs,
            &format!("{median_secs:.2} s, {sampled} sampled"),
        ),
        [na(), na(), na()],
    );
    report.target("at least 2M rows/s", rows as f64 / median_secs >= 2e6);
    let extra = extra_kib / 1024.0;
    report.add(
        "  extra memory during an automatic compaction (largest, sampled every 2 ms), MiB",
        0,
        Better::Neither,
        cn(extra, &format!("{:.2}x retained", extra / retained)),
        [na(), na(), na()],
    );
    report.target(
        &format!("at most 0.3x retained ({:.0} MiB)", 0.3 * retained),
        extra <= 0.3 * retained,
    );
    report.add(
        "compaction alone (Store::compact, no writers) of the same state, rows/s",
        0,
        Better::Neither,
        cn(
            per_sec(rows, Duration::from_secs_f64(alone_secs)),
            &format!("{alone_secs:.2} s"),
        ),
        [na(), na(), na()],
    );
    report.target("at least 2M rows/s", rows as f64 / alone_secs >= 2e6);
    let alone = alone_kib / 1024.0;
    report.add(
        "  extra memory during it (VmHWM over VmRSS before), MiB",
        0,
        Better::Neither,
        cn(alone, &format!("{:.2}x retained", alone / retained)),
        [na(), na(), na()],
    );
    report.target(
        &format!("at most 0.3x retained ({:.0} MiB)", 0.3 * retained),
        alone <= 0.3 * retained,
    );
}
