//! Snapshots that do not stop appends (FORMAT.md §11.6.1). The caller takes a ticket at the
//! state it snapshots, writes the snapshot while appends go on, and the switch to the new
//! epoch copies the updates appended meanwhile after the snapshot: its cost is proportional to
//! those updates, never to the state.

use std::path::PathBuf;

use super::dir::{TMP_SUFFIX, with_suffix};
use super::entry::{Decoded, SnapshotHead, decode, encode_update};
use super::log::{EpochLog, Inner, SnapshotReport, continue_segment};
use super::options::{Options, Position};
use super::parts::StateWriter;
use super::read::{EpochInfo, SegmentDir, millis_to_time};
use super::steps::{io_at, next_id, record_newest, remove_quietly, retire_below};
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{LogReader, LogWriter, random_file_id};

/// A snapshot under way, from [`EpochLog::snapshot_start`]: the new epoch's id and segment
/// number (kept free until it finishes or is cancelled), and where the log ended when the
/// snapshotted state was current.
pub struct SnapshotTicket {
    epoch: u64,
    segment: u64,
    prev: (u64, u64),
    from: Position,
    created_ms: u64,
    tmp: PathBuf,
    dir: SegmentDir,
    options: Options,
}

impl std::fmt::Debug for SnapshotTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTicket")
            .field("epoch", &self.epoch)
            .field("segment", &self.segment)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SnapshotTicket {
    /// The epoch the snapshot will start.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Writes `state` (the state of the ticket) as the new epoch's SNAPSHOT under a
    /// temporary name and syncs it. It needs no access to the log, which appends meanwhile.
    /// On failure the file is removed; cancel the ticket
    /// ([`EpochLog::snapshot_cancel`]). The log is not poisoned: nothing it certifies was
    /// touched.
    pub fn prepare(&self, state: &[u8]) -> Result<PreparedSnapshot> {
        let mut w = self.state_writer();
        w.write(state)?;
        self.prepared(w)
    }

    /// A writer of the new epoch's state given in pieces, as it is produced (so the whole
    /// state is never held): [`prepared`](Self::prepared) ends it. A state over
    /// [`PART_BYTES`](super::PART_BYTES) goes into parts (FORMAT.md §11.2).
    pub fn state_writer(&self) -> StateWriter {
        let head = SnapshotHead {
            epoch: self.epoch,
            prev: Some(self.prev),
            created_ms: self.created_ms,
            high_epoch: self.epoch,
            high_segment: self.segment,
            has_state: true,
        };
        StateWriter::new(&self.dir, &self.options, &self.tmp, head)
    }

    /// Ends the state `w` wrote and syncs its file, as [`prepare`](Self::prepare) does.
    pub fn prepared(&self, w: StateWriter) -> Result<PreparedSnapshot> {
        let writer = w.finish()?;
        Ok(PreparedSnapshot {
            snapshot_end: writer.end(),
            writer,
            copied_to: self.from.offset,
        })
    }

    /// Removes the temporary file (when the log it was for is gone).
    pub fn discard(&self) {
        remove_quietly(&self.dir, &self.tmp);
    }
}

/// A snapshot written and synced under a temporary name, from [`SnapshotTicket::prepare`];
/// [`EpochLog::snapshot_finish`] makes it the new epoch.
#[derive(Debug)]
pub struct PreparedSnapshot {
    writer: LogWriter,
    snapshot_end: u64,
    /// Where in the active segment the updates copied after the SNAPSHOT so far end (see
    /// [`EpochLog::snapshot_copy`]): at first the ticket's position.
    copied_to: u64,
}

