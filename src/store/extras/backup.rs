//! Hot backup: a consistent, restorable copy of a store, written while writers go on.

use std::path::Path;
use std::sync::Arc;

use super::state::State;
use crate::backend::Backend;
use crate::epoch::{EpochLog, Options};
use crate::error::{Error, Result};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The number of transactions committed before the state that was copied.
    pub seq: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `state` as a new store directory `dest`: one epoch whose snapshot is the state,
/// written to a temporary segment, fsynced and renamed into place, then closed cleanly. `dest`
/// must not exist or must be empty. The copy is a whole store: open it with `Store::open`.
pub(crate) fn write_backup(
    backend: Arc<dyn Backend>,
    state: &State,
    dest: &Path,
) -> Result<BackupReport> {
    let io = |e| Error::io(dest, e);
    if backend.exists(dest).map_err(io)? && !backend.list(dest).map_err(io)?.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "backup destination {} is not empty",
            dest.display()
        )));
    }
    let (log, restored) = EpochLog::open(backend, dest, Options::default())?;
    drop(restored);
    let image = state.encode_snapshot()?;
    log.snapshot(&image)?;
    log.close()?;
    Ok(BackupReport {
        seq: state.seq,
        bytes: image.len() as u64,
    })
}
