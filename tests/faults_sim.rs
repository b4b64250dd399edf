//! Fault injection into the store: EIO on write, fsync, rename, directory sync, create and
//! read; ENOSPC and short writes at every write. The store returns errors, never acknowledges
//! a write it could not make durable, is poisoned after a failed write or fsync (reads go on,
//! writes are refused) and comes back intact on reopen. A full disk: the store still opens and
//! reads, writes resume once space is freed, and compaction cannot break it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::Rng;
use statelog::backend::{Backend, CrashMode, Fault, FaultKind, OpKind, SimBackend};
use statelog::epoch::{CompactionPolicy, Options};
use statelog::{Durability, Error, Readable, Store, StoreOptions, Table, TableDef};

type Model = BTreeMap<u16, u64>;

fn options() -> StoreOptions {
    StoreOptions {
        log: Options {
            block_size: 1024,
            segment_bytes: 4096,
            compaction: CompactionPolicy {
                update_ratio: 2.0,
                min_update_bytes: 2048,
            },
            ..Options::default()
        },
        ..StoreOptions::default()
    }
}

fn open(be: &SimBackend) -> statelog::Result<(Store, Table<u16, u64>)> {
    let store = Store::open_with(Arc::new(be.process()), Path::new("/db"), options())?;
    let t = store.table(TableDef::new("t"))?;
    Ok((store, t))
}

struct Run {
    history: Vec<Model>,
    acked: usize,
    failed: bool,
}

