//! The public handle: [`SimBackend`], its test helpers, and its [`Backend`] implementation.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::crash::CrashMode;
use super::errors::{invalid, is_a_dir, not_a_dir, not_found};
use super::handles::{SimFile, SimLock};
use super::model::{
    Entry, NsChange, State, is_dir, is_fixed_dir, lock_state, norm, parent_of, require_dir,
};
use super::types::{Fault, OpKind};
use crate::backend::api::{Backend, DirLock, FileHandle, LockMode, ReadAt};
use crate::error::{Error, Result};

/// A deterministic in-memory file system with crash and fault injection. Cloning gives another
/// handle to the same simulated machine.
#[derive(Clone)]
pub struct SimBackend {
    seed: u64,
    state: Arc<Mutex<State>>,
    /// The crash generation a process handle belongs to (see [`process`](Self::process)).
    boot: Option<u64>,
}

impl SimBackend {
    /// A fresh, empty simulated machine whose randomness all comes from `seed`.
    pub fn new(seed: u64) -> Self {
        SimBackend {
            seed,
            state: Arc::new(Mutex::new(State::new(seed))),
            boot: None,
        }
    }

    /// A handle for one process of the machine as it runs now: after the next power loss
    /// ([`crash`](Self::crash)) every operation through it fails, as the process that held it
    /// died with the machine. A store opened through it and dropped after the power loss (a
    /// test's leftover) can then write nothing into the machine's next life; handles from
    /// [`new`](Self::new) and `clone` stay the machine's own and work across power losses.
    pub fn process(&self) -> SimBackend {
        SimBackend {
            seed: self.seed,
            state: self.state.clone(),
            boot: Some(self.state().generation),
        }
    }

    /// Fails for a process handle of an earlier life of the machine.
    fn current(&self, st: &State) -> io::Result<()> {
        match self.boot {
            Some(g) if g != st.generation => Err(io::Error::other(
                "simulated crash: this process died in an earlier power loss",
            )),
            _ => Ok(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// The number of mutating operations (crash points) so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Arms a crash: once [`ops`](Self::ops) reaches `n`, every later operation of any kind
    /// fails with "simulated crash" and changes nothing, until [`crash`](Self::crash).
    pub fn crash_after(&self, n: u64) {
        self.state().crash_at = Some(n);
    }

    /// Whether an armed crash has fired.
    pub fn crashed(&self) -> bool {
        self.state().dead()
    }

    /// Power loss now (or at the armed point if it fired): rebuilds every file and the
    /// namespace from the durable image plus what `mode` keeps of the unsynced changes. All
    /// existing handles go stale, all locks are released, the armed crash and the pending
    /// faults are cleared. The operation counter keeps counting.
    pub fn crash(&self, mode: CrashMode) {
        self.state().crash(mode);
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push((fault, 0));
    }

    /// How many injected faults have not fired yet.
    pub fn pending_faults(&self) -> usize {
        lock_state(&self.state).faults.len()
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Limits the total live bytes over all files (`None`: unlimited). A write, `set_len` or
    /// `preallocate` that would exceed it does what fits, then fails with
    /// [`io::ErrorKind::StorageFull`].
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state().capacity = bytes;
    }

    /// The live content of the file at `path`, if there is one.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state();
        match st.live.get(&norm(path)) {
            Some(Entry::File(ino)) => st.inodes.get(ino).map(|n| n.live.clone()),
            _ => None,
        }
    }

    /// The durable content of the file the durable namespace maps `path` to, if any.
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state();
        match st.durable.get(&norm(path)) {
            Some(Entry::File(ino)) => st.inodes.get(ino).map(|n| n.durable.clone()),
            _ => None,
        }
    }

    /// Test helper: creates or replaces the file at `path` with `bytes`, live and durable, as
    /// if written and synced long ago (missing parent directories are made, durably). Not an
    /// operation: not counted, never faulted. Paths that cannot name a file are ignored.
    pub fn set_file_bytes(&self, path: &Path, bytes: &[u8]) {
        let path = norm(path);
        if is_fixed_dir(&path) {
            return;
        }
        let mut st = self.state();
        let mut dirs: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|d| !is_fixed_dir(d))
            .map(Path::to_path_buf)
            .collect();
        dirs.reverse();
        for dir in dirs {
            st.live.insert(dir.clone(), Entry::Dir);
            st.durable.insert(dir, Entry::Dir);
        }
        let ino = match st.live.get(&path) {
            Some(Entry::File(ino)) if st.inodes.contains_key(ino) => *ino,
            _ => st.new_inode(),
        };
        if let Some(node) = st.inodes.get_mut(&ino) {
            node.live = bytes.to_vec();
            node.durable = bytes.to_vec();
            node.pending.clear();
        }
        st.live.insert(path.clone(), Entry::File(ino));
        st.durable.insert(path, Entry::File(ino));
    }

