//! Regression tests of the durability review (issue 19): one test per defect, each failing on
//! the code before its fix. The paths that run beside commits (group-commit syncs, seals,
//! snapshots, readers' listings, change feeds) are driven from several threads against the
//! simulator, with a probe that holds a sync in flight.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::probe::Probe;
use statelog::backend::{Backend, CrashMode, Fault, FaultKind, OpKind, SimBackend};
use statelog::epoch::{Durability, EpochLog, EpochReader, Options, RecoveryMode};

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn updates(log_backend: Arc<dyn Backend>, opts: Options) -> Vec<Vec<u8>> {
    let (_log, r) = EpochLog::open(log_backend, &dir(), opts).unwrap();
    r.updates.map(|u| u.unwrap()).collect()
}

/// Defect 3: a seal's (snapshot's) fsync ran beside the group-commit leader's fsync of the same
/// segment. Linux reports a writeback error to one of them only, so the leader acknowledged
/// pages that were dropped. Now the seal waits for the leader, the leader gets the error, and
/// nothing it acknowledged is lost.
#[test]
fn no_two_fsyncs_of_a_segment_overlap_and_a_failed_one_is_never_acknowledged() {
    let sim = SimBackend::new(5);
    let (backend, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let (log, _) = EpochLog::open(backend, &dir(), Options::default()).unwrap();
    log.append(b"before", Durability::Strong).unwrap();
    // The next fsync of the segment fails the Linux way: its dirty pages are marked clean.
    sim.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::WritebackError,
    });
    control.hold_next_sync();
    let (leader, snap) = std::thread::scope(|sc| {
        let leader = sc.spawn(|| log.append(b"acked?", Durability::Strong));
        control.wait_held();
        let snap = sc.spawn(|| log.snapshot(b"whole state"));
        // Give an overlapping fsync every chance to run before the leader's.
        std::thread::sleep(Duration::from_millis(50));
        control.release();
        (leader.join().unwrap(), snap.join().unwrap())
    });
    assert_eq!(
        control.max_overlap(),
        1,
        "two fsyncs of one file overlapped"
    );
    assert!(snap.is_err(), "the snapshot ran on a poisoned log");
    drop(log);
    sim.crash(CrashMode::LoseUnsynced);
    let ups = updates(Arc::new(sim.clone()), Options::default());
    assert_eq!(ups[0], b"before");
    if leader.is_ok() {
        assert!(ups.iter().any(|u| u == b"acked?"), "acknowledged and lost");
    }
    assert!(leader.is_err(), "the fsync that failed was acknowledged");
}

/// Suspected case: a reopen in the same boot after a failed fsync synced through a new
/// descriptor (to which Linux does not report the error) and certified bytes that never
/// reached the disk. Now the failed sync is recorded and the reopen cuts them.
#[test]
fn a_reopen_after_a_failed_fsync_never_certifies_the_dropped_bytes() {
    for nth_sync in 1..=2 {
        let sim = SimBackend::new(7);
        let be: Arc<dyn Backend> = Arc::new(sim.clone());
        let opts = Options::default();
        let (log, _) = EpochLog::open(be.clone(), &dir(), opts.clone()).unwrap();
        log.append(b"a", Durability::Strong).unwrap();
        sim.inject(Fault {
            op: OpKind::Sync,
            nth: nth_sync,
            kind: FaultKind::WritebackError,
        });
        let b = log.append(b"b", Durability::Strong);
        let b2 = log.append(b"b2", Durability::Strong);
        assert!(b.is_err() || b2.is_err());
        drop(log);
        // Same boot: the page cache still holds "b", which never reached the disk.
        let (log, r) = EpochLog::open(be.clone(), &dir(), opts.clone()).unwrap();
        let seen: Vec<Vec<u8>> = r.updates.map(|u| u.unwrap()).collect();
        assert_eq!(seen.first().map(Vec::as_slice), Some(&b"a"[..]));
        log.append(b"c", Durability::Strong).unwrap();
        log.append(b"d", Durability::Strong).unwrap();
        drop(log);
        sim.crash(CrashMode::LoseUnsynced);
        let ups = updates(be, opts);
        let acked: Vec<&[u8]> = vec![b"a", b"c", b"d"];
        for a in acked {
            assert!(
                ups.iter().any(|u| u == a),
                "acknowledged {:?} lost after a power cut (nth {nth_sync}): {ups:?}",
                String::from_utf8_lossy(a)
            );
        }
    }
}

