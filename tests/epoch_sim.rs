//! Epoch layer under the simulator: a workload of strong and buffered appends, syncs,
//! snapshots with retention, segment rotation and rewinds, crashed at every operation in every
//! crash mode. Every recovery equals the model's state at some point between the last
//! acknowledged operation and the last issued one. Seeds are printed on failure.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::Rng;
use statelog::Error;
use statelog::backend::{Backend, CrashMode, Fault, FaultKind, OpKind, SimBackend};
use statelog::epoch::{Durability, EpochLog, Options, Restored, Retention};

const MODES: [CrashMode; 3] = [
    CrashMode::LoseUnsynced,
    CrashMode::KeepPrefix,
    CrashMode::Sectors,
];

type State = Vec<u32>;

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn options() -> Options {
    Options {
        block_size: 1024,
        segment_bytes: 2 * 1024,
        retention: Retention {
            keep_epochs: 3,
            keep_for: None,
        },
        ..Options::default()
    }
}

fn encode(state: &State) -> Vec<u8> {
    state.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> State {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The state an epoch's snapshot and updates describe.
fn apply(r: Restored) -> Result<State, Error> {
    let mut state = r.snapshot.as_deref().map(decode).unwrap_or_default();
    for u in r.updates {
        state.extend(decode(&u?));
    }
    Ok(state)
}

/// What the workload did: every state it passed through, and the index of the last one that
/// was acknowledged durable.
struct Run {
    history: Vec<State>,
    acked: usize,
    ops: usize,
    snapshots: usize,
    rewinds: usize,
}

fn workload(be: &SimBackend, seed: u64, steps: usize) -> Run {
    let mut rng = Rng(seed);
    let mut run = Run {
        history: vec![Vec::new()],
        acked: 0,
        ops: 0,
        snapshots: 0,
        rewinds: 0,
    };
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    let Ok((log, _)) = EpochLog::open(backend, &dir(), options()) else {
        return run;
    };
    let mut state: State = Vec::new();
    // State at the end of each epoch that has ended, for rewinds.
    let mut ended: BTreeMap<u64, State> = BTreeMap::new();
    let mut next_id = 1u32;
    for _ in 0..steps {
        run.ops += 1;
        let roll = rng.below(100);
        let result = if roll < 5 {
            let epoch = log.current_epoch();
            let r = log.snapshot(&encode(&state));
            if r.is_ok() {
                ended.insert(epoch, state.clone());
                run.snapshots += 1;
            }
            r.map(|_| true)
        } else if roll < 8 {
            let retained: Vec<u64> = match log.epochs() {
                Ok(e) => e.iter().skip(1).map(|e| e.id).collect(),
                Err(_) => break,
            };
            if retained.is_empty() {
                continue;
            }
            let target = retained[rng.below(retained.len() as u64) as usize];
            let want = ended[&target].clone();
            // The rewind's outcome enters the history before it is issued: a crash inside it
            // may leave either state.
            run.history.push(want.clone());
            match log.truncate_to(target) {
                Ok(r) => {
                    let got = apply(r).expect("rewound epoch reads back");
                    assert_eq!(got, want, "seed {seed}: rewind to {target}");
                    state = want;
                    ended.retain(|&e, _| e < target);
                    run.rewinds += 1;
                    Ok(true)
                }
                Err(e) => Err(e),
            }
        } else if roll < 12 {
            log.sync().map(|_| true)
        } else {
            let id = next_id;
            next_id += 1;
            let strong = roll < 60;
            state.push(id);
            run.history.push(state.clone());
            let d = if strong {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            log.append(&id.to_le_bytes(), d).map(|_| strong)
        };
        match result {
            Ok(true) => run.acked = run.history.len() - 1,
            Ok(false) => {}
            Err(_) => break,
        }
    }
    run
}

/// Reopens after a crash and checks the state is one the workload passed through, at or after
/// the last acknowledged one; then checks the store still works.
fn check(be: &SimBackend, run: &Run, ctx: &str) {
    common::assert_verify_epochs_clean(be, &dir(), ctx);
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    let (log, restored) = match EpochLog::open(backend.clone(), &dir(), options()) {
        Ok(x) => x,
        Err(e) => panic!("{ctx}: reopen failed: {e}"),
    };
    let state = apply(restored).unwrap_or_else(|e| panic!("{ctx}: restore failed: {e}"));
    let at = run.history[run.acked..].iter().position(|h| *h == state);
    assert!(
        at.is_some(),
        "{ctx}: recovered {} updates, not a state between the last acknowledged ({}) and the last issued",
        state.len(),
        run.history[run.acked].len()
    );
    log.append(&u32::MAX.to_le_bytes(), Durability::Strong)
        .unwrap();
    drop(log);
    let (_log, restored) = EpochLog::open(backend, &dir(), options()).unwrap();
    let again = apply(restored).unwrap();
    assert_eq!(again.len(), state.len() + 1, "{ctx}");
}

fn crash_everywhere(seed: u64, steps: usize) {
    let run = workload(&SimBackend::new(seed), seed, steps);
    assert!(run.ops == steps, "seed {seed}: the workload stopped early");
    let total = common::crash_at_every_operation(seed, |be| workload(be, seed, steps), check);
    eprintln!("seed {seed}: {total} crash points x {} modes", MODES.len());
}

#[test]
fn crash_at_every_operation_recovers_a_committed_state() {
    for seed in [1, 2, 3, 4] {
        crash_everywhere(seed, 200);
    }
}

#[test]
fn the_workload_covers_snapshots_rotation_and_rewinds() {
    for seed in [1, 2, 3, 4] {
        let be = SimBackend::new(seed);
        let run = workload(&be, seed, 200);
        let backend: Arc<dyn Backend> = Arc::new(be.clone());
        let names = backend.list(&dir()).unwrap();
        eprintln!(
            "seed {seed}: {} snapshots, {} rewinds, files {names:?}",
            run.snapshots, run.rewinds
        );
        assert!(run.snapshots >= 3 && run.rewinds >= 1, "seed {seed}");
        assert!(
            names.iter().any(|n| n.ends_with(".rewound")),
            "seed {seed}: {names:?}"
        );
        let (log, restored) = EpochLog::open(backend, &dir(), options()).unwrap();
        let segments = restored.updates.segments().len();
        let state = apply(restored).unwrap();
        assert_eq!(&state, run.history.last().unwrap());
        // Rotation: the current epoch spans several segments, or did before its last snapshot.
        assert!(
            segments > 1 || run.snapshots > 5,
            "seed {seed}: no rotation seen"
        );
        assert!(log.epochs().unwrap().len() <= 3, "retention keeps 3 epochs");
    }
}

/// Faults during any operation poison the log (everything later refused); a reopen restores
/// a state at or after the last acknowledged one.
#[test]
fn faults_poison_and_reopen_restores_acknowledged_state() {
    for kind in [FaultKind::Eio, FaultKind::Enospc, FaultKind::ShortWrite] {
        for op in [
            OpKind::Write,
            OpKind::Sync,
            OpKind::Rename,
            OpKind::SyncDir,
            OpKind::Create,
        ] {
            for nth in [1, 2, 3, 5, 8, 13, 21] {
                for crash in [None, Some(CrashMode::LoseUnsynced)] {
                    let be = SimBackend::new(nth);
                    be.inject(Fault { op, nth, kind });
                    let run = workload(&be, 7, 80);
                    be.clear_faults();
                    if let Some(mode) = crash {
                        be.crash(mode);
                    }
                    check(
                        &be,
                        &run,
                        &format!("{kind:?} on {op:?} #{nth}, crash {crash:?}"),
                    );
                }
            }
        }
    }
}
