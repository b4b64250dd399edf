//! Byte layout of log files: the file header and record headers (FORMAT.md §2–§3).
//!
//! Offsets are chained from the previous field's width, so the tables in FORMAT.md can be
//! checked against these constants.

use std::path::Path;

use byteorder::{ByteOrder, LittleEndian};

use crate::error::{CorruptKind, Error, Result};

/// The 8 bytes every statelog log file starts with: `\x89 S L O G \r \n \x1a`. The high bit
/// catches 7-bit transfers, CR LF catches line-ending conversion, and 0x1A stops `type` on
/// some systems (the PNG trick).
pub const MAGIC: [u8; 8] = [0x89, b'S', b'L', b'O', b'G', 0x0D, 0x0A, 0x1A];

/// The newest format version this build reads (and writes, in a file that needs it).
pub const FORMAT_VERSION: u16 = 2;

/// The version a file is written with unless it needs a newer one: version 2 differs only
/// above the frame layer (a segment whose snapshot state is in parts, FORMAT.md §9), so every
/// other file stays readable by builds that know version 1 only.
pub const BASE_VERSION: u16 = 1;

/// Offset of the magic in the file header.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the format version (u16).
pub const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
/// Offset of the flags (u16, must be zero in version 1).
pub const FLAGS_OFFSET: usize = VERSION_OFFSET + size_of::<u16>();
/// Offset of the block size (u32).
pub const BLOCK_SIZE_OFFSET: usize = FLAGS_OFFSET + size_of::<u16>();
/// Offset of the file id (u64) mixed into every record checksum.
pub const FILE_ID_OFFSET: usize = BLOCK_SIZE_OFFSET + size_of::<u32>();
/// Offset of the tag (u32) owned by the layer above (what kind of file this is).
pub const TAG_OFFSET: usize = FILE_ID_OFFSET + size_of::<u64>();
/// Offset of the header checksum (u32, CRC-32 of the bytes before it).
pub const HEADER_CRC_OFFSET: usize = TAG_OFFSET + size_of::<u32>();
/// Length of the file header; the first record starts here.
pub const FILE_HEADER_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();

/// Offset of the record checksum (u32) in a record header.
pub const REC_CRC_OFFSET: usize = 0;
/// Offset of the record type (u8).
pub const REC_TYPE_OFFSET: usize = REC_CRC_OFFSET + size_of::<u32>();
/// Offset of the payload length (u16).
pub const REC_LEN_OFFSET: usize = REC_TYPE_OFFSET + size_of::<u8>();
/// Offset of the back-offset (u32): bytes from the entry's first record to this record.
pub const REC_BACK_OFFSET: usize = REC_LEN_OFFSET + size_of::<u16>();
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = REC_BACK_OFFSET + size_of::<u32>();

/// Length of the sync mark that starts every entry body.
pub const SYNC_MARK_LEN: usize = size_of::<u64>();

/// Block size used unless the caller chooses another.
pub const DEFAULT_BLOCK_SIZE: u32 = 32 * 1024;
/// Smallest allowed block size.
pub const MIN_BLOCK_SIZE: u32 = 1024;
/// Largest allowed block size (a record's u16 length must cover a whole block).
pub const MAX_BLOCK_SIZE: u32 = 64 * 1024;
/// Largest entry payload in bytes (1 GiB); larger entries are refused by the writer and
/// reported as corruption by readers.
pub const MAX_ENTRY_LEN: u64 = 1 << 30;

/// Record types. Type 0 is invalid so zeroed space is never a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// A whole entry in one record.
    Full = 1,
    /// The first record of an entry that continues in the next block.
    First = 2,
    /// A record that fills a whole block in the middle of an entry.
    Middle = 3,
    /// The final record of an entry that started in an earlier block.
    Last = 4,
}

impl RecordType {
    /// Decodes a type byte; `None` for 0 and unknown values.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordType::Full),
            2 => Some(RecordType::First),
            3 => Some(RecordType::Middle),
            4 => Some(RecordType::Last),
            _ => None,
        }
    }

    /// Whether a record of this type starts an entry.
    pub fn starts_entry(self) -> bool {
        matches!(self, RecordType::Full | RecordType::First)
    }
}

/// The fixed header at the start of every log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Format version the file was written with.
    pub version: u16,
    /// Block size in bytes (a power of two between [`MIN_BLOCK_SIZE`] and [`MAX_BLOCK_SIZE`]).
    pub block_size: u32,
    /// Id mixed into every record checksum, so bytes from another file never validate.
    pub file_id: u64,
    /// A value owned by the layer above (what kind of file this is); the frame layer keeps it.
    pub tag: u32,
}

impl FileHeader {
    /// A header of [`BASE_VERSION`].
    pub fn new(file_id: u64, block_size: u32, tag: u32) -> Self {
        FileHeader {
            version: BASE_VERSION,
            block_size,
            file_id,
            tag,
        }
    }

