//! Helpers every body uses: the simulated store directory, its files, little-endian readers,
//! and the read-only checks (a reader or follower of whatever a directory holds changes
//! nothing and ends).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::input::{Input, reserve};
use crate::backend::{Backend, SimBackend};
use crate::epoch::{
    Clock, CompactionPolicy, EpochReader, LogTail, Options, RecoveryMode, Retention, Updates,
};
use crate::frame::{RECORD_HEADER_LEN, SYNC_MARK_LEN};
use crate::{CommitPos, Follower, FollowerOptions, StoreOptions};

pub(super) const LOG_PATH: &str = "/fuzz.log";
const DIR: &str = "/store";
pub(super) const MODES: [RecoveryMode; 3] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::Strict,
    RecoveryMode::Salvage,
];
/// The smallest entry on disk: a record header and the sync mark.
pub(super) const MIN_ENTRY: u64 = (RECORD_HEADER_LEN + SYNC_MARK_LEN) as u64;
/// Frame-header tag of segment files (FORMAT.md §11.1).
pub(super) const SEGMENT_TAG: u32 = 1;

pub(super) fn dir() -> &'static Path {
    Path::new(DIR)
}

/// A fixed clock, so bodies do not depend on the time.
pub(super) fn fixed_clock() -> Clock {
    Clock::new(|| UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// The names and contents of the files directly in `DIR`.
pub(super) fn dir_files(be: &SimBackend) -> Vec<(String, Vec<u8>)> {
    let names = Backend::list(be, dir()).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|n| {
            let bytes = be.file_bytes(&dir().join(&n))?;
            Some((n, bytes))
        })
        .collect()
}

/// A fresh simulated machine whose `DIR` holds `files` (durably).
pub(super) fn backend_with(files: &[(String, Vec<u8>)], seed: u64) -> SimBackend {
    let be = SimBackend::new(seed);
    let _ = Backend::create_dir_all(&be, dir());
    for (name, bytes) in files {
        be.set_file_bytes(&dir().join(name), bytes);
    }
    be
}

/// Total bytes in `DIR`: an upper bound on the work any reader of it may do.
fn dir_bytes(be: &SimBackend) -> u64 {
    dir_files(be).iter().map(|(_, b)| b.len() as u64).sum()
}

/// Iterates an epoch's updates to the end. Every update is a distinct entry of at least
/// `MIN_ENTRY` bytes, so the count is bounded by the bytes in the directory.
pub(super) fn drain(be: &SimBackend, updates: Updates) {
    let bound = dir_bytes(be) / MIN_ENTRY + 16;
    let mut n = 0u64;
    for _ in updates {
        n += 1;
        assert!(
            n <= bound,
            "an epoch's updates did not end after {n} items ({bound} possible)"
        );
    }
}

/// The number of a segment file name (`{seq:016x}.seg`), if it is one.
pub(super) fn segment_number(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(super) fn le16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)?
        .try_into()
        .ok()
        .map(u16::from_le_bytes)
}

pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

pub(super) fn le64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

/// The read-only reader: whatever it finds, it changes nothing.
pub(super) fn read_only_view(be: &SimBackend, mode: RecoveryMode) {
    let before = dir_files(be);
    if let Ok(r) = EpochReader::open(Arc::new(be.clone()), dir(), mode) {
        if let Ok(restored) = r.restore() {
            drain(be, restored.updates);
        }
        for e in r.epochs().unwrap_or_default().iter().take(8) {
            if let Ok(restored) = r.read_epoch(e.id) {
                drain(be, restored.updates);
            }
        }
        let _ = r.checkpoints();
    }
    follow(be);
    assert!(
        dir_files(be) == before,
        "the read-only reader changed the directory"
    );
}

/// Follows the directory to its end (a tail must end on a directory nobody writes), and
/// opens a store follower on it, which must not panic either.
fn follow(be: &SimBackend) {
    if let Ok(mut tail) = LogTail::open(Arc::new(be.clone()), dir()) {
        let mut events = 0u32;
        while let Ok(Some(_)) = tail.next() {
            events += 1;
            assert!(
                events < 1_000_000,
                "a tail of a still directory does not end"
            );
        }
    }
    if let Ok(f) = Follower::open_with(Arc::new(be.clone()), dir(), FollowerOptions::default()) {
        let _ = f.poll();
        let _ = f.changes_since(CommitPos { epoch: 0, seq: 0 }, 64);
    }
}

/// Store settings for a body's simulated store, chosen by the input: 1 KiB blocks, segments of
/// 2-4 KiB, 2-3 epochs kept, a snapshot once the updates reach 1-3 times the last one, a small
/// reserve (see [`reserve`]), automatic compaction on or off.
pub(super) fn store_options(inp: &mut Input<'_>) -> StoreOptions {
    StoreOptions {
        log: Options {
            block_size: 1024,
            segment_bytes: 2048 + 1024 * inp.below(3),
            retention: Retention {
                keep_epochs: 2 + inp.index(2),
                keep_for: None,
            },
            compaction: CompactionPolicy {
                update_ratio: 1.0 + inp.below(3) as f64,
                min_update_bytes: 512,
            },
            clock: fixed_clock(),
            reserve_bytes: reserve(inp),
            ..Options::default()
        },
        auto_compact: inp.bool(),
        view: None,
    }
}
