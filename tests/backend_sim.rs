//! Tests of the simulator backend (`SimBackend`): durability model, crash modes, crash points,
//! faults, capacity, locks, determinism; and a few tests of the real-files backend.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::Arc;

use statelog::Error;
use statelog::backend::{
    Backend, CrashMode, Fault, FaultKind, FileHandle, FsBackend, LockMode, OpKind, ReadAt,
    SimBackend,
};

const MODES: [CrashMode; 4] = [
    CrashMode::LoseUnsynced,
    CrashMode::KeepPrefix,
    CrashMode::Sectors,
    CrashMode::Any,
];

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// Deterministic bytes that are never zero, so zeroed sectors stand out.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(97))) % 251 + 1) as u8)
        .collect()
}

fn read_all(h: &dyn ReadAt) -> Vec<u8> {
    let len = h.len().expect("len") as usize;
    let mut buf = vec![0u8; len];
    let n = h.read_full_at(&mut buf, 0).expect("read");
    assert_eq!(n, len);
    buf
}

fn is_crash(e: &io::Error) -> bool {
    e.to_string() == "simulated crash"
}

fn is_stale(e: &io::Error) -> bool {
    e.to_string() == "stale handle after simulated crash"
}

fn is_eio(e: &io::Error) -> bool {
    e.to_string() == "simulated EIO"
}

fn is_enospc(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull && e.to_string() == "simulated ENOSPC"
}

