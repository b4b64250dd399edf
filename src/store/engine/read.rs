//! Reading tables: the same calls on a read snapshot and inside a write transaction (which
//! sees its own writes).

use std::borrow::Borrow;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{TableKind, decode_key, decode_value, encode_key_bytes, with_encoded_key};
use super::state::{State, TableState};
use super::table::{AnyTable, ApplyLog, BytesTable, Index, Table, TxView, type_label};
use crate::error::{Error, Result};
use crate::store::rows::{Bytes, RowRef, reclaim_any};

/// What a snapshot says about one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Whether the table is typed (`false`: raw bytes).
    pub typed: bool,
    /// The key type recorded for it.
    pub key_type: String,
    /// The value type recorded for it.
    pub value_type: String,
    /// Schema version.
    pub version: u32,
    /// Number of rows.
    pub rows: usize,
}

pub(crate) fn table_state<'s>(state: &'s State, id: u32, name: &str) -> Result<&'s TableState> {
    state
        .tables
        .get(&id)
        .filter(|t| *t.meta.name == *name)
        .ok_or_else(|| Error::table_not_found(name))
}

/// A stored value that does not decode as the table's value type.
pub(crate) fn schema_error(table: &str, detail: String) -> Error {
    Error::IncompatibleSchema {
        table: table.to_string(),
        found: format!("bytes that do not decode ({detail})"),
        expected: "the value type the table was opened with".into(),
    }
}

fn decode_row<K: DeserializeOwned, V: DeserializeOwned>(
    table: &str,
    k: &[u8],
    v: &[u8],
) -> Result<(K, V)> {
    let key = decode_key(k).map_err(|e| schema_error(table, e))?;
    let value = decode_value(v).map_err(|e| schema_error(table, e))?;
    Ok((key, value))
}

