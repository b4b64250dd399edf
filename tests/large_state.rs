//! States larger than one snapshot image (issue 19 defect 1, issue 20 "images of any size"):
//! compaction streams the image into a state in parts (FORMAT.md §11.2, §12.2 format 4), the
//! store reopens from it, and verify finds nothing wrong.

use std::sync::Arc;

use statelog::backend::FsBackend;
use statelog::{Readable, Store, StoreOptions};

/// `len` bytes of which the first half does not compress and the second is zeros (about 2:1
/// under LZ4), different for each `seed`.
fn value(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.resize(len, 0);
    out
}

/// The review's reproduction, as a regression test: 1,152 values of 1 MiB that compress 2:1
/// (a body over the 1 GiB a single image may hold), then `compact()`. It used to write an
/// image the next open refused ("malformed entry payload"); now the state is streamed into
/// parts and reopens whole.
#[test]
fn a_state_over_one_gib_compacts_and_reopens() {
    const ROWS: u64 = 1_152;
    const LEN: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    };
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let t = store.bytes_table("blobs").unwrap();
        for batch in 0..ROWS / 64 {
            store
                .write(|tx| {
                    for i in batch * 64..(batch + 1) * 64 {
                        tx.put_bytes(&t, &i.to_le_bytes(), &value(LEN, i))?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        store.compact().unwrap();
        store
            .write(|tx| tx.put_bytes(&t, b"after", b"the compaction"))
            .unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), opts).unwrap();
    assert!(
        store.read().position().epoch > 0,
        "the compaction made no epoch"
    );
    let t = store.bytes_table("blobs").unwrap();
    let snap = store.read();
    assert_eq!(snap.count(&t).unwrap(), ROWS as usize + 1);
    for i in [0, 1, 511, 1_000, ROWS - 1] {
        assert!(
            snap.get_bytes(&t, &i.to_le_bytes()).unwrap().unwrap() == value(LEN, i),
            "row {i}"
        );
    }
    assert_eq!(
        snap.get_bytes(&t, b"after").unwrap().unwrap(),
        b"the compaction"
    );
    drop(snap);
    store.close().unwrap();
    drop(store);
    let report =
        statelog::tools::verify(Arc::new(FsBackend::new()), dir.path(), &mut |_, _| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

/// A state of several parts with a unique index, compacted while another thread commits:
/// the reopened store has every row, its index, and the commits made beside the compaction.
#[test]
fn a_state_in_parts_compacts_beside_commits_and_keeps_its_index() {
    use serde::{Deserialize, Serialize};
    use statelog::TableDef;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        name: String,
        blob: Vec<u8>,
    }
    let def = || {
        let mut def = TableDef::<u64, Item>::new("items");
        let by_name = def.unique_index("name", |i: &Item| i.name.clone());
        (def, by_name)
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    };
    let item = |i: u64| Item {
        name: format!("item-{:08x}", i.wrapping_mul(0x9E37_79B9) & 0xffff_ffff),
        blob: value(8 << 10, i),
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let items = store.table(def().0).unwrap();
    // About 8 KiB a row: 6,000 rows make an image of several 16 MiB parts.
    for batch in 0..60u64 {
        store
            .write(|tx| {
                for i in batch * 100..(batch + 1) * 100 {
                    tx.insert(&items, &i, &item(i))?;
                }
                Ok(())
            })
            .unwrap();
    }
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 6_000..6_200u64 {
                store.write(|tx| tx.insert(&items, &i, &item(i))).unwrap();
            }
        });
        store.compact().unwrap();
        writer.join().unwrap();
    });
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    let (def, by_name) = def();
    let items = store.table(def).unwrap();
    let snap = store.read();
    assert_eq!(snap.count(&items).unwrap(), 6_200);
    for i in [0u64, 2_999, 5_999, 6_000, 6_199] {
        assert_eq!(snap.get(&items, &i).unwrap().unwrap(), item(i), "row {i}");
        let (key, _) = snap.get_by(&by_name, &item(i).name).unwrap().unwrap();
        assert_eq!(key, i, "index of row {i}");
    }
}