/// Strong and buffered commits and compactions until the first error; after it, checks that
/// the store refuses writes and still serves reads.
fn workload(be: &SimBackend, steps: usize) -> Run {
    let mut run = Run {
        history: vec![Model::new()],
        acked: 0,
        failed: false,
    };
    let (store, t) = match open(be) {
        Ok(x) => x,
        Err(_) => {
            run.failed = true;
            return run;
        }
    };
    let mut rng = Rng(7);
    let mut model = Model::new();
    for i in 0..steps as u64 {
        let r = if rng.below(15) == 0 {
            match store.compact() {
                Ok(()) => Ok(true),
                // A failure in the new snapshot's own file leaves the log as it was: writes
                // go on. A failure of the log itself poisons it (checked below).
                Err(e) if !matches!(e, Error::Poisoned { .. }) && store.log().sync().is_ok() => {
                    run.failed = true;
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            let k = rng.below(40) as u16;
            let strong = rng.below(3) > 0;
            model.insert(k, i);
            run.history.push(model.clone());
            let d = if strong {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            store
                .write_with(d, |tx| tx.insert(&t, &k, &i))
                .map(|_| strong)
        };
        match r {
            Ok(true) => run.acked = run.history.len() - 1,
            Ok(false) => {}
            Err(e) => {
                run.failed = true;
                assert!(
                    !matches!(e, Error::Corrupt { .. }),
                    "an I/O failure reported as corruption: {e}"
                );
                // Poisoned: writes refused, reads go on.
                let again = store.write(|tx| tx.insert(&t, &0, &0));
                assert!(again.is_err(), "a write was accepted after a failed one");
                let _ = store.read().count(&t).unwrap();
                break;
            }
        }
    }
    run
}

fn check(be: &SimBackend, run: &Run, ctx: &str) {
    let (store, t) = open(be).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let got: Model = store.read().list(&t).unwrap().into_iter().collect();
    assert!(
        run.history[run.acked..].contains(&got),
        "{ctx}: recovered state not between the last acknowledged commit and the last issued"
    );
    store
        .write(|tx| tx.insert(&t, &999, &1))
        .unwrap_or_else(|e| panic!("{ctx}: writes did not resume: {e}"));
}

#[test]
fn every_fault_kind_on_every_operation_kind() {
    let mut fired = 0;
    for kind in [FaultKind::Eio, FaultKind::Enospc, FaultKind::ShortWrite] {
        for op in [
            OpKind::Write,
            OpKind::Sync,
            OpKind::Rename,
            OpKind::SyncDir,
            OpKind::Create,
            OpKind::Read,
        ] {
            for nth in [1u64, 2, 3, 5, 8, 13, 21, 34] {
                for crash in [
                    None,
                    Some(CrashMode::LoseUnsynced),
                    Some(CrashMode::Sectors),
                ] {
                    let be = SimBackend::new(nth * 31 + kind as u64);
                    be.inject(Fault { op, nth, kind });
                    let run = workload(&be, 150);
                    // Fired: a fault whose failure the store absorbed (a retention intent that
                    // could not be written is retried later) counts too.
                    fired += usize::from(be.pending_faults() == 0);
                    be.clear_faults();
                    if let Some(mode) = crash {
                        be.crash(mode);
                    }
                    check(
                        &be,
                        &run,
                        &format!("{kind:?} on {op:?} #{nth}, then {crash:?}"),
                    );
                }
            }
        }
    }
    assert!(fired > 300, "faults fired in only {fired} runs");
    eprintln!("{fired} fault runs fired");
}

/// ENOSPC at every single write of a workload, in turn.
#[test]
fn enospc_at_every_write() {
    let writes = {
        let be = SimBackend::new(1);
        workload(&be, 150);
        // Count writes by failing the N-th until no failure fires.
        (1..)
            .find(|&n| {
                let be = SimBackend::new(1);
                be.inject(Fault {
                    op: OpKind::Write,
                    nth: n,
                    kind: FaultKind::Enospc,
                });
                workload(&be, 150);
                be.pending_faults() > 0
            })
            .unwrap_or(1)
    };
    assert!(writes > 50, "only {writes} writes");
    eprintln!("ENOSPC injected at each of {} writes", writes - 1);
    // Every ENOSPC fails the workload, except at a write whose failure the store absorbs: a
    // retention intent (retention is retried after the next snapshot) or the manifest (best
    // effort: a stale one checks less).
    let mut failed = 0;
    for n in 1..writes {
        let be = SimBackend::new(n);
        be.inject(Fault {
            op: OpKind::Write,
            nth: n,
            kind: FaultKind::Enospc,
        });
        let run = workload(&be, 150);
        failed += usize::from(run.failed);
        be.clear_faults();
        check(&be, &run, &format!("ENOSPC at write {n}"));
    }
    assert!(
        failed * 2 >= writes as usize - 1,
        "only {failed} of {writes} failed"
    );
    eprintln!("{failed} of {} failed the workload", writes - 1);
}

fn used(be: &SimBackend) -> u64 {
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    backend
        .list(Path::new("/db"))
        .unwrap()
        .iter()
        .map(|n| {
            be.file_bytes(&Path::new("/db").join(n))
                .map_or(0, |b| b.len() as u64)
        })
        .sum()
}

/// A full disk: writes fail cleanly (poisoned), compaction fails without breaking anything,
/// the store still opens and reads while full, and writes resume once space is freed.
#[test]
fn a_full_disk_never_breaks_the_store() {
    let be = SimBackend::new(9);
    let (store, t) = open(&be).unwrap();
    for i in 0..50u16 {
        store.write(|tx| tx.insert(&t, &i, &u64::from(i))).unwrap();
    }
    // Writes go on into the space the log reserved ahead of its data, then fail.
    be.set_capacity(Some(used(&be) + 200));
    let mut acked = 50;
    for i in 50..30_000u16 {
        match store.write(|tx| tx.insert(&t, &i, &u64::from(i))) {
            Ok(_) => acked = i + 1,
            Err(e) => {
                // The commit's own write failed, or a compaction after an earlier commit did
                // (that commit succeeded; this one is refused).
                assert!(
                    matches!(e, Error::Io { .. } | Error::Poisoned { .. }),
                    "{e}"
                );
                break;
            }
        }
    }
    assert!(acked < 30_000, "the disk never filled");
    assert!(matches!(store.compact(), Err(Error::Poisoned { .. })));
    assert_eq!(store.read().count(&t).unwrap() as u16, acked);
    drop(store);
    // Still full: it opens and reads; a compaction attempt fails cleanly. (Opening gives
    // back the space the log had reserved ahead of its data, so the disk is filled again.)
    for _ in 0..2 {
        let (store, t) = open(&be).unwrap();
        assert!(store.read().count(&t).unwrap() as u16 >= acked);
        be.set_capacity(Some(used(&be) + 200));
        assert!(store.compact().is_err());
        drop(store);
    }
    be.set_capacity(None);
    let (store, t) = open(&be).unwrap();
    let n = store.read().count(&t).unwrap();
    assert!(n as u16 >= acked);
    store.write(|tx| tx.insert(&t, &9999, &1)).unwrap();
    store.compact().unwrap();
    drop(store);
    let (store, t) = open(&be).unwrap();
    assert_eq!(store.read().count(&t).unwrap(), n + 1);
}

/// A strong commit whose fsync failed is never shown to readers, not even by the calls that
/// publish a new state without a commit of their own (opening a table, a sync).
#[test]
fn a_failed_strong_commit_stays_invisible() {
    let be = SimBackend::new(21);
    let (store, t) = open(&be).unwrap();
    store.write(|tx| tx.insert(&t, &1, &10)).unwrap();
    be.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(store.write(|tx| tx.insert(&t, &2, &20)).is_err());
    be.clear_faults();
    // Opening a table syncs first, so on a poisoned store it is refused.
    let again = store.table(TableDef::<u16, u64>::new("t"));
    assert!(matches!(again, Err(Error::Poisoned { .. })));
    let read = store.read();
    assert_eq!(read.get(&t, &1).unwrap().unwrap(), 10);
    assert!(matches!(read.get(&t, &2), Ok(None)));
    assert!(matches!(store.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(store.read().get(&t, &2), Ok(None)));
}

/// A subscriber never hears of a commit that is not durable: not of a strong commit whose
/// fsync failed, nor of the buffered commit before it, which that fsync would have covered.
#[test]
fn a_subscriber_never_sees_a_commit_whose_fsync_failed() {
    let be = SimBackend::new(22);
    let (store, t) = open(&be).unwrap();
    let sub = store.subscribe(statelog::ChangeFilter::all());
    store.write(|tx| tx.insert(&t, &1, &10)).unwrap();
    let seen = match sub.try_recv().unwrap() {
        statelog::Changes::Since(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(seen.len(), 1);
    store
        .write_with(Durability::Buffered, |tx| tx.insert(&t, &2, &20))
        .unwrap();
    be.inject(Fault {
        op: OpKind::Sync,
        nth: 1,
        kind: FaultKind::Eio,
    });
    assert!(store.write(|tx| tx.insert(&t, &3, &30)).is_err());
    be.clear_faults();
    assert!(store.sync().is_err());
    assert!(sub.try_recv().is_err(), "nothing after the failed fsync");
    drop(store);
    assert!(matches!(sub.recv(), Err(std::sync::mpsc::RecvError)));
}

/// Concurrent strong and buffered committers, compactions, and subscribers of the store and
/// of a follower (as in another process); a writeback error hits a random fsync, then the
/// power goes. Every change a subscriber received is there after recovery. The OS schedules
/// the threads; `STATELOG_SCHEDULES=N` runs more seeds.
#[test]
fn subscribers_receive_only_what_survives_a_failing_fsync_and_power_loss() {
    use statelog::{ChangeFilter, ChangeOp, Changes, Follower, FollowerOptions, Subscription};
    use std::sync::Mutex;
    let seeds: u64 = std::env::var("STATELOG_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let dir = Path::new("/db");
    let keys = |sub: &Subscription, into: &Mutex<Vec<Vec<u8>>>| {
        while let Ok(Changes::Since(v)) = sub.try_recv() {
            let mut into = into.lock().unwrap();
            for c in v {
                for op in c.ops {
                    if let ChangeOp::Put { key, .. } = op {
                        into.push(key);
                    }
                }
            }
        }
    };
    let mut received_total = 0;
    for seed in 0..seeds {
        let sim = SimBackend::new(2000 + seed);
        let opts = common::sim_store_options(2, 4096);
        // A process handle: the store dies with the machine.
        let store = Store::open_with(Arc::new(sim.process()), dir, opts.clone()).unwrap();
        let t = store.bytes_table("t").unwrap();
        let sub = store.subscribe(ChangeFilter::all());
        let follower =
            Follower::open_with(Arc::new(sim.clone()), dir, FollowerOptions::default()).unwrap();
        let fsub = follower.subscribe(ChangeFilter::tables(["t"]));
        let mut rng = Rng(seed);
        sim.inject(Fault {
            op: OpKind::Sync,
            nth: 5 + rng.below(60),
            kind: FaultKind::WritebackError,
        });
        let received = Mutex::new(Vec::<Vec<u8>>::new());
        std::thread::scope(|sc| {
            let (follower, received) = (&follower, &received);
            sc.spawn(move || {
                // Only this thread polls: nothing reaches `fsub` after its last poll.
                for _ in 0..40 {
                    let _ = follower.poll();
                    keys(&fsub, received);
                    std::thread::yield_now();
                }
            });
            for w in 0..3u32 {
                let (store, t) = (&store, &t);
                sc.spawn(move || {
                    for i in 0..40u32 {
                        let k = w * 1000 + i;
                        let d = if (k + w) % 3 == 0 {
                            Durability::Buffered
                        } else {
                            Durability::Strong
                        };
                        if store
                            .write_with(d, |tx| tx.put_bytes(t, &k.to_le_bytes(), b"v"))
                            .is_err()
                        {
                            return;
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
        });
        keys(&sub, &received);
        sim.clear_faults();
        sim.crash(CrashMode::LoseUnsynced);
        drop(store);
        let store = Store::open_with(Arc::new(sim.clone()), dir, opts)
            .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
        let t = store.bytes_table("t").unwrap();
        let snap = store.read();
        let received = received.into_inner().unwrap();
        received_total += received.len();
        for k in &received {
            assert!(
                matches!(snap.get_bytes(&t, k), Ok(Some(_))),
                "seed {seed}: a subscriber received {k:?}, then it was lost"
            );
        }
    }
    assert!(received_total > 0, "the subscribers received nothing");
}

/// A follower's read that fails (EIO) fails that poll only: nothing is applied in part, the
/// follower is not stopped, and the next poll applies everything (issue 22 item 6).
#[test]
fn a_transient_read_error_fails_one_poll_only() {
    use statelog::{Follower, FollowerOptions};
    let be = SimBackend::new(77);
    let dir = Path::new("/follow");
    let store = Store::open_with(Arc::new(be.process()), dir, options()).unwrap();
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"a", b"1")).unwrap();
    let follower =
        Follower::open_with(Arc::new(be.clone()), dir, FollowerOptions::default()).unwrap();
    let mut failures = 0;
    for round in 0..20u32 {
        store
            .write(|tx| {
                tx.put_bytes(&t, &round.to_le_bytes(), b"x")?;
                tx.put_bytes(&t, b"a", &round.to_le_bytes())
            })
            .unwrap();
        be.inject(Fault {
            op: OpKind::Read,
            nth: 1 + u64::from(round % 3),
            kind: FaultKind::Eio,
        });
        let mut failed = 0;
        loop {
            match follower.poll() {
                Ok(_) => break,
                Err(Error::Io { .. }) => failed += 1,
                Err(e) => panic!("round {round}: a read error stopped the follower: {e}"),
            }
            assert!(failed < 5, "round {round}: polls keep failing");
        }
        be.clear_faults();
        failures += failed;
        let snap = follower.read();
        assert_eq!(
            snap.get_bytes(&t, b"a").unwrap(),
            Some(round.to_le_bytes().to_vec())
        );
        assert_eq!(snap.count(&t).unwrap(), round as usize + 2);
    }
    assert!(
        failures >= 10,
        "only {failures} polls met the injected errors"
    );
}
