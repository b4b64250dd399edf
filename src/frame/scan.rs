//! Validating entries in place: the block cache, forward probing of one entry, the backward
//! scan, and the scan after damage that tells a torn tail from corruption (FORMAT.md §5).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::format::{
    FILE_HEADER_LEN, Geometry, MAX_ENTRY_LEN, RECORD_HEADER_LEN, RecordHeader, RecordType,
    SYNC_MARK_LEN, crc_seed, read_u64, record_crc,
};
use crate::backend::ReadAt;
use crate::error::CorruptKind;

const HDR: usize = RECORD_HEADER_LEN;
const MIN_ENTRY_ON_DISK: u64 = (HDR + SYNC_MARK_LEN) as u64;

/// Where an entry lies in its file: `start` is its first record header, `end` the byte after
/// its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPos {
    /// Offset of the entry's first record header.
    pub start: u64,
    /// Offset just past the entry's last record.
    pub end: u64,
}

/// Where a probed entry's payload is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PayloadAt {
    /// In the cached block, at this range.
    Block(usize, usize),
    /// Assembled in the caller's buffer.
    Assembled,
}

/// The result of checking the entry that starts at an offset.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe {
    /// A complete, valid entry.
    Complete {
        pos: EntryPos,
        mark: u64,
        payload: PayloadAt,
    },
    /// The file ends before the entry does (a write in progress or torn).
    Incomplete,
    /// A record that breaks a rule, at `at`.
    Bad { at: u64, kind: CorruptKind },
}

/// What follows the last good entry of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailClass {
    /// Only zero bytes (or nothing).
    Zero,
    /// Damage no sync is known to have covered: a torn write. `entries_after` counts complete
    /// entries found behind the damage (all written before any sync covered the damage).
    Torn { entries_after: u64 },
    /// Damage covered by a sync, proven by a later entry's sync mark: corruption. `resume` is
    /// the first complete entry after the damage.
    Corrupt { resume: Option<u64> },
}

/// Result of a scan past damage.
#[derive(Debug, Default, Clone, Copy)]
struct AfterDamage {
    first: Option<u64>,
    count: u64,
    synced_past: bool,
}

enum RecordCheck {
    Valid {
        kind: RecordType,
        len: usize,
        back: u64,
    },
    Incomplete,
    Bad(CorruptKind),
}

/// Reads and validates blocks of one log file through a one-block cache.
pub(crate) struct Scanner {
    src: Arc<dyn ReadAt>,
    path: PathBuf,
    geo: Geometry,
    seed: crc32fast::Hasher,
    blk: Vec<u8>,
    blk_index: Option<u64>,
}

impl Scanner {
    pub(crate) fn new(src: Arc<dyn ReadAt>, path: PathBuf, block_size: u32, file_id: u64) -> Self {
        Scanner {
            src,
            path,
            geo: Geometry::new(block_size),
            seed: crc_seed(file_id),
            blk: Vec::new(),
            blk_index: None,
        }
    }

