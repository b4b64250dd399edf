//! Reading a store directory: the current epoch, the back-pointer chain of retained epochs,
//! and an epoch's updates (FORMAT.md §11.3–11.4).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dir::{SEGMENT_TAG, parse_segment_name, segment_path};
use super::entry::{Decoded, EntryError, SegmentStart, SnapshotHead, decode};
use super::intent;
use crate::backend::Backend;
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{CutTail, EntryPos, FILE_HEADER_LEN, LogReader};

/// How restore treats damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// A torn last entry is cut (its bytes kept aside) and reported; other damage is an error.
    #[default]
    TolerateTornTail,
    /// Any damage, a torn tail included, is an error naming the file and offset.
    Strict,
    /// Damaged records are skipped and the lost ranges reported.
    Salvage,
}

/// A retained epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInfo {
    /// The epoch id (monotonic; 0 is the first epoch).
    pub id: u64,
    /// When the epoch started.
    pub created: SystemTime,
    /// The segment where the epoch starts (its snapshot).
    pub segment: u64,
    /// The epoch this one was started from (its snapshot's back-pointer), if any.
    pub prev: Option<u64>,
    /// Bytes of the epoch's segments on disk (for a live log's active segment, with the
    /// space reserved ahead of its data).
    pub size: u64,
}

/// Bytes skipped while reading, in salvage mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// The file.
    pub file: PathBuf,
    /// First byte skipped.
    pub from: u64,
    /// First byte after the skipped range.
    pub to: u64,
    /// What was wrong there.
    pub kind: CorruptKind,
}

/// The newest epoch's start could not be read, and restore fell back to the epoch before it
/// (only when the caller allowed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FellBack {
    /// Why the newest epoch could not be used.
    pub cause: String,
    /// The segments given up (renamed aside with a `.broken` suffix by a writer).
    pub segments: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// What restore found and did besides returning the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn tail cut from the newest segment.
    pub torn_tail: Option<CutTail>,
    /// Epochs given up because their start was damaged (newest first).
    pub fell_back: Vec<FellBack>,
    /// Segments whose names, left by an interrupted operation, were removed.
    pub removed_temporary: Vec<PathBuf>,
}

/// An epoch's state: its snapshot and its updates, in order.
pub struct Restored {
    /// The epoch.
    pub epoch: EpochInfo,
    /// The snapshot that starts the epoch; `None` for a first epoch that started empty.
    pub snapshot: Option<Vec<u8>>,
    /// The epoch's updates.
    pub updates: Updates,
    /// What recovery did.
    pub report: RecoveryReport,
}

impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored")
            .field("epoch", &self.epoch)
            .field("snapshot_len", &self.snapshot.as_ref().map(Vec::len))
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

pub(crate) fn millis_to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// States at least this large are moved out of the frame reader's buffer, not copied.
const MOVE_STATE_BYTES: usize = 1 << 20;

/// The first entry of a segment, decoded, with the rest the epoch layer needs from it.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) head: SegmentStart,
    pub(crate) state: Option<Vec<u8>>,
    pub(crate) pos: EntryPos,
}

/// The segments of one store directory, read through a backend.
#[derive(Clone)]
pub(crate) struct SegmentDir {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) path: PathBuf,
}

impl SegmentDir {
    pub(crate) fn seg(&self, seq: u64) -> PathBuf {
        segment_path(&self.path, seq)
    }

    pub(crate) fn io(&self, path: &Path, e: std::io::Error) -> Error {
        Error::io(path, e)
    }

