//! The epoch log writer: its state, appends with per-call durability and group commit,
//! snapshots that start new epochs, segment rotation, retention, and close (FORMAT.md
//! §11.5–11.7). Opening is in `open.rs`, rewind in `rewind.rs`, snapshots beside appends in
//! `concurrent.rs`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::sync::{Condvar, Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use super::checkpoints::{self, Checkpoint, CheckpointChange, CheckpointStatus, check_name};
use super::copy::{self, CopyReport};
use super::entry::{
    ContinueHead, SnapshotHead, encode_close, encode_continue, encode_seal, encode_update,
};
use super::intent;
use super::options::{Durability, Options, Position};
use super::parts::create_snapshot_file;
use super::read::{EpochInfo, Restored, SegmentDir, millis_to_time};
use super::steps::{next_id, record_newest, retire_below, start_segment, start_segment_with};
use crate::backend::{Backend, DirLock};
use crate::error::{Error, Result};
use crate::frame::LogWriter;

/// What a snapshot did.
#[derive(Debug)]
pub struct SnapshotReport {
    /// The epoch the snapshot started.
    pub epoch: EpochInfo,
    /// Segments deleted by retention.
    pub deleted: Vec<u64>,
    /// A failure while deleting old segments. The snapshot itself succeeded; retention is
    /// tried again after the next snapshot.
    pub retention_error: Option<Error>,
}

pub(super) struct Inner {
    pub(super) writer: LogWriter,
    pub(super) seq: u64,
    pub(super) epoch: u64,
    pub(super) epoch_segment: u64,
    pub(super) epoch_created_ms: u64,
    pub(super) snapshot_bytes: u64,
    pub(super) update_bytes: u64,
    pub(super) high_epoch: u64,
    pub(super) high_segment: u64,
    pub(super) durable: Position,
    pub(super) syncing: bool,
    /// Syncs started, and the end the newest covers.
    pub(super) sync_round: u64,
    pub(super) sync_reach: Position,
    pub(super) poisoned: Option<String>,
    pub(super) scratch: Vec<u8>,
    /// The active segment is sealed; the next write starts a new segment first (deferred so
    /// a store on a full disk still opens and reads).
    pub(super) needs_segment: bool,
    /// The segment number a snapshot under way (`snapshot_start`) will take: no other segment
    /// is started meanwhile (rotation waits), so the number stays free.
    pub(super) pending_snapshot: Option<u64>,
    /// The current epoch is a checkpoint's fixed state (a fall-back made it current): it takes
    /// no update until a snapshot starts a new epoch. Holds the checkpoint's name.
    pub(super) fixed_by: Option<String>,
    /// Where a CLOSE written as a durability mark after a sync starts, while it is the last
    /// entry (FORMAT.md §11.5): it needs no sync of its own, so [`Inner::end`] stops before it.
    pub(super) mark_from: Option<u64>,
}

impl Inner {
    pub(super) fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn poison(&mut self, e: &Error) {
        if self.poisoned.is_none() {
            crate::trace::trace_event!(error, "statelog: writes refused from now on: {e}");
            self.poisoned = Some(e.to_string());
        }
    }

    /// The end of what was appended and must be synced to be durable (a trailing durability
    /// mark left out).
    pub(super) fn end(&self) -> Position {
        Position {
            segment: self.seq,
            offset: self.mark_from.unwrap_or(self.writer.end()),
        }
    }

    /// Appends an entry to the active segment (a trailing durability mark is no longer last).
    pub(super) fn append_entry(&mut self, entry: &[u8]) -> Result<crate::frame::EntryPos> {
        self.mark_from = None;
        self.writer.append(entry)
    }
}

