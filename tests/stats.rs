//! `Store::stats`: the counters move as the store works.

use std::sync::Arc;

use statelog::{Durability, Store, StoreOptions};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default().auto_compact(false)).unwrap()
}

#[test]
fn commits_fsyncs_bytes_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fresh = store.stats();
    assert_eq!(fresh.commits, 0);
    assert_eq!(fresh.bytes_appended, 0);
    assert_eq!(fresh.compactions, 0);
    assert_eq!(fresh.last_compaction, None);
    assert!(!fresh.compaction_running);
    assert!(fresh.tables.is_empty());

    let t = store.bytes_table("t").unwrap();
    for i in 0..10u32 {
        store
            .write(|tx| tx.put_bytes(&t, format!("k{i}").as_bytes(), &[1u8; 100]))
            .unwrap();
    }
    let s = store.stats();
    // The table's creation and the ten writes.
    assert_eq!(s.commits, 11);
    assert!(s.fsyncs >= 1 && s.fsyncs <= s.commits, "{s:?}");
    assert!(s.commits_per_fsync >= 1.0, "{s:?}");
    assert!(s.bytes_appended >= 10 * 100, "{s:?}");
    assert!(s.update_bytes >= s.bytes_appended, "{s:?}");
    assert!(s.durable > fresh.durable, "{s:?}");
    assert_eq!(s.published.seq, fresh.published.seq + 11);
    assert_eq!(s.tables.len(), 1);
    assert_eq!(s.tables[0].name, "t");
    assert_eq!(s.tables[0].rows, 10);
    assert!(s.tables[0].memory_bytes >= 10 * 100, "{s:?}");

    // An empty transaction logs nothing.
    store.write(|_| Ok(())).unwrap();
    assert_eq!(store.stats().commits, 11);
}

#[test]
fn buffered_commits_share_an_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.bytes_table("t").unwrap();
    let before = store.stats();
    for i in 0..100u32 {
        store
            .write_with(Durability::Buffered, |tx| {
                tx.put_bytes(&t, format!("k{i}").as_bytes(), b"v")
            })
            .unwrap();
    }
    store.sync().unwrap();
    let after = store.stats();
    assert_eq!(after.commits - before.commits, 100);
    assert!(after.fsyncs - before.fsyncs <= 1, "{after:?}");
}

#[test]
fn concurrent_strong_commits_never_take_more_fsyncs_than_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let t = store.bytes_table("t").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let (store, t) = (store.clone(), t.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    store
                        .write(|tx| tx.put_bytes(&t, format!("{n}-{i}").as_bytes(), b"v"))
                        .unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let s = store.stats();
    assert_eq!(s.commits, 201);
    assert!(s.fsyncs <= s.commits, "{s:?}");
    assert_eq!(s.tables[0].rows, 200);
}

#[test]
fn compactions_are_counted_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.bytes_table("t").unwrap();
    for i in 0..100u32 {
        store
            .write(|tx| tx.put_bytes(&t, format!("k{i}").as_bytes(), &[2u8; 64]))
            .unwrap();
    }
    let before = store.stats();
    store.compact().unwrap();
    let after = store.stats();
    assert_eq!(after.compactions, before.compactions + 1);
    assert_eq!(after.compaction_failures, 0);
    assert!(after.last_compaction.is_some());
    assert!(after.compaction_time >= after.last_compaction.unwrap());
    assert!(after.epoch > before.epoch);
    assert!(after.update_bytes < before.update_bytes, "{after:?}");
    assert_eq!(after.tables[0].rows, 100);
    assert!(!after.compaction_running);
    assert_eq!(after.compaction_stalls, 0);
    store.compact().unwrap();
    assert_eq!(store.stats().compactions, before.compactions + 2);
}
