//! Hot backup: copies taken while 8 threads commit are whole stores that open, and each holds
//! the state at one commit (every thread's rows are a prefix matching its counter, and the
//! number of rows matches the counters).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use statelog::epoch::{CompactionPolicy, Options, Retention};
use statelog::{Error, Readable, Store, StoreOptions, Table, TableDef};

fn tables(store: &Store) -> (Table<(u8, u32), u64>, Table<u8, u32>) {
    (
        store.table(TableDef::new("rows")).unwrap(),
        store.table(TableDef::new("counters")).unwrap(),
    )
}

#[test]
fn backups_during_eight_thread_writes_restore_one_commit() {
    backups_during_writes(StoreOptions::default(), 1);
}

/// The same while the writers' compactions rotate segments and retention deletes them under
/// the copy.
#[test]
fn backups_during_compaction_and_retention_restore_one_commit() {
    backups_during_writes(
        StoreOptions {
            log: Options {
                segment_bytes: 32 << 10,
                retention: Retention {
                    keep_epochs: 1,
                    keep_for: None,
                },
                compaction: CompactionPolicy {
                    update_ratio: 1.0,
                    min_update_bytes: 16 << 10,
                },
                ..Options::default()
            },
            ..StoreOptions::default()
        },
        1_500,
    );
}

/// The copy keeps the retained epochs and the checkpoints naming them.
#[test]
fn a_backup_keeps_epochs_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live"), StoreOptions::default()).unwrap();
    let (rows, counters) = tables(&store);
    store.write(|tx| tx.insert(&counters, &0, &1)).unwrap();
    store.checkpoints().save("one").unwrap();
    store.write(|tx| tx.insert(&counters, &0, &2)).unwrap();
    store.write(|tx| tx.insert(&rows, &(0, 0), &7)).unwrap();
    let dest = dir.path().join("copy");
    store.backup_to(&dest).unwrap();
    let copy = Store::open(&dest, StoreOptions::default()).unwrap();
    let ids = |s: &Store| -> Vec<u64> { s.log().epochs().unwrap().iter().map(|e| e.id).collect() };
    assert_eq!(ids(&copy), ids(&store));
    assert_eq!(
        copy.checkpoints().list().unwrap(),
        store.checkpoints().list().unwrap()
    );
    let (_, copied) = tables(&copy);
    assert_eq!(copy.read().get(&copied, &0).unwrap().unwrap(), 2);
    let at_one = copy.checkpoints().read("one").unwrap();
    assert_eq!(
        at_one
            .get(&at_one.table_named::<u8, u32>("counters").unwrap(), &0)
            .unwrap()
            .unwrap(),
        1
    );
}

/// Six backups, each after at least `gap` more commits; with a gap, the writers' compactions
/// must have started several epochs meanwhile.
fn backups_during_writes(options: StoreOptions, gap: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live"), options).unwrap();
    let (rows, counters) = tables(&store);
    // Writers go on until the six backups are made; each backup waits for commits after the
    // previous one, so every backup is taken during writes and each holds more rows.
    let committed = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let backups = std::thread::scope(|s| {
        for t in 0..8u8 {
            let (store, rows, counters) = (&store, &rows, &counters);
            let (committed, done) = (&committed, &done);
            s.spawn(move || {
                let mut i = 0u32;
                while !done.load(Ordering::SeqCst) {
                    store
                        .write(|tx| {
                            tx.insert(rows, &(t, i), &(u64::from(t) << 32 | u64::from(i)))?;
                            tx.insert(counters, &t, &(i + 1))
                        })
                        .unwrap();
                    committed.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            });
        }
        let mut made = Vec::new();
        let mut seen = 0;
        for n in 0..6 {
            while committed.load(Ordering::SeqCst) < seen + gap {
                std::thread::yield_now();
            }
            seen = committed.load(Ordering::SeqCst);
            let dest = dir.path().join(format!("backup{n}"));
            let report = store.backup_to(&dest).unwrap();
            made.push((dest, report));
        }
        done.store(true, Ordering::SeqCst);
        made
    });
    let mut last_total = 0u64;
    for (dest, report) in backups {
        let copy = Store::open(&dest, StoreOptions::default()).unwrap();
        let (rows, counters) = tables(&copy);
        let snap = copy.read();
        assert_eq!(snap.seq(), report.seq, "{}", dest.display());
        let mut total = 0u64;
        for t in 0..8u8 {
            let n = snap.get(&counters, &t).unwrap().unwrap_or(0);
            total += u64::from(n);
            let have: Vec<u32> = snap
                .range(&rows, (t, 0)..(t, u32::MAX))
                .unwrap()
                .map(|r| r.unwrap().0.1)
                .collect();
            assert_eq!(
                have,
                (0..n).collect::<Vec<_>>(),
                "thread {t} in {}",
                dest.display()
            );
            for i in 0..n {
                assert_eq!(
                    snap.get(&rows, &(t, i)).unwrap(),
                    Some(u64::from(t) << 32 | u64::from(i))
                );
            }
        }
        assert_eq!(snap.count(&rows).unwrap() as u64, total);
        assert!(
            total > last_total,
            "each backup holds the commits before it"
        );
        last_total = total;
    }
    if gap > 1 {
        assert!(
            store.log().current_epoch() > 5,
            "compactions ran during the backups"
        );
    }
    // The live store holds every commit.
    let snap = store.read();
    assert_eq!(
        snap.count(&rows).unwrap() as u64,
        committed.load(Ordering::SeqCst)
    );
}

#[test]
fn backup_refuses_a_non_empty_destination() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live"), StoreOptions::default()).unwrap();
    let dest = dir.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("something"), b"x").unwrap();
    assert!(matches!(
        store.backup_to(&dest),
        Err(Error::InvalidArgument(_))
    ));
    // An empty existing directory is fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    store.backup_to(&empty).unwrap();
    Store::open(&empty, StoreOptions::default()).unwrap();
}
