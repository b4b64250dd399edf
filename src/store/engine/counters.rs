//! The store's counters, kept as it works (read by [`Store::stats`](crate::Store::stats)).

use std::sync::atomic::{AtomicU64, Ordering};

/// The store's counters, since it was opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions appended to the log.
    pub(crate) commits: AtomicU64,
    /// Their payload bytes.
    pub(crate) bytes: AtomicU64,
    /// Compactions that started a new epoch.
    pub(crate) compactions: AtomicU64,
    /// Compactions that failed.
    pub(crate) compaction_failures: AtomicU64,
    /// Nanoseconds spent compacting, in all and in the last one.
    pub(crate) compaction_nanos: AtomicU64,
    pub(crate) last_compaction_nanos: AtomicU64,
}

impl Counters {
    /// Counts one transaction of `bytes` payload bytes appended.
    pub(crate) fn commit(&self, bytes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