/// Defect 4: a reader listed the directory twice; a rotation in between made the new active
/// segment look sealed and it was memory-mapped, then trimmed by the writer (SIGBUS). Now a
/// segment is mapped only when its own bytes end with a SEAL.
#[test]
fn a_reader_never_maps_a_segment_that_is_still_written() {
    let sim = SimBackend::new(3);
    let opts = Options {
        block_size: 1024,
        segment_bytes: 8 * 1024,
        ..Options::default()
    };
    let (log, _) = EpochLog::open(Arc::new(sim.clone()), &dir(), opts).unwrap();
    let log = Arc::new(log);
    log.append(b"a", Durability::Strong).unwrap();
    let (probe, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let w = log.clone();
    // Between the reader's listings, the writer rotates into a new segment.
    control.on_list(2, move || {
        w.append(&vec![7u8; 9 * 1024], Durability::Strong).unwrap();
        w.append(b"small", Durability::Strong).unwrap();
    });
    let reader = EpochReader::open(probe, &dir(), RecoveryMode::TolerateTornTail).unwrap();
    let r = reader.read_epoch(0).unwrap();
    let got: Vec<Vec<u8>> = r.updates.map(|u| u.unwrap()).collect();
    assert!(got.iter().any(|u| u == b"a"));
    let active = dir().join(format!("{:016x}.seg", 2));
    assert!(
        !control.sealed_opens().contains(&active),
        "the active segment was memory-mapped: {:?}",
        control.sealed_opens()
    );
    log.close().unwrap();
}

/// Paths in `dir` of the simulator, sorted.
pub fn names(sim: &SimBackend, d: &Path) -> Vec<String> {
    let mut v = sim.list(d).unwrap();
    v.sort();
    v
}

fn seg(n: u64) -> PathBuf {
    dir().join(format!("{n:016x}.seg"))
}

/// A directory whose newest epoch's SNAPSHOT entry is damaged, with a continuation segment
/// after it, for the fall-back tests.
fn build_damaged(sim: &SimBackend) {
    let opts = Options {
        block_size: 1024,
        segment_bytes: 2048,
        ..Options::default()
    };
    let (log, _) = EpochLog::open(Arc::new(sim.clone()), &dir(), opts).unwrap();
    for i in 0..4u8 {
        log.append(&[i; 100], Durability::Strong).unwrap();
    }
    let snap = log.snapshot(b"state of epoch 1").unwrap();
    for i in 0..30u8 {
        log.append(&[i; 200], Durability::Strong).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let p = seg(snap.epoch.segment);
    let mut b = sim.file_bytes(&p).unwrap();
    b[32 + 11 + 8 + 3] ^= 0x40;
    sim.set_file_bytes(&p, &b);
}

fn fall_back_options() -> Options {
    Options {
        block_size: 1024,
        segment_bytes: 2048,
        fall_back: true,
        ..Options::default()
    }
}

/// Defect 5: the fall-back renamed the given-up segments oldest first, and a crash between two
/// renames left a directory no open could read. Now it is announced by an intent, done newest
/// first, and finished by the next open: a crash at every step of it leaves a directory that
/// opens to the same epoch.
#[test]
fn a_fall_back_interrupted_at_any_step_is_finished_by_the_next_open() {
    let control = SimBackend::new(11);
    build_damaged(&control);
    let before = control.ops();
    let (_log, r) = EpochLog::open(Arc::new(control.clone()), &dir(), fall_back_options()).unwrap();
    let steps = control.ops() - before;
    let (want_epoch, want): (u64, Vec<Vec<u8>>) =
        (r.epoch.id, r.updates.map(|u| u.unwrap()).collect());
    assert_eq!(want_epoch, 0);
    for n in 1..=steps {
        for mode in [CrashMode::LoseUnsynced, CrashMode::KeepPrefix] {
            let sim = SimBackend::new(11 + n);
            build_damaged(&sim);
            sim.crash_after(sim.ops() + n);
            let _ = EpochLog::open(Arc::new(sim.clone()), &dir(), fall_back_options());
            sim.crash(mode);
            for attempt in 0..2 {
                let opened = EpochLog::open(Arc::new(sim.clone()), &dir(), fall_back_options());
                let (log, r) = opened.unwrap_or_else(|e| {
                    panic!("crash after step {n}/{steps} {mode:?}, open {attempt}: {e}")
                });
                assert_eq!(r.epoch.id, want_epoch, "step {n} {mode:?}");
                let got: Vec<Vec<u8>> = r.updates.map(|u| u.unwrap()).collect();
                assert_eq!(got, want, "step {n} {mode:?}");
                drop(log);
            }
        }
    }
}

/// Defect 6: a fall-back onto an epoch a checkpoint names continued that epoch, so the
/// checkpoint's fixed state changed with the next write. Now the epoch log refuses to
/// continue it and the store snapshots it into a new epoch on open.
#[test]
fn a_fall_back_never_continues_a_checkpoint_epoch() {
    use statelog::{Readable, Store, StoreOptions};
    let sim = SimBackend::new(3);
    let backend: Arc<dyn Backend> = Arc::new(sim.clone());
    let opts = StoreOptions {
        auto_compact: false,
        log: Options {
            fall_back: true,
            ..Options::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(backend.clone(), &dir(), opts.clone()).unwrap();
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"k", b"v1")).unwrap();
    store.checkpoints().save("c").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"k", b"v2")).unwrap();
    store.close().unwrap();
    drop(store);
    let newest = names(&sim, &dir())
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .max()
        .unwrap();
    let p = dir().join(newest);
    let mut b = sim.file_bytes(&p).unwrap();
    b[32 + 11 + 8 + 3] ^= 0x40;
    sim.set_file_bytes(&p, &b);

    // The epoch layer alone refuses to write into the fixed epoch.
    {
        let probe = SimBackend::new(3);
        for name in names(&sim, &dir()) {
            let from = dir().join(&name);
            probe.set_file_bytes(&from, &sim.file_bytes(&from).unwrap());
        }
        let (log, r) = EpochLog::open(Arc::new(probe), &dir(), opts.log.clone()).unwrap();
        assert_eq!(r.report.fell_back.len(), 1);
        assert!(log.needs_snapshot());
        assert!(log.append(b"x", Durability::Strong).is_err());
    }

    let store = Store::open_with(backend.clone(), &dir(), opts.clone()).unwrap();
    assert_eq!(store.recovery().fell_back.len(), 1);
    assert_eq!(store.read().get_bytes(&t, b"k").unwrap().unwrap(), b"v1");
    store.write(|tx| tx.put_bytes(&t, b"k", b"v3")).unwrap();
    let fixed = store.checkpoints().read("c").unwrap();
    assert_eq!(
        fixed.get_bytes(&t, b"k").unwrap().unwrap(),
        b"v1",
        "the checkpoint's state changed"
    );
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(backend, &dir(), opts).unwrap();
    assert_eq!(store.read().get_bytes(&t, b"k").unwrap().unwrap(), b"v3");
    assert_eq!(
        store
            .checkpoints()
            .read("c")
            .unwrap()
            .get_bytes(&t, b"k")
            .unwrap()
            .unwrap(),
        b"v1"
    );
}

