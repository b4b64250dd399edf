//! Reading the entries of a log file forward, following it as it grows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{FileHeader, RECORD_HEADER_LEN};
use super::scan::{EntryPos, PayloadAt, Probe, Scanner, TailClass};
use super::writer::read_header;
use crate::backend::{Backend, ReadAt};
use crate::error::{CorruptKind, Error, Result};

/// One entry read from a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Where the entry lies in the file.
    pub pos: EntryPos,
    /// The bytes that were appended.
    pub payload: &'a [u8],
    /// The entry's sync mark: the file was durable up to this offset when the entry was
    /// appended (FORMAT.md §4), so every entry ending at or before it is durable.
    pub sync_mark: u64,
}

/// Damaged bytes at the end of a file, where reading stopped without an error because no sync
/// is known to have covered them (a torn or unfinished write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailDamage {
    /// Where the damage starts (where the next entry would start).
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub len: u64,
    /// Complete entries found behind the damage.
    pub entries_after: u64,
}

/// Bytes skipped by [`LogReader::resync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Start of the damaged entry.
    pub from: u64,
    /// Where reading resumes (the next valid entry, or the end of the file).
    pub to: u64,
}

#[derive(Debug, Clone, Copy)]
struct Stuck {
    at: u64,
    kind: CorruptKind,
    entry: u64,
    resume: Option<u64>,
}

/// Reads entries forward. The end of the data is sticky: after `Ok(None)`, `next_entry` returns
/// `None` again until more is written (the file grows, or entries fill space a writer reserved
/// ahead of its data), and then returns each new entry exactly once.
///
/// Damage with no later proof of a sync (a torn tail) ends reading quietly and is reported by
/// [`tail`](Self::tail), or is an error in [strict](Self::set_strict) mode. Damage that a later
/// entry proves was synced is [`Error::Corrupt`]; calling `next_entry` again repeats the error until
/// [`resync`](Self::resync) skips to the next valid entry.
pub struct LogReader {
    scan: Scanner,
    header: FileHeader,
    pos: u64,
    entry: Vec<u8>,
    /// Whether the last entry returned is in `entry`.
    assembled: bool,
    strict: bool,
    tail: Option<TailDamage>,
    stuck: Option<Stuck>,
    /// (entry start, file length) whose tail was already classified as not corrupt.
    quiet_tail: Option<(u64, u64)>,
    /// The record header's bytes at `quiet_tail`'s start when it was classified.
    quiet_head: Vec<u8>,
    /// (offset, file length): everything from the offset to that length was zero when last
    /// looked at. While the length stays, a reader past the offset that finds no complete
    /// entry has met a writer at work in that space, not damage, and does not read the rest
    /// of the space again (a writer reserves space ahead of its data).
    zero_tail: Option<(u64, u64)>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("path", self.scan.path())
            .field("pos", &self.pos)
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens a reader over `src`, the bytes of the log file at `path` (used in errors), after
    /// validating its header. Reading starts at the first entry.
    pub fn new(src: Arc<dyn ReadAt>, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let header = read_header(&*src, &path)?;
        let scan = Scanner::new(src, path, header.block_size, header.file_id);
        Ok(LogReader {
            pos: scan.geometry().entry_start(0),
            scan,
            header,
            entry: Vec::new(),
            assembled: false,
            strict: false,
            tail: None,
            stuck: None,
            quiet_tail: None,
            zero_tail: None,
            quiet_head: Vec::new(),
        })
    }

    /// Opens the log file at `path` through `backend`: a sealed file (never written again) is
    /// memory-mapped, an active one is read through the backend.
    pub fn open(backend: &dyn Backend, path: &Path, sealed: bool) -> Result<Self> {
        let src = if sealed {
            backend.open_sealed(path)
        } else {
            backend.open_read(path)
        };
        Self::new(src.map_err(|e| Error::io(path, e))?, path)
    }

    /// In strict mode, damage at the end of the file is an error too.
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// The file's header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Where the next entry is expected to start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to the entry that starts at `pos` (a position returned by a writer or reader).
    pub fn seek(&mut self, pos: u64) {
        self.pos = self.scan.geometry().entry_start(pos);
        self.stuck = None;
        self.tail = None;
        self.quiet_tail = None;
        self.scan.invalidate();
    }

    /// The payload of the entry `next_entry` just returned, moved out of the reader instead
    /// of copied, if it was assembled from several records (a large entry); `None` otherwise.
    pub fn take_payload(&mut self) -> Option<Vec<u8>> {
        std::mem::take(&mut self.assembled).then(|| std::mem::take(&mut self.entry))
    }

    /// Damage at the end of the file where the last `next_entry` stopped, if any.
    pub fn tail(&self) -> Option<&TailDamage> {
        self.tail.as_ref()
    }

