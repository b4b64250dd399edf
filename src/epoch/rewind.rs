//! Rewind of a live log (FORMAT.md §11.8): a retained epoch made current again, crash-safe
//! through the `REWIND` intent.

use super::checkpoints;
use super::log::EpochLog;
use super::read::Restored;
use super::steps::{RewindIntent, finish_rewind};
use crate::error::{Error, Result};

impl EpochLog {
    /// Makes retained epoch `id` current again: the segments of the later epochs are renamed
    /// aside (suffix `.rewound`) and the epoch continues in a new segment. Returns the epoch's
    /// state, which the caller must load in place of its current one. Crash-safe: an intent
    /// file is made durable first and an interrupted rewind is finished on the next open.
    pub fn truncate_to(&self, id: u64) -> Result<Restored> {
        let mut g = self.lock_inner();
        // Not beside a retention's deleting.
        let _one = self.retiring.lock();
        self.wait_idle(&mut g);
        g.check()?;
        // A snapshot under way described the history a rewind cuts: it is given up.
        g.pending_snapshot = None;
        g.writer.flush()?;
        if id == g.epoch {
            return self.dir.read_epoch(id, Some(g.seq), self.options.recovery);
        }
        let epochs = self.dir.epochs()?;
        let Some(i) = epochs.iter().position(|e| e.id == id) else {
            return Err(Error::EpochNotRetained { epoch: id });
        };
        let cut_from = i
            .checked_sub(1)
            .and_then(|j| epochs.get(j))
            .map(|e| e.segment)
            .ok_or(Error::EpochNotRetained { epoch: id })?;
        // A checkpoint's state is fixed: its epoch may neither be cut nor continued.
        let named: Vec<String> = checkpoints::read(&*self.dir.backend, &self.dir.path)?
            .into_iter()
            .filter(|c| c.segment >= cut_from || c.epoch == id)
            .map(|c| c.name)
            .collect();
        if !named.is_empty() {
            return Err(Error::RewindRefused {
                epoch: id,
                checkpoints: named,
            });
        }
        let intent = RewindIntent {
            epoch: id,
            cut_from,
            high_epoch: g.high_epoch.max(g.epoch),
            high_segment: g.high_segment.max(g.seq),
        };
        let result = intent
            .write(&self.dir)
            .and_then(|()| finish_rewind(&self.dir, &self.options, &intent));
        let (writer, seq, epoch_segment, created) = match result {
            Ok(x) => x,
            Err(e) => {
                g.poison(&e);
                return Err(e);
            }
        };
        g.switch_to(writer, seq);
        g.epoch = id;
        g.epoch_segment = epoch_segment;
        g.epoch_created_ms = created;
        g.high_epoch = intent.high_epoch;
        self.wake_all();
        let restored = match self.dir.read_epoch(id, Some(seq), self.options.recovery) {
            Ok(r) => r,
            Err(e) => {
                // The rewind happened but its state cannot be handed back: force a reopen.
                g.poison(&e);
                return Err(e);
            }
        };
        g.snapshot_bytes = self.dir.read_start(epoch_segment, true)?.pos.end;
        g.update_bytes = restored.epoch.size.saturating_sub(g.snapshot_bytes);
        Ok(restored)
    }
}
