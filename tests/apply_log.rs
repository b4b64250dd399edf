//! Apply logs (issue 22, director's `LogApply`, `CountApplied`, `AppliedInstances`,
//! `ResetApplyLog`): entries appended in write transactions with increasing ids that never go
//! back, read by id range, counted, cut before an id, emptied, filtered; atomic with the other
//! tables' changes; durable through a crash at every operation; seen by followers and the
//! change feed; never opened as a plain table.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statelog::backend::SimBackend;
use statelog::{
    ApplyLog, ChangeOp, Changes, Durability, Error, Follower, FollowerOptions, Readable, Store,
    StoreOptions, Table, TableDef,
};

/// A director apply-log row: which instance applied which version of a collection, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    instance: String,
    collection: String,
    version: String,
    status: String,
}

fn applied(instance: &str, collection: &str, version: &str, status: &str) -> Applied {
    Applied {
        instance: instance.into(),
        collection: collection.into(),
        version: version.into(),
        status: status.into(),
    }
}

/// Director's `CountApplied`: instances that applied `version` of `collection` successfully.
fn count_applied(
    r: &impl Readable,
    log: &ApplyLog<Applied>,
    collection: &str,
    version: &str,
) -> usize {
    instances(r, log, collection, version, "ok").len()
}

/// Director's `AppliedInstances`: the instances that logged `status` for the version, once
/// each, in the order they first did.
fn instances(
    r: &impl Readable,
    log: &ApplyLog<Applied>,
    collection: &str,
    version: &str,
    status: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in r.entries(log, ..).unwrap() {
        let (_, a) = e.unwrap();
        if a.collection == collection
            && a.version == version
            && a.status == status
            && !out.contains(&a.instance)
        {
            out.push(a.instance);
        }
    }
    out
}

#[test]
fn director_apply_log_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let log = store.apply_log::<Applied>("apply_log").unwrap();
    store
        .write(|tx| {
            tx.append(&log, &applied("i1", "routes", "v1", "ok"))?;
            tx.append(&log, &applied("i2", "routes", "v1", "failed"))?;
            tx.append(&log, &applied("i2", "routes", "v1", "ok"))?;
            tx.append(&log, &applied("i1", "routes", "v2", "ok"))?;
            tx.append(&log, &applied("i1", "routes", "v1", "ok"))?;
            Ok(())
        })
        .unwrap();
    let snap = store.read();
    assert_eq!(count_applied(&snap, &log, "routes", "v1"), 2);
    assert_eq!(instances(&snap, &log, "routes", "v1", "failed"), vec!["i2"]);
    assert_eq!(
        instances(&snap, &log, "routes", "v1", "ok"),
        vec!["i1", "i2"]
    );
    assert_eq!(snap.count(&log).unwrap(), 5);
    // ResetApplyLog("routes", "v1"): the other versions' entries stay.
    let removed = store
        .write(|tx| {
            tx.retain(&log, |_, a| {
                !(a.collection == "routes" && a.version == "v1")
            })
        })
        .unwrap();
    assert_eq!(removed, 4);
    let snap = store.read();
    assert_eq!(count_applied(&snap, &log, "routes", "v1"), 0);
    assert_eq!(count_applied(&snap, &log, "routes", "v2"), 1);
    let left: Vec<(u64, Applied)> = snap
        .entries(&log, ..)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, vec![(4, applied("i1", "routes", "v2", "ok"))]);
}

