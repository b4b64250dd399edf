//! Opening a store directory for writing (FORMAT.md §11.4, §11.13): temporary files are
//! removed, interrupted retentions, rewinds and fall-backs finished, the manifest checked, the
//! newest epoch restored (falling back past damage when allowed) and its newest segment
//! reopened for appends.

use std::path::Path;
use std::sync::Arc;

use crate::sync::{Condvar, Mutex};

use super::checkpoints;
use super::dir::{REWIND_FILE, TMP_SUFFIX};
use super::entry::{Decoded, SnapshotHead, decode, encode_snapshot};
use super::intent;
use super::log::{EpochLog, Inner};
use super::options::{Options, Position};
use super::read::{
    EpochInfo, RecoveryMode, RecoveryReport, Restored, SegmentDir, Updates, last_short_entry,
    millis_to_time,
};
use super::steps::{
    RewindIntent, any_set_aside, check_manifest, damaged_epoch_segments, finish_rewind,
    highest_segment_name, io_at, read_manifest, record_newest, retire_below, set_aside,
    start_segment,
};
use crate::backend::{Backend, DirLock, LockMode};
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{LogReader, LogWriter, TailPolicy};

impl EpochLog {
    /// Opens (or creates) the store directory `dir` for writing and restores its newest
    /// epoch: the snapshot and an iterator over the epoch's updates.
    pub fn open(
        backend: Arc<dyn Backend>,
        dir: &Path,
        options: Options,
    ) -> Result<(Self, Restored)> {
        backend.create_dir_all(dir).map_err(io_at(dir))?;
        let lock = backend.lock(dir, LockMode::Exclusive)?;
        let segs = SegmentDir {
            backend: backend.clone(),
            path: dir.to_path_buf(),
        };
        let mut report = RecoveryReport::default();
        for name in backend.list(dir).map_err(io_at(dir))? {
            if name.ends_with(TMP_SUFFIX) {
                let p = dir.join(&name);
                backend.remove(&p).map_err(io_at(&p))?;
                report.removed_temporary.push(p);
            }
        }
        let below = segs.retired_below()?;
        if below > 0 {
            retire_below(&segs, below)?;
        }
        let rewind = dir.join(REWIND_FILE);
        if backend.exists(&rewind).map_err(io_at(&rewind))? {
            let intent = RewindIntent::read(&*backend, &rewind)?;
            finish_rewind(&segs, &options, &intent)?;
        }
        let mut given_up = 0u64;
        let fallback = intent::read(
            &*backend,
            dir,
            intent::FALLBACK_FILE,
            intent::FALLBACK_MAGIC,
            2,
        )?;
        if let Some(&[from, to]) = fallback.as_deref() {
            let cause = "an interrupted fall-back was finished".to_string();
            report.fell_back.push(set_aside(&segs, from, to, cause)?);
            given_up = given_up.saturating_add(to.saturating_sub(from).saturating_add(1));
            intent::remove(&*backend, dir, intent::FALLBACK_FILE)?;
        }
        // A segment the manifest names that is gone under every name was deleted or lost:
        // damage, never a silently shorter history. Salvage goes on without it and records
        // what is there now (FORMAT.md §11.13.4).
        match check_manifest(&segs) {
            Err(e @ Error::Corrupt { .. }) if options.recovery != RecoveryMode::Salvage => {
                return Err(e);
            }
            Err(Error::Corrupt { .. }) => {
                intent::remove(&*backend, dir, intent::MANIFEST_FILE)?;
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let mut seqs = segs.segments()?;
        if seqs.is_empty() && any_set_aside(&*backend, dir)? {
            // Segments were set aside (`.broken`, `.rewound`) and none is left: never start an
            // empty store over them silently.
            return Err(Error::corrupt(dir, 0, CorruptKind::BrokenChain));
        }
        if seqs.is_empty() {
            let now = options.clock.now_ms();
            let head = SnapshotHead {
                epoch: 0,
                prev: None,
                created_ms: now,
                high_epoch: 0,
                high_segment: 1,
                has_state: false,
            };
            let writer = start_segment(&segs, &options, 1, &encode_snapshot(&head, None))?;
            record_newest(&segs, 1, 0);
            let first_end = writer.end();
            let inner = Inner::fresh(writer, 1, head, 0);
            let log = EpochLog::assemble(segs.clone(), options, inner, lock);
            let restored = Restored {
                epoch: EpochInfo {
                    id: 0,
                    created: millis_to_time(now),
                    segment: 1,
                    prev: None,
                    size: first_end,
                },
                snapshot: None,
                updates: Updates::empty(0),
                report,
            };
            return Ok((log, restored));
        }
        let mut current = loop {
            match segs.current(&seqs) {
                Ok(c) => break c,
                Err(e @ Error::Corrupt { .. }) if options.fall_back && seqs.len() > 1 => {
                    let give_up = damaged_epoch_segments(&segs, &seqs);
                    if give_up.is_empty() || give_up.len() >= seqs.len() {
                        // Nothing older to fall back to: refuse rather than empty the store.
                        return Err(e);
                    }
                    given_up += give_up.len() as u64;
                    let (from, to) = (give_up[0], give_up[give_up.len() - 1]);
                    // The intent first: a fall-back stopped between two renames is finished
                    // by the next open (FORMAT.md §11.13.2).
                    intent::write(
                        &*backend,
                        dir,
                        intent::FALLBACK_FILE,
                        intent::FALLBACK_MAGIC,
                        &[from, to],
                    )?;
                    let fell = set_aside(&segs, from, to, e.to_string())?;
                    intent::remove(&*backend, dir, intent::FALLBACK_FILE)?;
                    seqs.retain(|&s| s < from || s > to);
                    report.fell_back.push(fell);
                }
                Err(e) => return Err(e),
            }
        };
        let policy = match options.recovery {
            RecoveryMode::Strict => TailPolicy::Strict,
            RecoveryMode::TolerateTornTail => TailPolicy::TolerateTorn,
            RecoveryMode::Salvage => TailPolicy::CutAll,
        };
        let newest_path = segs.seg(current.newest);
        // A failed sync recorded which bytes of the newest segment are certified: nothing
        // after them may be certified again (FORMAT.md §11.13.1).
        let sync_failed = intent::read(
            &*backend,
            dir,
            intent::SYNC_FAILED_FILE,
            intent::SYNC_FAILED_MAGIC,
            2,
        )?;
        let certified = match sync_failed.as_deref() {
            Some(&[seg, end]) if seg == current.newest => Some(end),
            _ => None,
        };
        let (mut writer, cut) =
            LogWriter::open_certified(&*backend, &newest_path, policy, certified)?;
        if sync_failed.is_some() {
            intent::remove(&*backend, dir, intent::SYNC_FAILED_FILE)?;
        }
        writer.set_write_buffer(options.write_buffer);
        writer.set_reserve_step(options.reserve_bytes);
        report.torn_tail = cut;
        let (high_epoch, high_segment) = current.newest_head.high_marks();
        // Segments given up by a fallback may have started epochs (at most one each) and used
        // numbers: skip past them so no id or number is ever reused.
        let high_epoch = high_epoch.saturating_add(given_up);
        let high_segment = high_segment.max(highest_segment_name(&*backend, dir)?);
        let head = current.head;
        let epoch_size = segs.size_of(&current.segments)?;
        let snapshot_bytes = current.snapshot.pos.end;
        let update_bytes = epoch_size.saturating_sub(current.snapshot.pos.end);
        let mut inner = Inner {
            durable: Position {
                segment: current.newest,
                offset: writer.durable_end(),
            },
            writer,
            seq: current.newest,
            epoch: head.epoch,
            epoch_segment: current.snap_segment,
            epoch_created_ms: head.created_ms,
            snapshot_bytes,
            update_bytes,
            high_epoch: high_epoch.max(head.epoch),
            high_segment: high_segment.max(current.newest),
            syncing: false,
            sync_round: 0,
            sync_reach: Position::default(),
            poisoned: None,
            scratch: Vec::new(),
            needs_segment: false,
            pending_snapshot: None,
            fixed_by: None,
            mark_from: None,
        };
        // A sealed newest segment (a crash during a snapshot or rotation) is never appended
        // to: the epoch continues in a new segment, made by the first write.
        if read_manifest(&segs)?.is_none_or(|m| m.newest < current.newest) {
            record_newest(&segs, current.newest, 0);
        }
        let last = last_entry(&inner.writer, &newest_path)?;
        let sealed = last
            .as_deref()
            .is_some_and(|b| matches!(decode(b), Ok(Decoded::Seal { .. })));
        inner.needs_segment = sealed;
        // Updates that no later entry certifies (the last batch before a crash, synced by the
        // open): a durability mark lets followers in other processes deliver them.
        let uncertified = last
            .as_deref()
            .is_some_and(|b| matches!(decode(b), Ok(Decoded::Update { .. })))
            || last.is_none()
                && (current.newest != current.snap_segment || inner.writer.end() > snapshot_bytes);
        if !report.fell_back.is_empty() {
            // A fall-back may land on an epoch a checkpoint names: its state is fixed, so it
            // is never continued (the store snapshots it into a new epoch on open).
            inner.fixed_by = checkpoints::read(&*backend, dir)?
                .into_iter()
                .find(|c| c.epoch == head.epoch)
                .map(|c| c.name);
        }
        let updates = Updates::new(
            segs.clone(),
            head.epoch,
            current.segments.clone(),
            current.snapshot.pos.end,
            sealed,
            options.recovery,
        );
        let restored = Restored {
            epoch: EpochInfo {
                id: head.epoch,
                created: millis_to_time(head.created_ms),
                segment: current.snap_segment,
                prev: head.prev.map(|p| p.0),
                size: epoch_size,
            },
            snapshot: current.snapshot.state.take(),
            updates,
            report,
        };
        let log = EpochLog::assemble(segs, options, inner, lock);
        if uncertified {
            let mut g = log.lock_inner();
            log.mark_durable(&mut g);
        }
        Ok((log, restored))
    }

    /// The log over an opened directory, holding its exclusive lock.
    fn assemble(dir: SegmentDir, options: Options, inner: Inner, lock: DirLock) -> Self {
        EpochLog {
            dir,
            options,
            inner: Mutex::new(inner),
            retiring: Mutex::new(()),
            synced: [Condvar::new(), Condvar::new()],
            _lock: lock,
        }
    }
}

impl Inner {
    /// The state of a log whose active segment `seq` holds only the snapshot starting
    /// epoch `head`.
    fn fresh(writer: LogWriter, seq: u64, head: SnapshotHead, snapshot_bytes: u64) -> Self {
        Inner {
            durable: Position {
                segment: seq,
                offset: writer.durable_end(),
            },
            writer,
            seq,
            epoch: head.epoch,
            epoch_segment: seq,
            epoch_created_ms: head.created_ms,
            snapshot_bytes,
            update_bytes: 0,
            high_epoch: head.high_epoch,
            high_segment: head.high_segment,
            syncing: false,
            sync_round: 0,
            sync_reach: Position::default(),
            poisoned: None,
            scratch: Vec::new(),
            needs_segment: false,
            pending_snapshot: None,
            fixed_by: None,
            mark_from: None,
        }
    }
}

/// The last entry of the file `writer` appends to, if it is a short one (see
/// [`last_short_entry`]).
fn last_entry(writer: &LogWriter, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut r = LogReader::new(writer.handle(), path)?;
    last_short_entry(&mut r)
}
