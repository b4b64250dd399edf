//! Appending entries to a log file, and reopening one for append after a crash.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    BASE_VERSION, DEFAULT_BLOCK_SIZE, FILE_HEADER_LEN, FORMAT_VERSION, FileHeader, Geometry,
    MAX_ENTRY_LEN, RECORD_HEADER_LEN, RecordHeader, RecordType, SYNC_MARK_LEN, crc_seed,
    valid_block_size,
};
use super::scan::{EntryPos, Probe, Scanner, TailClass};
use crate::backend::{Backend, FileHandle};
use crate::error::{CorruptKind, Error, Result};

/// Settings for a new log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Id mixed into every record checksum; random by default. Give each file its own.
    pub file_id: u64,
    /// Block size: a power of two from 1 KiB to 64 KiB (default 32 KiB).
    pub block_size: u32,
    /// A value kept in the header for the layer above.
    pub tag: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            file_id: random_file_id(),
            block_size: DEFAULT_BLOCK_SIZE,
            tag: 0,
        }
    }
}

/// A fresh random file id (from the standard library's randomly seeded hasher, the time and
/// the process id).
pub fn random_file_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// What opening for append does with bytes after the last complete entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TailPolicy {
    /// Any non-zero bytes after the last complete entry are an error.
    Strict,
    /// A torn write is cut (its bytes saved aside); damage that a later entry proves was
    /// synced is an error.
    #[default]
    TolerateTorn,
    /// Everything after the last complete entry is cut (saved aside), even proven corruption.
    CutAll,
}

/// What was cut from the end of a file when it was opened for append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutTail {
    /// Where the file now ends (the end of the last complete entry).
    pub offset: u64,
    /// How many bytes were cut.
    pub len: u64,
    /// Whether the cut bytes were all zero (nothing was lost).
    pub zeroed: bool,
    /// Whether a later entry proved the damage had been synced (cut only under
    /// [`TailPolicy::CutAll`]).
    pub corrupt: bool,
    /// Complete entries found behind the damage and cut with it.
    pub entries_cut: u64,
    /// The side file that keeps the cut bytes (none when they were all zero).
    pub saved_to: Option<PathBuf>,
}

/// The least a writer reserves at a time ahead of its data (or its whole step, if smaller).
const MIN_RESERVE: u64 = 64 * 1024;

/// Default bytes buffered in memory before they are written to the file.
pub const DEFAULT_WRITE_BUFFER: usize = 256 * 1024;

/// Appends entries to one log file. Entries are buffered in memory and written when the
/// buffer fills, on [`flush`](Self::flush) and on [`sync`](Self::sync); only `sync` makes them
/// durable. After any write or sync error the writer is poisoned.
pub struct LogWriter {
    handle: Arc<dyn FileHandle>,
    path: PathBuf,
    header: FileHeader,
    geo: Geometry,
    seed: crc32fast::Hasher,
    buf: Vec<u8>,
    buffer_limit: usize,
    /// File offset of `buf[0]`: everything before it was written to the file.
    flushed: u64,
    /// End of the data written or buffered.
    end: u64,
    /// End of the data known durable.
    synced: u64,
    /// The file's length as far as this writer extended it: the data's end, or more when
    /// space is reserved ahead of it.
    reserved: u64,
    /// Bytes reserved at a time ahead of the data (0: none).
    reserve_step: u64,
    bytes_appended: u64,
    poisoned: Option<String>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("end", &self.end)
            .field("synced", &self.synced)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Creates a new log file (an error if it exists) and makes its header durable.
    pub fn create(backend: &dyn Backend, path: &Path, options: &LogOptions) -> Result<Self> {
        Self::create_version(backend, path, options, BASE_VERSION)
    }

    /// [`create`](Self::create) with the header's format `version` (1 or 2; FORMAT.md §9):
    /// the layer above asks for 2 in a file whose content a version-1 reader must refuse.
    pub fn create_version(
        backend: &dyn Backend,
        path: &Path,
        options: &LogOptions,
        version: u16,
    ) -> Result<Self> {
        if version == 0 || version > FORMAT_VERSION {
            return Err(Error::InvalidArgument(format!(
                "format version {version} is not one this build writes (1 to {FORMAT_VERSION})"
            )));
        }
        if !valid_block_size(options.block_size) {
            return Err(Error::InvalidArgument(format!(
                "block size {} is not a power of two between 1 KiB and 64 KiB",
                options.block_size
            )));
        }
        let mut header = FileHeader::new(options.file_id, options.block_size, options.tag);
        header.version = version;
        let handle = backend.create(path).map_err(|e| Error::io(path, e))?;
        handle
            .write_at(&header.encode(), 0)
            .and_then(|()| handle.sync_data())
            .map_err(|e| Error::io(path, e))?;
        let start = FILE_HEADER_LEN as u64;
        Ok(Self::with_end(handle, path, header, start))
    }

