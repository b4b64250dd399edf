//! Flushing dirty sets: the current values of every marked key, written as one atomic
//! transaction.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::sync::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dirty::{DirtySet, Mark};
use crate::error::{Error, Result};
use crate::store::{
    Bytes, EncodedRow, Store, Table, WriteTx, encode_key_bytes, encode_value_bytes, index_keys,
};

/// Lends a key's current value from the application's memory to the callback it is given
/// (not called if the key is gone).
type VisitFn<K, V> = Arc<dyn Fn(&K, &mut dyn FnMut(&V)) + Send + Sync>;

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Rows written, per table.
    pub upserts: HashMap<String, usize>,
    /// Rows deleted (marked deletes and upserts whose value was gone), per table.
    pub deletes: HashMap<String, usize>,
}

impl FlushReport {
    /// Total rows written and deleted.
    pub fn rows(&self) -> usize {
        self.upserts.values().sum::<usize>() + self.deletes.values().sum::<usize>()
    }
}

/// One weak table with its dirty set and the function that reads current values.
trait Source: Send + Sync {
    fn table_name(&self) -> &str;
    fn dirty_len(&self) -> usize;
    fn drain(&self) -> Box<dyn Batch>;
}

/// The drained marks of one source, with the rows read for them.
trait Batch {
    fn is_empty(&self) -> bool;
    fn read_values(&mut self) -> Result<()>;
    fn write_upserts(&mut self, tx: &mut WriteTx) -> Result<usize>;
    fn write_deletes(&mut self, tx: &mut WriteTx) -> Result<usize>;
    fn merge_back(self: Box<Self>);
}

struct TypedSource<K, V> {
    table: Table<K, V>,
    dirty: Arc<DirtySet<K>>,
    read: VisitFn<K, V>,
}

struct TypedBatch<K, V> {
    table: Table<K, V>,
    dirty: Arc<DirtySet<K>>,
    read: VisitFn<K, V>,
    marks: HashMap<K, Mark>,
    upserts: Vec<EncodedRow>,
    deletes: Vec<Bytes>,
}

impl<K, V> Source for TypedSource<K, V>
where
    K: Serialize + DeserializeOwned + Eq + Hash + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn table_name(&self) -> &str {
        self.table.name()
    }

    fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    fn drain(&self) -> Box<dyn Batch> {
        Box::new(TypedBatch {
            table: self.table.clone(),
            dirty: self.dirty.clone(),
            read: self.read.clone(),
            marks: self.dirty.drain(),
            upserts: Vec::new(),
            deletes: Vec::new(),
        })
    }
}