/// Defect 7: a commit was reported failed when the automatic compaction after it failed (a
/// retry would apply it twice), and the failed snapshot's temporary file stayed. Now the
/// commit succeeds, the failure is kept for `compaction_error`, no `.tmp` is left, writes go
/// on (the failure touched only the new snapshot's file), and a reopen has every committed
/// row.
#[test]
fn a_failed_automatic_compaction_is_not_the_commits_failure() {
    use statelog::{Readable, Store};
    let sim = SimBackend::new(21);
    let backend: Arc<dyn Backend> = Arc::new(sim.clone());
    let opts = common::sim_store_options(2, 1 << 20);
    let mut i = 0u32;
    // Faults of the new segment only: a failed sync of the active segment (the seal's) is the
    // commit's own fsync failing, which it must report.
    for kind in [FaultKind::Enospc, FaultKind::Eio, FaultKind::ShortWrite] {
        for op in [OpKind::Create] {
            let store = Store::open_with(backend.clone(), &dir(), opts.clone()).unwrap();
            let t = store.bytes_table("t").unwrap();
            let mut failed = None;
            for _ in 0..2000 {
                let key = i.to_le_bytes();
                // Each commit's own sync goes first; the fault hits the compaction's segment.
                let d = statelog::Durability::Buffered;
                store
                    .write_with(d, |tx| tx.put_bytes(&t, &key, b"x"))
                    .unwrap();
                store.sync().unwrap();
                sim.clear_faults();
                sim.inject(Fault { op, nth: 1, kind });
                store
                    .write(|tx| tx.put_bytes(&t, &key, b"committed"))
                    .unwrap_or_else(|e| panic!("commit {i} reported failed ({kind:?}): {e}"));
                sim.clear_faults();
                i += 1;
                if let Some(e) = store.compaction_error() {
                    failed = Some(e);
                    break;
                }
            }
            sim.clear_faults();
            let failed = failed.expect("no compaction was tried");
            assert!(!matches!(failed, statelog::Error::Corrupt { .. }));
            assert!(
                !names(&sim, &dir()).iter().any(|n| n.ends_with(".tmp")),
                "a failed snapshot's temporary file was left: {:?}",
                names(&sim, &dir())
            );
            // The failure was in the new snapshot's own file, which is gone: nothing the log
            // certifies was touched, so writes go on.
            store.write(|tx| tx.put_bytes(&t, b"z", b"z")).unwrap();
            drop(store);
            let store = Store::open_with(backend.clone(), &dir(), opts.clone()).unwrap();
            let t = store.bytes_table("t").unwrap();
            for k in 0..i {
                assert_eq!(
                    store
                        .read()
                        .get_bytes(&t, &k.to_le_bytes())
                        .unwrap()
                        .unwrap(),
                    b"committed",
                    "row {k} after {kind:?} on {op:?}"
                );
            }
        }
    }
}