    /// Opens an existing log file for append. Bytes after the last complete entry are handled
    /// by `policy`; cut bytes are first saved to a side file `<name>.<offset>.broken` beside
    /// it. Returns what was cut, if anything.
    pub fn open(
        backend: &dyn Backend,
        path: &Path,
        policy: TailPolicy,
    ) -> Result<(Self, Option<CutTail>)> {
        Self::open_certified(backend, path, policy, None)
    }

    /// Like [`open`](Self::open); with `certified`, every byte after that offset (an entry's
    /// end) is cut as well, saved aside like a torn tail: a sync that covered them failed, so
    /// they must never be certified by a later sync mark.
    pub fn open_certified(
        backend: &dyn Backend,
        path: &Path,
        policy: TailPolicy,
        certified: Option<u64>,
    ) -> Result<(Self, Option<CutTail>)> {
        let io_err = |e| Error::io(path, e);
        let handle = backend.open(path).map_err(io_err)?;
        let header = read_header(&*handle, path)?;
        let len = handle.len().map_err(io_err)?;
        let mut scan = Scanner::new(
            handle.clone(),
            path.to_path_buf(),
            header.block_size,
            header.file_id,
        );
        let end = scan.end_of_valid_data(len).map_err(io_err)?;
        let mut cut = None;
        if let Some(at) = certified.filter(|&at| at < len && at >= FILE_HEADER_LEN as u64) {
            let at = at.min(end);
            // The bytes were never acknowledged: keeping them is a courtesy, and a full disk
            // (often why the sync failed) must not keep the store from opening.
            let saved_to = save_aside(backend, &*handle, path, at, len).ok();
            handle
                .set_len(at)
                .and_then(|()| handle.sync_all())
                .map_err(io_err)?;
            let cut = CutTail {
                offset: at,
                len: len - at,
                zeroed: false,
                corrupt: false,
                entries_cut: 0,
                saved_to,
            };
            return Ok((Self::with_end(handle, path, header, at), Some(cut)));
        }
        if end < len {
            let class = scan.classify_tail(end, len).map_err(io_err)?;
            let (zeroed, corrupt, entries_cut) = match class {
                TailClass::Zero => (true, false, 0),
                TailClass::Torn { entries_after } => (false, false, entries_after),
                TailClass::Corrupt { .. } => (false, true, 0),
            };
            let refuse = match policy {
                TailPolicy::Strict => !zeroed,
                TailPolicy::TolerateTorn => corrupt,
                TailPolicy::CutAll => false,
            };
            if refuse {
                return Err(damage_at(&mut scan, end, path)?);
            }
            let saved_to = if zeroed {
                None
            } else {
                match save_aside(backend, &*handle, path, end, len) {
                    Ok(p) => Some(p),
                    // A full disk: the store must still open (the torn bytes were never
                    // acknowledged); they are cut without a copy.
                    Err(Error::Io { source, .. })
                        if source.kind() == io::ErrorKind::StorageFull =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                }
            };
            handle
                .set_len(end)
                .and_then(|()| handle.sync_all())
                .map_err(io_err)?;
            cut = Some(CutTail {
                offset: end,
                len: len - end,
                zeroed,
                corrupt,
                entries_cut,
                saved_to,
            });
        }
        // What is on disk may not have been synced by the process that wrote it; make it
        // durable before new entries' sync marks claim it is.
        handle.sync_data().map_err(io_err)?;
        Ok((Self::with_end(handle, path, header, end), cut))
    }

    fn with_end(handle: Arc<dyn FileHandle>, path: &Path, header: FileHeader, end: u64) -> Self {
        LogWriter {
            handle,
            path: path.to_path_buf(),
            geo: Geometry::new(header.block_size),
            seed: crc_seed(header.file_id),
            header,
            buf: Vec::new(),
            buffer_limit: DEFAULT_WRITE_BUFFER,
            flushed: end,
            end,
            synced: end,
            reserved: end,
            reserve_step: 0,
            bytes_appended: 0,
            poisoned: None,
        }
    }

    /// Sets how many bytes are buffered before a write (0 writes every entry at once).
    pub fn set_write_buffer(&mut self, bytes: usize) {
        self.buffer_limit = bytes;
    }