impl EpochLog {
    /// Starts a snapshot of the state as it is after every update appended so far (the caller
    /// must hold that state: no append may come between producing it and this call). Appends
    /// go on meanwhile; only one snapshot is under way at a time (`InvalidArgument`
    /// otherwise), and segment rotation waits for it.
    pub fn snapshot_start(&self) -> Result<SnapshotTicket> {
        let mut g = self.lock_inner();
        g.check()?;
        if g.pending_snapshot.is_some() {
            return Err(Error::InvalidArgument(
                "a snapshot is under way; finish or cancel it first".into(),
            ));
        }
        if g.needs_segment {
            // Sealed: the updates appended meanwhile need a segment, and it must not take
            // the number the snapshot reserves.
            if let Err(e) = continue_segment(&self.dir, &self.options, &mut g) {
                g.poison(&e);
                return Err(e);
            }
        }
        let epoch = next_id(g.high_epoch.max(g.epoch), "epoch ids")?;
        let segment = next_id(g.high_segment.max(g.seq), "segment numbers")?;
        g.pending_snapshot = Some(segment);
        let name = format!("{:016x}{TMP_SUFFIX}", random_file_id());
        let tmp = with_suffix(&self.dir.seg(segment), &format!(".{name}"));
        Ok(SnapshotTicket {
            epoch,
            segment,
            prev: (g.epoch, g.epoch_segment),
            from: g.end(),
            created_ms: self.options.clock.now_ms(),
            tmp,
            dir: self.dir.clone(),
            options: self.options.clone(),
        })
    }

    /// Makes a prepared snapshot the new epoch: copies the updates appended since the ticket
    /// (or since the last [`snapshot_copy`](Self::snapshot_copy)) after the SNAPSHOT, syncs, seals the active segment, and renames the file into place
    /// (FORMAT.md §11.6.1). Retention is left to the caller ([`retain`](Self::retain)), so
    /// that it can run it without holding its own locks. Returns what the snapshot did and the
    /// updates it copied (the caller applies them, after those of the copy rounds, to the
    /// snapshotted state to get the current one). A rewind since the ticket gives the snapshot up (`InvalidArgument`).
    pub fn snapshot_finish(
        &self,
        ticket: SnapshotTicket,
        prepared: PreparedSnapshot,
    ) -> Result<(SnapshotReport, Vec<Vec<u8>>)> {
        let PreparedSnapshot {
            mut writer,
            snapshot_end,
            copied_to,
        } = prepared;
        let mut g = self.lock_inner();
        self.wait_idle(&mut g);
        let current = g.pending_snapshot == Some(ticket.segment)
            && (g.epoch, g.epoch_segment) == ticket.prev
            && g.seq == ticket.from.segment;
        if !current {
            if g.pending_snapshot == Some(ticket.segment) {
                g.pending_snapshot = None;
            }
            remove_quietly(&self.dir, &ticket.tmp);
            return Err(Error::InvalidArgument(
                "the snapshot was given up: the log was rewound while it was written".into(),
            ));
        }
        let copied = self.switch(&mut g, &ticket, &mut writer, copied_to);
        let tail = match copied {
            Ok(tail) => tail,
            Err(e) => {
                g.pending_snapshot = None;
                remove_quietly(&self.dir, &ticket.tmp);
                self.wake_all();
                return Err(e);
            }
        };
        let size = writer.end();
        g.switch_to(writer, ticket.segment);
        record_newest(&self.dir, ticket.segment, 0);
        g.epoch = ticket.epoch;
        g.epoch_segment = ticket.segment;
        g.epoch_created_ms = ticket.created_ms;
        g.high_epoch = ticket.epoch;
        g.snapshot_bytes = snapshot_end;
        g.update_bytes = size.saturating_sub(snapshot_end);
        g.pending_snapshot = None;
        if !tail.is_empty() {
            // The copied updates are durable (the file was synced before its rename), but no
            // entry after them says so to a follower in another process.
            self.mark_durable(&mut g);
        }
        self.wake_all();
        drop(g);
        let report = SnapshotReport {
            epoch: EpochInfo {
                id: ticket.epoch,
                created: millis_to_time(ticket.created_ms),
                segment: ticket.segment,
                prev: Some(ticket.prev.0),
                size,
            },
            deleted: Vec::new(),
            retention_error: None,
        };
        Ok((report, tail))
    }