    /// Reads the next entry; `Ok(None)` at the end of the data.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>> {
        let Some((pos, sync_mark, payload)) = self.advance()? else {
            return Ok(None);
        };
        self.assembled = matches!(payload, PayloadAt::Assembled);
        let payload = match payload {
            PayloadAt::Block(from, to) => self.scan.cached(from, to),
            PayloadAt::Assembled => &self.entry,
        };
        Ok(Some(Entry {
            pos,
            payload,
            sync_mark,
        }))
    }

    fn advance(&mut self) -> Result<Option<(EntryPos, u64, PayloadAt)>> {
        if let Some(s) = self.stuck {
            return Err(self.corrupt(s.at, s.kind));
        }
        let start = self.pos;
        let probe = self.probe_at(start)?;
        let (at, kind) = match probe {
            Probe::Complete { pos, mark, payload } => {
                return Ok(Some(self.accept(pos, mark, payload)));
            }
            Probe::Incomplete => (start, CorruptKind::Incomplete),
            Probe::Bad { at, kind } => (at, kind),
        };
        let len = self.scan.file_len().map_err(|e| self.io(e))?;
        // An entry that seems to run past the end may only have a damaged length field, so
        // incomplete entries are classified like bad ones.
        // The range is still zero only if nothing was written at its start since: a writer
        // appends from there, into space it reserved (the length does not change). Checked
        // on the next record header's bytes, so a damaged entry written there is never taken
        // for the zeros that were there.
        let head = self.record_head(start, len)?;
        let known_zero = self
            .zero_tail
            .is_some_and(|(from, zero_len)| zero_len == len && from <= start)
            && head.iter().all(|&b| b == 0);
        if !known_zero {
            self.zero_tail = None;
        }
        // Likewise a tail classified before: only while the bytes at its start are the same.
        let quiet = self.quiet_tail == Some((start, len)) && self.quiet_head == head;
        let class = if known_zero || quiet {
            None
        } else {
            let class = self
                .scan
                .classify_tail(start, len)
                .map_err(|e| self.io(e))?;
            // A live writer may have finished the entry while we looked past it.
            self.scan.invalidate();
            if let Probe::Complete { pos, mark, payload } = self.probe_at(start)? {
                return Ok(Some(self.accept(pos, mark, payload)));
            }
            Some(class)
        };
        self.scan.invalidate();
        match class {
            None => {}
            Some(TailClass::Zero) => {
                self.tail = None;
                self.quiet_tail = Some((start, len));
                self.quiet_head = head;
                self.zero_tail = Some((start, len));
            }
            Some(TailClass::Torn { entries_after }) => {
                self.tail = (len > start).then(|| TailDamage {
                    offset: start,
                    len: len - start,
                    entries_after,
                });
                self.quiet_tail = Some((start, len));
                self.quiet_head = head;
            }
            Some(TailClass::Corrupt { resume }) => {
                self.stuck = Some(Stuck {
                    at,
                    kind,
                    entry: start,
                    resume,
                });
                return Err(self.corrupt(at, kind));
            }
        }
        if self.strict && self.tail.is_some() {
            return Err(self.corrupt(at, kind));
        }
        Ok(None)
    }

    /// The bytes of a record header at `start` (fewer before `len`).
    fn record_head(&self, start: u64, len: u64) -> Result<Vec<u8>> {
        let want = len.saturating_sub(start).min(RECORD_HEADER_LEN as u64) as usize;
        let mut b = vec![0u8; want];
        let n = self
            .scan
            .read_full_at(&mut b, start)
            .map_err(|e| self.io(e))?;
        b.truncate(n);
        Ok(b)
    }

    fn probe_at(&mut self, start: u64) -> Result<Probe> {
        self.scan
            .probe(start, Some(&mut self.entry))
            .map_err(|e| Error::io(self.scan.path(), e))
    }

    fn accept(
        &mut self,
        pos: EntryPos,
        mark: u64,
        payload: PayloadAt,
    ) -> (EntryPos, u64, PayloadAt) {
        self.pos = self.scan.geometry().entry_start(pos.end);
        self.tail = None;
        self.quiet_tail = None;
        (pos, mark, payload)
    }

    /// After [`Error::Corrupt`] from `next_entry`, skips the damaged bytes to the next valid entry
    /// and says what was skipped; `None` if there was nothing to skip.
    pub fn resync(&mut self) -> Result<Option<Skipped>> {
        let Some(stuck) = self.stuck.take() else {
            return Ok(None);
        };
        let len = self.scan.file_len().map_err(|e| self.io(e))?;
        let resume = match stuck.resume {
            Some(r) => Some(r),
            None => self
                .scan
                .next_entry_after(stuck.entry, len)
                .map_err(|e| self.io(e))?,
        };
        let to = resume.unwrap_or(len);
        self.seek(to);
        Ok(Some(Skipped {
            from: stuck.entry,
            to,
        }))
    }

    /// The last complete, valid entry ending at or before `limit` (use the file length for the
    /// last entry of the file; repeat with a result's `start` to walk backwards).
    pub fn last_entry_before(&mut self, limit: u64) -> Result<Option<EntryPos>> {
        self.scan
            .last_entry_before(limit)
            .map_err(|e| Error::io(self.scan.path(), e))
    }

    /// The current length of the file.
    pub fn file_len(&self) -> Result<u64> {
        self.scan.file_len().map_err(|e| self.io(e))
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(self.scan.path(), e)
    }

    fn corrupt(&self, at: u64, kind: CorruptKind) -> Error {
        Error::corrupt(self.scan.path(), at, kind)
    }
}
