//! Followers: read-only mirrors of a store that a writer, possibly in another process, is
//! changing. A follower restores the newest state, then applies each committed transaction as
//! it appears in the log, publishing every new state atomically to its readers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sync::{Condvar, Mutex};
use arc_swap::ArcSwap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::changes::{Change, Changes, change_in, changes_since};
use super::subscribe::{ChangeFilter, Subscriber, Subscription};
use crate::backend::{Backend, FsBackend};
use crate::epoch::{EpochReader, LogTail, RecoveryMode, TailEvent};
use crate::error::{CorruptKind, Error, Result};
use crate::store::engine::{
    CommitPos, DerivedView, Op, Readable, Snapshot, State, Table, TableDef, TableIndexes,
    apply_indexed, decode_tx,
};

/// Settings of a follower.
#[derive(Debug, Clone, Default)]
pub struct FollowerOptions {
    /// A view derived from every new state and published atomically with it.
    pub view: Option<DerivedView>,
}

/// What one [`Follower::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    /// Transactions applied.
    pub applied: u64,
    /// Whether the state was reloaded from a snapshot instead of followed transaction by
    /// transaction: on the first poll, after the follower fell behind what retention keeps,
    /// or after the writer's operator rewound the store (the only case in which the state
    /// goes back).
    pub reloaded: bool,
    /// The position of the state published now.
    pub pos: CommitPos,
}

struct Cursor {
    tail: LogTail,
    head: State,
    indexes: Vec<TableIndexes>,
    /// Why a transaction could not be applied: the follower stops there for good.
    broken: Option<String>,
    /// Updates of the epoch followed that the follower applied already: a snapshot taken
    /// beside the writers starts its epoch with copies of the transactions committed while
    /// it was written (FORMAT.md §11.6.1).
    skip: u64,
}

struct Shared {
    backend: Arc<dyn Backend>,
    dir: PathBuf,
    cursor: Mutex<Cursor>,
    published: ArcSwap<State>,
    view: Option<DerivedView>,
    view_error: Mutex<Option<Error>>,
    /// Told of every transaction applied (locked after `cursor`).
    subscribers: Mutex<Vec<Subscriber>>,
}