    /// Segment numbers present, ascending.
    pub(crate) fn segments(&self) -> Result<Vec<u64>> {
        let names = self
            .backend
            .list(&self.path)
            .map_err(|e| self.io(&self.path, e))?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        seqs.sort_unstable();
        // Segments an unfinished retention is deleting are gone already (FORMAT.md §11.13.3).
        if names.iter().any(|n| n == intent::RETIRE_FILE) {
            let below = self.retired_below()?;
            seqs.retain(|&s| s >= below);
        }
        // Segments an unfinished fall-back is setting aside are aside already (§11.13.2).
        if names.iter().any(|n| n == intent::FALLBACK_FILE) {
            let range = intent::read(
                &*self.backend,
                &self.path,
                intent::FALLBACK_FILE,
                intent::FALLBACK_MAGIC,
                2,
            )?;
            if let Some(&[from, to]) = range.as_deref() {
                seqs.retain(|s| !(from..=to).contains(s));
            }
        }
        Ok(seqs)
    }

    /// The boundary of an unfinished retention (`RETIRE`): every segment below it is being
    /// deleted. 0 when none is under way.
    pub(crate) fn retired_below(&self) -> Result<u64> {
        let fields = intent::read(
            &*self.backend,
            &self.path,
            intent::RETIRE_FILE,
            intent::RETIRE_MAGIC,
            1,
        )?;
        Ok(fields.and_then(|f| f.first().copied()).unwrap_or(0))
    }

    pub(crate) fn file_len(&self, seq: u64) -> Result<u64> {
        let p = self.seg(seq);
        let f = self.backend.open_read(&p).map_err(|e| self.io(&p, e))?;
        f.len().map_err(|e| self.io(&p, e))
    }

    /// Opens segment `seq` for reading. With `sealed` (the caller believes the segment is no
    /// longer written) it is memory-mapped, but only if the file's own bytes end with a SEAL
    /// entry: a directory listing can be stale (a rotation between two listings makes the
    /// new active segment look old), the file cannot, and a sealed file never changes or
    /// shrinks again (FORMAT.md §11.2). Otherwise it is read through the backend.
    pub(crate) fn open_reader(&self, seq: u64, sealed: bool) -> Result<LogReader> {
        let p = self.seg(seq);
        let mut plain = LogReader::open(&*self.backend, &p, false)?;
        if sealed && reader_ends_with_seal(&mut plain)? {
            return LogReader::open(&*self.backend, &p, true);
        }
        plain.seek(FILE_HEADER_LEN as u64);
        Ok(plain)
    }

    /// Reads and decodes the first entry of segment `seq`; a segment without a valid first
    /// entry is corrupt (segments are renamed into place only after it is durable).
    pub(crate) fn read_start(&self, seq: u64, sealed: bool) -> Result<Start> {
        self.read_start_with(seq, sealed, true)
    }

    /// [`read_start`](Self::read_start) without the state: a snapshot's head, not its parts
    /// (what a listing of the epochs needs; the state of a large store is read, checked and
    /// copied only to restore it).
    pub(crate) fn read_head(&self, seq: u64, sealed: bool) -> Result<Start> {
        self.read_start_with(seq, sealed, false)
    }

