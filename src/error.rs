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
    /// No row under the key (a delete, or a lookup that needs the row).
    #[error(
        "table {table} has no row under key {key}; check the key (or read it with `get`, which \
         returns None for a missing row)"
    )]
    RowNotFound {
        /// The table.
        table: String,
        /// The key as stored (encoded), its bytes outside printable ASCII escaped.
        key: String,
    },
    /// No table of that name in the state read or written.
    #[error(
        "no table {table} here; open it with `Store::table` or `Store::bytes_table` first (a \
         follower or an older state sees it once the writer created it)"
    )]
    TableNotFound {
        /// The table's name.
        table: String,
    },
    /// The table has no unique index of that name in the state read.
    #[error(
        "table {table} has no unique index {index}; declare it in the `TableDef` the table is \
         opened with (a checkpoint's or an epoch's state has no indexes: look rows up by key)"
    )]
    IndexNotFound {
        /// The table.
        table: String,
        /// The index asked for.
        index: String,
    },
    /// No checkpoint is active.
    #[error("no checkpoint is active; activate one first (`Checkpoints::activate`)")]
    NoActiveCheckpoint,
    /// No checkpoint of that name.
    #[error("no checkpoint {name}; `Checkpoints::list` gives the saved ones")]
    CheckpointNotFound {
        /// The name asked for.
        name: String,
    },
    /// A checkpoint's status forbids the operation (activating or restoring a failed one,
    /// failing or deleting the active one, failing one that was active); nothing changed.
    #[error(
        "checkpoint {name} is {status:?} and cannot be {action}; pick another checkpoint (only \
         a pending one can fail, the active one cannot be deleted, a failed one never returns)"
    )]
    CheckpointLifecycle {
        /// The checkpoint.
        name: String,
        /// Its status.
        status: CheckpointStatus,
        /// What was refused ("activated", "failed", "deleted", "restored").
        action: String,
    },
    /// A rewind would cut or continue the fixed epoch of checkpoints; nothing changed.
    #[error(
        "rewinding to epoch {epoch} would change checkpoints {}; restore one of them instead \
         (`Checkpoints::restore`), or delete them first",
        checkpoints.join(", ")
    )]
    RewindRefused {
        /// The epoch asked for.
        epoch: u64,
        /// The checkpoints whose epochs the rewind would change.
        checkpoints: Vec<String>,
    },
    /// The epoch is not (or no longer) retained in the log.
    #[error(
        "epoch {epoch} is not retained; list the retained ones (`EpochReader::epochs`, \
         `statelog inspect`), or keep more (`StoreOptions::keep_epochs`, a checkpoint)"
    )]
    EpochNotRetained {
        /// The epoch asked for.
        epoch: u64,
    },
    /// The directory holds no store (no segment).
    #[error(
        "{} holds no segment files: not a statelog directory; check the path",
        dir.display()
    )]
    NoStore {
        /// The directory.
        dir: PathBuf,
    },
    /// A named lock ([`Store::try_lock`](crate::Store::try_lock)) is held by another holder.
    #[error(
        "named lock {name} is held by {}; wait for it (`Store::lock` or `NamedLock::acquire` \
         with a timeout) or try again once the holder drops its lock or exits",
        match holder {
            Some(p) if *p == std::process::id() => format!("this process ({p})"),
            Some(p) => format!("process {p}"),
            None => "another holder".to_string(),
        }
    )]
    LockHeld {
        /// The lock's name.
        name: String,
        /// The holder's process id, when it could be read (this process's when another
        /// handle or thread of it holds the lock).
        holder: Option<u32>,
    },
    /// A write would break a unique index; nothing was changed.
    #[error("conflict: {table}.{index} already holds this value for another key")]
    Conflict {
        /// The table.
        table: String,
        /// The unique index.
        index: String,
    },
    /// A compare-and-set found another version than the one expected; nothing was changed.
    #[error(
        "version mismatch in table {table} at key {key}: expected {expected}, found {found}; \
         nothing was changed (read the row again and retry with its version)"
    )]
    VersionMismatch {
        /// The table.
        table: String,
        /// The key as stored (encoded), its bytes outside printable ASCII escaped.
        key: String,
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

/// Where a checkpoint is in its lifecycle: saved as pending; activated (demoting the active
/// one, which becomes inactive); a pending one may be marked failed. At most one is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointStatus {
    /// Saved, not yet activated.
    Pending,
    /// The one in force (at most one).
    Active,
    /// Was active; replaced by a newer activation.
    Inactive,
    /// Given up before activation; can never become active.
    Failed,
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
    /// A missing row of `table` under the encoded key `key`.
    pub(crate) fn row_not_found(table: &str, key: &[u8]) -> Self {
        Error::RowNotFound {
            table: table.to_string(),
            key: show_key(key),
        }
    }

    /// A missing table.
    pub(crate) fn table_not_found(table: &str) -> Self {
        Error::TableNotFound {
            table: table.to_string(),
        }
    }

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

/// An encoded key for a message: its bytes, those outside printable ASCII escaped.
pub(crate) fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
