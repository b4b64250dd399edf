//! Epoch layer: restore, recovery modes, the Go original's corruption cases at the epoch
//! level (../shared/research/grailbio-logio.md §2.6 F, K, J), bounded restore, rewind,
//! retention, group commit.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::payload;
use statelog::backend::{Backend, DirLock, FileHandle, FsBackend, LockMode, ReadAt};
use statelog::epoch::{
    CompactionPolicy, Durability, EpochLog, EpochReader, Options, RecoveryMode, Restored, Retention,
};
use statelog::frame::{LogWriter, TailPolicy};
use statelog::{CorruptKind, Error};

fn fs() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn updates(r: Restored) -> Vec<Vec<u8>> {
    r.updates.map(|u| u.unwrap()).collect()
}

fn seg(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The Go original's TestStateIO, in structure: updates without a snapshot restore as no
/// state plus the updates; then 100 iterations, a snapshot every 10th, the writer reopened
/// every 5th; restore gives snapshot 90 and updates 91..99.
#[test]
fn go_original_test_structure() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |n: usize| payload(n, n);
    {
        let (log, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        assert!(r.snapshot.is_none());
        log.append(&entry(1), Durability::Strong).unwrap();
        log.append(&entry(2), Durability::Strong).unwrap();
    }
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert!(r.snapshot.is_none());
    assert_eq!(updates(r), vec![entry(1), entry(2)]);

    let dir = tempfile::tempdir().unwrap();
    let mut log = None;
    for i in 0..100 {
        if i % 5 == 0 {
            drop(log.take());
            log = Some(
                EpochLog::open(fs(), dir.path(), Options::default())
                    .unwrap()
                    .0,
            );
        }
        let l = log.as_ref().unwrap();
        if i % 10 == 0 {
            l.snapshot(&entry(i)).unwrap();
        } else {
            l.append(&entry(i), Durability::Strong).unwrap();
        }
    }
    drop(log);
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.snapshot, Some(entry(90)));
    assert_eq!(updates(r), (91..100).map(entry).collect::<Vec<_>>());
}

/// Case F: the newest epoch's snapshot is damaged. The Go original silently restored an older
/// state; here it is an error naming the file and offset, unless falling back was asked for,
/// and then the fallback is reported with what was given up.
#[test]
fn damaged_latest_snapshot_is_an_error_unless_fallback_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"u0", Durability::Strong).unwrap();
        log.snapshot(&[5u8; 200]).unwrap();
        log.append(b"u1", Durability::Strong).unwrap();
    }
    let s1 = seg(dir.path(), 2);
    let mut b = std::fs::read(&s1).unwrap();
    b[32 + 11 + 8 + 80] ^= 0x10; // a byte of the snapshot entry
    std::fs::write(&s1, &b).unwrap();
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, s1);
            assert_eq!(offset, 32);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read(&s1).unwrap(),
        b,
        "a refused open changes nothing"
    );
    let opts = Options {
        fall_back: true,
        ..Options::default()
    };
    let (log, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    assert_eq!(r.epoch.id, 0);
    assert_eq!(r.report.fell_back.len(), 1);
    let fell = &r.report.fell_back[0];
    assert!(
        fell.cause.contains("0000000000000002.seg"),
        "{}",
        fell.cause
    );
    assert_eq!(fell.bytes, b.len() as u64);
    assert!(fell.segments[0].to_string_lossy().ends_with(".seg.broken"));
    assert_eq!(updates(r), vec![b"u0".to_vec()]);
    // Writing goes on in epoch 0, in a new segment after the sealed one.
    log.append(b"u2", Durability::Strong).unwrap();
    drop(log);
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert_eq!(updates(r), vec![b"u0".to_vec(), b"u2".to_vec()]);
}

/// Appends a raw epoch-layer entry to a segment (as damage or a foreign writer would).
fn append_raw(dir: &Path, seq: u64, bytes: &[u8]) {
    let (mut w, _) =
        LogWriter::open(&FsBackend::new(), &seg(dir, seq), TailPolicy::TolerateTorn).unwrap();
    w.append(bytes).unwrap();
    w.sync().unwrap();
}

