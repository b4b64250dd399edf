//! The machine's limits and the floors without an engine, measured in the same run: disk
//! bandwidth and fdatasync rates, the group-commit floor, one file per committer, CRC and
//! memcpy speeds, and the cost of the workloads' own loops (building, encoding, a get from a
//! `Vec`).

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::engines::redb::{decode, encode};
use crate::table::fmt_num;
use crate::util::{Rng, Row, per_sec, progress, row};

pub fn machine_limits(dir: &Path) {
    progress("machine limits");
    // Sequential write bandwidth: 256 MiB in 1 MiB writes, then one fdatasync.
    let path = dir.join("seqwrite.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut rng = Rng(7);
    let chunk: Vec<u8> = (0..1 << 20).map(|_| rng.below(256) as u8).collect();
    let t0 = Instant::now();
    for _ in 0..256 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_data().unwrap();
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    // Let the disk settle (writeback of the removal and anything else pending), so neither
    // the fdatasync rates below nor the first workload pay for this write.
    let _ = std::process::Command::new("sync").status();
    println!(
        "sequential write, 256 MiB in 1 MiB writes + fdatasync: {:.0} MiB/s",
        256.0 / took.as_secs_f64()
    );

    // Raw fdatasync rate: 100-byte appending writes, each followed by fdatasync.
    let path = dir.join("fdatasync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let buf = [0x5au8; 100];
    let n = 2000;
    let t0 = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    println!(
        "fdatasync after a 100-byte append: {} /s ({:.1} us each, {n} in BENCH_DIR)",
        fmt_num(per_sec(n, took), 0),
        took.as_secs_f64() * 1e6 / n as f64
    );

    // The same into space allocated beforehand (as statelog's active segment reserves it):
    // the fdatasync need not make a new file length durable each time.
    let rate = allocated_fdatasyncs(dir, n);
    println!(
        "fdatasync after a 100-byte write into allocated space: {} /s ({:.1} us each)",
        fmt_num(rate, 0),
        1e6 / rate
    );

    // crc32fast over a 1 MiB buffer.
    let reps = 2048;
    let t0 = Instant::now();
    for _ in 0..reps {
        black_box(crc32fast::hash(black_box(&chunk)));
    }
    let took = t0.elapsed();
    println!(
        "crc32fast over 1 MiB: {:.2} GiB/s",
        reps as f64 / 1024.0 / took.as_secs_f64()
    );

    // memcpy of 1 MiB.
    let mut dst = vec![0u8; chunk.len()];
    let t0 = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(black_box(&chunk));
        black_box(&mut dst);
    }
    let took = t0.elapsed();
    println!(
        "memcpy of 1 MiB (copy_from_slice): {:.2} GiB/s",
        reps as f64 / 1024.0 / took.as_secs_f64()
    );
}

/// fdatasyncs per second, each after a 100-byte write into space allocated beforehand (`n`
/// of them, in one file in `dir`).
pub fn allocated_fdatasyncs(dir: &Path, n: usize) -> f64 {
    let buf = [0x5au8; 100];
    let path = dir.join("fdatasync-allocated.bin");
    let f = std::fs::File::create(&path).unwrap();
    fs2::FileExt::allocate(&f, (n * buf.len()) as u64).unwrap();
    f.sync_all().unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        std::os::unix::fs::FileExt::write_all_at(&f, &buf, (i * buf.len()) as u64).unwrap();
        f.sync_data().unwrap();
    }
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    per_sec(n, took)
}