    pub(crate) fn path(&self) -> &PathBuf {
        &self.path
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    pub(crate) fn file_len(&self) -> io::Result<u64> {
        self.src.len()
    }

    /// Drops the cached block so the next read sees bytes written since.
    pub(crate) fn invalidate(&mut self) {
        self.blk_index = None;
    }

    /// The cached block's bytes in `from..to`.
    pub(crate) fn cached(&self, from: usize, to: usize) -> &[u8] {
        self.blk.get(from..to).unwrap_or(&[])
    }

    fn block_len(&self) -> usize {
        self.geo.block as usize
    }

    fn load(&mut self, index: u64) -> io::Result<()> {
        if self.blk_index == Some(index) {
            return Ok(());
        }
        self.blk_index = None;
        self.blk.resize(self.block_len(), 0);
        let n = self
            .src
            .read_full_at(&mut self.blk, index * self.geo.block)?;
        self.blk.truncate(n);
        self.blk_index = Some(index);
        Ok(())
    }

    /// Checks the record at offset `o` of the cached block, looking at no byte at or past
    /// `limit`.
    fn check_record(&self, o: usize, limit: usize) -> RecordCheck {
        let full = self.block_len();
        let avail = self.blk.get(..limit.min(self.blk.len())).unwrap_or(&[]);
        let Some(h) = avail.get(o..).and_then(RecordHeader::parse) else {
            return if avail.len() < full && o + HDR <= full {
                RecordCheck::Incomplete
            } else {
                RecordCheck::Bad(CorruptKind::RecordLayout)
            };
        };
        let Some(kind) = RecordType::from_u8(h.kind) else {
            return RecordCheck::Bad(CorruptKind::RecordType(h.kind));
        };
        let len = usize::from(h.len);
        if len == 0 || o + HDR + len > full {
            return RecordCheck::Bad(CorruptKind::RecordLayout);
        }
        let Some(covered) = avail.get(o + super::format::REC_TYPE_OFFSET..o + HDR + len) else {
            return RecordCheck::Incomplete;
        };
        if record_crc(&self.seed, covered) != h.crc {
            return RecordCheck::Bad(CorruptKind::Checksum);
        }
        RecordCheck::Valid {
            kind,
            len,
            back: u64::from(h.back),
        }
    }

    /// Checks the whole entry starting at `start`. With `out`, a multi-record entry's payload
    /// is assembled there; a one-record entry's payload stays in the cached block.
    pub(crate) fn probe(&mut self, start: u64, mut out: Option<&mut Vec<u8>>) -> io::Result<Probe> {
        let bs = self.geo.block;
        let bad = |at, kind| Ok(Probe::Bad { at, kind });
        if let Some(o) = out.as_deref_mut() {
            o.clear();
        }
        if start < FILE_HEADER_LEN as u64 || self.geo.entry_start(start) != start {
            return bad(start, CorruptKind::RecordLayout);
        }
        let mut index = start / bs;
        let o = (start % bs) as usize;
        self.load(index)?;
        let (kind, len) = match self.check_record(o, usize::MAX) {
            RecordCheck::Valid { kind, len, back } => {
                if !kind.starts_entry() {
                    return bad(start, CorruptKind::Sequence);
                }
                if back != 0 {
                    return bad(start, CorruptKind::RecordLayout);
                }
                (kind, len)
            }
            RecordCheck::Incomplete => return Ok(Probe::Incomplete),
            RecordCheck::Bad(kind) => return bad(start, kind),
        };
        let body = o + HDR;
        if kind == RecordType::Full {
            if len < SYNC_MARK_LEN {
                return bad(start, CorruptKind::RecordLayout);
            }
            let mark = read_u64(&self.blk, body).unwrap_or(u64::MAX);
            if mark > start {
                return bad(start, CorruptKind::RecordLayout);
            }
            return Ok(Probe::Complete {
                pos: EntryPos {
                    start,
                    end: start + (HDR + len) as u64,
                },
                mark,
                payload: PayloadAt::Block(body + SYNC_MARK_LEN, body + len),
            });
        }
        // FIRST: it must fill its block; MIDDLEs fill theirs; a LAST ends the entry.
        if o + HDR + len != self.block_len() {
            return bad(start, CorruptKind::RecordLayout);
        }
        let mut mark = [0u8; SYNC_MARK_LEN];
        let mut mark_len = 0usize;
        let mut total = 0u64;
        let mut feed = |chunk: &[u8], out: &mut Option<&mut Vec<u8>>| {
            let k = (SYNC_MARK_LEN - mark_len).min(chunk.len());
            if let (Some(dst), Some(src)) = (mark.get_mut(mark_len..mark_len + k), chunk.get(..k)) {
                dst.copy_from_slice(src);
            }
            mark_len += k;
            if let (Some(o), Some(rest)) = (out.as_deref_mut(), chunk.get(k..)) {
                o.extend_from_slice(rest);
            }
        };
        feed(self.cached(body, body + len), &mut out);
        total += len as u64;
        loop {
            index += 1;
            let at = index * bs;
            self.load(index)?;
            let (kind, len) = match self.check_record(0, usize::MAX) {
                RecordCheck::Valid { kind, len, back } => {
                    if back != at - start {
                        return bad(at, CorruptKind::RecordLayout);
                    }
                    (kind, len)
                }
                RecordCheck::Incomplete => return Ok(Probe::Incomplete),
                RecordCheck::Bad(kind) => return bad(at, kind),
            };
            match kind {
                RecordType::Middle if HDR + len == self.block_len() => {}
                RecordType::Middle => return bad(at, CorruptKind::RecordLayout),
                RecordType::Last => {}
                _ => return bad(at, CorruptKind::Sequence),
            }
            total += len as u64;
            if total > MAX_ENTRY_LEN + SYNC_MARK_LEN as u64 {
                return bad(at, CorruptKind::EntryTooLarge);
            }
            feed(self.cached(HDR, HDR + len), &mut out);
            if kind == RecordType::Last {
                let mark = u64::from_le_bytes(mark);
                if mark_len < SYNC_MARK_LEN || mark > start {
                    return bad(start, CorruptKind::RecordLayout);
                }
                return Ok(Probe::Complete {
                    pos: EntryPos {
                        start,
                        end: at + (HDR + len) as u64,
                    },
                    mark,
                    payload: PayloadAt::Assembled,
                });
            }
        }
    }

    /// The last complete, valid entry that ends at or before `limit`. Each step back reads one
    /// block and parses its records forward; a LAST record's entry is checked backwards through
    /// its MIDDLE records first, so crafted back-offsets cost at most one pass over the file.
    pub(crate) fn last_entry_before(&mut self, limit: u64) -> io::Result<Option<EntryPos>> {
        let bs = self.geo.block;
        let limit = limit.min(self.src.len()?);
        if limit < FILE_HEADER_LEN as u64 + MIN_ENTRY_ON_DISK {
            return Ok(None);
        }
        let mut index = (limit - 1) / bs;
        let mut candidates: Vec<(u64, bool)> = Vec::new();
        loop {
            self.load(index)?;
            let at = index * bs;
            let lim = usize::try_from(limit - at).map_or(self.blk.len(), |l| l.min(self.blk.len()));
            let mut o = if index == 0 { FILE_HEADER_LEN } else { 0 };
            candidates.clear();
            let mut damaged_at = None;
            while o + HDR < lim && self.block_len() - o > HDR {
                let RecordCheck::Valid { kind, len, back } = self.check_record(o, lim) else {
                    damaged_at = Some(o);
                    break;
                };
                let fills = o + HDR + len == self.block_len();
                match kind {
                    RecordType::Full if back == 0 => candidates.push((at + o as u64, false)),
                    RecordType::First if back == 0 && fills => {}
                    RecordType::Middle if o == 0 && back > 0 && fills => {}
                    RecordType::Last if o == 0 && back > 0 && back <= at => {
                        candidates.push((at - back, true));
                    }
                    _ => {
                        damaged_at = Some(o);
                        break;
                    }
                }
                o += HDR + len;
            }
            // Entries behind damage in this block come after every candidate before it.
            if let Some(o) = damaged_at {
                let from = at + o as u64 + 1;
                if let Some(pos) = self.last_behind_damage(index, from, at + lim as u64, limit)? {
                    return Ok(Some(pos));
                }
            }
            for i in (0..candidates.len()).rev() {
                let Some(&(start, via_last)) = candidates.get(i) else {
                    continue;
                };
                if via_last && !self.chain_is_intact(index, start)? {
                    continue;
                }
                if let Probe::Complete { pos, .. } = self.probe(start, None)? {
                    if pos.end <= limit {
                        return Ok(Some(pos));
                    }
                }
            }
            if index == 0 {
                return Ok(None);
            }
            index -= 1;
        }
    }

    /// Where the data of a file of length `len` ends, for appending: the end of the last
    /// complete entry, unless an entry between that entry's sync mark (the last point known
    /// durable when it was written) and itself is damaged. Such a hole is what a crash leaves
    /// in a batch no sync covered, and the data ends before it.
    pub(crate) fn end_of_valid_data(&mut self, len: u64) -> io::Result<u64> {
        let Some(last) = self.last_entry_before(len)? else {
            return Ok(FILE_HEADER_LEN as u64);
        };
        let Probe::Complete { mark, .. } = self.probe(last.start, None)? else {
            return Ok(last.end);
        };
        let mut end = mark.max(FILE_HEADER_LEN as u64);
        loop {
            let q = self.geo.entry_start(end);
            if q >= last.start {
                return Ok(last.end);
            }
            match self.probe(q, None)? {
                Probe::Complete { pos, .. } => end = pos.end,
                _ => return Ok(end),
            }
        }
    }

    /// The last complete entry that starts in block `index` between `from` and `to` and ends
    /// at or before `limit`, searched byte by byte (the bytes before `from` are damaged, so
    /// record lengths cannot be followed to find it).
    fn last_behind_damage(
        &mut self,
        index: u64,
        from: u64,
        to: u64,
        limit: u64,
    ) -> io::Result<Option<EntryPos>> {
        let at = index * self.geo.block;
        let mut best = None;
        let mut q = from;
        while q < to {
            let o = (q - at) as usize;
            if self.block_len() - o <= HDR {
                break;
            }
            self.load(index)?;
            if self.could_start_entry(o) {
                if let Probe::Complete { pos, .. } = self.probe(q, None)? {
                    if pos.end <= limit {
                        best = Some(pos);
                        q = pos.end;
                        continue;
                    }
                }
            }
            q += 1;
        }
        Ok(best)
    }

    /// Walks from the LAST record at block `last_index` down to the FIRST record at `start`,
    /// checking each block's MIDDLE record header and checksum.
    fn chain_is_intact(&mut self, last_index: u64, start: u64) -> io::Result<bool> {
        let bs = self.geo.block;
        if start < FILE_HEADER_LEN as u64 {
            return Ok(false);
        }
        let first_index = start / bs;
        let mut k = last_index;
        while k > first_index + 1 {
            k -= 1;
            self.load(k)?;
            match self.check_record(0, usize::MAX) {
                RecordCheck::Valid {
                    kind: RecordType::Middle,
                    len,
                    back,
                } if back == k * bs - start && HDR + len == self.block_len() => {}
                _ => return Ok(false),
            }
        }
        self.load(first_index)?;
        let o = (start % bs) as usize;
        Ok(matches!(
            self.check_record(o, usize::MAX),
            RecordCheck::Valid { kind: RecordType::First, len, back: 0 } if o + HDR + len == self.block_len()
        ))
    }

    /// Whether the record header at `o` of the cached block could start an entry (a cheap
    /// filter before the checksum when searching damaged bytes).
    fn could_start_entry(&self, o: usize) -> bool {
        let Some(h) = self.blk.get(o..).and_then(RecordHeader::parse) else {
            return false;
        };
        let end = o + HDR + usize::from(h.len);
        match RecordType::from_u8(h.kind) {
            Some(RecordType::Full) => {
                h.back == 0 && usize::from(h.len) >= SYNC_MARK_LEN && end <= self.block_len()
            }
            Some(RecordType::First) => h.back == 0 && end == self.block_len(),
            _ => false,
        }
    }

    /// Finds the complete entries after damage that starts at `damaged`, up to `file_len`:
    /// byte by byte through damaged bytes, record by record through healthy ones. Stops early
    /// once an entry's sync mark shows a sync covered the damage.
    fn scan_after_damage(
        &mut self,
        damaged: u64,
        file_len: u64,
        stop_at_first: bool,
    ) -> io::Result<AfterDamage> {
        let bs = self.geo.block;
        let mut found = AfterDamage::default();
        let mut q = damaged + 1;
        let mut bytewise = true;
        loop {
            q = self.geo.entry_start(q);
            if q >= file_len || found.synced_past || (stop_at_first && found.first.is_some()) {
                return Ok(found);
            }
            let index = q / bs;
            let at = index * bs;
            let mut hit = None;
            if bytewise {
                let mut o = (q - at) as usize;
                self.load(index)?;
                while o + HDR < self.blk.len() && self.block_len() - o > HDR {
                    if self.could_start_entry(o) {
                        if let Probe::Complete { pos, mark, .. } =
                            self.probe(at + o as u64, None)?
                        {
                            hit = Some((pos, mark));
                            break;
                        }
                        self.load(index)?;
                    }
                    o += 1;
                }
                bytewise = false;
                if hit.is_none() {
                    q = at + bs;
                    continue;
                }
            } else if q == at {
                // A block may open with the rest of an entry whose start we did not read.
                self.load(index)?;
                if let RecordCheck::Valid {
                    kind: RecordType::Middle | RecordType::Last,
                    len,
                    ..
                } = self.check_record(0, usize::MAX)
                {
                    q = at + (HDR + len) as u64;
                    continue;
                }
            }
            if hit.is_none() {
                match self.probe(q, None)? {
                    Probe::Complete { pos, mark, .. } => hit = Some((pos, mark)),
                    _ => {
                        bytewise = true;
                        q += 1;
                        continue;
                    }
                }
            }
            if let Some((pos, mark)) = hit {
                found.first.get_or_insert(pos.start);
                found.count += 1;
                found.synced_past |= mark > damaged;
                q = pos.end;
            }
        }
    }

    /// Whether every byte in `from..to` is zero.
    /// Reads `buf.len()` bytes at `at` (fewer at the end of the file); returns how many.
    pub(crate) fn read_full_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.src.read_full_at(buf, at)
    }

