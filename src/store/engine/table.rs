//! Table definitions and the handles transactions and snapshots take.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode_key, decode_value, encode_key_bytes};
use super::state::State;
use crate::error::{Error, Result};
use crate::store::rows::Bytes;

type UniqueFn<V> = Arc<dyn Fn(&V) -> Result<Bytes> + Send + Sync>;
type MigrateFn<V> = Arc<dyn Fn(&[u8]) -> std::result::Result<V, String> + Send + Sync>;

/// A table's validator, bound to its table: runs on a transaction's view with the encoded keys
/// it changed in that table, in key order.
pub(crate) type CheckFn = Arc<dyn Fn(&TxView<'_>, &[Bytes]) -> Result<()> + Send + Sync>;
/// A validator as declared, before the table is open: binds it to the table's handle.
type BindFn<K, V> = Arc<dyn Fn(&Table<K, V>) -> CheckFn + Send + Sync>;

/// A read-only view of a transaction about to commit, given to a table's validator
/// ([`TableDef::validate`]): reads (through [`Readable`](crate::Readable)) see the
/// transaction's writes, in every table.
pub struct TxView<'a> {
    pub(crate) state: &'a State,
}

/// A unique index: a name and the function that derives its key from a row's value.
pub(crate) struct Unique<V> {
    pub(crate) name: String,
    pub(crate) key: UniqueFn<V>,
}

impl<V> Clone for Unique<V> {
    fn clone(&self) -> Self {
        Unique {
            name: self.name.clone(),
            key: self.key.clone(),
        }
    }
}

/// How to read rows written with an older schema version.
pub(crate) struct Migration<V> {
    pub(crate) from: u32,
    pub(crate) convert: MigrateFn<V>,
}

/// The definition of a typed table: its name, key and value types, schema version, unique
/// indexes, migrations and validators. Open it with [`Store::table`](crate::Store::table).
///
/// Keys are encoded so that their byte order is the key's order (integers numerically,
/// strings and tuples lexicographically), values with bincode 2 (standard configuration).
pub struct TableDef<K, V> {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) uniques: Vec<Unique<V>>,
    pub(crate) migrations: Vec<Migration<V>>,
    pub(crate) validators: Vec<BindFn<K, V>>,
    /// The key type recorded for the table, when not `K`'s name (an apply log's).
    pub(crate) key_label: Option<&'static str>,
    _types: PhantomData<fn() -> K>,
}

impl<K, V> TableDef<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned + 'static,
{
    /// A table named `name`, schema version 1.
    pub fn new(name: impl Into<String>) -> Self {
        TableDef {
            name: name.into(),
            version: 1,
            uniques: Vec::new(),
            migrations: Vec::new(),
            validators: Vec::new(),
            key_label: None,
            _types: PhantomData,
        }
    }

    /// Records `label` as the table's key type instead of `K`'s name.
    pub(crate) fn key_label(mut self, label: &'static str) -> Self {
        self.key_label = Some(label);
        self
    }

