//! Write transactions: changes to several tables that commit atomically as one log entry.

use std::borrow::Borrow;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::claim::{claim_stored, holds, index_threads};
use super::codec::{Op, decode_value, encode_key_bytes, encode_value_bytes};
use super::read::{Readable, schema_error, table_state};
use super::state::{IndexState, State, TableState};
use super::table::{BytesTable, Table};
use crate::epoch::RegistryReader;
use crate::error::{Error, Result, show_key};
use crate::store::rows::{Base, Bytes, Row, RowRef, Rows};

/// A write transaction, given to the closure of [`Store::write`](crate::Store::write). Reads
/// see the transaction's own writes. If the closure returns an error or panics, nothing is
/// committed. A failed call (a conflict, a version mismatch) changes nothing, and the closure
/// may go on with other changes. A write of a row's stored value is no change: it logs
/// nothing and keeps the row's version, and a transaction of no changes appends nothing.
pub struct WriteTx {
    pub(crate) work: State,
    pub(crate) ops: Vec<Op>,
    /// Positions in `ops` of the puts that kept their rows' unique-index keys (logged as a
    /// hint, FORMAT.md §12.1.1).
    pub(crate) same_keys: Vec<usize>,
    /// The store's checkpoint registry, for the transaction's checkpoint operations.
    pub(crate) registry: Option<Arc<RegistryReader>>,
    /// The version floors this transaction looked up or raised, by table id (`floor.rs`).
    pub(super) floors: Vec<(u32, u64)>,
}

impl Readable for WriteTx {
    fn state(&self) -> &State {
        &self.work
    }
}

/// A row encoded for a write: key, value, and its unique-index keys with their slots.
pub(crate) type EncodedRow = (Bytes, Bytes, Vec<(usize, Bytes)>);

/// How a write treats an existing row.
enum Mode<'a, V> {
    /// Replace it.
    Upsert,
    /// Leave it alone.
    IfAbsent,
    /// Replace it only if its version is this one.
    Expect(u64),
    /// Replace it with the value this makes from it (the new value with preserved fields).
    Preserve(&'a dyn Fn(&V) -> V),
}

impl WriteTx {
    pub(crate) fn new(base: &State) -> Self {
        WriteTx {
            work: base.clone(),
            ops: Vec::new(),
            same_keys: Vec::new(),
            registry: None,
            floors: Vec::new(),
        }
    }

    /// Inserts or replaces the row under `key`; returns whether it created the row. Writing
    /// the value the row holds already writes nothing (its version stays).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let created = store.write(|tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// let replaced = store.write(|tx| tx.insert(&t, &"a".to_string(), &2))?;
    /// assert!(created && !replaced);
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert<K: Serialize, V: Serialize + DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<bool> {
        self.write(table, key, value, Mode::Upsert)
            .map(|(created, _)| created)
    }

