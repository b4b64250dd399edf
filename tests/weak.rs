//! Weak durability: ports of the behaviour Resin's flush, engine and consistency tests pin
//! (../shared/research/seed-repos.md §000), the concurrent-flush hazard, and restarts.

#[path = "../examples/proxy_pool/model.rs"]
mod model;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use model::*;
use parking_lot::Mutex;
use statelog::weak::{DirtySet, FlushPolicy, Flusher, Persistence, Rules};
use statelog::{Error, Readable, Store, StoreOptions};

type Memory<K, V> = Arc<Mutex<HashMap<K, V>>>;

/// The application side: in-memory nodes with their dirty set.
struct App {
    nodes: Memory<String, NodeStatic>,
    dirty: Arc<DirtySet<String>>,
}

impl App {
    fn new() -> Self {
        App {
            nodes: Arc::new(Mutex::new(HashMap::new())),
            dirty: Arc::new(DirtySet::new()),
        }
    }

    fn put(&self, hash: &str, created: i64) {
        self.nodes.lock().insert(hash.into(), node(created));
        self.dirty.mark_upsert(hash.into());
    }

    fn flusher(&self, weak: &Store, t: &Tables) -> Arc<Flusher> {
        let nodes = self.nodes.clone();
        Arc::new(
            Flusher::new(weak.clone()).source(&t.nodes_static, self.dirty.clone(), move |k| {
                nodes.lock().get(k).cloned()
            }),
        )
    }
}

fn node(created: i64) -> NodeStatic {
    NodeStatic {
        raw_options_json: format!("{{\"n\":{created}}}"),
        created_at_ns: created,
    }
}

fn open(dir: &Path) -> (Persistence, Tables, Rules) {
    let (p, (t, r)) = Persistence::open(
        dir.join("state"),
        dir.join("cache"),
        StoreOptions::default(),
        StoreOptions::default(),
        |s, w| {
            let (t, r) = open_tables(s, w)?;
            let (_, r2) = open_tables(s, w)?;
            Ok(((t, r2), r))
        },
    )
    .unwrap();
    (p, t, r)
}

/// Waits until the weak store holds `n` static nodes: the marks are drained when a flush
/// starts and the rows visible when it commits, so waiting for an empty dirty set would race
/// with the commit.
fn wait_for_rows(p: &Persistence, t: &Tables, n: usize) {
    assert!(
        wait_until(Duration::from_millis(5000), || p
            .weak
            .read()
            .count(&t.nodes_static)
            .unwrap()
            == n),
        "the flush did not commit {n} rows"
    );
}

fn wait_until(limit: Duration, f: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// TestFlushWorker_ThresholdTriggered.
#[test]
fn worker_flushes_at_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = App::new();
    for i in 0..3 {
        app.put(&format!("n{i}"), i);
    }
    let policy = FlushPolicy::fixed(Duration::from_millis(50), 2, Duration::from_secs(3600));
    p.start_flush_worker(app.flusher(&p.weak, &t), policy)
        .unwrap();
    wait_for_rows(&p, &t, 3);
    assert!(app.dirty.is_empty());
    p.close().unwrap();
}

/// TestFlushWorker_PeriodicTriggered and TestFlushWorker_SkipsEmptyDirty.
#[test]
fn worker_flushes_by_interval_and_skips_empty_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = App::new();
    let flushes = Arc::new(AtomicUsize::new(0));
    let f = flushes.clone();
    let policy = FlushPolicy {
        threshold: Arc::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
            10_000
        }),
        ..FlushPolicy::fixed(
            Duration::from_millis(20),
            10_000,
            Duration::from_millis(100),
        )
    };
    p.start_flush_worker(app.flusher(&p.weak, &t), policy)
        .unwrap();
    let seq = p.weak.read().seq();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        flushes.load(Ordering::SeqCst),
        0,
        "empty ticks must not even evaluate the policy"
    );
    assert_eq!(
        p.weak.read().seq(),
        seq,
        "nothing written for an empty dirty set"
    );
    app.put("only", 1);
    wait_for_rows(&p, &t, 1);
    assert!(app.dirty.is_empty());
    p.close().unwrap();
}

