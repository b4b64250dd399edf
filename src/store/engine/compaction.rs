//! Compaction beside the writers (FORMAT.md §11.6.1): the snapshot of an O(1) read state is
//! encoded and written while transactions go on. The writer lock is held only to take that
//! state and to switch to the new epoch. What was committed meanwhile is copied after the
//! snapshot and applied to its compacted state in rounds beside the writers, so the switch
//! costs only what the last round left (a few transactions), never the state's size.

use std::sync::{Arc, Weak};

use super::codec::decode_tx_hinted;
use super::db::{Shared, Store};
use super::read::reclaim;
use super::state::State;
use super::txn::{TableIndexes, apply_indexed};
use crate::error::{Error, Result};

impl Store {
    /// Writes a snapshot of the whole state now (starting a new epoch, so restore no longer
    /// replays the transactions before it) and applies retention to old epochs. Runs on the
    /// caller's thread while other writers go on committing (FORMAT.md §11.6.1); waits for an
    /// automatic compaction that is running.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.bytes_table("t")?;
    /// store.write(|tx| tx.put_bytes(&t, b"k", b"v"))?;
    /// let before = store.log().current_epoch();
    /// store.compact()?;
    /// assert!(store.log().current_epoch() > before);
    /// assert_eq!(store.read().count(&t)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn compact(&self) -> Result<()> {
        let _gate = self.shared.compaction.acquire();
        compact(&Arc::downgrade(&self.shared))
    }

    /// An automatic compaction, unless one runs: on a thread of its own (or, on a
    /// deterministic backend, on this one). Its failure is not the commit's (a caller that
    /// retried would apply the transaction twice): it is kept for `compaction_error`, and
    /// tried again once the updates have doubled.
    pub(super) fn compact_beside_writers(&self) {
        let Some(gate) = self.shared.compaction.try_acquire() else {
            return;
        };
        let weak = Arc::downgrade(&self.shared);
        let run = move || {
            let _gate = gate;
            if let Err(e) = compact(&weak) {
                if let Some(shared) = weak.upgrade() {
                    let mut w = shared.writer.lock();
                    w.compact_after = shared.log.update_bytes().saturating_mul(2);
                    drop(w);
                    *shared.compaction_error.lock() = Some(e);
                }
            }
        };
        if self.shared.log.backend().deterministic() {
            run();
        } else if let Err(e) = std::thread::Builder::new()
            .name("statelog-compaction".into())
            .spawn(run)
        {
            *self.shared.compaction_error.lock() = Some(Error::io(self.shared.log.dir(), e));
        }
    }
}

/// Catch-up rounds at most before the switch (writers faster than the catch-up leave the
/// rest to it).
const CATCH_UP_ROUNDS: usize = 16;

/// Logged bytes of a round short enough that the catch-up stops: about a millisecond of
/// copying and replay is then left to the switch.
const SHORT_ROUND_BYTES: usize = 128 * 1024;

