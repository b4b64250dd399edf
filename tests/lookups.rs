//! Lookups (issue 21, item 3): `get` returns an `Option` and takes a borrowed key; ranges run
//! from both ends; floor and ceiling seeks; typed unique-index handles. Checked against a
//! model across every layout the rows take (fresh writes, deletes, compaction, reopening).

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;

use common::Rng;
use statelog::{Readable, Store, StoreOptions, Table, TableDef};

fn options() -> StoreOptions {
    StoreOptions::default().auto_compact(false)
}

#[test]
fn get_returns_none_for_a_missing_row_and_takes_a_borrowed_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t: Table<String, u32> = store.table(TableDef::new("t")).unwrap();
    let v: Table<Vec<u8>, u32> = store.table(TableDef::new("v")).unwrap();
    store
        .write(|tx| {
            tx.insert(&t, &"a".to_string(), &1)?;
            tx.insert(&v, &vec![1, 2], &2)
        })
        .unwrap();
    let snap = store.read();
    // `&str` for `String` keys, `&[u8]` for `Vec<u8>` keys: the same encoded key.
    assert_eq!(snap.get(&t, "a").unwrap(), Some(1));
    assert_eq!(snap.get(&t, &"a".to_string()).unwrap(), Some(1));
    assert_eq!(snap.get(&t, "b").unwrap(), None);
    assert_eq!(snap.get(&v, &[1u8, 2][..]).unwrap(), Some(2));
    assert_eq!(snap.get_versioned(&t, "a").unwrap(), Some((1, 1)));
    assert_eq!(snap.get_versioned(&t, "b").unwrap(), None);
    assert!(snap.contains(&t, "a").unwrap());
    assert_eq!(snap.version(&t, "b").unwrap(), 0);
    // Inside a transaction, its own writes included.
    store
        .write(|tx| {
            tx.insert(&t, &"b".to_string(), &2)?;
            assert_eq!(tx.get(&t, "b")?, Some(2));
            assert_eq!(tx.delete(&t, "a")?, 1);
            assert_eq!(tx.get(&t, "a")?, None);
            Ok(())
        })
        .unwrap();
    let b = store.bytes_table("b").unwrap();
    assert_eq!(store.read().get_bytes(&b, b"k").unwrap(), None);
}

/// The rows of `t` read in every way (forward, backward, both ends at once, floor and
/// ceiling of every probe) agree with `model`.
fn reads_as(store: &Store, t: &Table<u32, u32>, model: &BTreeMap<u32, u32>, rng: &mut Rng) {
    let snap = store.read();
    let want: Vec<(u32, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let fwd: Vec<(u32, u32)> = snap.range(t, ..).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(fwd, want);
    let mut back: Vec<(u32, u32)> = snap
        .range(t, ..)
        .unwrap()
        .rev()
        .map(|r| r.unwrap())
        .collect();
    back.reverse();
    assert_eq!(back, want);
    for _ in 0..20 {
        let lo = rng.below(1_100) as u32;
        let hi = lo + rng.below(300) as u32;
        let bounds = (Bound::Excluded(lo), Bound::Included(hi));
        let want: Vec<(u32, u32)> = model.range(bounds).map(|(k, v)| (*k, *v)).collect();
        // Alternate ends at random; the two meet without overlap.
        let mut it = snap.range(t, bounds).unwrap();
        let (mut front, mut rear) = (Vec::new(), Vec::new());
        loop {
            let r = if rng.below(2) == 0 {
                it.next().map(|r| front.push(r.unwrap()))
            } else {
                it.next_back().map(|r| rear.push(r.unwrap()))
            };
            if r.is_none() {
                break;
            }
        }
        assert!(it.next().is_none() && it.next_back().is_none());
        rear.reverse();
        front.extend(rear);
        assert_eq!(front, want, "({lo}, {hi}]");
    }
    for probe in (0..1_100).step_by(7) {
        let floor = model.range(..=probe).next_back().map(|(k, v)| (*k, *v));
        let ceiling = model.range(probe..).next().map(|(k, v)| (*k, *v));
        assert_eq!(snap.floor(t, &probe).unwrap(), floor, "floor {probe}");
        assert_eq!(snap.ceiling(t, &probe).unwrap(), ceiling, "ceiling {probe}");
    }
}

#[test]
fn ranges_run_from_both_ends_and_seeks_find_floor_and_ceiling_in_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), options()).unwrap();
    let mut t: Table<u32, u32> = store.table(TableDef::new("t")).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng(21);
    reads_as(&store, &t, &model, &mut rng);
    for round in 0..12u32 {
        // A batch appended in key order, then scattered puts and deletes (the delta).
        let start = round * 80;
        store
            .write(|tx| {
                for k in start..start + 60 {
                    tx.insert(&t, &k, &round)?;
                    model.insert(k, round);
                }
                Ok(())
            })
            .unwrap();
        for _ in 0..40 {
            let k = rng.below(1_000) as u32;
            if rng.below(3) == 0 {
                let gone = store.write(|tx| tx.delete(&t, &k).map(Some)).ok().flatten();
                assert_eq!(gone, model.remove(&k));
            } else {
                store.write(|tx| tx.insert(&t, &k, &(k + 7))).unwrap();
                model.insert(k, k + 7);
            }
        }
        reads_as(&store, &t, &model, &mut rng);
        match round % 4 {
            1 => store.compact().unwrap(),
            3 => {
                drop(t);
                store.close().unwrap();
                drop(store);
                store = Store::open(dir.path(), options()).unwrap();
                t = store.table(TableDef::new("t")).unwrap();
            }
            _ => {}
        }
        reads_as(&store, &t, &model, &mut rng);
    }
    // Bytes tables run backwards too.
    let b = store.bytes_table("b").unwrap();
    store
        .write(|tx| {
            tx.put_bytes(&b, b"a", b"1")?;
            tx.put_bytes(&b, b"b", b"2")
        })
        .unwrap();
    let snap = store.read();
    let keys: Vec<Vec<u8>> = snap
        .range_bytes(&b, ..)
        .unwrap()
        .rev()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"a".to_vec()]);
}

#[test]
fn typed_index_handles_look_up_by_a_borrowed_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let mut def = TableDef::<u64, String>::new("routes");
    let by_path = def.unique_index("path", |p: &String| p.clone());
    assert_eq!((by_path.name(), by_path.table_name()), ("path", "routes"));
    let routes = store.table(def).unwrap();
    store
        .write(|tx| {
            tx.insert(&routes, &1, &"/a".to_string())?;
            tx.insert(&routes, &2, &"/b".to_string())
        })
        .unwrap();
    let snap = store.read();
    assert_eq!(
        snap.get_by(&by_path, "/b").unwrap(),
        Some((2, "/b".to_string()))
    );
    assert_eq!(snap.get_by(&by_path, "/c").unwrap(), None);
    // Inside a transaction the handle sees the transaction's writes.
    store
        .write(|tx| {
            tx.insert(&routes, &2, &"/c".to_string())?;
            assert_eq!(tx.get_by(&by_path, "/b")?, None);
            assert_eq!(tx.get_by(&by_path, "/c")?.map(|(id, _)| id), Some(2));
            Ok(())
        })
        .unwrap();
}