    /// Sets the schema version (raise it when the value type changes, with a migration).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds a unique index named `name` on a value-derived key: two rows with different
    /// primary keys may not have the same index key (a write that would is a
    /// [`Conflict`](crate::Error::Conflict)).
    ///
    /// ```
    /// use statelog::{Error, TableDef};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.table(TableDef::<u32, String>::new("names").unique("name", |n| n.clone()))?;
    /// store.write(|tx| tx.insert(&t, &1, &"ann".to_string()))?;
    /// let clash = store.write(|tx| tx.insert(&t, &2, &"ann".to_string()));
    /// assert!(matches!(clash, Err(Error::Conflict { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn unique<U: Serialize>(
        mut self,
        name: impl Into<String>,
        key: impl Fn(&V) -> U + Send + Sync + 'static,
    ) -> Self {
        self.uniques.push(Unique {
            name: name.into(),
            key: Arc::new(move |v| encode_key_bytes(&key(v))),
        });
        self
    }

    /// Adds a unique index named `name`, as [`unique`](Self::unique) does, and returns its
    /// typed handle for lookups ([`Readable::get_by`](crate::Readable::get_by)): the handle
    /// fixes the index key's type `IK`, so a lookup by a key of another type does not
    /// compile, and the index's name is written once.
    ///
    /// ```
    /// use statelog::{Readable, TableDef};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let mut def = TableDef::<u64, String>::new("users");
    /// let by_email = def.unique_index("email", |email| email.clone());
    /// let users = store.table(def)?;
    /// store.write(|tx| tx.insert(&users, &1, &"a@x".to_string()))?;
    /// let (id, _) = store.read().get_by(&by_email, "a@x")?.unwrap();
    /// assert_eq!(id, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unique_index<IK: Serialize>(
        &mut self,
        name: impl Into<String>,
        key: impl Fn(&V) -> IK + Send + Sync + 'static,
    ) -> Index<K, V, IK> {
        let name = name.into();
        self.uniques.push(Unique {
            name: name.clone(),
            key: Arc::new(move |v| encode_key_bytes(&key(v))),
        });
        Index {
            table: Arc::from(self.name.as_str()),
            name: Arc::from(name),
            _types: PhantomData,
        }
    }

    /// Reads rows stored with schema version `from` as `Old` and converts them. When the table
    /// is opened at a newer version, every row is rewritten in one transaction.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use statelog::{Readable, TableDef};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct V1 { name: String }
    /// #[derive(Serialize, Deserialize)]
    /// struct V2 { name: String, admin: bool }
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let old = store.table(TableDef::<u32, V1>::new("users"))?;
    /// store.write(|tx| tx.insert(&old, &1, &V1 { name: "ann".into() }))?;
    /// // Later, the value type gains a field: raise the version and convert.
    /// let users = store.table(
    ///     TableDef::<u32, V2>::new("users")
    ///         .version(2)
    ///         .migrate_from(1, |v: V1| V2 { name: v.name, admin: false }),
    /// )?;
    /// assert!(!store.read().get(&users, &1)?.unwrap().admin);
    /// # Ok(())
    /// # }
    /// ```
    pub fn migrate_from<Old: DeserializeOwned>(
        mut self,
        from: u32,
        convert: impl Fn(Old) -> V + Send + Sync + 'static,
    ) -> Self {
        self.migrations.push(Migration {
            from,
            convert: Arc::new(move |bytes| decode_value::<Old>(bytes).map(&convert)),
        });
        self
    }

    /// Adds a validator: before a transaction that changed rows of this table commits,
    /// `check(view, table, changed)` runs on the transaction's view (its reads see the
    /// transaction's writes, in every table) with the keys it put or deleted in this table,
    /// in key order. An error refuses the whole transaction: nothing is appended, and the
    /// call returns [`Rejected`](crate::Error::Rejected) with that error as its source.
    /// Validators run in the order added, under the writer lock (keep them short). Opening
    /// the table again replaces its validators with the new definition's.
    ///
    /// ```
    /// use statelog::{Error, Readable, Table, TableDef, TxView};
    ///
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// // Ranges, start to end, keyed by their start: no two may overlap.
    /// let no_overlaps = |view: &TxView<'_>, t: &Table<u64, u64>, _: &[u64]| -> Result<(), BoxError> {
    ///     let mut end_before = 0;
    ///     for row in view.range(t, ..)? {
    ///         let (start, end) = row?;
    ///         if start < end_before {
    ///             return Err(format!("{start}..{end} overlaps the range before it").into());
    ///         }
    ///         end_before = end;
    ///     }
    ///     Ok(())
    /// };
    /// let ranges = store.table(TableDef::new("ranges").validate(no_overlaps))?;
    /// store.write(|tx| tx.insert(&ranges, &0, &10))?;
    /// let overlap = store.write(|tx| tx.insert(&ranges, &5, &20));
    /// assert!(matches!(overlap, Err(Error::Rejected { .. })));
    /// assert_eq!(store.read().count(&ranges)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate<E>(
        mut self,
        check: impl Fn(&TxView<'_>, &Table<K, V>, &[K]) -> std::result::Result<(), E>
        + Send
        + Sync
        + 'static,
    ) -> Self
    where
        K: 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let check = Arc::new(check);
        self.validators.push(Arc::new(move |table: &Table<K, V>| {
            let (table, check) = (table.clone(), check.clone());
            Arc::new(move |view: &TxView<'_>, changed: &[Bytes]| {
                let keys = changed
                    .iter()
                    .map(|k| decode_key::<K>(k))
                    .collect::<std::result::Result<Vec<K>, String>>()
                    .map_err(|e| Error::IncompatibleSchema {
                        table: table.name.to_string(),
                        found: format!("a key that does not decode ({e})"),
                        expected: format!("keys {}", type_label::<K>()),
                    })?;
                check(view, &table, &keys).map_err(|e| Error::Rejected {
                    table: table.name.to_string(),
                    reason: e.into(),
                })
            }) as CheckFn
        }));
        self
    }
}

