//! The store layer: typed tables kept in memory, every transaction one log entry, snapshots
//! written by compaction (FORMAT.md §12).

mod backup;
mod base;
mod changes;
mod checkpoint;
mod codec;
mod compaction;
mod compress;
mod db;
mod directory;
mod follower;
mod named_lock;
mod read;
mod recent;
mod replay;
mod rows;
mod state;
mod table;
mod tail;
mod txn;

pub(crate) use codec::{Bytes, encode_key, encode_key_bytes, encode_value_bytes};
pub(crate) use txn::{EncodedRow, index_keys};

/// Whether `b` decodes as a store transaction (for verification).
pub(crate) fn decode_transaction(b: &[u8]) -> Result<(), String> {
    codec::decode_tx(b).map(|_| ())
}

/// Whether `b` decodes as a store state image (for verification).
pub(crate) fn decode_state(b: &[u8]) -> Result<(), String> {
    state::State::decode_snapshot(b).map(|_| ())
}
pub use backup::BackupReport;
pub use changes::{Change, ChangeOp, Changes, CommitPos};
pub use checkpoint::Checkpoints;
pub use db::{DerivedView, Store, StoreOptions, read_only_snapshot};
pub use follower::{Follower, FollowerOptions, PollReport, Watcher};
pub use named_lock::NamedLock;
pub use read::{Readable, Snapshot, TableInfo};
pub use table::{AnyTable, BytesTable, Table, TableDef};
pub use txn::WriteTx;
#[cfg(test)]
mod vectors;
