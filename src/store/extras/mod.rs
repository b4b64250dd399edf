//! What is built on the engine: apply logs (`applylog`), followers (a read-only mirror of a store another process
//! writes) and the changes since a position, checkpoints, a rewind of a store in use, named locks, hot backup, and subscriptions to
//! committed changes (`subscribe`).

mod applylog;
mod backup;
mod changes;
mod checkpoint;
mod checkpoint_records;
mod follower;
mod named_lock;
mod rewind;
mod subscribe;

pub use backup::BackupReport;
pub use changes::{Change, ChangeOp, Changes};
pub use checkpoint::Checkpoints;
pub(crate) use checkpoint_records::combine as combine_checkpoints;
pub use follower::{Follower, FollowerOptions, PollReport, Watcher};
pub use named_lock::NamedLock;
#[cfg(feature = "internals")]
pub(crate) use named_lock::{decode_fence, encode_fence};
pub use subscribe::{ChangeFilter, Subscription};
