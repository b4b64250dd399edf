//! The log storage under power loss, on statelog's simulated machine: a workload of appends,
//! votes, truncations and purges is cut by a crash at every I/O operation in turn, the
//! machine loses power (unsynced writes lost, kept as a prefix, or torn by sector), and the
//! reopened log must hold everything openraft was told is durable: each acknowledged append
//! (its callback fired), vote, truncation and purge, and the operation the crash cut either
//! whole or not at all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, LogId, RaftLogReader, Vote};
use statelog::backend::{CrashMode, SimBackend};
use statelog::{Store, StoreOptions};
use statelog_raft::{LogStore, NodeId, Proposal, Request, TypeConfig};

/// What the reopened log must show.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    entries: BTreeMap<u64, u64>,
    purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// A small deterministic generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Proposal::one(Request::Set {
            key: format!("k{index}"),
            value: format!("term {term}"),
        })),
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/node/store")
}

fn open(be: &SimBackend) -> Result<LogStore, statelog_raft::Error> {
    let store = Store::open_with(Arc::new(be.process()), &dir(), StoreOptions::default())?;
    LogStore::new(store)
}

/// Runs the workload of `seed` until an operation fails (the armed crash); returns the
/// model after the last acknowledged operation and the model if the failed one took effect.
async fn workload(be: &SimBackend, seed: u64) -> (Model, Model, usize) {
    let mut rng = Lcg(seed);
    let mut m = Model {
        entries: BTreeMap::new(),
        purged: None,
        vote: None,
    };
    let mut log = match open(be) {
        Ok(l) => l,
        Err(_) => return (m.clone(), m, 0),
    };
    let mut term = 1;
    for op in 0..40 {
        let mut next = m.clone();
        let last = m
            .entries
            .keys()
            .next_back()
            .copied()
            .or(m.purged.map(|p| p.index));
        let result = match rng.below(10) {
            0 => {
                term += 1;
                let v = Vote::new_committed(term, 1);
                next.vote = Some(v);
                log.save_vote(&v).await
            }
            1 | 2 if m.entries.len() > 1 => {
                // Truncate at one of the entries (not below the purge point).
                let keys: Vec<u64> = m.entries.keys().copied().collect();
                let at = keys[rng.below(keys.len() as u64) as usize];
                next.entries.retain(|&i, _| i < at);
                log.truncate(log_id(m.entries[&at], 1, at)).await
            }
            3 if m.entries.len() > 2 => {
                let keys: Vec<u64> = m.entries.keys().copied().collect();
                let at = keys[rng.below(keys.len() as u64 - 1) as usize];
                let id = log_id(m.entries[&at], 1, at);
                next.entries.retain(|&i, _| i > at);
                next.purged = Some(id);
                log.purge(id).await
            }
            _ => {
                let first = last.map_or(1, |l| l + 1);
                let n = 1 + rng.below(5);
                let batch: Vec<_> = (first..first + n).map(|i| entry(term, i)).collect();
                for i in first..first + n {
                    next.entries.insert(i, term);
                }
                log.blocking_append(batch).await
            }
        };
        match result {
            Ok(()) => m = next,
            Err(_) => return (m, next, op),
        }
    }
    (m.clone(), m, 40)
}

async fn read_back(be: &SimBackend) -> Model {
    let mut log = open(be).expect("reopen after the power loss");
    let state = log.get_log_state().await.unwrap();
    let entries = log
        .try_get_log_entries(0..u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.log_id.index, e.log_id.leader_id.term))
        .collect();
    Model {
        entries,
        purged: state.last_purged_log_id,
        vote: log.read_vote().await.unwrap(),
    }
}

#[test]
fn acknowledged_log_operations_survive_a_power_loss_at_every_operation() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runs = 0;
    for seed in [1u64, 2, 3] {
        // The workload's length in I/O operations, uncut.
        let be = SimBackend::new(seed);
        let (full, _, ops_done) = rt.block_on(workload(&be, seed));
        assert_eq!(ops_done, 40);
        let total = be.ops();
        let reached = full.entries.keys().next_back().copied();
        assert!(
            reached.or(full.purged.map(|p| p.index)).unwrap_or(0) >= 10,
            "seed {seed}: a thin workload {full:?}"
        );
        for cut in 1..=total {
            for mode in [
                CrashMode::LoseUnsynced,
                CrashMode::KeepPrefix,
                CrashMode::Sectors,
                CrashMode::Any,
            ] {
                let be = SimBackend::new(seed);
                be.crash_after(cut);
                let (acked, if_done, _) = rt.block_on(workload(&be, seed));
                be.crash(mode);
                let got = rt.block_on(read_back(&be));
                assert!(
                    got == acked || got == if_done,
                    "seed {seed}, crash after {cut} of {total} operations, {mode:?}:\n\
                     read back {got:?}\nacknowledged {acked:?}\nor with the cut one {if_done:?}"
                );
                runs += 1;
            }
        }
    }
    eprintln!("{runs} power losses checked");
}