    fn read_start_with(&self, seq: u64, sealed: bool, with_state: bool) -> Result<Start> {
        let p = self.seg(seq);
        let mut r = self.open_reader(seq, sealed)?;
        if r.header().tag != SEGMENT_TAG {
            return Err(Error::corrupt(&p, 0, CorruptKind::HeaderField));
        }
        r.set_strict(true);
        let first = FILE_HEADER_LEN as u64;
        let Some(e) = r.next_entry()? else {
            return Err(Error::corrupt(&p, first, CorruptKind::Incomplete));
        };
        let mut pos = e.pos;
        let bad = |kind| Error::corrupt(&p, pos.start, kind);
        // A large state is moved out of the reader's buffer rather than copied.
        let (head, state, in_buffer) = match decode(e.payload) {
            Ok(Decoded::Snapshot {
                head, parts: true, ..
            }) => {
                // Only a version 2 file may hold a state in parts (FORMAT.md §9).
                if r.header().version < 2 {
                    return Err(bad(CorruptKind::Payload));
                }
                if !with_state {
                    return Ok(Start {
                        head: SegmentStart::Snapshot(head),
                        state: None,
                        pos,
                    });
                }
                let (state, end) = read_parts(&mut r, &p, head.epoch)?;
                pos.end = end;
                (SegmentStart::Snapshot(head), Some(state), None)
            }
            Ok(Decoded::Snapshot { head, .. }) if !with_state => {
                (SegmentStart::Snapshot(head), None, None)
            }
            Ok(Decoded::Snapshot { head, state, .. }) if head.has_state => {
                let at = (state.as_ptr() as usize).saturating_sub(e.payload.as_ptr() as usize);
                if state.len() >= MOVE_STATE_BYTES {
                    (SegmentStart::Snapshot(head), None, Some((at, state.len())))
                } else {
                    (SegmentStart::Snapshot(head), Some(state.to_vec()), None)
                }
            }
            Ok(Decoded::Snapshot { head, .. }) => (SegmentStart::Snapshot(head), None, None),
            Ok(Decoded::Continue(head)) => (SegmentStart::Continue(head), None, None),
            Ok(_) => return Err(bad(CorruptKind::BrokenChain)),
            Err(e) => return Err(bad(entry_error_kind(e))),
        };
        let state = match in_buffer {
            None => state,
            Some((at, len)) => match r.take_payload() {
                Some(mut v) if v.len() >= at + len => {
                    v.truncate(at + len);
                    v.drain(..at);
                    Some(v)
                }
                // The entry lay in one block (large blocks): read it again and copy.
                _ => {
                    r.seek(pos.start);
                    let e = r
                        .next_entry()?
                        .ok_or_else(|| bad(CorruptKind::Incomplete))?;
                    Some(
                        e.payload
                            .get(at..at + len)
                            .ok_or_else(|| bad(CorruptKind::Payload))?
                            .to_vec(),
                    )
                }
            },
        };
        Ok(Start { head, state, pos })
    }

    /// The snapshot segment and head of the epoch that segment `seq` belongs to.
    pub(crate) fn epoch_start_of(
        &self,
        seq: u64,
        start: Start,
        sealed: bool,
    ) -> Result<(u64, Start, SnapshotHead)> {
        self.epoch_start_with(seq, start, sealed, true)
    }

    /// [`epoch_start_of`](Self::epoch_start_of), reading the state of the snapshot it goes
    /// back to only `with_state`.
    fn epoch_start_with(
        &self,
        seq: u64,
        start: Start,
        sealed: bool,
        with_state: bool,
    ) -> Result<(u64, Start, SnapshotHead)> {
        match start.head {
            SegmentStart::Snapshot(h) => Ok((seq, start, h)),
            SegmentStart::Continue(c) => {
                let s = if c.epoch_segment < seq {
                    self.read_start_with(c.epoch_segment, sealed, with_state)?
                } else {
                    return Err(Error::corrupt(
                        self.seg(seq),
                        start.pos.start,
                        CorruptKind::BrokenChain,
                    ));
                };
                match s.head {
                    SegmentStart::Snapshot(h) if h.epoch == c.epoch => Ok((c.epoch_segment, s, h)),
                    _ => Err(Error::corrupt(
                        self.seg(c.epoch_segment),
                        s.pos.start,
                        CorruptKind::BrokenChain,
                    )),
                }
            }
        }
    }