#[test]
fn ids_increase_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let ids = |store: &Store, log: &ApplyLog<u32>| -> Vec<u64> {
        store
            .read()
            .entries(log, ..)
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect()
    };
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let log = store.apply_log::<u32>("events").unwrap();
        for v in 0..10u32 {
            let id = store.write(|tx| tx.append(&log, &v)).unwrap();
            assert_eq!(id, u64::from(v) + 1);
        }
        // Ranges by id: after an id, up to one, one id.
        let r = store.read();
        let after_7: Vec<(u64, u32)> = r.entries(&log, 8..).unwrap().map(Result::unwrap).collect();
        assert_eq!(after_7, vec![(8, 7), (9, 8), (10, 9)]);
        assert_eq!(r.entries(&log, ..=2).unwrap().count(), 2);
        assert_eq!(r.entry(&log, 5).unwrap(), Some(4));
        assert_eq!(r.entry(&log, 11).unwrap(), None);
        // A cut of a prefix: the ids after it keep their ids.
        assert_eq!(store.write(|tx| tx.truncate_before(&log, 6)).unwrap(), 5);
        assert_eq!(ids(&store, &log), vec![6, 7, 8, 9, 10]);
        assert_eq!(store.read().entry(&log, 5).unwrap(), None);
        // Cutting below what is left removes nothing.
        assert_eq!(store.write(|tx| tx.truncate_before(&log, 3)).unwrap(), 0);
        assert_eq!(store.write(|tx| tx.append(&log, &10)).unwrap(), 11);
        store.close().unwrap();
    }
    {
        // Across a reopen (the ids' sequence is in the log), a compaction and a reset.
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let log = store.apply_log::<u32>("events").unwrap();
        assert_eq!(ids(&store, &log), vec![6, 7, 8, 9, 10, 11]);
        assert_eq!(store.write(|tx| tx.append(&log, &11)).unwrap(), 12);
        store.compact().unwrap();
        assert_eq!(store.write(|tx| tx.reset(&log)).unwrap(), 7);
        assert_eq!(store.read().count(&log).unwrap(), 0);
        assert_eq!(store.write(|tx| tx.append(&log, &12)).unwrap(), 13);
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let log = store.apply_log::<u32>("events").unwrap();
    assert_eq!(ids(&store, &log), vec![13]);
    assert_eq!(store.write(|tx| tx.append(&log, &13)).unwrap(), 14);
}

#[test]
fn an_append_commits_with_the_transaction_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let log = store.apply_log::<String>("applied").unwrap();
    let active: Table<String, String> = store.table(TableDef::new("active")).unwrap();
    // The activation and its log entry in one transaction.
    store
        .write(|tx| {
            tx.insert(&active, &"routes".to_string(), &"v2".to_string())?;
            tx.append(&log, &"activated v2".to_string())
        })
        .unwrap();
    // A transaction that fails after its append leaves neither.
    let failed = store.write(|tx| {
        tx.insert(&active, &"routes".to_string(), &"v3".to_string())?;
        tx.append(&log, &"activated v3".to_string())?;
        Err::<(), _>(Error::InvalidArgument("v3 does not apply".into()))
    });
    assert!(failed.is_err());
    let snap = store.read();
    assert_eq!(snap.get(&active, "routes").unwrap().as_deref(), Some("v2"));
    let entries: Vec<(u64, String)> = snap
        .entries(&log, ..)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries, vec![(1, "activated v2".to_string())]);
    // The failed transaction's id was not handed out either.
    assert_eq!(
        store
            .write(|tx| tx.append(&log, &"next".to_string()))
            .unwrap(),
        2
    );
}

#[test]
fn a_log_is_not_a_plain_table_and_a_table_is_not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let _log = store.apply_log::<u32>("events").unwrap();
    let as_table = store.table(TableDef::<u64, u32>::new("events"));
    match as_table {
        Err(Error::IncompatibleSchema { found, .. }) => {
            assert!(found.contains("apply log"), "{found}")
        }
        other => panic!("opened a log as a table: {other:?}"),
    }
    let _t = store.table(TableDef::<u64, u32>::new("plain")).unwrap();
    assert!(matches!(
        store.apply_log::<u32>("plain"),
        Err(Error::IncompatibleSchema { .. })
    ));
    // Another entry type.
    assert!(matches!(
        store.apply_log::<String>("events"),
        Err(Error::IncompatibleSchema { .. })
    ));
    // A bytes table of the name.
    assert!(store.bytes_table("events").is_err());
}

#[test]
fn followers_and_the_change_feed_see_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let log = store.apply_log::<String>("events").unwrap();
    store
        .write(|tx| tx.append(&log, &"one".to_string()))
        .unwrap();
    let follower = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let flog = follower.apply_log::<String>("events").unwrap();
    assert!(matches!(
        follower.apply_log::<u32>("events"),
        Err(Error::IncompatibleSchema { .. })
    ));
    let from = follower.read().position();
    store
        .write(|tx| tx.append(&log, &"two".to_string()))
        .unwrap();
    store.write(|tx| tx.truncate_before(&log, 2)).unwrap();
    follower.poll().unwrap();
    let seen: Vec<(u64, String)> = follower
        .read()
        .entries(&flog, ..)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seen, vec![(2, "two".to_string())]);
    let Changes::Since(changes) = follower.changes_since(from, 10).unwrap() else {
        panic!("the log holds the changes");
    };
    let ops: Vec<(String, bool)> = changes
        .iter()
        .flat_map(|tx| tx.ops.iter())
        .map(|op| (op.table().to_string(), matches!(op, ChangeOp::Put { .. })))
        .collect();
    assert_eq!(
        ops,
        vec![("events".to_string(), true), ("events".to_string(), false)]
    );
}

