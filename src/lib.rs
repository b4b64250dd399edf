//! statelog: an embedded, append-only, log-structured state store.
//!
//! Layers, bottom up:
//! - [`backend`]: every file operation, through one small trait.
//! - [`frame`]: checksummed records in fixed-size blocks (the log file format of FORMAT.md).
//! - [`epoch`]: a directory of segments holding epochs (a snapshot and its updates), with
//!   bounded restore, rewind, compaction and group commit.
//! - The store ([`Store`]): typed tables, transactions, read snapshots, compaction,
//!   [`Checkpoints`], named locks, hot backup; [`Follower`]: a read-only mirror of a store
//!   another process writes, and [`Changes`] since a [`CommitPos`]; [`Store::subscribe`]
//!   pushes durable changes to a [`Subscription`]; [`Store::stats`] says what the store does
//!   (and, with the `tracing` feature, so do `tracing` events).
//! - [`weak`]: weak durability (dirty sets, flushes, the flush worker), two-class bootstrap,
//!   references and repair.
//!
//! Applications keep their state in typed tables in memory; every committed transaction is
//! one checksummed log entry, and on startup the state is restored from the last snapshot
//! plus the transactions after it.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use statelog::{Error, Readable, Store, StoreOptions, TableDef};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Platform {
//!     name: String,
//!     sticky_ttl_s: u32,
//! }
//!
//! # fn main() -> statelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! let mut def = TableDef::<String, Platform>::new("platforms");
//! let by_name = def.unique_index("name", |p| p.name.clone()); // a typed index handle
//! let platforms = store.table(def)?;
//!
//! // A transaction: atomic, durable when `write` returns.
//! store.write(|tx| {
//!     tx.insert(&platforms, &"p1".to_string(), &Platform { name: "default".into(), sticky_ttl_s: 60 })?;
//!     Ok(())
//! })?;
//!
//! // A unique violation is a conflict, and changes nothing.
//! let clash = Platform { name: "default".into(), sticky_ttl_s: 5 };
//! let err = store.write(|tx| tx.insert(&platforms, &"p2".to_string(), &clash)).unwrap_err();
//! assert!(matches!(err, Error::Conflict { .. }));
//!
//! // A read snapshot: O(1), never blocked by writers. Lookups return an Option, by a
//! // borrowed key (`&str` for `String` keys) or through a unique index.
//! let snap = store.read();
//! assert_eq!(snap.get(&platforms, "p1")?.map(|p| p.sticky_ttl_s), Some(60));
//! assert_eq!(snap.get(&platforms, "p2")?, None);
//! assert_eq!(snap.get_by(&by_name, "default")?.map(|(key, _)| key), Some("p1".to_string()));
//!
//! // The application's own error rolls a transaction back and comes back unchanged.
//! #[derive(Debug)]
//! enum AppError { Taken, Store(Error) }
//! impl From<Error> for AppError {
//!     fn from(e: Error) -> Self { AppError::Store(e) }
//! }
//! let r = store.transact(|tx| {
//!     tx.insert(&platforms, &"p3".to_string(), &Platform { name: "p3".into(), sticky_ttl_s: 1 })?;
//!     if tx.get_by(&by_name, "default")?.is_some() {
//!         return Err(AppError::Taken);
//!     }
//!     Ok(())
//! });
//! assert!(matches!(r, Err(AppError::Taken)));
//! drop(snap);
//! drop(store);
//!
//! // After a restart the state is restored.
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! let platforms = store.table(TableDef::<String, Platform>::new("platforms"))?;
//! assert_eq!(store.read().count(&platforms)?, 1);
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

pub mod backend;
pub mod epoch;
mod error;
#[cfg(test)]
mod format_doc;
#[cfg(test)]
mod format_lz4;
pub mod frame;
#[cfg(feature = "internals")]
pub mod fuzzing;
mod store;
mod sync;
pub mod tools;
mod trace;
pub mod weak;

pub use epoch::{Checkpoint, CheckpointStatus, Durability, RecoveryMode};
pub use error::{CorruptKind, Error, Result};
pub use store::{
    AnyTable, ApplyLog, BackupReport, BytesTable, Change, ChangeFilter, ChangeOp, Changes,
    Checkpoints, CommitPos, DerivedView, Follower, FollowerOptions, Index, NamedLock, PollReport,
    Readable, Snapshot, Store, StoreOptions, StoreStats, Subscription, Table, TableDef, TableInfo,
    TableStats, TxView, Watcher, WriteTx, read_only_snapshot,
};