/// Defect 8: retention deleted old segments oldest first, and a kill between two deletions
/// left the later segments of an epoch whose first segment was gone, which `verify` called
/// damage. Now the deletion is announced by an intent: at every crash point of a compaction
/// with retention, the directory verifies clean (apart from a torn tail) and reopens.
#[test]
fn a_crash_during_retention_leaves_a_directory_that_verifies_clean() {
    use statelog::{Readable, Store};
    let build = |sim: &SimBackend| {
        let opts = common::sim_store_options(1, 2048);
        let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
        let t = store.bytes_table("t").unwrap();
        for i in 0..60u32 {
            store
                .write(|tx| tx.put_bytes(&t, &(i % 17).to_le_bytes(), &[i as u8; 90]))
                .unwrap();
        }
        store
    };
    let count = SimBackend::new(1);
    let store = build(&count);
    let before = count.ops();
    store.compact().unwrap();
    let steps = count.ops() - before;
    drop(store);
    let mut checked = 0;
    for n in 1..=steps {
        let sim = SimBackend::new(100 + n);
        let store = build(&sim);
        sim.crash_after(sim.ops() + n);
        let _ = store.compact();
        drop(store);
        sim.crash(CrashMode::LoseUnsynced);
        let report =
            statelog::tools::verify(Arc::new(sim.clone()), &dir(), &mut |_, _| {}).unwrap();
        let damage: Vec<_> = report.findings.iter().filter(|f| !f.torn_tail).collect();
        assert!(
            damage.is_empty(),
            "crash after step {n}/{steps}: {damage:?}"
        );
        let opts = common::sim_store_options(1, 2048);
        let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
        let t = store.bytes_table("t").unwrap();
        assert_eq!(store.read().count(&t).unwrap(), 17, "step {n}");
        checked += 1;
    }
    assert!(checked > 5);
}

