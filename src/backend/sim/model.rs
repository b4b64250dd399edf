//! The file model: inodes with live and durable images, the namespace, and the operations
//! of the simulated machine's state.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::errors::{crash_error, full_error, is_a_dir, not_a_dir, not_found, stale_error};
use super::types::{Fault, Rng};

/// A namespace entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    File(u64),
    Dir,
}

pub(super) type Namespace = BTreeMap<PathBuf, Entry>;

/// An unsynced namespace change, replayed in order by a crash that keeps a prefix.
#[derive(Debug, Clone)]
pub(super) enum NsChange {
    Create { path: PathBuf, entry: Entry },
    Rename { from: PathBuf, to: PathBuf },
    Remove { path: PathBuf },
}

impl NsChange {
    /// The directory whose sync makes this change durable.
    pub(super) fn dir(&self) -> &Path {
        let path = match self {
            NsChange::Create { path, .. } | NsChange::Remove { path } => path,
            NsChange::Rename { from, .. } => from,
        };
        path.parent().unwrap_or(Path::new(""))
    }

    /// Replays the change on `ns`, skipping it when it no longer applies.
    pub(super) fn replay(&self, ns: &mut Namespace) {
        match self {
            NsChange::Create { path, entry } => {
                ns.entry(path.clone()).or_insert(*entry);
            }
            NsChange::Rename { from, to } => {
                if let Some(entry) = ns.remove(from) {
                    ns.insert(to.clone(), entry);
                }
            }
            NsChange::Remove { path } => {
                ns.remove(path);
            }
        }
    }
}

/// An unsynced change to a file's bytes.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen { len: usize },
}

impl Change {
    pub(super) fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => write_into(data, *offset, bytes),
            Change::SetLen { len } => data.resize(*len, 0),
        }
    }
}

