//! Compaction beside the writers (FORMAT.md §11.6.1): the snapshot of an O(1) read state is
//! encoded and written while transactions go on. The writer lock is held only to take that
//! state and to switch to the new epoch, and the switch costs what was committed meanwhile
//! (those transactions are copied after the snapshot and applied to its compacted state),
//! never the state's size.

use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use super::codec::decode_tx;
use super::db::{Shared, Store};
use super::state::State;
use super::txn::{TableIndexes, apply_indexed};
use crate::error::{Error, Result};

/// One compaction at a time: automatic ones skip when one runs, explicit ones (and other
/// snapshots: checkpoints, restores) wait for it.
#[derive(Default)]
pub(super) struct Gate {
    busy: Mutex<bool>,
    idle: Condvar,
}

/// A held [`Gate`]; released on drop.
pub(super) struct GateGuard(Arc<Gate>);

impl Gate {
    /// Waits until no compaction runs, then holds the gate.
    pub(super) fn acquire(self: &Arc<Self>) -> GateGuard {
        let mut busy = self.busy.lock();
        while *busy {
            self.idle.wait(&mut busy);
        }
        *busy = true;
        GateGuard(self.clone())
    }

    /// Holds the gate if no compaction runs.
    pub(super) fn try_acquire(self: &Arc<Self>) -> Option<GateGuard> {
        let mut busy = self.busy.lock();
        if *busy {
            return None;
        }
        *busy = true;
        Some(GateGuard(self.clone()))
    }

    /// Whether a compaction runs now.
    pub(super) fn running(&self) -> bool {
        *self.busy.lock()
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        *self.0.busy.lock() = false;
        self.0.idle.notify_all();
    }
}

/// Runs one compaction of the store `weak` points to (the caller holds the gate). The store
/// is held only to start and to switch: if it is dropped meanwhile, the compaction is given
/// up and its file removed.
pub(super) fn compact(weak: &Weak<Shared>) -> Result<()> {
    let gone = || Error::InvalidArgument("the store was closed during compaction".into());
    let (ticket, base) = {
        let shared = weak.upgrade().ok_or_else(gone)?;
        let w = shared.writer.lock();
        // Every transaction of the head is in the log (commits append under this lock).
        let ticket = shared.log.snapshot_start()?;
        (ticket, w.head.clone())
    };
    let prepared = base
        .encode_snapshot()
        .and_then(|bytes| ticket.prepare(&bytes));
    let Some(shared) = weak.upgrade() else {
        ticket.discard();
        return Err(gone());
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            shared.log.snapshot_cancel(&ticket);
            return Err(e);
        }
    };
    // Off the writer's path: the snapshotted state with its changes folded into new bases.
    let compacted = base.compacted();
    drop(base);
    let store = Store {
        shared: shared.clone(),
    };
    let mut w = shared.writer.lock();
    let (mut report, tail) = shared.log.snapshot_finish(ticket, prepared)?;
    store.note_retention(&mut report);
    let indexes = shared.indexes.lock();
    let next = catch_up(&indexes, &w.head, compacted, &tail);
    drop(indexes);
    store.start_epoch_with(&mut w, next, report.epoch.id);
    Ok(())
}

/// The new head: the compacted snapshotted state with the transactions committed meanwhile
/// (`tail`) applied, if that gives the head's rows and indexes; otherwise the head itself (a
/// table's indexes were built meanwhile, say), uncompacted.
fn catch_up(indexes: &[TableIndexes], head: &State, mut next: State, tail: &[Vec<u8>]) -> State {
    let replayed = tail.iter().try_for_each(|bytes| {
        let ops = decode_tx(bytes)?;
        for op in &ops {
            apply_indexed(indexes, &mut next, op)?;
        }
        next.seal();
        next.seq += 1;
        Ok::<(), String>(())
    });
    let same = replayed.is_ok()
        && next.seq == head.seq
        && next.next_table_id == head.next_table_id
        && next.tables.len() == head.tables.len()
        && next.tables.iter().all(|(id, t)| {
            head.tables.get(id).is_some_and(|h| {
                h.rows.len() == t.rows.len()
                    && h.next_id == t.next_id
                    && h.indexes.len() == t.indexes.len()
                    && h.indexes
                        .iter()
                        .zip(&t.indexes)
                        .all(|(a, b)| a.name == b.name && a.map.len() == b.map.len())
            })
        });
    if same {
        next.view = head.view.clone();
        next
    } else {
        head.clone()
    }
}
