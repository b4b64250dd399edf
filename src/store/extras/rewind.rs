//! A rewind of a store in use: a retained epoch made current again, with readers moved to it
//! at once (FORMAT.md §11.8).

use std::sync::Arc;

use crate::epoch::Durability;
use crate::error::{Error, Result};
use crate::store::engine::{CommitPos, Op, Store, replay};

impl Store {
    /// Makes retained epoch `epoch` current again, on the store in use: its state (as it was
    /// when the epoch ended) becomes the store's, and readers move to it at once. The later
    /// epochs are set aside as `.rewound` files, as `statelog rewind` does, and with the same
    /// crash safety: the rewind is one durable intent that the next open finishes if a crash
    /// interrupts it. Snapshots taken before stay as they were; subscribers are told
    /// [`Changes::Reset`](crate::Changes::Reset), and followers reload. Id sequences do not go
    /// back: a transaction after the rewind raises each to its value before it. Rewinding to
    /// the current epoch changes nothing. Refused, with nothing changed, for an epoch that is
    /// not retained ([`EpochNotRetained`](Error::EpochNotRetained)) and for a rewind that would cut or
    /// continue a checkpoint's epoch ([`RewindRefused`](Error::RewindRefused): restore
    /// the checkpoint instead). Returns the position of the new state.
    ///
    /// ```
    /// use statelog::{Readable, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreOptions::default().keep_epochs(4))?;
    /// let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"old"))?;
    /// let old_epoch = store.read().position().epoch;
    /// store.compact()?; // a new epoch
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"new"))?;
    /// store.rewind_to(old_epoch)?;
    /// assert_eq!(store.read().get_bytes(&b, b"k")?.as_deref(), Some(&b"old"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn rewind_to(&self, epoch: u64) -> Result<CommitPos> {
        let s = &self.shared;
        let _gate = s.compaction.acquire();
        let _publish = self.publishing();
        let mut w = s.writer.lock();
        self.sync_locked(&mut w)?;
        if epoch == w.head.epoch {
            return Ok(CommitPos {
                epoch,
                seq: w.head.seq,
            });
        }
        // The state is read and checked before anything changes, so that once the log is
        // rewound nothing is left to fail.
        let dir = s.log.dir();
        let (mut state, lost) = replay(dir, s.log.read_epoch(epoch)?)?;
        if let Some(l) = lost.first() {
            return Err(Error::corrupt(&l.file, l.from, l.kind));
        }
        state.fold_large_deltas();
        for ix in s.indexes.lock().iter() {
            ix.rebuild(&mut state)?;
        }
        // Id sequences never go back: the tables still there keep their highest value.
        let raise: Vec<Op> = w
            .head
            .tables
            .iter()
            .filter_map(|(id, now)| {
                let t = state.tables.get(id)?;
                (t.meta.name == now.meta.name && now.next_id > t.next_id).then_some(Op::Sequence {
                    table: *id,
                    next: now.next_id,
                })
            })
            .collect();
        s.log.truncate_to(epoch)?;
        state.seal();
        state.generation = w.head.generation + 1;
        let state = Arc::new(state);
        w.head = state.clone();
        self.publish(&mut w, state);
        w.feed.reset();
        w.undelivered.clear();
        if !raise.is_empty() {
            let mut work = (*w.head).clone();
            for op in &raise {
                work.apply(op).map_err(Error::InvalidArgument)?;
            }
            let pos = self.commit_locked(&mut w, work, &raise, Durability::Strong)?;
            drop(w);
            s.log.wait_durable(pos)?;
            w = s.writer.lock();
            self.publish_ready(&mut w);
        }
        Ok(CommitPos {
            epoch: w.head.epoch,
            seq: w.head.seq,
        })
    }
}
