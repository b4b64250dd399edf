//! The one public error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A specialized `Result` for statelog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in statelog, one variant per thing a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a file or directory.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk failed a checksum or a structural rule. The data at `offset` is never
    /// served.
    #[error(
        "{} is damaged at offset {offset}: {kind} (run `statelog verify` on the directory)",
        file.display()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first damaged structure in `file`.
        offset: u64,
        /// What rule the bytes broke.
        kind: CorruptKind,
    },
    /// Another writer holds the directory lock (in this process or another one).
    #[error(
        "{} is locked by {}; close that writer first, or open read-only",
        path.display(),
        match pid { Some(p) => format!("process {p}"), None => "another writer".to_string() }
    )]
    Locked {
        /// The locked directory.
        path: PathBuf,
        /// The process id recorded by the lock holder, when it could be read.
        pid: Option<u32>,
    },
    /// A named lock was still held by another holder when the wait for it ran out.
    #[error(
        "lock {name} is still held by {} after waiting {waited:?}; retry later or wait longer",
        match holder { Some(p) => format!("process {p}"), None => "another holder".to_string() }
    )]
    LockTimeout {
        /// The lock's name.
        name: String,
        /// How long the caller waited.
        waited: std::time::Duration,
        /// The process id of the holder, when it could be read.
        holder: Option<u32>,
    },
    /// An earlier write or sync failed, so nothing later can be acknowledged as durable.
    /// Reads go on; reopen to write again.
    #[error("writes are refused after an earlier failure ({cause}); reopen to recover")]
    Poisoned {
        /// The failure that poisoned the writer.
        cause: String,
    },
    /// The file was written by a format version this build cannot read.
    #[error(
        "{} uses format version {found}, this build supports versions up to {supported}; \
         upgrade statelog",
        file.display()
    )]
    Incompatible {
        /// The file with the unsupported version.
        file: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Something asked for does not exist (a row, an epoch that is not retained).
    #[error("not found: {0}")]
    NotFound(String),
    /// A write would break a unique index; nothing was changed.
    #[error("conflict: {table}.{index} already holds this value for another key")]
    Conflict {
        /// The table.
        table: String,
        /// The unique index.
        index: String,
    },
    /// A compare-and-set found another version than the one expected; nothing was changed.
    #[error("version mismatch: expected {expected}, found {found}")]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// A table's validator ([`TableDef::validate`](crate::TableDef::validate)) refused the
    /// transaction; nothing was committed. The validator's own error is the source.
    #[error(
        "table {table} refused the transaction: {reason}; nothing was committed (change the \
         transaction so that the table's validator accepts it)"
    )]
    Rejected {
        /// The table whose validator refused.
        table: String,
        /// The validator's error (downcast it to the validator's type).
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A version or id counter would pass its maximum.
    #[error("overflow: {0}")]
    Overflow(String),
    /// A table on disk was written with other types or a schema version this program cannot
    /// read (and no migration was registered). Not corruption: the bytes are intact.
    #[error("table {table}: stored as {found}, opened as {expected}")]
    IncompatibleSchema {
        /// The table.
        table: String,
        /// What the store holds.
        found: String,
        /// What the program asked for.
        expected: String,
    },
    /// Several operations failed (closing two stores, for example); each error is kept.
    #[error("{} errors: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
    /// An argument is out of range (for example an entry larger than the maximum size).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Something to be written is larger than a reader accepts (FORMAT.md's limits); nothing
    /// was written. The writer enforces every limit its reader enforces.
    #[error(
        "{what} of {size} bytes exceeds the limit of {limit} bytes that readers accept; \
         nothing was written"
    )]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A checkpoint of this name exists and holds another state than the one being saved;
    /// nothing was written.
    #[error(
        "checkpoint {name} exists with another state; choose another name, delete it first,          or save with save_replacing"
    )]
    CheckpointExists {
        /// The checkpoint's name.
        name: String,
    },
}

/// The rule a damaged structure broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// The file does not start with the statelog magic: not a statelog file.
    BadMagic,
    /// The file header's checksum does not match.
    HeaderChecksum,
    /// A header field is out of range (block size, reserved bits).
    HeaderField,
    /// The file is shorter than its header.
    ShortHeader,
    /// A record's checksum does not match its bytes.
    Checksum,
    /// A record type that is not defined (0 or unknown).
    RecordType(u8),
    /// A record length or back-offset that does not fit the block structure.
    RecordLayout,
    /// Records out of order (a continuation without a start, or a start inside an entry).
    Sequence,
    /// An entry longer than the format allows.
    EntryTooLarge,
    /// The file ends inside an entry.
    Incomplete,
    /// A structure inside an entry (a layer above the frame) is malformed.
    Payload,
    /// An entry kind that is not defined (0 or unknown).
    EntryKind(u8),
    /// An update that names another epoch than the one it is stored in.
    WrongEpoch {
        /// The epoch of the segment.
        expected: u64,
        /// The epoch the entry names.
        found: u64,
    },
    /// A segment is missing, or does not continue the segment before it.
    BrokenChain,
    /// A segment that a later one follows does not end with a seal.
    Unsealed,
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptKind::BadMagic => f.write_str("not a statelog file (bad magic)"),
            CorruptKind::HeaderChecksum => f.write_str("file header checksum mismatch"),
            CorruptKind::HeaderField => f.write_str("file header field out of range"),
            CorruptKind::ShortHeader => f.write_str("file shorter than its header"),
            CorruptKind::Checksum => f.write_str("record checksum mismatch"),
            CorruptKind::RecordType(t) => write!(f, "invalid record type {t}"),
            CorruptKind::RecordLayout => f.write_str("record length or back-offset out of range"),
            CorruptKind::Sequence => f.write_str("record out of sequence"),
            CorruptKind::EntryTooLarge => f.write_str("entry exceeds the maximum size"),
            CorruptKind::Incomplete => f.write_str("file ends inside an entry"),
            CorruptKind::Payload => f.write_str("malformed entry payload"),
            CorruptKind::EntryKind(k) => write!(f, "invalid entry kind {k}"),
            CorruptKind::WrongEpoch { expected, found } => {
                write!(f, "update of epoch {found} in epoch {expected}")
            }
            CorruptKind::BrokenChain => f.write_str("segment missing or out of sequence"),
            CorruptKind::Unsealed => f.write_str("segment ends without a seal"),
        }
    }
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption error at `offset` of `file`.
    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, kind: CorruptKind) -> Self {
        Error::Corrupt {
            file: file.into(),
            offset,
            kind,
        }
    }
}
