//! Fault injection: operation kinds, faults, and the errors simulated operations fail with.

use std::io;
use std::path::Path;

use super::model::State;

/// An operation kind, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `create`, and each directory level made by `create_dir_all`.
    Create,
    /// `open`, `open_read` and `open_sealed`.
    Open,
    /// `read_at` on a handle.
    Read,
    /// `write_at` on a handle.
    Write,
    /// `set_len` on a handle.
    SetLen,
    /// `sync_data` and `sync_all` on a handle.
    Sync,
    /// `sync_dir`, and the directory sync ending every namespace change.
    SyncDir,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `preallocate` on a handle.
    Preallocate,
    /// `list`.
    List,
    /// `lock`.
    Lock,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Fail with an I/O error and change nothing.
    Eio,
    /// Fail with [`io::ErrorKind::StorageFull`] and change nothing.
    Enospc,
    /// For a write: write a random non-empty strict prefix of the bytes, then fail like `Eio`.
    /// For other operations: like `Eio`.
    ShortWrite,
    /// For a sync: fail like `Eio` and mark the unsynced pages clean without writing them, as
    /// Linux does after a writeback error. The live image keeps the bytes (reads still see
    /// them), but no later sync, through this handle or any other, makes them durable until
    /// they are written again: a second caller's sync of the same pages reports success. For
    /// other operations: like `Eio`.
    WritebackError,
}

/// Fail the `nth` (1 = the next one) operation of kind `op` from the moment of injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The kind of operation to fail.
    pub op: OpKind,
    /// Which operation of that kind fails, counting from 1 at injection (0 acts as 1).
    pub nth: u64,
    /// What the failure does.
    pub kind: FaultKind,
}

pub(super) fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

pub(super) fn stale_error() -> io::Error {
    io::Error::other("stale handle after simulated crash")
}

pub(super) fn eio() -> io::Error {
    io::Error::other("simulated EIO")
}

pub(super) fn enospc() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC")
}

pub(super) fn full_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "simulated disk full (capacity reached)",
    )
}

pub(super) fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Enospc => enospc(),
        FaultKind::Eio | FaultKind::ShortWrite | FaultKind::WritebackError => eio(),
    }
}

pub(super) fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

pub(super) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

pub(super) fn is_a_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{}: is a directory", path.display()),
    )
}

pub(super) fn not_a_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{}: not a directory", path.display()),
    )
}

pub(super) fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "simulated file would exceed 1 GiB",
    )
}

impl State {
    /// Counts an operation of `kind` for the faults; returns the kind of the fault that fires.
    pub(super) fn fault(&mut self, kind: OpKind) -> Option<FaultKind> {
        let mut fired = None;
        self.faults.retain_mut(|(fault, seen)| {
            if fault.op != kind {
                return true;
            }
            *seen = seen.saturating_add(1);
            if *seen >= fault.nth.max(1) {
                fired = fired.or(Some(fault.kind));
                false
            } else {
                true
            }
        });
        fired
    }

    /// Fails with the error of a fault that fires on this operation of `kind` (any fault kind
    /// acts as a plain failure here).
    pub(super) fn plain_fault(&mut self, kind: OpKind) -> io::Result<()> {
        match self.fault(kind) {
            Some(k) => Err(fault_error(k)),
            None => Ok(()),
        }
    }
}