fn raw_update(epoch: u64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![1u8];
    b.extend_from_slice(&epoch.to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Case K (an update written with a foreign epoch) and case J (an invalid entry kind): errors
/// naming the file and offset, or skipped and reported in salvage mode.
#[test]
fn foreign_epoch_and_bad_kind_are_corruption() {
    for (name, bad, kind) in [
        (
            "K",
            raw_update(5, b"x"),
            CorruptKind::WrongEpoch {
                expected: 1,
                found: 5,
            },
        ),
        ("J kind 9", vec![9u8; 12], CorruptKind::EntryKind(9)),
        ("J kind 0", vec![0u8; 12], CorruptKind::EntryKind(0)),
        ("short", vec![1u8; 3], CorruptKind::Payload),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
            log.snapshot(b"S").unwrap();
            log.append(b"a", Durability::Strong).unwrap();
        }
        append_raw(dir.path(), 2, &bad);
        append_raw(dir.path(), 2, &raw_update(1, b"b"));
        let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        let got: Vec<_> = r.updates.collect();
        assert_eq!(got.len(), 2, "{name}");
        assert_eq!(got[0].as_ref().unwrap(), b"a");
        match &got[1] {
            Err(Error::Corrupt { file, kind: k, .. }) => {
                assert_eq!(*k, kind, "{name}");
                assert_eq!(file, &seg(dir.path(), 2));
            }
            other => panic!("{name}: {other:?}"),
        }
        let salvage = Options {
            recovery: RecoveryMode::Salvage,
            ..Options::default()
        };
        let (_, r) = EpochLog::open(fs(), dir.path(), salvage).unwrap();
        let mut u = r.updates;
        let got: Vec<Vec<u8>> = u.by_ref().map(|x| x.unwrap()).collect();
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()], "{name}");
        assert_eq!(u.lost().len(), 1, "{name}");
        assert_eq!(u.lost()[0].kind, kind);
    }
}

/// A flipped bit in a synced update in the middle: an error in the default and strict modes;
/// salvage skips only that update and reports the lost range.
#[test]
fn salvage_skips_a_damaged_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut ends = Vec::new();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        for i in 0..20u8 {
            ends.push(log.append(&[i; 30], Durability::Strong).unwrap());
        }
    }
    let s = seg(dir.path(), 1);
    let mut b = std::fs::read(&s).unwrap();
    b[ends[9].offset as usize - 5] ^= 1; // inside update 9
    std::fs::write(&s, &b).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let opts = Options {
            recovery: mode,
            ..Options::default()
        };
        let (_, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
        let got: Vec<_> = r.updates.collect();
        assert_eq!(got.len(), 10, "{mode:?}");
        assert!(matches!(got[9], Err(Error::Corrupt { .. })), "{mode:?}");
    }
    let opts = Options {
        recovery: RecoveryMode::Salvage,
        ..Options::default()
    };
    let (_, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    let mut u = r.updates;
    let got: Vec<Vec<u8>> = u.by_ref().map(|x| x.unwrap()).collect();
    let want: Vec<Vec<u8>> = (0..20u8).filter(|&i| i != 9).map(|i| vec![i; 30]).collect();
    assert_eq!(got, want);
    assert_eq!(u.lost().len(), 1);
    assert_eq!(u.lost()[0].to, ends[9].offset);
}

/// A torn tail: cut and reported by default, an error in strict mode.
#[test]
fn torn_tail_is_cut_by_default_and_refused_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    {
        // No space reserved ahead of the data, so the file ends where the data does and
        // cutting its last bytes tears the last entry.
        let unreserved = Options {
            reserve_bytes: 0,
            ..Options::default()
        };
        let (log, _) = EpochLog::open(fs(), dir.path(), unreserved).unwrap();
        log.append(b"kept", Durability::Strong).unwrap();
        log.append(&[7u8; 3000], Durability::Strong).unwrap();
    }
    let s = seg(dir.path(), 1);
    let len = std::fs::metadata(&s).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let strict = Options {
        recovery: RecoveryMode::Strict,
        ..Options::default()
    };
    assert!(matches!(
        EpochLog::open(fs(), dir.path(), strict),
        Err(Error::Corrupt { .. })
    ));
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let cut = r.report.torn_tail.clone().unwrap();
    assert!(cut.saved_to.unwrap().exists());
    assert_eq!(updates(r), vec![b"kept".to_vec()]);
}

