//! The storage backend trait: every file operation statelog makes goes through it.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;

/// Positioned reads from a file or a memory map.
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (fewer only at
    /// the end of the file, 0 at or past it).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads as many bytes as fit in `buf` at `offset`, looping over short reads; returns the
    /// count, which is smaller than `buf.len()` only at the end of the file.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            let n = match self.read_at(rest, offset + done as u64) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// Copies the bytes of `src` at `offset` into `buf`; returns how many (0 at or past the end).
pub(crate) fn copy_at(src: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let Some(rest) = usize::try_from(offset)
        .ok()
        .and_then(|start| src.get(start..))
    else {
        return 0;
    };
    let n = rest.len().min(buf.len());
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// A file image held in memory reads like a file (for tools and tests).
impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(copy_at(self, buf, offset))
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.as_slice().len() as u64)
    }
}

/// An open file. Handles are shared between a writer and its readers, so every method takes
/// `&self`.
pub trait FileHandle: ReadAt + fmt::Debug {
    /// Writes all of `buf` at `offset`, extending the file if needed, or returns an error (after
    /// which any prefix of `buf` may have been written).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Sets the file length, cutting or zero-extending it. Not durable until a sync.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's data (and the length needed to read it) durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and all its metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// Reserves disk space for the first `len` bytes; the file length becomes at least `len`
    /// and new bytes read as zeros.
    fn preallocate(&self, len: u64) -> io::Result<()>;
}

/// How a directory lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One holder; excludes every other exclusive or shared holder.
    Exclusive,
    /// Many holders; excludes exclusive holders.
    Shared,
}

/// A held directory lock; released when dropped (or when the process dies).
pub struct DirLock {
    _held: Box<dyn Send + Sync>,
}

impl DirLock {
    /// Wraps whatever keeps a backend's lock held until it is dropped.
    pub fn new(held: Box<dyn Send + Sync>) -> Self {
        DirLock { _held: held }
    }
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirLock")
    }
}

/// The small set of file-system operations statelog uses. Implementations: [`FsBackend`]
/// (real files) and, with the `internals` feature, `SimBackend` (a deterministic in-memory
/// simulator with crash and fault injection).
///
/// Namespace changes (`create`, `rename`, `remove`, `create_dir_all`) are durable when they
/// return: the backend syncs the directory itself, so no caller can forget to.
///
/// [`FsBackend`]: crate::backend::FsBackend
pub trait Backend: Send + Sync + fmt::Debug {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;

    /// Opens an existing file for reading only (safe beside a writer in another process).
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>>;

    /// Opens a sealed file (never written again) for reading; real files are memory-mapped.
    fn open_sealed(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        self.open_read(path)
    }

    /// Whether every operation must run on the thread that caused it, in program order (a
    /// deterministic simulator, whose seeds replay a run). Then the store runs its automatic
    /// compactions on the committing thread (after releasing the writer lock) instead of a
    /// thread of their own.
    fn deterministic(&self) -> bool {
        false
    }

    /// Creates a new, empty file (an error if it exists); its directory entry is durable on
    /// return.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;

    /// Atomically renames `from` to `to` (same directory), replacing `to`; durable on return.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file; durable on return.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Lists the names of the entries of a directory, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Creates a directory and its missing parents; durable on return.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Takes the lock of directory `dir` without waiting. A conflicting holder, in this
    /// process or another, gives [`Error::Locked`](crate::Error::Locked).
    fn lock(&self, dir: &Path, mode: LockMode) -> Result<DirLock>;
}
