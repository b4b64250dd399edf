//! Unique indexes stored in snapshots: used on reopen without decoding every row, checked on a
//! sample, brought up to date with the transactions after the snapshot, and rebuilt when the
//! program's index function no longer matches them.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Rng;
use serde::{Deserialize, Serialize};
use statelog::{Error, Index, Readable, Store, StoreOptions, Table, TableDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    n: u32,
}

/// Calls of the index function, one counter per test (tests run in parallel).
static USED: AtomicUsize = AtomicUsize::new(0);
static CHANGED: AtomicUsize = AtomicUsize::new(0);
static RANDOM: AtomicUsize = AtomicUsize::new(0);
static MIGRATED: AtomicUsize = AtomicUsize::new(0);
static FOLDED: AtomicUsize = AtomicUsize::new(0);

static UNCOUNTED: AtomicUsize = AtomicUsize::new(0);

fn def(upper: bool, calls: &'static AtomicUsize) -> TableDef<u32, User> {
    def_by_name(upper, calls).0
}

/// The users table, and its unique index on the name (upper-cased with `upper`).
fn def_by_name(
    upper: bool,
    calls: &'static AtomicUsize,
) -> (TableDef<u32, User>, Index<u32, User, String>) {
    let mut def = TableDef::new("users");
    let by_name = def.unique_index("name", move |u: &User| {
        calls.fetch_add(1, Ordering::SeqCst);
        if upper {
            u.name.to_uppercase()
        } else {
            u.name.clone()
        }
    });
    (def, by_name)
}

/// The handle of the users' index on the name (for lookups: the same index however its
/// function was defined).
fn by_name() -> Index<u32, User, String> {
    def_by_name(false, &UNCOUNTED).1
}

fn options() -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    }
}

fn user(name: &str, n: u32) -> User {
    User {
        name: name.into(),
        n,
    }
}

fn check(store: &Store, t: &Table<u32, User>, model: &BTreeMap<u32, User>, upper: bool) {
    let snap = store.read();
    assert_eq!(snap.count(t).unwrap(), model.len());
    for (id, u) in model {
        let key = if upper {
            u.name.to_uppercase()
        } else {
            u.name.clone()
        };
        assert_eq!(
            snap.get_by(&by_name(), &key).unwrap(),
            Some((*id, u.clone()))
        );
    }
}

#[test]
fn stored_indexes_are_used_and_kept_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let t = store.table(def(false, &USED)).unwrap();
        store
            .write(|tx| {
                for i in 0..2_000u32 {
                    let u = user(&format!("user{i}"), i);
                    tx.insert(&t, &i, &u)?;
                    model.insert(i, u);
                }
                Ok(())
            })
            .unwrap();
        store.compact().unwrap();
        // After the snapshot: a renamed row, a deleted one whose name is then reused, a new one.
        store
            .write(|tx| tx.insert(&t, &5, &user("renamed", 5)))
            .unwrap();
        store.write(|tx| tx.delete(&t, &7).map(|_| ())).unwrap();
        store
            .write(|tx| tx.insert(&t, &9_000, &user("user7", 1)))
            .unwrap();
        store
            .write(|tx| tx.insert(&t, &9_001, &user("user5", 2)))
            .unwrap();
        model.insert(5, user("renamed", 5));
        model.remove(&7);
        model.insert(9_000, user("user7", 1));
        model.insert(9_001, user("user5", 2));
    }
    let store = Store::open(dir.path(), options()).unwrap();
    USED.store(0, Ordering::SeqCst);
    let t = store.table(def(false, &USED)).unwrap();
    let calls = USED.load(Ordering::SeqCst);
    assert!(
        calls < 100,
        "the index was rebuilt ({calls} calls of its function)"
    );
    check(&store, &t, &model, false);
    // Uniqueness is still enforced through the stored index.
    let err = store
        .write(|tx| tx.insert(&t, &10_000, &user("user1", 0)))
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    let err = store
        .write(|tx| tx.insert(&t, &10_000, &user("renamed", 0)))
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    store
        .write(|tx| tx.insert(&t, &10_000, &user("user5-free", 0)))
        .unwrap();
}