/// TestFlushWorker_StopFinalFlush: a mark below every trigger is flushed by stopping.
#[test]
fn stopping_the_worker_flushes_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = App::new();
    let policy = FlushPolicy::fixed(Duration::from_millis(20), 10_000, Duration::from_secs(3600));
    p.start_flush_worker(app.flusher(&p.weak, &t), policy)
        .unwrap();
    app.put("n", 7);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(app.dirty.len(), 1, "still dirty before stop");
    let weak = p.weak.clone();
    p.close().unwrap();
    assert!(app.dirty.is_empty());
    assert_eq!(
        weak.read()
            .get(&t.nodes_static, &"n".to_string())
            .unwrap()
            .unwrap(),
        node(7)
    );
}

/// TestFlushWorker_DynamicConfigPulled: lowering the threshold at run time flushes.
#[test]
fn worker_reads_its_policy_on_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = App::new();
    let threshold = Arc::new(AtomicUsize::new(10_000));
    let th = threshold.clone();
    let policy = FlushPolicy {
        threshold: Arc::new(move || th.load(Ordering::SeqCst)),
        ..FlushPolicy::fixed(Duration::from_millis(20), 0, Duration::from_secs(3600))
    };
    p.start_flush_worker(app.flusher(&p.weak, &t), policy)
        .unwrap();
    app.put("n", 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(app.dirty.len(), 1);
    threshold.store(1, Ordering::SeqCst);
    assert!(wait_until(Duration::from_millis(1000), || app
        .dirty
        .is_empty()));
    p.close().unwrap();
}

/// TestEngine_WeakPersist_FlushAndLoad, _DeleteFlush and _UpsertMissTreatedAsDelete.
#[test]
fn flush_writes_upserts_deletes_and_treats_misses_as_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = App::new();
    let flusher = app.flusher(&p.weak, &t);
    app.put("a", 1);
    app.put("b", 2);
    app.put("c", 3);
    app.dirty.mark_upsert("gone".into()); // no value in memory: a delete
    assert_eq!(flusher.dirty_count(), 4);
    let report = flusher.flush().unwrap();
    assert_eq!(flusher.dirty_count(), 0);
    assert_eq!(report.upserts["nodes_static"], 3);
    assert_eq!(p.weak.read().count(&t.nodes_static).unwrap(), 3);
    app.nodes.lock().remove("a");
    app.dirty.mark_delete("a".into());
    app.nodes.lock().remove("b");
    app.dirty.mark_upsert("b".into()); // removed between mark and flush
    let report = flusher.flush().unwrap();
    assert_eq!(report.deletes["nodes_static"], 2);
    let keys: Vec<String> = p
        .weak
        .read()
        .list(&t.nodes_static)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["c".to_string()]);
}

/// TestCacheRepo_FlushTx_RollbackOnFailure: a flush that fails writes nothing, and its keys
/// are merged back (newer marks win) and written by the next flush.
#[test]
fn a_failed_flush_writes_nothing_and_merges_back() {
    let dir = tempfile::tempdir().unwrap();
    let weak = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let nodes = weak
        .table(statelog::TableDef::<String, NodeStatic>::new(
            "nodes_static",
        ))
        .unwrap();
    // A second table whose unique index will make the flush fail.
    let named = weak
        .table(
            statelog::TableDef::<String, String>::new("named").unique("v", |v: &String| v.clone()),
        )
        .unwrap();
    let node_dirty = Arc::new(DirtySet::new());
    let named_dirty = Arc::new(DirtySet::new());
    let values: Memory<String, String> = Arc::new(Mutex::new(HashMap::new()));
    let v = values.clone();
    let flusher = Flusher::new(weak.clone())
        .source(&nodes, node_dirty.clone(), |k: &String| {
            Some(node(k.len() as i64))
        })
        .source(&named, named_dirty.clone(), move |k| {
            v.lock().get(k).cloned()
        });
    values.lock().insert("x".into(), "same".into());
    values.lock().insert("y".into(), "same".into());
    node_dirty.mark_upsert("n1".into());
    named_dirty.mark_upsert("x".into());
    named_dirty.mark_upsert("y".into());
    let before = weak.read().seq();
    assert!(matches!(flusher.flush(), Err(Error::Conflict { .. })));
    assert_eq!(weak.read().seq(), before, "no partial write");
    assert_eq!(weak.read().count(&nodes).unwrap(), 0);
    assert_eq!(flusher.dirty_count(), 3, "merged back");
    // A newer mark made during the failure wins over the merged-back one.
    named_dirty.mark_delete("y".into());
    values.lock().remove("y");
    flusher.flush().unwrap();
    assert_eq!(weak.read().count(&nodes).unwrap(), 1);
    assert_eq!(
        weak.read().list(&named).unwrap(),
        vec![("x".to_string(), "same".to_string())]
    );
}