/// Applies a write the way a file does (zero-extending a gap; empty writes change nothing).
fn model_write(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if data.len() < offset + bytes.len() {
        data.resize(offset + bytes.len(), 0);
    }
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn new_file(sim: &SimBackend, path: &str, bytes: &[u8]) -> Arc<dyn FileHandle> {
    let f = sim.create(p(path)).expect("create");
    f.write_at(bytes, 0).expect("write");
    f.sync_data().expect("sync");
    f
}

// ---------------------------------------------------------------------------------------------
// Durability model

#[test]
fn synced_data_survives_every_mode() {
    for mode in MODES {
        for seed in 0..40 {
            let sim = SimBackend::new(seed);
            sim.create_dir_all(p("db")).unwrap();
            let data = pattern(seed, 1300);
            let f = sim.create(p("db/a")).unwrap();
            f.write_at(&data[..700], 0).unwrap();
            f.write_at(&data[700..], 700).unwrap();
            f.sync_data().unwrap();
            let g = new_file(&sim, "db/b", b"small");
            g.sync_all().unwrap();
            sim.crash(mode);
            assert_eq!(
                sim.file_bytes(p("db/a")),
                Some(data.clone()),
                "{mode:?} {seed}"
            );
            assert_eq!(sim.durable_bytes(p("db/a")), Some(data.clone()));
            assert_eq!(read_all(&*sim.open_read(p("db/a")).unwrap()), data);
            assert_eq!(sim.file_bytes(p("db/b")).unwrap(), b"small");
            assert_eq!(sim.list(p("db")).unwrap(), ["a", "b"]);
        }
    }
}

#[test]
fn unsynced_data_is_lost_with_lose_unsynced() {
    let sim = SimBackend::new(7);
    let synced = pattern(1, 2000);
    let f = new_file(&sim, "f", &synced);
    f.write_at(&pattern(2, 100), 0).unwrap();
    f.write_at(&pattern(3, 900), 2000).unwrap();
    f.set_len(2500).unwrap();
    f.preallocate(8000).unwrap();
    assert_eq!(sim.file_bytes(p("f")).unwrap().len(), 8000);
    assert_eq!(sim.durable_bytes(p("f")).unwrap(), synced);
    // A created file whose data was never synced comes back empty.
    let g = sim.create(p("g")).unwrap();
    g.write_at(b"never synced", 0).unwrap();
    sim.crash(CrashMode::LoseUnsynced);
    assert_eq!(sim.file_bytes(p("f")).unwrap(), synced);
    assert_eq!(sim.file_bytes(p("g")).unwrap(), b"");
    // The crash image is both live and durable.
    assert_eq!(sim.durable_bytes(p("f")).unwrap(), synced);
}

#[test]
fn keep_prefix_of_appends_is_a_byte_prefix() {
    let chunks = [1usize, 7, 300, 512, 33, 1000];
    let base = pattern(9, 100);
    let mut full = base.clone();
    for (i, len) in chunks.iter().enumerate() {
        full.extend(pattern(i as u64 + 10, *len));
    }
    let boundaries: BTreeSet<usize> = chunks
        .iter()
        .scan(base.len(), |acc, len| {
            *acc += len;
            Some(*acc)
        })
        .chain([base.len()])
        .collect();
    let (mut nothing, mut everything, mut mid_chunk, mut at_boundary) = (0, 0, 0, 0);
    for seed in 0..300 {
        let sim = SimBackend::new(seed);
        let f = new_file(&sim, "log", &base);
        let mut off = base.len();
        for (i, len) in chunks.iter().enumerate() {
            f.write_at(&pattern(i as u64 + 10, *len), off as u64)
                .unwrap();
            off += len;
        }
        sim.crash(CrashMode::KeepPrefix);
        let got = sim.file_bytes(p("log")).unwrap();
        assert!(
            got.len() >= base.len() && got.len() <= full.len(),
            "seed {seed}"
        );
        assert_eq!(got, full[..got.len()], "seed {seed}: not a prefix");
        if got.len() == base.len() {
            nothing += 1;
        } else if got.len() == full.len() {
            everything += 1;
        } else if boundaries.contains(&got.len()) {
            at_boundary += 1;
        } else {
            mid_chunk += 1;
        }
    }
    assert!(nothing > 0 && everything > 0 && mid_chunk > 0 && at_boundary > 0);
}

#[derive(Clone, Debug)]
enum ModelChange {
    Write(usize, Vec<u8>),
    SetLen(usize),
}

#[test]
fn keep_prefix_of_overlapping_changes_is_one_of_the_prefix_images() {
    let base = pattern(1, 200);
    let changes = vec![
        ModelChange::Write(10, vec![1; 50]),
        ModelChange::Write(30, vec![2; 100]),
        ModelChange::SetLen(60),
        ModelChange::Write(100, vec![3; 20]),
        ModelChange::SetLen(150),
        ModelChange::Write(0, vec![4; 5]),
    ];
    // Every image a prefix (with the last write cut to any byte prefix) can give.
    let mut candidates = BTreeSet::new();
    let mut image = base.clone();
    candidates.insert(image.clone());
    for change in &changes {
        if let ModelChange::Write(off, bytes) = change {
            for cut in 0..=bytes.len() {
                let mut partial = image.clone();
                model_write(&mut partial, *off, &bytes[..cut]);
                candidates.insert(partial);
            }
        }
        match change {
            ModelChange::Write(off, bytes) => model_write(&mut image, *off, bytes),
            ModelChange::SetLen(len) => image.resize(*len, 0),
        }
        candidates.insert(image.clone());
    }
    let live = image;
    let mut seen = BTreeSet::new();
    for seed in 0..400 {
        let sim = SimBackend::new(seed);
        let f = new_file(&sim, "f", &base);
        for change in &changes {
            match change {
                ModelChange::Write(off, bytes) => f.write_at(bytes, *off as u64).unwrap(),
                ModelChange::SetLen(len) => f.set_len(*len as u64).unwrap(),
            }
        }
        assert_eq!(sim.file_bytes(p("f")).unwrap(), live);
        sim.crash(CrashMode::KeepPrefix);
        let got = sim.file_bytes(p("f")).unwrap();
        assert!(candidates.contains(&got), "seed {seed}: {got:?}");
        seen.insert(got);
    }
    assert!(seen.contains(&base) && seen.contains(&live));
    assert!(seen.len() > 6, "only {} distinct images", seen.len());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SectorFate {
    New,
    Old,
    Zero,
    Torn,
}

/// What a crashed sector became, or None if it is none of new, old, zeros, torn.
fn sector_fate(got: &[u8], old: &[u8], new: &[u8]) -> Option<SectorFate> {
    if got == new {
        return Some(SectorFate::New);
    }
    if got == old {
        return Some(SectorFate::Old);
    }
    // Zeroed: every byte the writes changed reads as zero; the bytes they left alone keep
    // their value (powersafe overwrite).
    let zeroed = got
        .iter()
        .zip(old.iter().zip(new))
        .all(|(g, (o, n))| if o == n { g == o } else { *g == 0 });
    if zeroed {
        return Some(SectorFate::Zero);
    }
    // Torn: got[..k] == new[..k] and got[k..] == old[k..] for some k in 1..512.
    let same_new = got.iter().zip(new).take_while(|(a, b)| a == b).count();
    let same_old_from = got.len()
        - got
            .iter()
            .zip(old)
            .rev()
            .take_while(|(a, b)| a == b)
            .count();
    let lo = same_old_from.max(1);
    let hi = same_new.min(511);
    (lo <= hi).then_some(SectorFate::Torn)
}

fn zero_extended(data: &[u8], start: usize, end: usize) -> Vec<u8> {
    (start..end)
        .map(|i| data.get(i).copied().unwrap_or(0))
        .collect()
}

#[test]
fn sectors_become_new_old_zero_or_torn() {
    let old = pattern(1, 512 * 6 + 100);
    let mut new = old.clone();
    // Change sectors 0, 1 (partly), 3, 4, 5; leave sector 2 alone; extend by two sectors.
    model_write(&mut new, 0, &pattern(2, 700));
    model_write(&mut new, 512 * 3 + 17, &pattern(3, 512 * 4 + 10));
    assert_eq!(new[1024..1536], old[1024..1536]);
    let mut fates = BTreeSet::new();
    let mut lengths = BTreeSet::new();
    for seed in 0..300 {
        let sim = SimBackend::new(seed);
        let f = new_file(&sim, "f", &old);
        f.write_at(&new[..700], 0).unwrap();
        f.write_at(&new[512 * 3 + 17..], 512 * 3 + 17).unwrap();
        assert_eq!(sim.file_bytes(p("f")).unwrap(), new);
        sim.crash(CrashMode::Sectors);
        let got = sim.file_bytes(p("f")).unwrap();
        assert!(
            got.len() == old.len() || got.len() == new.len(),
            "seed {seed}"
        );
        lengths.insert(got.len());
        for start in (0..got.len()).step_by(512) {
            let end = (start + 512).min(got.len());
            let o = zero_extended(&old, start, end);
            let n = zero_extended(&new, start, end);
            let fate = sector_fate(&got[start..end], &o, &n);
            let fate = fate.unwrap_or_else(|| panic!("seed {seed}: sector at {start} is garbage"));
            if o == n {
                assert_eq!(
                    got[start..end],
                    o,
                    "seed {seed}: unchanged sector {start} changed"
                );
            } else {
                fates.insert(fate);
            }
        }
    }
    assert_eq!(lengths.len(), 2);
    let all = [
        SectorFate::New,
        SectorFate::Old,
        SectorFate::Zero,
        SectorFate::Torn,
    ];
    assert_eq!(fates, all.into_iter().collect());
}

#[test]
fn lengths_follow_syncs() {
    let sim = SimBackend::new(3);
    let data = pattern(4, 1000);
    let f = new_file(&sim, "f", &data);
    f.set_len(10).unwrap();
    assert_eq!(f.len().unwrap(), 10);
    sim.crash(CrashMode::LoseUnsynced);
    let f = sim.open(p("f")).unwrap();
    assert_eq!(f.len().unwrap(), 1000);
    f.set_len(3000).unwrap();
    f.sync_all().unwrap();
    f.preallocate(5000).unwrap();
    assert_eq!(f.len().unwrap(), 5000);
    sim.crash(CrashMode::LoseUnsynced);
    let f = sim.open(p("f")).unwrap();
    let mut expect = data.clone();
    expect.resize(3000, 0);
    assert_eq!(read_all(&*f), expect);
    f.preallocate(4096).unwrap();
    f.sync_data().unwrap();
    // Preallocating less than the length changes nothing.
    f.preallocate(100).unwrap();
    assert_eq!(f.len().unwrap(), 4096);
    f.set_len(50).unwrap();
    f.sync_data().unwrap();
    for mode in MODES {
        sim.crash(mode);
        assert_eq!(sim.file_bytes(p("f")).unwrap(), data[..50]);
    }
}

#[test]
fn preallocate_reads_zeros() {
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"abc");
    f.preallocate(10).unwrap();
    assert_eq!(read_all(&*f), b"abc\0\0\0\0\0\0\0");
}

// ---------------------------------------------------------------------------------------------
// Namespace durability

#[test]
fn create_is_lost_without_dir_sync_and_kept_once_synced() {
    for mode in [
        CrashMode::LoseUnsynced,
        CrashMode::KeepPrefix,
        CrashMode::Sectors,
    ] {
        for seed in 0..20 {
            let sim = SimBackend::new(seed);
            sim.create_dir_all(p("d")).unwrap();
            let n = sim.ops();
            sim.crash_after(n + 1);
            let err = sim.create(p("d/f")).unwrap_err();
            assert!(is_crash(&err), "{err}");
            assert!(sim.crashed());
            assert_eq!(sim.ops(), n + 1);
            // Step 1 happened in the live namespace only.
            assert_eq!(sim.file_bytes(p("d/f")), Some(Vec::new()));
            assert_eq!(sim.durable_bytes(p("d/f")), None);
            sim.crash(mode);
            assert!(!sim.crashed());
            if mode == CrashMode::LoseUnsynced {
                assert!(!sim.exists(p("d/f")).unwrap());
            }
            // Once create returns, the entry is durable.
            let _ = sim.remove(p("d/f"));
            sim.create(p("d/f")).unwrap();
            assert_eq!(sim.durable_bytes(p("d/f")), Some(Vec::new()));
            sim.crash(mode);
            assert!(sim.exists(p("d/f")).unwrap());
            assert_eq!(sim.list(p("d")).unwrap(), ["f"]);
        }
    }
}

#[test]
fn keep_prefix_may_keep_an_unsynced_namespace_change() {
    let (mut kept, mut lost) = (0, 0);
    for seed in 0..100 {
        let sim = SimBackend::new(seed);
        let n = sim.ops();
        sim.crash_after(n + 1);
        assert!(sim.create(p("f")).is_err());
        sim.crash(if seed % 2 == 0 {
            CrashMode::KeepPrefix
        } else {
            CrashMode::Sectors
        });
        if sim.exists(p("f")).unwrap() {
            kept += 1;
            assert_eq!(sim.file_bytes(p("f")).unwrap(), b"");
        } else {
            lost += 1;
        }
    }
    assert!(kept > 0 && lost > 0);
}

#[test]
fn remove_is_lost_without_dir_sync_and_kept_once_synced() {
    let sim = SimBackend::new(1);
    sim.create_dir_all(p("d")).unwrap();
    new_file(&sim, "d/f", b"data");
    let n = sim.ops();
    sim.crash_after(n + 1);
    assert!(is_crash(&sim.remove(p("d/f")).unwrap_err()));
    assert_eq!(sim.file_bytes(p("d/f")), None);
    assert_eq!(sim.durable_bytes(p("d/f")).unwrap(), b"data");
    sim.crash(CrashMode::LoseUnsynced);
    assert_eq!(sim.file_bytes(p("d/f")).unwrap(), b"data");
    sim.remove(p("d/f")).unwrap();
    assert_eq!(sim.durable_bytes(p("d/f")), None);
    for mode in MODES {
        sim.crash(mode);
        assert!(!sim.exists(p("d/f")).unwrap());
        assert!(sim.list(p("d")).unwrap().is_empty());
    }
}

#[test]
fn rename_is_lost_without_dir_sync_and_kept_once_synced() {
    let sim = SimBackend::new(1);
    sim.create_dir_all(p("d")).unwrap();
    new_file(&sim, "d/a", b"A");
    let n = sim.ops();
    sim.crash_after(n + 1);
    assert!(is_crash(&sim.rename(p("d/a"), p("d/b")).unwrap_err()));
    assert_eq!(sim.file_bytes(p("d/b")).unwrap(), b"A");
    assert_eq!(sim.durable_bytes(p("d/b")), None);
    sim.crash(CrashMode::LoseUnsynced);
    assert_eq!(sim.list(p("d")).unwrap(), ["a"]);
    sim.rename(p("d/a"), p("d/b")).unwrap();
    for mode in MODES {
        sim.crash(mode);
        assert_eq!(sim.list(p("d")).unwrap(), ["b"]);
        assert_eq!(sim.file_bytes(p("d/b")).unwrap(), b"A");
    }
}

#[test]
fn explicit_sync_dir_makes_a_change_durable() {
    let sim = SimBackend::new(2);
    sim.create_dir_all(p("d")).unwrap();
    // Fail the directory sync that ends `create`: the entry exists live, not durably.
    sim.inject(Fault {
        op: OpKind::SyncDir,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(is_eio(&sim.create(p("d/f")).unwrap_err()));
    assert!(sim.exists(p("d/f")).unwrap());
    assert_eq!(sim.durable_bytes(p("d/f")), None);
    let before = sim.ops();
    sim.sync_dir(p("d")).unwrap();
    assert_eq!(sim.ops(), before + 1);
    assert_eq!(sim.durable_bytes(p("d/f")), Some(Vec::new()));
    sim.crash(CrashMode::LoseUnsynced);
    assert!(sim.exists(p("d/f")).unwrap());
    // Syncing another directory does not help.
    sim.create_dir_all(p("e")).unwrap();
    sim.inject(Fault {
        op: OpKind::SyncDir,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(sim.create(p("d/g")).is_err());
    sim.sync_dir(p("e")).unwrap();
    sim.sync_dir(p("")).unwrap();
    sim.crash(CrashMode::LoseUnsynced);
    assert_eq!(sim.list(p("d")).unwrap(), ["f"]);
}

#[test]
fn create_dir_all_levels_are_durable_one_by_one() {
    let sim = SimBackend::new(0);
    let before = sim.ops();
    sim.create_dir_all(p("a/b/c")).unwrap();
    assert_eq!(sim.ops(), before + 6);
    assert!(sim.exists(p("a/b/c")).unwrap());
    assert_eq!(sim.list(p("a/b")).unwrap(), ["c"]);
    sim.create_dir_all(p("a/b/c")).unwrap();
    assert_eq!(sim.ops(), before + 6, "existing dirs cost nothing");
    sim.crash(CrashMode::LoseUnsynced);
    assert!(sim.exists(p("a/b/c")).unwrap());

    // Stop between step 1 and step 2 of level "x/y".
    let sim = SimBackend::new(0);
    let n = sim.ops();
    sim.crash_after(n + 3);
    assert!(is_crash(&sim.create_dir_all(p("x/y/z")).unwrap_err()));
    assert!(sim.exists(p("x/y")).is_err());
    sim.crash(CrashMode::LoseUnsynced);
    assert!(sim.exists(p("x")).unwrap());
    assert!(!sim.exists(p("x/y")).unwrap());
    assert!(!sim.exists(p("x/y/z")).unwrap());
}

#[test]
fn files_under_a_directory_that_is_not_durable_vanish() {
    let sim = SimBackend::new(0);
    sim.inject(Fault {
        op: OpKind::SyncDir,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(sim.create_dir_all(p("x")).is_err());
    assert!(sim.exists(p("x")).unwrap());
    new_file(&sim, "x/f", b"synced");
    assert_eq!(sim.durable_bytes(p("x/f")).unwrap(), b"synced");
    sim.crash(CrashMode::LoseUnsynced);
    assert!(!sim.exists(p("x/f")).unwrap());
    assert!(!sim.exists(p("x")).unwrap());
    assert!(sim.list(p("")).unwrap().is_empty());
}

#[test]
fn rename_is_atomic_at_every_crash_point() {
    let old = pattern(1, 1500);
    let new = pattern(2, 2100);
    let (mut saw_old, mut saw_new) = (0, 0);
    for mode in MODES {
        for seed in 0..12 {
            for stop in 0..=6u64 {
                let sim = SimBackend::new(seed);
                sim.set_file_bytes(p("db/current"), &old);
                sim.crash_after(sim.ops() + stop);
                // create (2 ops), write, sync, rename (2 ops): errors after the stop.
                let result = (|| -> io::Result<()> {
                    let f = sim.create(p("db/current.tmp"))?;
                    f.write_at(&new, 0)?;
                    f.sync_data()?;
                    sim.rename(p("db/current.tmp"), p("db/current"))
                })();
                // The machine dies once `ops()` reaches the armed point, after the 6th op too.
                assert!(sim.crashed());
                assert_eq!(result.is_err(), stop < 6, "stop {stop}");
                sim.crash(mode);
                let got = sim.file_bytes(p("db/current"));
                if got.as_deref() == Some(&old[..]) {
                    saw_old += 1;
                } else if got.as_deref() == Some(&new[..]) {
                    saw_new += 1;
                } else {
                    panic!("{mode:?} seed {seed} stop {stop}: target torn or missing");
                }
            }
        }
    }
    assert!(saw_old > 0 && saw_new > 0);
}

// ---------------------------------------------------------------------------------------------
// Crash points and handles

#[test]
fn ops_counts_mutating_operations() {
    let sim = SimBackend::new(0);
    assert_eq!(sim.ops(), 0);
    sim.create_dir_all(p("a/b")).unwrap();
    assert_eq!(sim.ops(), 4);
    let f = sim.create(p("a/b/f")).unwrap();
    assert_eq!(sim.ops(), 6);
    f.write_at(b"hello", 0).unwrap();
    assert_eq!(sim.ops(), 7);
    f.set_len(3).unwrap();
    assert_eq!(sim.ops(), 8);
    f.preallocate(100).unwrap();
    assert_eq!(sim.ops(), 9);
    f.sync_data().unwrap();
    assert_eq!(sim.ops(), 10);
    f.sync_all().unwrap();
    assert_eq!(sim.ops(), 11);
    sim.sync_dir(p("a/b")).unwrap();
    assert_eq!(sim.ops(), 12);
    // Not counted: reads, len, list, exists, opens, locks, failed argument checks.
    let mut buf = [0u8; 4];
    f.read_at(&mut buf, 0).unwrap();
    f.len().unwrap();
    sim.list(p("a/b")).unwrap();
    sim.exists(p("a/b/f")).unwrap();
    sim.open(p("a/b/f")).unwrap();
    sim.open_read(p("a/b/f")).unwrap();
    sim.open_sealed(p("a/b/f")).unwrap();
    drop(sim.lock(p("a"), LockMode::Exclusive).unwrap());
    assert!(sim.create(p("a/b/f")).is_err());
    assert!(sim.remove(p("a/b/missing")).is_err());
    assert_eq!(sim.ops(), 12);
    sim.rename(p("a/b/f"), p("a/b/g")).unwrap();
    assert_eq!(sim.ops(), 14);
    sim.remove(p("a/b/g")).unwrap();
    assert_eq!(sim.ops(), 16);
    sim.crash(CrashMode::Any);
    assert_eq!(sim.ops(), 16, "a crash keeps the counter");
    sim.create(p("z")).unwrap();
    assert_eq!(sim.ops(), 18);
}

#[test]
fn crash_after_stops_everything() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("d")).unwrap();
    let f = new_file(&sim, "d/f", b"0123456789");
    let n = sim.ops();
    sim.crash_after(n + 2);
    assert!(!sim.crashed());
    f.write_at(b"a", 0).unwrap();
    assert!(!sim.crashed());
    f.write_at(b"b", 1).unwrap();
    assert!(sim.crashed());
    assert_eq!(sim.ops(), n + 2);
    let frozen = sim.file_bytes(p("d/f")).unwrap();
    assert_eq!(frozen, b"ab23456789");
    let mut buf = [0u8; 4];
    assert!(is_crash(&f.write_at(b"c", 2).unwrap_err()));
    assert!(is_crash(&f.set_len(0).unwrap_err()));
    assert!(is_crash(&f.preallocate(100).unwrap_err()));
    assert!(is_crash(&f.sync_data().unwrap_err()));
    assert!(is_crash(&f.sync_all().unwrap_err()));
    assert!(is_crash(&f.read_at(&mut buf, 0).unwrap_err()));
    assert!(is_crash(&f.len().unwrap_err()));
    assert!(is_crash(&sim.open(p("d/f")).unwrap_err()));
    assert!(is_crash(&sim.open_read(p("d/f")).map(drop).unwrap_err()));
    assert!(is_crash(&sim.create(p("d/g")).unwrap_err()));
    assert!(is_crash(&sim.rename(p("d/f"), p("d/g")).unwrap_err()));
    assert!(is_crash(&sim.remove(p("d/f")).unwrap_err()));
    assert!(is_crash(&sim.list(p("d")).unwrap_err()));
    assert!(is_crash(&sim.create_dir_all(p("e")).unwrap_err()));
    assert!(is_crash(&sim.sync_dir(p("d")).unwrap_err()));
    assert!(is_crash(&sim.exists(p("d/f")).unwrap_err()));
    match sim.lock(p("d"), LockMode::Shared) {
        Err(Error::Io { source, .. }) => assert!(is_crash(&source)),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.ops(), n + 2);
    assert_eq!(sim.file_bytes(p("d/f")).unwrap(), frozen);
    assert_eq!(sim.durable_bytes(p("d/f")).unwrap(), b"0123456789");
    sim.crash(CrashMode::LoseUnsynced);
    assert!(!sim.crashed());
    assert_eq!(sim.file_bytes(p("d/f")).unwrap(), b"0123456789");
}

#[test]
fn crash_after_a_past_point_fires_at_once() {
    let sim = SimBackend::new(0);
    new_file(&sim, "f", b"x");
    sim.crash_after(sim.ops());
    assert!(sim.crashed());
    assert!(sim.create(p("g")).is_err());
    sim.crash(CrashMode::LoseUnsynced);
    sim.crash_after(0);
    assert!(sim.crashed());
    sim.crash(CrashMode::LoseUnsynced);
    assert!(!sim.crashed());
    sim.create(p("g")).unwrap();
}

#[test]
fn handles_go_stale_after_a_crash() {
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"durable");
    let r = sim.open_read(p("f")).unwrap();
    let clone = sim.clone();
    clone.crash(CrashMode::LoseUnsynced);
    let mut buf = [0u8; 4];
    assert!(is_stale(&f.read_at(&mut buf, 0).unwrap_err()));
    assert!(is_stale(&f.write_at(b"x", 0).unwrap_err()));
    assert!(is_stale(&f.len().unwrap_err()));
    assert!(is_stale(&f.set_len(0).unwrap_err()));
    assert!(is_stale(&f.sync_data().unwrap_err()));
    assert!(is_stale(&f.preallocate(10).unwrap_err()));
    assert!(is_stale(&r.read_at(&mut buf, 0).unwrap_err()));
    assert_eq!(sim.file_bytes(p("f")).unwrap(), b"durable");
    let g = sim.open(p("f")).unwrap();
    assert_eq!(read_all(&*g), b"durable");
    g.write_at(b"D", 0).unwrap();
    assert_eq!(clone.file_bytes(p("f")).unwrap(), b"Durable");
}

#[test]
fn orphan_inode_handle_keeps_working_after_remove() {
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"orphan");
    let r = sim.open_read(p("f")).unwrap();
    sim.remove(p("f")).unwrap();
    assert!(!sim.exists(p("f")).unwrap());
    assert_eq!(sim.file_bytes(p("f")), None);
    assert!(sim.list(p("")).unwrap().is_empty());
    f.write_at(b" still", 6).unwrap();
    f.sync_data().unwrap();
    assert_eq!(read_all(&*f), b"orphan still");
    assert_eq!(read_all(&*r), b"orphan still");
    // Renaming over a name leaves the old inode's handle on the old bytes.
    let old = new_file(&sim, "t", b"old");
    new_file(&sim, "t.tmp", b"new");
    sim.rename(p("t.tmp"), p("t")).unwrap();
    assert_eq!(read_all(&*old), b"old");
    assert_eq!(read_all(&*sim.open(p("t")).unwrap()), b"new");
    sim.crash(CrashMode::LoseUnsynced);
    assert!(!sim.exists(p("f")).unwrap());
    assert_eq!(sim.file_bytes(p("t")).unwrap(), b"new");
}

// ---------------------------------------------------------------------------------------------
// Namespace semantics

#[test]
fn namespace_errors() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("d")).unwrap();
    new_file(&sim, "d/f", b"1");
    let kind = |r: io::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(sim.create(p("d/f")).map(drop)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(sim.create(p("d")).map(drop)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(sim.create(p("nope/f")).map(drop)),
        io::ErrorKind::NotFound
    );
    assert_eq!(kind(sim.open(p("d/x")).map(drop)), io::ErrorKind::NotFound);
    assert_eq!(
        kind(sim.open_read(p("d/x")).map(drop)),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        kind(sim.open_sealed(p("d/x")).map(drop)),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        kind(sim.rename(p("d/x"), p("d/y"))),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        kind(sim.rename(p("d/f"), p("e/f"))),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(sim.rename(p("d/f"), p("f"))),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(kind(sim.remove(p("d/x"))), io::ErrorKind::NotFound);
    assert_eq!(kind(sim.list(p("nope")).map(drop)), io::ErrorKind::NotFound);
    assert_eq!(kind(sim.sync_dir(p("nope"))), io::ErrorKind::NotFound);
    assert!(sim.remove(p("d")).is_err());
    assert!(sim.open(p("d")).is_err());
    assert!(sim.list(p("d/f")).is_err());
    assert!(sim.create(p("d/f/g")).is_err());
    assert!(sim.create_dir_all(p("d/f")).is_err());
    assert!(sim.exists(p("/")).unwrap());
    assert!(sim.exists(p("")).unwrap());
    assert!(sim.exists(p(".")).unwrap());
    assert_eq!(sim.file_bytes(p("d/f")).unwrap(), b"1");
}

#[test]
fn list_and_rename_semantics() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("/db/sub")).unwrap();
    for name in ["c", "a", "b"] {
        new_file(&sim, &format!("/db/{name}"), name.as_bytes());
    }
    assert_eq!(sim.list(p("/db")).unwrap(), ["a", "b", "c", "sub"]);
    assert_eq!(sim.list(p("/db/")).unwrap(), ["a", "b", "c", "sub"]);
    assert_eq!(sim.list(p("/")).unwrap(), ["db"]);
    assert!(sim.list(p("/db/sub")).unwrap().is_empty());
    // Rename replaces the target.
    sim.rename(p("/db/a"), p("/db/b")).unwrap();
    assert_eq!(sim.list(p("/db")).unwrap(), ["b", "c", "sub"]);
    assert_eq!(sim.file_bytes(p("/db/b")).unwrap(), b"a");
    sim.remove(p("/db/c")).unwrap();
    assert_eq!(sim.list(p("/db")).unwrap(), ["b", "sub"]);
    // `.` components are dropped; relative paths list under "" and ".".
    new_file(&sim, "./top", b"t");
    assert!(sim.exists(p("top")).unwrap());
    assert_eq!(sim.list(p(".")).unwrap(), ["top"]);
    assert_eq!(sim.list(p("")).unwrap(), ["top"]);
}

#[test]
fn offsets_are_checked() {
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"abc");
    let err = f.write_at(&[1, 2], u64::MAX - 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(f.set_len(u64::MAX).is_err());
    assert!(f.preallocate(u64::MAX).is_err());
    assert!(f.write_at(&[1], 1 << 40).is_err());
    let mut buf = [0u8; 8];
    assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, 3).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, 1).unwrap(), 2);
    assert_eq!(sim.file_bytes(p("f")).unwrap(), b"abc");
    // Writing past the end zero-fills the gap.
    f.write_at(b"z", 5).unwrap();
    assert_eq!(sim.file_bytes(p("f")).unwrap(), b"abc\0\0z");
}

