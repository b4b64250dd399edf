//! Both classes together under the simulator: strong and buffered commits with a unique index,
//! weak marks and flushes, compactions, and the repair of references on reopen, crashed at
//! every operation (every write and every sync) in every crash mode. Every recovery must
//! satisfy:
//! - every acknowledged strong commit is present, and the strong state equals the model after
//!   some commit between the last acknowledged and the last issued;
//! - the weak state equals the model at some flush at or after the last successful one (after
//!   the repair);
//! - unique constraints and declared references hold.
//!
//! Rewinds are crashed at every operation in `tests/epoch_sim.rs` (the log) and
//! `tests/store_sim.rs` (a store rewound by an operator); segment rotation is exercised here by
//! small segments.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::Rng;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use statelog::backend::{Backend, SimBackend};
use statelog::epoch::{CompactionPolicy, Options, Retention};
use statelog::weak::{DirtySet, Flusher, ParentIn, Persistence, Rules};
use statelog::{Durability, Error, Readable, StoreOptions, Table, TableDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lease {
    node: u8,
    platform: u8,
}

type Platforms = BTreeMap<u8, String>;
type Nodes = BTreeMap<u8, u32>;
type Leases = BTreeMap<u8, Lease>;

#[derive(Clone)]
struct Tables {
    platforms: Table<u8, String>,
    nodes: Table<u8, u32>,
    leases: Table<u8, Lease>,
}

fn options() -> StoreOptions {
    StoreOptions {
        log: Options {
            block_size: 1024,
            segment_bytes: 2048,
            retention: Retention {
                keep_epochs: 2,
                keep_for: None,
            },
            compaction: CompactionPolicy {
                update_ratio: 3.0,
                min_update_bytes: 2048,
            },
            ..Options::default()
        },
        ..StoreOptions::default()
    }
}

fn open(be: &SimBackend) -> statelog::Result<(Persistence, Tables)> {
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    let dirs = (Path::new("/state"), Path::new("/cache"));
    let (p, t) = Persistence::open_with(backend, dirs, (options(), options()), |strong, weak| {
        let t = Tables {
            platforms: strong
                .table(TableDef::new("platforms").unique("name", |n: &String| n.clone()))?,
            nodes: weak.table(TableDef::new("nodes"))?,
            leases: weak.table(TableDef::new("leases"))?,
        };
        let rules = Rules::new()
            .reference(&t.leases, &t.nodes, ParentIn::Same, |_, l| l.node)
            .reference(&t.leases, &t.platforms, ParentIn::Strong, |_, l| l.platform);
        Ok((t, rules))
    })?;
    Ok((p, t))
}

/// What the workload did.
struct Run {
    strong: Vec<Platforms>,
    strong_acked: usize,
    weak: Vec<(Nodes, Leases)>,
    weak_acked: usize,
}

fn workload(be: &SimBackend, seed: u64, steps: usize) -> Run {
    let mut run = Run {
        strong: vec![Platforms::new()],
        strong_acked: 0,
        weak: vec![(Nodes::new(), Leases::new())],
        weak_acked: 0,
    };
    let Ok((p, t)) = open(be) else { return run };
    let nodes = Arc::new(Mutex::new(Nodes::new()));
    let leases = Arc::new(Mutex::new(Leases::new()));
    let d_nodes = Arc::new(DirtySet::new());
    let d_leases = Arc::new(DirtySet::new());
    let (n2, l2) = (nodes.clone(), leases.clone());
    let rules = Rules::new().reference(&t.leases, &t.nodes, ParentIn::Same, |_, l| l.node);
    let flusher = Flusher::new(p.weak.clone())
        .source(&t.leases, d_leases.clone(), move |k| {
            l2.lock().get(k).cloned()
        })
        .source(&t.nodes, d_nodes.clone(), move |k| {
            n2.lock().get(k).copied()
        })
        .order_by(&rules);
    let mut rng = Rng(seed);
    let mut platforms = Platforms::new();
    for _ in 0..steps {
        let roll = rng.below(100);
        if roll < 35 {
            // A strong or buffered transaction: rename or delete a platform.
            let k = rng.below(6) as u8;
            let name = (rng.below(3) > 0).then(|| format!("n{}", rng.below(6)));
            let strong = rng.below(3) > 0;
            let mut next = platforms.clone();
            let conflict = match &name {
                Some(n) => next.iter().any(|(o, v)| *o != k && v == n),
                None => false,
            };
            if !conflict {
                match &name {
                    Some(n) => {
                        next.insert(k, n.clone());
                    }
                    None => {
                        next.remove(&k);
                    }
                }
                run.strong.push(next.clone());
            }
            let d = if strong {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            let r = p.strong.write_with(d, |tx| match &name {
                Some(n) => tx.insert(&t.platforms, &k, n).map(|_| ()),
                None => match tx.delete(&t.platforms, &k) {
                    Ok(_) | Err(Error::RowNotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                },
            });
            match r {
                Ok(()) => {
                    assert!(
                        !conflict,
                        "seed {seed}: the unique index let a duplicate in"
                    );
                    platforms = next;
                    if strong {
                        run.strong_acked = run.strong.len() - 1;
                    }
                }
                Err(Error::Conflict { .. }) => assert!(conflict, "seed {seed}: spurious conflict"),
                Err(_) => break,
            }
        } else if roll < 75 {
            // Weak marks: change the application's memory and mark the keys.
            let k = rng.below(8) as u8;
            if rng.below(2) == 0 {
                if rng.below(4) == 0 {
                    nodes.lock().remove(&k);
                } else {
                    nodes.lock().insert(k, rng.below(1000) as u32);
                }
                d_nodes.mark_upsert(k);
            } else {
                let lease = Lease {
                    node: rng.below(8) as u8,
                    platform: rng.below(6) as u8,
                };
                if rng.below(4) == 0 {
                    leases.lock().remove(&k);
                    d_leases.mark_delete(k);
                } else {
                    leases.lock().insert(k, lease);
                    d_leases.mark_upsert(k);
                }
            }
        } else if roll < 90 {
            // A flush: the state it writes may survive a crash inside it.
            run.weak.push((nodes.lock().clone(), leases.lock().clone()));
            match flusher.flush() {
                Ok(_) => run.weak_acked = run.weak.len() - 1,
                Err(_) => break,
            }
        } else if roll < 95 {
            if p.strong.compact().is_err() {
                break;
            }
            run.strong_acked = run.strong.len() - 1;
        } else if p.weak.compact().is_err() {
            break;
        }
    }
    run
}

/// The weak state the repair leaves from `weak` given the strong platforms.
fn repaired(weak: &(Nodes, Leases), platforms: &Platforms) -> (Nodes, Leases) {
    let (nodes, leases) = weak;
    let leases = leases
        .iter()
        .filter(|(_, l)| nodes.contains_key(&l.node) && platforms.contains_key(&l.platform))
        .map(|(k, l)| (*k, l.clone()))
        .collect();
    (nodes.clone(), leases)
}

fn check(be: &SimBackend, run: &Run, ctx: &str) {
    common::assert_verify_clean(be, Path::new("/state"), ctx);
    common::assert_verify_clean(be, Path::new("/cache"), ctx);
    let (p, t) = open(be).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let strong: Platforms = p
        .strong
        .read()
        .list(&t.platforms)
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        run.strong[run.strong_acked..].contains(&strong),
        "{ctx}: strong state {strong:?} is not one between the last acknowledged commit and the last issued"
    );
    let mut names: Vec<&String> = strong.values().collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), strong.len(), "{ctx}: unique constraint broken");
    let snap = p.weak.read();
    let nodes: Nodes = snap.list(&t.nodes).unwrap().into_iter().collect();
    let leases: Leases = snap.list(&t.leases).unwrap().into_iter().collect();
    let got = (nodes, leases);
    let candidates: Vec<(Nodes, Leases)> = run.weak[run.weak_acked..]
        .iter()
        .map(|w| repaired(w, &strong))
        .collect();
    assert!(
        candidates.contains(&got),
        "{ctx}: weak state {got:?} is not a repaired flush at or after the last successful one"
    );
    for l in got.1.values() {
        assert!(
            got.0.contains_key(&l.node) && strong.contains_key(&l.platform),
            "{ctx}: dangling reference"
        );
    }
    p.close().unwrap();
}

#[test]
fn crash_at_every_operation_of_both_classes() {
    for seed in [1u64, 2, 3] {
        let run = workload(&SimBackend::new(seed), seed, 120);
        assert!(
            run.strong.len() > 20 && run.weak.len() > 10,
            "seed {seed}: workload too small"
        );
        let total = common::crash_at_every_operation(seed, |be| workload(be, seed, 120), check);
        eprintln!("seed {seed}: {total} crash points x 3 modes");
    }
}
