//! Named locks: exclusive, process-wide and machine-wide, with a fencing number that grows on
//! every acquisition (FORMAT.md §13).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::{Backend, DirLock, LockMode};
use crate::error::{CorruptKind, Error, Result};
use crate::store::engine::Store;

/// The folder of a store directory that holds one subfolder per named lock.
pub(crate) const LOCKS_DIR: &str = "locks";
/// The file in a lock's folder that holds its last fencing number.
const FENCE_FILE: &str = "FENCE";
/// Size of the fence file: the number (u64) and a CRC32 of it, little-endian.
const FENCE_LEN: usize = 12;

/// A held named lock (see [`Store::try_lock`](crate::Store::try_lock) and
/// [`Store::lock`](crate::Store::lock)). Excludes every other holder of the same name, in this
/// process and in others; released when dropped or when the process dies.
///
/// ```
/// use statelog::NamedLock;
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let held = NamedLock::try_acquire(dir.path(), "leader")?;
/// assert!(NamedLock::try_acquire(dir.path(), "leader").is_err());
/// drop(held);
/// let again = NamedLock::acquire(dir.path(), "leader", std::time::Duration::from_secs(1))?;
/// assert_eq!(again.fence(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NamedLock {
    name: String,
    fence: u64,
    _held: DirLock,
}

impl NamedLock {
    /// Takes the lock `name` of the store directory `dir` without opening the store (for a
    /// process that only reads it, or a tool). The same lock as
    /// [`Store::try_lock`](crate::Store::try_lock).
    ///
    /// ```
    /// use statelog::{Error, NamedLock};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # drop(statelog::Store::open(dir.path(), statelog::StoreOptions::default())?);
    /// let leader = NamedLock::try_acquire(dir.path(), "leader")?;
    /// assert!(NamedLock::try_acquire(dir.path(), "leader").is_err()); // held
    /// let fence = leader.fence();
    /// drop(leader);
    /// assert!(NamedLock::try_acquire(dir.path(), "leader")?.fence() > fence);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(dir: impl AsRef<Path>, name: &str) -> Result<NamedLock> {
        try_lock(&crate::backend::FsBackend, dir.as_ref(), name)
    }

    /// Takes the lock `name` of the store directory `dir`, waiting up to `timeout` while
    /// another holder has it (retrying with a backoff of 1 ms doubling up to 50 ms), or
    /// returns [`LockTimeout`](Error::LockTimeout). The same lock as
    /// [`Store::lock`](crate::Store::lock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use statelog::{Error, NamedLock};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let held = NamedLock::acquire(dir.path(), "leader", Duration::from_secs(1))?;
    /// let waited = NamedLock::acquire(dir.path(), "leader", Duration::from_millis(20));
    /// assert!(matches!(waited, Err(Error::LockTimeout { .. })));
    /// # drop(held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(dir: impl AsRef<Path>, name: &str, timeout: Duration) -> Result<NamedLock> {
        lock_waiting(&crate::backend::FsBackend, dir.as_ref(), name, timeout)
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing number of this acquisition: larger than that of every earlier acquisition
    /// of the same name. Pass it with every action taken under the lock, so a receiver can
    /// refuse a holder that has since lost the lock.
    pub fn fence(&self) -> u64 {
        self.fence
    }
}

impl Store {
    /// Takes the lock `name` without waiting, or returns [`LockHeld`](Error::LockHeld) naming
    /// the holder's process. The lock excludes every other holder of the name, in this process
    /// (whatever store handle or thread asks) and in others, until the returned guard is
    /// dropped or its process dies. Each acquisition gets a larger fencing number
    /// ([`NamedLock::fence`]), recorded durably before this returns.
    ///
    /// ```
    /// use statelog::Error;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let leader = store.try_lock("leader")?;
    /// // Any other holder, in this process or another, is refused until it is dropped.
    /// assert!(matches!(store.try_lock("leader"), Err(Error::LockHeld { .. })));
    /// let fence = leader.fence(); // pass it with every action taken as leader
    /// drop(leader);
    /// assert!(store.try_lock("leader")?.fence() > fence);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock(&self, name: &str) -> Result<NamedLock> {
        try_lock(&**self.shared.log.backend(), self.shared.log.dir(), name)
    }

    /// Takes the lock `name` as [`try_lock`](Self::try_lock) does, waiting up to `timeout`
    /// while another holder has it (retrying with a backoff of 1 ms doubling up to 50 ms), or
    /// returns [`LockTimeout`](Error::LockTimeout) naming the holder's process.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statelog::{Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreOptions::default())?;
    /// let held = store.lock("leader", Duration::from_secs(5))?;
    /// let other = store.clone();
    /// let waiter = std::thread::spawn(move || other.lock("leader", Duration::from_secs(5)));
    /// std::thread::sleep(Duration::from_millis(10));
    /// drop(held); // the waiter takes it now
    /// assert_eq!(waiter.join().unwrap()?.fence(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self, name: &str, timeout: Duration) -> Result<NamedLock> {
        lock_waiting(
            &**self.shared.log.backend(),
            self.shared.log.dir(),
            name,
            timeout,
        )
    }
}