fn sim_dir() -> PathBuf {
    PathBuf::from("/applylog")
}

/// Appends (strong and buffered), cuts and compactions, crashed at every operation: every
/// recovery holds the entries of a prefix of the transactions that includes every
/// acknowledged strong one, with their ids.
#[test]
fn appends_survive_a_crash_at_every_operation() {
    type Expected = Vec<(u64, u32)>;
    let workload = |be: &SimBackend| -> (Vec<Expected>, usize) {
        // The entries after each transaction; the last acknowledged strong one.
        let mut history: Vec<Expected> = vec![Vec::new()];
        let mut acked = 0;
        let open = || -> statelog::Result<(Store, ApplyLog<u32>)> {
            let store = Store::open_with(
                Arc::new(be.process()),
                &sim_dir(),
                common::sim_store_options(2, 2048),
            )?;
            let log = store.apply_log::<u32>("log")?;
            Ok((store, log))
        };
        let Ok((store, log)) = open() else {
            return (history, acked);
        };
        let mut now: Expected = Vec::new();
        let mut next = 1u64;
        for step in 0..40u32 {
            let durability = if step % 3 == 0 {
                Durability::Buffered
            } else {
                Durability::Strong
            };
            // The entries if this transaction commits (it may, even when the call fails).
            let mut issued = now.clone();
            let result = if step % 11 == 10 {
                let cut = next.saturating_sub(3);
                issued.retain(|(id, _)| *id >= cut);
                store
                    .write_with(durability, |tx| tx.truncate_before(&log, cut))
                    .map(|_| ())
            } else {
                issued.push((next, step));
                issued.push((next + 1, step + 1000));
                store
                    .write_with(durability, |tx| {
                        let a = tx.append(&log, &step)?;
                        let b = tx.append(&log, &(step + 1000))?;
                        Ok((a, b))
                    })
                    .map(|(a, b)| {
                        assert_eq!((a, b), (next, next + 1));
                        next += 2;
                    })
            };
            history.push(issued.clone());
            if result.is_err() {
                break;
            }
            now = issued;
            if durability == Durability::Strong {
                acked = history.len() - 1;
            }
            if step % 13 == 12 && store.compact().is_err() {
                break;
            }
        }
        (history, acked)
    };
    let check = |be: &SimBackend, run: &(Vec<Expected>, usize), ctx: &str| {
        let (history, acked) = run;
        let store = Store::open_with(
            Arc::new(be.process()),
            &sim_dir(),
            common::sim_store_options(2, 2048),
        )
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
        let got: Expected = match store.apply_log::<u32>("log") {
            Ok(log) => store
                .read()
                .entries(&log, ..)
                .unwrap()
                .map(|e| e.unwrap())
                .collect(),
            // Crashed before the log's creation was durable.
            Err(_) => Vec::new(),
        };
        let at = history[*acked..]
            .iter()
            .position(|h| *h == got)
            .unwrap_or_else(|| panic!("{ctx}: recovered {got:?}, no state at or after {acked}"));
        let at = at + acked;
        // Ids never go back: the next append follows every id the recovered state saw.
        if let Ok(log) = store.apply_log::<u32>("log") {
            let highest = history[..=at]
                .iter()
                .flat_map(|h| h.iter().map(|(id, _)| *id))
                .max()
                .unwrap_or(0);
            let id = store.write(|tx| tx.append(&log, &0)).unwrap();
            assert!(id > highest, "{ctx}: id {id} after {highest}");
        }
    };
    for seed in [3u64, 4] {
        let total = common::crash_at_every_operation(seed, workload, check);
        eprintln!("seed {seed}: {total} crash points x 3 modes");
    }
}