    /// Reserves file space ahead of the data, up to `step` bytes at a time (0: never): as
    /// much as the file holds, at least 64 KiB, at most `step`. A sync of
    /// data written into reserved space need not make a new file length durable each time,
    /// which makes it faster on common file systems. The reserved bytes read as zeros, which
    /// readers take for the end of the data (FORMAT.md §5.3); [`trim`](Self::trim) gives them
    /// back. If reserving fails, the writer stops reserving and goes on.
    pub fn set_reserve_step(&mut self, step: u64) {
        self.reserve_step = step;
    }

    /// Gives back the space reserved past the data (the file length becomes the data's end)
    /// and reserves no more: done before a file's last entry. Flushes buffered entries first.
    pub fn trim(&mut self) -> Result<()> {
        self.flush()?;
        self.reserve_step = 0;
        // The file's own length, not only what this writer reserved: a reservation that
        // failed may still have extended it.
        let len = match self.handle.len() {
            Ok(len) => len,
            Err(e) => return Err(self.poison(e)),
        };
        if len > self.end {
            if let Err(e) = self.handle.set_len(self.end) {
                return Err(self.poison(e));
            }
        }
        self.reserved = self.end;
        Ok(())
    }

    /// The file's header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// End of the data appended so far (written or buffered).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Where the next entry will start.
    pub fn next_entry_start(&self) -> u64 {
        self.geo.entry_start(self.end)
    }

    /// End of the data known to be durable.
    pub fn durable_end(&self) -> u64 {
        self.synced
    }

    /// Bytes this writer has appended (records and padding).
    pub fn bytes_appended(&self) -> u64 {
        self.bytes_appended
    }

    /// The underlying file, for readers of the same file.
    pub fn handle(&self) -> Arc<dyn FileHandle> {
        self.handle.clone()
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, e: io::Error) -> Error {
        self.poisoned = Some(e.to_string());
        Error::io(&self.path, e)
    }

    /// Appends one entry (any length up to [`MAX_ENTRY_LEN`], 0 included) and returns where it
    /// lies. It is durable after the next [`sync`](Self::sync).
    pub fn append(&mut self, payload: &[u8]) -> Result<EntryPos> {
        self.check_poisoned()?;
        if payload.len() as u64 > MAX_ENTRY_LEN {
            return Err(Error::InvalidArgument(format!(
                "entry of {} bytes exceeds the maximum of {MAX_ENTRY_LEN}",
                payload.len()
            )));
        }
        let start = self.next_entry_start();
        let padding = start - self.end;
        self.buf.resize(self.buf.len() + padding as usize, 0);
        let mark = self.synced.to_le_bytes();
        let total = SYNC_MARK_LEN + payload.len();
        let mut done = 0usize;
        let mut pos = start;
        loop {
            let avail = (self.geo.block - pos % self.geo.block) as usize - RECORD_HEADER_LEN;
            let take = (total - done).min(avail);
            let kind = match (done == 0, done + take == total) {
                (true, true) => RecordType::Full,
                (true, false) => RecordType::First,
                (false, false) => RecordType::Middle,
                (false, true) => RecordType::Last,
            };
            // The chunk covers body bytes done..done+take of mark ++ payload.
            let mark_part = mark.get(done.min(SYNC_MARK_LEN)..(done + take).min(SYNC_MARK_LEN));
            let pay_from = done.saturating_sub(SYNC_MARK_LEN);
            let pay_to = (done + take).saturating_sub(SYNC_MARK_LEN);
            let pieces = [
                mark_part.unwrap_or(&[]),
                payload.get(pay_from..pay_to).unwrap_or(&[]),
            ];
            let back = u32::try_from(pos - start).expect("entries are smaller than 4 GiB");
            RecordHeader::write_record(&mut self.buf, &self.seed, kind, back, &pieces);
            pos += (RECORD_HEADER_LEN + take) as u64;
            done += take;
            if done == total {
                break;
            }
        }
        self.bytes_appended += pos - self.end;
        self.end = pos;
        if self.buf.len() >= self.buffer_limit {
            self.flush()?;
        }
        Ok(EntryPos { start, end: pos })
    }

    /// Appends one entry and writes it to the file at once, all written before; on a failed
    /// write the entry is forgotten (the writer is as before it, not poisoned) and the next
    /// append writes over whatever part of it reached the file. For entries that only help
    /// readers (a durability mark), where a full disk must not stop the log.
    pub fn try_append_written(&mut self, payload: &[u8]) -> Result<EntryPos> {
        self.flush()?;
        let (end, appended) = (self.end, self.bytes_appended);
        let limit = std::mem::replace(&mut self.buffer_limit, usize::MAX);
        let pos = self.append(payload);
        self.buffer_limit = limit;
        let pos = pos?;
        if let Err(e) = self.handle.write_at(&self.buf, self.flushed) {
            self.buf.clear();
            (self.end, self.bytes_appended) = (end, appended);
            return Err(Error::io(&self.path, e));
        }
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        self.release_large_buffer();
        Ok(pos)
    }