/// A value that cannot be encoded fails the flush before anything is written: every drained
/// mark, of every table, is merged back.
#[test]
fn a_value_that_cannot_be_encoded_fails_the_flush_and_merges_back() {
    #[derive(serde::Deserialize)]
    struct Refuses(#[allow(dead_code)] u8);
    impl serde::Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let weak = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let plain = weak
        .table(statelog::TableDef::<u64, u64>::new("plain"))
        .unwrap();
    let bad = weak
        .table(statelog::TableDef::<u64, Refuses>::new("bad"))
        .unwrap();
    let (plain_dirty, bad_dirty) = (Arc::new(DirtySet::new()), Arc::new(DirtySet::new()));
    let flusher = Flusher::new(weak.clone())
        .source(&plain, plain_dirty.clone(), |k| Some(*k))
        .source_borrowed(&bad, bad_dirty.clone(), |k, lend| lend(&Refuses(*k as u8)));
    plain_dirty.mark_upsert(1);
    bad_dirty.mark_upsert(2);
    let before = weak.read().seq();
    let err = flusher.flush().unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(weak.read().seq(), before, "nothing written");
    assert_eq!(flusher.dirty_count(), 2, "merged back");
    bad_dirty.mark_delete(2);
    flusher.flush().unwrap();
    assert_eq!(weak.read().get(&plain, &1).unwrap().unwrap(), 1);
}

/// `source_borrowed`: the value is lent, not copied; a key the callback does not lend is gone
/// and its row is deleted; marked deletes delete; rows come back after a restart.
#[test]
fn borrowed_sources_write_lent_values_and_delete_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let values: Memory<u64, String> = Arc::new(Mutex::new(HashMap::new()));
    let dirty = Arc::new(DirtySet::new());
    {
        let weak = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let t = weak.table(t_def().0).unwrap();
        let v = values.clone();
        let flusher =
            Flusher::new(weak.clone()).source_borrowed(&t, dirty.clone(), move |k, lend| {
                if let Some(s) = v.lock().get(k) {
                    lend(s);
                }
            });
        for i in 0..3000u64 {
            values.lock().insert(i, format!("v{i}"));
            dirty.mark_upsert(i);
        }
        let r = flusher.flush().unwrap();
        assert_eq!(r.upserts.get("t"), Some(&3000));
        // Renames keep the unique index right (enough rows for the flush to merge them into the
        // table's base); 1500..1600 vanish from memory; 1600..1700 are deleted.
        for i in 0..1500u64 {
            values.lock().insert(i, format!("w{i}"));
            dirty.mark_upsert(i);
        }
        for i in 1500..1600u64 {
            values.lock().remove(&i);
            dirty.mark_upsert(i);
        }
        for i in 1600..1700u64 {
            values.lock().remove(&i);
            dirty.mark_delete(i);
        }
        let r = flusher.flush().unwrap();
        assert_eq!(
            (r.upserts.get("t"), r.deletes.get("t")),
            (Some(&1500), Some(&200))
        );
        // Read back before the restart too.
        let snap = weak.read();
        let stored: HashMap<u64, String> = snap.list(&t).unwrap().into_iter().collect();
        assert_eq!(stored, *values.lock());
        let by_v = t_def().1;
        assert_eq!(snap.get_by(&by_v, "w3").unwrap().unwrap().0, 3);
        assert_eq!(snap.get_by(&by_v, "v3").unwrap(), None);
        weak.close().unwrap();
    }
    let weak = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = weak.table(t_def().0).unwrap();
    let snap = weak.read();
    let stored: HashMap<u64, String> = snap.list(&t).unwrap().into_iter().collect();
    assert_eq!(stored, *values.lock());
    let by_v = t_def().1;
    assert_eq!(snap.get_by(&by_v, "w3").unwrap().unwrap().0, 3);
    assert_eq!(snap.get_by(&by_v, "v3").unwrap(), None);
    assert_eq!(snap.get_by(&by_v, "v1550").unwrap(), None);
    assert_eq!(snap.get_by(&by_v, "v2000").unwrap().unwrap().0, 2000);
}

