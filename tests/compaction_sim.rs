//! Compaction beside the writers (issue 20, FORMAT.md §11.6.1): commits go on while a snapshot
//! is written, the switch copies them after it, and a crash at every step of the switch
//! recovers an acknowledged state.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::probe::{Control, Probe};
use statelog::backend::{CrashMode, SimBackend};
use statelog::epoch::{Durability, EpochLog, Options};
use statelog::{BytesTable, Readable, Store, StoreOptions};

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

/// A store on a simulated disk (seeded `seed`) under a [`Probe`], with 100 rows in its table
/// `t`.
fn probed_with_rows(
    seed: u64,
    opts: &StoreOptions,
) -> (SimBackend, Arc<Control>, Store, BytesTable) {
    let sim = SimBackend::new(seed);
    let (backend, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let store = Store::open_with(backend, &dir(), opts.clone()).unwrap();
    let t = store.bytes_table("t").unwrap();
    for i in 0..100u32 {
        store
            .write(|tx| tx.put_bytes(&t, &i.to_le_bytes(), b"before"))
            .unwrap();
    }
    (sim, control, store, t)
}

/// Commits are not blocked by a compaction: while the snapshot's file sync is held, another
/// thread commits (with the old code, compaction held the writer lock and this deadlocked);
/// after the switch every commit is in the new epoch, and a reopen restores all of them.
#[test]
fn commits_go_on_while_a_snapshot_is_written() {
    let opts = StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    };
    let (sim, control, store, t) = probed_with_rows(4, &opts);
    let epoch = store.read().position().epoch;
    control.hold_next_sync();
    std::thread::scope(|sc| {
        let compacting = sc.spawn(|| store.compact());
        control.wait_held(); // the snapshot's file is being synced
        let (tx, rx) = mpsc::channel();
        let (store2, t2) = (store.clone(), t.clone());
        sc.spawn(move || {
            for i in 100..150u32 {
                // Buffered: a strong commit's fsync would wait for the held one.
                store2
                    .write_with(Durability::Buffered, |x| {
                        x.put_bytes(&t2, &i.to_le_bytes(), b"during")
                    })
                    .unwrap();
            }
            tx.send(()).unwrap();
        });
        let done = rx.recv_timeout(Duration::from_secs(20));
        control.release();
        assert!(done.is_ok(), "commits were blocked by the compaction");
        compacting.join().unwrap().unwrap();
    });
    assert!(store.read().position().epoch > epoch, "no new epoch");
    assert_eq!(store.read().count(&t).unwrap(), 150);
    store.write(|tx| tx.put_bytes(&t, b"after", b"x")).unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    assert_eq!(store.read().count(&t).unwrap(), 151);
    assert_eq!(
        store
            .read()
            .get_bytes(&t, &120u32.to_le_bytes())
            .unwrap()
            .unwrap(),
        b"during"
    );
}

/// A compaction's retention deletes the epochs it no longer keeps without holding the log:
/// while the deletion of a segment is held, strong commits from another thread go on (they
/// waited for it, 100-230 ms after each compaction of a 1,000,000-row state); the deleted
/// epochs are gone once it is released, and a reopen restores every commit.
#[test]
fn commits_go_on_while_a_retention_deletes_segments() {
    let opts = StoreOptions {
        auto_compact: false,
        log: Options {
            retention: statelog::epoch::Retention {
                keep_epochs: 1,
                keep_for: None,
            },
            ..Options::default()
        },
        ..StoreOptions::default()
    };
    let (sim, control, store, t) = probed_with_rows(5, &opts);
    control.hold_next_segment_remove();
    std::thread::scope(|sc| {
        let compacting = sc.spawn(|| store.compact());
        control.wait_held(); // the retention is deleting the old epoch's segment
        let (tx, rx) = mpsc::channel();
        let (store2, t2) = (store.clone(), t.clone());
        sc.spawn(move || {
            for i in 100..120u32 {
                store2
                    .write(|x| x.put_bytes(&t2, &i.to_le_bytes(), b"during"))
                    .unwrap();
            }
            tx.send(()).unwrap();
        });
        let done = rx.recv_timeout(Duration::from_secs(20));
        control.release();
        assert!(done.is_ok(), "commits waited for the retention's deletion");
        let report = compacting.join().unwrap();
        report.unwrap();
    });
    assert_eq!(store.log().epochs().unwrap().len(), 1);
    assert_eq!(store.read().count(&t).unwrap(), 120);
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    assert_eq!(store.read().count(&t).unwrap(), 120);
}

