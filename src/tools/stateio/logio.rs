//! Reading grailbio `logio` files: 32 KiB blocks at absolute offsets, records of a 15-byte
//! header (checksum u32, type u8, length u16, back-offset u64, little-endian) and data, the
//! checksum the low 32 bits of XXH64 (seed 0) over the record after its checksum field
//! (README, "Importing grailbio stateio files").
//!
//! Stricter than the Go reader, never looser: every rule its writer follows is checked (a
//! FIRST or MIDDLE record fills its block, a MIDDLE or LAST one starts a block and points back
//! to its entry's first record, padding is zero), unknown types are damage, and damage is
//! classified as in FORMAT.md §5.3: bytes followed by no complete entry are a torn tail (or a
//! clean end if they are all zero); damage followed by a complete entry is corruption (stateio
//! syncs after every entry, so a later entry proves the damaged one was written whole).
#![deny(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::ReadAt;
use crate::error::{CorruptKind, Error, Result};
use crate::tools::Finding;

/// Block size of a logio file: blocks are aligned to absolute offsets.
pub const LOGIO_BLOCK: u64 = 32 * 1024;

/// Size of a logio record header.
pub const LOGIO_HEADER: usize = 15;

/// The largest entry the reader assembles (1 GiB, the store's decoding limit); a longer one is
/// damage ([`CorruptKind::EntryTooLarge`]).
pub const MAX_LOGIO_ENTRY: u64 = 1 << 30;

const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// One complete, valid logio entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogioEntry {
    /// Offset of its first record.
    pub offset: u64,
    /// Offset just past its last record.
    pub end: u64,
    /// How many records it spans.
    pub records: u32,
    /// Its data (the records' data, in order).
    pub data: Vec<u8>,
}

/// A record whose header and checksum are valid.
#[derive(Debug, Clone, Copy)]
struct Record {
    kind: u8,
    len: usize,
    back: u64,
    end: u64,
}

/// Why no valid record or entry is at an offset: the offset of the first bad structure and
/// the rule it broke.
type Bad = (u64, CorruptKind);

/// Reads the entries of a logio file forward. Damage is skipped and recorded as a
/// [`Finding`] (file, offset, rule, torn tail or not), as `statelog verify` reports it.
///
/// ```
/// use std::sync::Arc;
/// use statelog::tools::stateio::LogioReader;
///
/// // The "hello" record of the Go writer (research note §4).
/// let mut file = vec![0xd9, 0x78, 0xf4, 0x1b, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// file.extend_from_slice(b"hello");
/// let mut r = LogioReader::new(Arc::new(file), "small.log").unwrap();
/// assert_eq!(r.next_entry().unwrap().unwrap().data, b"hello");
/// assert!(r.next_entry().unwrap().is_none());
/// assert!(r.findings().is_empty());
/// ```
pub struct LogioReader {
    src: Arc<dyn ReadAt>,
    path: PathBuf,
    len: u64,
    /// Where the next entry (or padding) starts.
    pos: u64,
    /// The block in `buf` (`u64::MAX`: none yet).
    block: u64,
    buf: Vec<u8>,
    findings: Vec<Finding>,
    records: u64,
}