    /// Inserts the row only if there is none under `key`; returns whether it did.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// assert!(store.write(|tx| tx.insert_if_absent(&t, &"a".to_string(), &1))?);
    /// assert!(!store.write(|tx| tx.insert_if_absent(&t, &"a".to_string(), &2))?);
    /// assert_eq!(store.read().get(&t, "a")?, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert_if_absent<K: Serialize, V: Serialize + DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<bool> {
        self.write(table, key, value, Mode::IfAbsent)
            .map(|(created, _)| created)
    }

    /// Inserts or replaces the row under `key`, but when a row exists, `keep(old, &mut new)`
    /// first copies the fields to preserve (such as a creation time) from it. Returns whether
    /// it created the row.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use statelog::{Readable, TableDef};
    ///
    /// #[derive(Clone, Serialize, Deserialize)]
    /// struct Item { name: String, created: u64 }
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let items = store.table(TableDef::<u32, Item>::new("items"))?;
    /// let keep_created = |old: &Item, new: &mut Item| new.created = old.created;
    /// store.write(|tx| tx.upsert_preserving(&items, &1, &Item { name: "a".into(), created: 10 }, keep_created))?;
    /// store.write(|tx| tx.upsert_preserving(&items, &1, &Item { name: "b".into(), created: 99 }, keep_created))?;
    /// let item = store.read().get(&items, &1)?.unwrap();
    /// assert_eq!((item.name.as_str(), item.created), ("b", 10));
    /// # Ok(())
    /// # }
    /// ```
    pub fn upsert_preserving<K: Serialize, V: Serialize + DeserializeOwned + Clone>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
        keep: impl Fn(&V, &mut V),
    ) -> Result<bool> {
        let merge = |old: &V| {
            let mut new = value.clone();
            keep(old, &mut new);
            new
        };
        self.write(table, key, value, Mode::Preserve(&merge))
            .map(|(created, _)| created)
    }

    /// Compare-and-set: writes the row only if its current version is `expected` (0: no row),
    /// and returns the row's version after the call: `expected + 1`, or `expected` when the
    /// value is the one stored (nothing is written then). A different version is
    /// [`VersionMismatch`](Error::VersionMismatch); `expected == u64::MAX` is
    /// [`Overflow`](Error::Overflow).
    ///
    /// A key's versions never repeat: a row created where one was deleted starts above every
    /// version a deleted row of its table had (1 in a table with no deletes), so a version
    /// held from before a delete never matches the new row (no ABA).
    ///
    /// ```
    /// use statelog::{Error, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let k = "a".to_string();
    /// let v1 = store.write(|tx| tx.save(&t, &k, &1, 0))?; // 0: no row yet
    /// let v2 = store.write(|tx| tx.save(&t, &k, &2, v1))?;
    /// assert_eq!((v1, v2), (1, 2));
    /// // A writer holding an old version is refused.
    /// let stale = store.write(|tx| tx.save(&t, &k, &3, v1));
    /// assert!(matches!(stale, Err(Error::VersionMismatch { expected: 1, found: 2, .. })));
    /// assert_eq!(store.read().get_versioned(&t, &k)?, Some((2, 2)));
    /// // Deleted and created again, the row does not take up version 1 or 2 again.
    /// store.write(|tx| tx.delete(&t, &k))?;
    /// assert_eq!(store.write(|tx| tx.save(&t, &k, &4, 0))?, 3);
    /// assert!(store.write(|tx| tx.save(&t, &k, &5, v2)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn save<K: Serialize, V: Serialize + DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
        expected: u64,
    ) -> Result<u64> {
        self.write(table, key, value, Mode::Expect(expected))
            .map(|(_, v)| v)
    }

    /// Deletes the row under `key` and returns its value, or
    /// [`RowNotFound`](Error::RowNotFound). The key may be given in a borrowed form, as for
    /// [`Readable::get`].
    ///
    /// ```
    /// use statelog::{Error, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let k = "a".to_string();
    /// store.write(|tx| tx.insert(&t, &k, &1))?;
    /// assert_eq!(store.write(|tx| tx.delete(&t, &k))?, 1);
    /// let gone = store.write(|tx| tx.delete(&t, "a"));
    /// assert!(matches!(gone, Err(Error::RowNotFound { table, .. }) if table == "t"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete<K, V, Q>(&mut self, table: &Table<K, V>, key: &Q) -> Result<V>
    where
        K: Borrow<Q>,
        V: DeserializeOwned,
        Q: Serialize + ?Sized,
    {
        self.delete_encoded(table, encode_key_bytes(key)?)
    }

    /// [`delete`](Self::delete) by an encoded key.
    pub(crate) fn delete_encoded<K, V: DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        kb: Bytes,
    ) -> Result<V> {
        let t = table_state(&self.work, table.id, &table.name)?;
        let old = t
            .rows
            .get(&kb)
            .ok_or_else(|| Error::row_not_found(&table.name, &kb))?;
        let value: V = decode_value(old.value).map_err(|e| schema_error(&table.name, e))?;
        let old_version = old.version;
        let old_keys = index_keys(table, &value)?;
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        t.rows.remove(&kb);
        for (slot, uk) in old_keys {
            if let Some(ix) = t.indexes.get_mut(slot) {
                ix.map.remove(&uk);
            }
        }
        self.ops.push(Op::Delete {
            table: table.id,
            key: kb,
        });
        self.raise_version_floor(table.id, old_version)?;
        Ok(value)
    }

    /// The table's next id: a sequence that starts at 1, never goes back (also after rows are
    /// deleted and the store is reopened), and never hands out an id whose row exists: it
    /// moves past ids the caller wrote (committed, or earlier in this transaction).
    ///
    /// The id's row is the key `K` that the id converts to (any integer key type, when the id
    /// fits in it; a `u64` key is the id itself). For key types an integer does not convert
    /// to (strings, tuples, structs), no row can collide, and the sequence is only a counter.
    /// A deleted id is not handed out again, nor is any id below the sequence: an id the
    /// caller wrote ahead of the sequence and deleted before it got there can be.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.table(statelog::TableDef::<u64, String>::new("t"))?;
    /// let id = store.write(|tx| {
    ///     let id = tx.next_id(&t)?;
    ///     tx.insert(&t, &id, &"first".to_string())?;
    ///     Ok(id)
    /// })?;
    /// assert_eq!(id, 1);
    /// // Ids the caller chose are skipped.
    /// store.write(|tx| tx.insert(&t, &2, &"chosen".to_string()))?;
    /// assert_eq!(store.write(|tx| tx.next_id(&t))?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn next_id<K: Serialize + DeserializeOwned, V>(
        &mut self,
        table: &Table<K, V>,
    ) -> Result<u64> {
        let overflow = || Error::Overflow(format!("id sequence of table {}", table.name));
        let t = table_state(&self.work, table.id, &table.name)?;
        let mut id = t.next_id;
        while let Some(key) = id_key::<K>(id)? {
            if t.rows.get(&key).is_none() {
                break;
            }
            id = id.checked_add(1).ok_or_else(overflow)?;
        }
        let next = id.checked_add(1).ok_or_else(overflow)?;
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        t.next_id = next;
        self.ops.push(Op::Sequence {
            table: table.id,
            next,
        });
        Ok(id)
    }

    /// Inserts or replaces a row of a bytes table (writing the value it holds already writes
    /// nothing).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, &[0, 1], &[2, 3]))?;
    /// assert_eq!(store.read().get_bytes(&b, &[0, 1])?, Some(vec![2, 3]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_bytes(&mut self, table: &BytesTable, key: &[u8], value: &[u8]) -> Result<()> {
        let kb = Bytes::new(key);
        let floor = self.table_floor(table.id)?;
        let t = table_state(&self.work, table.id, &table.name)?;
        let old_row = t.rows.get(&kb);
        if old_row.is_some_and(|r| r.value == value) {
            // The stored row already: nothing to write.
            return Ok(());
        }
        let old = old_row.map(|r| r.version);
        let version = next_version(old, floor, &table.name)?;
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        put_row(
            t,
            &mut self.ops,
            table.id,
            kb,
            Bytes::new(value),
            version,
            old.is_some(),
        );
        Ok(())
    }

    /// Deletes a row of a bytes table, or [`RowNotFound`](Error::RowNotFound).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// store.write(|tx| tx.delete_bytes(&b, b"k"))?;
    /// assert_eq!(store.read().count(&b)?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_bytes(&mut self, table: &BytesTable, key: &[u8]) -> Result<()> {
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        let Some(old_version) = t.rows.get(key).map(|r| r.version) else {
            return Err(Error::row_not_found(&table.name, key));
        };
        t.rows.remove(key);
        self.ops.push(Op::Delete {
            table: table.id,
            key: Bytes::new(key),
        });
        self.raise_version_floor(table.id, old_version)
    }

    fn write<K: Serialize, V: Serialize + DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
        mode: Mode<'_, V>,
    ) -> Result<(bool, u64)> {
        let kb = encode_key_bytes(key)?;
        let mut old_value = None;
        let preserved;
        let value = match mode {
            Mode::Upsert => value,
            Mode::IfAbsent | Mode::Expect(_) | Mode::Preserve(_) => {
                let t = table_state(&self.work, table.id, &table.name)?;
                let old_row = t.rows.get(&kb);
                let found = old_row.map_or(0, |r| r.version);
                match (mode, old_row) {
                    (Mode::IfAbsent, Some(_)) => return Ok((false, found)),
                    (Mode::Expect(expected), _) if expected != found => {
                        return Err(Error::VersionMismatch {
                            table: table.name.to_string(),
                            key: show_key(&kb),
                            expected,
                            found,
                        });
                    }
                    (Mode::Preserve(merge), Some(r)) => {
                        let old: V =
                            decode_value(r.value).map_err(|e| schema_error(&table.name, e))?;
                        preserved = merge(&old);
                        old_value = Some(old);
                        &preserved
                    }
                    _ => value,
                }
            }
        };
        let new_keys = index_keys(table, value)?;
        let vb = encode_value_bytes(value)?;
        self.put_encoded(table, kb, vb, new_keys, old_value.as_ref(), None)
    }

    /// Puts encoded rows (key, value, unique-index keys) in strictly increasing key order,
    /// each as a single write would, with the rows themselves put at the
    /// end in one sorted run (merged into a new base when large). On an error the rows
    /// before it are partly applied: the transaction must not commit.
    pub(crate) fn put_encoded_sorted<K, V: DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        rows: Vec<EncodedRow>,
    ) -> Result<()> {
        let mut run = SortedRun {
            rows: Vec::with_capacity(rows.len()),
            near: 0,
        };
        for (kb, vb, keys) in rows {
            self.put_encoded(table, kb, vb, keys, None, Some(&mut run))?;
        }
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        t.rows.put_sorted(run.rows);
        Ok(())
    }

    /// Inserts or replaces a row given encoded: its key, its value and its unique-index keys
    /// (`old`: the current row's value, if the caller decoded it already). Returns whether it
    /// created the row, and the row's new version. With `run`, the row goes there instead of
    /// into the table (the caller puts the run).
    fn put_encoded<K, V: DeserializeOwned>(
        &mut self,
        table: &Table<K, V>,
        kb: Bytes,
        vb: Bytes,
        new_keys: Vec<(usize, Bytes)>,
        old: Option<&V>,
        mut run: Option<&mut SortedRun>,
    ) -> Result<(bool, u64)> {
        let floor = self.table_floor(table.id)?;
        let t = table_state(&self.work, table.id, &table.name)?;
        let old_row = match run.as_deref_mut() {
            Some(run) => t.rows.get_near(&kb, &mut run.near),
            None => t.rows.get(&kb),
        };
        if let Some(r) = old_row.filter(|r| r.value == vb.as_slice()) {
            // The stored row already: nothing to write, and its version stays.
            return Ok((false, r.version));
        }
        let version = next_version(old_row.map(|r| r.version), floor, &table.name)?;
        // Unique indexes: the new keys must not belong to another row. When every one already
        // names this row, they are the old row's keys too (an index holds one key per row), so
        // the old value need not be decoded and the indexes stay as they are.
        let mut unchanged = old_row.is_some();
        for (slot, uk) in &new_keys {
            match t.indexes.get(*slot).and_then(|ix| ix.map.primary_key(uk)) {
                Some(pk) if pk == kb.as_slice() => {}
                Some(_) => {
                    let index = t
                        .indexes
                        .get(*slot)
                        .map_or_else(String::new, |ix| ix.name.clone());
                    return Err(Error::Conflict {
                        table: table.name.to_string(),
                        index,
                    });
                }
                None => unchanged = false,
            }
        }
        // Logged as a hint: a row that keeps the keys of every unique index its table has
        // (the handle's indexes being the registered ones) need not be decoded by a restore.
        let same_keys = unchanged
            && !table.uniques.is_empty()
            && t.indexes.len() == table.uniques.len()
            && t.indexes
                .iter()
                .zip(table.uniques.iter())
                .all(|(ix, u)| ix.name == u.name);
        let old_keys = match (old_row, old) {
            _ if unchanged || table.uniques.is_empty() => Vec::new(),
            (Some(_), Some(o)) => index_keys(table, o)?,
            (Some(r), None) => {
                let o: V = decode_value(r.value).map_err(|e| schema_error(&table.name, e))?;
                index_keys(table, &o)?
            }
            (None, _) => Vec::new(),
        };
        let created = old_row.is_none();
        let t = self
            .work
            .table_mut(table.id)
            .map_err(|_| Error::table_not_found(&table.name))?;
        if !unchanged {
            // An index key the write does not change is left alone (it already names this row).
            for (slot, uk) in &old_keys {
                if !holds(&new_keys, *slot, uk) {
                    if let Some(ix) = t.indexes.get_mut(*slot) {
                        ix.map.remove(uk);
                    }
                }
            }
            for (slot, uk) in new_keys {
                if holds(&old_keys, slot, &uk) {
                    continue;
                }
                if let Some(ix) = t.indexes.get_mut(slot) {
                    ix.map.insert_primary_key(uk, kb.clone());
                }
            }
        }
        if same_keys {
            self.same_keys.push(self.ops.len());
        }
        match run {
            Some(run) => {
                let row = Row {
                    value: vb.clone(),
                    version,
                };
                run.rows.push((kb.clone(), row));
                self.ops.push(Op::Put {
                    table: table.id,
                    key: kb,
                    value: vb,
                    version,
                });
            }
            None => put_row(t, &mut self.ops, table.id, kb, vb, version, !created),
        }
        Ok((created, version))
    }
}