    /// Encodes the header with its checksum.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        let (head, crc) = b.split_at_mut(HEADER_CRC_OFFSET);
        let (magic, rest) = head.split_at_mut(VERSION_OFFSET);
        magic.copy_from_slice(&MAGIC);
        let (version, rest) = rest.split_at_mut(FLAGS_OFFSET - VERSION_OFFSET);
        LittleEndian::write_u16(version, self.version);
        let (flags, rest) = rest.split_at_mut(BLOCK_SIZE_OFFSET - FLAGS_OFFSET);
        LittleEndian::write_u16(flags, 0);
        let (block, rest) = rest.split_at_mut(FILE_ID_OFFSET - BLOCK_SIZE_OFFSET);
        LittleEndian::write_u32(block, self.block_size);
        let (id, tag) = rest.split_at_mut(TAG_OFFSET - FILE_ID_OFFSET);
        LittleEndian::write_u64(id, self.file_id);
        LittleEndian::write_u32(tag, self.tag);
        LittleEndian::write_u32(crc, crc32fast::hash(head));
        b
    }

    /// Decodes and validates a header read from `file`. `bytes` is what could be read from
    /// the start of the file (at most [`FILE_HEADER_LEN`] bytes are looked at).
    pub fn decode(bytes: &[u8], file: &Path) -> Result<Self> {
        let bad = |kind| Error::corrupt(file, 0, kind);
        let magic = bytes.get(..MAGIC.len()).ok_or_else(|| {
            if MAGIC.starts_with(bytes) {
                bad(CorruptKind::ShortHeader)
            } else {
                bad(CorruptKind::BadMagic)
            }
        })?;
        if magic != MAGIC {
            return Err(bad(CorruptKind::BadMagic));
        }
        // The version is read before the checksum: a newer version may lay out the rest of the
        // header differently, and must be reported as such, not as damage.
        let version = read_u16(bytes, VERSION_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        if version > FORMAT_VERSION {
            return Err(Error::Incompatible {
                file: file.to_path_buf(),
                found: u32::from(version),
                supported: u32::from(FORMAT_VERSION),
            });
        }
        let head = bytes
            .get(..HEADER_CRC_OFFSET)
            .ok_or(bad(CorruptKind::ShortHeader))?;
        let stored = read_u32(bytes, HEADER_CRC_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        if crc32fast::hash(head) != stored {
            return Err(bad(CorruptKind::HeaderChecksum));
        }
        let flags = read_u16(bytes, FLAGS_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        let block_size = read_u32(bytes, BLOCK_SIZE_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        let file_id = read_u64(bytes, FILE_ID_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        let tag = read_u32(bytes, TAG_OFFSET).ok_or(bad(CorruptKind::ShortHeader))?;
        if version == 0 || flags != 0 || !valid_block_size(block_size) {
            return Err(bad(CorruptKind::HeaderField));
        }
        Ok(FileHeader {
            version,
            block_size,
            file_id,
            tag,
        })
    }
}

/// Whether `size` is an allowed block size.
pub fn valid_block_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size)
}

/// A parsed record header (not yet checked against its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Stored checksum.
    pub crc: u32,
    /// Raw type byte.
    pub kind: u8,
    /// Payload length.
    pub len: u16,
    /// Bytes from the entry's first record header to this record header.
    pub back: u32,
}

impl RecordHeader {
    /// Parses the record header at the start of `bytes`, if there are enough bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        Some(RecordHeader {
            crc: read_u32(bytes, REC_CRC_OFFSET)?,
            kind: *bytes.get(REC_TYPE_OFFSET)?,
            len: read_u16(bytes, REC_LEN_OFFSET)?,
            back: read_u32(bytes, REC_BACK_OFFSET)?,
        })
    }

    /// Appends an encoded record (header and payload pieces) to `out`.
    pub fn write_record(
        out: &mut Vec<u8>,
        seed: &crc32fast::Hasher,
        kind: RecordType,
        back: u32,
        pieces: &[&[u8]],
    ) {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let len = u16::try_from(len).expect("record payload fits a block");
        let at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        out.push(kind as u8);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&back.to_le_bytes());
        for p in pieces {
            out.extend_from_slice(p);
        }
        let crc = out
            .get(at + REC_TYPE_OFFSET..)
            .map_or(0, |covered| record_crc(seed, covered));
        if let Some(slot) = out.get_mut(at..at + REC_TYPE_OFFSET) {
            slot.copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// A CRC-32 hasher already fed with the file id: the starting state of every record checksum.
pub fn crc_seed(file_id: u64) -> crc32fast::Hasher {
    let mut h = crc32fast::Hasher::new();
    h.update(&file_id.to_le_bytes());
    h
}

/// The checksum of a record: CRC-32 over the file id then `covered` (type, length,
/// back-offset and payload).
pub fn record_crc(seed: &crc32fast::Hasher, covered: &[u8]) -> u32 {
    let mut h = seed.clone();
    h.update(covered);
    h.finalize()
}

/// Reads a little-endian u16 at `at`, if in bounds.
pub fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?).map(LittleEndian::read_u16)
}

/// Reads a little-endian u32 at `at`, if in bounds.
pub fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?).map(LittleEndian::read_u32)
}

/// Reads a little-endian u64 at `at`, if in bounds.
pub fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?).map(LittleEndian::read_u64)
}

/// Writes a little-endian u64 at `at`, if in bounds.
pub fn write_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(dst) = at.checked_add(8).and_then(|end| b.get_mut(at..end)) {
        LittleEndian::write_u64(dst, v);
    }
}

/// Block geometry of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Block size in bytes.
    pub block: u64,
}

impl Geometry {
    /// Geometry for a validated block size.
    pub fn new(block_size: u32) -> Self {
        Geometry {
            block: u64::from(block_size),
        }
    }

    /// Where the next entry starts if data ends at `end`: `end`, or the next block boundary
    /// when too few bytes are left in the block for a record (the rest is zero padding).
    pub fn entry_start(&self, end: u64) -> u64 {
        let end = end.max(FILE_HEADER_LEN as u64);
        let left = self.block - end % self.block;
        if left <= RECORD_HEADER_LEN as u64 {
            end + left
        } else {
            end
        }
    }
}