/// An open typed table: pass it to transactions and snapshots. Cheap to clone.
pub struct Table<K, V> {
    pub(crate) id: u32,
    pub(crate) name: Arc<str>,
    pub(crate) uniques: Arc<[Unique<V>]>,
    _types: PhantomData<fn() -> K>,
}

impl<K, V> Table<K, V> {
    pub(crate) fn new(id: u32, name: &str, uniques: Vec<Unique<V>>) -> Self {
        Table {
            id,
            name: Arc::from(name),
            uniques: Arc::from(uniques),
            _types: PhantomData,
        }
    }

    /// The names of its unique indexes, in slot order.
    pub(crate) fn index_names(&self) -> Vec<String> {
        self.uniques.iter().map(|u| u.name.clone()).collect()
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            id: self.id,
            name: self.name.clone(),
            uniques: self.uniques.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish()
    }
}

/// The key type an apply log's table records (no Rust type is named so).
pub(crate) const LOG_KEY_TYPE: &str = "@log";

/// The name of the internal table of checkpoint records (FORMAT.md §12.1), which no program
/// opens as a table of its own.
pub(crate) const CHECKPOINT_RECORDS: &str = "@checkpoints";

/// The name of the internal table of version floors (FORMAT.md §12.1, `floor.rs`), which no
/// program opens as a table of its own.
pub(crate) const VERSION_FLOORS: &str = "@versions";

/// [`InvalidArgument`](Error::InvalidArgument) for the name of an internal table.
pub(crate) fn check_table_name(name: &str) -> crate::error::Result<()> {
    if name == CHECKPOINT_RECORDS {
        return Err(crate::error::Error::InvalidArgument(format!(
            "{name} is the store's table of checkpoint records; read checkpoints with \
             Store::checkpoints"
        )));
    }
    if name == VERSION_FLOORS {
        return Err(crate::error::Error::InvalidArgument(format!(
            "{name} is the store's table of version floors (the highest version of each \
             table's deleted rows); choose another name"
        )));
    }
    Ok(())
}

/// An open apply log of entries of type `V` (FORMAT.md §12.1): an append-only table whose
/// entries are numbered by increasing ids. Pass it to
/// [`WriteTx::append`](crate::WriteTx::append) and [`Readable::entries`](crate::Readable::entries);
/// open it with [`Store::apply_log`](crate::Store::apply_log). Cheap to clone.
pub struct ApplyLog<V> {
    pub(crate) table: Table<u64, V>,
}

impl<V> ApplyLog<V> {
    pub(crate) fn of(table: Table<u64, V>) -> Self {
        ApplyLog { table }
    }

    /// The log's name.
    pub fn name(&self) -> &str {
        self.table.name()
    }
}

impl<V> Clone for ApplyLog<V> {
    fn clone(&self) -> Self {
        ApplyLog::of(self.table.clone())
    }
}

