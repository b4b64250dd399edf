//! The store and its writer: atomic transactions as log entries, publication once durable,
//! read snapshots, table handles (opened in `open.rs`, compacted in `compaction.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::sync::{Mutex, MutexGuard};
use arc_swap::ArcSwap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::atomic::{AtomicU64, Ordering};

use super::codec::{Op, TableKind, TableMeta, encode_tx_hinted, encode_value_bytes};
use super::counters::Counters;
use super::feed::{Feed, Logged};
use super::gate::Gate;
use super::hints::{Declarations, hints_for};
use super::read::{CommitPos, Snapshot, schema_error};
use super::state::State;
use super::table::{
    BytesTable, CheckFn, LOG_KEY_TYPE, Table, TableDef, TxView, check_table_name, type_label,
};
use super::txn::{TableIndexes, WriteTx};
use super::view::{DerivedView, Publication};
use crate::epoch::{Durability, EpochLog, LostRange, Position, RecoveryReport, RegistryReader};
use crate::error::{Error, Result};
use crate::store::rows::Bytes;

/// A committed state waiting for its fsync before readers may see it.
pub(super) struct Pending {
    pos: Position,
    state: Arc<State>,
    strong: bool,
}

pub(crate) struct Writer {
    /// Every committed transaction, durable or not.
    pub(crate) head: Arc<State>,
    /// States committed but not yet published, oldest first.
    pub(super) pending: VecDeque<Pending>,
    /// After a failed automatic compaction: the update bytes the epoch must reach before the
    /// next try (so a state too large to snapshot is not encoded again on every commit).
    pub(super) compact_after: u64,
    /// Commits waiting to be durable before subscribers hear of them.
    pub(crate) feed: Feed,
    /// With a derived view: the newest state handed to publication, until it is published
    /// (`publish.rs` computes its view without this lock).
    pub(super) handed: Option<Arc<State>>,
    /// With a derived view: durable positions the feed delivers up to once the generation
    /// beside each is published (or its view failed), oldest first, so that a subscriber
    /// reads a state that holds a commit it was told of.
    pub(crate) undelivered: VecDeque<(u64, Position)>,
    /// The unique-index names each table was declared with in this epoch's transactions
    /// (FORMAT.md §12.1.1).
    pub(super) declared: Declarations,
}

pub(crate) struct Shared {
    pub(crate) log: EpochLog,
    /// The checkpoint registry, read by write transactions.
    pub(crate) registry: Arc<RegistryReader>,
    pub(crate) writer: Mutex<Writer>,
    /// The unique indexes of the tables opened, to rebuild them on a restored state.
    pub(crate) indexes: Mutex<Vec<TableIndexes>>,
    /// The validators of the tables opened, by table id, each in the order declared.
    pub(super) validators: Mutex<Vec<(u32, Vec<CheckFn>)>>,
    pub(crate) published: ArcSwap<State>,
    pub(super) auto_compact: bool,
    pub(super) view: Option<DerivedView>,
    /// With a derived view: the views being computed; publications are serialised by its
    /// lock (taken before the writer lock, never under it).
    pub(super) publication: Publication,
    pub(super) view_error: Mutex<Option<Error>>,
    pub(super) retention_error: Mutex<Option<Error>>,
    pub(super) compaction_error: Mutex<Option<Error>>,
    /// One compaction at a time.
    pub(crate) compaction: Arc<Gate>,
    /// Commits that waited for a compaction that fell behind.
    pub(super) stalls: AtomicU64,
    /// Commits delayed because a compaction fell behind, and their delays in all (ns).
    pub(super) delays: AtomicU64,
    pub(super) delay_nanos: AtomicU64,
    /// What the store did since it was opened, for `stats`.
    pub(crate) stats: Counters,
    pub(super) recovery: RecoveryReport,
    pub(super) lost: Vec<LostRange>,
}