/// A read-only mirror of a store directory that a writer (in this process or another) is
/// changing. [`poll`](Self::poll), or a [`Watcher`] thread, applies the transactions committed
/// since the last poll; readers take [`Snapshot`]s as with a [`Store`](crate::Store). A
/// follower never sees a partial transaction, never publishes an older state than one it
/// published (unless an operator rewinds the writer), and carries on across the writer's
/// compactions, segment deletions and restarts. It takes no lock and changes no file. Cheap
/// to clone; clones share one follower.
#[derive(Clone)]
pub struct Follower {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Follows the store in directory `dir`, starting from its newest committed state.
    ///
    /// ```
    /// use statelog::{Follower, FollowerOptions, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// // In this process or another: a read-only mirror of the writer's store.
    /// let follower = Follower::open(dir.path(), FollowerOptions::default())?;
    /// assert_eq!(follower.read().get_bytes(&b, b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: FollowerOptions) -> Result<Follower> {
        Self::open_with(Arc::new(FsBackend::new()), dir.as_ref(), options)
    }

    /// Follows a store through a given I/O backend.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use statelog::backend::FsBackend;
    /// use statelog::{Follower, FollowerOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let follower = Follower::open_with(Arc::new(FsBackend::new()), dir.path(), FollowerOptions::default())?;
    /// assert_eq!(follower.read().position(), store.read().position());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with(
        backend: Arc<dyn Backend>,
        dir: &Path,
        options: FollowerOptions,
    ) -> Result<Follower> {
        let tail = LogTail::open(backend.clone(), dir)?;
        let follower = Follower {
            shared: Arc::new(Shared {
                backend,
                dir: dir.to_path_buf(),
                cursor: Mutex::new(Cursor {
                    tail,
                    head: State::default(),
                    indexes: Vec::new(),
                    broken: None,
                    skip: 0,
                }),
                published: ArcSwap::new(Arc::new(State::default())),
                view: options.view,
                view_error: Mutex::new(None),
                subscribers: Mutex::new(Vec::new()),
            }),
        };
        follower.poll()?;
        Ok(follower)
    }

    /// A read snapshot of the newest state the follower published (O(1)).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// assert_eq!(follower.read().count(&b)?, 0); // not polled yet
    /// follower.poll()?;
    /// assert_eq!(follower.read().count(&b)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(&self) -> Snapshot {
        Snapshot {
            state: self.shared.published.load_full(),
        }
    }

    /// Applies every transaction committed since the last poll and publishes the result as
    /// one new state. A transaction the writer has not finished writing is applied by a later
    /// poll. Damage in the log ([`Error::Corrupt`], naming the file and offset), or a
    /// transaction that does not fit the state, is an error; the transactions before it stay
    /// applied, and every later poll returns the error (an I/O error may pass: the next poll
    /// tries again), until the writer starts a newer epoch (a compaction): the follower
    /// then reloads that epoch's snapshot and goes on ([`PollReport::reloaded`]).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let report = follower.poll()?;
    /// assert_eq!(report.applied, 1);
    /// assert_eq!(report.pos, store.read().position());
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll(&self) -> Result<PollReport> {
        self.poll_into(None)
    }

    /// Like [`poll`](Self::poll), and also returns the changes of the transactions applied,
    /// oldest first, read once as they are applied (no second pass over the log, unlike
    /// [`changes_since`](Self::changes_since)). If the report says `reloaded`, they are the
    /// changes after the last reload, whose state is the one before the first of them.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let (_report, changes) = follower.poll_changes()?;
    /// assert_eq!(changes.len(), 1);
    /// assert_eq!(changes[0].ops[0].table(), "b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_changes(&self) -> Result<(PollReport, Vec<Change>)> {
        let mut changes = Vec::new();
        let report = self.poll_into(Some(&mut changes))?;
        Ok((report, changes))
    }

    fn poll_into(&self, sink: Option<&mut Vec<Change>>) -> Result<PollReport> {
        let mut c = self.shared.cursor.lock();
        let mut reloaded = false;
        if let Some(cause) = &c.broken {
            // Stopped at a transaction that does not decode or fit: it stays stopped until
            // the writer starts a newer epoch (a compaction), whose snapshot it reloads.
            let cause = cause.clone();
            if !self.recover(&mut c)? {
                return Err(Error::Poisoned { cause });
            }
            reloaded = true;
        }
        // Subscribers need the changes too.
        let pushing = !self.shared.subscribers.lock().is_empty();
        let mut own = Vec::new();
        let mut sink = match sink {
            Some(s) => Some(s),
            None if pushing => Some(&mut own),
            None => None,
        };
        let mut applied = 0;
        let mut changed = reloaded;
        if reloaded && let Some(sink) = sink.as_deref_mut() {
            sink.clear();
        }
        let result = loop {
            let step = match c.tail.next() {
                Ok(None) => break Ok(()),
                Ok(Some(TailEvent::Update(_))) if c.skip > 0 => {
                    c.skip -= 1;
                    continue;
                }
                Ok(Some(TailEvent::Update(bytes))) => c.apply(&bytes).map(|ops| {
                    applied += 1;
                    if let Some(sink) = sink.as_deref_mut() {
                        let pos = CommitPos {
                            epoch: c.head.epoch,
                            seq: c.head.seq,
                        };
                        sink.push(change_in(pos, ops, &c.head));
                    }
                }),
                Ok(Some(TailEvent::Epoch {
                    info,
                    snapshot,
                    continues,
                })) => c
                    .start_epoch(info.id, info.segment, snapshot, continues, &self.shared.dir)
                    .map(|reload| {
                        if reload {
                            reloaded = true;
                            if let Some(sink) = sink.as_deref_mut() {
                                sink.clear(); // superseded by the reloaded state
                            }
                        }
                    }),
                // Damage in the log: reported on every poll (an I/O error may be transient:
                // the next poll retries), until the writer starts a newer epoch past it.
                Err(e @ Error::Corrupt { .. }) => match self.recover(&mut c) {
                    Ok(true) => {
                        reloaded = true;
                        changed = true;
                        if let Some(sink) = sink.as_deref_mut() {
                            sink.clear();
                        }
                        continue;
                    }
                    Ok(false) => break Err(e),
                    Err(_) => break Err(e),
                },
                Err(e) => break Err(e),
            };
            if let Err(e) = step {
                crate::trace::trace_event!(
                    error,
                    "statelog: follower of {} stopped: {e}",
                    self.shared.dir.display()
                );
                c.broken = Some(e.to_string());
                break Err(e);
            }
            changed = true;
        };
        if changed {
            self.publish(&mut c);
        }
        let pos = CommitPos {
            epoch: c.head.epoch,
            seq: c.head.seq,
        };
        if pushing {
            let changes = sink.as_deref().map(Vec::as_slice).unwrap_or_default();
            let mut subscribers = self.shared.subscribers.lock();
            subscribers.retain_mut(|s| (!reloaded || s.send_reset()) && s.send(changes));
            if c.broken.is_some() {
                // No more changes will come: receivers see the end.
                subscribers.clear();
            }
        }
        result.map(|()| PollReport {
            applied,
            reloaded,
            pos,
        })
    }

    /// Moves a follower stopped by damage or a transaction it could not apply to the writer's
    /// newest epoch, if that is newer than the state it holds: reloads that epoch's snapshot
    /// (returns true). Otherwise changes nothing (returns false).
    fn recover(&self, c: &mut Cursor) -> Result<bool> {
        let mut tail = LogTail::open(self.shared.backend.clone(), &self.shared.dir)?;
        let Some(TailEvent::Epoch { info, snapshot, .. }) = tail.next()? else {
            return Ok(false);
        };
        if info.id <= c.head.epoch {
            return Ok(false);
        }
        let broken = c.broken.take();
        let old_tail = std::mem::replace(&mut c.tail, tail);
        if let Err(e) = c.start_epoch(info.id, info.segment, snapshot, false, &self.shared.dir) {
            c.tail = old_tail;
            c.broken = broken;
            return Err(e);
        }
        crate::trace::trace_event!(
            warn,
            "statelog: follower of {} skipped damage: reloaded epoch {}",
            self.shared.dir.display(),
            info.id
        );
        Ok(true)
    }

    /// Publishes the head state, with its derived view; if the view fails, the previous state
    /// stays published and the error is kept for [`view_error`](Self::view_error).
    fn publish(&self, c: &mut Cursor) {
        c.head.seal();
        c.head.generation += 1;
        let mut state = c.head.clone();
        if let Some(view) = &self.shared.view {
            match view.compute(&Arc::new(c.head.clone())) {
                Ok(v) => state.view = Some(v),
                Err(e) => {
                    *self.shared.view_error.lock() = Some(e);
                    return;
                }
            }
        }
        self.shared.published.store(Arc::new(state));
    }

    /// The last failure of the derived view function, if any (taken).
    ///
    /// ```
    /// use statelog::{DerivedView, Error, Follower, FollowerOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// let view = DerivedView::new(|_| Err::<(), _>(Error::InvalidArgument("no view".into())));
    /// let follower = Follower::open(dir.path(), FollowerOptions { view: Some(view) })?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// follower.poll()?; // applied; the previous state stays published
    /// assert!(follower.view_error().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn view_error(&self) -> Option<Error> {
        self.shared.view_error.lock().take()
    }

    /// A handle for the typed table `def` describes, which must exist with the same key and
    /// value types and schema version; its unique indexes are built now and kept up to date
    /// by every poll, so [`Readable::get_by`] works on the follower's snapshots.
    ///
    /// ```
    /// use statelog::{Follower, FollowerOptions, Readable, TableDef};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let def = || {
    ///     let mut def = TableDef::<u32, String>::new("names");
    ///     let by_name = def.unique_index("name", |n| n.clone());
    ///     (def, by_name)
    /// };
    /// let names = store.table(def().0)?;
    /// store.write(|tx| tx.insert(&names, &1, &"ann".to_string()))?;
    /// let follower = Follower::open(dir.path(), FollowerOptions::default())?;
    /// let (def, by_name) = def();
    /// follower.table(def)?;
    /// assert_eq!(follower.read().get_by(&by_name, "ann")?.map(|(id, _)| id), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn table<K, V>(&self, def: TableDef<K, V>) -> Result<Table<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned + 'static,
    {
        let mut c = self.shared.cursor.lock();
        let head = Snapshot {
            state: Arc::new(c.head.clone()),
        };
        let plain: Table<K, V> = head.table_named(&def.name)?;
        let meta = &head
            .state
            .table_by_name(&def.name)
            .ok_or_else(|| Error::table_not_found(&def.name))?
            .meta;
        if meta.version != def.version {
            return Err(Error::IncompatibleSchema {
                table: def.name.clone(),
                found: format!("schema version {}", meta.version),
                expected: format!("schema version {}", def.version),
            });
        }
        let handle = Table::new(plain.id, &def.name, def.uniques);
        if !handle.uniques.is_empty() {
            let indexes = TableIndexes::of(&handle);
            let mut work = c.head.clone();
            indexes.rebuild(&mut work)?;
            c.head = work;
            c.indexes.retain(|i| i.table != handle.id);
            c.indexes.push(indexes);
            self.publish(&mut c);
        }
        Ok(handle)
    }

    /// Up to `limit` transactions committed after `pos`, read from the log, or
    /// [`Changes::Reset`] when the log no longer holds them all. Reads the log from the start
    /// of `pos`'s epoch.
    ///
    /// ```
    /// use statelog::Changes;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// let from = follower.read().position();
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let Changes::Since(changes) = follower.changes_since(from, 10)? else { panic!() };
    /// assert_eq!(changes.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes_since(&self, pos: CommitPos, limit: usize) -> Result<Changes> {
        let reader = EpochReader::open(
            self.shared.backend.clone(),
            &self.shared.dir,
            RecoveryMode::TolerateTornTail,
        )?;
        let names = self.shared.published.load_full();
        changes_since(&reader, &self.shared.dir, &names, pos, limit, None)
    }

    /// Subscribes to the changes of the transactions this follower applies from now on (by
    /// [`poll`](Self::poll) or a [`Watcher`]) to the tables `filter` admits, in commit order,
    /// each after the state holding it is published. A reload sends
    /// [`Changes::Reset`]; a follower stopped by damage ends the subscription (receiving
    /// fails; the cause is what [`poll`](Self::poll) returns).
    ///
    /// ```
    /// use std::time::Duration;
    /// use statelog::{ChangeFilter, Changes, Follower, FollowerOptions, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreOptions::default())?;
    /// let t = store.bytes_table("t")?;
    /// let follower = Follower::open(dir.path(), FollowerOptions::default())?;
    /// let sub = follower.subscribe(ChangeFilter::all());
    /// let _watcher = follower.watch(Duration::from_millis(5));
    /// store.write(|tx| tx.put_bytes(&t, b"k", b"v"))?;
    /// // No sleep loop: the watcher's polls push what they apply.
    /// let Ok(Changes::Since(changes)) = sub.recv_timeout(Duration::from_secs(10)) else {
    ///     panic!("no change")
    /// };
    /// assert_eq!(changes[0].ops[0].table(), "t");
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self, filter: ChangeFilter) -> Subscription {
        let c = self.shared.cursor.lock();
        let start = CommitPos {
            epoch: c.head.epoch,
            seq: c.head.seq,
        };
        let (sub, subscription) = Subscriber::new(filter, start);
        if c.broken.is_none() {
            self.shared.subscribers.lock().push(sub);
        }
        subscription
    }

    /// Starts a thread that polls every `interval` until the returned [`Watcher`] is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// let watcher = follower.watch(Duration::from_millis(10));
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// # let start = std::time::Instant::now();
    /// # while follower.read().count(&b)? == 0 && start.elapsed() < Duration::from_secs(10) {
    /// #     std::thread::sleep(Duration::from_millis(5));
    /// # }
    /// // The watcher's thread polls; readers just read.
    /// assert_eq!(follower.read().count(&b)?, 1);
    /// drop(watcher); // stops polling
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&self, interval: Duration) -> Watcher {
        let signal = Arc::new(Signal::default());
        let error = Arc::new(Mutex::new(None));
        let (follower, s, err) = (self.clone(), signal.clone(), error.clone());
        let thread = std::thread::spawn(move || {
            let mut stop = s.stop.lock();
            // Consecutive failed polls: each doubles the wait before the next (up to
            // `MAX_BACKOFF` times the interval); a poll that succeeds resets it.
            let mut failures = 0u32;
            while !*stop {
                drop(stop);
                match follower.poll() {
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        *err.lock() = Some(e);
                    }
                }
                stop = s.stop.lock();
                if !*stop {
                    s.wake.wait_for(&mut stop, backoff(interval, failures));
                }
            }
        });
        Watcher {
            follower: self.clone(),
            signal,
            error,
            thread: Some(thread),
        }
    }
}

