//! The frame layer: entries of any length as checksummed records in fixed-size blocks, with a
//! writer that repairs torn tails, a forward reader that follows a growing file, and a
//! backward scan (FORMAT.md §2–§5).
//!
//! ```
//! use statelog::backend::FsBackend;
//! use statelog::frame::{LogOptions, LogReader, LogWriter, TailPolicy};
//!
//! # fn main() -> statelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("app.log");
//! let backend = FsBackend::new();
//! let mut log = LogWriter::create(&backend, &path, &LogOptions::default())?;
//! log.append(b"first change")?;
//! log.sync()?; // durable from here on
//! drop(log);
//!
//! // After a restart: reopening repairs a torn tail, if the process died mid-write.
//! let (mut log, _cut) = LogWriter::open(&backend, &path, TailPolicy::TolerateTorn)?;
//! log.append(b"second change")?;
//! log.sync()?;
//!
//! let mut reader = LogReader::open(&backend, &path, false)?;
//! let mut seen = Vec::new();
//! while let Some(entry) = reader.next_entry()? {
//!     seen.push(entry.payload.to_vec());
//! }
//! assert_eq!(seen, [&b"first change"[..], b"second change"]);
//! # Ok(())
//! # }
//! ```
#![deny(clippy::indexing_slicing)]

mod format;
mod reader;
mod scan;
mod writer;

pub use format::{
    BASE_VERSION, DEFAULT_BLOCK_SIZE, FILE_HEADER_LEN, FORMAT_VERSION, FileHeader, MAGIC,
    MAX_BLOCK_SIZE, MAX_ENTRY_LEN, MIN_BLOCK_SIZE, RECORD_HEADER_LEN, RecordType, SYNC_MARK_LEN,
};
pub(crate) use format::{read_u32, read_u64, write_u64};
pub use reader::{Entry, LogReader, Skipped, TailDamage};
pub use scan::EntryPos;
pub use writer::{
    CutTail, DEFAULT_WRITE_BUFFER, LogOptions, LogWriter, TailPolicy, random_file_id,
};
#[cfg(test)]
mod vectors;