/// Defect 2: `Store::changes_since` read the log file, which holds a strong commit whose fsync
/// has not returned: the feed shipped a transaction that then failed (and was lost at power
/// loss). Now it ships only what is published, which is durable.
#[test]
fn the_change_feed_ships_only_durable_commits() {
    use statelog::{Changes, Readable, Store, StoreOptions};
    let sim = SimBackend::new(9);
    let (backend, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let opts = StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with(backend, &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"k", b"v0")).unwrap();
    let pos0 = store.read().position();
    sim.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::WritebackError,
    });
    control.hold_next_sync();
    std::thread::scope(|sc| {
        let w = sc.spawn(|| store.write(|tx| tx.put_bytes(&t, b"k", b"v1")));
        control.wait_held();
        assert_eq!(store.read().get_bytes(&t, b"k").unwrap().unwrap(), b"v0");
        let feed = store.changes_since(pos0, 10).unwrap();
        control.release();
        assert!(
            w.join().unwrap().is_err(),
            "the failed fsync was acknowledged"
        );
        assert_eq!(
            feed,
            Changes::Since(Vec::new()),
            "the change feed shipped a commit whose fsync had not returned"
        );
    });
    // A durable commit is shipped.
    let store2 = {
        drop(store);
        Store::open_with(Arc::new(sim.process()), &dir(), StoreOptions::default()).unwrap()
    };
    let t = store2.bytes_table("t").unwrap();
    let pos = store2.read().position();
    store2.write(|tx| tx.put_bytes(&t, b"k", b"v2")).unwrap();
    match store2.changes_since(pos, 10).unwrap() {
        Changes::Since(v) => assert_eq!(v.len(), 1),
        Changes::Reset => panic!("reset"),
    }
}

/// Concurrent paths under faults: committers, compactions, a change feed, a follower (as in
/// another process) and a reader's listings run on threads against the simulator; a writeback
/// error hits a random fsync, then the power goes. Every acknowledged commit, and every commit
/// the change feed shipped or the follower showed, is there after recovery. The OS schedules the threads (many interleavings per run, not a
/// controlled exploration); `STATELOG_SCHEDULES=N` runs more seeds.
#[test]
fn commits_compactions_feeds_and_readers_beside_a_failing_fsync() {
    use statelog::{Changes, Follower, FollowerOptions, Readable, Store};
    use std::sync::Mutex;
    let seeds: u64 = std::env::var("STATELOG_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    for seed in 0..seeds {
        let sim = SimBackend::new(1000 + seed);
        let be: Arc<dyn Backend> = Arc::new(sim.clone());
        let opts = common::sim_store_options(2, 4096);
        // A process handle: the store dies with the machine (its drop writes nothing after).
        let store = Store::open_with(Arc::new(sim.process()), &dir(), opts.clone()).unwrap();
        let t = store.bytes_table("t").unwrap();
        let start = store.read().position();
        let follower =
            Follower::open_with(Arc::new(sim.clone()), &dir(), FollowerOptions::default()).unwrap();
        let mut rng = common::Rng(seed);
        sim.inject(Fault {
            op: OpKind::Sync,
            nth: 5 + rng.below(60),
            kind: FaultKind::WritebackError,
        });
        let acked = Mutex::new(Vec::<u32>::new());
        let shipped = Mutex::new(Vec::<Vec<u8>>::new());
        let shown = Mutex::new(Vec::<Vec<u8>>::new());
        std::thread::scope(|sc| {
            let (follower, shown, ft) = (&follower, &shown, &t);
            sc.spawn(move || {
                for _ in 0..40 {
                    if follower.poll().is_ok() {
                        // The table has the same id in the follower's state.
                        let snap = follower.read();
                        if let Ok(rows) = snap.range_bytes(ft, ..) {
                            shown.lock().unwrap().extend(rows.map(|(k, _)| k));
                        }
                    }
                    std::thread::yield_now();
                }
            });
            for w in 0..3u32 {
                let (store, t, acked) = (&store, &t, &acked);
                sc.spawn(move || {
                    for i in 0..40u32 {
                        let k = w * 1000 + i;
                        match store.write(|tx| tx.put_bytes(t, &k.to_le_bytes(), b"v")) {
                            Ok(()) => acked.lock().unwrap().push(k),
                            Err(_) => return,
                        }
                    }
                });
            }
            let store = &store;
            sc.spawn(move || {
                for _ in 0..4 {
                    if store.compact().is_err() {
                        return;
                    }
                    std::thread::yield_now();
                }
            });
            let (shipped, sim) = (&shipped, sim.clone());
            sc.spawn(move || {
                let reader =
                    EpochReader::open(Arc::new(sim), &dir(), RecoveryMode::TolerateTornTail);
                for _ in 0..20 {
                    if let Ok(r) = &reader {
                        let _ = r.epochs();
                    }
                    if let Ok(Changes::Since(v)) = store.changes_since(start, 10_000) {
                        let mut s = shipped.lock().unwrap();
                        for c in v {
                            for op in c.ops {
                                if let statelog::ChangeOp::Put { key, .. } = op {
                                    s.push(key);
                                }
                            }
                        }
                    }
                    std::thread::yield_now();
                }
            });
        });
        sim.clear_faults();
        sim.crash(CrashMode::LoseUnsynced);
        drop(store);
        let store = Store::open_with(be, &dir(), opts)
            .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
        let t = store.bytes_table("t").unwrap();
        let snap = store.read();
        for k in acked.lock().unwrap().iter() {
            assert!(
                matches!(snap.get_bytes(&t, &k.to_le_bytes()), Ok(Some(_))),
                "seed {seed}: acknowledged row {k} lost"
            );
        }
        for k in shipped.lock().unwrap().iter() {
            assert!(
                matches!(snap.get_bytes(&t, k), Ok(Some(_))),
                "seed {seed}: the change feed shipped {k:?}, then it was lost"
            );
        }
        for k in shown.lock().unwrap().iter() {
            assert!(
                matches!(snap.get_bytes(&t, k), Ok(Some(_))),
                "seed {seed}: a follower showed {k:?}, then it was lost"
            );
        }
    }
}

