//! openraft's log storage on a statelog store.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, mpsc};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use statelog::{BytesTable, Durability, Readable, Store};

use crate::error::Error;
use crate::{NodeId, TypeConfig};

/// The bytes table of log entries, keyed by big-endian index, each entry as JSON.
pub(crate) const LOG_TABLE: &str = "raft_log";
/// The bytes table of the log's metadata: vote, committed, purged and last log ids.
pub(crate) const META_TABLE: &str = "raft_meta";

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";
const LAST: &[u8] = b"last";

/// openraft's log storage (and log reader) on a statelog [`Store`]. Cheap to clone: clones
/// share the store and the flusher.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    log: BytesTable,
    meta: BytesTable,
    /// The flusher thread: an append's callback runs once a sync after its transaction.
    flusher: Arc<Flusher>,
}

/// The flusher thread's queue and handle: dropped with the last clone of the log store, it
/// closes the queue and waits for the thread, so the store is closed (its directory free
/// for the next open) when the log store is gone.
struct Flusher {
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::corrupt(what, e))
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(what, e))
}

/// The row of `key` in `table` decoded, or `None`.
pub(crate) fn get_json<T: DeserializeOwned>(
    r: &impl Readable,
    table: &BytesTable,
    key: &[u8],
) -> Result<Option<T>, Error> {
    match r.get_bytes(table, key)? {
        Some(bytes) => decode(&String::from_utf8_lossy(key), &bytes).map(Some),
        None => Ok(None),
    }
}

/// A log index as a key: big-endian, so byte order is index order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn vote_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_vote(AnyError::new(&e)).into()
}

/// Runs a blocking store call off the async runtime's worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::Raft(format!("blocking task failed: {e}"))),
    }
}