impl std::fmt::Debug for LogioReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogioReader")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl LogioReader {
    /// A reader of the whole file `src`, named `path` in findings and errors.
    pub fn new(src: Arc<dyn ReadAt>, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let len = src.len().map_err(|e| Error::io(&path, e))?;
        Ok(LogioReader {
            src,
            path,
            len,
            pos: 0,
            block: u64::MAX,
            buf: Vec::new(),
            findings: Vec::new(),
            records: 0,
        })
    }

    /// The file's path, as findings name it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when the reader was made.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Damage found so far, in offset order.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Records of the entries returned so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The next complete, valid entry; `None` at the end of the file. Damage on the way is
    /// recorded in [`findings`](Self::findings) and skipped. An error is an I/O error.
    pub fn next_entry(&mut self) -> Result<Option<LogioEntry>> {
        loop {
            if self.pos >= self.len {
                return Ok(None);
            }
            let at = self.pos;
            let left = LOGIO_BLOCK - at % LOGIO_BLOCK;
            if left <= LOGIO_HEADER as u64 {
                // The block's trailer: the writer pads it with zeros.
                let end = (at + left).min(self.len);
                if self.all_zero(at, end)? {
                    self.pos = end;
                    continue;
                }
                self.damage((at, CorruptKind::RecordLayout))?;
                continue;
            }
            match self.entry_at(at)? {
                Ok(e) => {
                    self.pos = e.end;
                    self.records += u64::from(e.records);
                    return Ok(Some(e));
                }
                Err(bad) => self.damage(bad)?,
            }
        }
    }

    /// Handles damage found at the reader's position: a clean end if only zeros follow; else
    /// a finding, torn tail unless a complete entry follows, where reading resumes.
    fn damage(&mut self, bad: Bad) -> Result<()> {
        let at = self.pos;
        if self.all_zero(at, self.len)? {
            self.pos = self.len;
            return Ok(());
        }
        let next = self.scan(at)?;
        self.findings.push(Finding {
            file: self.path.clone(),
            offset: bad.0,
            kind: bad.1,
            torn_tail: next.is_none(),
        });
        self.pos = next.unwrap_or(self.len);
        Ok(())
    }

    /// The first offset at or after `from` where a complete, valid entry starts, other than
    /// one at `from` itself: byte by byte through damaged bytes, record by record through
    /// valid ones.
    fn scan(&mut self, from: u64) -> Result<Option<u64>> {
        let mut p = from;
        while p < self.len {
            let left = LOGIO_BLOCK - p % LOGIO_BLOCK;
            if left <= LOGIO_HEADER as u64 {
                p += left;
                continue;
            }
            match self.record_at(p)? {
                Ok(rec) => {
                    if p != from && matches!(rec.kind, FULL | FIRST) && self.entry_at(p)?.is_ok() {
                        return Ok(Some(p));
                    }
                    p = rec.end;
                }
                Err(_) => p += 1,
            }
        }
        Ok(None)
    }

    /// The complete entry starting at `at`, or where and why it is not one.
    fn entry_at(&mut self, at: u64) -> Result<std::result::Result<LogioEntry, Bad>> {
        let first = match self.record_at(at)? {
            Ok(r) => r,
            Err(bad) => return Ok(Err(bad)),
        };
        let mut data = Vec::new();
        self.append_data(&mut data, at, first.len)?;
        match first.kind {
            FULL => {
                return Ok(Ok(LogioEntry {
                    offset: at,
                    end: first.end,
                    records: 1,
                    data,
                }));
            }
            FIRST => {}
            _ => return Ok(Err((at, CorruptKind::Sequence))),
        }
        let mut p = first.end;
        let mut records = 1u32;
        loop {
            if p >= self.len {
                return Ok(Err((at, CorruptKind::Incomplete)));
            }
            let rec = match self.record_at(p)? {
                Ok(r) => r,
                Err((_, CorruptKind::Incomplete)) => {
                    return Ok(Err((at, CorruptKind::Incomplete)));
                }
                Err(bad) => return Ok(Err(bad)),
            };
            if !matches!(rec.kind, MIDDLE | LAST) {
                // An entry starts where this one should go on: this one is the damage.
                return Ok(Err((at, CorruptKind::Sequence)));
            }
            if rec.back != p - at {
                return Ok(Err((p, CorruptKind::RecordLayout)));
            }
            if data.len() as u64 + rec.len as u64 > MAX_LOGIO_ENTRY {
                return Ok(Err((at, CorruptKind::EntryTooLarge)));
            }
            self.append_data(&mut data, p, rec.len)?;
            records = records.saturating_add(1);
            p = rec.end;
            if rec.kind == LAST {
                return Ok(Ok(LogioEntry {
                    offset: at,
                    end: p,
                    records,
                    data,
                }));
            }
        }
    }

    /// The valid record at `at` (which leaves at least 16 bytes in its block), or why not.
    fn record_at(&mut self, at: u64) -> Result<std::result::Result<Record, Bad>> {
        let in_block = (at % LOGIO_BLOCK) as usize;
        let block = self.load(at / LOGIO_BLOCK)?;
        let Some(head) = block.get(in_block..in_block + LOGIO_HEADER) else {
            return Ok(Err((at, CorruptKind::Incomplete)));
        };
        let le = |from: usize, n: usize| {
            head.get(from..from + n).map_or(0, |b| {
                b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x))
            })
        };
        let (sum, kind, len, back) = (le(0, 4), le(4, 1) as u8, le(5, 2) as usize, le(7, 8));
        let data_end = in_block + LOGIO_HEADER + len;
        if len == 0 || data_end as u64 > LOGIO_BLOCK {
            return Ok(Err((at, CorruptKind::RecordLayout)));
        }
        // The structure first, the checksum last: a scan through damaged bytes tries every
        // offset, and must not hash up to a block's worth of bytes at each.
        let fills_block = data_end as u64 == LOGIO_BLOCK;
        let layout_ok = match kind {
            FULL => back == 0,
            FIRST => back == 0 && fills_block,
            MIDDLE => in_block == 0 && back != 0 && back <= at && fills_block,
            LAST => in_block == 0 && back != 0 && back <= at,
            other => return Ok(Err((at, CorruptKind::RecordType(other)))),
        };
        if !layout_ok {
            return Ok(Err((at, CorruptKind::RecordLayout)));
        }
        let Some(covered) = block.get(in_block + 4..data_end) else {
            // The file ends inside the record.
            return Ok(Err((at, CorruptKind::Incomplete)));
        };
        if xxhash_rust::xxh64::xxh64(covered, 0) as u32 as u64 != sum {
            return Ok(Err((at, CorruptKind::Checksum)));
        }
        Ok(Ok(Record {
            kind,
            len,
            back,
            end: at + (LOGIO_HEADER + len) as u64,
        }))
    }

    /// Appends the data of the (valid) record at `at` to `out`.
    fn append_data(&mut self, out: &mut Vec<u8>, at: u64, len: usize) -> Result<()> {
        let from = (at % LOGIO_BLOCK) as usize + LOGIO_HEADER;
        let block = self.load(at / LOGIO_BLOCK)?;
        out.extend_from_slice(block.get(from..from + len).unwrap_or_default());
        Ok(())
    }

    /// Whether the bytes `[from, to)` are all zero.
    fn all_zero(&mut self, from: u64, to: u64) -> Result<bool> {
        let mut p = from;
        while p < to {
            let in_block = (p % LOGIO_BLOCK) as usize;
            let n = (LOGIO_BLOCK - p % LOGIO_BLOCK).min(to - p) as usize;
            let block = self.load(p / LOGIO_BLOCK)?;
            let bytes = block.get(in_block..in_block + n).unwrap_or_default();
            if bytes.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            p += n as u64;
        }
        Ok(true)
    }

    /// Block `b` of the file (shorter at the end of the file).
    fn load(&mut self, b: u64) -> Result<&[u8]> {
        if self.block != b {
            let start = b.saturating_mul(LOGIO_BLOCK);
            let n = self.len.saturating_sub(start).min(LOGIO_BLOCK) as usize;
            self.buf.resize(n, 0);
            let got = self
                .src
                .read_full_at(&mut self.buf, start)
                .map_err(|e| Error::io(&self.path, e))?;
            self.buf.truncate(got);
            self.block = b;
        }
        Ok(&self.buf)
    }
}