/// An embedded store of typed tables, kept in memory and persisted as a log of transactions
/// with periodic snapshots. Cheap to clone; all clones share one store.
///
/// Dropping the last handle closes the store as [`close`](Store::close) does (buffered
/// commits synced, the space reserved ahead of the log given back, a CLOSE appended), so the
/// next open finds a clean end; if that fails (a poisoned store, a full disk) the next open
/// recovers as after a crash. After a crash (a killed process, a power loss) the next open
/// reports what it cut in [`RecoveryReport::torn_tail`](crate::epoch::RecoveryReport): the
/// reserved zeros (nothing lost) or an unfinished last write.
///
/// A strong transaction becomes visible to readers only once it is durable; a buffered one at
/// once, unless a strong one before it is still waiting for its fsync.
#[derive(Clone)]
pub struct Store {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Shared {
    /// The last handle is gone: close cleanly (see [`Store`]); a failure is left to the next
    /// open, which recovers as after a crash.
    fn drop(&mut self) {
        let _ = self.log.close();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.log.dir())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The epoch log underneath, for tools.
    #[doc(hidden)]
    pub fn log(&self) -> &EpochLog {
        &self.shared.log
    }

    /// A read snapshot of the newest published state (O(1), never blocked by writers).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// let snap = store.read();
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &2))?;
    /// // The snapshot still shows the state it was taken of.
    /// assert_eq!(snap.get(&t, "a")?, Some(1));
    /// assert_eq!(store.read().get(&t, "a")?, Some(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(&self) -> Snapshot {
        Snapshot {
            state: self.shared.published.load_full(),
        }
    }

    /// Runs `f` in a write transaction and commits it with strong durability: returns once
    /// the transaction is durable and visible to readers (with a [`DerivedView`], once its
    /// state or a newer one is published with its view, computed without the writer lock, or
    /// the view failed). If `f` fails or panics, nothing is committed. For a
    /// closure that returns the application's own error type, see
    /// [`transact`](Self::transact).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// // Read and write in one atomic transaction; the value returned is `write`'s.
    /// let total = store.write(|tx| {
    ///     tx.insert(&t, &"a".to_string(), &1)?;
    ///     tx.insert(&t, &"b".to_string(), &2)?;
    ///     Ok(tx.count(&t)?)
    /// })?;
    /// assert_eq!(total, 2);
    /// // An error rolls the whole transaction back.
    /// let failed = store.write(|tx| {
    ///     tx.insert(&t, &"c".to_string(), &3)?;
    ///     tx.delete(&t, &"missing".to_string())
    /// });
    /// assert!(failed.is_err());
    /// assert_eq!(store.read().count(&t)?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write<R>(&self, f: impl FnOnce(&mut WriteTx) -> Result<R>) -> Result<R> {
        self.write_with(Durability::Strong, f)
    }

    /// Runs `f` in a write transaction and commits it with the given durability.
    ///
    /// ```
    /// use statelog::{Durability, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// // Returns at once, visible to readers at once; durable with the next sync.
    /// store.write_with(Durability::Buffered, |tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// assert_eq!(store.read().get(&t, "a")?, Some(1));
    /// store.sync()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_with<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> Result<R>,
    ) -> Result<R> {
        self.transact_with(durability, f)
    }

    /// Runs `f` in a write transaction, as [`write`](Self::write) does, where `f` returns the
    /// application's own error type `E`: an `Err` from `f` rolls the transaction back and is
    /// returned unchanged; a statelog error (from a call in `f` through `?`, or from the
    /// commit) converts through `From<statelog::Error>`.
    ///
    /// A sibling rather than a generic `write`: with `write` generic over `E`, a closure that
    /// only uses `?` on statelog calls and returns `Ok(..)` would leave `E` uninferable, so
    /// every such closure would need a type annotation.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// #[derive(Debug)]
    /// enum AppError { Overlap, Store(statelog::Error) }
    /// impl From<statelog::Error> for AppError {
    ///     fn from(e: statelog::Error) -> Self { AppError::Store(e) }
    /// }
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// let r = store.transact(|tx| {
    ///     tx.insert(&t, &"a".to_string(), &1)?; // a statelog error would convert
    ///     if tx.contains(&t, "a")? {
    ///         return Err(AppError::Overlap); // rolls back; returned as it is
    ///     }
    ///     Ok(())
    /// });
    /// assert!(matches!(r, Err(AppError::Overlap)));
    /// assert_eq!(store.read().count(&t)?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn transact<R, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        self.transact_with(Durability::Strong, f)
    }

    /// [`transact`](Self::transact) with the given durability (see
    /// [`write_with`](Self::write_with)).
    ///
    /// ```
    /// use statelog::{Durability, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let t = store.table(statelog::TableDef::<String, u32>::new("t"))?;
    /// // Any error type that a statelog error converts into, such as a boxed error.
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let r: Result<(), BoxError> = store.transact_with(Durability::Buffered, |tx| {
    ///     tx.insert(&t, &"a".to_string(), &1)?;
    ///     Err("changed my mind".into())
    /// });
    /// assert_eq!(r.unwrap_err().to_string(), "changed my mind");
    /// assert!(store.read().get(&t, "a")?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn transact_with<R, E: From<Error>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let w = self.shared.writer.lock();
        let mut tx = WriteTx::new(&w.head);
        tx.registry = Some(self.shared.registry.clone());
        let out = f(&mut tx)?;
        Ok(self.commit_tx(w, tx, durability).map(|()| out)?)
    }

    /// Commits a transaction `f` built (logs it, waits as `durability` asks).
    fn commit_tx(
        &self,
        mut w: MutexGuard<'_, Writer>,
        tx: WriteTx,
        durability: Durability,
    ) -> Result<()> {
        if tx.ops.is_empty() {
            // Nothing to log; a strong transaction still returns only once the state it read
            // is durable (no fsync when nothing is pending).
            drop(w);
            if durability == Durability::Strong {
                self.shared.log.sync()?;
                self.publish_ready(&mut self.shared.writer.lock());
                self.publish_views();
            }
            return Ok(());
        }
        self.check(&tx)?;
        let pos = self.commit_hinted(&mut w, tx.work, &tx.ops, &tx.same_keys, durability)?;
        let generation = w.head.generation;
        let due = self.shared.auto_compact
            && self.shared.log.compaction_due()
            && self.shared.log.update_bytes() >= w.compact_after;
        drop(w);
        if durability != Durability::Strong {
            // Visible when `write` returns (a derived view is computed now, off the lock).
            self.publish_views();
        }
        if due {
            self.compact_beside_writers();
            self.slow_down_for_compaction(&tx.ops);
        }
        if durability == Durability::Strong {
            self.shared.log.wait_durable(pos)?;
            // One thread of a group commit publishes for all: the others find their state (or
            // a newer one) published and do not queue for the writer lock.
            if self.shared.published.load().generation < generation {
                self.publish_ready(&mut self.shared.writer.lock());
                self.publish_views();
            }
        }
        Ok(())
    }

    /// Runs the validators of the tables `tx` changed, on its view, each with the keys it
    /// changed in that table (in key order); the first refusal is the error.
    pub(crate) fn check(&self, tx: &WriteTx) -> Result<()> {
        let validators = {
            let v = self.shared.validators.lock();
            if v.is_empty() {
                return Ok(());
            }
            v.clone()
        };
        let view = TxView { state: &tx.work };
        for (table, checks) in &validators {
            let mut changed: Vec<Bytes> = tx
                .ops
                .iter()
                .filter_map(|op| match op {
                    Op::Put { table: t, key, .. } | Op::Delete { table: t, key } if t == table => {
                        Some(key.clone())
                    }
                    _ => None,
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            changed.sort_unstable();
            changed.dedup();
            for check in checks {
                check(&view, &changed)?;
            }
        }
        Ok(())
    }

    /// Appends the transaction to the log and makes `work` the head state; publishes it now
    /// if nothing before it waits for an fsync and it need not wait itself.
    pub(crate) fn commit_locked(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        work: State,
        ops: &[Op],
        durability: Durability,
    ) -> Result<Position> {
        self.commit_hinted(w, work, ops, &[], durability)
    }

    /// [`commit_locked`](Self::commit_locked), logging that the puts at `same_keys` in `ops`
    /// kept their rows' unique-index keys, under the tables' declared index names.
    pub(crate) fn commit_hinted(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        mut work: State,
        ops: &[Op],
        same_keys: &[usize],
        durability: Durability,
    ) -> Result<Position> {
        let epoch = w.head.epoch;
        let hints = hints_for(&mut w.declared, epoch, &work, ops, same_keys);
        let bytes = encode_tx_hinted(ops, &hints)?;
        let pos = self.shared.log.append(&bytes, Durability::Buffered)?;
        w.declared.note(hints.declared);
        self.shared.stats.commit(bytes.len());
        work.seal();
        work.seq = w.head.seq + 1;
        work.generation = w.head.generation + 1;
        let state = Arc::new(work);
        w.head = state.clone();
        if w.feed.active() {
            let commit = CommitPos {
                epoch: state.epoch,
                seq: state.seq,
            };
            w.feed.push(pos, Logged::new(commit, ops, &state));
        }
        let strong = durability == Durability::Strong;
        w.pending.push_back(Pending { pos, state, strong });
        if !strong {
            self.publish_ready(w);
        }
        Ok(pos)
    }

    /// Publishes the newest pending state that no unsynced strong commit precedes.
    pub(crate) fn publish_ready(&self, w: &mut Writer) {
        let durable = self.shared.log.durable_position();
        let mut ready = None;
        while let Some(front) = w.pending.front() {
            if front.strong && front.pos > durable {
                break;
            }
            ready = w.pending.pop_front();
        }
        if let Some(p) = ready {
            self.publish(w, p.state);
        }
        // After the publication: a subscriber told of a commit reads a state that holds it.
        if w.feed.active() {
            if self.shared.view.is_some() {
                // The states before `durable` are handed over: `publish_views` delivers once
                // they are published.
                let generation = w.handed.as_ref().map_or(0, |s| s.generation);
                match w.undelivered.back_mut() {
                    Some(last) if last.0 == generation => last.1 = last.1.max(durable),
                    _ => w.undelivered.push_back((generation, durable)),
                }
            } else {
                w.feed.deliver(durable);
            }
        }
    }

    /// Publishes a state unless a newer one is already visible (never moves backwards). With
    /// a derived view, only hands it over: [`publish_views`](Self::publish_views), called
    /// once the writer lock is released, computes the view and publishes the pair.
    pub(crate) fn publish(&self, w: &mut Writer, state: Arc<State>) {
        if self.shared.view.is_some() {
            if w.handed
                .as_ref()
                .is_none_or(|h| h.generation < state.generation)
            {
                w.handed = Some(state);
            }
            return;
        }
        if state.generation <= self.shared.published.load().generation {
            return;
        }
        self.shared.published.store(state);
    }

    /// The last failure of the derived view function, if any (taken: a second call returns
    /// `None` until it fails again). While the view fails, the last good (state, view) pair
    /// stays published: commits are durable but invisible until the view succeeds on a later
    /// commit or [`sync`](Self::sync) (see [`DerivedView`]).
    ///
    /// ```
    /// use statelog::{DerivedView, Error, Readable, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// // A view that fails once there are rows.
    /// let view = DerivedView::new(|s| match s.tables().iter().any(|t| t.rows > 0) {
    ///     true => Err(Error::InvalidArgument("no view today".into())),
    ///     false => Ok(()),
    /// });
    /// let store = Store::open(dir.path(), StoreOptions::default().view(view))?;
    /// let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?; // committed all the same
    /// assert!(store.view_error().is_some());
    /// assert!(store.view_error().is_none(), "taken");
    /// # Ok(())
    /// # }
    /// ```
    pub fn view_error(&self) -> Option<Error> {
        self.shared.view_error.lock().take()
    }

    /// The last failure to delete old epochs after a snapshot, if any (taken). The snapshot
    /// itself succeeded; retention is tried again after the next one.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.compact()?;
    /// if let Some(e) = store.retention_error() {
    ///     eprintln!("old epochs not deleted yet: {e}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn retention_error(&self) -> Option<Error> {
        self.shared.retention_error.lock().take()
    }

    /// The last failure of an automatic compaction (taken: a second call returns `None` until
    /// another one fails). The commits that triggered it were not failed by it; the next due
    /// commit tries again.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// // After commits that may have started an automatic compaction:
    /// if let Some(e) = store.compaction_error() {
    ///     eprintln!("compaction failed, retried later: {e}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn compaction_error(&self) -> Option<Error> {
        self.shared.compaction_error.lock().take()
    }

    /// Keeps a snapshot's retention failure for [`retention_error`](Self::retention_error).
    pub(crate) fn note_retention(&self, report: &mut crate::epoch::SnapshotReport) {
        if let Some(e) = report.retention_error.take() {
            *self.shared.retention_error.lock() = Some(e);
        }
    }

    /// Makes every committed transaction durable and visible. The fsync runs without the
    /// writer lock: other writers go on committing meanwhile (and share it, as group commit
    /// does); only the publication takes the lock.
    ///
    /// ```
    /// use statelog::Durability;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// for i in 0..100u32 {
    ///     store.write_with(Durability::Buffered, |tx| tx.put_bytes(&b, &i.to_le_bytes(), b"v"))?;
    /// }
    /// store.sync()?; // all 100 durable, with one fsync
    /// # Ok(())
    /// # }
    /// ```
    pub fn sync(&self) -> Result<()> {
        // Everything committed before this call is appended: the log's end covers it.
        self.shared.log.sync()?;
        self.publish_ready(&mut self.shared.writer.lock());
        self.publish_views();
        Ok(())
    }

    pub(crate) fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        self.shared.log.sync()?;
        self.publish_ready(w);
        Ok(())
    }

    /// After a concurrent compaction: `next` (the head's state, compacted) becomes the head,
    /// at the start of epoch `epoch` (the switch's seal made everything before it durable).
    /// Returns the replaced head, for the caller to drop once it released the lock.
    pub(super) fn start_epoch_with(&self, w: &mut Writer, next: State, epoch: u64) -> Arc<State> {
        self.shared
            .stats
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        self.publish_ready(w);
        let mut head = next;
        head.epoch = epoch;
        head.generation = w.head.generation + 1;
        let old = std::mem::replace(&mut w.head, Arc::new(head));
        if w.pending.is_empty() {
            let head = w.head.clone();
            self.publish(w, head);
        }
        old
    }

    /// After a snapshot of the head: the same state, now at the start of epoch `epoch` (the
    /// seal made everything before it durable, so nothing is pending).
    pub(crate) fn start_epoch_locked(&self, w: &mut Writer, epoch: u64) {
        self.publish_ready(w);
        let mut head = w.head.compacted();
        head.epoch = epoch;
        head.generation += 1;
        w.head = Arc::new(head);
        if w.pending.is_empty() {
            let head = w.head.clone();
            self.publish(w, head);
        }
    }

    /// Syncs everything and records a clean shutdown.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.close()?; // a clean end: the next open has nothing to recover
    /// # drop(store);
    /// let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// assert!(store.recovery().torn_tail.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) -> Result<()> {
        // A compaction under way finishes first.
        let _gate = self.shared.compaction.acquire();
        let _publish = self.publishing();
        let mut w = self.shared.writer.lock();
        self.sync_locked(&mut w)?;
        self.shared.log.close()
    }

    /// Opens the typed table `def` describes, creating it on first use. A table stored with
    /// other key or value types, or a schema version with no registered migration, is
    /// [`IncompatibleSchema`](Error::IncompatibleSchema). A table stored at an older version
    /// with a migration is rewritten in one transaction. Unique indexes are built from the
    /// rows.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use statelog::{Readable, TableDef};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct User { email: String }
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let mut def = TableDef::<u64, User>::new("users");
    /// let by_email = def.unique_index("email", |u| u.email.clone());
    /// let users = store.table(def)?;
    /// store.write(|tx| tx.insert(&users, &1, &User { email: "a@x".into() }))?;
    /// let (id, _) = store.read().get_by(&by_email, "a@x")?.unwrap();
    /// assert_eq!(id, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn table<K, V>(&self, def: TableDef<K, V>) -> Result<Table<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned + 'static,
    {
        check_table_name(&def.name)?;
        let key_type = def.key_label.map_or_else(type_label::<K>, str::to_string);
        let value_type = type_label::<V>();
        let _publish = self.publishing();
        let mut w = self.shared.writer.lock();
        self.sync_locked(&mut w)?;
        let mut work = (*w.head).clone();
        let mut ops = Vec::new();
        let incompatible = |found: String, expected: String| Error::IncompatibleSchema {
            table: def.name.clone(),
            found,
            expected,
        };
        let id = match work.table_by_name(&def.name).map(|t| t.meta.clone()) {
            None => {
                let meta = TableMeta {
                    id: work.next_table_id,
                    name: def.name.clone(),
                    kind: TableKind::Typed,
                    key_type,
                    value_type,
                    version: def.version,
                };
                ops.push(Op::CreateTable(meta));
                work.next_table_id
            }
            Some(meta) => {
                if meta.kind != TableKind::Typed {
                    return Err(incompatible("a bytes table".into(), "a typed table".into()));
                }
                if meta.key_type != key_type {
                    let kind = |k: &str| match k {
                        LOG_KEY_TYPE => "an apply log (open it with Store::apply_log)".to_string(),
                        k => format!("keys {k}"),
                    };
                    return Err(incompatible(kind(&meta.key_type), kind(&key_type)));
                }
                if meta.version > def.version {
                    return Err(incompatible(
                        format!("schema version {}", meta.version),
                        format!(
                            "schema version {} (the store was written by a newer program)",
                            def.version
                        ),
                    ));
                }
                if meta.version == def.version && meta.value_type != value_type {
                    return Err(incompatible(
                        format!("values {} at version {}", meta.value_type, meta.version),
                        format!(
                            "values {value_type} at version {} (raise the version and add a migration)",
                            def.version
                        ),
                    ));
                }
                if meta.version < def.version {
                    let Some(m) = def.migrations.iter().find(|m| m.from == meta.version) else {
                        return Err(incompatible(
                            format!("schema version {}", meta.version),
                            format!(
                                "schema version {} (no migration from {})",
                                def.version, meta.version
                            ),
                        ));
                    };
                    let table = work
                        .tables
                        .get(&meta.id)
                        .ok_or_else(|| Error::table_not_found(&def.name))?;
                    for row in table.rows.iter() {
                        let value =
                            (m.convert)(row.value).map_err(|e| schema_error(&def.name, e))?;
                        ops.push(Op::Put {
                            table: meta.id,
                            key: Bytes::new(row.key),
                            value: encode_value_bytes(&value)?,
                            version: row.version.saturating_add(1),
                        });
                    }
                    ops.push(Op::AlterTable(TableMeta {
                        key_type,
                        value_type,
                        version: def.version,
                        ..meta.clone()
                    }));
                }
                meta.id
            }
        };
        if !ops.is_empty() {
            for op in &ops {
                work.apply(op).map_err(Error::InvalidArgument)?;
            }
            self.commit_locked(&mut w, work, &ops, Durability::Strong)?;
            self.sync_locked(&mut w)?;
            work = (*w.head).clone();
        }
        // Build the unique indexes from the rows.
        let handle = Table::new(id, &def.name, def.uniques);
        let checks: Vec<CheckFn> = def.validators.iter().map(|bind| bind(&handle)).collect();
        let indexes = TableIndexes::of(&handle);
        let migrated = ops.iter().any(|op| matches!(op, Op::AlterTable(_)));
        let t = work
            .table_mut(id)
            .map_err(|_| Error::table_not_found(&def.name))?;
        if migrated {
            // Stored indexes describe values of the old schema.
            t.drop_stored();
        }
        indexes.rebuild(&mut work)?;
        {
            let mut registered = self.shared.indexes.lock();
            registered.retain(|i| i.table != id);
            registered.push(indexes);
            let mut validators = self.shared.validators.lock();
            validators.retain(|(t, _)| *t != id);
            if !checks.is_empty() {
                validators.push((id, checks));
            }
        }
        work.seal();
        work.generation = w.head.generation + 1;
        let state = Arc::new(work);
        w.head = state.clone();
        self.publish(&mut w, state);
        Ok(handle)
    }

    /// Opens the bytes table `name` (raw keys and values), creating it on first use.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let raw = store.bytes_table("raw")?;
    /// store.write(|tx| tx.put_bytes(&raw, b"k", b"v"))?;
    /// assert_eq!(store.read().get_bytes(&raw, b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn bytes_table(&self, name: &str) -> Result<BytesTable> {
        check_table_name(name)?;
        let mut w = self.shared.writer.lock();
        if let Some(t) = w.head.table_by_name(name) {
            if t.meta.kind != TableKind::Bytes {
                return Err(Error::IncompatibleSchema {
                    table: name.to_string(),
                    found: "a typed table".into(),
                    expected: "a bytes table".into(),
                });
            }
            return Ok(BytesTable {
                id: t.meta.id,
                name: Arc::from(name),
            });
        }
        let mut work = (*w.head).clone();
        let meta = TableMeta {
            id: work.next_table_id,
            name: name.to_string(),
            kind: TableKind::Bytes,
            key_type: "bytes".into(),
            value_type: "bytes".into(),
            version: 1,
        };
        let id = meta.id;
        let op = Op::CreateTable(meta);
        work.apply(&op).map_err(Error::InvalidArgument)?;
        let pos = self.commit_locked(&mut w, work, &[op], Durability::Strong)?;
        drop(w);
        self.shared.log.wait_durable(pos)?;
        self.publish_ready(&mut self.shared.writer.lock());
        self.publish_views();
        Ok(BytesTable {
            id,
            name: Arc::from(name),
        })
    }
}
