//! The mixed workload: 8 readers doing point gets on uniform random ids (a snapshot / read
//! transaction per get), alone and then beside 1 writer committing strong single-row upserts
//! of random ids; statelog's readers also beside a raw fdatasync loop (the machine's floor).

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use statelog::Readable;

use crate::bulk::Opened;
use crate::engines::redb::{redb_get, redb_write};
use crate::engines::sqlite::{open_sqlite, sqlite_get, sqlite_upsert};
use crate::table::{Better, Cell, Report, c, cn, fmt_num, na};
use crate::util::{Rng, Row, percentile, progress, row_v};

const READERS: usize = 8;

pub type NoWriter = fn(&Barrier, &AtomicBool) -> Vec<Duration>;

/// One phase of the mixed workload: `READERS` reader threads (each `reader(index, ready,
/// stop)` sets up, waits on `ready`, then reads until `stop`, returning its count) and
/// optionally one writer (returning its commit latencies), for `secs`. Returns reads per
/// second and the writer's latencies, sorted.
pub fn mixed_phase<R, W>(secs: f64, reader: &R, writer: Option<&W>) -> (f64, Vec<Duration>)
where
    R: Fn(u64, &Barrier, &AtomicBool) -> u64 + Sync,
    W: Fn(&Barrier, &AtomicBool) -> Vec<Duration> + Sync,
{
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(READERS + 1 + usize::from(writer.is_some()));
    std::thread::scope(|s| {
        let (stop, ready) = (&stop, &ready);
        let readers: Vec<_> = (0..READERS as u64)
            .map(|i| s.spawn(move || reader(i, ready, stop)))
            .collect();
        let w = writer.map(|w| s.spawn(move || w(ready, stop)));
        ready.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let n: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
        let took = t0.elapsed();
        let mut lat = w.map(|h| h.join().unwrap()).unwrap_or_default();
        lat.sort();
        (n as f64 / took.as_secs_f64(), lat)
    })
}

/// Reads per batch between looks at the stop flag.
pub const BATCH: u64 = 32;

/// A reader of the mixed workload: `get` on uniform random ids below `n`, in batches, from the
/// barrier until `stop`; returns how many gets it made.
pub fn read_until(
    seed: u64,
    n: u64,
    ready: &Barrier,
    stop: &AtomicBool,
    mut get: impl FnMut(u64),
) -> u64 {
    let mut rng = Rng(100 + seed);
    ready.wait();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            get(rng.below(n));
        }
        k += BATCH;
    }
    k
}

/// The writer of the mixed workload: `put` commits one changed row on a random id below `n`,
/// from the barrier until `stop`; returns each commit's latency.
pub fn write_until(
    n: u64,
    ready: &Barrier,
    stop: &AtomicBool,
    mut put: impl FnMut(u64, Row),
) -> Vec<Duration> {
    let mut rng = Rng(999);
    let mut lat = Vec::new();
    ready.wait();
    while !stop.load(Ordering::Relaxed) {
        let id = rng.below(n);
        let r = row_v(id, lat.len() as u64 + 1);
        let t0 = Instant::now();
        put(id, r);
        lat.push(t0.elapsed());
    }
    lat
}