/// The leanest group commit there is, with no engine: `threads` threads each append a
/// 128-byte record to one shared buffer under one mutex and wait (one condvar) until it is
/// durable; a waiter that finds no sync running writes the buffer into space allocated
/// beforehand and fdatasyncs it for everyone. With `gather`, that waiter first waits (at most
/// as long as the last sync took) until as many commits have arrived as the last sync made
/// durable, so the threads it released are in the next sync too. Returns commits per second
/// and commits per fdatasync: what any single-log engine's strong commits can reach here.
pub fn group_commit_floor(dir: &Path, threads: u64, per: u64, gather: bool) -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    struct Group {
        buf: Vec<u8>,
        appended: u64,
        written: u64,
        durable: u64,
        syncing: bool,
        commits: u64,
        covered: u64,
        expected: u64,
        gather_until: Instant,
    }
    let path = dir.join("group-commit-floor.bin");
    let file = std::fs::File::create(&path).unwrap();
    fs2::FileExt::allocate(&file, threads * per * 128 + (1 << 20)).unwrap();
    file.sync_all().unwrap();
    let group = parking_lot::Mutex::new(Group {
        buf: Vec::new(),
        appended: 0,
        written: 0,
        durable: 0,
        syncing: false,
        commits: 0,
        covered: 0,
        expected: 0,
        gather_until: Instant::now(),
    });
    let synced = parking_lot::Condvar::new();
    let syncs = std::sync::atomic::AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (file, group, synced, syncs) = (&file, &group, &synced, &syncs);
            s.spawn(move || {
                for _ in 0..per {
                    let mut g = group.lock();
                    g.buf.extend_from_slice(&[0x5a; 128]);
                    g.appended += 128;
                    g.commits += 1;
                    g.expected = g.expected.saturating_sub(1);
                    let target = g.appended;
                    while g.durable < target {
                        if g.syncing {
                            synced.wait(&mut g);
                            continue;
                        }
                        if gather && g.expected > 0 && Instant::now() < g.gather_until {
                            let until = g.gather_until;
                            synced.wait_until(&mut g, until);
                            continue;
                        }
                        g.syncing = true;
                        let (buf, at, commits) = (std::mem::take(&mut g.buf), g.written, g.commits);
                        g.written += buf.len() as u64;
                        let upto = g.written;
                        let started = Instant::now();
                        parking_lot::MutexGuard::unlocked(&mut g, || {
                            file.write_all_at(&buf, at).unwrap();
                            file.sync_data().unwrap();
                        });
                        syncs.fetch_add(1, Ordering::Relaxed);
                        g.durable = upto;
                        g.syncing = false;
                        g.expected = commits - g.covered;
                        g.covered = commits;
                        g.gather_until = Instant::now() + started.elapsed();
                        synced.notify_all();
                    }
                }
            });
        }
    });
    let took = t0.elapsed();
    drop(file);
    std::fs::remove_file(&path).unwrap();
    let total = threads * per;
    (
        per_sec(total as usize, took),
        total as f64 / syncs.load(Ordering::Relaxed).max(1) as f64,
    )
}

/// The disk's parallel flush capacity: `threads` threads each write a 128-byte record into
/// space allocated beforehand in a file of its own and fdatasync it, with no sharing at all.
/// Returns fdatasyncs (= commits) per second: what a log striped over one file per
/// committer could reach at most, before any ordering between the files.
pub fn own_file_fdatasyncs(dir: &Path, threads: u64, per: u64) -> f64 {
    use std::os::unix::fs::FileExt;
    let paths: Vec<_> = (0..threads)
        .map(|i| dir.join(format!("own-file-{i}.bin")))
        .collect();
    let files: Vec<_> = paths
        .iter()
        .map(|p| {
            let f = std::fs::File::create(p).unwrap();
            fs2::FileExt::allocate(&f, per * 128 + 4096).unwrap();
            f.sync_all().unwrap();
            f
        })
        .collect();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for f in &files {
            s.spawn(move || {
                for i in 0..per {
                    f.write_all_at(&[0x5a; 128], i * 128).unwrap();
                    f.sync_data().unwrap();
                }
            });
        }
    });
    let took = t0.elapsed();
    drop(files);
    for p in &paths {
        std::fs::remove_file(p).unwrap();
    }
    per_sec((threads * per) as usize, took)
}

/// What the workloads' own loops cost with no engine at all (an upper bound for every engine,
/// measured on the same rows): building the rows (what each bulk loop does per row), encoding
/// them with bincode (what a weak flush must do per row before any write), and a point get
/// from the simplest in-memory layout there is (a `Vec` indexed by id: no search, no lock).
pub fn engine_free_floors(rows: usize) {
    progress("floors without an engine");
    let n = rows as u64;
    let t0 = Instant::now();
    let built: Vec<Row> = (0..n).map(|id| black_box(row(id))).collect();
    let build = per_sec(rows, t0.elapsed());
    let t0 = Instant::now();
    let encoded: Vec<Vec<u8>> = built.iter().map(|r| black_box(encode(r))).collect();
    let took = t0.elapsed();
    println!(
        "building the bench's rows (every bulk loop does it), no engine: {} rows/s",
        fmt_num(build, 0)
    );
    println!(
        "encoding them with bincode, no engine: {} rows/s ({:.1} ms per 100,000 rows)",
        fmt_num(per_sec(rows, took), 0),
        took.as_secs_f64() * 1e3 * 100_000.0 / rows as f64
    );
    let gets = 2_000_000;
    let mut rng = Rng(11);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(n) as usize;
        black_box(encoded.get(id).map(|b| decode(b)));
    }
    println!(
        "point get floor: decode a random row from a Vec<Vec<u8>> by id: {} /s",
        fmt_num(per_sec(gets, t0.elapsed()), 0)
    );
    let mut rng = Rng(11);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(n) as usize;
        black_box(built.get(id).cloned());
    }
    println!(
        "point get floor: clone a random row from a Vec<Row> by id: {} /s",
        fmt_num(per_sec(gets, t0.elapsed()), 0)
    );
}