/// The writer of a store directory: a log of epochs, each a snapshot followed by updates.
/// Holds the directory's exclusive lock; all methods take `&self` and are safe to call from
/// many threads.
pub struct EpochLog {
    pub(super) dir: SegmentDir,
    pub(super) options: Options,
    pub(super) inner: Mutex<Inner>,
    /// Held while a retention deletes segments (taken after `inner`, never before): the
    /// deleting itself runs without `inner`, so commits do not wait for it (see
    /// [`retain`](Self::retain)), and retentions and rewinds do not overlap. A rewind or a
    /// snapshot's own retention that comes while another retention deletes waits for it
    /// holding `inner` (appends wait then too); the store's compactions and rewinds, one
    /// at a time behind its compaction gate, never do.
    pub(super) retiring: Mutex<()>,
    /// Waiters by sync round parity (see `wait_locked`).
    pub(super) synced: [Condvar; 2],
    pub(super) _lock: DirLock,
}

impl fmt::Debug for EpochLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochLog")
            .field("dir", &self.dir.path)
            .finish_non_exhaustive()
    }
}

impl EpochLog {
    pub(super) fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The I/O backend the log uses.
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.dir.backend
    }

    /// The current epoch's id.
    pub fn current_epoch(&self) -> u64 {
        self.lock_inner().epoch
    }

    /// Appends an update to the current epoch. With [`Durability::Strong`] it returns once the
    /// update is durable; concurrent strong appends share one fsync (group commit). Returns
    /// the position just past the update.
    pub fn append(&self, update: &[u8], durability: Durability) -> Result<Position> {
        let mut g = self.lock_inner();
        g.check()?;
        if let Some(name) = &g.fixed_by {
            return Err(Error::InvalidArgument(format!(
                "epoch {} is the fixed state of checkpoint {name} (a fall-back made it current); \
                 take a snapshot to start a new epoch before writing",
                g.epoch
            )));
        }
        if g.needs_segment {
            if let Err(e) = continue_segment(&self.dir, &self.options, &mut g) {
                g.poison(&e);
                return Err(e);
            }
        }
        let epoch = g.epoch;
        let mut scratch = std::mem::take(&mut g.scratch);
        encode_update(&mut scratch, epoch, update);
        let appended = g.append_entry(&scratch);
        g.scratch = scratch;
        let pos = match appended {
            Ok(pos) => pos,
            Err(e) => {
                if !matches!(e, Error::InvalidArgument(_)) {
                    g.poison(&e);
                }
                return Err(e);
            }
        };
        // Bytes on disk, as counted on open (segment sizes) and after a rewind.
        g.update_bytes += pos.end - pos.start;
        let end = g.end();
        // A snapshot under way has the next segment number: rotation waits for it.
        if g.writer.end() >= self.options.segment_bytes && g.pending_snapshot.is_none() {
            // The seal syncs the segment: never beside a group-commit sync of the same file.
            self.wait_idle(&mut g);
            g.check()?;
            if !g.needs_segment && g.writer.end() >= self.options.segment_bytes {
                self.seal_and_continue(&mut g)?;
            }
        }
        if durability == Durability::Buffered {
            return Ok(end);
        }
        self.wait_locked(g, end)?;
        Ok(end)
    }

    /// Makes everything appended so far durable; returns the durable position.
    pub fn sync(&self) -> Result<Position> {
        let g = self.lock_inner();
        g.check()?;
        let end = g.end();
        self.wait_locked(g, end)?;
        Ok(end)
    }

    /// Group-commit fsyncs (the ones strong appends wait for) since the log was opened.
    pub fn sync_count(&self) -> u64 {
        self.lock_inner().sync_round
    }

    /// The position up to which everything appended is durable.
    pub fn durable_position(&self) -> Position {
        self.lock_inner().durable
    }

    /// Waits until everything up to `pos` is durable, syncing if no other thread is.
    pub fn wait_durable(&self, pos: Position) -> Result<()> {
        let g = self.lock_inner();
        self.wait_locked(g, pos)
    }

    /// Waits until no group-commit sync runs, so the caller may sync the active segment
    /// itself: two fsyncs of one file never overlap (FORMAT.md "Group commit"). Linux reports a
    /// writeback error to one of two overlapping callers only, so the other would take its
    /// success for a durable write.
    pub(super) fn wait_idle(&self, g: &mut MutexGuard<'_, Inner>) {
        while g.syncing {
            let round = g.sync_round;
            self.synced[(round % 2) as usize].wait(g);
        }
    }

    /// Poisons the log after a failed sync (or write) of the active segment, and records
    /// durably how far the segment is certified: Linux may have marked the pages the failed
    /// sync covered clean without writing them, and reports that once, so a later open (this
    /// process or another, same boot) must not certify them with new sync marks. It cuts the
    /// segment there instead (FORMAT.md §11.13.1).
    pub(super) fn poison_after_sync(&self, g: &mut Inner, e: &Error) {
        let first = g.poisoned.is_none();
        g.poison(e);
        if first {
            let marked = intent::write(
                &*self.dir.backend,
                &self.dir.path,
                intent::SYNC_FAILED_FILE,
                intent::SYNC_FAILED_MAGIC,
                &[g.seq, g.writer.durable_end()],
            );
            if let Err(m) = marked {
                g.poisoned = Some(format!(
                    "{e}; recording the failed sync also failed ({m}): copy the store elsewhere \
                     before reopening it"
                ));
            }
        }
    }

    /// Syncs the active segment (no group-commit sync may be running); a failure is recorded
    /// as by [`poison_after_sync`](Self::poison_after_sync).
    fn sync_active(&self, g: &mut Inner) -> Result<()> {
        match g.writer.sync() {
            Ok(_) => Ok(()),
            Err(e) => {
                self.poison_after_sync(g, &e);
                Err(e)
            }
        }
    }

    /// After a sync that covered everything appended, appends a CLOSE (written, not synced)
    /// whose sync mark tells a reader in another process that the entries before it are
    /// durable: a follower delivers an update only once a later entry's sync mark covers it
    /// (FORMAT.md §11.5, §11.11). Nothing is written if the last entry already is one. A
    /// failed write of the mark is forgotten (the next append writes over it): the mark helps
    /// followers, and a full disk must not poison the log for it.
    pub(super) fn mark_durable(&self, g: &mut Inner) {
        if g.mark_from.is_some() || g.needs_segment || g.poisoned.is_some() {
            return;
        }
        let from = g.writer.end();
        if from != g.writer.durable_end() {
            return;
        }
        let mark = encode_close(g.epoch);
        if let Ok(pos) = g.writer.try_append_written(&mark) {
            g.mark_from = Some(from);
            // Bytes on disk, as an open counts them (segment sizes).
            g.update_bytes += pos.end - pos.start;
        }
    }

    /// Wakes every waiter (after anything that may change what they wait for).
    pub(super) fn wake_all(&self) {
        for c in &self.synced {
            c.notify_all();
        }
    }

    /// Group commit: one thread at a time syncs everything written so far while others wait;
    /// each waiter returns once the durable position covers its target. Waiters sleep on the
    /// condvar of the sync round that will cover them (the running one, or the next), so a
    /// finished sync wakes only the waiters it covered, and one waiter of the next round to
    /// start it.
    fn wait_locked<'a>(&'a self, mut g: MutexGuard<'a, Inner>, target: Position) -> Result<()> {
        loop {
            if g.durable >= target {
                return Ok(());
            }
            g.check()?;
            if g.syncing {
                let round = g.sync_round + u64::from(target > g.sync_reach);
                self.synced[(round % 2) as usize].wait(&mut g);
                continue;
            }
            let seq = g.seq;
            let (handle, upto) = match g.writer.begin_sync() {
                Ok(x) => x,
                Err(e) => {
                    g.poison(&e);
                    self.wake_all();
                    return Err(e);
                }
            };
            let reached = Position {
                segment: seq,
                offset: upto,
            };
            g.syncing = true;
            g.sync_round += 1;
            g.sync_reach = reached;
            let round = g.sync_round;
            let outcome = MutexGuard::unlocked(&mut g, || handle.sync_data());
            g.syncing = false;
            // Nothing else syncs this segment while `syncing` is set (`wait_idle`), so the
            // segment is still the active one.
            let result = if g.seq == seq {
                g.writer.finish_sync(upto, outcome).map(|_| ())
            } else {
                outcome.map_err(|e| Error::io(self.dir.seg(seq), e))
            };
            if let Err(e) = result {
                self.poison_after_sync(&mut g, &e);
                self.wake_all();
                return Err(e);
            }
            // Poisoned meanwhile (a failed write of a later entry): acknowledge nothing more.
            if let Err(e) = g.check() {
                self.wake_all();
                return Err(e);
            }
            g.durable = g.durable.max(reached);
            if g.seq == seq && g.writer.end() == upto {
                self.mark_durable(&mut g);
            }
            // The next round's leader first: it starts the next sync while the threads this
            // sync released are still waking (waking it last left the disk idle longer).
            self.synced[((round + 1) % 2) as usize].notify_one();
            self.synced[(round % 2) as usize].notify_all();
        }
    }

    /// Whether the current epoch takes no update until a snapshot starts a new one: a
    /// fall-back made a checkpoint's fixed epoch current.
    pub fn needs_snapshot(&self) -> bool {
        self.lock_inner().fixed_by.is_some()
    }

    /// Bytes of the current epoch's updates on disk (entry overhead included).
    pub fn update_bytes(&self) -> u64 {
        self.lock_inner().update_bytes
    }

    /// Whether the compaction policy says a snapshot is due.
    pub fn compaction_due(&self) -> bool {
        let g = self.lock_inner();
        let policy = self.options.compaction;
        g.update_bytes >= policy.min_update_bytes
            && g.update_bytes as f64 > policy.update_ratio * g.snapshot_bytes as f64
    }

    /// Whether the updates since the last snapshot are past `factor` times the size at which
    /// the compaction policy makes one due (compaction falls behind).
    pub fn compaction_behind(&self, factor: f64) -> bool {
        self.compaction_backlog() > factor
    }

    /// The updates since the last snapshot, as a multiple of the size at which the compaction
    /// policy makes one due (1.0: due now; past it while a compaction runs: it falls behind).
    pub fn compaction_backlog(&self) -> f64 {
        let g = self.lock_inner();
        let policy = self.options.compaction;
        let due_at =
            (policy.update_ratio * g.snapshot_bytes as f64).max(policy.min_update_bytes as f64);
        g.update_bytes as f64 / due_at.max(1.0)
    }

    /// Starts a new epoch from `state`, the whole state after every update appended so far
    /// (the caller must not append between producing `state` and this call). The snapshot is
    /// written to a temporary segment, synced and renamed into place; then segments of epochs
    /// the retention policy no longer keeps are deleted.
    pub fn snapshot(&self, state: &[u8]) -> Result<SnapshotReport> {
        self.snapshot_naming(state, None, false)
            .map(|(report, _)| report)
    }

    /// Like [`snapshot`](Self::snapshot), and names the epoch the snapshot ends (whose state
    /// is now fixed: `state`) as checkpoint `name`, with status pending, before retention
    /// runs. If a checkpoint of that name exists, it is returned unchanged and nothing is
    /// written.
    pub fn snapshot_as_checkpoint(
        &self,
        state: &[u8],
        name: &str,
    ) -> Result<(Option<SnapshotReport>, Checkpoint)> {
        check_name(name)?;
        if let Some(c) = self.checkpoints()?.into_iter().find(|c| c.name == name) {
            return Ok((None, c));
        }
        let (report, named) = self.snapshot_naming(state, Some(name), false)?;
        let named = named.ok_or_else(|| Error::CheckpointNotFound {
            name: name.to_string(),
        })?;
        Ok((Some(report), named))
    }

    /// Like [`snapshot_as_checkpoint`](Self::snapshot_as_checkpoint), but a checkpoint of
    /// that name is replaced (in the same write of the registry as the new one is added, so
    /// a crash leaves one or the other); an active one is refused before anything is
    /// written.
    pub fn snapshot_replacing_checkpoint(
        &self,
        state: &[u8],
        name: &str,
    ) -> Result<(SnapshotReport, Checkpoint)> {
        check_name(name)?;
        if let Some(c) = self.checkpoints()?.into_iter().find(|c| c.name == name)
            && c.status == CheckpointStatus::Active
        {
            return Err(Error::InvalidArgument(format!(
                "checkpoint {name} is active and cannot be replaced; activate another first"
            )));
        }
        self.snapshot_renaming(state, name)
    }

    /// [`snapshot_replacing_checkpoint`](Self::snapshot_replacing_checkpoint) without its
    /// check of the registry's status: the store checked the status its records give.
    pub(crate) fn snapshot_renaming(
        &self,
        state: &[u8],
        name: &str,
    ) -> Result<(SnapshotReport, Checkpoint)> {
        check_name(name)?;
        let (report, named) = self.snapshot_naming(state, Some(name), true)?;
        let named = named.ok_or_else(|| Error::CheckpointNotFound {
            name: name.to_string(),
        })?;
        Ok((report, named))
    }

    fn snapshot_naming(
        &self,
        state: &[u8],
        name: Option<&str>,
        replace: bool,
    ) -> Result<(SnapshotReport, Option<Checkpoint>)> {
        let mut g = self.lock_inner();
        self.wait_idle(&mut g);
        g.check()?;
        if g.pending_snapshot.is_some() {
            return Err(Error::InvalidArgument(
                "a snapshot is under way (snapshot_start); finish or cancel it first".into(),
            ));
        }
        let (ended, ended_segment) = (g.epoch, g.epoch_segment);
        let result = self.snapshot_locked(&mut g, state);
        if let Err(e) = &result {
            // Every I/O failure poisons the log, this one too (even when only the new
            // segment's temporary file failed: it is removed, and a reopen goes on).
            g.poison(e);
            self.wake_all();
        }
        let info = result?;
        // The snapshot is durable; naming the epoch it ended is one more durable step. If it
        // fails, the store goes on (nothing is named) and the error is returned.
        let named = match name {
            Some(name) => {
                let c = Checkpoint {
                    name: name.to_string(),
                    epoch: ended,
                    segment: ended_segment,
                    created: millis_to_time(self.options.clock.now_ms()),
                    status: CheckpointStatus::Pending,
                    payload: Vec::new(),
                };
                let mut list = checkpoints::read(&*self.dir.backend, &self.dir.path)?;
                if replace {
                    // Not the active one: checked before the snapshot (only this log's writer
                    // changes the registry).
                    list.retain(|old| old.name != name);
                }
                list.push(c.clone());
                checkpoints::write(&*self.dir.backend, &self.dir.path, &list)?;
                Some(c)
            }
            None => None,
        };
        let (deleted, retention_error) = match self.apply_retention(&g) {
            Ok(d) => (d, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let report = SnapshotReport {
            epoch: info,
            deleted,
            retention_error,
        };
        Ok((report, named))
    }

    /// Copies the directory up to `end`, a durable position this log returned (from
    /// [`sync`](Self::sync)), into `dest`, which must be absent or empty, while appends go
    /// on: the segments, the last one cut at `end`, and the checkpoints naming copied epochs,
    /// each file synced (FORMAT.md §11.12). A segment that retention deleted before the copy
    /// could open it is an `Io` error of kind `NotFound` (`dest` is left empty): take a newer
    /// position and try again.
    pub fn copy_through(&self, dest: &Path, end: Position) -> Result<CopyReport> {
        copy::prepare_dest(&*self.dir.backend, dest)?;
        copy::copy_through(&self.dir, dest, end)
    }

    /// The checkpoints, in the order they were saved.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let _g = self.lock_inner();
        checkpoints::read(&*self.dir.backend, &self.dir.path)
    }

    /// Names retained epoch `epoch`, which must have ended (not the current one), as
    /// checkpoint `name`, with status pending. If a checkpoint of that name exists it is
    /// returned unchanged when it names the same epoch, and is an error otherwise.
    pub fn name_epoch(&self, name: &str, epoch: u64) -> Result<Checkpoint> {
        check_name(name)?;
        let g = self.lock_inner();
        let mut list = checkpoints::read(&*self.dir.backend, &self.dir.path)?;
        if let Some(c) = list.iter().find(|c| c.name == name) {
            if c.epoch == epoch {
                return Ok(c.clone());
            }
            return Err(Error::InvalidArgument(format!(
                "checkpoint {name} already names epoch {}",
                c.epoch
            )));
        }
        if epoch == g.epoch {
            return Err(Error::InvalidArgument(format!(
                "epoch {epoch} is current and still changing; take a snapshot first"
            )));
        }
        let info = self
            .dir
            .epochs()?
            .into_iter()
            .find(|e| e.id == epoch)
            .ok_or(Error::EpochNotRetained { epoch })?;
        let c = Checkpoint {
            name: name.to_string(),
            epoch,
            segment: info.segment,
            created: millis_to_time(self.options.clock.now_ms()),
            status: CheckpointStatus::Pending,
            payload: Vec::new(),
        };
        list.push(c.clone());
        checkpoints::write(&*self.dir.backend, &self.dir.path, &list)?;
        Ok(c)
    }

    /// A reader of the registry for the store's write transactions.
    pub(crate) fn registry(&self) -> checkpoints::RegistryReader {
        checkpoints::RegistryReader::new(self.dir.backend.clone(), &self.dir.path)
    }

    /// Removes the checkpoints named `names` from the registry, durably, whatever their
    /// registry status (the store checked the status its records give).
    pub(crate) fn remove_checkpoints(&self, names: &[String]) -> Result<()> {
        let _g = self.lock_inner();
        let mut list = checkpoints::read(&*self.dir.backend, &self.dir.path)?;
        let before = list.len();
        list.retain(|c| !names.contains(&c.name));
        if list.len() != before {
            checkpoints::write(&*self.dir.backend, &self.dir.path, &list)?;
        }
        Ok(())
    }

    /// Changes the checkpoints as `change` says, durably; returns the checkpoints removed
    /// (their epochs become subject to retention again at the next snapshot). This changes the
    /// registry's statuses only: a store's checkpoint records take precedence over them
    /// (FORMAT.md §11.10), so a store's program uses [`Store::checkpoints`](crate::Store::checkpoints).
    pub fn change_checkpoints(&self, change: &CheckpointChange) -> Result<Vec<Checkpoint>> {
        let _g = self.lock_inner();
        let mut list = checkpoints::read(&*self.dir.backend, &self.dir.path)?;
        let removed = checkpoints::apply(&mut list, change)?;
        checkpoints::write(&*self.dir.backend, &self.dir.path, &list)?;
        Ok(removed)
    }

    fn snapshot_locked(&self, g: &mut Inner, state: &[u8]) -> Result<EpochInfo> {
        let epoch = next_id(g.high_epoch.max(g.epoch), "epoch ids")?;
        let seq = next_id(g.high_segment.max(g.seq), "segment numbers")?;
        self.seal(g)?;
        // Sealed: if what follows fails, the epoch continues in a new segment.
        g.needs_segment = true;
        let now = self.options.clock.now_ms();
        let head = SnapshotHead {
            epoch,
            prev: Some((g.epoch, g.epoch_segment)),
            created_ms: now,
            high_epoch: epoch,
            high_segment: seq,
            has_state: true,
        };
        let writer = start_segment_with(&self.dir, &self.options, seq, |tmp| {
            create_snapshot_file(&self.dir, &self.options, tmp, &head, state)
        })?;
        let size = writer.end();
        g.switch_to(writer, seq);
        record_newest(&self.dir, seq, 0);
        g.epoch = epoch;
        g.epoch_segment = seq;
        g.epoch_created_ms = now;
        g.high_epoch = epoch;
        g.snapshot_bytes = size;
        g.update_bytes = 0;
        self.wake_all();
        Ok(EpochInfo {
            id: epoch,
            created: millis_to_time(now),
            segment: seq,
            prev: head.prev.map(|p| p.0),
            size,
        })
    }

    /// Appends a seal to the active segment and syncs it.
    pub(super) fn seal(&self, g: &mut Inner) -> Result<()> {
        if g.needs_segment {
            return Ok(()); // already sealed
        }
        let epoch = g.epoch;
        // Sync first, so the seal's sync mark proves everything before it was durable. The
        // reserved space goes first: once the SEAL is there, readers may map the file, and
        // a mapped file must never shrink.
        self.sync_active(g)?;
        g.writer.trim()?;
        g.append_entry(&encode_seal(epoch))?;
        self.sync_active(g)?;
        g.durable = g.durable.max(g.end());
        Ok(())
    }

    fn seal_and_continue(&self, g: &mut Inner) -> Result<()> {
        let r = self.seal(g).and_then(|()| self.continue_in_new_segment(g));
        if let Err(e) = &r {
            g.poison(e);
            self.wake_all();
        }
        r
    }

    /// Starts a new segment of the current epoch (after the active one was sealed).
    fn continue_in_new_segment(&self, g: &mut Inner) -> Result<()> {
        continue_segment(&self.dir, &self.options, g)?;
        self.wake_all();
        Ok(())
    }

    /// Deletes the segments of epochs the retention policy no longer keeps, oldest first.
    pub(super) fn apply_retention(&self, g: &Inner) -> Result<Vec<u64>> {
        let _one = self.retiring.lock();
        let (doomed, boundary) = self.plan_retention(g)?;
        if !doomed.is_empty() {
            retire_below(&self.dir, boundary)?;
        }
        Ok(doomed)
    }

    /// The segments the retention policy no longer keeps, and the boundary below which they
    /// lie; when there are any, the intent to delete them is written (from then on every
    /// open, reader and verify reads them as deleted: FORMAT.md §11.13.3), for
    /// [`retire_below`] to delete them. The caller holds `retiring`.
    pub(super) fn plan_retention(&self, g: &Inner) -> Result<(Vec<u64>, u64)> {
        let epochs = self.dir.epochs()?;
        let now = self.options.clock.now_ms();
        let keep_n = self.options.retention.keep_epochs.max(1);
        let young = |e: &EpochInfo| match self.options.retention.keep_for {
            Some(d) => {
                let created = e.created.duration_since(UNIX_EPOCH).unwrap_or_default();
                u128::from(now).saturating_sub(created.as_millis()) < d.as_millis()
            }
            None => false,
        };
        let mut boundary = g.epoch_segment;
        // A named epoch is never deleted: everything from the oldest one on is kept (only a
        // prefix of the segments is ever deleted, so the chain stays whole).
        for c in checkpoints::read(&*self.dir.backend, &self.dir.path)? {
            boundary = boundary.min(c.segment);
        }
        for (i, e) in epochs.iter().enumerate() {
            if i < keep_n || young(e) {
                boundary = boundary.min(e.segment);
            } else {
                break;
            }
        }
        let doomed: Vec<u64> = self
            .dir
            .segments()?
            .into_iter()
            .take_while(|&s| s < boundary)
            .collect();
        if doomed.is_empty() {
            return Ok((doomed, boundary));
        }
        // The intent first: a deletion stopped half-way (a kill, an I/O error) leaves a
        // directory that every open, reader and verify reads as the finished deletion.
        let be = &*self.dir.backend;
        intent::write(
            be,
            &self.dir.path,
            intent::RETIRE_FILE,
            intent::RETIRE_MAGIC,
            &[boundary],
        )?;
        Ok((doomed, boundary))
    }

    /// The retained epochs, newest first.
    pub fn epochs(&self) -> Result<Vec<EpochInfo>> {
        let mut g = self.lock_inner();
        self.flush_for_reading(&mut g);
        self.dir.epochs()
    }

    /// Reads retained epoch `id` (its snapshot and updates) without changing anything.
    pub fn read_epoch(&self, id: u64) -> Result<Restored> {
        let mut g = self.lock_inner();
        self.flush_for_reading(&mut g);
        self.dir.read_epoch(id, Some(g.seq), self.options.recovery)
    }

    /// Writes buffered entries so readers of the files see them. Reads go on after a failure:
    /// it poisons the log (writes are refused) and the reader sees what reached the file.
    fn flush_for_reading(&self, g: &mut Inner) {
        if g.poisoned.is_none() {
            if let Err(e) = g.writer.flush() {
                g.poison(&e);
                self.wake_all();
            }
        }
    }

    /// Syncs everything and records a clean shutdown (appends go on afterwards if called).
    pub fn close(&self) -> Result<()> {
        let mut g = self.lock_inner();
        self.wait_idle(&mut g);
        g.check()?;
        if g.needs_segment {
            return Ok(()); // sealed and synced; nothing may follow the seal
        }
        let epoch = g.epoch;
        // Sync first, so the close entry's sync mark proves the last batch was durable; the
        // reserved space is given back, so a closed store's files end at their data. If the
        // last entry already is a CLOSE (a durability mark, or an earlier close) with nothing
        // after it, that one is made durable instead of appending another.
        let r = if g.mark_from.is_some() {
            self.sync_active(&mut g)
                .and_then(|()| g.writer.trim())
                .and_then(|()| self.sync_active(&mut g))
        } else {
            self.sync_active(&mut g)
                .and_then(|()| g.writer.trim())
                .and_then(|()| {
                    let before = g.writer.end();
                    g.append_entry(&encode_close(epoch))?;
                    g.mark_from = Some(before);
                    Ok(())
                })
                .and_then(|()| self.sync_active(&mut g))
        };
        if r.is_ok() {
            // The clean close's length: a later cut of the file, even at an entry boundary,
            // is then damage, not a crash (FORMAT.md §11.13.4).
            record_newest(&self.dir, g.seq, g.writer.end());
        }
        if let Err(e) = &r {
            g.poison(e);
            self.wake_all();
        }
        r
    }
}

impl Inner {
    pub(super) fn switch_to(&mut self, writer: LogWriter, seq: u64) {
        self.durable = Position {
            segment: seq,
            offset: writer.durable_end(),
        };
        self.writer = writer;
        self.seq = seq;
        self.high_segment = self.high_segment.max(seq);
        self.needs_segment = false;
        self.fixed_by = None;
        self.mark_from = None;
    }
}

/// Starts a new segment of the current epoch after the active one was sealed.
pub(super) fn continue_segment(dir: &SegmentDir, options: &Options, g: &mut Inner) -> Result<()> {
    let seq = next_id(g.high_segment.max(g.seq), "segment numbers")?;
    let head = ContinueHead {
        epoch: g.epoch,
        epoch_segment: g.epoch_segment,
        prev_segment: g.seq,
        created_ms: options.clock.now_ms(),
        high_epoch: g.high_epoch.max(g.epoch),
        high_segment: seq,
    };
    let writer = start_segment(dir, options, seq, &encode_continue(&head))?;
    g.switch_to(writer, seq);
    record_newest(dir, seq, 0);
    Ok(())
}
