//! The models the bodies compare a store with: its rows as plain maps.

use std::collections::BTreeMap;

use crate::{Error, Readable, Snapshot};

/// The rows of the store's two tables: "kv" (`Table<u8, u32>`) and "raw" (bytes).
pub(super) type StoreModel = (BTreeMap<u8, u32>, BTreeMap<Vec<u8>, Vec<u8>>);

/// Reads the two tables of a [`StoreModel`] from a snapshot (an absent table is empty).
pub(super) fn read_model(snap: &Snapshot) -> crate::Result<StoreModel> {
    let kv = match snap.table_named::<u8, u32>("kv") {
        Ok(t) => snap.list(&t)?.into_iter().collect(),
        Err(Error::TableNotFound { .. }) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    let raw = match snap.raw_rows("raw") {
        Ok(rows) => rows.map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        Err(Error::TableNotFound { .. }) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok((kv, raw))
}

/// The rows of the `Table<u8, u32>` named "kv" that `store_ops` drives.
pub(super) type Kv = BTreeMap<u8, u32>;