    /// The retained epochs, newest first, found by following the snapshots' back-pointers
    /// from the newest segment until a pointed-to segment no longer exists.
    pub(crate) fn epochs(&self) -> Result<Vec<EpochInfo>> {
        let seqs = self.segments()?;
        let Some(&newest) = seqs.last() else {
            return Ok(Vec::new());
        };
        // Heads only: a compaction's retention lists the epochs, and reading each snapshot's
        // parts (all of a large state, twice with two epochs kept) took a sixth of it.
        let start = self.read_head(newest, false)?;
        let (mut seg, _, mut head) = self.epoch_start_with(newest, start, true, false)?;
        let mut out = Vec::new();
        // The epoch's segments run from `seg` to `last`, inclusive.
        let mut last = newest;
        loop {
            let mut size = 0;
            for &s in seqs.iter().filter(|&&s| s >= seg && s <= last) {
                size += self.file_len(s)?;
            }
            out.push(EpochInfo {
                id: head.epoch,
                created: millis_to_time(head.created_ms),
                segment: seg,
                prev: head.prev.map(|p| p.0),
                size,
            });
            let Some((prev_epoch, prev_seg)) = head.prev else {
                return Ok(out);
            };
            if prev_seg >= seg {
                return Err(Error::corrupt(
                    self.seg(seg),
                    FILE_HEADER_LEN as u64,
                    CorruptKind::BrokenChain,
                ));
            }
            if seqs.binary_search(&prev_seg).is_err() {
                return Ok(out); // dropped by retention
            }
            let s = self.read_head(prev_seg, true)?;
            match s.head {
                SegmentStart::Snapshot(h) if h.epoch == prev_epoch => {
                    last = seg - 1; // prev_seg < seg, so seg >= 1
                    seg = prev_seg;
                    head = h;
                }
                _ => {
                    return Err(Error::corrupt(
                        self.seg(prev_seg),
                        s.pos.start,
                        CorruptKind::BrokenChain,
                    ));
                }
            }
        }
    }
}

/// The newest epoch of a directory, located from its newest segment (bounded: only that
/// epoch's segments are looked at).
pub(crate) struct Current {
    pub(crate) newest: u64,
    pub(crate) snap_segment: u64,
    pub(crate) head: SnapshotHead,
    pub(crate) snapshot: Start,
    /// The newest segment's first entry (its state, if a snapshot, is in `snapshot`).
    pub(crate) newest_head: SegmentStart,
    pub(crate) segments: Vec<u64>,
}

impl SegmentDir {
    /// Locates the newest epoch among `seqs` (ascending, not empty).
    pub(crate) fn current(&self, seqs: &[u64]) -> Result<Current> {
        let newest = *seqs.last().ok_or_else(|| Error::NoStore {
            dir: self.path.clone(),
        })?;
        let newest_start = self.read_start(newest, false)?;
        let newest_head = newest_start.head.clone();
        let (snap_segment, snapshot, head) = self.epoch_start_of(newest, newest_start, true)?;
        let segments = seqs
            .iter()
            .copied()
            .filter(|&s| s >= snap_segment)
            .collect();
        Ok(Current {
            newest,
            snap_segment,
            head,
            snapshot,
            newest_head,
            segments,
        })
    }

    /// The newest epoch of the directory, and its description.
    pub(crate) fn newest_epoch(&self) -> Result<(Current, EpochInfo)> {
        let seqs = self.segments()?;
        if seqs.is_empty() {
            return Err(Error::NoStore {
                dir: self.path.clone(),
            });
        }
        let current = self.current(&seqs)?;
        let info = EpochInfo {
            id: current.head.epoch,
            created: millis_to_time(current.head.created_ms),
            segment: current.snap_segment,
            prev: current.head.prev.map(|p| p.0),
            size: self.size_of(&current.segments)?,
        };
        Ok((current, info))
    }

    /// Total bytes of segments `seqs`.
    pub(crate) fn size_of(&self, seqs: &[u64]) -> Result<u64> {
        let mut size = 0;
        for &s in seqs {
            size += self.file_len(s)?;
        }
        Ok(size)
    }

