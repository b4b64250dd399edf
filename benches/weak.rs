//! Weak durability: marks per second from 4 threads; a flush of 100,000 dirty rows against
//! SQLite (WAL, synchronous=NORMAL) upserting the same rows in one transaction; and the longest
//! pause a reader of the weak store and a strong writer see while the flush runs.
//!
//! Run with `cargo bench --bench weak` (set `NOCOMPACT=1` to keep the weak store from compacting
//! right after the flush); figures are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use statelog::weak::{DirtySet, Flusher};
use statelog::{Readable, Store, StoreOptions, TableDef};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeDynamic {
    failure_count: u32,
    circuit_open_since: i64,
    egress_ip: String,
    egress_region: String,
    egress_updated_at_ns: i64,
}

fn row(i: u64) -> NodeDynamic {
    NodeDynamic {
        failure_count: (i % 5) as u32,
        circuit_open_since: 0,
        egress_ip: format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
        egress_region: ["eu", "us", "ap"][(i % 3) as usize].into(),
        egress_updated_at_ns: 1_700_000_000_000_000_000 + i as i64,
    }
}

/// Measured runs of each flush (the median is printed).
const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let work =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    const ROWS: u64 = 100_000;

    // 1. Marks per second, 4 threads, 1M marks each, over 100,000 keys.
    let dirty = Arc::new(DirtySet::<u64>::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let d = dirty.clone();
            s.spawn(move || {
                for i in 0..1_000_000u64 {
                    d.mark_upsert((i * 4 + t) % ROWS);
                }
            });
        }
    });
    let marks = 4_000_000.0 / t0.elapsed().as_secs_f64();
    println!("marks from 4 threads: {marks:.0}/s");

    // 2. A flush of 100,000 dirty rows, with a reader and a strong writer running.
    let weak = Store::open(
        work.path().join("cache"),
        StoreOptions {
            auto_compact: std::env::var("NOCOMPACT").is_err(),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let strong = Store::open(work.path().join("state"), StoreOptions::default()).unwrap();
    let table = weak
        .table(TableDef::<u64, NodeDynamic>::new("nodes_dynamic"))
        .unwrap();
    let config = strong.table(TableDef::<u64, u64>::new("config")).unwrap();
    let memory: Arc<Mutex<HashMap<u64, NodeDynamic>>> =
        Arc::new(Mutex::new((0..ROWS).map(|i| (i, row(i))).collect()));
    let m = memory.clone();
    // The flush borrows each value under the application's lock (no copy of the row).
    let flusher =
        Flusher::new(weak.clone()).source_borrowed(&table, dirty.clone(), move |k, lend| {
            if let Some(v) = m.lock().get(k) {
                lend(v);
            }
        });
    // A first flush fills the table; the measured ones rewrite every row: first alone (the
    // median of RUNS), then once with a reader and a strong writer running beside it.
    flusher.flush().unwrap();
    let mut alone = Vec::new();
    for _ in 0..RUNS {
        for i in 0..ROWS {
            dirty.mark_upsert(i);
        }
        let t0 = Instant::now();
        flusher.flush().unwrap();
        alone.push(t0.elapsed());
    }
    let flush_alone = median(alone);
    for i in 0..ROWS {
        dirty.mark_upsert(i);
    }
    let stop = AtomicBool::new(false);
    let (flush_time, (reader_pause, slowest_read), writer_max, stolen) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            let mut i = 0u64;
            // The slowest snapshot taken (an atomic load: any time it takes is the machine's).
            let mut slowest_read = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let snap = weak.read();
                slowest_read = slowest_read.max(t.elapsed());
                let _ = snap.get(&table, &(i % ROWS)).unwrap();
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
                i += 7;
            }
            (worst, slowest_read)
        });
        let writer = s.spawn(|| {
            let mut worst = Duration::ZERO;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                strong.write(|tx| tx.insert(&config, &1, &n)).unwrap();
                worst = worst.max(t.elapsed());
                n += 1;
            }
            worst
        });
        std::thread::sleep(Duration::from_millis(50));
        let stolen = steal_ticks();
        let t0 = Instant::now();
        let report = flusher.flush().unwrap();
        let took = t0.elapsed();
        let stolen = steal_ticks().zip(stolen).map(|(b, a)| b.saturating_sub(a));
        assert_eq!(report.rows(), ROWS as usize);
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        (took, reader.join().unwrap(), writer.join().unwrap(), stolen)
    });

    let c = Connection::open(work.path().join("bench.sqlite")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.execute_batch(
        "CREATE TABLE nodes_dynamic (hash INTEGER PRIMARY KEY, failure_count INTEGER, \
         circuit_open_since INTEGER, egress_ip TEXT, egress_region TEXT, egress_updated_at_ns INTEGER)",
    )
    .unwrap();
    let upsert_all = |c: &Connection| {
        c.execute_batch("BEGIN").unwrap();
        let mut st = c
            .prepare_cached(
                "INSERT INTO nodes_dynamic VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(hash) DO UPDATE SET \
                 failure_count = excluded.failure_count, circuit_open_since = excluded.circuit_open_since, \
                 egress_ip = excluded.egress_ip, egress_region = excluded.egress_region, \
                 egress_updated_at_ns = excluded.egress_updated_at_ns",
            )
            .unwrap();
        let m = memory.lock();
        for i in 0..ROWS {
            let r = &m[&i];
            st.execute(params![
                i as i64,
                r.failure_count,
                r.circuit_open_since,
                r.egress_ip,
                r.egress_region,
                r.egress_updated_at_ns
            ])
            .unwrap();
        }
        drop(st);
        c.execute_batch("COMMIT").unwrap();
    };
    upsert_all(&c);
    let sqlite_time = median(
        (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                upsert_all(&c);
                t0.elapsed()
            })
            .collect(),
    );
    println!(
        "flush of {ROWS} dirty rows (one atomic transaction, fsynced), median of {RUNS}: {:.1} ms; SQLite NORMAL, same rows in one transaction: {:.1} ms; ratio {:.2}x",
        flush_alone.as_secs_f64() * 1e3,
        sqlite_time.as_secs_f64() * 1e3,
        sqlite_time.as_secs_f64() / flush_alone.as_secs_f64()
    );
    println!(
        "the same flush with a reader and a strong writer running beside it (2 cores): {:.1} ms",
        flush_time.as_secs_f64() * 1e3
    );
    println!(
        "during the flush: longest pause of a reader of the weak store {:.3} ms; slowest strong commit to the strong store {:.3} ms",
        reader_pause.as_secs_f64() * 1e3,
        writer_max.as_secs_f64() * 1e3
    );
    println!(
        "during the flush: slowest snapshot taken by the reader (one atomic load) {:.3} ms; CPU time the hypervisor took from this VM (steal, /proc/stat): {}",
        slowest_read.as_secs_f64() * 1e3,
        stolen.map_or_else(|| "not measured".to_string(), |t| format!("{} ms", t * 10))
    );
    let io = work.path().join("gap-io.bin");
    let (one, two, with_io) = (busy_gap(1, None), busy_gap(2, None), busy_gap(2, Some(&io)));
    println!(
        "the machine's floor for that pause, nothing of statelog running: the longest gap a thread that only spins sees in 1 s: {:.3} ms alone, {:.3} ms beside a second spinning thread (both cores busy), {:.3} ms beside it and a thread writing 5 MiB + fdatasync in a loop (a flush's disk work)",
        one.as_secs_f64() * 1e3,
        two.as_secs_f64() * 1e3,
        with_io.as_secs_f64() * 1e3
    );
    let slowest_sync = fsync_beside_a_flush(&io, &work.path().join("gap-sync.bin"));
    println!(
        "the machine's floor for the strong commit: the slowest 100-byte append + fdatasync in 1 s beside a thread writing 5 MiB + fdatasync in a loop: {:.3} ms",
        slowest_sync.as_secs_f64() * 1e3
    );
}