/// Longest pause between two tries of a held lock.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Takes the lock `name`, retrying while another holder has it until `timeout` has passed.
fn lock_waiting(
    backend: &dyn Backend,
    dir: &Path,
    name: &str,
    timeout: Duration,
) -> Result<NamedLock> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let holder = match try_lock(backend, dir, name) {
            Err(Error::LockHeld { holder, .. }) => holder,
            done => return done,
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::LockTimeout {
                name: name.to_string(),
                waited,
                holder,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Whether `name` may name a lock: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not
/// starting with a dot.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Takes the lock `name` of store directory `dir` without waiting, and records its new
/// fencing number durably before returning it.
pub(crate) fn try_lock(backend: &dyn Backend, dir: &Path, name: &str) -> Result<NamedLock> {
    if !valid_name(name) {
        return Err(Error::InvalidArgument(format!(
            "lock name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )));
    }
    let folder = dir.join(LOCKS_DIR).join(name);
    backend
        .create_dir_all(&folder)
        .map_err(|e| Error::io(&folder, e))?;
    let held = backend
        .lock(&folder, LockMode::Exclusive)
        .map_err(|e| match e {
            Error::Locked { pid, .. } => Error::LockHeld {
                name: name.to_string(),
                holder: pid,
            },
            e => e,
        })?;
    let path = folder.join(FENCE_FILE);
    let fence = read_fence(backend, &path)?
        .checked_add(1)
        .ok_or_else(|| Error::Overflow(format!("fencing number of lock {name}")))?;
    write_fence(backend, &path, fence)?;
    Ok(NamedLock {
        name: name.to_string(),
        fence,
        _held: held,
    })
}

/// The last fencing number recorded in `path`; 0 if there is none yet.
fn read_fence(backend: &dyn Backend, path: &Path) -> Result<u64> {
    if !backend.exists(path).map_err(|e| Error::io(path, e))? {
        return Ok(0);
    }
    let file = backend.open_read(path).map_err(|e| Error::io(path, e))?;
    let len = file.len().map_err(|e| Error::io(path, e))?;
    let mut buf = [0u8; FENCE_LEN];
    if len != FENCE_LEN as u64 {
        return Err(Error::corrupt(path, 0, CorruptKind::Payload));
    }
    let n = file
        .read_full_at(&mut buf, 0)
        .map_err(|e| Error::io(path, e))?;
    decode_fence(&buf[..n]).ok_or_else(|| Error::corrupt(path, 0, CorruptKind::Checksum))
}

pub(crate) fn decode_fence(b: &[u8]) -> Option<u64> {
    let number: [u8; 8] = b.get(..8)?.try_into().ok()?;
    let crc: [u8; 4] = b.get(8..FENCE_LEN)?.try_into().ok()?;
    (crc32fast::hash(&number) == u32::from_le_bytes(crc)).then(|| u64::from_le_bytes(number))
}

pub(crate) fn encode_fence(fence: u64) -> [u8; FENCE_LEN] {
    let mut out = [0u8; FENCE_LEN];
    out[..8].copy_from_slice(&fence.to_le_bytes());
    let crc = crc32fast::hash(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Replaces the fence file through a synced temporary file and a durable rename, so a crash
/// leaves the old number or the new one.
fn write_fence(backend: &dyn Backend, path: &Path, fence: u64) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(&p, e)
    };
    // A crash may have left the temporary file of an earlier acquisition (we hold the lock).
    if backend.exists(&tmp).map_err(io(&tmp))? {
        backend.remove(&tmp).map_err(io(&tmp))?;
    }
    let file = backend.create(&tmp).map_err(io(&tmp))?;
    file.write_at(&encode_fence(fence), 0).map_err(io(&tmp))?;
    file.sync_data().map_err(io(&tmp))?;
    drop(file);
    backend.rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md §13: the fence file of number 7.
    #[test]
    fn fence_file_vector() {
        let b = encode_fence(7);
        let doc = crate::format_doc::doc_vectors("lock-vector");
        let code = std::collections::HashMap::from([("fence-7".to_string(), b.to_vec())]);
        crate::format_doc::assert_vectors_match("lock vectors", &doc, &code);
        assert_eq!(decode_fence(&b), Some(7));
        let mut bad = b;
        bad[3] ^= 1;
        assert_eq!(decode_fence(&bad), None);
        assert_eq!(decode_fence(&b[..11]), None);
    }

    #[test]
    fn names() {
        for ok in ["leader", "a", "config.v2", "x_y-z", &"n".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "é", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
