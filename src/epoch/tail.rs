//! Following a store directory while a writer, possibly in another process, appends to it
//! (FORMAT.md §11.6): the newest epoch's snapshot, then every update as it becomes readable,
//! across segment rotation, compaction, retention and rewinds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::entry::{Decoded, SegmentStart, decode};
use super::read::{EpochInfo, SegmentDir, entry_error_kind, millis_to_time};
use crate::backend::Backend;
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{FILE_HEADER_LEN, LogReader};

/// What a [`LogTail`] read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    /// The tail moved to the start of an epoch: the epoch's snapshot state (`None` for a first
    /// epoch that started empty). `continues` is true when the epoch was started from the end
    /// of the one followed so far (a compaction) after every update of that one was
    /// delivered; false when the tail jumped (on its first read, after falling behind
    /// retention, or after the writer rewound or gave up a damaged epoch).
    Epoch {
        /// The epoch now followed.
        info: EpochInfo,
        /// Its snapshot state.
        snapshot: Option<Vec<u8>>,
        /// Whether the new epoch continues the previous one without a gap.
        continues: bool,
    },
    /// The next update of the epoch followed.
    Update(Vec<u8>),
}

/// Where the tail is.
struct At {
    epoch: EpochInfo,
    segment: u64,
    /// Where the next entry starts in `segment`.
    offset: u64,
}

/// An update read from the segment, with where it lies.
struct Read {
    start: u64,
    end: u64,
    data: Vec<u8>,
}

/// Reads a store directory as it grows, without locking or changing it: safe beside a
/// writer in another process. Complete entries only are returned: an entry the writer has
/// not finished is read on a later call, once it is whole. Durable updates only are
/// returned: an update is held back until a later entry's sync mark covers it (the writer
/// appends a CLOSE after a sync when nothing else follows, FORMAT.md §11.11).
pub struct LogTail {
    dir: SegmentDir,
    at: Option<At>,
    reader: Option<LogReader>,
    /// Updates read after `at.offset` that no sync mark covers yet, in order.
    held: VecDeque<Read>,
    /// Updates a sync mark covered, still to be returned, in order.
    ready: VecDeque<Read>,
    /// Whether the last read ended at the end of the data.
    at_end: bool,
    last: Option<(PathBuf, u64)>,
}

impl std::fmt::Debug for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTail")
            .field("dir", &self.dir.path)
            .field("epoch", &self.at.as_ref().map(|a| a.epoch.id))
            .field("segment", &self.at.as_ref().map(|a| a.segment))
            .field("offset", &self.at.as_ref().map(|a| a.offset))
            .finish_non_exhaustive()
    }
}

/// How many times the tail retries locating the newest epoch when a writer deletes or
/// renames segments while it looks.
const LOCATE_TRIES: usize = 8;

impl LogTail {
    /// A tail of the store directory `dir`; its first event is the newest epoch.
    pub fn open(backend: Arc<dyn Backend>, dir: &Path) -> Result<Self> {
        if !backend.exists(dir).map_err(|e| Error::io(dir, e))? {
            return Err(Error::io(dir, std::io::ErrorKind::NotFound.into()));
        }
        Ok(LogTail {
            dir: SegmentDir {
                backend,
                path: dir.to_path_buf(),
            },
            at: None,
            reader: None,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            at_end: false,
            last: None,
        })
    }

    /// The epoch followed, once the first event was read.
    pub fn epoch(&self) -> Option<&EpochInfo> {
        self.at.as_ref().map(|a| &a.epoch)
    }

    /// The file and offset of the last update returned (for errors about its content).
    pub fn last_location(&self) -> Option<(&Path, u64)> {
        self.last.as_ref().map(|(p, o)| (p.as_path(), *o))
    }