fn key_bound<K: Serialize>(b: Bound<&K>) -> Result<Bound<Bytes>> {
    Ok(match b {
        Bound::Included(k) => Bound::Included(encode_key_bytes(k)?),
        Bound::Excluded(k) => Bound::Excluded(encode_key_bytes(k)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

fn bytes_bound(b: Bound<&Vec<u8>>) -> Bound<Bytes> {
    match b {
        Bound::Included(k) => Bound::Included(Bytes::new(k)),
        Bound::Excluded(k) => Bound::Excluded(Bytes::new(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Reads of tables, on a [`Snapshot`] or inside a [`WriteTx`](crate::WriteTx).
pub trait Readable {
    /// The state being read.
    #[doc(hidden)]
    fn state(&self) -> &State;

    /// The value stored under `key`, or `None`. The key may be given in a borrowed form
    /// (`&str` for a `String` key, `&[T]` for `Vec<T>`): `K: Borrow<Q>`, and `Q` must
    /// serialize as `K` does (true of the standard library's `Borrow` pairs).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// let snap = store.read();
    /// assert_eq!(snap.get(&t, "a")?, Some(1));
    /// assert_eq!(snap.get(&t, "z")?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn get<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        V: DeserializeOwned,
        Q: Serialize + ?Sized,
    {
        Ok(self.get_versioned(table, key)?.map(|(v, _)| v))
    }

    /// The value under `key` and its version (1 for a new row, +1 for each write), or `None`.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &10))?;
    /// assert_eq!(store.read().get_versioned(&t, "a")?, Some((10, 2)));
    /// # Ok(())
    /// # }
    /// ```
    fn get_versioned<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<Option<(V, u64)>>
    where
        K: Borrow<Q>,
        V: DeserializeOwned,
        Q: Serialize + ?Sized,
    {
        let t = table_state(self.state(), table.id, &table.name)?;
        let Some(row) = with_encoded_key(key, |k| t.rows.get(k))? else {
            return Ok(None);
        };
        let v = decode_value(row.value).map_err(|e| schema_error(&table.name, e))?;
        Ok(Some((v, row.version)))
    }

    /// The version of the row under `key`; 0 if there is none.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// assert_eq!(store.read().version(&t, "a")?, 1);
    /// assert_eq!(store.read().version(&t, "z")?, 0);
    /// # Ok(())
    /// # }
    /// ```
    fn version<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<u64>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let t = table_state(self.state(), table.id, &table.name)?;
        with_encoded_key(key, |k| t.rows.get(k).map_or(0, |r| r.version))
    }

    /// Whether a row exists under `key`.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// assert!(store.read().contains(&t, "a")?);
    /// assert!(!store.read().contains(&t, "z")?);
    /// # Ok(())
    /// # }
    /// ```
    fn contains<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.version(table, key)? > 0)
    }

    /// The row whose unique index `index` holds `key` (primary key and value), or `None`.
    /// The index handle comes from [`TableDef::unique_index`](crate::TableDef::unique_index)
    /// and fixes the index key's type: a key of another type does not compile. A state
    /// whose table has no such index (a checkpoint's, an epoch's) is
    /// [`IndexNotFound`](Error::IndexNotFound).
    ///
    /// ```
    /// use statelog::{Readable, TableDef};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let mut def = TableDef::<u32, String>::new("names");
    /// let by_name = def.unique_index("name", |n| n.clone());
    /// let t = store.table(def)?;
    /// store.write(|tx| tx.insert(&t, &7, &"ann".to_string()))?;
    /// assert_eq!(store.read().get_by(&by_name, "ann")?, Some((7, "ann".to_string())));
    /// assert_eq!(store.read().get_by(&by_name, "bob")?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn get_by<K, V, IK, Q>(&self, index: &Index<K, V, IK>, key: &Q) -> Result<Option<(K, V)>>
    where
        K: DeserializeOwned,
        V: DeserializeOwned,
        IK: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let t = self
            .state()
            .table_by_name(&index.table)
            .ok_or_else(|| Error::table_not_found(&index.table))?;
        let ix = t
            .indexes
            .iter()
            .find(|ix| *ix.name == *index.name)
            .ok_or_else(|| Error::IndexNotFound {
                table: index.table.to_string(),
                index: index.name.to_string(),
            })?;
        let Some(pk) = with_encoded_key(key, |k| ix.map.get(k).map(|r| r.value))? else {
            return Ok(None);
        };
        match t.rows.get(pk) {
            Some(row) => decode_row(&index.table, pk, row.value).map(Some),
            None => Ok(None),
        }
    }

    /// Rows with keys in `range`, in key order; also from the end (`.rev()`, `next_back`),
    /// where each step is a search, not a walk of the rows before it.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// let snap = store.read();
    /// let from_b: Vec<(String, u32)> = snap.range(&t, "b".to_string()..)?.collect::<Result<_, _>>()?;
    /// assert_eq!(from_b, vec![("b".to_string(), 2), ("c".to_string(), 3)]);
    /// // The last row before "c", from the end.
    /// let before_c = snap.range(&t, .."c".to_string())?.next_back().transpose()?;
    /// assert_eq!(before_c, Some(("b".to_string(), 2)));
    /// # Ok(())
    /// # }
    /// ```
    fn range<'a, K, V, R>(
        &'a self,
        table: &Table<K, V>,
        range: R,
    ) -> Result<impl DoubleEndedIterator<Item = Result<(K, V)>> + 'a>
    where
        K: Serialize + DeserializeOwned + 'a,
        V: DeserializeOwned + 'a,
        R: RangeBounds<K>,
    {
        let t = table_state(self.state(), table.id, &table.name)?;
        let bounds = (
            key_bound(range.start_bound())?,
            key_bound(range.end_bound())?,
        );
        let name: Arc<str> = table.name.clone();
        Ok(t.rows
            .range(bounds)
            .map(move |r: RowRef<'_>| decode_row(&name, r.key, r.value)))
    }

    /// The entries of apply log `log` with ids in `ids`, in id order (see
    /// [`WriteTx::append`](crate::WriteTx::append)).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<String>("events")?;
    /// store.write(|tx| { for e in ["a", "b", "c"] { tx.append(&log, &e.to_string())?; } Ok(()) })?;
    /// let after_1: Vec<(u64, String)> = store.read().entries(&log, 2..)?.collect::<Result<_, _>>()?;
    /// assert_eq!(after_1, vec![(2, "b".to_string()), (3, "c".to_string())]);
    /// # Ok(())
    /// # }
    /// ```
    fn entries<'a, V, R>(
        &'a self,
        log: &ApplyLog<V>,
        ids: R,
    ) -> Result<impl Iterator<Item = Result<(u64, V)>> + 'a>
    where
        V: DeserializeOwned + 'a,
        R: RangeBounds<u64>,
    {
        self.range(&log.table, ids)
    }

    /// The entry of apply log `log` with id `id`, if it is there (not yet appended, or cut by
    /// a truncation: `None`).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<u32>("events")?;
    /// store.write(|tx| tx.append(&log, &7))?;
    /// assert_eq!(store.read().entry(&log, 1)?, Some(7));
    /// assert_eq!(store.read().entry(&log, 2)?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn entry<V: DeserializeOwned>(&self, log: &ApplyLog<V>, id: u64) -> Result<Option<V>> {
        Ok(self
            .entries(log, id..=id)?
            .next()
            .transpose()?
            .map(|(_, v)| v))
    }

    /// Every row, in key order.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// let rows = store.read().list(&t)?;
    /// assert_eq!(rows.len(), 3);
    /// assert_eq!(rows[0], ("a".to_string(), 1));
    /// # Ok(())
    /// # }
    /// ```
    fn list<K, V>(&self, table: &Table<K, V>) -> Result<Vec<(K, V)>>
    where
        K: Serialize + DeserializeOwned,
        V: DeserializeOwned,
    {
        self.range(table, ..)?.collect()
    }

    /// The row with the greatest key at or below `key` (`None` if every key is above it): a
    /// search, not a walk of the rows.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// // Routes by the start of their address range: the route of an address is the floor.
    /// let routes = store.table(statelog::TableDef::<u32, String>::new("routes"))?;
    /// store.write(|tx| {
    ///     tx.insert(&routes, &100, &"a".to_string())?;
    ///     tx.insert(&routes, &200, &"b".to_string())
    /// })?;
    /// let snap = store.read();
    /// assert_eq!(snap.floor(&routes, &150)?, Some((100, "a".to_string())));
    /// assert_eq!(snap.floor(&routes, &200)?, Some((200, "b".to_string())));
    /// assert_eq!(snap.floor(&routes, &99)?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn floor<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<Option<(K, V)>>
    where
        K: Borrow<Q> + DeserializeOwned,
        V: DeserializeOwned,
        Q: Serialize + ?Sized,
    {
        let t = table_state(self.state(), table.id, &table.name)?;
        let row = with_encoded_key(key, |k| {
            t.rows.last_in(Bound::Unbounded, Bound::Included(k))
        })?;
        row.map(|r| decode_row(&table.name, r.key, r.value))
            .transpose()
    }

    /// The row with the least key at or above `key` (`None` if every key is below it): a
    /// search, not a walk of the rows.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// store.write(|tx| {
    ///     tx.insert(&t, &"apple".to_string(), &1)?;
    ///     tx.insert(&t, &"banana".to_string(), &2)
    /// })?;
    /// assert_eq!(store.read().ceiling(&t, "b")?, Some(("banana".to_string(), 2)));
    /// assert_eq!(store.read().ceiling(&t, "c")?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn ceiling<K, V, Q>(&self, table: &Table<K, V>, key: &Q) -> Result<Option<(K, V)>>
    where
        K: Borrow<Q> + DeserializeOwned,
        V: DeserializeOwned,
        Q: Serialize + ?Sized,
    {
        let t = table_state(self.state(), table.id, &table.name)?;
        let kb = encode_key_bytes(key)?;
        let row = t.rows.range((Bound::Included(kb), Bound::Unbounded)).next();
        row.map(|r| decode_row(&table.name, r.key, r.value))
            .transpose()
    }

    /// Number of rows.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// assert_eq!(store.read().count(&t)?, 3);
    /// # Ok(())
    /// # }
    /// ```
    fn count(&self, table: &impl AnyTable) -> Result<usize> {
        Ok(
            table_state(self.state(), table.table_id(), table.table_name())?
                .rows
                .len(),
        )
    }

    /// The bytes stored under `key` in a bytes table, or `None`.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// assert_eq!(store.read().get_bytes(&b, b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(store.read().get_bytes(&b, b"z")?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn get_bytes(&self, table: &BytesTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = table_state(self.state(), table.id, &table.name)?;
        Ok(t.rows.get(key).map(|r| r.value.to_vec()))
    }

    /// Rows of a bytes table with keys in `range`, in byte order; also from the end.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| { tx.put_bytes(&b, b"a", b"1")?; tx.put_bytes(&b, b"b", b"2") })?;
    /// let snap = store.read();
    /// let keys: Vec<Vec<u8>> = snap.range_bytes(&b, b"b".to_vec()..)?.map(|(k, _)| k).collect();
    /// assert_eq!(keys, vec![b"b".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    fn range_bytes<'a>(
        &'a self,
        table: &BytesTable,
        range: impl RangeBounds<Vec<u8>>,
    ) -> Result<impl DoubleEndedIterator<Item = (Vec<u8>, Vec<u8>)> + 'a> {
        let t = table_state(self.state(), table.id, &table.name)?;
        let bounds = (
            bytes_bound(range.start_bound()),
            bytes_bound(range.end_bound()),
        );
        Ok(t.rows
            .range(bounds)
            .map(|r| (r.key.to_vec(), r.value.to_vec())))
    }

    /// A read handle for the typed table named `name` (no unique indexes attached), checked
    /// against the key and value types recorded for it: for code that reads tables it did not
    /// open, such as a derived view.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// # store.write(|tx| { for (k, v) in [("a", 1), ("b", 2), ("c", 3)] { tx.insert(&t, &k.to_string(), &v)?; } Ok(()) })?;
    /// // Another part of the program reads the table by name.
    /// let same = store.read().table_named::<String, u32>("t")?;
    /// assert_eq!(store.read().count(&same)?, 3);
    /// assert!(store.read().table_named::<u64, u32>("t").is_err()); // other key type
    /// # Ok(())
    /// # }
    /// ```
    fn table_named<K, V>(&self, name: &str) -> Result<Table<K, V>> {
        let t = self
            .state()
            .table_by_name(name)
            .ok_or_else(|| Error::table_not_found(name))?;
        let (key_type, value_type) = (type_label::<K>(), type_label::<V>());
        if t.meta.kind != TableKind::Typed
            || t.meta.key_type != key_type
            || t.meta.value_type != value_type
        {
            return Err(Error::IncompatibleSchema {
                table: name.to_string(),
                found: format!("keys {}, values {}", t.meta.key_type, t.meta.value_type),
                expected: format!("keys {key_type}, values {value_type}"),
            });
        }
        Ok(Table::new(t.meta.id, name, Vec::new()))
    }

    /// The tables, in name order.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let names: Vec<String> = store.read().tables().into_iter().map(|i| i.name).collect();
    /// assert_eq!(names, vec!["t"]);
    /// # Ok(())
    /// # }
    /// ```
    fn tables(&self) -> Vec<TableInfo> {
        let s = self.state();
        s.by_name
            .iter()
            .filter_map(|(_, id)| s.tables.get(id))
            .map(|t| TableInfo {
                name: t.meta.name.clone(),
                typed: t.meta.kind == TableKind::Typed,
                key_type: t.meta.key_type.clone(),
                value_type: t.meta.value_type.clone(),
                version: t.meta.version,
                rows: t.rows.len(),
            })
            .collect()
    }

    /// Every row of the table named `name` as raw bytes (encoded key, encoded value), in key
    /// order: for tools that do not know the table's types.
    fn raw_rows<'a>(
        &'a self,
        name: &str,
    ) -> Result<impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        let t = self
            .state()
            .table_by_name(name)
            .ok_or_else(|| Error::table_not_found(name))?;
        Ok(t.rows.iter().map(|r| (r.key, r.value)))
    }
}

