//! Frame layer throughput: append (no fsync) and forward read of 100 B, 1 KiB and 64 KiB
//! entries, beside the machine's limits measured in the same run (crc32fast and memcpy).
//!
//! Run with `cargo bench --bench frame`; figures are recorded in BENCHMARKS.md.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use statelog::backend::{Backend, FsBackend};
use statelog::frame::{LogOptions, LogReader, LogWriter};

const SIZES: [usize; 3] = [100, 1024, 64 * 1024];
/// Bytes of entries in the file the read benchmarks cycle through.
const READ_FILE_BYTES: usize = 64 << 20;

fn machine_limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    let src = vec![0xA5u8; 1 << 20];
    let mut dst = vec![0u8; 1 << 20];
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("crc32fast_1MiB", |b| {
        b.iter(|| crc32fast::hash(black_box(&src)))
    });
    g.bench_function("memcpy_1MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let be = FsBackend::new();
    let mut g = c.benchmark_group("frame_append");
    for size in SIZES {
        let payload = vec![0x5Au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let path = dir.path().join("append.log");
                let _ = be.remove(&path);
                let mut w = LogWriter::create(&be, &path, &LogOptions::default()).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    w.append(black_box(&payload)).unwrap();
                }
                w.flush().unwrap();
                let took = t.elapsed();
                drop(w);
                be.remove(&path).unwrap();
                took
            })
        });
    }
    g.finish();
}

fn write_file(be: &dyn Backend, path: &Path, size: usize) -> u64 {
    let mut w = LogWriter::create(be, path, &LogOptions::default()).unwrap();
    let payload = vec![0xC3u8; size];
    let n = (READ_FILE_BYTES / size) as u64;
    for _ in 0..n {
        w.append(&payload).unwrap();
    }
    w.sync().unwrap();
    n
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let be = FsBackend::new();
    let mut g = c.benchmark_group("frame_read");
    for size in SIZES {
        let path = dir.path().join(format!("read-{size}.log"));
        write_file(&be, &path, size);
        g.throughput(Throughput::Bytes(size as u64));
        for (name, sealed) in [("pread", false), ("mmap", true)] {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                let mut r = LogReader::open(&be, &path, sealed).unwrap();
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    let mut left = iters;
                    let t = Instant::now();
                    while left > 0 {
                        match r.next_entry().unwrap() {
                            Some(e) => {
                                black_box(e.payload);
                                left -= 1;
                            }
                            None => r.seek(0),
                        }
                    }
                    took += t.elapsed();
                    took
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = machine_limits, append, read
}
criterion_main!(benches);