/// A backend that records which files are opened.
#[derive(Debug)]
struct Counting {
    inner: FsBackend,
    opened: Mutex<Vec<PathBuf>>,
}

impl Backend for Counting {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        self.opened.lock().unwrap().push(path.to_path_buf());
        self.inner.open(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        self.opened.lock().unwrap().push(path.to_path_buf());
        self.inner.open_read(path)
    }
    fn open_sealed(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        self.opened.lock().unwrap().push(path.to_path_buf());
        self.inner.open_sealed(path)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        self.inner.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn lock(&self, dir: &Path, mode: LockMode) -> statelog::Result<DirLock> {
        self.inner.lock(dir, mode)
    }
}

/// Restore opens only the newest epoch's segments, however much history is retained.
#[test]
fn restore_reads_only_the_newest_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        retention: Retention {
            keep_epochs: 1000,
            keep_for: None,
        },
        segment_bytes: 16 * 1024,
        ..Options::default()
    };
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
        for e in 0..30 {
            for i in 0..40 {
                log.append(&payload(i, 500), Durability::Buffered).unwrap();
            }
            log.snapshot(&payload(e, 1000)).unwrap();
        }
        for i in 0..100 {
            log.append(&payload(i, 500), Durability::Buffered).unwrap();
        }
        log.sync().unwrap();
    }
    let counting = Arc::new(Counting {
        inner: FsBackend::new(),
        opened: Mutex::new(Vec::new()),
    });
    let (_, r) = EpochLog::open(counting.clone(), dir.path(), opts()).unwrap();
    let segments = r.updates.segments().to_vec();
    assert!(
        segments.len() > 1,
        "the current epoch spans several segments"
    );
    assert_eq!(updates(r).len(), 100);
    let all = names(dir.path(), ".seg").len();
    assert!(all > 40, "{all} segments of history");
    // Segments only: the small MANIFEST (§11.13.4) is read too.
    let mut opened: Vec<PathBuf> = counting.opened.lock().unwrap().clone();
    opened.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    opened.sort();
    opened.dedup();
    let allowed: Vec<PathBuf> = segments.iter().map(|&s| seg(dir.path(), s)).collect();
    for p in &opened {
        assert!(
            allowed.contains(p),
            "restore opened {} outside the current epoch",
            p.display()
        );
    }
}

/// Reading each retained epoch gives the state that was current then; rewinding to one makes
/// it current, and the cut segments are kept aside.
#[test]
fn every_retained_epoch_reads_back_and_rewinds() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        retention: Retention {
            keep_epochs: 4,
            keep_for: None,
        },
        ..Options::default()
    };
    let (log, _) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
    // The state is a counter: the snapshot holds it, each update adds one.
    let mut count = 0u32;
    let mut at_end = std::collections::BTreeMap::new();
    for _ in 0..8 {
        for _ in 0..5 {
            count += 1;
            log.append(&count.to_le_bytes(), Durability::Strong)
                .unwrap();
        }
        at_end.insert(log.current_epoch(), count);
        log.snapshot(&count.to_le_bytes()).unwrap();
    }
    let epochs = log.epochs().unwrap();
    assert_eq!(
        epochs.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![8, 7, 6, 5]
    );
    for w in epochs.windows(2) {
        assert!(w[0].segment > w[1].segment && w[0].created >= w[1].created);
    }
    let restore_count = |r: Restored| {
        let base = r
            .snapshot
            .as_ref()
            .map_or(0, |s| u32::from_le_bytes(s[..4].try_into().unwrap()));
        base + updates(r).len() as u32
    };
    for e in epochs.iter().skip(1) {
        assert_eq!(
            restore_count(log.read_epoch(e.id).unwrap()),
            at_end[&e.id],
            "epoch {}",
            e.id
        );
    }
    assert!(matches!(
        log.read_epoch(1),
        Err(Error::EpochNotRetained { epoch: 1 })
    ));
    let r = log.truncate_to(6).unwrap();
    assert_eq!(restore_count(r), at_end[&6]);
    assert_eq!(log.current_epoch(), 6);
    log.append(&999u32.to_le_bytes(), Durability::Strong)
        .unwrap();
    assert_eq!(
        names(dir.path(), ".rewound").len(),
        2,
        "epochs 7 and 8 kept aside"
    );
    drop(log);
    let (log, r) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
    assert_eq!(r.epoch.id, 6);
    assert_eq!(restore_count(r), at_end[&6] + 1);
    // New epochs never reuse the ids or segment numbers of the cut ones.
    let snap = log.snapshot(b"\0\0\0\0").unwrap();
    assert_eq!(snap.epoch.id, 9);
    assert!(snap.epoch.segment > 10);
}

