//! Settings of an epoch log and the small types its callers pass: durability, positions,
//! retention, the compaction policy and the clock.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::read::RecoveryMode;
use crate::frame::{DEFAULT_BLOCK_SIZE, DEFAULT_WRITE_BUFFER};

/// Whether an append returns before or after its entry is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Returns once the entry is durable (fsynced); concurrent callers share one fsync.
    #[default]
    Strong,
    /// Returns at once; the entry becomes durable with the next strong append or sync.
    Buffered,
}

/// A place in the log: a segment and an offset in it. Positions only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// Which old epochs to keep. An epoch is kept if it is among the newest `keep_epochs`, or
/// started less than `keep_for` ago; the current epoch is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How many of the newest epochs to keep (at least 1).
    pub keep_epochs: usize,
    /// Also keep epochs younger than this.
    pub keep_for: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_epochs: 2,
            keep_for: None,
        }
    }
}

/// When a new snapshot is due: when the current epoch's updates exceed `update_ratio` times the
/// snapshot's size, and at least `min_update_bytes` (sizes are bytes on disk, entry overhead
/// included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    /// Update bytes per snapshot byte that make a snapshot due.
    pub update_ratio: f64,
    /// Update bytes below which no snapshot is due.
    pub min_update_bytes: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            update_ratio: 1.0,
            min_update_bytes: 4 << 20,
        }
    }
}

/// A source of the current time (replaceable in tests).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// A clock from a function.
    pub fn new(f: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let d = (self.0)().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(SystemTime::now)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Default of [`Options::reserve_bytes`].
const DEFAULT_RESERVE_BYTES: u64 = 1 << 20;

/// Settings of an epoch log.
#[derive(Debug, Clone)]
pub struct Options {
    /// How restore treats damage.
    pub recovery: RecoveryMode,
    /// Whether restore may fall back to the previous epoch when the newest epoch's start is
    /// damaged (the damaged segments are renamed aside and reported). Off by default: a
    /// damaged latest snapshot is then an error.
    pub fall_back: bool,
    /// Which old epochs to keep.
    pub retention: Retention,
    /// When [`EpochLog::compaction_due`](super::EpochLog::compaction_due) says a snapshot is due.
    pub compaction: CompactionPolicy,
    /// A segment longer than this is sealed and the epoch continues in a new one.
    pub segment_bytes: u64,
    /// Frame block size of new segments.
    pub block_size: u32,
    /// Bytes buffered before a write (buffered appends).
    pub write_buffer: usize,
    /// File space the active segment reserves at a time ahead of its data (0: none). Syncs
    /// of data written into reserved space need not make a new file length durable each
    /// time; on ext4 that makes a small strong commit's fdatasync about 1.5x faster. The
    /// space is given back when the segment is sealed or the log closed.
    pub reserve_bytes: u64,
    /// The time source for epoch creation times and retention.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            recovery: RecoveryMode::default(),
            fall_back: false,
            retention: Retention::default(),
            compaction: CompactionPolicy::default(),
            segment_bytes: 64 << 20,
            block_size: DEFAULT_BLOCK_SIZE,
            write_buffer: DEFAULT_WRITE_BUFFER,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            clock: Clock::default(),
        }
    }
}
