//! The store layer: typed tables kept in memory, every transaction one log entry, snapshots
//! written by compaction (FORMAT.md §12). Three folders, bottom up: a table's rows in memory
//! (`rows`), the transactional engine that commits and restores (`engine`), and what is built
//! on it (`extras`: followers and changes, checkpoints, named locks, backup).

mod engine;
mod extras;
mod rows;

#[cfg(feature = "stateio")]
pub(crate) use engine::BytesTableImage;
pub use engine::{
    AnyTable, ApplyLog, BytesTable, CommitPos, DerivedView, Index, Readable, Snapshot, Store,
    StoreOptions, StoreStats, Table, TableDef, TableInfo, TableStats, TxView, WriteTx,
    read_only_snapshot,
};
pub(crate) use engine::{
    EncodedRow, decode_state, decode_transaction, encode_key, encode_key_bytes, encode_value_bytes,
    index_keys,
};
#[cfg(feature = "internals")]
pub(crate) use engine::{Op, TxHints, decode_tx_hinted, encode_tx_hinted, parse_rows};
pub(crate) use extras::combine_checkpoints;
pub use extras::{
    BackupReport, Change, ChangeFilter, ChangeOp, Changes, Checkpoints, Follower, FollowerOptions,
    NamedLock, PollReport, Subscription, Watcher,
};
#[cfg(feature = "internals")]
pub(crate) use extras::{decode_fence, encode_fence};
pub(crate) use rows::Bytes;