/// Suspected case: a change feed opens an epoch's later segments lazily, and retention may
/// delete them first: the answer is `Reset`, never `Io NotFound`. A writer compacts (keeping
/// one epoch) at every listing the follower's feed makes, in turn.
#[test]
fn a_change_feed_racing_retention_answers_reset() {
    use statelog::{Changes, Follower, FollowerOptions, Store};
    for at in 1..=4 {
        let sim = SimBackend::new(40 + at as u64);
        let opts = common::sim_store_options(1, 2048);
        let store = Arc::new(Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap());
        let t = store.bytes_table("t").unwrap();
        let write = |store: &Store, n: u32| {
            for i in 0..n {
                store
                    .write_with(Durability::Buffered, |tx| {
                        tx.put_bytes(&t, &i.to_le_bytes(), &[9u8; 200])
                    })
                    .unwrap();
            }
            store.sync().unwrap();
        };
        store.compact().unwrap();
        let start = store.read().position();
        write(&store, 40); // several segments of one epoch
        let (probe, control) = Probe::wrap_backend(Arc::new(sim.clone()));
        let f = Follower::open_with(probe, &dir(), FollowerOptions::default()).unwrap();
        let w = store.clone();
        control.on_list(at, move || {
            w.compact().unwrap();
            w.compact().unwrap();
        });
        match f.changes_since(start, 1000) {
            Ok(Changes::Reset) | Ok(Changes::Since(_)) => {}
            Err(e) => panic!("listing {at}: the feed failed instead of answering Reset: {e}"),
        }
    }
}

