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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::api::{Backend, DirLock, FileHandle, LockMode, ReadAt, copy_at};
use crate::error::{Error, Result};

/// The sector size of [`CrashMode::Sectors`].
const SECTOR: usize = 512;

/// The largest length a simulated file may reach.
const MAX_FILE_LEN: u64 = 1 << 30;

/// How a crash treats unsynced changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// Every unsynced change is lost: files and directories are exactly as last synced.
    LoseUnsynced,
    /// A random prefix of the unsynced changes survives, in order; the last surviving write
    /// may be cut to a random prefix of its bytes.
    KeepPrefix,
    /// The namespace as in `KeepPrefix`; each file gets the synced or the live length, and
    /// each 512-byte sector that differs becomes the new bytes, the old bytes, zeros, or torn
    /// (a prefix of the new bytes followed by the rest of the old ones). Zeroing spares the
    /// bytes the unsynced writes did not change (powersafe overwrite, as SQLite assumes).
    Sectors,
    /// One of the other three, picked by the simulator's random generator.
    Any,
}

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

/// A deterministic in-memory file system with crash and fault injection. Cloning gives another
/// handle to the same simulated machine.
#[derive(Clone)]
pub struct SimBackend {
    seed: u64,
    state: Arc<Mutex<State>>,
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: tiny, fast, and fixed forever so a printed seed replays a failure.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below_usize(&mut self, n: usize) -> usize {
        let r = self.below(n as u64);
        usize::try_from(r).unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// A namespace entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

type Namespace = BTreeMap<PathBuf, Entry>;

/// An unsynced namespace change, replayed in order by a crash that keeps a prefix.
#[derive(Debug, Clone)]
enum NsChange {
    Create { path: PathBuf, entry: Entry },
    Rename { from: PathBuf, to: PathBuf },
    Remove { path: PathBuf },
}

impl NsChange {
    /// The directory whose sync makes this change durable.
    fn dir(&self) -> PathBuf {
        match self {
            NsChange::Create { path, .. } | NsChange::Remove { path } => parent_of(path),
            NsChange::Rename { from, .. } => parent_of(from),
        }
    }

    /// Replays the change on `ns`, skipping it when it no longer applies.
    fn replay(&self, ns: &mut Namespace) {
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
enum Change {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen { len: usize },
}

impl Change {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => write_into(data, *offset, bytes),
            Change::SetLen { len } => data.resize(*len, 0),
        }
    }
}

/// Writes `bytes` at `offset`, zero-extending any gap; an empty write changes nothing.
fn write_into(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
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
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Change>,
    /// Open handles of the current generation (an unlinked inode keeps using space while open).
    open: usize,
    /// Byte ranges a failed writeback marked clean without writing (start, end): a later sync
    /// keeps their old durable bytes until they are written again.
    lost: Vec<(usize, usize)>,
}

impl Inode {
    /// A writeback error: the unsynced writes are dropped from the disk's future, not from
    /// the page cache.
    fn drop_unsynced(&mut self) {
        for c in self.pending.drain(..) {
            if let Change::Write { offset, bytes } = c {
                self.lost.push((offset, offset.saturating_add(bytes.len())));
            }
        }
    }

    /// A successful sync: the live image becomes durable, except ranges a failed writeback
    /// marked clean.
    fn sync_now(&mut self) {
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
    fn rewritten(&mut self, from: usize, to: usize) {
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
struct Held {
    exclusive: bool,
    shared: usize,
}

#[derive(Debug)]
struct State {
    rng: Rng,
    ops: u64,
    crash_at: Option<u64>,
    generation: u64,
    next_ino: u64,
    inodes: BTreeMap<u64, Inode>,
    live: Namespace,
    durable: Namespace,
    pending_ns: Vec<NsChange>,
    faults: Vec<(Fault, u64)>,
    capacity: Option<u64>,
    locks: BTreeMap<PathBuf, Held>,
}

// ---------------------------------------------------------------------------------------------
// Errors and paths

fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

fn stale_error() -> io::Error {
    io::Error::other("stale handle after simulated crash")
}

fn eio() -> io::Error {
    io::Error::other("simulated EIO")
}

fn enospc() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC")
}

fn full_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "simulated disk full (capacity reached)",
    )
}

fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Enospc => enospc(),
        FaultKind::Eio | FaultKind::ShortWrite | FaultKind::WritebackError => eio(),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn is_a_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{}: is a directory", path.display()),
    )
}

fn not_a_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{}: not a directory", path.display()),
    )
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "simulated file would exceed 1 GiB",
    )
}