/// Where a committed state is in a store's history: the epoch of the log it was committed in
/// and the number of transactions committed before it (its `seq`). Positions from a history
/// an operator rewound away are never mistaken for current ones: their epoch is no longer in
/// the log's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitPos {
    /// The epoch.
    pub epoch: u64,
    /// Transactions committed up to and including this state.
    pub seq: u64,
}

/// A consistent, read-only view of one committed state. Taking one is O(1); it never blocks
/// writers and is never blocked by them, and later snapshots never show an older state.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) state: Arc<State>,
}

impl Snapshot {
    /// The number of transactions committed before this state.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let before = store.read().seq();
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// assert_eq!(store.read().seq(), before + 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn seq(&self) -> u64 {
        self.state.seq
    }

    /// Where this state is in the store's history (for `changes_since`).
    ///
    /// ```
    /// use statelog::Changes;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let pos = store.read().position();
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// let Changes::Since(changes) = store.changes_since(pos, 10)? else { panic!() };
    /// assert_eq!(changes.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn position(&self) -> CommitPos {
        CommitPos {
            epoch: self.state.epoch,
            seq: self.state.seq,
        }
    }

    /// The derived view computed from this state (see
    /// [`StoreOptions::view`](crate::StoreOptions::view)), if it is of type `T`.
    ///
    /// ```
    /// use statelog::{DerivedView, Readable, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let options = StoreOptions::default().view(DerivedView::new(|s| {
    ///     Ok(s.tables().iter().map(|t| t.rows).sum::<usize>())
    /// }));
    /// let store = Store::open(dir.path(), options)?;
    /// let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// assert_eq!(*store.read().view::<usize>().unwrap(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn view<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.state.view.clone().and_then(|v| v.downcast::<T>().ok())
    }
}

impl Drop for Snapshot {
    /// The last holder of a state frees it: up to millions of tree nodes and values once a
    /// large transaction replaced them. A reader must not pause for that, so the last
    /// snapshot of a state hands it to a background thread instead.
    fn drop(&mut self) {
        if Arc::strong_count(&self.state) == 1 {
            let state = std::mem::replace(&mut self.state, empty_state());
            reclaim(state);
        }
    }
}

/// A shared empty state, put in place of one handed away.
fn empty_state() -> Arc<State> {
    static EMPTY: std::sync::OnceLock<Arc<State>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(State::default())).clone()
}

/// Drops `state` on the reclaiming thread (started on first use; if it cannot be, here).
pub(super) fn reclaim(state: Arc<State>) {
    reclaim_any(Box::new(state));
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.state.seq)
            .finish_non_exhaustive()
    }
}

impl Readable for TxView<'_> {
    fn state(&self) -> &State {
        self.state
    }
}

impl Readable for Snapshot {
    fn state(&self) -> &State {
        &self.state
    }
}