impl<K, V> Batch for TypedBatch<K, V>
where
    K: Serialize + DeserializeOwned + Eq + Hash + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    fn read_values(&mut self) -> Result<()> {
        let table = &self.table;
        // In key order: the writes then walk the table's tree along one path after another
        // instead of jumping around it, and the application's values are read in the order it
        // most likely made them in (the marks come in hash order).
        let mut keyed = Vec::with_capacity(self.marks.len());
        for (k, m) in &self.marks {
            keyed.push((encode_key_bytes(k)?, k, *m));
        }
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (kb, k, m) in keyed {
            let mut row = None;
            if m == Mark::Upsert {
                (self.read)(k, &mut |v: &V| {
                    row =
                        Some(encode_value_bytes(v).and_then(|vb| Ok((vb, index_keys(table, v)?))));
                });
            }
            match row {
                Some(r) => {
                    let (vb, keys) = r?;
                    self.upserts.push((kb, vb, keys));
                }
                // Marked deleted, or removed between the mark and the flush.
                None => self.deletes.push(kb),
            }
        }
        Ok(())
    }

    fn write_upserts(&mut self, tx: &mut WriteTx) -> Result<usize> {
        let n = self.upserts.len();
        tx.put_encoded_sorted(&self.table, std::mem::take(&mut self.upserts))?;
        Ok(n)
    }

    fn write_deletes(&mut self, tx: &mut WriteTx) -> Result<usize> {
        let mut n = 0;
        for kb in std::mem::take(&mut self.deletes) {
            match tx.delete_encoded(&self.table, kb) {
                Ok(_) => n += 1,
                Err(Error::RowNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn merge_back(self: Box<Self>) {
        self.dirty.merge_back(self.marks);
    }
}

/// Writes the dirty sets of a store's weak tables. Each flush drains every set, reads the
/// current value of each marked key, and writes all of them as one strong transaction:
/// upserts parents first, deletes children first (the order the sources were added in, or the
/// order of [`Rules`](super::Rules) given to [`order_by`](Self::order_by)). If the transaction
/// fails, the drained marks are merged back (newer marks win). Flushes never run concurrently.
pub struct Flusher {
    store: Store,
    sources: Vec<Box<dyn Source>>,
    lock: Mutex<()>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|s| s.table_name()).collect();
        f.debug_struct("Flusher")
            .field("tables", &names)
            .finish_non_exhaustive()
    }
}

impl Flusher {
    /// A flusher writing into `store` (the weak class's store).
    pub fn new(store: Store) -> Self {
        Flusher {
            store,
            sources: Vec::new(),
            lock: Mutex::new(()),
        }
    }

    /// Adds a weak table: its dirty set, and `read`, which returns a key's current value from
    /// the application's memory (`None` if it was removed).
    pub fn source<K, V>(
        self,
        table: &Table<K, V>,
        dirty: Arc<DirtySet<K>>,
        read: impl Fn(&K) -> Option<V> + Send + Sync + 'static,
    ) -> Self
    where
        K: Serialize + DeserializeOwned + Eq + Hash + Clone + Send + Sync + 'static,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.source_borrowed(table, dirty, move |k, lend| {
            if let Some(v) = read(k) {
                lend(&v);
            }
        })
    }

    /// Like [`source`](Self::source), but `read(key, lend)` lends the current value instead of
    /// returning a copy: it calls `lend(&value)` while it holds the value (not at all if the key
    /// is gone), and the flush encodes the row there and then.
    ///
    /// ```
    /// # use std::collections::HashMap;
    /// # use std::sync::{Arc, Mutex};
    /// # use statelog::{Store, StoreOptions, TableDef};
    /// # use statelog::weak::{DirtySet, Flusher};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    /// let leases = store.table(TableDef::<u64, String>::new("leases")).unwrap();
    /// let memory = Arc::new(Mutex::new(HashMap::from([(1u64, "node-a".to_string())])));
    /// let dirty = Arc::new(DirtySet::new());
    /// let m = memory.clone();
    /// let flusher = Flusher::new(store.clone()).source_borrowed(&leases, dirty.clone(), move |k, lend| {
    ///     if let Some(v) = m.lock().unwrap().get(k) {
    ///         lend(v);
    ///     }
    /// });
    /// dirty.mark_upsert(1);
    /// assert_eq!(flusher.flush().unwrap().rows(), 1);
    /// ```
    pub fn source_borrowed<K, V>(
        mut self,
        table: &Table<K, V>,
        dirty: Arc<DirtySet<K>>,
        read: impl Fn(&K, &mut dyn FnMut(&V)) + Send + Sync + 'static,
    ) -> Self
    where
        K: Serialize + DeserializeOwned + Eq + Hash + Clone + Send + Sync + 'static,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.sources.push(Box::new(TypedSource {
            table: table.clone(),
            dirty,
            read: Arc::new(read),
        }));
        self
    }

    /// Orders the sources so that parents come before children, by the references of `rules`
    /// (sources not related keep the order they were added in).
    pub fn order_by(mut self, rules: &super::Rules) -> Self {
        let names: Vec<String> = self
            .sources
            .iter()
            .map(|s| s.table_name().to_string())
            .collect();
        let order = rules.parents_first(&names);
        let mut sources: Vec<Option<Box<dyn Source>>> =
            self.sources.into_iter().map(Some).collect();
        self.sources = order
            .iter()
            .filter_map(|&i| sources.get_mut(i).and_then(Option::take))
            .collect();
        self
    }

    /// Marks waiting across all dirty sets.
    pub fn dirty_count(&self) -> usize {
        self.sources.iter().map(|s| s.dirty_len()).sum()
    }

    /// Flushes every dirty set now (waiting for a flush in progress to finish first).
    pub fn flush(&self) -> Result<FlushReport> {
        let _one_at_a_time = self.lock.lock();
        let mut batches: Vec<Box<dyn Batch>> = self.sources.iter().map(|s| s.drain()).collect();
        let mut report = FlushReport::default();
        if batches.iter().all(|b| b.is_empty()) {
            return Ok(report);
        }
        // Values are read before the store's write lock is taken, so a reader callback that
        // takes the application's own locks cannot deadlock with a writer.
        if let Err(e) = batches.iter_mut().try_for_each(|b| b.read_values()) {
            for b in batches {
                b.merge_back();
            }
            return Err(e);
        }
        let names: Vec<String> = self
            .sources
            .iter()
            .map(|s| s.table_name().to_string())
            .collect();
        let written = self.store.write(|tx| {
            for (b, name) in batches.iter_mut().zip(&names) {
                let n = b.write_upserts(tx)?;
                if n > 0 {
                    report.upserts.insert(name.clone(), n);
                }
            }
            for (b, name) in batches.iter_mut().zip(&names).rev() {
                let n = b.write_deletes(tx)?;
                if n > 0 {
                    report.deletes.insert(name.clone(), n);
                }
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(report),
            Err(e) => {
                for b in batches {
                    b.merge_back();
                }
                Err(e)
            }
        }
    }
}