/// Writes `bytes` at `offset`, zero-extending any gap; an empty write changes nothing.
pub(super) fn write_into(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let end = offset.saturating_add(bytes.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    if let Some(dst) = data.get_mut(offset..end) {
        dst.copy_from_slice(bytes);
    }
}

#[derive(Debug, Default)]
pub(super) struct Inode {
    pub(super) live: Vec<u8>,
    pub(super) durable: Vec<u8>,
    pub(super) pending: Vec<Change>,
    /// Open handles of the current generation (an unlinked inode keeps using space while open).
    pub(super) open: usize,
    /// Byte ranges a failed writeback marked clean without writing (start, end): a later sync
    /// keeps their old durable bytes until they are written again.
    pub(super) lost: Vec<(usize, usize)>,
}

impl Inode {
    /// A writeback error: the unsynced writes are dropped from the disk's future, not from
    /// the page cache.
    pub(super) fn drop_unsynced(&mut self) {
        for c in self.pending.drain(..) {
            if let Change::Write { offset, bytes } = c {
                self.lost.push((offset, offset.saturating_add(bytes.len())));
            }
        }
    }

    /// A successful sync: the live image becomes durable, except ranges a failed writeback
    /// marked clean.
    pub(super) fn sync_now(&mut self) {
        let mut image = self.live.clone();
        for &(from, to) in &self.lost {
            for i in from..to.min(image.len()) {
                if let Some(b) = image.get_mut(i) {
                    *b = self.durable.get(i).copied().unwrap_or(0);
                }
            }
        }
        self.durable = image;
        self.pending.clear();
    }

    /// Bytes `from..to` were written again: they are dirty, no longer lost.
    pub(super) fn rewritten(&mut self, from: usize, to: usize) {
        if self.lost.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        for &(a, b) in &self.lost {
            if b <= from || a >= to {
                kept.push((a, b));
                continue;
            }
            if a < from {
                kept.push((a, from));
            }
            if b > to {
                kept.push((to, b));
            }
        }
        self.lost = kept;
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Held {
    pub(super) exclusive: bool,
    pub(super) shared: usize,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) rng: Rng,
    pub(super) ops: u64,
    pub(super) crash_at: Option<u64>,
    pub(super) generation: u64,
    pub(super) next_ino: u64,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) live: Namespace,
    pub(super) durable: Namespace,
    pub(super) pending_ns: Vec<NsChange>,
    pub(super) faults: Vec<(Fault, u64)>,
    pub(super) capacity: Option<u64>,
    pub(super) locks: BTreeMap<PathBuf, Held>,
}

/// Locks the machine's state; a panic while it was held does not poison it for the rest.
pub(super) fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drops `.` components; nothing else is rewritten.
pub(super) fn norm(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Whether a normalized path is a directory that always exists: the root, the current
/// directory (empty), or a path ending in `..`.
pub(super) fn is_fixed_dir(path: &Path) -> bool {
    !matches!(path.components().next_back(), Some(Component::Normal(_)))
}

/// The parent of a normalized path (empty for a single relative name).
pub(super) fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(super) fn is_dir(ns: &Namespace, path: &Path) -> bool {
    is_fixed_dir(path) || ns.get(path) == Some(&Entry::Dir)
}

/// Checks that `dir` is an existing directory of `ns`.
pub(super) fn require_dir(ns: &Namespace, dir: &Path) -> io::Result<()> {
    if is_dir(ns, dir) {
        Ok(())
    } else if ns.contains_key(dir) {
        Err(not_a_dir(dir))
    } else {
        Err(not_found(dir))
    }
}

/// Drops entries whose parent directory is missing (parents sort before their children).
pub(super) fn prune(ns: &Namespace, inodes: &BTreeMap<u64, Inode>) -> Namespace {
    let mut kept = Namespace::new();
    for (path, entry) in ns {
        let parent = parent_of(path);
        let parent_ok = is_fixed_dir(&parent) || kept.get(&parent) == Some(&Entry::Dir);
        let inode_ok = match entry {
            Entry::File(ino) => inodes.contains_key(ino),
            Entry::Dir => true,
        };
        if parent_ok && inode_ok {
            kept.insert(path.clone(), *entry);
        }
    }
    kept
}

pub(super) fn file_inodes(ns: &Namespace) -> BTreeSet<u64> {
    ns.values()
        .filter_map(|e| match e {
            Entry::File(ino) => Some(*ino),
            Entry::Dir => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// State operations

impl State {
    pub(super) fn new(seed: u64) -> Self {
        State {
            rng: Rng(seed),
            ops: 0,
            crash_at: None,
            generation: 0,
            next_ino: 1,
            inodes: BTreeMap::new(),
            live: Namespace::new(),
            durable: Namespace::new(),
            pending_ns: Vec::new(),
            faults: Vec::new(),
            capacity: None,
            locks: BTreeMap::new(),
        }
    }

    pub(super) fn dead(&self) -> bool {
        self.crash_at.is_some_and(|n| self.ops >= n)
    }

    pub(super) fn alive(&self) -> io::Result<()> {
        if self.dead() {
            Err(crash_error())
        } else {
            Ok(())
        }
    }

    /// Checks a handle's generation and inode.
    pub(super) fn handle(&self, ino: u64, generation: u64) -> io::Result<()> {
        if generation != self.generation || !self.inodes.contains_key(&ino) {
            return Err(stale_error());
        }
        Ok(())
    }

    /// Counts one mutating operation (a crash point).
    pub(super) fn count_op(&mut self) {
        self.ops = self.ops.saturating_add(1);
    }

    pub(super) fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(stale_error)
    }

    /// Live bytes used: files named in the live namespace plus open unlinked files.
    pub(super) fn used(&self) -> u64 {
        let linked = file_inodes(&self.live);
        self.inodes
            .iter()
            .filter(|(ino, node)| node.open > 0 || linked.contains(ino))
            .fold(0u64, |acc, (_, node)| {
                acc.saturating_add(node.live.len() as u64)
            })
    }

    /// The length file `ino` may grow to before the capacity is reached.
    pub(super) fn limit(&self, ino: u64) -> u64 {
        let cur = self.inodes.get(&ino).map_or(0, |n| n.live.len() as u64);
        match self.capacity {
            None => u64::MAX,
            Some(cap) => cur.saturating_add(cap.saturating_sub(self.used())),
        }
    }

    /// Writes what fits of `bytes` at `offset` into the live image.
    pub(super) fn write_limited(
        &mut self,
        ino: u64,
        offset: usize,
        bytes: &[u8],
    ) -> io::Result<()> {
        let limit = self.limit(ino);
        let end = offset as u64 + bytes.len() as u64;
        let (fit, full) = if end <= limit {
            (bytes.len(), false)
        } else {
            let room = usize::try_from(limit.saturating_sub(offset as u64)).unwrap_or(usize::MAX);
            (room.min(bytes.len()), true)
        };
        let part = bytes.get(..fit).unwrap_or_default();
        if !part.is_empty() {
            let node = self.inode(ino)?;
            write_into(&mut node.live, offset, part);
            node.rewritten(offset, offset.saturating_add(part.len()));
            node.pending.push(Change::Write {
                offset,
                bytes: part.to_vec(),
            });
        }
        if full { Err(full_error()) } else { Ok(()) }
    }

    /// Sets the live length to `len`, or to what fits when growing past the capacity.
    pub(super) fn set_len_limited(&mut self, ino: u64, len: usize) -> io::Result<()> {
        let limit = self.limit(ino);
        let (new_len, full) = if len as u64 <= limit {
            (len, false)
        } else {
            (usize::try_from(limit).unwrap_or(len).min(len), true)
        };
        let node = self.inode(ino)?;
        if node.live.len() != new_len || !full {
            node.live.resize(new_len, 0);
            node.pending.push(Change::SetLen { len: new_len });
        }
        if full { Err(full_error()) } else { Ok(()) }
    }

    /// The durable namespace entries of `dir` become the live ones.
    pub(super) fn sync_dir_now(&mut self, dir: &Path) {
        // Only what differs between the two namespaces changes (no copy of the rest).
        let in_dir = |p: &Path| p.parent().unwrap_or(Path::new("")) == dir;
        let changed: Vec<(PathBuf, Option<Entry>)> = self
            .live
            .iter()
            .filter(|(p, e)| in_dir(p) && self.durable.get(*p) != Some(*e))
            .map(|(p, e)| (p.clone(), Some(*e)))
            .chain(
                self.durable
                    .keys()
                    .filter(|p| in_dir(p) && !self.live.contains_key(*p))
                    .map(|p| (p.clone(), None)),
            )
            .collect();
        for (path, entry) in changed {
            match entry {
                Some(entry) => {
                    self.durable.insert(path, entry);
                }
                None => {
                    self.durable.remove(&path);
                }
            }
        }
        self.pending_ns.retain(|c| c.dir() != dir);
    }

    pub(super) fn new_inode(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.saturating_add(1);
        self.inodes.insert(ino, Inode::default());
        ino
    }

    /// Looks up the live file at `path` for opening.
    pub(super) fn lookup_file(&self, path: &Path) -> io::Result<u64> {
        if is_fixed_dir(path) {
            return Err(is_a_dir(path));
        }
        match self.live.get(path) {
            Some(Entry::File(ino)) => Ok(*ino),
            Some(Entry::Dir) => Err(is_a_dir(path)),
            None => Err(not_found(path)),
        }
    }
}