#[test]
fn set_file_bytes_is_durable_and_not_an_op() {
    let sim = SimBackend::new(0);
    sim.set_file_bytes(p("x/y/z"), b"seeded");
    assert_eq!(sim.ops(), 0);
    assert_eq!(sim.file_bytes(p("x/y/z")).unwrap(), b"seeded");
    assert_eq!(sim.durable_bytes(p("x/y/z")).unwrap(), b"seeded");
    assert_eq!(sim.list(p("x")).unwrap(), ["y"]);
    let f = sim.open(p("x/y/z")).unwrap();
    sim.set_file_bytes(p("x/y/z"), b"replaced");
    assert_eq!(read_all(&*f), b"replaced");
    sim.crash(CrashMode::LoseUnsynced);
    assert_eq!(sim.file_bytes(p("x/y/z")).unwrap(), b"replaced");
    assert_eq!(sim.ops(), 0);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[test]
fn eio_and_enospc_faults_change_nothing() {
    for kind in [FaultKind::Eio, FaultKind::Enospc] {
        let expected = |e: &io::Error| match kind {
            FaultKind::Eio => is_eio(e),
            _ => is_enospc(e),
        };
        let fault = |op| Fault { op, nth: 1, kind };
        let sim = SimBackend::new(0);
        sim.create_dir_all(p("d")).unwrap();
        let f = new_file(&sim, "d/f", b"original");
        f.write_at(b"O", 0).unwrap();

        sim.inject(fault(OpKind::Write));
        assert!(expected(&f.write_at(b"XXXXXXXXXXXX", 0).unwrap_err()));
        sim.inject(fault(OpKind::SetLen));
        assert!(expected(&f.set_len(1).unwrap_err()));
        sim.inject(fault(OpKind::Preallocate));
        assert!(expected(&f.preallocate(1000).unwrap_err()));
        assert_eq!(sim.file_bytes(p("d/f")).unwrap(), b"Original");
        sim.inject(fault(OpKind::Sync));
        assert!(expected(&f.sync_data().unwrap_err()));
        sim.inject(fault(OpKind::Sync));
        assert!(expected(&f.sync_all().unwrap_err()));
        assert_eq!(sim.durable_bytes(p("d/f")).unwrap(), b"original");
        sim.inject(fault(OpKind::Create));
        assert!(expected(&sim.create(p("d/g")).unwrap_err()));
        assert!(!sim.exists(p("d/g")).unwrap());
        sim.inject(fault(OpKind::Create));
        assert!(expected(&sim.create_dir_all(p("e")).unwrap_err()));
        assert!(!sim.exists(p("e")).unwrap());
        sim.inject(fault(OpKind::Rename));
        assert!(expected(&sim.rename(p("d/f"), p("d/h")).unwrap_err()));
        sim.inject(fault(OpKind::Remove));
        assert!(expected(&sim.remove(p("d/f")).unwrap_err()));
        assert_eq!(sim.list(p("d")).unwrap(), ["f"]);
        sim.inject(fault(OpKind::Open));
        assert!(expected(&sim.open(p("d/f")).unwrap_err()));
        sim.inject(fault(OpKind::Open));
        assert!(expected(&sim.open_read(p("d/f")).map(drop).unwrap_err()));
        sim.inject(fault(OpKind::Read));
        assert!(expected(&f.read_at(&mut [0u8; 4], 0).unwrap_err()));
        sim.inject(fault(OpKind::List));
        assert!(expected(&sim.list(p("d")).unwrap_err()));
        sim.inject(fault(OpKind::SyncDir));
        assert!(expected(&sim.sync_dir(p("d")).unwrap_err()));
        sim.inject(fault(OpKind::Lock));
        match sim.lock(p("d"), LockMode::Exclusive) {
            Err(Error::Io { source, .. }) => assert!(expected(&source)),
            other => panic!("{other:?}"),
        }
        // Every fault fired once: everything works again, and nothing changed.
        sim.lock(p("d"), LockMode::Exclusive).unwrap();
        assert_eq!(sim.file_bytes(p("d/f")).unwrap(), b"Original");
        assert_eq!(sim.durable_bytes(p("d/f")).unwrap(), b"original");
        assert_eq!(read_all(&*sim.open(p("d/f")).unwrap()), b"Original");
        f.write_at(b"X", 0).unwrap();
        f.sync_data().unwrap();
        assert_eq!(sim.durable_bytes(p("d/f")).unwrap(), b"Xriginal");
    }
}

#[test]
fn short_write_leaves_a_strict_prefix() {
    let mut lengths = BTreeSet::new();
    for seed in 0..100 {
        let sim = SimBackend::new(seed);
        let f = new_file(&sim, "f", &[0xAA; 200]);
        sim.inject(Fault {
            op: OpKind::Write,
            nth: 1,
            kind: FaultKind::ShortWrite,
        });
        assert!(is_eio(&f.write_at(&[0x55; 100], 50).unwrap_err()));
        let live = sim.file_bytes(p("f")).unwrap();
        assert_eq!(live.len(), 200);
        let k = live[50..].iter().take_while(|b| **b == 0x55).count();
        assert!((1..100).contains(&k), "seed {seed}: {k}");
        assert!(live[..50].iter().chain(&live[50 + k..]).all(|b| *b == 0xAA));
        lengths.insert(k);
        // Appending: the file grows by a strict prefix only.
        sim.inject(Fault {
            op: OpKind::Write,
            nth: 1,
            kind: FaultKind::ShortWrite,
        });
        assert!(f.write_at(&pattern(seed, 64), 200).is_err());
        let live = sim.file_bytes(p("f")).unwrap();
        assert!(live.len() > 200 && live.len() < 264, "seed {seed}");
        assert_eq!(live[200..], pattern(seed, 64)[..live.len() - 200]);
        // The short write is unsynced.
        assert_eq!(sim.durable_bytes(p("f")).unwrap(), [0xAA; 200]);
        // For other operations a short write is a plain EIO.
        sim.inject(Fault {
            op: OpKind::SetLen,
            nth: 1,
            kind: FaultKind::ShortWrite,
        });
        assert!(is_eio(&f.set_len(0).unwrap_err()));
        assert_eq!(sim.file_bytes(p("f")).unwrap(), live);
    }
    assert!(lengths.len() > 10);
    // A one-byte short write writes nothing.
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"ab");
    sim.inject(Fault {
        op: OpKind::Write,
        nth: 1,
        kind: FaultKind::ShortWrite,
    });
    assert!(f.write_at(b"X", 0).is_err());
    assert_eq!(sim.file_bytes(p("f")).unwrap(), b"ab");
}