    /// The state of retained epoch `id`: its snapshot and updates. `active` is the segment a
    /// writer appends to, if any (read through the backend, never mapped).
    pub(crate) fn read_epoch(
        &self,
        id: u64,
        active: Option<u64>,
        mode: RecoveryMode,
    ) -> Result<Restored> {
        let epochs = self.epochs()?;
        let Some(i) = epochs.iter().position(|e| e.id == id) else {
            return Err(Error::EpochNotRetained { epoch: id });
        };
        let info = epochs
            .get(i)
            .cloned()
            .ok_or(Error::EpochNotRetained { epoch: id })?;
        let end = match i.checked_sub(1).and_then(|j| epochs.get(j)) {
            Some(next) => next.segment,
            None => u64::MAX,
        };
        let seqs: Vec<u64> = self
            .segments()?
            .into_iter()
            .filter(|&s| s >= info.segment && s < end)
            .collect();
        let start = self.read_start(info.segment, Some(info.segment) != active)?;
        let last_sealed = match (seqs.last(), active) {
            (Some(&last), Some(a)) => last != a,
            _ => true,
        };
        let updates = Updates::new(self.clone(), id, seqs, start.pos.end, last_sealed, mode);
        Ok(Restored {
            epoch: info,
            snapshot: start.state,
            updates,
            report: RecoveryReport::default(),
        })
    }
}

/// The most [`read_parts`] reserves before it has read any part.
const PARTS_RESERVE: u64 = 256 << 20;

/// The state of a snapshot in parts (FORMAT.md §11.2): the data of the STATE entries of
/// `epoch` that follow the snapshot entry, up to the one marked last, and where that one
/// ends. Anything else before it is damage.
fn read_parts(r: &mut LogReader, path: &Path, epoch: u64) -> Result<(Vec<u8>, u64)> {
    // The parts are no longer than the rest of the file: room for them up front, but never
    // more than a bound (a sparse file may claim any length; past it the state grows as its
    // parts are read and checked).
    let room = r
        .file_len()?
        .saturating_sub(r.position())
        .min(PARTS_RESERVE);
    let mut state = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    loop {
        let at = r.position();
        let Some(e) = r.next_entry()? else {
            return Err(Error::corrupt(path, at, CorruptKind::Incomplete));
        };
        let bad = |kind| Error::corrupt(path, e.pos.start, kind);
        match decode(e.payload) {
            Ok(Decoded::State {
                epoch: found,
                last,
                data,
            }) => {
                if found != epoch {
                    return Err(bad(CorruptKind::WrongEpoch {
                        expected: epoch,
                        found,
                    }));
                }
                state.extend_from_slice(data);
                if last {
                    return Ok((state, e.pos.end));
                }
            }
            Ok(_) => return Err(bad(CorruptKind::BrokenChain)),
            Err(k) => return Err(bad(entry_error_kind(k))),
        }
    }
}

/// More bytes than a SEAL entry takes in a segment, its record headers and sync mark
/// included.
const SEAL_ENTRY_MAX: u64 = 256;

/// Whether the last complete entry of `r`'s file is a SEAL (the reader's position is left
/// anywhere; seek before reading on).
pub(crate) fn reader_ends_with_seal(r: &mut LogReader) -> Result<bool> {
    Ok(last_short_entry(r)?.is_some_and(|b| matches!(decode(&b), Ok(Decoded::Seal { .. }))))
}

/// The payload of the last complete entry of `r`'s file if that entry is a short one (a
/// SEAL, CLOSE, CONTINUE or small UPDATE); `None` for none or a long one (a snapshot of a
/// large state is not read again). The reader's position is left anywhere.
pub(crate) fn last_short_entry(r: &mut LogReader) -> Result<Option<Vec<u8>>> {
    let len = r.file_len()?;
    let Some(last) = r.last_entry_before(len)? else {
        return Ok(None);
    };
    if last.end.saturating_sub(last.start) > SEAL_ENTRY_MAX {
        return Ok(None);
    }
    r.seek(last.start);
    Ok(r.next_entry()?.map(|e| e.payload.to_vec()))
}