impl<V> std::fmt::Debug for ApplyLog<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyLog")
            .field("name", &self.table.name)
            .field("id", &self.table.id)
            .finish()
    }
}

/// A unique index of a typed table, for lookups by its key
/// ([`Readable::get_by`](crate::Readable::get_by)); from
/// [`TableDef::unique_index`]. `IK` is the index key's type. Cheap to clone.
///
/// The handle names its table and index; it holds no state of a store, so one handle serves
/// every store, snapshot, transaction and follower that opened the table with this index.
/// There is no lookup by an index's name as a string: the handle is the only way, so a
/// misspelt name or a key of the wrong type cannot reach a lookup.
///
/// ```
/// use statelog::{Index, TableDef};
///
/// let mut def = TableDef::<u64, String>::new("users");
/// let by_email: Index<u64, String, String> = def.unique_index("email", |e| e.clone());
/// assert_eq!((by_email.table_name(), by_email.name()), ("users", "email"));
/// ```
///
/// A lookup by a key of another type than the index's does not compile:
///
/// ```compile_fail
/// use statelog::{Readable, TableDef};
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
/// let mut def = TableDef::<u64, String>::new("users");
/// let by_email = def.unique_index("email", |e| e.clone());
/// store.table(def)?;
/// store.read().get_by(&by_email, &42u64)?; // an email is a String
/// # Ok(())
/// # }
/// ```
pub struct Index<K, V, IK> {
    pub(crate) table: Arc<str>,
    pub(crate) name: Arc<str>,
    _types: IndexTypes<K, V, IK>,
}

/// The types an [`Index`] handle is for (it holds none of them).
type IndexTypes<K, V, IK> = PhantomData<fn() -> (K, V, IK)>;

impl<K, V, IK> Index<K, V, IK> {
    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of its table.
    pub fn table_name(&self) -> &str {
        &self.table
    }
}

impl<K, V, IK> Clone for Index<K, V, IK> {
    fn clone(&self) -> Self {
        Index {
            table: self.table.clone(),
            name: self.name.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V, IK> std::fmt::Debug for Index<K, V, IK> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("table", &self.table)
            .field("name", &self.name)
            .finish()
    }
}

impl<V> AnyTable for ApplyLog<V> {
    fn table_id(&self) -> u32 {
        self.table.id
    }
    fn table_name(&self) -> &str {
        &self.table.name
    }
}

/// An open table of raw bytes: keys and values are the caller's bytes, keys in byte order.
#[derive(Debug, Clone)]
pub struct BytesTable {
    pub(crate) id: u32,
    pub(crate) name: Arc<str>,
}

impl BytesTable {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Something that names a table (typed or bytes), for table-level calls such as counting.
pub trait AnyTable {
    /// The table's id in its store.
    #[doc(hidden)]
    fn table_id(&self) -> u32;
    /// The table's name.
    fn table_name(&self) -> &str;
}

impl<K, V> AnyTable for Table<K, V> {
    fn table_id(&self) -> u32 {
        self.id
    }
    fn table_name(&self) -> &str {
        &self.name
    }
}

impl AnyTable for BytesTable {
    fn table_id(&self) -> u32 {
        self.id
    }
    fn table_name(&self) -> &str {
        &self.name
    }
}

/// A type's name without module paths (`alloc::string::String` becomes `String`), so moving a
/// type to another module does not change what the store records.
pub(crate) fn type_label<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::type_label;

    #[test]
    fn type_labels_drop_module_paths() {
        assert_eq!(type_label::<String>(), "String");
        assert_eq!(type_label::<(u64, String)>(), "(u64, String)");
        assert_eq!(type_label::<Vec<Option<String>>>(), "Vec<Option<String>>");
        assert_eq!(
            type_label::<std::collections::BTreeMap<u8, [u8; 4]>>(),
            "BTreeMap<u8, [u8; 4]>"
        );
    }
}
