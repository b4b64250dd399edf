//! Opening a store: restore from the newest epoch (its snapshot and the bulk replay of its
//! updates), the recovery report and its trace events, and read-only snapshots of a directory.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::ScopedJoinHandle;

use crate::sync::Mutex;
use arc_swap::ArcSwap;

use super::counters::Counters;
use super::db::{Shared, Store, Writer};
use super::feed::Feed;
use super::gate::Gate;
use super::hints::Declarations;
use super::options::StoreOptions;
use super::read::Snapshot;
use super::replay::Replay;
use super::state::State;
use super::view::Publication;
use crate::backend::{Backend, FsBackend};
use crate::epoch::{
    EpochLog, EpochReader, LostRange, RecoveryMode, RecoveryReport, Restored, Updates,
};
use crate::error::{CorruptKind, Error, Result};
use crate::trace::trace_event;

/// Rebuilds a state from an epoch's snapshot and updates; also returns the ranges skipped in
/// salvage mode. A large snapshot is decoded on another thread while the updates are read:
/// those that only put and delete rows are collected meanwhile, and the state is attached
/// when it is decoded, or before the first update that needs it.
pub(crate) fn replay(dir: &Path, restored: Restored) -> Result<(State, Vec<LostRange>)> {
    let snapshot_file = dir.join(format!("{:016x}.seg", restored.epoch.segment));
    let bad_snapshot = || Error::corrupt(&snapshot_file, 32, CorruptKind::Payload);
    let epoch = restored.epoch.id;
    let decode = |bytes: Vec<u8>| -> Result<State> {
        let mut state = State::decode_snapshot_for_replay(bytes).map_err(|_| bad_snapshot())?;
        state.epoch = epoch;
        Ok(state)
    };
    let mut updates = restored.updates;
    let bad = |u: &Updates| match u.last_location() {
        Some((file, offset)) => Error::corrupt(file, offset, CorruptKind::Payload),
        None => bad_snapshot(),
    };
    let replay = match restored.snapshot {
        Some(bytes) if bytes.len() >= DECODE_BESIDE_BYTES => {
            std::thread::scope(|s| -> Result<Replay> {
                let mut decoding = Some(s.spawn(move || decode(bytes)));
                let mut replay = Replay::waiting();
                // The state, once decoded, under what was collected; a table they changed
                // that it lacks is damage where the table was first changed.
                let attach = |replay: &mut Replay, h: ScopedJoinHandle<'_, Result<State>>| {
                    let state = h.join().map_err(|_| bad_snapshot())??;
                    replay.attach(state).map_err(|at| match at {
                        Some((file, offset)) => Error::corrupt(&file, offset, CorruptKind::Payload),
                        None => bad_snapshot(),
                    })
                };
                while let Some(update) = updates.next() {
                    let update = match update {
                        Ok(update) => update,
                        Err(e) => {
                            // What a replay in order would have met first is reported.
                            if let Some(h) = decoding.take() {
                                attach(&mut replay, h)?;
                            }
                            return Err(e);
                        }
                    };
                    if let Some(h) = decoding.take_if(|h| h.is_finished()) {
                        attach(&mut replay, h)?;
                    }
                    let at = || updates.last_location().map(|(f, o)| (f.to_path_buf(), o));
                    let applied = replay.apply_waiting(&update, at);
                    if matches!(applied, Ok(true)) {
                        continue;
                    }
                    if let Some(h) = decoding.take() {
                        attach(&mut replay, h)?;
                    }
                    replay.apply_encoded(&update).map_err(|_| bad(&updates))?;
                }
                if let Some(h) = decoding.take() {
                    attach(&mut replay, h)?;
                }
                Ok(replay)
            })?
        }
        snapshot => {
            let state = match snapshot {
                Some(bytes) => decode(bytes)?,
                None => State {
                    epoch,
                    ..State::default()
                },
            };
            // Row changes are collected and merged into the tables once, at the end.
            let mut replay = Replay::new(state);
            while let Some(update) = updates.next() {
                replay.apply_encoded(&update?).map_err(|_| bad(&updates))?;
            }
            replay
        }
    };
    Ok((replay.finish(), updates.lost().to_vec()))
}

/// Snapshots at least this long (as read, compressed) are decoded beside the reading of the
/// updates.
const DECODE_BESIDE_BYTES: usize = 1 << 20;

