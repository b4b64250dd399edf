//! The store's internal tables (the checkpoint records, the version floors: FORMAT.md §12.1):
//! typed tables of fixed names and recorded type labels that no program opens as its own,
//! found in a state and created by the first transaction that writes a row of one.

use super::codec::{Op, TableKind, TableMeta};
use super::state::State;
use super::table::Table;
use super::txn::WriteTx;
use crate::error::{Error, Result};

/// An internal table: its name, the key and value types recorded for it, and what it holds
/// (for errors).
pub(crate) struct Internal {
    pub(crate) name: &'static str,
    pub(crate) key_label: &'static str,
    pub(crate) value_label: &'static str,
    pub(crate) holds: &'static str,
}

impl Internal {
    /// The table in `state`, if it has one; a table of that name with other keys is
    /// [`IncompatibleSchema`](Error::IncompatibleSchema).
    pub(crate) fn find<K, V>(&self, state: &State) -> Result<Option<Table<K, V>>> {
        let Some(t) = state.table_by_name(self.name) else {
            return Ok(None);
        };
        if t.meta.kind != TableKind::Typed || t.meta.key_type != self.key_label {
            return Err(Error::IncompatibleSchema {
                table: self.name.to_string(),
                found: format!("keys {}", t.meta.key_type),
                expected: format!("{} (keys {})", self.holds, self.key_label),
            });
        }
        Ok(Some(Table::new(t.meta.id, self.name, Vec::new())))
    }

    /// The table in `tx`'s state, created in `tx` (its `CreateTable` logged before the rows
    /// that follow) if it has none.
    pub(crate) fn find_or_create<K, V>(&self, tx: &mut WriteTx) -> Result<Table<K, V>> {
        if let Some(t) = self.find(&tx.work)? {
            return Ok(t);
        }
        let meta = TableMeta {
            id: tx.work.next_table_id,
            name: self.name.to_string(),
            kind: TableKind::Typed,
            key_type: self.key_label.to_string(),
            value_type: self.value_label.to_string(),
            version: 1,
        };
        let op = Op::CreateTable(meta);
        tx.work.apply(&op).map_err(Error::InvalidArgument)?;
        tx.ops.push(op);
        self.find(&tx.work)?
            .ok_or_else(|| Error::table_not_found(self.name))
    }
}
