//! Subscriptions: committed changes pushed once durable, filtered by table, from a store and
//! from a follower.

use std::sync::Arc;
use std::time::Duration;

use statelog::{
    Change, ChangeFilter, ChangeOp, Changes, Durability, Follower, FollowerOptions, Readable,
    Store, StoreOptions, Subscription, TableDef,
};

const WAIT: Duration = Duration::from_secs(10);

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

/// The changes of the next message, which must be `Since`.
fn next(sub: &Subscription) -> Vec<Change> {
    match sub.recv_timeout(WAIT).expect("a message") {
        Changes::Since(c) => {
            assert!(!c.is_empty());
            c
        }
        Changes::Reset => panic!("unexpected reset"),
    }
}

fn keys(changes: &[Change]) -> Vec<(String, Vec<u8>)> {
    changes
        .iter()
        .flat_map(|c| &c.ops)
        .map(|op| match op {
            ChangeOp::Put { table, key, .. } | ChangeOp::Delete { table, key } => {
                (table.clone(), key.clone())
            }
        })
        .collect()
}

#[test]
fn a_strong_commit_is_delivered_by_the_time_write_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.table(TableDef::<String, u64>::new("t")).unwrap();
    let sub = store.subscribe(ChangeFilter::all());
    assert_eq!(sub.start(), store.read().position());
    store
        .write(|tx| tx.insert(&t, &"a".to_string(), &1))
        .unwrap();
    let changes = match sub.try_recv().expect("delivered before write returned") {
        Changes::Since(c) => c,
        Changes::Reset => panic!(),
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].pos, store.read().position());
    let (k, v) = changes[0].ops[0].decode(&t).unwrap().unwrap();
    assert_eq!((k.as_str(), v), ("a", Some(1)));
    // A delete, and an empty transaction (nothing sent).
    store.write(|_| Ok(())).unwrap();
    store
        .write(|tx| tx.delete(&t, &"a".to_string()).map(|_| ()))
        .unwrap();
    let changes = next(&sub);
    assert!(matches!(changes[0].ops[0], ChangeOp::Delete { .. }));
    assert!(sub.try_recv().is_err());
}

#[test]
fn the_filter_keeps_only_the_tables_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let users = store.bytes_table("users").unwrap();
    let logs = store.bytes_table("logs").unwrap();
    let only_users = store.subscribe(ChangeFilter::tables(["users"]));
    let every = store.subscribe(ChangeFilter::all());
    store.write(|tx| tx.put_bytes(&logs, b"l1", b"x")).unwrap();
    store
        .write(|tx| {
            tx.put_bytes(&users, b"u1", b"ann")?;
            tx.put_bytes(&logs, b"l2", b"y")
        })
        .unwrap();
    // The transaction on logs alone is not sent to the users subscriber at all.
    let got = next(&only_users);
    assert_eq!(keys(&got), vec![("users".into(), b"u1".to_vec())]);
    assert!(only_users.try_recv().is_err());
    let mut all = next(&every);
    all.extend(next(&every));
    assert_eq!(all.len(), 2);
    assert_eq!(keys(&all).len(), 3);
    assert!(ChangeFilter::tables(["a", "b"]).admits("b"));
    assert!(!ChangeFilter::tables(["a"]).admits("b"));
    assert!(ChangeFilter::all().admits("anything"));
}

#[test]
fn buffered_commits_wait_for_durability() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.bytes_table("t").unwrap();
    let sub = store.subscribe(ChangeFilter::all());
    for k in [b"a", b"b"] {
        store
            .write_with(Durability::Buffered, |tx| tx.put_bytes(&t, k, b"v"))
            .unwrap();
    }
    // Visible to readers at once, but not durable: not sent.
    assert_eq!(store.read().raw_rows("t").unwrap().count(), 2);
    assert!(sub.try_recv().is_err());
    store.sync().unwrap();
    let got = next(&sub);
    assert_eq!(got.len(), 2, "both in one message");
    assert!(got[0].pos.seq < got[1].pos.seq);
    // A strong commit makes the buffered ones before it durable too.
    store
        .write_with(Durability::Buffered, |tx| tx.put_bytes(&t, b"c", b"v"))
        .unwrap();
    assert!(sub.try_recv().is_err());
    store.write(|tx| tx.put_bytes(&t, b"d", b"v")).unwrap();
    let got = next(&sub);
    assert_eq!(
        keys(&got),
        vec![("t".into(), b"c".to_vec()), ("t".into(), b"d".to_vec())]
    );
}

