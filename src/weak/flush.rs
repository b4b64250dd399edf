//! Flushing dirty sets: the current values of every marked key, written as one atomic
//! transaction.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dirty::{DirtySet, Mark};
use crate::error::{Error, Result};
use crate::store::{Store, Table, WriteTx};

/// Reads a key's current value from the application's memory; `None` if it is gone.
type ReadFn<K, V> = Arc<dyn Fn(&K) -> Option<V> + Send + Sync>;

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

/// The drained marks of one source, with the values read for them.
trait Batch {
    fn is_empty(&self) -> bool;
    fn read_values(&mut self);
    fn write_upserts(&self, tx: &mut WriteTx) -> Result<usize>;
    fn write_deletes(&self, tx: &mut WriteTx) -> Result<usize>;
    fn merge_back(self: Box<Self>);
}

struct TypedSource<K, V> {
    table: Table<K, V>,
    dirty: Arc<DirtySet<K>>,
    read: ReadFn<K, V>,
}

struct TypedBatch<K, V> {
    table: Table<K, V>,
    dirty: Arc<DirtySet<K>>,
    read: ReadFn<K, V>,
    marks: HashMap<K, Mark>,
    upserts: Vec<(K, V)>,
    deletes: Vec<K>,
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

    fn read_values(&mut self) {
        for (k, m) in &self.marks {
            match m {
                Mark::Upsert => match (self.read)(k) {
                    Some(v) => self.upserts.push((k.clone(), v)),
                    // Removed between the mark and the flush.
                    None => self.deletes.push(k.clone()),
                },
                Mark::Delete => self.deletes.push(k.clone()),
            }
        }
        // In key order, the writes walk the table's tree along one path after another instead
        // of jumping around it (the marks come in hash order).
        let mut keyed: Vec<(Vec<u8>, (K, V))> = std::mem::take(&mut self.upserts)
            .into_iter()
            .map(|(k, v)| (crate::store::encode_key(&k).unwrap_or_default(), (k, v)))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.upserts = keyed.into_iter().map(|(_, kv)| kv).collect();
    }

    fn write_upserts(&self, tx: &mut WriteTx) -> Result<usize> {
        for (k, v) in &self.upserts {
            tx.insert(&self.table, k, v)?;
        }
        Ok(self.upserts.len())
    }

    fn write_deletes(&self, tx: &mut WriteTx) -> Result<usize> {
        let mut n = 0;
        for k in &self.deletes {
            match tx.delete(&self.table, k) {
                Ok(_) => n += 1,
                Err(Error::NotFound(_)) => {}
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
        mut self,
        table: &Table<K, V>,
        dirty: Arc<DirtySet<K>>,
        read: impl Fn(&K) -> Option<V> + Send + Sync + 'static,
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
        for b in &mut batches {
            b.read_values();
        }
        let names: Vec<String> = self
            .sources
            .iter()
            .map(|s| s.table_name().to_string())
            .collect();
        let written = self.store.write(|tx| {
            for (b, name) in batches.iter().zip(&names) {
                let n = b.write_upserts(tx)?;
                if n > 0 {
                    report.upserts.insert(name.clone(), n);
                }
            }
            for (b, name) in batches.iter().zip(&names).rev() {
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
