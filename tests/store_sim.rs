//! The store under the simulator: random transactions (strong and buffered), syncs,
//! compactions and rewinds (live and offline), crashed at every operation in every crash mode. Every recovery equals the
//! model after some transaction between the last acknowledged one and the last issued one:
//! no partial transaction, no reordering, nothing acknowledged lost.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::Rng;
use statelog::backend::{Backend, CrashMode, SimBackend};
use statelog::epoch::EpochLog;
use statelog::{Durability, Readable, Store, StoreOptions, Table, TableDef};

type Model = BTreeMap<u8, u32>;

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn options() -> StoreOptions {
    common::sim_store_options(2, 3 * 1024)
}

fn open(be: &SimBackend) -> statelog::Result<(Store, Table<u8, u32>)> {
    let store = Store::open_with(Arc::new(be.process()), &dir(), options())?;
    let t = store.table(TableDef::new("kv"))?;
    Ok((store, t))
}

struct Run {
    history: Vec<Model>,
    acked: usize,
    /// Rewinds done on the store in use.
    live_rewinds: u32,
}

fn workload(be: &SimBackend, seed: u64, steps: usize) -> Run {
    let mut run = Run {
        history: vec![Model::new()],
        acked: 0,
        live_rewinds: 0,
    };
    let Ok((mut store, mut t)) = open(be) else {
        return run;
    };
    let mut rng = Rng(seed);
    let mut model = Model::new();
    // The state each epoch ended with (when a compaction started the next one), for rewinds.
    let mut ended: BTreeMap<u64, Model> = BTreeMap::new();
    let mut next = 1u32;
    let mut rewinds = 0u32;
    for _ in 0..steps {
        let roll = rng.below(100);
        let ok = if roll < 4 {
            let epoch = store.log().current_epoch();
            let ok = store.compact().is_ok();
            if ok {
                ended.insert(epoch, model.clone());
            }
            ok
        } else if roll < 6 {
            // A rewind: every other one on the store in use (`Store::rewind_to`), the others as
            // an operator does it: close, rewind the log, reopen.
            let retained: Vec<u64> = match store.log().epochs() {
                Ok(e) => e
                    .iter()
                    .skip(1)
                    .map(|e| e.id)
                    .filter(|id| ended.contains_key(id))
                    .collect(),
                Err(_) => break,
            };
            let Some(&target) = retained.get(rng.below(retained.len().max(1) as u64) as usize)
            else {
                continue;
            };
            let want = ended[&target].clone();
            run.history.push(want.clone());
            rewinds += 1;
            if rewinds % 2 == 1 {
                if store.rewind_to(target).is_err() {
                    break;
                }
                let got: Model = match store.read().list(&t) {
                    Ok(rows) => rows.into_iter().collect(),
                    Err(_) => break,
                };
                assert_eq!(got, want, "the live rewind's state");
                model = want;
                run.acked = run.history.len() - 1;
                run.live_rewinds += 1;
                continue;
            }
            drop(store);
            let rewound = EpochLog::open(Arc::new(be.clone()), &dir(), options().log)
                .and_then(|(log, _)| log.truncate_to(target).map(|_| log))
                .and_then(|log| log.close());
            let Ok((s2, t2)) = open(be) else { break };
            (store, t) = (s2, t2);
            if rewound.is_err() {
                break;
            }
            model = want;
            true
        } else if roll < 8 {
            store.sync().is_ok()
        } else {
            let mut after = model.clone();
            let ops: Vec<(u8, Option<u32>)> = (0..1 + rng.below(3))
                .map(|_| {
                    let k = rng.below(24) as u8;
                    let v = (rng.below(4) > 0).then(|| {
                        next += 1;
                        next
                    });
                    (k, v)
                })
                .collect();
            let strong = roll < 60;
            // The transaction enters the history before it is issued: a crash inside may
            // leave it or not.
            for (k, v) in &ops {
                match v {
                    Some(v) => {
                        after.insert(*k, *v);
                    }
                    None => {
                        after.remove(k);
                    }
                }
            }
            run.history.push(after.clone());
            let d = if strong {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            let r = store.write_with(d, |tx| {
                for (k, v) in &ops {
                    match v {
                        Some(v) => {
                            tx.insert(&t, k, v)?;
                        }
                        None => match tx.delete(&t, k) {
                            Ok(_) | Err(statelog::Error::RowNotFound { .. }) => {}
                            Err(e) => return Err(e),
                        },
                    }
                }
                Ok(())
            });
            if r.is_ok() {
                model = after;
            }
            r.is_ok() && strong
        };
        if ok {
            run.acked = run.history.len() - 1;
        } else if store.read().seq() == 0 && roll >= 8 {
            break;
        }
        if roll < 8 && !ok {
            break;
        }
    }
    run
}

fn check(be: &SimBackend, run: &Run, ctx: &str) {
    common::assert_verify_clean(be, &dir(), ctx);
    let (store, t) = open(be).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let got: Model = store.read().list(&t).unwrap().into_iter().collect();
    assert!(
        run.history[run.acked..].contains(&got),
        "{ctx}: recovered {got:?} is not a state between the last acknowledged and the last issued"
    );
    store.write(|tx| tx.insert(&t, &255, &1)).unwrap();
}

#[test]
fn crash_at_every_operation_recovers_a_committed_state() {
    for seed in [1u64, 2] {
        let total = common::crash_at_every_operation(seed, |be| workload(be, seed, 150), check);
        eprintln!("seed {seed}: {total} crash points x 3 modes");
    }
}

#[test]
fn the_workload_compacts_rotates_and_rewinds() {
    let be = SimBackend::new(1);
    let run = workload(&be, 1, 150);
    assert!(run.live_rewinds > 0, "no rewind of the store in use");
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    let names = backend.list(&dir()).unwrap();
    let (store, _) = open(&be).unwrap();
    let epoch = store.log().current_epoch();
    eprintln!("epoch {epoch}, files {names:?}");
    assert!(epoch >= 3, "few compactions: epoch {epoch}");
    assert!(
        names.iter().any(|n| n.ends_with(".rewound")),
        "no rewind: {names:?}"
    );
}

/// A strong transaction that changes nothing still returns only once the state it read is
/// durable: buffered commits before it survive a power loss.
#[test]
fn an_empty_strong_transaction_makes_what_it_read_durable() {
    let be = SimBackend::new(5);
    let (store, t) = open(&be).unwrap();
    store
        .write_with(Durability::Buffered, |tx| tx.insert(&t, &1, &10))
        .unwrap();
    let seen = store
        .write(|tx| tx.get(&t, &1).map(Option::unwrap_or_default))
        .unwrap();
    assert_eq!(seen, 10);
    drop(store);
    be.crash(CrashMode::LoseUnsynced);
    let (store, t) = open(&be).unwrap();
    assert_eq!(store.read().get(&t, &1).unwrap().unwrap(), 10);
}