/// The epoch layer's concurrent snapshot, crashed at every operation of a workload that
/// appends before, during and after it (between the ticket and the write, between the write
/// and the copy rounds, between them and the switch): every recovery is the snapshot's state plus a prefix of the later
/// updates that holds every acknowledged one.
#[test]
fn a_crash_at_every_step_of_a_concurrent_snapshot_keeps_what_was_acknowledged() {
    let opts = || Options {
        block_size: 1024,
        segment_bytes: 4096,
        ..Options::default()
    };
    // The state is the list of updates so far, one byte each.
    let workload = |be: &SimBackend| -> (Vec<u8>, usize) {
        let mut issued = Vec::new();
        let mut acked = 0;
        let Ok((log, _)) = EpochLog::open(Arc::new(be.clone()), &dir(), opts()) else {
            return (issued, acked);
        };
        let step = |log: &EpochLog, b: u8, issued: &mut Vec<u8>, acked: &mut usize| {
            issued.push(b);
            if log.append(&[b], Durability::Strong).is_ok() {
                *acked = issued.len();
                true
            } else {
                false
            }
        };
        for b in 0..10 {
            if !step(&log, b, &mut issued, &mut acked) {
                return (issued, acked);
            }
        }
        let Ok(ticket) = log.snapshot_start() else {
            return (issued, acked);
        };
        let state = issued.clone();
        for b in 10..15 {
            if !step(&log, b, &mut issued, &mut acked) {
                return (issued, acked);
            }
        }
        let Ok(mut prepared) = ticket.prepare(&state) else {
            return (issued, acked);
        };
        // Copy rounds beside the appends: what they copy is exactly what came after the
        // ticket, in order, each round after the last.
        let mut copied = Vec::new();
        for round in 0..2u8 {
            for b in (15 + round * 3)..(18 + round * 3) {
                if !step(&log, b, &mut issued, &mut acked) {
                    return (issued, acked);
                }
            }
            match log.snapshot_copy(&ticket, &mut prepared) {
                Ok(more) => copied.extend(more.iter().map(|u| u[0])),
                Err(_) => return (issued, acked),
            }
            assert_eq!(copied[..], issued[state.len()..], "round {round}");
        }
        for b in 21..23 {
            if !step(&log, b, &mut issued, &mut acked) {
                return (issued, acked);
            }
        }
        match log.snapshot_finish(ticket, prepared) {
            // The switch copies only what came after the last round.
            Ok((_, rest)) => assert_eq!(rest, vec![vec![21], vec![22]]),
            Err(_) => return (issued, acked),
        }
        for b in 23..28 {
            if !step(&log, b, &mut issued, &mut acked) {
                return (issued, acked);
            }
        }
        (issued, acked)
    };
    let total = {
        let be = SimBackend::new(1);
        let (issued, acked) = workload(&be);
        assert_eq!((issued.len(), acked), (28, 28));
        let (_, r) = EpochLog::open(Arc::new(be.clone()), &dir(), opts()).unwrap();
        assert!(r.epoch.id > 0, "the snapshot did not switch");
        let mut got = r.snapshot.clone().unwrap();
        got.extend(r.updates.map(|u| u.unwrap()[0]));
        assert_eq!(got, issued);
        be.ops()
    };
    assert!(total > 40, "{total} operations");
    eprintln!("{total} crash points x 3 modes");
    for n in 1..=total {
        for mode in [
            CrashMode::LoseUnsynced,
            CrashMode::KeepPrefix,
            CrashMode::Sectors,
        ] {
            let be = SimBackend::new(n * 7 + 1);
            be.crash_after(n);
            let (issued, acked) = workload(&be);
            be.crash(mode);
            let ctx = format!("crash after op {n}/{total} {mode:?}");
            let (_, r) = EpochLog::open(Arc::new(be.clone()), &dir(), opts())
                .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
            let mut got = r.snapshot.clone().unwrap_or_default();
            for u in r.updates {
                got.push(u.unwrap_or_else(|e| panic!("{ctx}: {e}"))[0]);
            }
            assert!(
                got.len() >= acked,
                "{ctx}: {got:?} lost acknowledged ({acked})"
            );
            assert_eq!(
                got[..],
                issued[..got.len()],
                "{ctx}: not a prefix of {issued:?}"
            );
        }
    }
}

/// Back-pressure: while a compaction runs (its file sync held here), commits go on, delayed a
/// little more each once the update tail is 2x past the size that made a compaction due,
/// until it is 4x past; then a commit waits for the compaction to finish, and the stall is
/// counted.
#[test]
fn commits_wait_for_a_compaction_that_falls_behind() {
    let sim = SimBackend::new(6);
    let (backend, control) = Probe::wrap_backend(Arc::new(sim.clone()));
    let opts = common::sim_store_options(2, 1 << 20);
    let store = Store::open_with(backend, &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    for i in 0..50u32 {
        store
            .write_with(Durability::Buffered, |tx| {
                tx.put_bytes(&t, &i.to_le_bytes(), &[1u8; 100])
            })
            .unwrap();
    }
    store.compact().unwrap();
    control.hold_next_sync();
    std::thread::scope(|sc| {
        let compacting = sc.spawn(|| store.compact());
        control.wait_held();
        // The compaction is held until a commit waits for it (or for long enough that one
        // should have).
        let releaser = sc.spawn(|| {
            let start = std::time::Instant::now();
            while store.compaction_stalls() == 0 && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(5));
            }
            control.release();
        });
        let mut delayed_before_stall = 0;
        for i in 0..20_000u32 {
            store
                .write_with(Durability::Buffered, |tx| {
                    tx.put_bytes(&t, &(i % 50).to_le_bytes(), &[2u8; 100])
                })
                .unwrap();
            if store.compaction_stalls() > 0 {
                break;
            }
            delayed_before_stall = store.compaction_delays().0;
        }
        releaser.join().unwrap();
        compacting.join().unwrap().unwrap();
        // Writers were slowed down gradually before any had to wait.
        assert!(
            delayed_before_stall >= 1,
            "no commit was delayed before the stall"
        );
    });
    assert!(store.compaction_stalls() >= 1, "no commit waited");
    let (delayed, time) = store.compaction_delays();
    assert!(delayed >= 1 && time > Duration::ZERO);
    assert_eq!(store.stats().compaction_delays, delayed);
    assert!(!store.compaction_running());
}
