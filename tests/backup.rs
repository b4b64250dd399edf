//! Hot backup: copies taken while 8 threads commit are whole stores that open, and each holds
//! the state at one commit (every thread's rows are a prefix matching its counter, and the
//! number of rows matches the counters).

use statelog::{Error, Readable, Store, StoreOptions, Table, TableDef};

fn tables(store: &Store) -> (Table<(u8, u32), u64>, Table<u8, u32>) {
    (
        store.table(TableDef::new("rows")).unwrap(),
        store.table(TableDef::new("counters")).unwrap(),
    )
}

#[test]
fn backups_during_eight_thread_writes_restore_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live"), StoreOptions::default()).unwrap();
    let (rows, counters) = tables(&store);
    let per_thread = 300u32;
    let backups = std::thread::scope(|s| {
        for t in 0..8u8 {
            let (store, rows, counters) = (&store, &rows, &counters);
            s.spawn(move || {
                for i in 0..per_thread {
                    store
                        .write(|tx| {
                            tx.insert(rows, &(t, i), &(u64::from(t) << 32 | u64::from(i)))?;
                            tx.insert(counters, &t, &(i + 1))
                        })
                        .unwrap();
                }
            });
        }
        let mut made = Vec::new();
        for n in 0..6 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let dest = dir.path().join(format!("backup{n}"));
            let report = store.backup_to(&dest).unwrap();
            made.push((dest, report));
        }
        made
    });
    let mut distinct = std::collections::BTreeSet::new();
    for (dest, report) in backups {
        let copy = Store::open(&dest, StoreOptions::default()).unwrap();
        let (rows, counters) = tables(&copy);
        let snap = copy.read();
        assert_eq!(snap.seq(), report.seq, "{}", dest.display());
        let mut total = 0u64;
        for t in 0..8u8 {
            let n = snap.get(&counters, &t).unwrap_or(0);
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
                    u64::from(t) << 32 | u64::from(i)
                );
            }
        }
        assert_eq!(snap.count(&rows).unwrap() as u64, total);
        distinct.insert(total);
    }
    assert!(
        distinct.len() > 1,
        "the backups should catch writes in progress"
    );
    // The live store goes on and is complete.
    let snap = store.read();
    assert_eq!(snap.count(&rows).unwrap(), 8 * per_thread as usize);
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