/// Disk use stays bounded over 10,000 epochs with retention (simulated disk, so it runs fast).
#[cfg(feature = "internals")]
#[test]
fn disk_use_is_bounded_over_10000_epochs() {
    use statelog::backend::SimBackend;
    let sim = SimBackend::new(1);
    let be: Arc<dyn Backend> = Arc::new(sim.clone());
    let dir = Path::new("/db");
    let opts = Options {
        retention: Retention {
            keep_epochs: 3,
            keep_for: None,
        },
        ..Options::default()
    };
    let (log, _) = EpochLog::open(be.clone(), dir, opts.clone()).unwrap();
    let mut max_bytes = 0u64;
    let mut max_files = 0usize;
    for e in 0..10_000u32 {
        for i in 0..3u32 {
            log.append(&(e * 3 + i).to_le_bytes(), Durability::Buffered)
                .unwrap();
        }
        let report = log.snapshot(&payload(e as usize, 200)).unwrap();
        assert!(report.retention_error.is_none());
        if e % 100 == 0 {
            let names = be.list(dir).unwrap();
            let bytes: u64 = names
                .iter()
                .map(|n| sim.file_bytes(&dir.join(n)).map_or(0, |b| b.len() as u64))
                .sum();
            max_bytes = max_bytes.max(bytes);
            max_files = max_files.max(names.len());
        }
    }
    assert_eq!(log.current_epoch(), 10_000);
    assert!(max_files <= 5, "{max_files} files");
    assert!(max_bytes < 4096, "{max_bytes} bytes");
    drop(log);
    let (_, r) = EpochLog::open(be, dir, opts).unwrap();
    assert_eq!(r.snapshot, Some(payload(9999, 200)));
}

/// Strong appends from many threads, each acknowledged only once durable, are all restored.
#[test]
fn concurrent_strong_appends_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let log = Arc::new(log);
    let threads = 8;
    let per = 100;
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..per {
                    let pos = log.append(&[t as u8, i as u8], Durability::Strong).unwrap();
                    assert!(log.durable_position() >= pos);
                }
            });
        }
    });
    drop(log);
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let mut got = updates(r);
    assert_eq!(got.len(), threads * per);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), threads * per);
}

/// Group commit under churn: strong appends, buffered appends waited for, plain syncs and
/// snapshots from many threads, with segments so small that seals and new segments happen
/// while syncs run. Every call returns (a waiter left asleep is a hang: the watchdog fails
/// the test), every acknowledged append is durable when acknowledged, and the newest epoch
/// (the appends after the last snapshot) restores each of its appends once.
#[test]
fn group_commit_never_leaves_a_waiter_behind() {
    // A waiter left asleep shows when the threads run out of work, so end many times.
    for round in 0..6u8 {
        group_commit_round(round);
    }
}