#[test]
fn faults_count_from_injection_by_kind_and_fire_once() {
    let sim = SimBackend::new(0);
    let f = new_file(&sim, "f", b"");
    f.write_at(b"a", 0).unwrap();
    f.write_at(b"b", 1).unwrap();
    sim.inject(Fault {
        op: OpKind::Write,
        nth: 3,
        kind: FaultKind::Eio,
    });
    sim.inject(Fault {
        op: OpKind::Sync,
        nth: 2,
        kind: FaultKind::Enospc,
    });
    f.write_at(b"c", 2).unwrap();
    f.sync_data().unwrap(); // sync 1: does not count as a write
    f.write_at(b"d", 3).unwrap();
    assert!(is_eio(&f.write_at(b"e", 4).unwrap_err()));
    assert!(is_enospc(&f.sync_all().unwrap_err()));
    for i in 0..20u64 {
        f.write_at(b"f", 4 + i).unwrap();
        f.sync_data().unwrap();
    }
    assert_eq!(sim.file_bytes(p("f")).unwrap().len(), 24);
    // A failed argument check is not counted; clear_faults drops pending faults.
    sim.inject(Fault {
        op: OpKind::Open,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert_eq!(
        sim.open(p("missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(is_eio(&sim.open(p("f")).unwrap_err()));
    sim.inject(Fault {
        op: OpKind::Write,
        nth: 1,
        kind: FaultKind::Eio,
    });
    sim.clear_faults();
    f.write_at(b"g", 0).unwrap();
    // A crash clears pending faults too.
    sim.inject(Fault {
        op: OpKind::Create,
        nth: 1,
        kind: FaultKind::Eio,
    });
    sim.crash(CrashMode::LoseUnsynced);
    sim.create(p("g")).unwrap();
}

#[test]
fn capacity_limits_live_bytes() {
    let sim = SimBackend::new(0);
    sim.set_capacity(Some(1000));
    let a = sim.create(p("a")).unwrap();
    a.write_at(&[1; 600], 0).unwrap();
    let b = sim.create(p("b")).unwrap();
    let err = b.write_at(&[2; 600], 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(sim.file_bytes(p("b")).unwrap(), [2; 400]);
    // Overwriting in place needs no room.
    a.write_at(&[3; 600], 0).unwrap();
    assert_eq!(
        a.set_len(2000).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    assert_eq!(a.len().unwrap(), 600);
    a.set_len(100).unwrap();
    assert_eq!(
        b.preallocate(2000).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    assert_eq!(b.len().unwrap(), 900);
    // A removed file still uses space while a handle is open.
    sim.remove(p("b")).unwrap();
    assert!(a.write_at(&[4; 10], 100).is_err());
    assert_eq!(a.len().unwrap(), 100);
    drop(b);
    a.write_at(&[4; 800], 100).unwrap();
    assert_eq!(a.len().unwrap(), 900);
    sim.set_capacity(None);
    a.write_at(&[5; 10_000], 900).unwrap();
    assert_eq!(a.len().unwrap(), 10_900);
}

// ---------------------------------------------------------------------------------------------
// Locks

fn assert_locked(r: statelog::Result<statelog::backend::DirLock>, dir: &Path, pid_none: bool) {
    match r {
        Err(Error::Locked { path, pid }) => {
            assert_eq!(path, dir);
            if pid_none {
                assert_eq!(pid, None);
            }
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn sim_locks_exclude_like_the_real_backend() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("db")).unwrap();
    sim.create_dir_all(p("other")).unwrap();
    let x = sim.lock(p("db"), LockMode::Exclusive).unwrap();
    assert_locked(sim.lock(p("db"), LockMode::Exclusive), p("db"), true);
    assert_locked(sim.clone().lock(p("db"), LockMode::Shared), p("db"), true);
    let other = sim.lock(p("other"), LockMode::Exclusive).unwrap();
    drop(x);
    let s1 = sim.lock(p("db"), LockMode::Shared).unwrap();
    let s2 = sim.lock(p("db"), LockMode::Shared).unwrap();
    assert_locked(sim.lock(p("db"), LockMode::Exclusive), p("db"), true);
    drop(s1);
    assert_locked(sim.lock(p("db"), LockMode::Exclusive), p("db"), true);
    drop(s2);
    let x = sim.lock(p("db"), LockMode::Exclusive).unwrap();
    drop((x, other));
    match sim.lock(p("missing"), LockMode::Shared) {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sim_locks_are_released_by_a_crash() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("db")).unwrap();
    let before = sim.lock(p("db"), LockMode::Exclusive).unwrap();
    sim.crash(CrashMode::LoseUnsynced);
    let after = sim.lock(p("db"), LockMode::Exclusive).unwrap();
    // Dropping the pre-crash guard must not release the new holder's lock.
    drop(before);
    assert_locked(sim.lock(p("db"), LockMode::Shared), p("db"), true);
    drop(after);
    sim.lock(p("db"), LockMode::Shared).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Determinism and threads

/// A workload with synced, unsynced and half-done changes, then a crash; returns the image.
fn crash_image(seed: u64, mode: CrashMode) -> Vec<(String, Vec<u8>)> {
    let sim = SimBackend::new(seed);
    sim.create_dir_all(p("db")).unwrap();
    for i in 0..4u64 {
        let f = new_file(
            &sim,
            &format!("db/f{i}"),
            &pattern(i, 1000 + 300 * i as usize),
        );
        f.write_at(&pattern(i + 50, 1500), 200).unwrap();
        f.set_len(1400 + i * 10).unwrap();
        f.write_at(&pattern(i + 60, 700), 1300).unwrap();
    }
    sim.inject(Fault {
        op: OpKind::Write,
        nth: 1,
        kind: FaultKind::ShortWrite,
    });
    let g = sim.create(p("db/g")).unwrap();
    assert!(g.write_at(&pattern(99, 3000), 0).is_err());
    sim.crash_after(sim.ops() + 1);
    assert!(sim.rename(p("db/f0"), p("db/f1")).is_err());
    sim.crash(mode);
    sim.list(p("db"))
        .unwrap()
        .into_iter()
        .map(|name| {
            let bytes = sim.file_bytes(&Path::new("db").join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

#[test]
fn same_seed_same_crash_image() {
    for mode in MODES {
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(
                crash_image(seed, mode),
                crash_image(seed, mode),
                "{mode:?} {seed}"
            );
        }
    }
}

#[test]
fn different_seeds_give_different_sector_images() {
    let images: BTreeSet<_> = (0..20)
        .map(|s| crash_image(s, CrashMode::Sectors))
        .collect();
    assert!(images.len() > 1);
    let images: BTreeSet<_> = (0..20)
        .map(|s| crash_image(s, CrashMode::KeepPrefix))
        .collect();
    assert!(images.len() > 1);
}

#[test]
fn debug_shows_the_seed() {
    let sim = SimBackend::new(12345);
    let text = format!("{sim:?}");
    assert!(text.contains("12345"), "{text}");
    let f = new_file(&sim, "f", b"x");
    assert!(format!("{f:?}").contains("SimFile"));
}

#[test]
fn threads_share_one_machine() {
    let sim = SimBackend::new(0);
    sim.create_dir_all(p("db")).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let sim = sim.clone();
            std::thread::spawn(move || {
                let f = sim.create(&Path::new("db").join(format!("t{t}"))).unwrap();
                for i in 0..100u64 {
                    f.write_at(&[t; 10], i * 10).unwrap();
                }
                f.sync_data().unwrap();
                sim.lock(p("db"), LockMode::Exclusive).ok().is_some()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    sim.crash(CrashMode::LoseUnsynced);
    for t in 0..4u8 {
        assert_eq!(
            sim.file_bytes(&Path::new("db").join(format!("t{t}")))
                .unwrap(),
            [t; 1000]
        );
    }
    assert_eq!(sim.ops(), 2 + 4 * (2 + 100 + 1));
}

// ---------------------------------------------------------------------------------------------
// The real backend

#[test]
fn fs_exclusive_lock_twice_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBackend::new();
    let held = fs.lock(dir.path(), LockMode::Exclusive).unwrap();
    assert_locked(fs.lock(dir.path(), LockMode::Exclusive), dir.path(), false);
    drop(held);
}

#[test]
fn fs_shared_locks_coexist_and_exclude_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBackend::new();
    let s1 = fs.lock(dir.path(), LockMode::Shared).unwrap();
    let s2 = fs.lock(dir.path(), LockMode::Shared).unwrap();
    assert_locked(fs.lock(dir.path(), LockMode::Exclusive), dir.path(), false);
    drop((s1, s2));
    let x = fs.lock(dir.path(), LockMode::Exclusive).unwrap();
    assert_locked(fs.lock(dir.path(), LockMode::Shared), dir.path(), false);
    drop(x);
}

#[test]
fn fs_locks_are_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBackend::new();
    for _ in 0..3 {
        let x = fs.lock(dir.path(), LockMode::Exclusive).unwrap();
        drop(x);
        let s = fs.lock(dir.path(), LockMode::Shared).unwrap();
        drop(s);
    }
    assert!(
        fs.lock(&dir.path().join("missing"), LockMode::Shared)
            .is_err()
    );
}

#[test]
fn fs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBackend::new();
    let sub = dir.path().join("a/b");
    fs.create_dir_all(&sub).unwrap();
    assert!(fs.exists(&sub).unwrap());
    let path = sub.join("f");
    let f = fs.create(&path).unwrap();
    assert_eq!(
        fs.create(&path).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    f.write_at(b"hello", 0).unwrap();
    f.write_at(b"world", 10).unwrap();
    f.sync_data().unwrap();
    assert_eq!(read_all(&*f), b"hello\0\0\0\0\0world");
    let mut buf = [0u8; 3];
    assert_eq!(f.read_at(&mut buf, 1).unwrap(), 3);
    assert_eq!(&buf, b"ell");
    f.set_len(5).unwrap();
    f.preallocate(8).unwrap();
    assert!(f.len().unwrap() >= 8);
    f.set_len(5).unwrap();
    f.sync_all().unwrap();
    assert_eq!(read_all(&*fs.open_read(&path).unwrap()), b"hello");
    let g = fs.create(&sub.join("g")).unwrap();
    g.write_at(b"gee", 0).unwrap();
    assert_eq!(fs.list(&sub).unwrap(), ["f", "g"]);
    fs.rename(&sub.join("g"), &path).unwrap();
    assert_eq!(fs.list(&sub).unwrap(), ["f"]);
    assert_eq!(read_all(&*fs.open(&path).unwrap()), b"gee");
    fs.sync_dir(&sub).unwrap();
    fs.remove(&path).unwrap();
    assert!(!fs.exists(&path).unwrap());
    assert!(fs.list(&sub).unwrap().is_empty());
    assert_eq!(fs.open(&path).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(
        fs.remove(&path).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn fs_open_sealed_reads_like_open_read() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBackend::new();
    for (name, data) in [("empty", Vec::new()), ("data", pattern(5, 10_000))] {
        let path = dir.path().join(name);
        let f = fs.create(&path).unwrap();
        f.write_at(&data, 0).unwrap();
        f.sync_all().unwrap();
        let sealed = fs.open_sealed(&path).unwrap();
        let plain = fs.open_read(&path).unwrap();
        assert_eq!(sealed.len().unwrap(), data.len() as u64);
        assert_eq!(sealed.is_empty().unwrap(), data.is_empty());
        assert_eq!(read_all(&*sealed), data);
        assert_eq!(read_all(&*plain), data);
        for off in [0u64, 1, 511, 4096, 9_999, 10_000, 20_000, u64::MAX] {
            let (mut a, mut b) = ([0u8; 700], [0u8; 700]);
            let na = sealed.read_at(&mut a, off).unwrap();
            let nb = plain.read_at(&mut b, off).unwrap_or(0);
            assert_eq!(na, nb, "{name} at {off}");
            assert_eq!(a[..na], b[..nb]);
        }
    }
}