    /// Appends one entry and makes everything appended durable, writing the buffered bytes
    /// `step` at a time, each piece synced before the next is written: the disk never has
    /// more than `step` bytes of this file to write back at once, so the fsyncs of other files
    /// on it (commits beside a compaction writing a snapshot part) never queue behind a large
    /// flush. Returns where the entry lies.
    pub fn append_synced_in_steps(&mut self, payload: &[u8], step: usize) -> Result<EntryPos> {
        let limit = std::mem::replace(&mut self.buffer_limit, usize::MAX);
        let pos = self.append(payload);
        self.buffer_limit = limit;
        let pos = pos?;
        let step = step.max(1);
        let mut from = 0;
        while self.buf.len() - from > step {
            let piece = self.buf.get(from..from + step).unwrap_or_default();
            if let Err(e) = self.handle.write_at(piece, self.flushed) {
                return Err(self.poison(e));
            }
            self.flushed += step as u64;
            from += step;
            if let Err(e) = self.handle.sync_data() {
                return Err(self.poison(e));
            }
        }
        self.buf.drain(..from);
        self.sync()?;
        Ok(pos)
    }

    /// Writes buffered entries to the file (not yet durable).
    pub fn flush(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let upto = self.flushed + self.buf.len() as u64;
        if self.reserve_step > 0 && upto > self.reserved {
            // A small file reserves little (as much as it holds, at least 64 KiB), a large
            // one up to a whole step: short-lived files cost little, busy ones extend rarely.
            let step = self.reserve_step.min(upto.max(MIN_RESERVE));
            let want = upto
                .saturating_add(step)
                .div_ceil(4096)
                .saturating_mul(4096);
            match self.handle.preallocate(want) {
                Ok(()) => self.reserved = want,
                // Reserving is an optimization: the write below decides whether data is lost.
                Err(_) => self.reserve_step = 0,
            }
        }
        if let Err(e) = self.handle.write_at(&self.buf, self.flushed) {
            return Err(self.poison(e));
        }
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        self.release_large_buffer();
        Ok(())
    }

    /// Gives back a buffer a large entry (a snapshot part) grew far past the buffer
    /// limit: the writer lives on with the epoch, and small appends never need it again.
    fn release_large_buffer(&mut self) {
        let keep = self
            .buffer_limit
            .min(DEFAULT_WRITE_BUFFER)
            .saturating_mul(2);
        if self.buf.capacity() > keep {
            self.buf.shrink_to(keep);
        }
    }

    /// First half of a sync that runs without holding the writer (group commit): writes the
    /// buffered entries and returns the file to sync and the end that sync will cover. Pass
    /// the outcome to [`finish_sync`](Self::finish_sync).
    pub fn begin_sync(&mut self) -> Result<(Arc<dyn FileHandle>, u64)> {
        self.flush()?;
        Ok((self.handle.clone(), self.end))
    }