/// Rows put in increasing key order, to be put in the table at the end (see
/// [`WriteTx::put_encoded_sorted`]), and where the last one's old row was in the table's base.
struct SortedRun {
    rows: Vec<(Bytes, Row)>,
    near: usize,
}

/// Inserts or replaces a row in the working state and logs the same change (`existed`:
/// whether the state has a row under `key`).
fn put_row(
    t: &mut TableState,
    ops: &mut Vec<Op>,
    table: u32,
    key: Bytes,
    value: Bytes,
    version: u64,
    existed: bool,
) {
    let row = Row {
        value: value.clone(),
        version,
    };
    t.rows.insert_known(key.clone(), row, existed);
    ops.push(Op::Put {
        table,
        key,
        value,
        version,
    });
}

/// The version after `below`, or [`Overflow`](Error::Overflow) naming table `name`.
pub(super) fn version_after(below: u64, name: &str) -> Result<u64> {
    below
        .checked_add(1)
        .ok_or_else(|| Error::Overflow(format!("row version in table {name}")))
}

/// The version of a row written over `old` (its version, `None` for no row) in table `name`
/// whose version floor is `floor` (`floor.rs`): one more than the old row's, or than the floor
/// for a new row.
fn next_version(old: Option<u64>, floor: u64, name: &str) -> Result<u64> {
    version_after(old.unwrap_or(floor), name)
}