    /// A copy round before the switch: the updates appended since the ticket (or since the
    /// last round), as far as they are written now, appended to the prepared snapshot's file
    /// after its SNAPSHOT and synced there, without holding the log (FORMAT.md §11.6.1). The
    /// switch then copies and syncs only what came after the last round. Returns the updates
    /// copied, in order, for the caller to catch its snapshotted state up with. A log that
    /// moved on (a rewind) copies nothing: the switch gives the snapshot up.
    pub fn snapshot_copy(
        &self,
        ticket: &SnapshotTicket,
        prepared: &mut PreparedSnapshot,
    ) -> Result<Vec<Vec<u8>>> {
        let (handle, path, epoch, end) = {
            let mut g = self.lock_inner();
            g.check()?;
            if g.pending_snapshot != Some(ticket.segment) || g.seq != ticket.from.segment {
                return Ok(Vec::new());
            }
            if let Err(e) = g.writer.flush() {
                g.poison(&e);
                return Err(e);
            }
            (
                g.writer.handle(),
                self.dir.seg(g.seq),
                g.epoch,
                g.writer.end(),
            )
        };
        let more = read_updates(handle, &path, epoch, prepared.copied_to, end)?;
        append_updates(&mut prepared.writer, ticket.epoch, &more)?;
        prepared.writer.sync()?;
        prepared.copied_to = end;
        Ok(more)
    }

    /// Deletes the segments of epochs the retention policy no longer keeps (as after a
    /// snapshot); returns their numbers. Which ones, and the intent to delete them, are
    /// decided under the log's lock; the files are deleted after it is released (the
    /// listings already read them as gone), so commits do not wait for the deleting: it
    /// took 100-230 ms of a commit's time after each compaction of a 1,000,000-row state.
    pub fn retain(&self) -> Result<Vec<u64>> {
        let g = self.lock_inner();
        let one = self.retiring.lock();
        let (doomed, boundary) = self.plan_retention(&g)?;
        drop(g);
        if !doomed.is_empty() {
            retire_below(&self.dir, boundary)?;
        }
        drop(one);
        Ok(doomed)
    }

    /// Gives up a snapshot under way: its file is removed and rotation goes on.
    pub fn snapshot_cancel(&self, ticket: &SnapshotTicket) {
        let mut g = self.lock_inner();
        if g.pending_snapshot == Some(ticket.segment) {
            g.pending_snapshot = None;
        }
        drop(g);
        remove_quietly(&self.dir, &ticket.tmp);
    }

    /// The switch's steps under the log: copy the updates since the ticket into the new
    /// segment and sync it, seal the active segment, rename the new one into place. A failure
    /// in the new segment's file leaves the log as it was; one in the active segment (the
    /// seal) poisons it.
    fn switch(
        &self,
        g: &mut Inner,
        ticket: &SnapshotTicket,
        writer: &mut LogWriter,
        copied_to: u64,
    ) -> Result<Vec<Vec<u8>>> {
        g.check()?;
        if let Err(e) = g.writer.flush() {
            g.poison(&e);
            return Err(e);
        }
        let active = self.dir.seg(g.seq);
        let end = g.writer.end();
        let tail = read_updates(g.writer.handle(), &active, g.epoch, copied_to, end)?;
        append_updates(writer, ticket.epoch, &tail)?;
        writer.sync()?;
        if let Err(e) = self.seal(g) {
            g.poison(&e);
            return Err(e);
        }
        g.needs_segment = true;
        let path = self.dir.seg(ticket.segment);
        if let Err(e) = self.dir.backend.rename(&ticket.tmp, &path) {
            let e = io_at(&ticket.tmp)(e);
            g.poison(&e);
            return Err(e);
        }
        writer.set_path(&path);
        writer.set_reserve_step(self.options.reserve_bytes);
        Ok(tail)
    }
}

/// Appends `updates` to `writer` as UPDATE entries of `epoch`.
fn append_updates(writer: &mut LogWriter, epoch: u64, updates: &[Vec<u8>]) -> Result<()> {
    let mut scratch = Vec::new();
    for data in updates {
        encode_update(&mut scratch, epoch, data);
        writer.append(&scratch)?;
    }
    Ok(())
}

/// The data of the UPDATE entries of `epoch` in `path` from `from` to `end` (CLOSE entries
/// skipped).
fn read_updates(
    handle: std::sync::Arc<dyn crate::backend::FileHandle>,
    path: &std::path::Path,
    epoch: u64,
    from: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>> {
    let mut r = LogReader::new(handle, path)?;
    r.seek(from);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        if e.pos.end > end {
            break;
        }
        match decode(e.payload) {
            Ok(Decoded::Update { epoch: found, data }) if found == epoch => {
                out.push(data.to_vec());
            }
            Ok(Decoded::Close { .. }) => {}
            _ => return Err(Error::corrupt(path, e.pos.start, CorruptKind::BrokenChain)),
        }
    }
    Ok(out)
}