pub(crate) fn entry_error_kind(e: EntryError) -> CorruptKind {
    match e {
        EntryError::Kind(k) => CorruptKind::EntryKind(k),
        EntryError::Short | EntryError::Flags(_) => CorruptKind::Payload,
    }
}

/// The updates of one epoch, read lazily segment by segment. In salvage mode damaged
/// records are skipped and listed by [`lost`](Self::lost); otherwise the first damage is an
/// error and iteration ends.
pub struct Updates {
    dir: Option<SegmentDir>,
    epoch: u64,
    segments: Vec<u64>,
    index: usize,
    /// Where the first segment's updates start (after the snapshot entry).
    first_after: u64,
    /// Whether the last segment is sealed (not being written).
    last_sealed: bool,
    mode: RecoveryMode,
    reader: Option<LogReader>,
    saw_seal: bool,
    done: bool,
    lost: Vec<LostRange>,
    count: u64,
    /// The segment the last update returned was read from, and its offset there.
    last: Option<(PathBuf, u64)>,
    /// The path of the segment `reader` reads (computed once per segment, not per entry).
    file: PathBuf,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates")
            .field("epoch", &self.epoch)
            .field("segments", &self.segments)
            .field("read", &self.count)
            .finish_non_exhaustive()
    }
}

impl Updates {
    pub(crate) fn new(
        dir: SegmentDir,
        epoch: u64,
        segments: Vec<u64>,
        first_after: u64,
        last_sealed: bool,
        mode: RecoveryMode,
    ) -> Self {
        Updates {
            dir: Some(dir),
            epoch,
            segments,
            index: 0,
            first_after,
            last_sealed,
            mode,
            reader: None,
            saw_seal: false,
            done: false,
            lost: Vec::new(),
            count: 0,
            last: None,
            file: PathBuf::new(),
        }
    }

    /// No updates.
    pub(crate) fn empty(epoch: u64) -> Self {
        Updates {
            dir: None,
            epoch,
            segments: Vec::new(),
            index: 0,
            first_after: 0,
            last_sealed: true,
            mode: RecoveryMode::Strict,
            reader: None,
            saw_seal: false,
            done: true,
            lost: Vec::new(),
            count: 0,
            last: None,
            file: PathBuf::new(),
        }
    }

    /// Where the last update returned was read from: the segment file and the entry's offset
    /// (for errors about its content).
    pub fn last_location(&self) -> Option<(&Path, u64)> {
        self.last.as_ref().map(|(p, o)| (p.as_path(), *o))
    }

    /// The ranges skipped so far (salvage mode).
    pub fn lost(&self) -> &[LostRange] {
        &self.lost
    }

    /// The segments this epoch's updates are read from.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// Records damage; in salvage mode iteration goes on, otherwise it ends with the error.
    fn damage(&mut self, file: PathBuf, from: u64, to: u64, kind: CorruptKind) -> Option<Error> {
        if self.mode == RecoveryMode::Salvage {
            self.lost.push(LostRange {
                file,
                from,
                to,
                kind,
            });
            None
        } else {
            self.done = true;
            Some(Error::corrupt(file, from, kind))
        }
    }

    fn open_segment(&mut self) -> Result<bool> {
        let Some(dir) = self.dir.clone() else {
            return Ok(false);
        };
        let Some(&seq) = self.segments.get(self.index) else {
            return Ok(false);
        };
        let is_last = self.index + 1 == self.segments.len();
        let path = dir.seg(seq);
        let mut r = dir.open_reader(seq, !is_last || self.last_sealed)?;
        r.set_strict(self.mode == RecoveryMode::Strict);
        if self.index == 0 {
            r.seek(self.first_after);
        } else {
            // A later segment must continue this epoch right after the previous segment.
            let prev = self.segments.get(self.index - 1).copied();
            let first = FILE_HEADER_LEN as u64;
            let ok = match r.next_entry() {
                Ok(Some(e)) => match decode(e.payload) {
                    Ok(Decoded::Continue(h)) => {
                        h.epoch == self.epoch
                            && Some(h.prev_segment) == prev
                            && Some(&h.epoch_segment) == self.segments.first()
                    }
                    _ => false,
                },
                _ => false,
            };
            if !ok {
                let len = dir.file_len(seq).unwrap_or(first);
                if let Some(e) = self.damage(path, first, len, CorruptKind::BrokenChain) {
                    return Err(e);
                }
                self.index += 1;
                return Ok(true);
            }
        }
        self.reader = Some(r);
        self.file = path;
        self.saw_seal = false;
        Ok(true)
    }