/// A long update tail (more changed rows than an eighth of the table, so that the restore
/// folds them into a new base): renamed rows, deleted rows whose names other rows then take,
/// rows written with their name unchanged and new rows. The stored index is still claimed (its
/// function called for the changed rows, not for every row) and brought up to date.
#[test]
fn a_long_tail_folded_on_restore_keeps_the_stored_index() {
    const ROWS: u32 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    let mut gone = Vec::new();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let t = store.table(def(false, &FOLDED)).unwrap();
        store
            .write(|tx| {
                for i in 0..ROWS {
                    let u = user(&format!("user{i}"), i);
                    tx.insert(&t, &i, &u)?;
                    model.insert(i, u);
                }
                Ok(())
            })
            .unwrap();
        store.compact().unwrap();
        for batch in 0..10u32 {
            store
                .write(|tx| {
                    for i in batch * 1_000..(batch + 1) * 1_000 {
                        let k = i * 4;
                        match i % 4 {
                            0 => {
                                tx.insert(&t, &k, &user(&format!("renamed{k}"), k))?;
                            }
                            1 => {
                                tx.delete(&t, &k)?;
                            }
                            2 => {
                                tx.insert(&t, &k, &user(&format!("user{k}"), k + 1))?;
                            }
                            // A new row, with the name of the row deleted just before.
                            _ => {
                                let name = format!("user{}", k - 8);
                                tx.insert(&t, &(ROWS + i), &user(&name, i))?;
                            }
                        }
                    }
                    Ok(())
                })
                .unwrap();
            for i in batch * 1_000..(batch + 1) * 1_000 {
                let k = i * 4;
                match i % 4 {
                    0 => {
                        model.insert(k, user(&format!("renamed{k}"), k));
                        gone.push(format!("user{k}"));
                    }
                    1 => {
                        model.remove(&k);
                    }
                    2 => {
                        model.insert(k, user(&format!("user{k}"), k + 1));
                    }
                    _ => {
                        model.insert(ROWS + i, user(&format!("user{}", k - 8), i));
                    }
                }
            }
        }
    }
    let store = Store::open(dir.path(), options()).unwrap();
    FOLDED.store(0, Ordering::SeqCst);
    let t = store.table(def(false, &FOLDED)).unwrap();
    let calls = FOLDED.load(Ordering::SeqCst);
    // A claim derives the keys of the 10,000 changed rows, before and now (15,000 values);
    // a build, of all 40,000.
    assert!(
        calls < 20_000,
        "the index was rebuilt ({calls} calls of its function)"
    );
    check(&store, &t, &model, false);
    let snap = store.read();
    for name in &gone {
        assert_eq!(snap.get_by(&by_name(), name).unwrap(), None);
    }
    // Uniqueness is still enforced, on names old and new.
    for name in ["user1", "renamed0", "user8"] {
        let err = store
            .write(|tx| tx.insert(&t, &(2 * ROWS), &user(name, 0)))
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{name}: {err:?}");
    }
    store
        .write(|tx| tx.insert(&t, &(2 * ROWS), &user("user0", 0)))
        .unwrap();
}

#[test]
fn a_changed_index_function_is_caught_and_the_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let t = store.table(def(false, &CHANGED)).unwrap();
        store
            .write(|tx| {
                for i in 0..500u32 {
                    let u = user(&format!("name{i}"), i);
                    tx.insert(&t, &i, &u)?;
                    model.insert(i, u);
                }
                Ok(())
            })
            .unwrap();
        store.compact().unwrap();
    }
    // Same index name, another key function: the sample catches it.
    let store = Store::open(dir.path(), options()).unwrap();
    CHANGED.store(0, Ordering::SeqCst);
    let t = store.table(def(true, &CHANGED)).unwrap();
    assert!(
        CHANGED.load(Ordering::SeqCst) >= 500,
        "rebuilt from the rows"
    );
    check(&store, &t, &model, true);
}

