//! Power loss: the crash modes, and what a crash keeps of the unsynced changes.

use std::collections::BTreeMap;

use super::model::{Change, Inode, State, file_inodes, prune, write_into};
use super::types::Rng;

/// The sector size of [`CrashMode::Sectors`].
const SECTOR: usize = 512;

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

impl State {
    pub(super) fn crash(&mut self, mode: CrashMode) {
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