fn group_commit_round(round: u8) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        block_size: 1024,
        segment_bytes: 4096,
        ..Options::default()
    };
    let (log, _) = EpochLog::open(fs(), dir.path(), opts.clone()).unwrap();
    let log = Arc::new(log);
    let threads = 8u8;
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..threads {
        let (log, done) = (log.clone(), done.clone());
        // Threads end at different times.
        let per = 40 + 10 * ((t + round) % 4);
        std::thread::spawn(move || {
            for i in 0..per {
                let pos = if (t + i) % 3 == 0 {
                    let pos = log.append(&[t, i], Durability::Buffered).unwrap();
                    log.wait_durable(pos).unwrap();
                    pos
                } else {
                    log.append(&[t, i], Durability::Strong).unwrap()
                };
                assert!(log.durable_position() >= pos);
                if t == 0 && i % 20 == 19 {
                    log.snapshot(&[0xee; 64]).unwrap();
                }
                if t == 1 {
                    log.sync().unwrap();
                }
            }
            drop(log);
            done.send(()).unwrap();
        });
    }
    for _ in 0..threads {
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a group-commit waiter was never woken");
    }
    let log = Arc::into_inner(log).expect("every thread is done");
    drop(log);
    let (_, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    let mut got = updates(r);
    assert!(got.iter().all(|u| u.len() == 2 && u[0] < threads));
    let n = got.len();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n, "an append restored twice");
}

#[test]
fn buffered_appends_become_durable_on_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let before = log.durable_position();
    let pos = log.append(b"later", Durability::Buffered).unwrap();
    assert!(log.durable_position() < pos);
    assert_eq!(log.durable_position(), before);
    log.wait_durable(pos).unwrap();
    assert!(log.durable_position() >= pos);
}

#[test]
fn compaction_becomes_due_by_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compaction: CompactionPolicy {
            update_ratio: 2.0,
            min_update_bytes: 1000,
        },
        ..Options::default()
    };
    let (log, _) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    log.snapshot(&[0u8; 1000]).unwrap();
    // Sizes are bytes on disk: about 1,100 for the snapshot entry, 128 per 100-byte update.
    for _ in 0..10 {
        log.append(&[1u8; 100], Durability::Buffered).unwrap();
    }
    assert!(
        !log.compaction_due(),
        "about 1,300 bytes of updates behind 1,100"
    );
    for _ in 0..10 {
        log.append(&[1u8; 100], Durability::Buffered).unwrap();
    }
    assert!(
        log.compaction_due(),
        "about 2,600 bytes of updates behind 1,100"
    );
    log.snapshot(&[0u8; 1000]).unwrap();
    assert!(!log.compaction_due());
}

#[test]
fn second_writer_is_locked_and_readers_work_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Locked { path, pid }) => {
            assert_eq!(path, dir.path());
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    log.append(b"one", Durability::Strong).unwrap();
    log.snapshot(b"S").unwrap();
    log.append(b"two", Durability::Strong).unwrap();
    let reader = EpochReader::open(fs(), dir.path(), RecoveryMode::TolerateTornTail).unwrap();
    let r = reader.restore().unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"S"[..]));
    assert_eq!(updates(r), vec![b"two".to_vec()]);
    assert_eq!(reader.epochs().unwrap().len(), 2);
    assert_eq!(
        updates(reader.read_epoch(0).unwrap()),
        vec![b"one".to_vec()]
    );
    drop(log);
    assert!(EpochLog::open(fs(), dir.path(), Options::default()).is_ok());
}

#[test]
fn leftover_temporary_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(EpochLog::open(fs(), dir.path(), Options::default()).unwrap());
    let tmp = dir.path().join("0000000000000009.seg.tmp");
    std::fs::write(&tmp, b"half a snapshot").unwrap();
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert!(!tmp.exists());
    assert_eq!(r.report.removed_temporary, vec![tmp]);
}

