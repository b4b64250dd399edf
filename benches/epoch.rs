//! Epoch layer: restore time with and without history, replay throughput, and strong
//! (fsynced) appends from 1, 4 and 16 threads beside the disk's raw fdatasync rate measured in
//! the same run.
//!
//! Run with `cargo bench --bench epoch`; figures are recorded in BENCHMARKS.md.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{Durability, EpochLog, Options, Retention};

const MIB: usize = 1 << 20;

fn fs() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn keep_all() -> Options {
    Options {
        retention: Retention {
            keep_epochs: usize::MAX,
            keep_for: None,
        },
        ..Options::default()
    }
}

/// Appends `bytes` worth of `size`-byte updates (buffered).
fn fill(log: &EpochLog, bytes: usize, size: usize) {
    let update = vec![0x42u8; size];
    for _ in 0..bytes / size {
        log.append(&update, Durability::Buffered).unwrap();
    }
}

/// A directory whose current epoch is a 1 MiB snapshot and 1 MiB of 1 KiB updates, behind
/// `history` bytes of older epochs (1 MiB snapshot + 1 MiB of updates each).
fn build(dir: &Path, history: usize) {
    let (log, _) = EpochLog::open(fs(), dir, keep_all()).unwrap();
    let snapshot = vec![0x17u8; MIB];
    let mut written = 0;
    while written < history {
        fill(&log, MIB, 1024);
        log.snapshot(&snapshot).unwrap();
        written += 2 * MIB;
    }
    fill(&log, MIB, 1024);
    log.snapshot(&snapshot).unwrap();
    fill(&log, MIB, 1024);
    log.close().unwrap();
}

fn restore(dir: &Path) -> usize {
    let (log, r) = EpochLog::open(fs(), dir, Options::default()).unwrap();
    let mut n = r.snapshot.map_or(0, |s| s.len());
    for u in r.updates {
        n += u.unwrap().len();
    }
    drop(log);
    n
}

fn restore_with_history(c: &mut Criterion) {
    let fresh = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    build(fresh.path(), 0);
    build(old.path(), 100 * MIB);
    let mut g = c.benchmark_group("restore_1MiB_snapshot_1MiB_updates");
    g.throughput(Throughput::Bytes(2 * MIB as u64));
    for (name, dir) in [("fresh", &fresh), ("behind_100MiB_history", &old)] {
        g.bench_function(name, |b| b.iter(|| black_box(restore(dir.path()))));
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let entries = 500_000usize;
    fill(&log, entries * 100, 100);
    log.close().unwrap();
    let mut g = c.benchmark_group("replay_100B_updates");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((entries * 100) as u64));
    g.bench_function(BenchmarkId::new("bytes", entries), |b| {
        b.iter(|| black_box(restore(dir.path())))
    });
    g.throughput(Throughput::Elements(entries as u64));
    g.bench_function(BenchmarkId::new("entries", entries), |b| {
        b.iter(|| black_box(restore(dir.path())))
    });
    g.finish();
}

/// The disk's own rate: 100-byte appending writes, each followed by fdatasync.
fn raw_fdatasync(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("strong_appends");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_write_fdatasync", |b| {
        let path = dir.path().join("raw");
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut off = 0u64;
        let buf = [0x33u8; 100];
        b.iter(|| {
            f.write_all_at(&buf, off).unwrap();
            f.sync_data().unwrap();
            off += buf.len() as u64;
        })
    });
    for threads in [1usize, 4, 16] {
        g.bench_with_input(
            BenchmarkId::new("statelog_threads", threads),
            &threads,
            |b, &threads| {
                let d = tempfile::tempdir().unwrap();
                let (log, _) = EpochLog::open(fs(), d.path(), Options::default()).unwrap();
                let log = Arc::new(log);
                let update = [0x44u8; 100];
                b.iter_custom(|iters| {
                    let per = (iters as usize).div_ceil(threads);
                    let t = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            let log = log.clone();
                            s.spawn(move || {
                                for _ in 0..per {
                                    log.append(&update, Durability::Strong).unwrap();
                                }
                            });
                        }
                    });
                    t.elapsed().mul_f64(iters as f64 / (per * threads) as f64)
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = raw_fdatasync, restore_with_history, replay
}
criterion_main!(benches);
