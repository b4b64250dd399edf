//! The store layer: typed tables kept in memory, every transaction one log entry, snapshots
//! written by compaction (FORMAT.md §12).

#[path = "extras/backup.rs"]
mod backup;
#[path = "rows/base.rs"]
mod base;
#[path = "extras/changes.rs"]
mod changes;
#[path = "extras/checkpoint.rs"]
mod checkpoint;
#[path = "engine/codec.rs"]
mod codec;
#[path = "engine/compaction.rs"]
mod compaction;
#[path = "engine/compress.rs"]
mod compress;
#[path = "engine/db.rs"]
mod db;
#[path = "rows/directory.rs"]
mod directory;
#[path = "extras/follower.rs"]
mod follower;
#[path = "extras/named_lock.rs"]
mod named_lock;
#[path = "engine/read.rs"]
mod read;
#[path = "rows/recent.rs"]
mod recent;
#[path = "engine/replay.rs"]
mod replay;
#[path = "rows/set.rs"]
mod rows;
#[path = "engine/state.rs"]
mod state;
#[path = "engine/table.rs"]
mod table;
#[path = "rows/tail.rs"]
mod tail;
#[path = "engine/txn.rs"]
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
#[path = "engine/vectors.rs"]
mod vectors;