impl LogStore {
    /// Log storage on `store` (its tables are created if absent), with a flusher thread that
    /// syncs the store for appends.
    pub fn new(store: Store) -> Result<LogStore, Error> {
        let log = store.bytes_table(LOG_TABLE)?;
        let meta = store.bytes_table(META_TABLE)?;
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("statelog-raft-flusher".into())
            .spawn(move || flusher(flush_store, rx))
            .map_err(|e| Error::io("starting the flusher thread", e))?;
        Ok(LogStore {
            store,
            log,
            meta,
            flusher: Arc::new(Flusher {
                tx: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry<TypeConfig>>, Error> {
        let key = |b: Bound<u64>| match b {
            Bound::Included(i) => Bound::Included(index_key(i).to_vec()),
            Bound::Excluded(i) => Bound::Excluded(index_key(i).to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        // An empty or inverted range reads nothing (a B-tree range would panic on it).
        let lo = match range.0 {
            Bound::Included(i) => Some(i),
            Bound::Excluded(i) => i.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let hi = match range.1 {
            Bound::Included(i) => Some(i),
            Bound::Excluded(i) => i.checked_sub(1),
            Bound::Unbounded => Some(u64::MAX),
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => {}
            _ => return Ok(Vec::new()),
        }
        let snap = self.store.read();
        snap.range_bytes(&self.log, (key(range.0), key(range.1)))?
            .map(|(_, v)| decode("log entry", &v))
            .collect()
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, Error> {
        let snap = self.store.read();
        let purged: Option<LogId<NodeId>> = get_json(&snap, &self.meta, PURGED)?;
        let last: Option<LogId<NodeId>> = get_json(&snap, &self.meta, LAST)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: std::cmp::max(last, purged),
        })
    }

    fn truncate_blocking(&self, log_id: LogId<NodeId>) -> Result<(), Error> {
        let (log, meta) = (self.log.clone(), self.meta.clone());
        let from = index_key(log_id.index).to_vec();
        // The entry before the cut becomes the last; read before the transaction (appends are
        // serialized with truncation by openraft).
        let snap = self.store.read();
        let prev: Option<Vec<u8>> = match log_id.index.checked_sub(1) {
            Some(i) => match snap.get_bytes(&log, &index_key(i))? {
                Some(bytes) => {
                    let e: Entry<TypeConfig> = decode("log entry", &bytes)?;
                    Some(encode("log id", &e.log_id)?)
                }
                None => None,
            },
            None => None,
        };
        drop(snap);
        self.store.write(|tx| {
            let keys: Vec<Vec<u8>> = tx
                .range_bytes(&log, from.clone()..)?
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                tx.delete_bytes(&log, &k)?;
            }
            match &prev {
                Some(p) => tx.put_bytes(&meta, LAST, p)?,
                None => match tx.delete_bytes(&meta, LAST) {
                    Ok(()) | Err(statelog::Error::RowNotFound { .. }) => {}
                    Err(e) => return Err(e),
                },
            }
            Ok(())
        })?;
        Ok(())
    }

    fn purge_blocking(&self, log_id: LogId<NodeId>) -> Result<(), Error> {
        let (log, meta) = (self.log.clone(), self.meta.clone());
        let upto = index_key(log_id.index).to_vec();
        let purged = encode("log id", &log_id)?;
        let last: Option<LogId<NodeId>> = get_json(&self.store.read(), &meta, LAST)?;
        let raise_last = last.is_none_or(|l| l.index < log_id.index);
        self.store.write(|tx| {
            let keys: Vec<Vec<u8>> = tx
                .range_bytes(&log, ..=upto.clone())?
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                tx.delete_bytes(&log, &k)?;
            }
            tx.put_bytes(&meta, PURGED, &purged)?;
            if raise_last {
                tx.put_bytes(&meta, LAST, &purged)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Makes every transaction committed so far durable, without holding the store's writer
/// lock during the fsync (as [`Store::sync`] does): an empty strong transaction waits for the
/// log's group commit with the lock released, so appends and applies go on meanwhile.
pub(crate) fn sync(store: &Store) -> statelog::Result<()> {
    store.write(|_| Ok(()))
}

/// Syncs the store for the appends whose callbacks arrive, in order, many at once when they
/// queue up (one fsync for all), and reports each as durable only after its sync.
fn flusher(store: Store, rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let result = sync(&store).map_err(|e| e.to_string());
        for cb in batch {
            cb.log_io_completed(result.clone().map_err(std::io::Error::other));
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        self.log_state().map_err(read_err)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = encode("vote", vote).map_err(vote_err)?;
        let (store, meta) = (self.store.clone(), self.meta.clone());
        // Strong: durable when this returns.
        blocking(move || Ok(store.write(|tx| tx.put_bytes(&meta, VOTE, &bytes))?))
            .await
            .map_err(vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        get_json(&self.store.read(), &self.meta, VOTE)
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Buffered: made durable by the next append's or vote's sync. A committed id that is
        // behind after a crash is only learned again from the leader.
        let bytes = encode("log id", &committed).map_err(write_err)?;
        self.store
            .write_with(Durability::Buffered, |tx| {
                tx.put_bytes(&self.meta, COMMITTED, &bytes)
            })
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let c: Option<Option<LogId<NodeId>>> =
            get_json(&self.store.read(), &self.meta, COMMITTED).map_err(read_err)?;
        Ok(c.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        let mut last = None;
        for e in entries {
            rows.push((
                index_key(e.log_id.index),
                encode("log entry", &e).map_err(write_err)?,
            ));
            last = Some(e.log_id);
        }
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let last = encode("log id", &last).map_err(write_err)?;
        // One transaction for the batch, readable at once; the flusher reports it durable
        // after the sync that covers it.
        self.store
            .write_with(Durability::Buffered, |tx| {
                for (k, v) in &rows {
                    tx.put_bytes(&self.log, k, v)?;
                }
                tx.put_bytes(&self.meta, LAST, &last)
            })
            .map_err(write_err)?;
        let sent = match &self.flusher.tx {
            Some(tx) => tx.send(callback).map_err(|mpsc::SendError(cb)| cb),
            None => Err(callback),
        };
        if let Err(cb) = sent {
            cb.log_io_completed(Err(std::io::Error::other("the flusher thread stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        blocking(move || this.truncate_blocking(log_id))
            .await
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        blocking(move || this.purge_blocking(log_id))
            .await
            .map_err(write_err)
    }
}