/// The encoded key of id `id` in a table keyed by `K`: the key an integer `id` deserializes
/// to (so every integer key type, when the id fits), or `None` when `K` holds no such key.
fn id_key<K: Serialize + DeserializeOwned>(id: u64) -> Result<Option<Bytes>> {
    let de = serde::de::value::U64Deserializer::<serde::de::value::Error>::new(id);
    match K::deserialize(de) {
        Ok(key) => encode_key_bytes(&key).map(Some),
        Err(_) => Ok(None),
    }
}

/// The encoded keys of `value` in each of the table's unique indexes, with the index's slot in
/// the table state.
pub(crate) fn index_keys<K, V>(table: &Table<K, V>, value: &V) -> Result<Vec<(usize, Bytes)>> {
    table
        .uniques
        .iter()
        .enumerate()
        .map(|(slot, u)| Ok((slot, (u.key)(value)?)))
        .collect()
}

/// Derives a table's unique-index keys from an encoded value (type-erased, for code that
/// holds rows as bytes).
pub(crate) type RowIndexer = Arc<dyn Fn(&[u8]) -> Result<Vec<(usize, Bytes)>> + Send + Sync>;

/// The indexer of a typed table's unique indexes.
pub(crate) fn row_indexer<K, V: DeserializeOwned + 'static>(table: &Table<K, V>) -> RowIndexer {
    let (name, uniques) = (table.name.clone(), table.uniques.clone());
    Arc::new(move |bytes| {
        let value: V = decode_value(bytes).map_err(|e| schema_error(&name, e))?;
        uniques
            .iter()
            .enumerate()
            .map(|(slot, u)| Ok((slot, (u.key)(&value)?)))
            .collect()
    })
}

