//! Checkpoints under the simulator: saves, activations, failures, deletions, commits and
//! compactions (one epoch retained, so only names keep old epochs), crashed at every operation
//! in every crash mode. After each recovery the registry reads back, at most one checkpoint is
//! active, every acknowledged save that was not deleted is there with exactly the state it
//! saved, nothing deleted comes back, and the active one is the last one activated. And an
//! activation committed with an apply-log entry in one transaction, then a restore of one
//! table, crashed at every operation: the activation and the entry are both there or
//! neither, and the restore keeps the apply log and commits its own entry and activation with
//! it.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::Rng;
use statelog::backend::SimBackend;
use statelog::{CheckpointStatus, Readable, Store, StoreOptions, Table, TableDef};

type Model = BTreeMap<u8, u32>;

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn options() -> StoreOptions {
    common::sim_store_options(1, 4 * 1024)
}

fn open(be: &SimBackend) -> statelog::Result<(Store, Table<u8, u32>)> {
    let store = Store::open_with(Arc::new(be.process()), &dir(), options())?;
    let t = store.table(TableDef::new("kv"))?;
    Ok((store, t))
}

/// What a checkpoint operation was, and whether it returned (acknowledged) before the crash.
#[derive(Debug, Clone)]
enum Step {
    Save(String, Model),
    Activate(String),
    Delete(String),
}

#[derive(Default)]
struct Run {
    steps: Vec<(Step, bool)>,
}

fn workload(be: &SimBackend, seed: u64) -> Run {
    let mut run = Run::default();
    let Ok((store, t)) = open(be) else {
        return run;
    };
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let mut names: Vec<String> = Vec::new();
    for step in 0..60u32 {
        let c = store.checkpoints();
        let ok = match rng.below(8) {
            0..=3 => {
                let (k, v) = (rng.below(16) as u8, step);
                let r = store.write(|tx| tx.insert(&t, &k, &v).map(|_| ()));
                if r.is_ok() {
                    model.insert(k, v);
                }
                r.is_ok()
            }
            4 if !names.is_empty() && rng.below(3) == 0 => {
                // Replaces a checkpoint (never the active one) with the current state.
                let name = names[rng.below(names.len() as u64) as usize].clone();
                let active = c.active().ok().map(|a| a.name);
                if active.as_deref() == Some(name.as_str()) {
                    continue;
                }
                run.steps
                    .push((Step::Save(name.clone(), model.clone()), false));
                c.save_replacing(&name).is_ok()
            }
            4 => {
                let name = format!("c{step}");
                run.steps
                    .push((Step::Save(name.clone(), model.clone()), false));
                let ok = c.save(&name).is_ok();
                names.push(name);
                ok
            }
            5 => {
                let Some(name) = names
                    .get(rng.below(names.len() as u64 + 1) as usize)
                    .cloned()
                else {
                    continue;
                };
                run.steps.push((Step::Activate(name.clone()), false));
                c.activate(&name).is_ok()
            }
            6 => {
                let Some(name) = names
                    .get(rng.below(names.len() as u64 + 1) as usize)
                    .cloned()
                else {
                    continue;
                };
                let active = c.active().ok().map(|a| a.name);
                if active.as_deref() == Some(name.as_str()) {
                    continue;
                }
                run.steps.push((Step::Delete(name.clone()), false));
                let ok = c.delete(&name).is_ok();
                names.retain(|n| *n != name);
                ok
            }
            _ => store.compact().is_ok(),
        };
        if !ok {
            return run; // the machine crashed
        }
        if let Some(last) = run.steps.last_mut() {
            last.1 = true;
        }
    }
    run
}

