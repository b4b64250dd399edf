//! Restore with unique indexes after a long tail of updates (FORMAT.md §12.1.1): a put that
//! keeps its row's unique-index keys says so in the log, and a restore that folds the tail
//! does not decode those rows to bring the stored indexes up to date. Whatever the
//! transactions said, and whichever indexes the program registered while it wrote them, the
//! indexes after a reopen are those of the rows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use statelog::{Durability, Error, Index, Readable, Store, StoreOptions, Table, TableDef};

mod common;
use common::Rng;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Node {
    name: String,
    alias: String,
    score: u64,
}

fn opts() -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        ..StoreOptions::default()
    }
}

type Handles = (
    Table<u64, Node>,
    Index<u64, Node, String>,
    Option<Index<u64, Node, String>>,
);

/// The table `nodes` with its unique index on the name and, with `alias`, on the alias.
fn open(store: &Store, alias: bool) -> Handles {
    let mut def = TableDef::<u64, Node>::new("nodes");
    let by_name = def.unique_index("name", |n: &Node| n.name.clone());
    let by_alias = alias.then(|| def.unique_index("alias", |n: &Node| n.alias.clone()));
    (store.table(def).unwrap(), by_name, by_alias)
}

/// The store in `dir`, and its table `nodes` (see [`open`]).
fn reopen(dir: &Path, alias: bool) -> (Store, Handles) {
    let store = Store::open(dir, opts()).unwrap();
    let h = open(&store, alias);
    (store, h)
}

type Model = BTreeMap<u64, Node>;

fn node(id: u64, round: u64) -> Node {
    Node {
        name: format!("n{id}"),
        alias: format!("a{id}-{round}"),
        score: round,
    }
}

const ROWS: u64 = 20_000;

/// `updates` single-row writes on random rows: most change the score only (the keys kept),
/// some rename (a fresh name, or the name a deleted row freed), change the alias, delete, or
/// put a row back.
fn churn(store: &Store, h: &Handles, model: &mut Model, rng: &mut Rng, updates: u64, round: u64) {
    let (t, ..) = h;
    let mut freed: Vec<String> = Vec::new();
    for i in 0..updates {
        let id = rng.below(ROWS);
        let kind = rng.below(20);
        let mut row = match model.get(&id) {
            Some(r) => r.clone(),
            None => {
                let mut r = node(id, round * 1_000_000 + i);
                r.name = format!("back{id}-{round}-{i}");
                store
                    .write_with(Durability::Buffered, |tx| tx.insert(t, &id, &r))
                    .unwrap();
                model.insert(id, r);
                continue;
            }
        };
        match kind {
            0 => {
                store
                    .write_with(Durability::Buffered, |tx| tx.delete(t, &id).map(|_| ()))
                    .unwrap();
                freed.push(row.name);
                model.remove(&id);
                continue;
            }
            1 => row.name = freed.pop().unwrap_or(format!("renamed{id}-{round}-{i}")),
            2 => row.alias = format!("b{id}-{round}-{i}"),
            _ => row.score += 1,
        }
        store
            .write_with(Durability::Buffered, |tx| tx.insert(t, &id, &row))
            .unwrap();
        model.insert(id, row);
    }
    store.sync().unwrap();
}

/// Every row found by its name (and by its alias, if registered), no other name found, and
/// a row that takes another's name refused.
fn check(store: &Store, h: &Handles, model: &Model) {
    let (t, by_name, by_alias) = h;
    let r = store.read();
    assert_eq!(r.count(t).unwrap(), model.len());
    for (id, row) in model {
        assert_eq!(r.get(t, id).unwrap().as_ref(), Some(row));
        assert_eq!(
            r.get_by(by_name, &row.name).unwrap(),
            Some((*id, row.clone()))
        );
        if let Some(by_alias) = by_alias {
            assert_eq!(
                r.get_by(by_alias, &row.alias).unwrap(),
                Some((*id, row.clone()))
            );
        }
    }
    let holder: BTreeMap<&str, u64> = model.iter().map(|(id, r)| (&*r.name, *id)).collect();
    for id in 0..ROWS {
        let name = format!("n{id}");
        let found = r.get_by(by_name, &name).unwrap().map(|x| x.0);
        assert_eq!(found, holder.get(&*name).copied(), "{name}");
    }
    let (a, b) = {
        let mut it = model.iter();
        (it.next().unwrap(), it.next().unwrap())
    };
    let mut taken = a.1.clone();
    taken.name = b.1.name.clone();
    let refused = store.write(|tx| tx.insert(t, a.0, &taken));
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "{refused:?}"
    );
}

