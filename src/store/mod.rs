//! The store layer: typed tables kept in memory, every transaction one log entry, snapshots
//! written by compaction (FORMAT.md §12).

mod codec;
mod db;
mod read;
mod state;
mod table;
mod txn;

pub(crate) use codec::encode_key;
pub use db::{DerivedView, Store, StoreOptions};
pub use read::{Readable, Snapshot, TableInfo};
pub use table::{AnyTable, BytesTable, Table, TableDef};
pub use txn::WriteTx;
#[cfg(test)]
mod vectors;