    /// The next event, or `None` when everything written so far was read. Damage in the
    /// middle of the log is an error naming the file and offset (and is reported again on
    /// the next call); an unfinished last entry is not damage.
    #[allow(
        clippy::should_implement_trait,
        reason = "returns Result, polled repeatedly"
    )]
    pub fn next(&mut self) -> Result<Option<TailEvent>> {
        let Some(at) = self.at.as_ref() else {
            return self.jump().map(Some);
        };
        let (epoch, path) = (at.epoch.id, self.dir.seg(at.segment));
        if let Some(read) = self.ready.pop_front() {
            return Ok(Some(self.deliver(path, read)));
        }
        if let Some(r) = self.reader.as_mut().filter(|_| self.at_end) {
            // The last read found the end: read that place afresh, as the writer may have
            // written there since (the reader remembers an end it classified by the file's
            // length, and a write into preallocated or rewritten bytes keeps the length).
            // Updates held back are read again too: a writer that reopened after a failed
            // sync may have cut them and written others in their place.
            r.seek(at.offset);
            self.held.clear();
        }
        self.at_end = false;
        if self.reader.is_none() {
            self.held.clear();
            match LogReader::open(&*self.dir.backend, &path, false) {
                Ok(mut r) => {
                    r.seek(at.offset);
                    self.reader = Some(r);
                }
                // The writer deleted or renamed the segment (retention, rewind): the history
                // followed so far is gone, so the tail moves to the newest epoch.
                Err(e) if is_not_found(&e) => return self.jump().map(Some),
                Err(e) => return Err(e),
            }
        }
        let mut rechecked = false;
        loop {
            let Some(r) = self.reader.as_mut() else {
                return Ok(None);
            };
            let entry = match r.next_entry() {
                Ok(Some(e)) => Some((e.pos, e.sync_mark, decode(e.payload).map(owned))),
                Ok(None) => None,
                Err(e) => {
                    return if self.moved_on()? {
                        self.escape(|| e)
                    } else {
                        Err(e)
                    };
                }
            };
            let Some((pos, sync_mark, decoded)) = entry else {
                // The end of what is written. If the writer went on elsewhere without sealing
                // this segment, the history followed was cut (rewind, fallback): jump. A seal
                // written between the read and the listing is found by reading once more.
                if !self.moved_on()? {
                    self.at_end = true;
                    return Ok(None);
                }
                if rechecked {
                    let offset = self.at.as_ref().map_or(0, |a| a.offset);
                    return self.escape(|| Error::corrupt(&path, offset, CorruptKind::Unsealed));
                }
                rechecked = true;
                let offset = self.at.as_ref().map_or(0, |a| a.offset);
                self.held.clear();
                if let Some(r) = self.reader.as_mut() {
                    r.seek(offset);
                }
                continue;
            };
            let bad = |kind| Error::corrupt(&path, pos.start, kind);
            let found = match &decoded {
                Ok(
                    Owned::Update { epoch, .. } | Owned::Seal { epoch } | Owned::Close { epoch },
                ) => *epoch,
                Ok(Owned::Other) => return Err(bad(CorruptKind::BrokenChain)),
                Err(e) => return Err(bad(entry_error_kind(*e))),
            };
            if found != epoch {
                return Err(bad(CorruptKind::WrongEpoch {
                    expected: epoch,
                    found,
                }));
            }
            // Every update this entry's sync mark covers is durable (a SEAL's covers all).
            let seal = matches!(decoded, Ok(Owned::Seal { .. }));
            while let Some(h) = self.held.front() {
                if h.end > sync_mark && !seal {
                    break;
                }
                if let Some(h) = self.held.pop_front() {
                    self.ready.push_back(h);
                }
            }
            match decoded {
                Ok(Owned::Update { data, .. }) => self.held.push_back(Read {
                    start: pos.start,
                    end: pos.end,
                    data,
                }),
                // Stays before the seal until the next segment exists.
                Ok(Owned::Seal { .. }) if self.ready.is_empty() => return self.after_seal(),
                Ok(Owned::Seal { .. }) => {
                    // The seal is read again once the updates it certified are returned.
                    if let Some(r) = self.reader.as_mut() {
                        r.seek(pos.start);
                    }
                }
                _ if self.held.is_empty() && self.ready.is_empty() => self.set_offset(pos.end),
                _ => {}
            }
            if let Some(read) = self.ready.pop_front() {
                return Ok(Some(self.deliver(path, read)));
            }
        }
    }

    /// Returns a durable update: the place moves past it.
    fn deliver(&mut self, path: PathBuf, read: Read) -> TailEvent {
        self.set_offset(read.end);
        self.last = Some((path, read.start));
        TailEvent::Update(read.data)
    }

    fn set_offset(&mut self, offset: u64) {
        if let Some(at) = self.at.as_mut() {
            at.offset = offset;
        }
    }

    /// At a seal: moves into the segment that follows, if the writer has made it.
    fn after_seal(&mut self) -> Result<Option<TailEvent>> {
        let Some(at) = self.at.as_mut() else {
            return self.jump().map(Some);
        };
        let seqs = self.dir.segments()?;
        let Some(&next) = seqs.iter().find(|&&s| s > at.segment) else {
            // The next call reads the seal again (the place is still before it).
            self.at_end = true;
            return Ok(None);
        };
        let start = match self.dir.read_start(next, false) {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return self.jump().map(Some),
            Err(e) => return Err(e),
        };
        match start.head {
            SegmentStart::Continue(c)
                if c.epoch == at.epoch.id
                    && c.prev_segment == at.segment
                    && c.epoch_segment == at.epoch.segment =>
            {
                at.segment = next;
                at.offset = start.pos.end;
                self.reader = None;
                self.next()
            }
            SegmentStart::Snapshot(h) if h.prev == Some((at.epoch.id, at.epoch.segment)) => {
                let info = EpochInfo {
                    id: h.epoch,
                    created: millis_to_time(h.created_ms),
                    segment: next,
                    prev: Some(at.epoch.id),
                    size: self.dir.file_len(next)?,
                };
                *at = At {
                    epoch: info.clone(),
                    segment: next,
                    offset: start.pos.end,
                };
                self.reader = None;
                Ok(Some(TailEvent::Epoch {
                    info,
                    snapshot: start.state,
                    continues: true,
                }))
            }
            _ => {
                let file = self.dir.seg(next);
                self.escape(|| {
                    Error::corrupt(file, FILE_HEADER_LEN as u64, CorruptKind::BrokenChain)
                })
            }
        }
    }

    /// Leaves a place the tail cannot go on from for the newest epoch; but if the newest
    /// epoch is the one followed and its segment is still there, the tail is stuck on damage
    /// and `stuck` is the error (jumping would only come back to the same place).
    fn escape(&mut self, stuck: impl FnOnce() -> Error) -> Result<Option<TailEvent>> {
        if let Some(at) = &self.at {
            let seqs = self.dir.segments()?;
            if seqs.binary_search(&at.segment).is_ok() {
                if let Ok(newest) = self.dir.current(&seqs) {
                    if newest.head.epoch == at.epoch.id && newest.snap_segment == at.epoch.segment {
                        return Err(stuck());
                    }
                }
            }
        }
        self.jump().map(Some)
    }

    /// Whether the writer went on somewhere the tail cannot follow from where it is: its
    /// segment is gone, or a newer segment exists although this one is not sealed.
    fn moved_on(&self) -> Result<bool> {
        let Some(at) = &self.at else {
            return Ok(true);
        };
        let seqs = self.dir.segments()?;
        Ok(seqs.binary_search(&at.segment).is_err() || seqs.last() != Some(&at.segment))
    }

    /// Moves to the start of the newest epoch.
    fn jump(&mut self) -> Result<TailEvent> {
        self.reader = None;
        self.held.clear();
        self.ready.clear();
        let mut tries = 0;
        loop {
            tries += 1;
            match self.locate() {
                Ok(ev) => return Ok(ev),
                // Segments deleted or renamed while we looked: look again.
                Err(e) if is_not_found(&e) && tries < LOCATE_TRIES => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn locate(&mut self) -> Result<TailEvent> {
        let (current, info) = self.dir.newest_epoch()?;
        self.at = Some(At {
            epoch: info.clone(),
            segment: current.snap_segment,
            offset: current.snapshot.pos.end,
        });
        Ok(TailEvent::Epoch {
            info,
            snapshot: current.snapshot.state,
            continues: false,
        })
    }
}

/// A decoded entry, detached from the reader's buffer.
enum Owned {
    Update { epoch: u64, data: Vec<u8> },
    Seal { epoch: u64 },
    Close { epoch: u64 },
    Other,
}

fn owned(d: Decoded<'_>) -> Owned {
    match d {
        Decoded::Update { epoch, data } => Owned::Update {
            epoch,
            data: data.to_vec(),
        },
        Decoded::Seal { epoch } => Owned::Seal { epoch },
        Decoded::Close { epoch } => Owned::Close { epoch },
        _ => Owned::Other,
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
