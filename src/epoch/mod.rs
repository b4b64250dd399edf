//! The epoch layer: a store directory of segments holding epochs, each a snapshot followed by
//! updates; bounded restore, rewind, compaction with retention, and group commit
//! (FORMAT.md §11).

mod checkpoints;
mod concurrent;
mod copy;
mod dir;
mod entry;
mod intent;
mod log;
mod open;
mod options;
mod parts;
mod read;
mod rewind;
mod steps;
mod tail;
mod view;

pub use checkpoints::{CHECKPOINTS_FILE, Checkpoint, CheckpointChange, CheckpointStatus};
pub(crate) use checkpoints::{RegistryReader, apply as apply_checkpoint_change};
pub use concurrent::{PreparedSnapshot, SnapshotTicket};
pub use copy::CopyReport;
pub use log::{EpochLog, SnapshotReport};
pub use options::{Clock, CompactionPolicy, Durability, Options, Position, Retention};
pub use parts::{PART_BYTES, StateWriter};
pub use read::{EpochInfo, FellBack, LostRange, RecoveryMode, RecoveryReport, Restored, Updates};
pub use tail::{LogTail, TailEvent};
pub use view::EpochReader;

pub(crate) use dir::parse_segment_name as segment_number;
pub(crate) use entry::Decoded;
#[cfg(feature = "internals")]
pub(crate) use {
    checkpoints::{decode as decode_checkpoints, encode as encode_checkpoints},
    intent::{
        FALLBACK_MAGIC, MANIFEST_MAGIC, RETIRE_MAGIC, SYNC_FAILED_MAGIC, decode as decode_intent,
        encode as encode_intent,
    },
    steps::RewindIntent,
};

/// The boundary of an unfinished retention in `dir` (0: none), for tools.
pub(crate) fn retired_below(
    backend: &std::sync::Arc<dyn crate::backend::Backend>,
    dir: &std::path::Path,
) -> crate::Result<u64> {
    read::SegmentDir {
        backend: backend.clone(),
        path: dir.to_path_buf(),
    }
    .retired_below()
}

/// Checks `dir` against its manifest (a segment it names is gone: `Corrupt`), for tools.
pub(crate) fn check_manifest(
    backend: &std::sync::Arc<dyn crate::backend::Backend>,
    dir: &std::path::Path,
) -> crate::Result<()> {
    steps::check_manifest(&read::SegmentDir {
        backend: backend.clone(),
        path: dir.to_path_buf(),
    })
}

/// The newest segment and its length at a clean close, if the manifest records one, for
/// tools: damage below that length was certified by the close.
pub(crate) fn closed_length(
    backend: &std::sync::Arc<dyn crate::backend::Backend>,
    dir: &std::path::Path,
) -> crate::Result<Option<(u64, u64)>> {
    let m = steps::read_manifest(&read::SegmentDir {
        backend: backend.clone(),
        path: dir.to_path_buf(),
    })?;
    Ok(m.filter(|m| m.closed_len > 0)
        .map(|m| (m.newest, m.closed_len)))
}

/// Decodes an epoch-layer entry, for tools.
pub(crate) fn decode_entry(b: &[u8]) -> std::result::Result<Decoded<'_>, crate::CorruptKind> {
    entry::decode(b).map_err(read::entry_error_kind)
}
#[cfg(test)]
mod vectors;