/// Random writes, compactions and reopens against a model: after every reopen, every row is
/// found through the index, and only through its own key. Some transactions append runs of
/// new ids with new names in increasing order (the appended-rows path of both the rows and the
/// index), and some of those runs end with a name that is taken: the whole run is refused.
#[test]
fn indexes_match_the_rows_across_compactions_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_1dec);
    let mut model: BTreeMap<u32, User> = BTreeMap::new();
    let mut store = Store::open(dir.path(), options()).unwrap();
    let mut t = store.table(def(false, &RANDOM)).unwrap();
    // Ids from 1,000 up are appended in runs, named "z" and the id (so in increasing order).
    let mut next_id = 1_000u32;
    for step in 0..3_000u32 {
        let id = if next_id > 1_000 && rng.below(3) == 0 {
            1_000 + rng.below(u64::from(next_id - 1_000)) as u32
        } else {
            rng.below(300) as u32
        };
        if rng.below(25) == 0 {
            let n = 1 + rng.below(300) as u32;
            let mut run: Vec<(u32, User)> = (next_id..next_id + n)
                .map(|i| (i, user(&format!("z{i:08}"), step)))
                .collect();
            let clash = rng.below(4) == 0 && !model.is_empty();
            if clash {
                let taken = model.values().nth(rng.below(model.len() as u64) as usize);
                let name = taken.map(|u| u.name.clone()).unwrap_or_default();
                run.push((next_id + n, user(&name, step)));
            }
            match store.write(|tx| {
                for (i, u) in &run {
                    tx.insert(&t, i, u)?;
                }
                Ok(())
            }) {
                Ok(()) => {
                    assert!(!clash, "a duplicate name was accepted at step {step}");
                    next_id += run.len() as u32;
                    model.extend(run);
                }
                Err(Error::Conflict { .. }) => assert!(clash, "a free name refused"),
                Err(e) => panic!("{e}"),
            }
            continue;
        }
        match rng.below(10) {
            0..=5 => {
                let u = user(&format!("n{}", rng.below(400)), step);
                let taken = model.iter().any(|(k, v)| v.name == u.name && *k != id);
                match store.write(|tx| tx.insert(&t, &id, &u)) {
                    Ok(_) => {
                        assert!(!taken, "a duplicate name was accepted at step {step}");
                        model.insert(id, u);
                    }
                    Err(Error::Conflict { .. }) => assert!(taken, "a free name refused"),
                    Err(e) => panic!("{e}"),
                }
            }
            6 | 7 => match store.write(|tx| tx.delete(&t, &id).map(|_| ())) {
                Ok(()) => assert!(model.remove(&id).is_some()),
                Err(Error::RowNotFound { .. }) => assert!(!model.contains_key(&id)),
                Err(e) => panic!("{e}"),
            },
            8 => store.compact().unwrap(),
            _ => {
                drop(store);
                store = Store::open(dir.path(), options()).unwrap();
                t = store.table(def(false, &RANDOM)).unwrap();
                check(&store, &t, &model, false);
            }
        }
    }
    check(&store, &t, &model, false);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    name: String,
    n: u32,
    email: String,
}

/// A migration rewrites every row: the indexes stored for the old schema are not used.
#[test]
fn a_migration_rebuilds_stored_indexes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let t = store.table(def(false, &MIGRATED)).unwrap();
        store
            .write(|tx| {
                for i in 0..300u32 {
                    tx.insert(&t, &i, &user(&format!("m{i}"), i))?;
                }
                Ok(())
            })
            .unwrap();
        store.compact().unwrap();
    }
    let v2 = || {
        let mut def = TableDef::<u32, UserV2>::new("users")
            .version(2)
            .migrate_from(1, |old: User| UserV2 {
                email: format!("{}@example.org", old.name),
                name: old.name,
                n: old.n,
            });
        let by_email = def.unique_index("name", |u: &UserV2| u.email.clone());
        (def, by_email)
    };
    let store = Store::open(dir.path(), options()).unwrap();
    let (def, by_email) = v2();
    store.table(def).unwrap();
    let snap = store.read();
    for i in 0..300u32 {
        let (id, u) = snap
            .get_by(&by_email, &format!("m{i}@example.org"))
            .unwrap()
            .unwrap();
        assert_eq!((id, u.n), (i, i));
    }
    assert_eq!(snap.get_by(&by_email, "m1").unwrap(), None);
    store.compact().unwrap();
    drop(store);
    // And the rebuilt index, stored by that compaction, is used on the next open.
    let store = Store::open(dir.path(), options()).unwrap();
    let (def, by_email) = v2();
    store.table(def).unwrap();
    let (id, _) = store
        .read()
        .get_by(&by_email, "m7@example.org")
        .unwrap()
        .unwrap();
    assert_eq!(id, 7);
}

