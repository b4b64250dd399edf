//! Back-pressure when updates outpace a running compaction (issue 20): past twice the update
//! tail that made the compaction due, each commit is delayed a little more as the tail grows;
//! past 4 times, a committer waits for the compaction to finish. Both are counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::codec::Op;
use super::db::Store;

/// How far past its trigger the update tail may grow while a compaction runs before commits
/// wait for it.
const COMPACTION_BEHIND: f64 = 4.0;

/// How far past its trigger the update tail may grow while a compaction runs before commits
/// are slowed down: from here to [`COMPACTION_BEHIND`], each commit is delayed by a share of
/// [`MAX_COMMIT_DELAY`] (and of its size at [`DELAYED_BYTES_PER_SEC`]) that grows with the
/// backlog, so writers slow down gradually before they would have to wait.
const COMPACTION_SLOWDOWN: f64 = 2.0;

/// The longest delay a commit gets for its own sake before commits wait.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(1);

/// The rate a writer's logged bytes are held to just before commits wait (16 MiB/s, the delayed write rate RocksDB starts at).
const DELAYED_BYTES_PER_SEC: f64 = 16.0 * 1024.0 * 1024.0;

/// About the bytes `op` takes in the log (its key and value; a few for anything else).
fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { key, value, .. } => key.len() + value.len() + 8,
        Op::Delete { key, .. } => key.len() + 8,
        _ => 16,
    }
}

/// The delay of a commit of `bytes` logged bytes at compaction backlog `backlog` (see
/// [`COMPACTION_SLOWDOWN`]): none below it, growing linearly up to [`COMPACTION_BEHIND`].
fn commit_delay(backlog: f64, bytes: usize) -> Duration {
    let share = ((backlog - COMPACTION_SLOWDOWN) / (COMPACTION_BEHIND - COMPACTION_SLOWDOWN))
        .clamp(0.0, 1.0);
    let full = MAX_COMMIT_DELAY.as_secs_f64() + bytes as f64 / DELAYED_BYTES_PER_SEC;
    Duration::from_secs_f64(share * full)
}

impl Store {
    /// After a commit that found a compaction running: delays the committer by a share that
    /// grows with the backlog (`compaction_delays`), or, past [`COMPACTION_BEHIND`], waits for
    /// the compaction to finish (`compaction_stalls`).
    pub(super) fn slow_down_for_compaction(&self, ops: &[Op]) {
        if !self.shared.compaction.running() {
            return;
        }
        let backlog = self.shared.log.compaction_backlog();
        if backlog > COMPACTION_BEHIND {
            self.shared.stalls.fetch_add(1, Ordering::Relaxed);
            drop(self.shared.compaction.acquire());
        } else if backlog > COMPACTION_SLOWDOWN {
            let bytes = ops.iter().map(op_bytes).sum();
            let delay = commit_delay(backlog, bytes);
            self.shared.delays.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            self.shared.delay_nanos.fetch_add(nanos, Ordering::Relaxed);
            std::thread::sleep(delay);
        }
    }

    /// Whether a compaction is running now.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.compact()?; // runs on this thread, and is over when it returns
    /// assert!(!store.compaction_running());
    /// assert_eq!(store.stats().compactions, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn compaction_running(&self) -> bool {
        self.shared.compaction.running()
    }

    /// How many commits waited for a running compaction because updates outpaced it (the
    /// update tail grew past 4 times the size that made the compaction due).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// assert_eq!(store.compaction_stalls(), 0);
    /// assert_eq!(store.stats().compaction_stalls, 0); // also in the stats
    /// # Ok(())
    /// # }
    /// ```
    pub fn compaction_stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::Relaxed)
    }

    /// How many commits were slowed down because updates outpaced a running compaction (the
    /// update tail past twice the size that made it due), and for how long in all: each
    /// such commit returns a little later (up to a millisecond and its size at 16 MiB/s,
    /// growing with the tail), so writers slow down gradually before they would have to wait
    /// ([`compaction_stalls`](Self::compaction_stalls)).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let (delayed, time) = store.compaction_delays();
    /// assert_eq!((delayed, time), (0, std::time::Duration::ZERO));
    /// assert_eq!(store.stats().compaction_delays, 0); // also in the stats
    /// # Ok(())
    /// # }
    /// ```
    pub fn compaction_delays(&self) -> (u64, Duration) {
        (
            self.shared.delays.load(Ordering::Relaxed),
            Duration::from_nanos(self.shared.delay_nanos.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No delay until the tail is twice past its trigger; then a share of the full delay
    /// (a millisecond and the commit's bytes at 16 MiB/s) that grows with it, all of it at 4x.
    #[test]
    fn commit_delays_grow_gradually_with_the_backlog() {
        assert_eq!(commit_delay(1.0, 1 << 20), Duration::ZERO);
        assert_eq!(commit_delay(2.0, 1 << 20), Duration::ZERO);
        let full = Duration::from_millis(1) + Duration::from_secs_f64(1.0 / 16.0);
        let at = |b| commit_delay(b, 1 << 20).as_secs_f64();
        assert!((at(4.0) - full.as_secs_f64()).abs() < 1e-9);
        assert!((at(3.0) - full.as_secs_f64() / 2.0).abs() < 1e-9);
        assert!(at(2.5) < at(3.0) && at(3.0) < at(3.5));
        assert_eq!(commit_delay(9.0, 1 << 20), commit_delay(4.0, 1 << 20));
        assert!(commit_delay(3.0, 0) < commit_delay(3.0, 1 << 20));
    }
}