/// Drops `.` components; nothing else is rewritten.
fn norm(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Whether a normalized path is a directory that always exists: the root, the current
/// directory (empty), or a path ending in `..`.
fn is_fixed_dir(path: &Path) -> bool {
    !matches!(path.components().next_back(), Some(Component::Normal(_)))
}

/// The parent of a normalized path (empty for a single relative name).
fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn is_dir(ns: &Namespace, path: &Path) -> bool {
    is_fixed_dir(path) || ns.get(path) == Some(&Entry::Dir)
}

/// Checks that `dir` is an existing directory of `ns`.
fn require_dir(ns: &Namespace, dir: &Path) -> io::Result<()> {
    if is_dir(ns, dir) {
        Ok(())
    } else if ns.contains_key(dir) {
        Err(not_a_dir(dir))
    } else {
        Err(not_found(dir))
    }
}

/// Drops entries whose parent directory is missing (parents sort before their children).
fn prune(ns: &Namespace, inodes: &BTreeMap<u64, Inode>) -> Namespace {
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

fn file_inodes(ns: &Namespace) -> BTreeSet<u64> {
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
    fn new(seed: u64) -> Self {
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

    fn dead(&self) -> bool {
        self.crash_at.is_some_and(|n| self.ops >= n)
    }

    fn alive(&self) -> io::Result<()> {
        if self.dead() {
            Err(crash_error())
        } else {
            Ok(())
        }
    }

    /// Checks a handle's generation and inode.
    fn handle(&self, ino: u64, generation: u64) -> io::Result<()> {
        if generation != self.generation || !self.inodes.contains_key(&ino) {
            return Err(stale_error());
        }
        Ok(())
    }

    /// Counts one mutating operation (a crash point).
    fn count_op(&mut self) {
        self.ops = self.ops.saturating_add(1);
    }

    /// Counts an operation of `kind` for the faults; returns the kind of the fault that fires.
    fn fault(&mut self, kind: OpKind) -> Option<FaultKind> {
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
    fn plain_fault(&mut self, kind: OpKind) -> io::Result<()> {
        match self.fault(kind) {
            Some(k) => Err(fault_error(k)),
            None => Ok(()),
        }
    }

    fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(stale_error)
    }

    /// Live bytes used: files named in the live namespace plus open unlinked files.
    fn used(&self) -> u64 {
        let linked = file_inodes(&self.live);
        self.inodes
            .iter()
            .filter(|(ino, node)| node.open > 0 || linked.contains(ino))
            .fold(0u64, |acc, (_, node)| {
                acc.saturating_add(node.live.len() as u64)
            })
    }

    /// The length file `ino` may grow to before the capacity is reached.
    fn limit(&self, ino: u64) -> u64 {
        let cur = self.inodes.get(&ino).map_or(0, |n| n.live.len() as u64);
        match self.capacity {
            None => u64::MAX,
            Some(cap) => cur.saturating_add(cap.saturating_sub(self.used())),
        }
    }

    /// Writes what fits of `bytes` at `offset` into the live image.
    fn write_limited(&mut self, ino: u64, offset: usize, bytes: &[u8]) -> io::Result<()> {
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
    fn set_len_limited(&mut self, ino: u64, len: usize) -> io::Result<()> {
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
    fn sync_dir_now(&mut self, dir: &Path) {
        let paths: BTreeSet<PathBuf> = self
            .live
            .keys()
            .chain(self.durable.keys())
            .filter(|p| parent_of(p) == dir)
            .cloned()
            .collect();
        for path in paths {
            match self.live.get(&path) {
                Some(entry) => {
                    self.durable.insert(path, *entry);
                }
                None => {
                    self.durable.remove(&path);
                }
            }
        }
        self.pending_ns.retain(|c| c.dir() != dir);
    }

    /// Step 1 of a namespace operation: a counted, faultable change of the live namespace.
    fn ns_change(&mut self, kind: OpKind, change: NsChange) -> io::Result<()> {
        self.alive()?;
        self.count_op();
        self.plain_fault(kind)?;
        change.replay(&mut self.live);
        self.pending_ns.push(change);
        Ok(())
    }

    /// Step 2 of a namespace operation: the directory sync.
    fn ns_sync(&mut self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        self.count_op();
        self.plain_fault(OpKind::SyncDir)?;
        self.sync_dir_now(dir);
        Ok(())
    }

    fn new_inode(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.saturating_add(1);
        self.inodes.insert(ino, Inode::default());
        ino
    }

    /// Looks up the live file at `path` for opening.
    fn lookup_file(&self, path: &Path) -> io::Result<u64> {
        if is_fixed_dir(path) {
            return Err(is_a_dir(path));
        }
        match self.live.get(path) {
            Some(Entry::File(ino)) => Ok(*ino),
            Some(Entry::Dir) => Err(is_a_dir(path)),
            None => Err(not_found(path)),
        }
    }

    fn crash(&mut self, mode: CrashMode) {
        let mode = match mode {
            CrashMode::Any => match self.rng.below(3) {
                0 => CrashMode::LoseUnsynced,
                1 => CrashMode::KeepPrefix,
                _ => CrashMode::Sectors,
            },
            m => m,
        };
        let mut ns = self.durable.clone();
        if mode != CrashMode::LoseUnsynced {
            let k = self
                .rng
                .below_usize(self.pending_ns.len().saturating_add(1));
            for change in self.pending_ns.iter().take(k) {
                change.replay(&mut ns);
            }
        }
        let ns = prune(&ns, &self.inodes);
        let mut inodes = BTreeMap::new();
        for ino in file_inodes(&ns) {
            let Some(node) = self.inodes.get(&ino) else {
                continue;
            };
            let image = match mode {
                CrashMode::KeepPrefix => keep_prefix(node, &mut self.rng),
                CrashMode::Sectors => sectors(node, &mut self.rng),
                CrashMode::LoseUnsynced | CrashMode::Any => node.durable.clone(),
            };
            inodes.insert(
                ino,
                Inode {
                    live: image.clone(),
                    durable: image,
                    pending: Vec::new(),
                    open: 0,
                    lost: Vec::new(),
                },
            );
        }
        self.inodes = inodes;
        self.live = ns.clone();
        self.durable = ns;
        self.pending_ns.clear();
        self.generation = self.generation.wrapping_add(1);
        self.locks.clear();
        self.crash_at = None;
        self.faults.clear();
    }
}

/// Durable bytes plus a random prefix of the pending changes, the last write maybe cut short.
fn keep_prefix(node: &Inode, rng: &mut Rng) -> Vec<u8> {
    let mut image = node.durable.clone();
    let k = rng.below_usize(node.pending.len().saturating_add(1));
    for (i, change) in node.pending.iter().take(k).enumerate() {
        match change {
            Change::Write { offset, bytes } if i + 1 == k && rng.below(2) == 0 => {
                let cut = rng.below_usize(bytes.len());
                write_into(&mut image, *offset, bytes.get(..cut).unwrap_or_default());
            }
            _ => change.apply(&mut image),
        }
    }
    image
}

/// Old or new length; each differing sector new, old, zeros or torn.
fn sectors(node: &Inode, rng: &mut Rng) -> Vec<u8> {
    let old = &node.durable;
    let new = &node.live;
    let len = if rng.below(2) == 0 {
        old.len()
    } else {
        new.len()
    };
    let old_at = |i: usize| old.get(i).copied().unwrap_or(0);
    let new_at = |i: usize| new.get(i).copied().unwrap_or(0);
    let mut image = vec![0u8; len];
    for start in (0..len).step_by(SECTOR) {
        let end = start.saturating_add(SECTOR).min(len);
        let differ = (start..end).any(|i| old_at(i) != new_at(i));
        // 0 new, 1 old, 2 zeros, 3 torn after `tear` bytes.
        let (choice, tear) = if differ {
            let choice = rng.below(4);
            let tear = if choice == 3 {
                1 + rng.below_usize(SECTOR - 1)
            } else {
                0
            };
            (choice, tear)
        } else {
            (0, 0)
        };
        let Some(dst) = image.get_mut(start..end) else {
            continue;
        };
        for (j, byte) in dst.iter_mut().enumerate() {
            let i = start + j;
            *byte = match choice {
                0 => new_at(i),
                1 => old_at(i),
                // Powersafe overwrite: a write never damages bytes it did not change.
                2 if old_at(i) == new_at(i) => old_at(i),
                2 => 0,
                _ if j < tear => new_at(i),
                _ => old_at(i),
            };
        }
    }
    image
}

// ---------------------------------------------------------------------------------------------
// The public handle

impl SimBackend {
    /// A fresh, empty simulated machine whose randomness all comes from `seed`.
    pub fn new(seed: u64) -> Self {
        SimBackend {
            seed,
            state: Arc::new(Mutex::new(State::new(seed))),
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
        let ino = st.lookup_file(&path)?;
        st.plain_fault(OpKind::Open)?;
        Ok(self.handle(&mut st, ino, &path))
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let dir = norm(dir);
        let mut st = self.state();
        st.alive()?;
        require_dir(&st.live, &dir)?;
        st.ns_sync(&dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = norm(path);
        let st = self.state();
        st.alive()?;
        Ok(is_fixed_dir(&path) || st.live.contains_key(&path))
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> Result<DirLock> {
        let key = norm(dir);
        let mut st = self.state();
        st.alive().map_err(|e| Error::io(dir, e))?;
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

// ---------------------------------------------------------------------------------------------
// Handles and locks

/// An open simulated file: an inode of one crash generation.
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
    path: PathBuf,
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
struct SimLock {
    state: Arc<Mutex<State>>,
    key: PathBuf,
    mode: LockMode,
    generation: u64,
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