fn check(be: &SimBackend, run: &Run, ctx: &str) {
    common::assert_verify_clean(be, &dir(), ctx);
    let (store, _) = open(be).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let list = store
        .checkpoints()
        .list()
        .unwrap_or_else(|e| panic!("{ctx}: the registry does not read back: {e}"));
    let active: Vec<_> = list
        .iter()
        .filter(|c| c.status == CheckpointStatus::Active)
        .collect();
    assert!(active.len() <= 1, "{ctx}: {} active", active.len());
    // Every present checkpoint was saved, with exactly the state of its last acknowledged
    // save or of one issued after it (a replacing save may or may not have happened).
    for c in &list {
        let saves: Vec<(&Model, bool)> = run
            .steps
            .iter()
            .filter_map(|(s, acked)| match s {
                Step::Save(n, m) if *n == c.name => Some((m, *acked)),
                _ => None,
            })
            .collect();
        if saves.is_empty() {
            panic!("{ctx}: checkpoint {} was never saved", c.name);
        }
        let from = saves.iter().rposition(|(_, a)| *a).unwrap_or(0);
        let snap = store
            .checkpoints()
            .read(&c.name)
            .unwrap_or_else(|e| panic!("{ctx}: checkpoint {} cannot be read: {e}", c.name));
        let got: Model = match snap.table_named::<u8, u32>("kv") {
            Ok(t) => snap.list(&t).unwrap().into_iter().collect(),
            Err(_) => Model::new(),
        };
        assert!(
            saves[from..].iter().any(|(m, _)| **m == got),
            "{ctx}: checkpoint {} holds another state: {got:?}",
            c.name
        );
    }
    // Acknowledged saves are there unless a delete of them was issued; deleted ones are gone
    // once the delete returned.
    for (i, (s, acked)) in run.steps.iter().enumerate() {
        let later = &run.steps[i + 1..];
        match s {
            Step::Save(name, _) if *acked => {
                let deleted = later
                    .iter()
                    .any(|(s, _)| matches!(s, Step::Delete(n) if n == name));
                if !deleted {
                    assert!(
                        list.iter().any(|c| c.name == *name),
                        "{ctx}: acknowledged checkpoint {name} is missing"
                    );
                }
            }
            Step::Delete(name) if *acked => {
                assert!(
                    !list.iter().any(|c| c.name == *name),
                    "{ctx}: deleted checkpoint {name} came back"
                );
            }
            _ => {}
        }
    }
    // The active one is the last acknowledged activation, or one issued after it.
    let activations: Vec<(&String, bool)> = run
        .steps
        .iter()
        .filter_map(|(s, a)| match s {
            Step::Activate(n) => Some((n, *a)),
            _ => None,
        })
        .collect();
    let last_acked = activations.iter().rposition(|(_, a)| *a);
    match (last_acked, active.first()) {
        (Some(i), Some(a)) => assert!(
            activations[i..].iter().any(|(n, _)| **n == a.name),
            "{ctx}: {} is active, not the last activated",
            a.name
        ),
        (Some(i), None) => panic!(
            "{ctx}: no checkpoint is active after {} was activated",
            activations[i].0
        ),
        (None, Some(a)) => assert!(
            activations.iter().any(|(n, _)| **n == a.name),
            "{ctx}: {} is active but was never activated",
            a.name
        ),
        (None, None) => {}
    }
}

#[test]
fn checkpoints_survive_a_crash_at_every_operation() {
    for seed in [3u64, 4] {
        let total = common::crash_at_every_operation(seed, |be| workload(be, seed), check);
        eprintln!("seed {seed}: {total} crash points x 3 modes");
    }
}

#[test]
fn the_workload_saves_activates_deletes_and_compacts() {
    let be = SimBackend::new(3);
    let run = workload(&be, 3);
    let count = |f: fn(&Step) -> bool| run.steps.iter().filter(|(s, _)| f(s)).count();
    assert!(count(|s| matches!(s, Step::Save(..))) >= 4);
    assert!(count(|s| matches!(s, Step::Activate(_))) >= 2);
    assert!(count(|s| matches!(s, Step::Delete(_))) >= 1);
    let (store, _) = open(&be).unwrap();
    assert!(store.log().current_epoch() >= 4, "few compactions");
}

/// How far the transactional workload got: the steps acknowledged, in order.
#[derive(Debug, Default)]
struct TxRun {
    /// save v1 (with a payload), activate v1, save v2, the tx {activate v2, append},
    /// restore_tables(v1, kv) with {activate v1, append} in the same step.
    acked: usize,
}

