//! The settings of a store: every one a user sets, with its default, as builder methods over
//! the epoch log's [`Options`].

use std::time::Duration;

use super::view::DerivedView;
use crate::epoch::{Clock, Options, RecoveryMode};

/// Settings of a store. Build them with the methods below (each states its default), or set
/// the fields directly.
///
/// ```
/// use statelog::{Store, StoreOptions};
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// // The benchmark's setup: no automatic compaction, one epoch kept.
/// let options = StoreOptions::default().auto_compact(false).keep_epochs(1);
/// let store = Store::open(dir.path(), options)?;
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Settings of the underlying epoch log: recovery mode, retention, compaction policy,
    /// segment size. The builder methods of `StoreOptions` set each of them.
    pub log: Options,
    /// Take a snapshot (compact) by itself when the log's compaction policy says one is due.
    /// Default: `true`.
    pub auto_compact: bool,
    /// A view derived from every new state and published atomically with it, computed
    /// without the writer lock (see [`DerivedView`]). Default: none.
    pub view: Option<DerivedView>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            log: Options::default(),
            auto_compact: true,
            view: None,
        }
    }
}

impl StoreOptions {
    /// Whether a commit starts a compaction (on a thread of its own) when one is due by
    /// [`min_update_bytes`](Self::min_update_bytes) and [`update_ratio`](Self::update_ratio).
    /// Default: `true`. Without it, call [`Store::compact`](crate::Store::compact).
    pub fn auto_compact(mut self, on: bool) -> Self {
        self.auto_compact = on;
        self
    }

    /// How many of the newest epochs (a snapshot and the transactions after it) compaction
    /// keeps; older ones are deleted. At least 1. Default: 2.
    pub fn keep_epochs(mut self, epochs: usize) -> Self {
        self.log.retention.keep_epochs = epochs;
        self
    }

    /// Also keep the epochs started less than `age` ago (`None`: keep by count only).
    /// Default: `None`.
    pub fn keep_for(mut self, age: Option<Duration>) -> Self {
        self.log.retention.keep_for = age;
        self
    }

    /// Update bytes on disk below which no compaction is due. Default: 4 MiB (`4 << 20`).
    pub fn min_update_bytes(mut self, bytes: u64) -> Self {
        self.log.compaction.min_update_bytes = bytes;
        self
    }

    /// Update bytes per byte of the last snapshot that make a compaction due. Default: `1.0`.
    pub fn update_ratio(mut self, ratio: f64) -> Self {
        self.log.compaction.update_ratio = ratio;
        self
    }

    /// The size past which a segment file is sealed and the log goes on in a new one.
    /// Default: 64 MiB (`64 << 20`).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.log.segment_bytes = bytes;
        self
    }

    /// File space the active segment reserves ahead of its data (0: none); it makes small
    /// strong commits' fsyncs cheaper and is given back on close. Default: 1 MiB (`1 << 20`).
    pub fn reserve_bytes(mut self, bytes: u64) -> Self {
        self.log.reserve_bytes = bytes;
        self
    }

    /// How opening treats damage in the log. Default:
    /// [`RecoveryMode::TolerateTornTail`] (a torn last entry is cut and reported).
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.log.recovery = mode;
        self
    }

    /// Whether opening may fall back to the previous epoch when the newest one's snapshot
    /// is damaged (the damaged segments are renamed aside and reported). Default: `false`.
    pub fn fall_back(mut self, on: bool) -> Self {
        self.log.fall_back = on;
        self
    }

    /// Frame block size of new segments, in bytes. Default: 32 KiB (`32 * 1024`).
    pub fn block_size(mut self, bytes: u32) -> Self {
        self.log.block_size = bytes;
        self
    }

    /// Bytes of buffered commits held in memory before they are written. Default: 256 KiB
    /// (`256 * 1024`).
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.log.write_buffer = bytes;
        self
    }

    /// The time source for epoch creation times and [`keep_for`](Self::keep_for). Default:
    /// the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.log.clock = clock;
        self
    }

    /// A view derived from every new state and published atomically with it
    /// ([`Snapshot::view`](crate::Snapshot::view)). Default: none.
    pub fn view(mut self, view: DerivedView) -> Self {
        self.view = Some(view);
        self
    }
}
