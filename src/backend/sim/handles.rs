//! Open simulated files and held directory locks.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::errors::{eio, fault_error, invalid, too_large};
use super::model::{State, lock_state};
use super::types::{FaultKind, OpKind};
use crate::backend::api::{FileHandle, LockMode, ReadAt, copy_at};

/// The largest length a simulated file may reach.
const MAX_FILE_LEN: u64 = 1 << 30;

/// An open simulated file: an inode of one crash generation.
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: u64,
    pub(super) generation: u64,
    pub(super) path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .finish()
    }
}

impl SimFile {
    /// Locks the state after checking the machine is alive and the handle current.
    fn begin(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = lock_state(&self.state);
        st.alive()?;
        st.handle(self.ino, self.generation)?;
        Ok(st)
    }

    /// Checks a target length and converts it.
    fn check_len(len: u64) -> io::Result<usize> {
        if len > MAX_FILE_LEN {
            return Err(too_large());
        }
        usize::try_from(len).map_err(|_| too_large())
    }

    fn sync(&self) -> io::Result<()> {
        // An fsync takes time: under a controlled scheduler (tests/shuttle_sim.rs) other
        // threads may run before it reaches the disk (two fsyncs of one file overlap, an append
        // lands between a sync's start and its end).
        #[cfg(shuttle)]
        shuttle::thread::yield_now();
        let mut st = self.begin()?;
        st.count_op();
        match st.fault(OpKind::Sync) {
            None => {}
            Some(FaultKind::WritebackError) => {
                st.inode(self.ino)?.drop_unsynced();
                return Err(io::Error::other("simulated EIO: writeback error"));
            }
            Some(kind) => return Err(fault_error(kind)),
        }
        st.inode(self.ino)?.sync_now();
        Ok(())
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = lock_state(&self.state);
        if st.generation == self.generation
            && let Some(node) = st.inodes.get_mut(&self.ino)
        {
            node.open = node.open.saturating_sub(1);
        }
    }
}

impl ReadAt for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.begin()?;
        st.plain_fault(OpKind::Read)?;
        Ok(copy_at(&st.inode(self.ino)?.live, buf, offset))
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.begin()?;
        Ok(st.inode(self.ino)?.live.len() as u64)
    }
}

impl FileHandle for SimFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.begin()?;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| invalid("write offset + length overflows"))?;
        Self::check_len(end)?;
        let offset = Self::check_len(offset)?;
        st.count_op();
        match st.fault(OpKind::Write) {
            None => st.write_limited(self.ino, offset, buf),
            Some(FaultKind::ShortWrite) => {
                let keep = if buf.len() > 1 {
                    1 + st.rng.below_usize(buf.len() - 1)
                } else {
                    0
                };
                // The short write's own outcome does not matter: it fails either way.
                let _ = st.write_limited(self.ino, offset, buf.get(..keep).unwrap_or_default());
                Err(eio())
            }
            Some(kind) => Err(fault_error(kind)),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.begin()?;
        let len = Self::check_len(len)?;
        st.count_op();
        st.plain_fault(OpKind::SetLen)?;
        st.set_len_limited(self.ino, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        let mut st = self.begin()?;
        let len = Self::check_len(len)?;
        st.count_op();
        st.plain_fault(OpKind::Preallocate)?;
        if st.inode(self.ino)?.live.len() < len {
            st.set_len_limited(self.ino, len)
        } else {
            Ok(())
        }
    }
}

/// A held simulated directory lock; released on drop unless a crash released it already.
pub(super) struct SimLock {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) key: PathBuf,
    pub(super) mode: LockMode,
    pub(super) generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = lock_state(&self.state);
        if st.generation != self.generation {
            return;
        }
        if let Some(held) = st.locks.get_mut(&self.key) {
            match self.mode {
                LockMode::Exclusive => held.exclusive = false,
                LockMode::Shared => held.shared = held.shared.saturating_sub(1),
            }
            if !held.exclusive && held.shared == 0 {
                st.locks.remove(&self.key);
            }
        }
    }
}
