//! Version floors (issue 22): a row's version never repeats for its key, also after the row
//! is deleted and inserted again, so a compare-and-set holding a version of the old row
//! cannot succeed on the new one (ABA). Each table with deleted rows has a floor, the highest
//! version a deleted row of it had; a row inserted where none is starts above it. The floors
//! are the rows of the internal table `@versions` (table id to floor, FORMAT.md §12.1),
//! written by the deleting transaction, so they are logged, compacted and restored as any
//! row is.

use super::codec::{decode_value, encode_key_bytes};
use super::internal::Internal;
use super::read::schema_error;
use super::state::State;
use super::table::{Table, VERSION_FLOORS};
use super::txn::{WriteTx, version_after};
use crate::error::{Error, Result};
use crate::store::rows::{Bytes, Row};

/// The floors' table.
const FLOORS: Internal = Internal {
    name: VERSION_FLOORS,
    key_label: "@table-id",
    value_label: "@version-floor",
    holds: "the version floors",
};

/// The highest version a deleted row of table `table` had in `state` (0: none deleted).
pub(super) fn version_floor(state: &State, table: u32) -> Result<u64> {
    let Some(t) = state.table_by_name(VERSION_FLOORS) else {
        return Ok(0);
    };
    let Some(row) = t.rows.get(&encode_key_bytes(&table)?) else {
        return Ok(0);
    };
    decode_value(row.value).map_err(|e| schema_error(VERSION_FLOORS, e))
}

impl WriteTx {
    /// Table `table`'s version floor as this transaction sees it (looked up once per table
    /// and transaction).
    pub(super) fn table_floor(&mut self, table: u32) -> Result<u64> {
        if let Some(f) = self.floors.iter().find(|f| f.0 == table) {
            return Ok(f.1);
        }
        let floor = version_floor(&self.work, table)?;
        self.floors.push((table, floor));
        Ok(floor)
    }

    /// After a row of version `version` of table `table` was deleted: raises the table's floor
    /// to it, creating the floors' table on its first use.
    pub(super) fn raise_version_floor(&mut self, table: u32, version: u64) -> Result<()> {
        if version <= self.table_floor(table)? {
            return Ok(());
        }
        let t: Table<u32, u64> = FLOORS.find_or_create(self)?;
        self.insert(&t, &table, &version)?;
        for f in self.floors.iter_mut().filter(|f| f.0 == table) {
            f.1 = version;
        }
        Ok(())
    }
}

/// After a checkpoint's restore put the rows of tables `names` back in `state` (`head`: the
/// state before it): a key's versions must not repeat through a restore either. Each
/// restored row that is not the head's own row gets a version above every version its table
/// had (its rows' and its floor), and the table's floor rises to that top, which covers the
/// head's rows the restore took away. A version held from before the restore then never
/// matches a restored row (a compare-and-set on one is refused, never wrongly accepted).
pub(crate) fn renumber_restored(head: &State, state: State, names: &[&str]) -> Result<State> {
    let mut tx = WriteTx::new(&state);
    for &name in names {
        let (Some(now), Some(&id)) = (head.table_by_name(name), tx.work.by_name.get(name)) else {
            continue;
        };
        let top = now
            .rows
            .iter()
            .map(|r| r.version)
            .fold(version_floor(head, now.meta.id)?, u64::max);
        let version = version_after(top, name)?;
        let t = tx.work.table_mut(id).map_err(Error::InvalidArgument)?;
        let run: Vec<(Bytes, Row)> = t
            .rows
            .iter()
            .filter(|r| {
                now.rows
                    .get(r.key)
                    .is_none_or(|n| n.version != r.version || n.value != r.value)
            })
            .map(|r| {
                let row = Row {
                    value: Bytes::new(r.value),
                    version,
                };
                (Bytes::new(r.key), row)
            })
            .collect();
        t.rows.put_sorted(run);
        tx.raise_version_floor(id, top)?;
    }
    Ok(tx.work)
}