/// The mixed workload's rows for one phase set: readers alone, their fraction beside the
/// writer, the writer's commits per second and latencies.
fn mixed_rows(
    name: &str,
    mixed_secs: f64,
    alone: [Option<f64>; 4],
    with: [Option<(f64, Vec<Duration>)>; 4],
    report: &mut Report,
) {
    let cells = |f: &dyn Fn(usize) -> Option<f64>| -> (Cell, [Cell; 3]) {
        let cell = |i: usize| f(i).map_or_else(na, c);
        (cell(0), [cell(1), cell(2), cell(3)])
    };
    let (o, x) = cells(&|i| alone[i]);
    report.add(
        &format!("{name}: {READERS} readers alone, point gets/s"),
        0,
        Better::Higher,
        o,
        x,
    );
    // SQLite's readers alone are measured once, shown under NORMAL, and are the base of
    // both SQLite columns.
    let base = |i: usize| if i == 1 { alone[2] } else { alone[i] };
    let (o, x) = cells(&|i| Some(with[i].as_ref()?.0 / base(i)?));
    report.add(
        &format!("{name}: readers with 1 strong writer, fraction of alone"),
        2,
        Better::Higher,
        o,
        x,
    );
    let (o, x) = cells(&|i| Some(with[i].as_ref()?.1.len() as f64 / mixed_secs));
    report.add(
        &format!("{name}: writer commits/s"),
        0,
        Better::Higher,
        o,
        x,
    );
    for p in [50, 99] {
        let (o, x) = cells(&|i| Some(percentile(&with[i].as_ref()?.1, p)));
        report.add(
            &format!("{name}: writer commit latency p{p}, ms"),
            3,
            Better::Lower,
            o,
            x,
        );
    }
}

pub fn run(n: u64, mixed_secs: f64, wp: &Path, sqlite_db: &Path, o: &Opened, report: &mut Report) {
    let Opened { store, t, rdb, .. } = o;
    progress("mixed: statelog");
    let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
        read_until(i, n, ready, stop, |id| {
            black_box(store.read().get(t, &id).unwrap());
        })
    };
    let writer = |ready: &Barrier, stop: &AtomicBool| {
        write_until(n, ready, stop, |id, r| {
            store.write(|tx| tx.insert(t, &id, &r)).unwrap();
        })
    };
    let (alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
    let ours = mixed_phase(mixed_secs, &reader, Some(&writer));
    // The machine's floor: the same readers beside a loop of 100-byte appends, each
    // fdatasynced, with no store at all (the cost of a thread that only syncs).
    progress("mixed: statelog readers beside a raw fdatasync loop");
    let raw_path = wp.join("mixed-fdatasync.bin");
    let raw = |ready: &Barrier, stop: &AtomicBool| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&raw_path)
            .unwrap();
        write_until(n, ready, stop, |_, _| {
            f.write_all(&[0x5a; 100]).unwrap();
            f.sync_data().unwrap();
        })
    };
    let floor = mixed_phase(mixed_secs, &reader, Some(&raw));
    std::fs::remove_file(&raw_path).unwrap();

    progress("mixed: SQLite");
    let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
        let c = open_sqlite(sqlite_db, "NORMAL");
        read_until(i, n, ready, stop, |id| {
            black_box(sqlite_get(&c, id));
        })
    };
    let writer = |sync: &'static str| {
        let sqlite_db = &sqlite_db;
        move |ready: &Barrier, stop: &AtomicBool| {
            let c = open_sqlite(sqlite_db, sync);
            write_until(n, ready, stop, |_, r| sqlite_upsert(&c, &r))
        }
    };
    let (sqlite_alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
    let full = mixed_phase(mixed_secs, &reader, Some(&writer("FULL")));
    let normal = mixed_phase(mixed_secs, &reader, Some(&writer("NORMAL")));

    progress("mixed: redb");
    let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
        read_until(i, n, ready, stop, |id| {
            black_box(redb_get(rdb, id));
        })
    };
    let writer = |ready: &Barrier, stop: &AtomicBool| {
        write_until(n, ready, stop, |_, r| redb_write(rdb, [r]))
    };
    let (redb_alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
    let redb_with = mixed_phase(mixed_secs, &reader, Some(&writer));
    mixed_rows(
        "mixed",
        mixed_secs,
        [Some(alone), None, Some(sqlite_alone), Some(redb_alone)],
        [Some(ours), Some(full), Some(normal), Some(redb_with)],
        report,
    );
    report.add(
        "  statelog's readers beside a raw fdatasync loop, fraction of alone",
        2,
        Better::Neither,
        cn(
            floor.0 / alone,
            &format!(
                "{} fdatasyncs/s",
                fmt_num(floor.1.len() as f64 / mixed_secs, 0)
            ),
        ),
        [na(), na(), na()],
    );
}