    fn handle(&self, st: &mut State, ino: u64, path: &Path) -> SimFile {
        if let Some(node) = st.inodes.get_mut(&ino) {
            node.open = node.open.saturating_add(1);
        }
        SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
            path: path.to_path_buf(),
        }
    }

    fn open_file(&self, path: &Path) -> io::Result<SimFile> {
        let path = norm(path);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        let ino = st.lookup_file(&path)?;
        st.plain_fault(OpKind::Open)?;
        Ok(self.handle(&mut st, ino, &path))
    }
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("SimBackend")
            .field("seed", &self.seed)
            .field("ops", &st.ops)
            .field("crash_at", &st.crash_at)
            .field("generation", &st.generation)
            .field("entries", &st.live.len())
            .field("faults", &st.faults.len())
            .field("capacity", &st.capacity)
            .finish()
    }
}

impl Backend for SimBackend {
    fn deterministic(&self) -> bool {
        true
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(self.open_file(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(self.open_file(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let path = norm(path);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        if is_fixed_dir(&path) || st.live.contains_key(&path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: already exists", path.display()),
            ));
        }
        let dir = parent_of(&path);
        require_dir(&st.live, &dir)?;
        st.count_op();
        st.plain_fault(OpKind::Create)?;
        let ino = st.new_inode();
        let change = NsChange::Create {
            path: path.clone(),
            entry: Entry::File(ino),
        };
        change.replay(&mut st.live);
        st.pending_ns.push(change);
        st.ns_sync(&dir)?;
        Ok(Arc::new(self.handle(&mut st, ino, &path)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (norm(from), norm(to));
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        if is_fixed_dir(&from) || is_fixed_dir(&to) {
            return Err(invalid("rename needs two file paths"));
        }
        let dir = parent_of(&from);
        if parent_of(&to) != dir {
            return Err(invalid("rename across directories is not supported"));
        }
        match st.live.get(&from) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(invalid("renaming a directory is not supported")),
            None => return Err(not_found(&from)),
        }
        if st.live.get(&to) == Some(&Entry::Dir) {
            return Err(is_a_dir(&to));
        }
        st.ns_change(OpKind::Rename, NsChange::Rename { from, to })?;
        st.ns_sync(&dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        if is_fixed_dir(&path) {
            return Err(is_a_dir(&path));
        }
        match st.live.get(&path) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(is_a_dir(&path)),
            None => return Err(not_found(&path)),
        }
        let dir = parent_of(&path);
        st.ns_change(OpKind::Remove, NsChange::Remove { path })?;
        st.ns_sync(&dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = norm(dir);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        require_dir(&st.live, &dir)?;
        st.plain_fault(OpKind::List)?;
        let mut names: Vec<String> = st
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir.as_path()))
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        let mut missing = Vec::new();
        for level in dir.ancestors() {
            if is_dir(&st.live, level) {
                break;
            }
            if st.live.contains_key(level) {
                return Err(if level == dir {
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: exists and is not a directory", dir.display()),
                    )
                } else {
                    not_a_dir(level)
                });
            }
            missing.push(level.to_path_buf());
        }
        for level in missing.into_iter().rev() {
            let parent = parent_of(&level);
            st.ns_change(
                OpKind::Create,
                NsChange::Create {
                    path: level,
                    entry: Entry::Dir,
                },
            )?;
            st.ns_sync(&parent)?;
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(shuttle)]
        shuttle::thread::yield_now();
        let dir = norm(dir);
        let mut st = self.state();
        st.alive()?;
        self.current(&st)?;
        require_dir(&st.live, &dir)?;
        st.ns_sync(&dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = norm(path);
        let st = self.state();
        st.alive()?;
        self.current(&st)?;
        Ok(is_fixed_dir(&path) || st.live.contains_key(&path))
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> Result<DirLock> {
        let key = norm(dir);
        let mut st = self.state();
        st.alive().map_err(|e| Error::io(dir, e))?;
        self.current(&st).map_err(|e| Error::io(dir, e))?;
        require_dir(&st.live, &key).map_err(|e| Error::io(dir, e))?;
        st.plain_fault(OpKind::Lock)
            .map_err(|e| Error::io(dir, e))?;
        let held = st.locks.entry(key.clone()).or_default();
        let conflict = match mode {
            LockMode::Exclusive => held.exclusive || held.shared > 0,
            LockMode::Shared => held.exclusive,
        };
        if conflict {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
                pid: None,
            });
        }
        match mode {
            LockMode::Exclusive => held.exclusive = true,
            LockMode::Shared => held.shared = held.shared.saturating_add(1),
        }
        Ok(DirLock::new(Box::new(SimLock {
            state: Arc::clone(&self.state),
            key,
            mode,
            generation: st.generation,
        })))
    }
}