    pub(crate) fn is_zero(&self, from: u64, to: u64) -> io::Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = from;
        while at < to {
            let want = usize::try_from(to - at).map_or(buf.len(), |w| w.min(buf.len()));
            let chunk = buf.get_mut(..want).unwrap_or(&mut []);
            let n = self.src.read_full_at(chunk, at)?;
            if n == 0 {
                break;
            }
            if chunk.get(..n).is_some_and(|c| c.iter().any(|&b| b != 0)) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// Classifies the bytes from `damaged` (where the next entry should start but none is
    /// complete and valid) to `file_len`.
    pub(crate) fn classify_tail(&mut self, damaged: u64, file_len: u64) -> io::Result<TailClass> {
        if self.is_zero(damaged, file_len)? {
            return Ok(TailClass::Zero);
        }
        let after = self.scan_after_damage(damaged, file_len, false)?;
        if after.synced_past {
            return Ok(TailClass::Corrupt {
                resume: after.first,
            });
        }
        Ok(TailClass::Torn {
            entries_after: after.count,
        })
    }

    /// The first complete entry after damage at `damaged`, if any.
    pub(crate) fn next_entry_after(
        &mut self,
        damaged: u64,
        file_len: u64,
    ) -> io::Result<Option<u64>> {
        Ok(self.scan_after_damage(damaged, file_len, true)?.first)
    }
}
