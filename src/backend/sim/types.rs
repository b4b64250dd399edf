//! The plain types the simulator is built from: its random generator, the kinds of
//! operations, and the faults that can be injected into them.

/// SplitMix64: tiny, fast, and fixed forever so a printed seed replays a failure.
#[derive(Debug, Clone)]
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(super) fn below_usize(&mut self, n: usize) -> usize {
        let r = self.below(n as u64);
        usize::try_from(r).unwrap_or(0)
    }
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
    /// Fail with [`io::ErrorKind::StorageFull`](std::io::ErrorKind::StorageFull) and change nothing.
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