/// The table of the test above, and its unique index on the value.
fn t_def() -> (
    statelog::TableDef<u64, String>,
    statelog::Index<u64, String, String>,
) {
    let mut def = statelog::TableDef::new("t");
    let by_v = def.unique_index("v", |v: &String| v.clone());
    (def, by_v)
}

/// TestEngine_ConcurrentMarkAndFlush, strengthened to check values; and the hazard of the
/// original (two concurrent flushes could persist an older value while the key was no longer
/// dirty): flushes here never run concurrently, so after a final flush every stored value is
/// the latest one.
#[test]
fn concurrent_marks_and_flushes_persist_the_latest_values() {
    for _ in 0..3 {
        concurrent_marks_and_flushes_once();
    }
}

fn concurrent_marks_and_flushes_once() {
    let dir = tempfile::tempdir().unwrap();
    let (p, t, _) = open(dir.path());
    let app = Arc::new(App::new());
    let flusher = app.flusher(&p.weak, &t);
    std::thread::scope(|s| {
        for w in 0..10i64 {
            let app = app.clone();
            s.spawn(move || {
                for round in 0..50i64 {
                    for n in 0..10 {
                        // The same 100 keys, rewritten over and over with growing values.
                        app.put(&format!("node{}", w * 10 + n), round * 1000 + w);
                    }
                }
            });
        }
        for _ in 0..3 {
            let f = flusher.clone();
            s.spawn(move || {
                for _ in 0..30 {
                    f.flush().unwrap();
                }
            });
        }
    });
    flusher.flush().unwrap();
    let stored: HashMap<String, NodeStatic> = p
        .weak
        .read()
        .list(&t.nodes_static)
        .unwrap()
        .into_iter()
        .collect();
    let memory = app.nodes.lock().clone();
    assert_eq!(stored.len(), 100, "some lost in concurrent flush");
    assert_eq!(stored, memory, "a stale value was persisted");
}

/// TestRepairConsistency_RemovesOrphans (the full orphan matrix) and
/// TestRepairConsistency_ValidRecordsSurvive, with references into the strong directory.
#[test]
fn repair_removes_exactly_the_orphans() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, t, _) = open(dir.path());
        let s = |x: &str| x.to_string();
        p.strong
            .write(|tx| {
                tx.insert(
                    &t.platforms,
                    &s("plat"),
                    &Platform {
                        name: s("default"),
                        sticky_ttl_ns: 1,
                        allocation_policy: s("BALANCED"),
                        updated_at_ns: 1,
                    },
                )?;
                tx.insert(
                    &t.subscriptions,
                    &s("sub"),
                    &Subscription {
                        name: s("s"),
                        url: s("u"),
                        enabled: true,
                        created_at_ns: 1,
                        updated_at_ns: 1,
                    },
                )?;
                Ok(())
            })
            .unwrap();
        let live = SubscriptionNode {
            tags: vec![s("t")],
            evicted: false,
        };
        let evicted = SubscriptionNode {
            tags: vec![],
            evicted: true,
        };
        let lease = |node: &str| Lease {
            node_hash: s(node),
            egress_ip: s("1.2.3.4"),
            created_at_ns: 777,
            expiry_ns: 9,
            last_accessed_ns: 8,
        };
        let dynamic = NodeDynamic {
            failure_count: 0,
            circuit_open_since: 0,
            egress_ip: s("ip"),
            egress_region: s("eu"),
            egress_updated_at_ns: 1,
        };
        let lat = NodeLatency {
            ewma_ns: 5,
            last_updated_ns: 5,
        };
        p.weak
            .write(|tx| {
                for n in ["kept", "only_evicted", "unbound"] {
                    tx.insert(&t.nodes_static, &s(n), &node(1))?;
                }
                // Bindings: live to a kept node; live to a missing node (orphan); evicted to a
                // missing node (survives); evicted to an existing node (survives, node goes);
                // a binding of a missing subscription (orphan).
                tx.insert(&t.subscription_nodes, &(s("sub"), s("kept")), &live)?;
                tx.insert(&t.subscription_nodes, &(s("sub"), s("missing")), &live)?;
                tx.insert(
                    &t.subscription_nodes,
                    &(s("sub"), s("gone_evicted")),
                    &evicted,
                )?;
                tx.insert(
                    &t.subscription_nodes,
                    &(s("sub"), s("only_evicted")),
                    &evicted,
                )?;
                tx.insert(&t.subscription_nodes, &(s("nosub"), s("kept")), &live)?;
                for n in ["kept", "only_evicted", "missing"] {
                    tx.insert(&t.nodes_dynamic, &s(n), &dynamic)?;
                    tx.insert(&t.node_latency, &(s(n), s("a.com")), &lat)?;
                }
                tx.insert(&t.leases, &(s("plat"), s("acct1")), &lease("kept"))?;
                tx.insert(&t.leases, &(s("plat"), s("acct2")), &lease("only_evicted"))?;
                tx.insert(&t.leases, &(s("noplat"), s("acct3")), &lease("kept"))?;
                Ok(())
            })
            .unwrap();
        p.close().unwrap();
    }
    let (p, t, rules) = open(dir.path());
    let removed: Vec<(&str, usize)> = p
        .repair
        .removed
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        removed,
        vec![
            ("leases", 2),
            ("node_latency", 2),
            ("nodes_dynamic", 2),
            ("nodes_static", 2),
            ("subscription_nodes", 2)
        ]
    );
    let snap = p.weak.read();
    let keys = |v: Vec<((String, String), SubscriptionNode)>| {
        v.into_iter().map(|(k, _)| k.1).collect::<Vec<_>>()
    };
    assert_eq!(
        keys(snap.list(&t.subscription_nodes).unwrap()),
        vec!["gone_evicted", "kept", "only_evicted"]
    );
    let statics: Vec<String> = snap
        .list(&t.nodes_static)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(statics, vec!["kept"]);
    assert_eq!(snap.count(&t.nodes_dynamic).unwrap(), 1);
    assert_eq!(snap.count(&t.node_latency).unwrap(), 1);
    let leases = snap.list(&t.leases).unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].1.created_at_ns, 777);
    // Idempotent: a second repair removes nothing.
    assert_eq!(rules.repair(&p.weak, Some(&p.strong)).unwrap().total(), 0);
}

