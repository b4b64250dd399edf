//! The transactional engine, the commit and restore paths: the store and its writer (`db`),
//! opened and restored by `open`, with its settings (`options`, derived views in `view`,
//! published off the writer lock by `publish`), its counters (`counters`, read by `stats`)
//! and the feed of durable commits to subscribers (`feed`); write transactions (`txn`, with
//! the claim of the unique indexes a snapshot stored in `claim`, the hints a commit logs for
//! it in `hints`), reads and snapshots
//! (`read`), the state and its image (`state`, its body written by `body`, compressed by
//! `compress`), table handles (`table`), the FORMAT.md §12 payloads (`codec`), the store's
//! internal tables (`internal`) and the version floors kept in one (`floor`), restore's bulk
//! replay (`replay`, reading transactions' rows in place with `in_place`, collecting each
//! table's in `collected`), and
//! compaction beside the writers (`compaction`, one at a time through `gate`, with
//! back-pressure on writers in `pressure`).

mod body;
mod claim;
mod codec;
mod collected;
mod compaction;
mod compress;
mod counters;
mod db;
mod feed;
mod floor;
mod gate;
mod hints;
#[cfg(feature = "stateio")]
mod image;
mod in_place;
mod internal;
mod open;
mod options;
mod pressure;
mod publish;
mod read;
mod replay;
mod state;
mod stats;
mod table;
mod txn;
#[cfg(test)]
mod vectors;
mod view;

pub(crate) use codec::{
    Op, decode_key, decode_transaction, decode_tx, decode_value, encode_key, encode_key_bytes,
    encode_value_bytes,
};
#[cfg(feature = "internals")]
pub(crate) use codec::{TxHints, decode_tx_hinted, encode_tx_hinted};
pub use db::Store;
pub(crate) use feed::{Logged, Sink, table_names};
pub(crate) use floor::renumber_restored;
#[cfg(feature = "stateio")]
pub(crate) use image::BytesTableImage;
#[cfg(feature = "internals")]
pub(crate) use in_place::parse_rows;
pub(crate) use internal::Internal;
pub use open::read_only_snapshot;
pub(crate) use open::replay;
pub use options::StoreOptions;
pub(crate) use read::schema_error;
pub use read::{CommitPos, Readable, Snapshot, TableInfo};
pub(crate) use state::{State, decode_state};
pub use stats::{StoreStats, TableStats};
pub use table::{AnyTable, ApplyLog, BytesTable, Index, Table, TableDef, TxView};
pub(crate) use table::{CHECKPOINT_RECORDS, LOG_KEY_TYPE, VERSION_FLOORS, type_label};
pub use txn::WriteTx;
pub(crate) use txn::{EncodedRow, TableIndexes, apply_indexed, index_keys};
pub use view::DerivedView;