/// Defect 9: deleting the newest segment (or an older retained one) went unnoticed: `verify`
/// said clean and the store served a shorter history. Now the manifest names the segments the
/// directory holds, and a missing one is damage, for open and for `verify`.
#[test]
fn a_deleted_segment_is_damage_not_a_shorter_history() {
    use statelog::{Readable, Store};
    let build = || {
        let sim = SimBackend::new(77);
        let opts = common::sim_store_options(3, 2048);
        let store = Store::open_with(Arc::new(sim.process()), &dir(), opts.clone()).unwrap();
        let t = store.bytes_table("t").unwrap();
        for round in 0..3u32 {
            for i in 0..100u32 {
                let k = round * 100 + i;
                store
                    .write_with(Durability::Buffered, |tx| {
                        tx.put_bytes(&t, &k.to_le_bytes(), &[1u8; 40])
                    })
                    .unwrap();
            }
            store.sync().unwrap();
            if round < 2 {
                store.compact().unwrap();
            }
        }
        store.close().unwrap();
        drop(store);
        (sim, opts)
    };
    let segments = |sim: &SimBackend| -> Vec<String> {
        names(sim, &dir())
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .collect()
    };
    let (sim, _) = build();
    let all = segments(&sim);
    assert!(all.len() >= 3, "{all:?}");
    // Control: intact, it verifies clean and holds 300 rows.
    let report = statelog::tools::verify(Arc::new(sim.clone()), &dir(), &mut |_, _| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    for victim in [all.len() - 1, all.len() / 2] {
        let (sim, opts) = build();
        let gone = dir().join(&segments(&sim)[victim]);
        let be: Arc<dyn Backend> = Arc::new(sim.clone());
        be.remove(&gone).unwrap();
        let report = statelog::tools::verify(be.clone(), &dir(), &mut |_, _| {}).unwrap();
        assert!(
            report.findings.iter().any(|f| !f.torn_tail),
            "segment {} deleted, verify clean",
            gone.display()
        );
        match Store::open_with(be.clone(), &dir(), opts.clone()) {
            Err(statelog::Error::Corrupt { .. }) => {}
            Err(e) => panic!("segment {} deleted: {e}", gone.display()),
            Ok(s) => {
                let t = s.bytes_table("t").unwrap();
                panic!(
                    "segment {} deleted, the store opened with {} rows",
                    gone.display(),
                    s.read().count(&t).unwrap()
                );
            }
        }
        // Salvage opens what is left, and the directory opens normally afterwards.
        let mut salvage = opts.clone();
        salvage.log.recovery = RecoveryMode::Salvage;
        drop(Store::open_with(be.clone(), &dir(), salvage).unwrap());
        drop(Store::open_with(be, &dir(), opts).unwrap());
    }
}

/// Defect 10: a cut of the newest segment exactly at an entry boundary read as a clean end,
/// and acknowledged transactions were silently gone. Where the directory can tell, it is now
/// damage: a cleanly closed segment's length is in the manifest, so every cut of it, at every
/// entry boundary, makes open fail and `verify` report it (FORMAT.md §11.13.4 says what
/// cannot be told: a cut of a segment a writer did not close).
#[test]
fn a_cut_at_an_entry_boundary_of_a_closed_segment_is_damage() {
    use statelog::frame::LogReader;
    use statelog::{Readable, Store};
    let sim = SimBackend::new(5);
    let mut opts = common::sim_store_options(2, 1 << 20);
    opts.auto_compact = false;
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts.clone()).unwrap();
    let t = store.bytes_table("t").unwrap();
    for i in 0..40u32 {
        store
            .write(|tx| tx.put_bytes(&t, &i.to_le_bytes(), &[3u8; 30]))
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    let newest = names(&sim, &dir())
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .max()
        .unwrap();
    let path = dir().join(&newest);
    let bytes = sim.file_bytes(&path).unwrap();
    let mut ends = Vec::new();
    {
        let be: Arc<dyn Backend> = Arc::new(sim.clone());
        let mut r = LogReader::open(&*be, &path, false).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            ends.push(e.pos.end);
        }
    }
    assert!(ends.len() > 20);
    for &cut in &ends[..ends.len() - 1] {
        let copy = SimBackend::new(5);
        for name in names(&sim, &dir()) {
            let p = dir().join(&name);
            copy.set_file_bytes(&p, &sim.file_bytes(&p).unwrap());
        }
        copy.set_file_bytes(&path, &bytes[..cut as usize]);
        let be: Arc<dyn Backend> = Arc::new(copy.clone());
        let report = statelog::tools::verify(be.clone(), &dir(), &mut |_, _| {}).unwrap();
        assert!(
            report.findings.iter().any(|f| !f.torn_tail),
            "cut at {cut}: verify clean"
        );
        match Store::open_with(be, &dir(), opts.clone()) {
            Err(statelog::Error::Corrupt { .. }) => {}
            Err(e) => panic!("cut at {cut}: {e}"),
            Ok(s) => {
                let t = s.bytes_table("t").unwrap();
                panic!(
                    "cut at {cut}: opened with {} rows",
                    s.read().count(&t).unwrap()
                );
            }
        }
    }
    // Uncut, it opens with every row.
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    assert_eq!(store.read().count(&t).unwrap(), 40);
}