/// Writes 5 MiB to `path` and fdatasyncs it, over and over until `stop` (a flush's disk work).
fn write_like_a_flush(path: &std::path::Path, stop: &AtomicBool) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let buf = vec![7u8; 1 << 20];
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..5 {
            f.write_all(&buf).unwrap();
        }
        f.sync_data().unwrap();
    }
}

/// The slowest of 1 s of 100-byte appends to `sync`, each fdatasynced, beside a thread that
/// writes 5 MiB to `io` and fdatasyncs it, over and over (the disk work of a flush).
fn fsync_beside_a_flush(io: &std::path::Path, sync: &std::path::Path) -> Duration {
    use std::io::Write;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| write_like_a_flush(io, &stop));
        let mut f = std::fs::File::create(sync).unwrap();
        let end = Instant::now() + Duration::from_secs(1);
        let mut worst = Duration::ZERO;
        while Instant::now() < end {
            let t = Instant::now();
            f.write_all(&[5u8; 100]).unwrap();
            f.sync_data().unwrap();
            worst = worst.max(t.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        worst
    })
}

/// The steal time of all CPUs so far (Linux, in ticks of 10 ms), if readable.
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

/// The longest gap between two iterations of a loop that only spins, in any of `threads`
/// threads spinning together for a second (with `io`, beside a thread that writes 5 MiB to
/// that file and fdatasyncs it, over and over): the pauses the machine itself (its kernel,
/// its hypervisor, its disk) gives a busy thread.
fn busy_gap(threads: usize, io: Option<&std::path::Path>) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(path) = io {
            let stop = &stop;
            s.spawn(move || write_like_a_flush(path, stop));
        }
        let spinners: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let end = Instant::now() + Duration::from_secs(1);
                    let mut last = Instant::now();
                    let mut worst = Duration::ZERO;
                    while last < end {
                        std::hint::black_box(0u64);
                        let now = Instant::now();
                        worst = worst.max(now - last);
                        last = now;
                    }
                    worst
                })
            })
            .collect();
        let worst = spinners
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        worst
    })
}
