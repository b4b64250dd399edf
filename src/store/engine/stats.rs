//! What the store is doing: counters kept as it works, and [`Store::stats`] reading them.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::db::{Shared, Store};
use super::read::CommitPos;
use crate::epoch::Position;
use crate::trace::trace_event;

/// What a store has done since it was opened, and what it holds now
/// (see [`Store::stats`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Transactions committed (appended to the log); empty ones are not counted.
    pub commits: u64,
    /// Group-commit fsyncs: the ones strong commits waited for (at most one per commit).
    pub fsyncs: u64,
    /// `commits / fsyncs` (0 before the first fsync): how many commits an fsync carried.
    pub commits_per_fsync: f64,
    /// Payload bytes of the transactions committed (before framing).
    pub bytes_appended: u64,
    /// Compactions that started a new epoch.
    pub compactions: u64,
    /// Compactions that failed (see [`Store::compaction_error`]).
    pub compaction_failures: u64,
    /// Time spent compacting, in all.
    pub compaction_time: Duration,
    /// How long the last compaction took, if one ran.
    pub last_compaction: Option<Duration>,
    /// Whether a compaction is running now.
    pub compaction_running: bool,
    /// Commits that waited for a running compaction (see [`Store::compaction_stalls`]).
    pub compaction_stalls: u64,
    /// Commits slowed down because a running compaction fell behind, and their delays in
    /// all (see [`Store::compaction_delays`]).
    pub compaction_delays: u64,
    /// The delays of those commits, in all.
    pub compaction_delay_time: Duration,
    /// Bytes on disk of the current epoch's updates: what a restore replays, and what makes
    /// a compaction due.
    pub update_bytes: u64,
    /// The current epoch.
    pub epoch: u64,
    /// The position in the log up to which everything is durable.
    pub durable: Position,
    /// The position of the newest state readers see.
    pub published: CommitPos,
    /// Each table of the newest state readers see, by name.
    pub tables: Vec<TableStats>,
}

/// One table in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// The table's name.
    pub name: String,
    /// Its rows.
    pub rows: usize,
    /// Approximate heap bytes of its rows and unique indexes (parts shared with older states
    /// counted whole).
    pub memory_bytes: usize,
}

impl Store {
    /// What the store has done since it was opened (commits, fsyncs, bytes, compactions)
    /// and what it holds now (the update tail, the durable position, rows and memory per
    /// table). Costs a pass over each table's changes since its last compaction.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.bytes_table("t")?;
    /// store.write(|tx| tx.put_bytes(&t, b"k", b"v"))?;
    /// let stats = store.stats();
    /// assert!(stats.commits >= 1 && stats.fsyncs <= stats.commits);
    /// assert_eq!(stats.tables[0].rows, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> StoreStats {
        let s = &self.shared;
        let c = &s.stats;
        let commits = c.commits.load(Ordering::Relaxed);
        let fsyncs = s.log.sync_count();
        let last = c.last_compaction_nanos.load(Ordering::Relaxed);
        let compactions = c.compactions.load(Ordering::Relaxed);
        let failures = c.compaction_failures.load(Ordering::Relaxed);
        let state = s.published.load_full();
        let tables = state
            .by_name
            .iter()
            .filter_map(|(_, id)| state.tables.get(id))
            .map(|t| TableStats {
                name: t.meta.name.clone(),
                rows: t.rows.len(),
                memory_bytes: t.rows.heap_bytes()
                    + t.indexes
                        .iter()
                        .chain(&t.stored)
                        .map(|i| i.map.heap_bytes())
                        .sum::<usize>(),
            })
            .collect();
        StoreStats {
            commits,
            fsyncs,
            commits_per_fsync: if fsyncs == 0 {
                0.0
            } else {
                commits as f64 / fsyncs as f64
            },
            bytes_appended: c.bytes.load(Ordering::Relaxed),
            compactions,
            compaction_failures: failures,
            compaction_time: Duration::from_nanos(c.compaction_nanos.load(Ordering::Relaxed)),
            last_compaction: (compactions + failures > 0).then(|| Duration::from_nanos(last)),
            compaction_running: self.compaction_running(),
            compaction_stalls: self.compaction_stalls(),
            compaction_delays: self.compaction_delays().0,
            compaction_delay_time: self.compaction_delays().1,
            update_bytes: s.log.update_bytes(),
            epoch: s.log.current_epoch(),
            durable: s.log.durable_position(),
            published: CommitPos {
                epoch: state.epoch,
                seq: state.seq,
            },
            tables,
        }
    }
}

/// Times one compaction from its start to the end of its scope: counts it, and emits its
/// start and finish events. A compaction succeeded if it started a new epoch meanwhile.
pub(crate) struct CompactionTiming {
    shared: Weak<Shared>,
    start: Instant,
    done_before: u64,
}

impl CompactionTiming {
    /// A compaction of the store `shared` starts now.
    pub(crate) fn start(shared: &Weak<Shared>) -> CompactionTiming {
        let done_before = shared
            .upgrade()
            .map_or(0, |s| s.stats.compactions.load(Ordering::Relaxed));
        trace_event!(info, "statelog: compaction started");
        CompactionTiming {
            shared: shared.clone(),
            start: Instant::now(),
            done_before,
        }
    }
}

impl Drop for CompactionTiming {
    fn drop(&mut self) {
        let took = self.start.elapsed();
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let c = &shared.stats;
        c.compaction_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.last_compaction_nanos.store(nanos, Ordering::Relaxed);
        if c.compactions.load(Ordering::Relaxed) > self.done_before {
            trace_event!(info, "statelog: compaction finished in {took:?}");
        } else {
            c.compaction_failures.fetch_add(1, Ordering::Relaxed);
            trace_event!(warn, "statelog: compaction failed after {took:?}");
        }
    }
}