/// The unique indexes of one table, as a program registered them: enough to rebuild them on
/// any state and to keep them up to date on changes read back from the log.
#[derive(Clone)]
pub(crate) struct TableIndexes {
    pub(crate) table: u32,
    pub(crate) names: Vec<String>,
    pub(crate) indexer: RowIndexer,
}

impl TableIndexes {
    /// The indexes of a typed table handle.
    pub(crate) fn of<K, V: DeserializeOwned + 'static>(table: &Table<K, V>) -> Self {
        TableIndexes {
            table: table.id,
            names: table.index_names(),
            indexer: row_indexer(table),
        }
    }

    /// Sets up the indexes on the table's rows in `state` (if the table exists there): the
    /// ones its snapshot stored, checked and brought up to date, or else built from the rows.
    pub(crate) fn rebuild(&self, state: &mut State) -> Result<()> {
        let Ok(t) = state.table_mut(self.table) else {
            return Ok(());
        };
        match claim_stored(t, &self.names, &*self.indexer) {
            Some(indexes) => {
                t.indexes = indexes;
                Ok(())
            }
            None => build_indexes(t, self.names.clone(), &self.indexer),
        }
    }
}

/// Builds a table's unique indexes (named `names`, in slot order) from its rows; two rows with
/// one index key are a [`Conflict`](Error::Conflict). Values are decoded on every core (each
/// thread sorts its share), then the sorted shares are merged into one base per index.
pub(crate) fn build_indexes(
    t: &mut TableState,
    names: Vec<String>,
    indexer: &RowIndexer,
) -> Result<()> {
    let rows: Vec<RowRef<'_>> = t.rows.iter().collect();
    let threads = index_threads(rows.len());
    let chunk = rows.len().div_ceil(threads).max(1);
    let slots = names.len();
    let shares: Vec<Result<Vec<IndexEntries<'_>>>> = if threads == 1 {
        // No thread to start for a small table.
        vec![index_share(&rows, slots, indexer)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .chunks(chunk)
                .map(|part| s.spawn(move || index_share(part, slots, indexer)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument("an index builder panicked".into()))
                    })
                })
                .collect()
        })
    };
    let mut per_slot: Vec<Vec<IndexEntries<'_>>> = (0..slots).map(|_| Vec::new()).collect();
    for share in shares {
        for (slot, entries) in share?.into_iter().enumerate() {
            if let Some(v) = per_slot.get_mut(slot) {
                v.push(entries);
            }
        }
    }
    let mut indexes = Vec::with_capacity(slots);
    for (name, shares) in names.into_iter().zip(per_slot) {
        let map = merge_index(shares).ok_or_else(|| Error::Conflict {
            table: t.meta.name.clone(),
            index: name.clone(),
        })?;
        indexes.push(IndexState { name, map });
    }
    t.indexes = indexes;
    Ok(())
}