fn load(dir: &Path, alias: bool) -> Model {
    let (store, h) = reopen(dir, alias);
    let mut model = Model::new();
    store
        .write(|tx| {
            for id in 0..ROWS {
                let r = node(id, 0);
                tx.insert(&h.0, &id, &r)?;
                model.insert(id, r);
            }
            Ok(())
        })
        .unwrap();
    store.compact().unwrap();
    model
}

/// A tail long enough to be folded at restore (most of it keeping keys), reopened: the
/// indexes are the rows', and stay so through more updates and another reopen.
#[test]
fn a_long_tail_of_kept_keys_restores_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = load(dir.path(), true);
    let mut rng = Rng(7);
    {
        let (store, h) = reopen(dir.path(), true);
        churn(&store, &h, &mut model, &mut rng, 9_000, 1);
    }
    let (store, h) = reopen(dir.path(), true);
    check(&store, &h, &model);
    churn(&store, &h, &mut model, &mut rng, 2_000, 2);
    drop(store);
    let (store, h) = reopen(dir.path(), true);
    check(&store, &h, &model);
}

/// The snapshot stores both indexes; a program that registers the name index alone writes
/// the tail (its puts say they kept the name, while some change the alias); the next one
/// registers both again: the alias index follows the rows all the same.
#[test]
fn keys_kept_under_fewer_indexes_are_not_trusted_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = load(dir.path(), true);
    let mut rng = Rng(11);
    {
        let (store, h) = reopen(dir.path(), false);
        churn(&store, &h, &mut model, &mut rng, 9_000, 1);
        // Aliases changed with the name kept: said to keep their keys (the name's).
        let (t, ..) = &h;
        for id in 0..ROWS / 2 {
            if let Some(mut row) = model.get(&id).cloned() {
                row.alias = format!("c{id}");
                store
                    .write_with(Durability::Buffered, |tx| tx.insert(t, &id, &row))
                    .unwrap();
                model.insert(id, row);
            }
        }
        store.sync().unwrap();
    }
    let (store, h) = reopen(dir.path(), true);
    check(&store, &h, &model);
}

/// Commits during compactions (whose epochs start without the declarations of the one
/// before) and reopens between them: the indexes are the rows'.
#[test]
fn kept_keys_across_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = load(dir.path(), true);
    let mut rng = Rng(13);
    for round in 1..=3 {
        let (store, h) = reopen(dir.path(), true);
        churn(&store, &h, &mut model, &mut rng, 3_000, round);
        store.compact().unwrap();
        churn(&store, &h, &mut model, &mut rng, 9_000, round + 10);
        drop(store);
        let (store, h) = reopen(dir.path(), true);
        check(&store, &h, &model);
    }
}

/// Commits racing compactions: what is committed while a snapshot is written is applied to
/// the compacted state by the compaction's catch-up (which leaves the indexes alone for puts
/// that kept their keys, and renames the others), and that state becomes the store's: the
/// indexes are the rows', before and after a reopen.
#[test]
fn commits_beside_a_compaction_keep_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = load(dir.path(), true);
    let mut rng = Rng(17);
    let (store, h) = reopen(dir.path(), true);
    let compactions_before = store.stats().compactions;
    std::thread::scope(|sc| {
        let churning = sc.spawn(|| {
            for round in 1..=6 {
                churn(&store, &h, &mut model, &mut rng, 4_000, round);
            }
        });
        while !churning.is_finished() {
            store.compact().unwrap();
        }
    });
    assert!(store.stats().compactions >= compactions_before + 2);
    check(&store, &h, &model);
    drop(store);
    let (store, h) = reopen(dir.path(), true);
    check(&store, &h, &model);
}