/// After a failed fsync the log refuses every write until it is reopened.
#[cfg(feature = "internals")]
#[test]
fn a_failed_fsync_poisons_until_reopen() {
    use statelog::backend::{CrashMode, Fault, FaultKind, OpKind, SimBackend};
    let sim = SimBackend::new(2);
    let be: Arc<dyn Backend> = Arc::new(sim.clone());
    let dir = Path::new("/db");
    let (log, _) = EpochLog::open(be.clone(), dir, Options::default()).unwrap();
    log.append(b"acked", Durability::Strong).unwrap();
    sim.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(matches!(
        log.append(b"lost", Durability::Strong),
        Err(Error::Io { .. })
    ));
    for _ in 0..3 {
        assert!(matches!(
            log.append(b"x", Durability::Buffered),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
        assert!(matches!(log.snapshot(b"s"), Err(Error::Poisoned { .. })));
    }
    drop(log);
    sim.crash(CrashMode::LoseUnsynced);
    let (log, r) = EpochLog::open(be, dir, Options::default()).unwrap();
    assert_eq!(updates(r)[0], b"acked");
    log.append(b"again", Durability::Strong).unwrap();
}

/// A snapshot that failed after sealing the active segment, on a disk that is then full: the
/// store still opens and reads, writes fail cleanly, and resume once space is freed.
#[cfg(feature = "internals")]
#[test]
fn a_sealed_store_opens_and_reads_on_a_full_disk() {
    use statelog::backend::{Fault, FaultKind, OpKind, SimBackend};
    let sim = SimBackend::new(3);
    let be: Arc<dyn Backend> = Arc::new(sim.clone());
    let dir = Path::new("/db");
    let (log, _) = EpochLog::open(be.clone(), dir, Options::default()).unwrap();
    log.append(b"acked", Durability::Strong).unwrap();
    sim.inject(Fault {
        op: OpKind::Create,
        nth: 1,
        kind: FaultKind::Enospc,
    });
    assert!(matches!(log.snapshot(b"S"), Err(Error::Io { .. })));
    drop(log);
    sim.clear_faults();
    let used: u64 = be
        .list(dir)
        .unwrap()
        .iter()
        .map(|n| sim.file_bytes(&dir.join(n)).map_or(0, |b| b.len() as u64))
        .sum();
    sim.set_capacity(Some(used));
    let (log, r) = EpochLog::open(be.clone(), dir, Options::default()).unwrap();
    assert_eq!(updates(r), vec![b"acked".to_vec()]);
    assert!(matches!(
        log.append(b"no room", Durability::Strong),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        log.append(b"x", Durability::Strong),
        Err(Error::Poisoned { .. })
    ));
    drop(log);
    sim.set_capacity(None);
    let (log, r) = EpochLog::open(be.clone(), dir, Options::default()).unwrap();
    assert_eq!(updates(r), vec![b"acked".to_vec()]);
    log.append(b"room again", Durability::Strong).unwrap();
    drop(log);
    let (_, r) = EpochLog::open(be, dir, Options::default()).unwrap();
    assert_eq!(updates(r), vec![b"acked".to_vec(), b"room again".to_vec()]);
}

/// Builds a store of three epochs (segments 1, 2, 3) and damages the snapshot of epoch 2.
fn store_with_damaged_newest(dir: &Path) {
    {
        let (log, _) = EpochLog::open(fs(), dir, Options::default()).unwrap();
        log.append(b"e0", Durability::Strong).unwrap();
        log.snapshot(&[1u8; 100]).unwrap();
        log.append(b"e1", Durability::Strong).unwrap();
        log.snapshot(&[2u8; 100]).unwrap();
        log.append(b"e2", Durability::Strong).unwrap();
    }
    let s = seg(dir, 3);
    let mut b = std::fs::read(&s).unwrap();
    b[32 + 11 + 8 + 60] ^= 1;
    std::fs::write(&s, &b).unwrap();
}

/// After falling back past a damaged epoch, new epochs and segments never reuse the ids or
/// numbers the given-up segments may have used.
#[test]
fn fallback_never_reuses_ids_or_segment_numbers() {
    let dir = tempfile::tempdir().unwrap();
    store_with_damaged_newest(dir.path());
    let opts = Options {
        fall_back: true,
        ..Options::default()
    };
    let (log, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    assert_eq!(r.epoch.id, 1);
    assert_eq!(updates(r), vec![b"e1".to_vec()]);
    let snap = log.snapshot(b"new").unwrap();
    assert!(snap.epoch.id > 2, "epoch id {} reused", snap.epoch.id);
    assert!(
        snap.epoch.segment > 3,
        "segment {} reused",
        snap.epoch.segment
    );
    assert!(dir.path().join("0000000000000003.seg.broken").exists());
}

/// Falling back never gives up every segment: with nothing older, it is an error and
/// nothing is renamed; and a directory whose segments were all set aside is not silently
/// reopened as an empty store.
#[test]
fn fallback_never_empties_the_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"only", Durability::Strong).unwrap();
    }
    let s = seg(dir.path(), 1);
    let mut b = std::fs::read(&s).unwrap();
    b[32 + 11 + 8 + 2] ^= 1; // the epoch-0 start entry
    std::fs::write(&s, &b).unwrap();
    let opts = Options {
        fall_back: true,
        ..Options::default()
    };
    assert!(matches!(
        EpochLog::open(fs(), dir.path(), opts.clone()),
        Err(Error::Corrupt { .. })
    ));
    assert!(s.exists(), "nothing renamed");
    std::fs::rename(&s, dir.path().join("0000000000000001.seg.broken")).unwrap();
    assert!(matches!(
        EpochLog::open(fs(), dir.path(), opts),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(
        names(dir.path(), ".seg").len(),
        0,
        "no empty store was started"
    );
}

/// A crafted continuation segment that names a later segment as its epoch's start does not
/// make a fallback loop: the bad segment is given up.
#[cfg(feature = "internals")]
#[test]
fn crafted_continue_entry_cannot_make_fallback_loop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"a", Durability::Strong).unwrap();
    }
    // Segment 2: a valid frame file whose first entry is CONTINUE naming segment 9.
    let mut cont = vec![3u8];
    cont.extend_from_slice(&0u64.to_le_bytes()); // epoch
    for v in [9u64, 1, 0, 0, 9] {
        cont.extend_from_slice(&v.to_le_bytes()); // epoch_segment, prev, created, highs
    }
    let opts = statelog::frame::LogOptions {
        tag: 1,
        ..Default::default()
    };
    let mut w = LogWriter::create(&FsBackend::new(), &seg(dir.path(), 2), &opts).unwrap();
    w.append(&cont).unwrap();
    w.sync().unwrap();
    drop(w);
    assert!(matches!(
        EpochLog::open(fs(), dir.path(), Options::default()),
        Err(Error::Corrupt { .. })
    ));
    let fall = Options {
        fall_back: true,
        ..Options::default()
    };
    let (_, r) = EpochLog::open(fs(), dir.path(), fall).unwrap();
    assert_eq!(r.report.fell_back.len(), 1);
    assert_eq!(updates(r), vec![b"a".to_vec()]);
}

