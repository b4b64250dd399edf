//! The errors simulated operations fail with.

use std::io;
use std::path::Path;

use super::types::FaultKind;

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