impl Cursor {
    /// Applies one logged transaction, all of it or nothing; returns its operations.
    fn apply(&mut self, bytes: &[u8]) -> Result<Vec<Op>> {
        let bad = |tail: &LogTail| match tail.last_location() {
            Some((file, offset)) => Error::corrupt(file, offset, CorruptKind::Payload),
            None => Error::InvalidArgument("a transaction does not fit the state".into()),
        };
        let ops = decode_tx(bytes).map_err(|_| bad(&self.tail))?;
        let mut work = self.head.clone();
        for op in &ops {
            self.apply_op(&mut work, op).map_err(|_| bad(&self.tail))?;
        }
        work.seq += 1;
        self.head = work;
        Ok(ops)
    }

    /// Applies one change, keeping the unique indexes the follower maintains.
    fn apply_op(&self, state: &mut State, op: &Op) -> std::result::Result<(), String> {
        apply_indexed(&self.indexes, state, op)
    }

    /// Moves to a new epoch: keeps the state if the epoch continues it exactly, otherwise
    /// loads the epoch's snapshot (returns true).
    fn start_epoch(
        &mut self,
        epoch: u64,
        segment: u64,
        snapshot: Option<Vec<u8>>,
        continues: bool,
        dir: &Path,
    ) -> Result<bool> {
        let file = dir.join(format!("{segment:016x}.seg"));
        let bad = |_| Error::corrupt(&file, 32, CorruptKind::Payload);
        let seq = match &snapshot {
            Some(b) => State::snapshot_seq(b).map_err(bad)?,
            None => 0,
        };
        if continues && seq <= self.head.seq {
            // The writer compacted: so does the follower (its changes fold into new bases).
            // The epoch's first updates are copies of the ones after `seq` it applied.
            self.skip = self.head.seq - seq;
            self.head = self.head.compacted();
            self.head.epoch = epoch;
            return Ok(false);
        }
        self.skip = 0;
        let mut state = match &snapshot {
            Some(b) => State::decode_snapshot(b).map_err(bad)?,
            None => State::default(),
        };
        state.epoch = epoch;
        state.generation = self.head.generation;
        for ix in &self.indexes {
            ix.rebuild(&mut state)?;
        }
        self.head = state;
        Ok(true)
    }
}