/// Index entries: index key and primary key.
type IndexEntries<'a> = Vec<(Bytes, &'a [u8])>;

/// The index entries of some rows, per slot, each sorted by index key.
fn index_share<'a>(
    rows: &[RowRef<'a>],
    slots: usize,
    indexer: &RowIndexer,
) -> Result<Vec<IndexEntries<'a>>> {
    let mut out: Vec<IndexEntries<'a>> =
        (0..slots).map(|_| Vec::with_capacity(rows.len())).collect();
    for r in rows {
        for (slot, uk) in indexer(r.value)? {
            if let Some(v) = out.get_mut(slot) {
                v.push((uk, r.key));
            }
        }
    }
    for v in &mut out {
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(out)
}

/// Merges sorted shares into one index; `None` if an index key appears twice.
fn merge_index(mut shares: Vec<IndexEntries<'_>>) -> Option<Rows> {
    let mut all: Vec<(Bytes, &[u8])> = match shares.len() {
        0 => Vec::new(),
        1 => shares.pop().unwrap_or_default(),
        _ => {
            let mut all: Vec<(Bytes, &[u8])> = shares.concat();
            // Each share is sorted: a stable sort of the runs is a merge.
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        }
    };
    if all
        .windows(2)
        .any(|w| w.first().map(|a| &a.0) == w.get(1).map(|b| &b.0))
    {
        return None;
    }
    let mut data = Vec::new();
    let mut ranges = Vec::with_capacity(all.len());
    for (k, pk) in all.drain(..) {
        let key_at = data.len();
        data.extend_from_slice(&k);
        let value_at = data.len();
        data.extend_from_slice(pk);
        ranges.push((key_at, k.len(), value_at, pk.len(), 0));
    }
    Base::from_ranges(Arc::new(data), ranges)
        .ok()
        .map(Rows::from_base)
}