/// Two unique indexes on one table (the name, and `n`): a write that keeps one key and
/// changes the other moves only the changed one; a conflict on either changes nothing; random
/// writes, deletes, compactions and reopens keep both indexes equal to the rows.
#[test]
fn two_indexes_follow_writes_that_change_either_key() {
    let dir = tempfile::tempdir().unwrap();
    let def = || {
        let mut def = TableDef::<u32, User>::new("pairs");
        let by_name = def.unique_index("name", |u: &User| u.name.clone());
        let by_n = def.unique_index("n", |u: &User| u.n);
        (def, by_name, by_n)
    };
    let (_, by_name, by_n) = def();
    let mut store = Store::open(dir.path(), options()).unwrap();
    let mut t = store.table(def().0).unwrap();
    let mut model: BTreeMap<u32, User> = BTreeMap::new();
    let mut rng = Rng(7);
    for step in 0..3000u32 {
        let id = rng.below(40) as u32;
        let current = model.get(&id).cloned();
        let candidate = match (rng.below(4), &current) {
            // Keep the name, change n; keep n, change the name; change both.
            (0, Some(u)) => user(&u.name, rng.below(60) as u32),
            (1, Some(u)) => user(&format!("u{}", rng.below(60)), u.n),
            (2, Some(u)) => u.clone(),
            _ => user(&format!("u{}", rng.below(60)), rng.below(60) as u32),
        };
        if rng.below(10) == 0 {
            let got = store.write(|tx| tx.delete(&t, &id));
            assert_eq!(got.is_ok(), model.remove(&id).is_some());
        } else {
            let taken = model
                .iter()
                .any(|(k, u)| *k != id && (u.name == candidate.name || u.n == candidate.n));
            let got = store.write(|tx| tx.insert(&t, &id, &candidate));
            if taken {
                assert!(matches!(got, Err(Error::Conflict { .. })), "{got:?}");
            } else {
                assert_eq!(got.unwrap(), current.is_none());
                model.insert(id, candidate);
            }
        }
        if step % 500 == 499 {
            store.compact().unwrap();
        }
        if step % 1000 == 999 {
            drop(t);
            store.close().unwrap();
            drop(store);
            store = Store::open(dir.path(), options()).unwrap();
            t = store.table(def().0).unwrap();
        }
        if step % 100 == 0 || step == 2999 {
            let snap = store.read();
            assert_eq!(snap.count(&t).unwrap(), model.len());
            for (id, u) in &model {
                let row = Some((*id, u.clone()));
                assert_eq!(snap.get_by(&by_name, &u.name).unwrap(), row);
                assert_eq!(snap.get_by(&by_n, &u.n).unwrap(), row);
            }
            for i in 0..60u32 {
                let found = snap
                    .get_by(&by_name, &format!("u{i}"))
                    .unwrap()
                    .map(|r| r.0);
                let want = model
                    .iter()
                    .find(|(_, u)| u.name == format!("u{i}"))
                    .map(|r| *r.0);
                assert_eq!(found, want, "name u{i}");
                let found = snap.get_by(&by_n, &i).unwrap().map(|r| r.0);
                assert_eq!(
                    found,
                    model.iter().find(|(_, u)| u.n == i).map(|r| *r.0),
                    "n {i}"
                );
            }
        }
    }
}