/// After a failed automatic compaction the next try waits until the updates have doubled;
/// a compaction that then succeeds (here an explicit one) ends that wait, so automatic
/// compaction comes back at its usual point.
#[test]
fn a_successful_compaction_ends_the_wait_a_failed_one_set() {
    use statelog::Store;
    let sim = SimBackend::new(31);
    let opts = common::sim_store_options(2, 1 << 20);
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    let mut i = 0u32;
    let mut put = |store: &Store| {
        store
            .write(|tx| tx.put_bytes(&t, &(i % 20).to_le_bytes(), &[i as u8; 60]))
            .unwrap();
        i += 1;
    };
    let mut failed_at = None;
    for _ in 0..2000 {
        sim.clear_faults();
        sim.inject(Fault {
            op: OpKind::Create,
            nth: 1,
            kind: FaultKind::Enospc,
        });
        put(&store);
        sim.clear_faults();
        if store.compaction_error().is_some() {
            failed_at = Some(store.log().update_bytes());
            break;
        }
    }
    let failed_at = failed_at.expect("no compaction was tried");
    store.compact().unwrap();
    let epoch = store.log().current_epoch();
    while store.log().current_epoch() == epoch {
        put(&store);
        assert!(
            store.log().update_bytes() < failed_at * 3 / 2,
            "automatic compaction still waits for the failed one's doubled tail"
        );
    }
}

/// Defect 2, across processes: a follower read the segment's bytes straight from the page
/// cache, so it showed a strong commit whose fsync had not returned (and then failed). Now an
/// update is delivered only once a later entry's sync mark covers it; the writer appends a
/// CLOSE as that mark after a sync nothing else followed, so an idle writer's last commit is
/// shown too.
#[test]
fn a_follower_in_another_process_shows_only_durable_commits() {
    use statelog::{Follower, FollowerOptions, Readable, Store, StoreOptions, TableDef};
    let sim = SimBackend::new(5);
    let (backend, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let opts = StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with(backend, &dir(), opts).unwrap();
    let t = store.table(TableDef::<u8, u32>::new("kv")).unwrap();
    store.write(|tx| tx.insert(&t, &1, &10)).unwrap();
    let follower =
        Follower::open_with(Arc::new(sim.clone()), &dir(), FollowerOptions::default()).unwrap();
    let rows = |f: &Follower| -> Vec<(u8, u32)> {
        f.poll().unwrap();
        let snap = f.read();
        snap.table_named::<u8, u32>("kv")
            .and_then(|t| snap.list(&t))
            .unwrap_or_default()
    };
    // The writer is idle after its commit: the mark it appended shows the commit.
    assert_eq!(rows(&follower), vec![(1, 10)]);
    sim.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::WritebackError,
    });
    control.hold_next_sync();
    std::thread::scope(|sc| {
        let w = sc.spawn(|| store.write(|tx| tx.insert(&t, &1, &11)));
        control.wait_held();
        let seen = rows(&follower);
        control.release();
        assert_eq!(
            seen,
            vec![(1, 10)],
            "a follower showed a commit whose fsync had not returned"
        );
        assert!(
            w.join().unwrap().is_err(),
            "the failed fsync was acknowledged"
        );
    });
    assert_eq!(
        rows(&follower),
        vec![(1, 10)],
        "a follower showed a commit whose fsync failed"
    );
    // The next writer cuts the bytes the failed fsync covered and goes on; the follower shows
    // its commits and never the failed one.
    drop(store);
    let store = Store::open_with(Arc::new(sim.process()), &dir(), StoreOptions::default()).unwrap();
    let t = store.table(TableDef::<u8, u32>::new("kv")).unwrap();
    assert_eq!(store.read().list(&t).unwrap(), vec![(1, 10)]);
    store.write(|tx| tx.insert(&t, &2, &20)).unwrap();
    assert_eq!(rows(&follower), vec![(1, 10), (2, 20)]);
    // Buffered commits are not durable: a follower shows them after a sync.
    store
        .write_with(statelog::Durability::Buffered, |tx| tx.insert(&t, &3, &30))
        .unwrap();
    assert_eq!(rows(&follower), vec![(1, 10), (2, 20)]);
    store.sync().unwrap();
    assert_eq!(rows(&follower), vec![(1, 10), (2, 20), (3, 30)]);
}