/// Applies one logged change to `state`, keeping the unique indexes of `indexes`' tables up
/// to date (as a transaction did when it made the change).
pub(crate) fn apply_indexed(
    indexes: &[TableIndexes],
    state: &mut State,
    op: &Op,
) -> std::result::Result<(), String> {
    let (table, key) = match op {
        Op::Put { table, key, .. } | Op::Delete { table, key } => (*table, key),
        _ => return state.apply(op),
    };
    let Some(ix) = indexes.iter().find(|i| i.table == table) else {
        return state.apply(op);
    };
    let old = state
        .tables
        .get(&table)
        .and_then(|t| t.rows.get(key))
        .map(|r| r.value.to_vec());
    state.apply(op)?;
    let t = state.table_mut(table)?;
    let old_keys = match old {
        Some(old) => (ix.indexer)(&old).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let new_keys = match op {
        Op::Put { value, .. } => (ix.indexer)(value).map_err(|e| e.to_string())?,
        _ => Vec::new(),
    };
    // A key the row keeps stays as it is.
    for (slot, uk) in &old_keys {
        if holds(&new_keys, *slot, uk) {
            continue;
        }
        if let Some(index) = t.indexes.get_mut(*slot) {
            if index.map.primary_key(uk) == Some(key.as_slice()) {
                index.map.remove(uk);
            }
        }
    }
    for (slot, uk) in new_keys {
        if holds(&old_keys, slot, &uk) {
            continue;
        }
        if let Some(index) = t.indexes.get_mut(slot) {
            index.map.insert_primary_key(uk, key.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engine::codec::{TableKind, TableMeta};

    fn state_with_row(version: u64, next_id: u64) -> (State, Table<u32, u32>) {
        let mut state = State::default();
        let meta = TableMeta {
            id: 0,
            name: "t".into(),
            kind: TableKind::Typed,
            key_type: "u32".into(),
            value_type: "u32".into(),
            version: 1,
        };
        state.apply(&Op::CreateTable(meta)).unwrap();
        let key = encode_key_bytes(&1u32).unwrap();
        let value = encode_value_bytes(&7u32).unwrap();
        state
            .apply(&Op::Put {
                table: 0,
                key,
                value,
                version,
            })
            .unwrap();
        state
            .apply(&Op::Sequence {
                table: 0,
                next: next_id,
            })
            .unwrap();
        (state, Table::new(0, "t", Vec::new()))
    }

    /// Versions and id sequences at their maximum: Overflow, distinct from a mismatch, and
    /// nothing changes.
    #[test]
    fn version_and_id_overflow_are_errors() {
        let (state, t) = state_with_row(u64::MAX, u64::MAX);
        let mut tx = WriteTx::new(&state);
        assert!(matches!(
            tx.save(&t, &1, &8, u64::MAX),
            Err(Error::Overflow(_))
        ));
        assert!(matches!(
            tx.save(&t, &1, &8, 5),
            Err(Error::VersionMismatch {
                expected: 5,
                found: u64::MAX,
                ..
            })
        ));
        assert!(matches!(tx.insert(&t, &1, &8), Err(Error::Overflow(_))));
        assert!(matches!(tx.next_id(&t), Err(Error::Overflow(_))));
        assert!(tx.ops.is_empty());
        assert_eq!(tx.get(&t, &1).unwrap(), Some(7));
    }
}