/// Reads go on after the log is poisoned.
#[cfg(feature = "internals")]
#[test]
fn reads_go_on_after_poisoning() {
    use statelog::backend::{Fault, FaultKind, OpKind, SimBackend};
    let sim = SimBackend::new(9);
    let be: Arc<dyn Backend> = Arc::new(sim.clone());
    let dir = Path::new("/db");
    let (log, _) = EpochLog::open(be, dir, Options::default()).unwrap();
    log.append(b"synced", Durability::Strong).unwrap();
    log.append(b"buffered", Durability::Buffered).unwrap();
    sim.inject(Fault {
        op: OpKind::Write,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(log.sync().is_err());
    assert!(matches!(
        log.append(b"x", Durability::Buffered),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(log.epochs().unwrap().len(), 1);
    assert_eq!(
        updates(log.read_epoch(0).unwrap()),
        vec![b"synced".to_vec()]
    );
}

/// A file named like a segment but written for something else (another frame tag) is refused.
#[test]
fn a_segment_name_with_a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EpochLog::open(fs(), dir.path(), Options::default()).unwrap());
    let mut w =
        LogWriter::create(&FsBackend::new(), &seg(dir.path(), 2), &Default::default()).unwrap();
    w.append(b"not an epoch entry").unwrap();
    w.sync().unwrap();
    drop(w);
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt {
            file,
            offset: 0,
            kind: CorruptKind::HeaderField,
        }) => {
            assert_eq!(file, seg(dir.path(), 2));
        }
        other => panic!("{other:?}"),
    }
}