fn tx_workload(be: &SimBackend) -> TxRun {
    let mut run = TxRun::default();
    let Ok((store, t)) = open(be) else {
        return run;
    };
    let Ok(applied) = store.apply_log::<String>("applied") else {
        return run;
    };
    let c = store.checkpoints();
    let mut ok = store.write(|tx| tx.insert(&t, &1, &1).map(|_| ())).is_ok()
        && store.write(|tx| tx.append(&applied, &"v1".into())).is_ok();
    let steps: [&dyn Fn() -> bool; 5] = [
        &|| c.save_with("v1", b"one").is_ok(),
        &|| c.activate("v1").is_ok(),
        &|| store.write(|tx| tx.insert(&t, &1, &2).map(|_| ())).is_ok() && c.save("v2").is_ok(),
        &|| {
            store
                .write(|tx| {
                    tx.activate_checkpoint("v2")?;
                    tx.append(&applied, &"v2".into())
                })
                .is_ok()
        },
        &|| {
            c.restore_tables_then("v1", &["kv"], |tx| {
                tx.activate_checkpoint("v1")?;
                tx.append(&applied, &"back".into())
            })
            .is_ok()
        },
    ];
    for step in steps {
        ok = ok && step();
        if !ok {
            return run;
        }
        run.acked += 1;
    }
    run
}

fn tx_check(be: &SimBackend, run: &TxRun, ctx: &str) {
    common::assert_verify_clean(be, &dir(), ctx);
    let (store, t) = open(be).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let c = store.checkpoints();
    let list = c
        .list()
        .unwrap_or_else(|e| panic!("{ctx}: the checkpoints do not read back: {e}"));
    let active: Vec<_> = list
        .iter()
        .filter(|c| c.status == CheckpointStatus::Active)
        .map(|c| c.name.as_str())
        .collect();
    assert!(active.len() <= 1, "{ctx}: {active:?} active");
    let log = store.apply_log::<String>("applied").unwrap();
    let entries: Vec<String> = store
        .read()
        .entries(&log, ..)
        .unwrap()
        .map(|e| e.unwrap().1)
        .collect();
    // The activation of v2 and its entry: both or neither; then the restore, its activation
    // of v1 and its entry: all or none.
    let v2_entry = entries.iter().any(|e| e == "v2");
    let back = entries.iter().any(|e| e == "back");
    assert_eq!(
        active == ["v2"] || back,
        v2_entry,
        "{ctx}: active {active:?}, entries {entries:?}"
    );
    if v2_entry {
        assert_eq!(
            active == ["v1"],
            back,
            "{ctx}: active {active:?}, entries {entries:?}"
        );
    }
    let v1 = list.iter().find(|c| c.name == "v1");
    if run.acked >= 1 {
        let v1 = v1.unwrap_or_else(|| panic!("{ctx}: acknowledged v1 is missing"));
        assert_eq!(v1.payload, b"one", "{ctx}");
    }
    if let Some(v1) = v1 {
        assert!(
            v1.payload.is_empty() || v1.payload == b"one",
            "{ctx}: {v1:?}"
        );
        if v1.payload.is_empty() {
            // A pin without its record: pending, and a retry of the save writes the record,
            // or is refused; it never returns the checkpoint without its payload.
            assert_eq!(v1.status, CheckpointStatus::Pending, "{ctx}");
            match c.save_with("v1", b"one") {
                Ok(saved) => {
                    assert_eq!(saved.payload, b"one", "{ctx}");
                    assert_eq!(c.get("v1").unwrap().payload, b"one", "{ctx}");
                }
                Err(statelog::Error::CheckpointExists { .. }) => {}
                Err(e) => panic!("{ctx}: the retry failed: {e}"),
            }
            return;
        }
    }
    if run.acked >= 2 && !v2_entry {
        assert_eq!(active, ["v1"], "{ctx}");
    }
    if run.acked >= 4 {
        assert!(v2_entry, "{ctx}: the acknowledged transaction is lost");
    }
    // The restore of kv: its state at v1, and the apply log keeps both entries.
    let kv = store.read().get(&t, &1).unwrap();
    if run.acked >= 5 {
        assert_eq!(kv, Some(1), "{ctx}: the restore is lost");
        assert!(back, "{ctx}: the restore's entry is lost");
    }
    if back {
        assert_eq!(kv, Some(1), "{ctx}: the entry without the restore");
        assert_eq!(entries, ["v1", "v2", "back"], "{ctx}");
    }
}

#[test]
fn an_activation_and_its_apply_log_entry_survive_a_crash_together() {
    let be = SimBackend::new(7);
    assert_eq!(tx_workload(&be).acked, 5);
    let total = common::crash_at_every_operation(7, tx_workload, tx_check);
    eprintln!("{total} crash points x 3 modes");
}