/// Most times the interval a watcher waits after failed polls.
const MAX_BACKOFF: u32 = 64;

/// The wait after `failures` consecutive failed polls: the interval, doubled per failure, at
/// most [`MAX_BACKOFF`] times the interval.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.min(31))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    interval.saturating_mul(factor)
}

#[derive(Default)]
struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A thread polling a [`Follower`] at an interval (the interval runs from the end of one
/// poll to the start of the next). Stops when dropped.
pub struct Watcher {
    follower: Follower,
    signal: Arc<Signal>,
    error: Arc<Mutex<Option<Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Subscribes to the changes the watcher's polls apply from now on (see
    /// [`Follower::subscribe`]): wait on the subscription instead of sleeping between reads.
    pub fn subscribe(&self, filter: ChangeFilter) -> Subscription {
        self.follower.subscribe(filter)
    }

    /// The follower polled.
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// The last error a poll returned, if any (taken: a second call returns `None` until a
    /// poll fails again). Polling goes on after errors, each consecutive failure doubling the
    /// wait before the next poll (up to 64 times the interval; a successful poll resets it),
    /// so a transient read error passes, and damage is skipped once the writer compacts (see
    /// [`Follower::poll`]).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// # let follower = statelog::Follower::open(dir.path(), statelog::FollowerOptions::default())?;
    /// let watcher = follower.watch(Duration::from_millis(10));
    /// // Polling goes on after an error; check now and then, or on a subscription's end.
    /// if let Some(e) = watcher.last_error() {
    ///     eprintln!("follower: {e}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_error(&self) -> Option<Error> {
        self.error.lock().take()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BACKOFF, backoff};
    use std::time::Duration;

    #[test]
    fn failed_polls_double_the_wait_up_to_a_bound() {
        let i = Duration::from_millis(10);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), i * 2);
        assert_eq!(backoff(i, 3), i * 8);
        assert_eq!(backoff(i, 6), i * MAX_BACKOFF);
        assert_eq!(backoff(i, 40), i * MAX_BACKOFF);
        assert_eq!(backoff(i, u32::MAX), i * MAX_BACKOFF);
        assert_eq!(backoff(Duration::MAX, 5), Duration::MAX);
    }
}
