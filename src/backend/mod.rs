//! The I/O backend: one small trait for every file operation, with real files and (feature
//! `internals`) a deterministic simulator that loses unsynced writes and injects faults.

mod api;
mod fs;
mod mmap;
#[cfg(feature = "internals")]
mod sim;

pub use api::{Backend, DirLock, FileHandle, LockMode, ReadAt};
pub use fs::FsBackend;
#[cfg(feature = "internals")]
pub use sim::{CrashMode, Fault, FaultKind, OpKind, SimBackend};