#[test]
fn commits_before_subscribing_are_not_sent_and_a_dropped_subscription_unsubscribes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.bytes_table("t").unwrap();
    let first = store.subscribe(ChangeFilter::all());
    store
        .write_with(Durability::Buffered, |tx| tx.put_bytes(&t, b"early", b"v"))
        .unwrap();
    let second = store.subscribe(ChangeFilter::all());
    store.write(|tx| tx.put_bytes(&t, b"late", b"v")).unwrap();
    assert_eq!(keys(&next(&first)).len(), 2);
    assert_eq!(keys(&next(&second)), vec![("t".into(), b"late".to_vec())]);
    drop(first);
    store.write(|tx| tx.put_bytes(&t, b"more", b"v")).unwrap();
    assert_eq!(keys(&next(&second)), vec![("t".into(), b"more".to_vec())]);
    // The store gone, the subscription ends.
    drop(store);
    assert!(second.recv().is_err());
}

#[test]
fn concurrent_writers_are_delivered_once_each_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let t = store.bytes_table("t").unwrap();
    let sub = store.subscribe(ChangeFilter::all());
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let (store, t) = (store.clone(), t.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let d = if i % 3 == 0 {
                        Durability::Buffered
                    } else {
                        Durability::Strong
                    };
                    store
                        .write_with(d, |tx| {
                            tx.put_bytes(&t, format!("{n}-{i}").as_bytes(), b"v")
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    store.close().unwrap();
    let mut seqs = Vec::new();
    while let Ok(Changes::Since(c)) = sub.try_recv() {
        seqs.extend(c.iter().map(|c| c.pos.seq));
    }
    assert_eq!(seqs.len(), 200);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in commit order");
}

#[test]
fn a_checkpoint_restore_sends_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"a", b"1")).unwrap();
    store.checkpoints().save("before").unwrap();
    let sub = store.subscribe(ChangeFilter::all());
    store.write(|tx| tx.put_bytes(&t, b"b", b"2")).unwrap();
    next(&sub);
    store.checkpoints().restore("before").unwrap();
    assert_eq!(sub.recv_timeout(WAIT).unwrap(), Changes::Reset);
    store.write(|tx| tx.put_bytes(&t, b"c", b"3")).unwrap();
    assert_eq!(keys(&next(&sub)), vec![("t".into(), b"c".to_vec())]);
}

#[test]
fn a_follower_pushes_what_it_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let users = store.bytes_table("users").unwrap();
    let logs = store.bytes_table("logs").unwrap();
    let follower = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let sub = follower.subscribe(ChangeFilter::tables(["users"]));
    // By poll.
    store.write(|tx| tx.put_bytes(&users, b"u1", b"a")).unwrap();
    store.write(|tx| tx.put_bytes(&logs, b"l1", b"x")).unwrap();
    let report = follower.poll().unwrap();
    assert_eq!(report.applied, 2);
    let got = next(&sub);
    assert_eq!(keys(&got), vec![("users".into(), b"u1".to_vec())]);
    assert!(sub.try_recv().is_err());
    // By a watcher: the subscriber blocks on the channel, no sleep loop.
    let watcher = follower.watch(Duration::from_millis(2));
    let from_watcher = watcher.subscribe(ChangeFilter::all());
    for i in 0..20u32 {
        store
            .write(|tx| tx.put_bytes(&users, format!("w{i}").as_bytes(), b"v"))
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        seen.extend(next(&from_watcher));
    }
    assert!(seen.windows(2).all(|w| w[0].pos.seq < w[1].pos.seq));
    // The follower's snapshot holds what was sent.
    let last = seen.last().unwrap().pos;
    assert!(watcher.follower().read().position() >= last);
    assert!(watcher.last_error().is_none());
    drop(watcher);
    drop(follower);
    // Every follower handle gone: the subscription ends once its messages are read.
    while let Ok(Changes::Since(_)) = sub.try_recv() {}
    assert!(sub.recv().is_err());
}

#[test]
fn a_follower_reload_sends_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().keep_epochs(1)).unwrap();
    let t = store.bytes_table("t").unwrap();
    let follower = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let sub = follower.subscribe(ChangeFilter::all());
    // The follower falls behind what retention keeps: it reloads from the snapshot.
    for i in 0..3u32 {
        store
            .write(|tx| tx.put_bytes(&t, format!("k{i}").as_bytes(), b"v"))
            .unwrap();
        store.compact().unwrap();
    }
    store.write(|tx| tx.put_bytes(&t, b"after", b"v")).unwrap();
    let report = follower.poll().unwrap();
    assert!(report.reloaded, "{report:?}");
    assert_eq!(sub.recv_timeout(WAIT).unwrap(), Changes::Reset);
    // The change after the reloaded snapshot comes, and the state holds it.
    let mut last = Vec::new();
    while let Ok(Changes::Since(c)) = sub.try_recv() {
        last = c;
    }
    assert_eq!(
        keys(&last).last().unwrap(),
        &("t".to_string(), b"after".to_vec())
    );
    assert_eq!(follower.read().raw_rows("t").unwrap().count(), 4);
}
