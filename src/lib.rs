//! statelog: an embedded, append-only, log-structured state store.
//!
//! Layers, bottom up:
//! - [`backend`]: every file operation, through one small trait.
//! - [`frame`]: checksummed records in fixed-size blocks (the log file format of FORMAT.md).
//! - [`epoch`]: a directory of segments holding epochs (a snapshot and its updates), with
//!   bounded restore, rewind, compaction and group commit.
//!
//! ```
//! use statelog::backend::FsBackend;
//! use statelog::frame::{LogOptions, LogReader, LogWriter, TailPolicy};
//!
//! # fn main() -> statelog::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("app.log");
//! let backend = FsBackend::new();
//!
//! let mut log = LogWriter::create(&backend, &path, &LogOptions::default())?;
//! log.append(b"first change")?;
//! log.append(b"second change")?;
//! log.sync()?; // durable from here on
//! drop(log);
//!
//! // After a restart: reopening repairs a torn tail, if the process died mid-write.
//! let (mut log, _cut) = LogWriter::open(&backend, &path, TailPolicy::TolerateTorn)?;
//! log.append(b"third change")?;
//! log.sync()?;
//!
//! let mut reader = LogReader::open(&backend, &path, false)?;
//! let mut seen = Vec::new();
//! while let Some(entry) = reader.next_entry()? {
//!     seen.push(entry.payload.to_vec());
//! }
//! assert_eq!(seen, [&b"first change"[..], b"second change", b"third change"]);
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

pub mod backend;
pub mod epoch;
mod error;
#[cfg(test)]
mod format_doc;
pub mod frame;
mod store;

pub use epoch::Durability;
pub use error::{CorruptKind, Error, Result};
pub use store::{
    AnyTable, BytesTable, DerivedView, Readable, Snapshot, Store, StoreOptions, Table, TableDef,
    TableInfo, WriteTx,
};