    /// Second half of a sync started with [`begin_sync`](Self::begin_sync): on success the
    /// data up to `upto` is durable; on failure the writer is poisoned.
    pub fn finish_sync(&mut self, upto: u64, outcome: io::Result<()>) -> Result<u64> {
        match outcome {
            Ok(()) => {
                self.synced = self.synced.max(upto);
                Ok(self.synced)
            }
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Records that the file was renamed (the handle stays valid).
    pub fn set_path(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    /// Whether an earlier failure poisoned the writer.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Writes buffered entries and makes everything appended so far durable; returns the
    /// durable end.
    pub fn sync(&mut self) -> Result<u64> {
        self.flush()?;
        if self.synced == self.end {
            return Ok(self.synced);
        }
        if let Err(e) = self.handle.sync_data() {
            return Err(self.poison(e));
        }
        self.synced = self.end;
        Ok(self.synced)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Best effort: buffered entries reach the OS. Durability is only ever claimed by sync.
        if self.poisoned.is_none() {
            let _ = self.flush();
        }
    }
}

/// Reads and validates the header of a log file.
pub(crate) fn read_header(src: &dyn crate::backend::ReadAt, path: &Path) -> Result<FileHeader> {
    let mut bytes = [0u8; FILE_HEADER_LEN];
    let n = src
        .read_full_at(&mut bytes, 0)
        .map_err(|e| Error::io(path, e))?;
    FileHeader::decode(bytes.get(..n).unwrap_or(&[]), path)
}

/// The corruption error for the first bad record at or after `end`.
fn damage_at(scan: &mut Scanner, end: u64, path: &Path) -> Result<Error> {
    let start = scan.geometry().entry_start(end);
    let (at, kind) = match scan.probe(start, None).map_err(|e| Error::io(path, e))? {
        Probe::Bad { at, kind } => (at, kind),
        _ => (start, CorruptKind::Incomplete),
    };
    Ok(Error::corrupt(path, at, kind))
}

/// Copies `from..to` of the file into a durable side file and returns its path.
fn save_aside(
    backend: &dyn Backend,
    src: &dyn FileHandle,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let side = path.with_file_name(format!("{name}.{from:016x}.broken"));
    let io_err = |e| Error::io(&side, e);
    if backend.exists(&side).map_err(io_err)? {
        backend.remove(&side).map_err(io_err)?;
    }
    let out = backend.create(&side).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let want = usize::try_from(to - at).map_or(buf.len(), |w| w.min(buf.len()));
        let chunk = buf.get_mut(..want).unwrap_or(&mut []);
        let n = src
            .read_full_at(chunk, at)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        out.write_at(chunk.get(..n).unwrap_or(&[]), at - from)
            .map_err(io_err)?;
        at += n as u64;
    }
    out.sync_data().map_err(io_err)?;
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SimBackend;

    /// A large entry (a snapshot part) grows the buffer; once written, the writer, which
    /// lives on with the epoch, gives that memory back.
    #[test]
    fn a_large_entry_does_not_leave_a_large_buffer() {
        let be = SimBackend::new(1);
        be.create_dir_all(Path::new("/d")).expect("dir");
        let path = Path::new("/d/0000000000000001.seg");
        let mut w = LogWriter::create(&be, path, &LogOptions::default()).expect("create");
        let big = vec![7u8; 4 * DEFAULT_WRITE_BUFFER];
        w.append(&big).expect("append");
        w.flush().expect("flush");
        assert!(w.buf.capacity() <= 2 * DEFAULT_WRITE_BUFFER);
        w.try_append_written(&big).expect("written");
        assert!(w.buf.capacity() <= 2 * DEFAULT_WRITE_BUFFER);
        // Small appends still work and are read back.
        w.append(b"small").expect("append");
        w.sync().expect("sync");
        let mut r = crate::frame::LogReader::open(&be, path, false).expect("open");
        let mut entries = Vec::new();
        while let Some(e) = r.next_entry().expect("entry") {
            entries.push(e.payload.to_vec());
        }
        assert_eq!(entries.len(), 3);
        assert_eq!(entries.last().map(Vec::as_slice), Some(&b"small"[..]));
    }

    /// A large entry written in synced steps: each step is durable before the next is
    /// written (a failed second sync leaves exactly the first step durable, and poisons the
    /// writer), and when all went well the whole entry is durable and reads back.
    #[test]
    fn an_entry_synced_in_steps_is_durable_step_by_step() {
        use crate::backend::{Fault, FaultKind, OpKind};
        let step = 1 << 20;
        let big: Vec<u8> = (0..(3 * step + step / 2)).map(|i| i as u8).collect();
        let be = SimBackend::new(2);
        be.create_dir_all(Path::new("/d")).expect("dir");
        let path = Path::new("/d/0000000000000001.seg");
        let mut w = LogWriter::create(&be, path, &LogOptions::default()).expect("create");
        w.sync().expect("header");
        let start = w.end();
        be.inject(Fault {
            op: OpKind::Sync,
            nth: 2,
            kind: FaultKind::Eio,
        });
        assert!(w.append_synced_in_steps(&big, step).is_err());
        assert!(w.is_poisoned());
        let durable = be.durable_bytes(path).expect("file").len() as u64;
        assert_eq!(durable, start + step as u64, "one step durable");
        // Without a fault: all of it, in one entry.
        let path = Path::new("/d/0000000000000002.seg");
        let mut w = LogWriter::create(&be, path, &LogOptions::default()).expect("create");
        let pos = w.append_synced_in_steps(&big, step).expect("append");
        assert_eq!(w.durable_end(), pos.end);
        assert_eq!(be.durable_bytes(path), be.file_bytes(path));
        let mut r = crate::frame::LogReader::open(&be, path, false).expect("open");
        let e = r.next_entry().expect("entry").expect("one");
        assert_eq!(e.payload, &big[..]);
    }
}