/// Retention keeps the newest `keep_epochs` epochs and also every epoch younger than
/// `keep_for`, by the epochs' creation times.
#[test]
fn retention_keeps_young_epochs_by_age() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock_now = now.clone();
    let opts = Options {
        retention: Retention {
            keep_epochs: 1,
            keep_for: Some(Duration::from_secs(60)),
        },
        clock: statelog::epoch::Clock::new(move || {
            UNIX_EPOCH + Duration::from_millis(clock_now.load(Ordering::SeqCst))
        }),
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    // Epochs 1..=5 ten seconds apart: all younger than a minute, all kept.
    for _ in 0..5 {
        now.fetch_add(10_000, Ordering::SeqCst);
        log.snapshot(b"s").unwrap();
    }
    let ids: Vec<u64> = log.epochs().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![5, 4, 3, 2, 1, 0]);
    // 45 s later epoch 6 starts: epochs 4 and 5 (55 s and 45 s old) are kept, epoch 3 (65 s)
    // and older ones go, with their segments 1 to 4.
    now.fetch_add(45_000, Ordering::SeqCst);
    let report = log.snapshot(b"s").unwrap();
    let ids: Vec<u64> = log.epochs().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![6, 5, 4]);
    assert_eq!(report.deleted, vec![1, 2, 3, 4]);
    // Much later, only the newest epoch is kept.
    now.fetch_add(3_600_000, Ordering::SeqCst);
    log.snapshot(b"s").unwrap();
    let ids: Vec<u64> = log.epochs().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![7]);
}

/// The end of the data of a log file (the end of its last complete entry) and its length.
fn data_end_and_len(path: &Path) -> (u64, u64) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut r = statelog::frame::LogReader::open(&FsBackend::new(), path, false).unwrap();
    let end = r.last_entry_before(len).unwrap().map_or(0, |e| e.end);
    (end, len)
}

/// Space reserved ahead of the active segment's data is given back before the SEAL (a sealed
/// segment, which readers may map, ends at its data) and on close; a log dropped without
/// closing keeps it until the next open cuts the zeros (nothing set aside, nothing lost).
#[test]
fn reserved_space_is_given_back_at_seal_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        segment_bytes: 16 << 10,
        ..Options::default()
    };
    let mut want = Vec::new();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
        for i in 0..100u32 {
            let p = vec![(i % 251) as u8; 400];
            log.append(&p, Durability::Strong).unwrap();
            want.push(p);
        }
    }
    let segs = names(dir.path(), ".seg");
    assert!(segs.len() >= 3, "{segs:?}");
    for (i, name) in segs.iter().enumerate() {
        let (end, len) = data_end_and_len(&dir.path().join(name));
        if i + 1 < segs.len() {
            assert_eq!(end, len, "sealed segment {name}");
        } else {
            assert!(
                len > end,
                "the active segment keeps its reserve: {len} > {end}"
            );
        }
    }
    let (log, r) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
    let cut = r
        .report
        .torn_tail
        .clone()
        .expect("the reserved zeros are cut");
    assert!(cut.zeroed && cut.saved_to.is_none());
    assert_eq!(updates(r), want);
    log.append(b"more", Durability::Strong).unwrap();
    want.push(b"more".to_vec());
    log.close().unwrap();
    drop(log);
    let last = dir.path().join(names(dir.path(), ".seg").last().unwrap());
    let (end, len) = data_end_and_len(&last);
    assert_eq!(end, len, "closed: the active segment ends at its data");
    let (_, r) = EpochLog::open(fs(), dir.path(), opts()).unwrap();
    assert!(r.report.torn_tail.is_none());
    assert_eq!(updates(r), want);
}
