//! The epoch layer: a store directory of segments holding epochs, each a snapshot followed by
//! updates; bounded restore, rewind, compaction with retention, and group commit
//! (FORMAT.md §11).

mod dir;
mod entry;
mod log;
mod read;
mod view;

pub use log::{
    Clock, CompactionPolicy, Durability, EpochLog, Options, Position, Retention, SnapshotReport,
};
pub use read::{EpochInfo, FellBack, LostRange, RecoveryMode, RecoveryReport, Restored, Updates};
pub use view::EpochReader;
#[cfg(test)]
mod vectors;
