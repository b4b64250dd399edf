//! A deterministic in-memory file system simulator with crash and fault injection.
//!
//! [`SimBackend`] keeps, for every file and for the namespace, the DURABLE image (what was
//! synced) apart from the LIVE image (what reads see). [`SimBackend::crash`] throws the live
//! image away and rebuilds it from the durable one plus whatever a [`CrashMode`] keeps of the
//! unsynced changes. [`SimBackend::crash_after`] stops the machine at an exact operation, and
//! [`SimBackend::inject`] makes chosen operations fail. All randomness comes from the seed given
//! to [`SimBackend::new`] (a hand-written SplitMix64, so the sequence never changes with a
//! dependency): the same seed and the same operations give the same results.
//!
//! Model details:
//! - Paths are used as given, except that `.` components are dropped; `..` is not resolved.
//!   The root, the current directory (an empty path) and any path ending in `..` are
//!   directories that always exist.
//! - Files are inodes; handles refer to the inode (so they keep working after the name is
//!   removed or renamed over) and to the crash generation (so they go stale after a crash).
//! - Mutating operations, each one crash point counted by [`SimBackend::ops`]: `write_at`,
//!   `set_len`, `sync_data`, `sync_all`, `preallocate`, `sync_dir`, and the two steps
//!   (change, then directory sync) of `create`, `rename`, `remove` and of each directory level
//!   made by `create_dir_all`. An operation is counted once its arguments are checked, even if
//!   an injected fault then fails it.
//! - Faults count the operations of their kind whose arguments were valid (an `open` of a
//!   missing file is not counted). The directory sync that ends `create`, `rename`, `remove`
//!   and each `create_dir_all` level counts as [`OpKind::SyncDir`]; a `create_dir_all` level
//!   counts as [`OpKind::Create`]; `open`, `open_read` and `open_sealed` count as
//!   [`OpKind::Open`].
//! - Only files can be removed or renamed; a file grows to at most 1 GiB
//!   ([`io::ErrorKind::FileTooLarge`] beyond), so a wild offset cannot exhaust memory.
//!
//! The files, bottom up (each imports only files above it in this list): `types.rs` (the
//! random generator, operation kinds and faults), `errors.rs` (the errors operations fail
//! with), `model.rs` (the file model: inodes, the namespace, live and durable images, and the
//! state's operations), `faults.rs` (counting operations against the injected faults, and the
//! faultable steps of a namespace change), `crash.rs` (crash modes and what a power loss
//! keeps), `handles.rs` (open files and directory locks), `machine.rs` ([`SimBackend`] and its
//! [`Backend`](super::Backend) implementation).

mod crash;
mod errors;
mod faults;
mod handles;
mod machine;
mod model;
mod types;

pub use crash::CrashMode;
pub use machine::SimBackend;
pub use types::{Fault, FaultKind, OpKind};
