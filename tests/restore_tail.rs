//! Restore of a large snapshot with an update tail (issue 20): the snapshot is decoded on
//! another thread while the updates are read, row changes collected meanwhile and the state
//! attached when decoded or when an update needs it (a table created in the tail). What is
//! restored is what was committed; damage in the tail is reported in the tail's file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use statelog::{Error, Readable, Store, StoreOptions};

mod common;
use common::noise;

fn opts() -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    }
}

/// The newest segment file of `dir`.
fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

type Model = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// A store whose snapshot holds 3,000 rows of 1 KiB (3 MiB that do not compress: decoded
/// beside the tail), then a tail of updates, deletes, a table created midway and rows put in
/// it, and more updates of the first table. Returns what the store holds, and the length
/// of the newest segment when the tail started.
fn build(dir: &Path) -> (Model, u64) {
    let mut model = Model::new();
    let store = Store::open(dir, opts()).unwrap();
    let a = store.bytes_table("a").unwrap();
    for batch in 0..30u64 {
        store
            .write(|tx| {
                for i in batch * 100..(batch + 1) * 100 {
                    let (k, v) = (format!("{i:08}").into_bytes(), noise(1024, i));
                    tx.put_bytes(&a, &k, &v)?;
                    model.insert(("a".into(), k), v);
                }
                Ok(())
            })
            .unwrap();
    }
    store.compact().unwrap();
    let tail_from = std::fs::metadata(newest_segment(dir)).unwrap().len();
    let put = |model: &mut Model, store: &Store, table: &str, i: u64, seed: u64| {
        let t = store.bytes_table(table).unwrap();
        let (k, v) = (format!("{i:08}").into_bytes(), noise(100, seed));
        store.write(|tx| tx.put_bytes(&t, &k, &v)).unwrap();
        model.insert((table.into(), k), v);
    };
    for n in 0..400u64 {
        put(&mut model, &store, "a", (n * 7) % 3_000, 10_000 + n);
    }
    for i in (0..3_000u64).step_by(97) {
        let k = format!("{i:08}").into_bytes();
        store.write(|tx| tx.delete_bytes(&a, &k)).unwrap();
        model.remove(&("a".to_string(), k));
    }
    // A table created in the tail: its creation needs the snapshot's state.
    for n in 0..50u64 {
        put(&mut model, &store, "b", n, 20_000 + n);
    }
    for n in 0..400u64 {
        put(&mut model, &store, "a", 3_000 + n, 30_000 + n);
        put(&mut model, &store, "a", (n * 13) % 3_000, 40_000 + n);
    }
    store.close().unwrap();
    (model, tail_from)
}

fn contents(store: &Store) -> Model {
    let mut out = Model::new();
    for name in ["a", "b"] {
        let t = store.bytes_table(name).unwrap();
        for (k, v) in store.read().range_bytes(&t, ..).unwrap() {
            out.insert((name.into(), k), v);
        }
    }
    out
}

#[test]
fn a_large_snapshot_and_its_tail_restore_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = build(dir.path());
    let store = Store::open(dir.path(), opts()).unwrap();
    assert!(store.read().position().epoch > 0, "no snapshot was taken");
    assert_eq!(contents(&store), model);
    // Once more, after a compaction of the restored state.
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(contents(&store), model);
}

#[test]
fn damage_in_the_tail_is_reported_in_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tail_from) = build(dir.path());
    let seg = newest_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len() as u64;
    assert!(
        len > tail_from + 64 * 1024,
        "the tail is in the snapshot's segment"
    );
    // A byte in the middle of the tail: a record there fails its checksum, with records
    // after it (damage, not a torn tail).
    let at = (tail_from + (len - tail_from) / 2) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    match Store::open(dir.path(), opts()) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, seg);
            assert!(
                offset >= tail_from,
                "offset {offset} is before the tail {tail_from}"
            );
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("the damaged tail was restored"),
    }
}