/// TestEngine_WeakPersist_CacheDataSurvivesRestart: weak data survives a clean restart with
/// its fields intact; a restart without the final flush loses only what was marked after the
/// last flush, never a strong commit.
#[test]
fn weak_data_survives_a_clean_restart_and_loses_only_unflushed_marks() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new();
    {
        let (p, t, _) = open(dir.path());
        p.strong
            .write(|tx| {
                tx.insert(
                    &t.config,
                    &1,
                    &SystemConfig {
                        config_json: "{}".into(),
                        updated_at_ns: 5,
                    },
                )
            })
            .unwrap();
        // A binding keeps the node alive through the repair.
        let live = SubscriptionNode {
            tags: vec![],
            evicted: false,
        };
        p.strong
            .write(|tx| {
                tx.insert(
                    &t.subscriptions,
                    &"sub".to_string(),
                    &Subscription {
                        name: "s".into(),
                        url: "u".into(),
                        enabled: true,
                        created_at_ns: 1,
                        updated_at_ns: 1,
                    },
                )
            })
            .unwrap();
        p.weak
            .write(|tx| tx.insert(&t.subscription_nodes, &("sub".into(), "n1".into()), &live))
            .unwrap();
        p.weak
            .write(|tx| tx.insert(&t.subscription_nodes, &("sub".into(), "n2".into()), &live))
            .unwrap();
        app.put("n1", 777);
        let policy = FlushPolicy::fixed(
            Duration::from_secs(3600),
            usize::MAX,
            Duration::from_secs(3600),
        );
        p.start_flush_worker(app.flusher(&p.weak, &t), policy)
            .unwrap();
        p.close().unwrap(); // final flush
    }
    {
        let (p, t, _) = open(dir.path());
        assert_eq!(
            p.weak
                .read()
                .get(&t.nodes_static, &"n1".to_string())
                .unwrap()
                .unwrap()
                .created_at_ns,
            777
        );
        // Marked but never flushed: lost by the "crash" (no close, no final flush).
        app.put("n2", 888);
        drop(p);
    }
    let (p, t, _) = open(dir.path());
    assert!(
        p.weak
            .read()
            .contains(&t.nodes_static, &"n1".to_string())
            .unwrap()
    );
    assert!(
        !p.weak
            .read()
            .contains(&t.nodes_static, &"n2".to_string())
            .unwrap()
    );
    assert_eq!(
        p.strong
            .read()
            .get(&t.config, &1)
            .unwrap()
            .unwrap()
            .updated_at_ns,
        5
    );
}