/// Runs one compaction of the store `weak` points to (the caller holds the gate). The store
/// is held only to start and to switch: if it is dropped meanwhile, the compaction is given
/// up and its file removed.
fn compact(weak: &Weak<Shared>) -> Result<()> {
    let _timing = super::stats::CompactionTiming::start(weak);
    let gone = || Error::InvalidArgument("the store was closed during compaction".into());
    let (ticket, base) = {
        let shared = weak.upgrade().ok_or_else(gone)?;
        let w = shared.writer.lock();
        // Every transaction of the head is in the log (commits append under this lock).
        let ticket = shared.log.snapshot_start()?;
        (ticket, w.head.clone())
    };
    // Off the writer's path: the snapshotted state with its changes folded into new bases,
    // its image streamed to the file as the fold lays the rows out (block by block, never
    // whole in memory; one pass over the changes does both).
    let mut file = ticket.state_writer();
    let prepared = base
        .write_snapshot_folded(&mut |b| file.write(b))
        .and_then(|folded| Ok((folded, ticket.prepared(file)?)));
    drop(base);
    let Some(shared) = weak.upgrade() else {
        ticket.discard();
        return Err(gone());
    };
    let (folded, mut prepared) = match prepared {
        Ok(p) => p,
        Err(e) => {
            shared.log.snapshot_cancel(&ticket);
            return Err(e);
        }
    };
    // The folded state caught up with what was committed meanwhile, in rounds that also copy
    // those transactions into the new epoch's file and sync them there; each round takes what
    // the round before gave the writers time to commit, until one is short. The switch under
    // the writer lock then copies, syncs and applies only the last few.
    let mut next = Some(folded);
    for _ in 0..CATCH_UP_ROUNDS {
        let more = match shared.log.snapshot_copy(&ticket, &mut prepared) {
            Ok(more) => more,
            Err(e) => {
                shared.log.snapshot_cancel(&ticket);
                return Err(e);
            }
        };
        let indexes = shared.indexes.lock().clone();
        next = next.and_then(|s| apply_all(&indexes, s, &more).ok());
        if more.iter().map(Vec::len).sum::<usize>() <= SHORT_ROUND_BYTES {
            break;
        }
    }
    // What the switch's seal must make durable is mostly made so here, by a group-commit
    // sync the writers share: the seal's own sync, under the writer lock, then covers only
    // the last few commits.
    if let Err(e) = shared.log.sync() {
        shared.log.snapshot_cancel(&ticket);
        return Err(e);
    }
    let store = Store {
        shared: shared.clone(),
    };
    let mut w = shared.writer.lock();
    let (report, tail) = shared.log.snapshot_finish(ticket, prepared)?;
    let indexes = shared.indexes.lock();
    let next = next
        .and_then(|s| apply_all(&indexes, s, &tail).ok())
        .filter(|s| same_as(s, &w.head));
    drop(indexes);
    let next = match next {
        Some(mut s) => {
            s.view = w.head.view.clone();
            s
        }
        // The catch-up does not give the head (a table's indexes were built meanwhile, say):
        // the head itself, uncompacted.
        None => (*w.head).clone(),
    };
    let old = store.start_epoch_with(&mut w, next, report.epoch.id);
    // A success ends the wait a failed automatic compaction set.
    w.compact_after = 0;
    drop(w);
    // With a derived view: the new epoch's state is published with its view, off the lock.
    store.publish_views();
    // Freeing the replaced state (its bases and every change folded since: a tenth of a
    // compaction's time) goes to the reclaiming thread; deleting old segments takes time
    // too: neither under the lock.
    reclaim(old);
    let mut report = report;
    if let Err(e) = shared.log.retain() {
        report.retention_error = Some(e);
    }
    store.note_retention(&mut report);
    Ok(())
}

/// `state` with the logged transactions `txs` applied, unique indexes kept. A put its writer
/// marked as keeping its row's unique-index keys (FORMAT.md §12.1.1: the keys of every index
/// its table then had, which `state` has too, being the same log replayed on the same state)
/// leaves the indexes as they are: neither row is decoded, so the catch-up costs less per
/// change than the commits it follows and its rounds shrink.
fn apply_all(
    indexes: &[TableIndexes],
    mut state: State,
    txs: &[Vec<u8>],
) -> std::result::Result<State, String> {
    for bytes in txs {
        let (ops, hints) = decode_tx_hinted(bytes)?;
        let mut kept = hints.kept.iter().peekable();
        for (at, op) in ops.iter().enumerate() {
            if kept.next_if_eq(&&at).is_some() {
                state.apply(op)?;
            } else {
                apply_indexed(indexes, &mut state, op)?;
            }
        }
        state.seal();
        state.seq += 1;
    }
    Ok(state)
}

/// Whether `next` holds what `head` holds, by the counts a wrong catch-up would change.
fn same_as(next: &State, head: &State) -> bool {
    next.seq == head.seq
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
        })
}