    fn next_segment(&mut self) {
        self.reader = None;
        self.index += 1;
    }

    fn step(&mut self) -> Option<Result<Vec<u8>>> {
        loop {
            if self.done {
                return None;
            }
            if self.reader.is_none() {
                match self.open_segment() {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let is_last = self.index + 1 == self.segments.len();
            let r = self.reader.as_mut()?;
            let file = &self.file;
            let epoch = self.epoch;
            let outcome: std::result::Result<(), (EntryPos, CorruptKind)> = match r.next_entry() {
                Ok(Some(e)) => {
                    let pos = e.pos;
                    match decode(e.payload) {
                        Ok(Decoded::Update { epoch: found, data }) if found == epoch => {
                            self.count += 1;
                            let data = data.to_vec();
                            match &mut self.last {
                                Some((path, at)) if path == file => *at = pos.start,
                                last => *last = Some((file.clone(), pos.start)),
                            }
                            return Some(Ok(data));
                        }
                        Ok(Decoded::Update { epoch: found, .. }) => Err((
                            pos,
                            CorruptKind::WrongEpoch {
                                expected: epoch,
                                found,
                            },
                        )),
                        Ok(Decoded::Seal { epoch: found } | Decoded::Close { epoch: found })
                            if found != epoch =>
                        {
                            Err((
                                pos,
                                CorruptKind::WrongEpoch {
                                    expected: epoch,
                                    found,
                                },
                            ))
                        }
                        Ok(Decoded::Seal { .. }) => {
                            self.saw_seal = true;
                            self.next_segment();
                            continue;
                        }
                        Ok(Decoded::Close { .. }) => continue,
                        Ok(_) => Err((pos, CorruptKind::BrokenChain)),
                        Err(e) => Err((pos, entry_error_kind(e))),
                    }
                }
                Ok(None) => {
                    let tail = r.tail().copied();
                    let unsealed = !is_last && !self.saw_seal;
                    // As `next_segment`, field by field (`file` is still borrowed).
                    self.reader = None;
                    self.index += 1;
                    match (tail, unsealed) {
                        // A torn or unfinished write at the end of the newest segment is its
                        // end (a writer cuts it on open); in an older segment it is damage.
                        (Some(_), false) if is_last => continue,
                        (Some(t), _) => Err((
                            EntryPos {
                                start: t.offset,
                                end: t.offset + t.len,
                            },
                            CorruptKind::Incomplete,
                        )),
                        (None, true) => {
                            let at = FILE_HEADER_LEN as u64;
                            Err((EntryPos { start: at, end: at }, CorruptKind::Unsealed))
                        }
                        (None, false) => continue,
                    }
                }
                Err(Error::Corrupt { offset, kind, .. }) if self.mode == RecoveryMode::Salvage => {
                    match r.resync() {
                        Ok(Some(s)) => Err((
                            EntryPos {
                                start: s.from,
                                end: s.to,
                            },
                            kind,
                        )),
                        Ok(None) => Err((
                            EntryPos {
                                start: offset,
                                end: offset,
                            },
                            kind,
                        )),
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if let Err((pos, kind)) = outcome {
                let file = file.clone();
                if let Some(e) = self.damage(file, pos.start, pos.end, kind) {
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Updates {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step()
    }
}
