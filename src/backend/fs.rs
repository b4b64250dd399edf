//! Real files: positioned I/O, directory fsync after every namespace change, `fs2` locks with
//! an in-process registry (flock semantics differ between platforms for two opens in one
//! process), and memory maps for sealed files.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::api::{Backend, DirLock, FileHandle, LockMode, ReadAt};
use super::mmap::MappedFile;
use crate::error::{Error, Result};

/// Name of the lock file inside a locked directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsBackend;

impl FsBackend {
    /// A backend over the operating system's files.
    pub fn new() -> Self {
        FsBackend
    }
}

#[derive(Debug)]
struct RealFile {
    file: File,
}

impl ReadAt for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl FileHandle for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        fs2::FileExt::allocate(&self.file, len)
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for FsBackend {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(RealFile { file }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(RealFile {
            file: File::open(path)?,
        }))
    }

    fn open_sealed(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(MappedFile::map(&File::open(path)?)?))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        fsync_dir(parent_of(path))?;
        Ok(Arc::new(RealFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)?;
        fsync_dir(parent_of(to))?;
        if parent_of(from) != parent_of(to) {
            fsync_dir(parent_of(from))?;
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        fsync_dir(parent_of(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Sync every level that had to be created, and the parent that got the first new
        // entry, so the whole chain survives a crash.
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.as_os_str().is_empty() || d.try_exists()? {
                break;
            }
            missing.push(d);
            cur = d.parent();
        }
        if missing.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        for d in missing.iter().rev() {
            fsync_dir(parent_of(d))?;
        }
        fsync_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fsync_dir(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> Result<DirLock> {
        /// Tries (2 ms apart) while a lock this process released is still held through a
        /// child process being started.
        const FORK_RELEASE_WAITS: u32 = 100;
        let key = fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let lock_path = key.join(LOCK_FILE);
        let mut held = registry();
        let conflict = held.get(&key).is_some_and(|h| match mode {
            LockMode::Exclusive => h.exclusive || h.shared > 0,
            LockMode::Shared => h.exclusive,
        });
        if conflict {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
                pid: Some(std::process::id()),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let try_lock = || match mode {
            LockMode::Exclusive => fs2::FileExt::try_lock_exclusive(&file),
            LockMode::Shared => fs2::FileExt::try_lock_shared(&file),
        };
        let mut locked = try_lock();
        // The registry says this process does not hold the lock, yet the file names this
        // process: a child being started (between fork and exec) still shares the file
        // description of a lock this process just released. That ends at the child's exec.
        let mut waited = 0;
        while locked
            .as_ref()
            .is_err_and(|e| e.kind() == fs2::lock_contended_error().kind())
            && read_pid(&file) == Some(std::process::id())
            && waited < FORK_RELEASE_WAITS
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
            waited += 1;
            locked = try_lock();
        }
        if let Err(e) = locked {
            if e.kind() == fs2::lock_contended_error().kind() {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                    pid: read_pid(&file),
                });
            }
            return Err(Error::io(&lock_path, e));
        }
        match mode {
            LockMode::Exclusive => {
                // Record the holder so a refused opener can say who holds the lock.
                let pid = format!("{}\n", std::process::id());
                file.set_len(0)
                    .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
                    .map_err(|e| Error::io(&lock_path, e))?;
                held.entry(key.clone()).or_default().exclusive = true;
            }
            LockMode::Shared => held.entry(key.clone()).or_default().shared += 1,
        }
        Ok(DirLock::new(Box::new(RealLock {
            key,
            mode,
            _file: file,
        })))
    }
}

/// Reads the process id a lock holder wrote into the lock file.
pub(crate) fn read_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = FileExt::read_at(file, &mut buf, 0).ok()?;
    std::str::from_utf8(buf.get(..n)?).ok()?.trim().parse().ok()
}

#[derive(Default)]
struct Held {
    exclusive: bool,
    shared: usize,
}

/// Locks held by this process, keyed by canonical directory path.
fn registry() -> MutexGuard<'static, HashMap<PathBuf, Held>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Held>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct RealLock {
    key: PathBuf,
    mode: LockMode,
    // Closing the file releases the OS lock.
    _file: File,
}

impl Drop for RealLock {
    fn drop(&mut self) {
        let mut held = registry();
        if let Some(entry) = held.get_mut(&self.key) {
            match self.mode {
                LockMode::Exclusive => entry.exclusive = false,
                LockMode::Shared => entry.shared = entry.shared.saturating_sub(1),
            }
            if !entry.exclusive && entry.shared == 0 {
                held.remove(&self.key);
            }
        }
    }
}