/// Emits the events of an open: where the state was restored from and what recovery did.
fn trace_recovery(dir: &Path, state: &State, report: &RecoveryReport, lost: &[LostRange]) {
    let dir = dir.display();
    if let Some(cut) = &report.torn_tail {
        if cut.zeroed {
            trace_event!(
                debug,
                "statelog: {dir}: cut {} reserved zero bytes",
                cut.len
            );
        } else {
            trace_event!(
                warn,
                "statelog: {dir}: cut a torn tail of {} bytes at offset {} ({} entries; kept in {:?})",
                cut.len,
                cut.offset,
                cut.entries_cut,
                cut.saved_to
            );
        }
    }
    for f in &report.fell_back {
        trace_event!(
            warn,
            "statelog: {dir}: fell back to an older epoch ({}); segments set aside: {:?}",
            f.cause,
            f.segments
        );
    }
    for p in &report.removed_temporary {
        trace_event!(
            info,
            "statelog: {dir}: removed {} left by an interrupted operation",
            p.display()
        );
    }
    for l in lost {
        trace_event!(
            warn,
            "statelog: {dir}: salvage skipped {}..{} of {}: {}",
            l.from,
            l.to,
            l.file.display(),
            l.kind
        );
    }
    trace_event!(
        info,
        "statelog: opened {dir} at epoch {}, seq {}, {} tables",
        state.epoch,
        state.seq,
        state.tables.len()
    );
}

/// Reads the state of a store directory without locking or changing it (safe beside a
/// writer in another process): the newest epoch, or retained epoch `epoch`. Damage is handled
/// by `mode`; in salvage mode the skipped ranges are returned too.
pub fn read_only_snapshot(
    backend: Arc<dyn Backend>,
    dir: &Path,
    mode: RecoveryMode,
    epoch: Option<u64>,
) -> Result<(Snapshot, Vec<LostRange>)> {
    let reader = EpochReader::open(backend, dir, mode)?;
    let restored = match epoch {
        Some(id) => reader.read_epoch(id)?,
        None => reader.restore()?,
    };
    let (mut state, lost) = replay(dir, restored)?;
    state.generation = 1;
    Ok((
        Snapshot {
            state: Arc::new(state),
        },
        lost,
    ))
}

impl Store {
    /// Opens (or creates) the store in directory `dir` and restores its state.
    ///
    /// ```
    /// use statelog::{Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreOptions::default())?;
    /// assert!(store.recovery().torn_tail.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Self::open_with(Arc::new(FsBackend::new()), dir.as_ref(), options)
    }

    /// Opens the store through a given I/O backend.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use statelog::backend::FsBackend;
    /// use statelog::{Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// // The file system; tests pass a simulated backend (feature `internals`).
    /// let store = Store::open_with(Arc::new(FsBackend::new()), dir.path(), StoreOptions::default())?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with(
        backend: Arc<dyn Backend>,
        dir: &Path,
        options: StoreOptions,
    ) -> Result<Store> {
        let (log, restored) = EpochLog::open(backend, dir, options.log)?;
        let report = restored.report.clone();
        let (mut state, lost) = replay(dir, restored)?;
        trace_recovery(dir, &state, &report, &lost);
        state.generation = 1;
        // The replayed changes stay in the tables' deltas, as the writer had them, until the
        // next compaction folds them (a fold here cost more than the rest of the replay).
        if let Some(view) = &options.view {
            let snap = Snapshot {
                state: Arc::new(state.clone()),
            };
            state.view = Some(view.of(&snap)?);
        }
        let state = Arc::new(state);
        let store = Store {
            shared: Arc::new(Shared {
                registry: Arc::new(log.registry()),
                log,
                writer: Mutex::new(Writer {
                    head: state.clone(),
                    pending: VecDeque::new(),
                    compact_after: 0,
                    feed: Feed::default(),
                    handed: None,
                    undelivered: VecDeque::new(),
                    declared: Declarations::default(),
                }),
                indexes: Mutex::new(Vec::new()),
                validators: Mutex::new(Vec::new()),
                published: ArcSwap::new(state),
                auto_compact: options.auto_compact,
                view: options.view,
                publication: Publication::default(),
                view_error: Mutex::new(None),
                retention_error: Mutex::new(None),
                compaction_error: Mutex::new(None),
                compaction: Arc::new(Gate::default()),
                stalls: AtomicU64::new(0),
                delays: AtomicU64::new(0),
                delay_nanos: AtomicU64::new(0),
                stats: Counters::default(),
                recovery: report,
                lost,
            }),
        };
        if store.shared.log.needs_snapshot() {
            // A fall-back made a checkpoint's fixed epoch current: its state goes on in a new
            // epoch, and the checkpoint's stays as it was.
            store.compact()?;
        }
        Ok(store)
    }

    /// What recovery found and did when the store was opened.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// if let Some(cut) = &store.recovery().torn_tail {
    ///     eprintln!("cut an unfinished last write of {} bytes", cut.len);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// Log ranges skipped while restoring (salvage mode only).
    ///
    /// ```
    /// use statelog::{RecoveryMode, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// // Salvage skips damaged records instead of refusing to open, and reports them.
    /// let store = Store::open(dir.path(), StoreOptions::default().recovery(RecoveryMode::Salvage))?;
    /// for range in store.lost() {
    ///     eprintln!("lost {}..{} of {}", range.from, range.to, range.file.display());
    /// }
    /// assert!(store.lost().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn lost(&self) -> &[LostRange] {
        &self.shared.lost
    }
}
