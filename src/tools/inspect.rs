//! Inspecting a store directory: what is on disk, read-only.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, LockMode};
use crate::epoch::{Checkpoint, EpochInfo, EpochReader, RecoveryMode, segment_number};
use crate::error::{Error, Result};
use crate::frame::LogReader;
use crate::store::{Readable, TableInfo, combine_checkpoints, read_only_snapshot};

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it will not be written again (every segment but the newest).
    pub sealed: bool,
}

/// What [`inspect`] found in a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Format version of the newest segment.
    pub format_version: u16,
    /// The segments, oldest first.
    pub segments: Vec<SegmentSummary>,
    /// The retained epochs, newest first.
    pub epochs: Vec<EpochInfo>,
    /// The tables of the newest state.
    pub tables: Vec<TableInfo>,
    /// The end of the last complete entry of the newest segment: (segment, offset).
    pub durable_end: (u64, u64),
    /// The process id of the writer holding the directory, if one does.
    pub lock_holder: Option<u32>,
    /// The checkpoints, in the order they were saved, with the statuses and payloads of
    /// their records in the newest state.
    pub checkpoints: Vec<Checkpoint>,
    /// Files that are not segments, the lock, the checkpoint registry or the named locks'
    /// folder (side files of repairs, rewinds, fallbacks).
    pub other_files: Vec<String>,
    /// Crash residue the next writer's open handles (a torn tail of the newest segment, an
    /// unfinished intent, a temporary file), described; empty with a writer running.
    pub needs_recovery: Vec<String>,
}

/// Names in a store directory that are neither segments nor side files.
const KNOWN: [&str; 4] = ["LOCK", "CHECKPOINTS", "locks", "MANIFEST"];

/// [`inspect`] through the file system: describes the store directory `dir`.
///
/// ```
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # drop(statelog::Store::open(dir.path(), statelog::StoreOptions::default())?);
/// let report = statelog::tools::inspect_dir(dir.path())?;
/// assert!(!report.segments.is_empty());
/// # Ok(())
/// # }
/// ```
pub fn inspect_dir(dir: impl AsRef<Path>) -> Result<Inspection> {
    inspect(Arc::new(crate::backend::FsBackend::new()), dir.as_ref())
}

/// Describes the store directory `dir`: segments, epochs, tables, where the data ends, and who
/// holds the lock. Reads only; safe beside a running writer.
///
/// ```
/// use std::sync::Arc;
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
/// # store.close()?;
/// let backend = Arc::new(statelog::backend::FsBackend::new());
/// let seen = statelog::tools::inspect(backend, dir.path())?;
/// println!("{seen:?}");
/// # Ok(())
/// # }
/// ```
pub fn inspect(backend: Arc<dyn Backend>, dir: &Path) -> Result<Inspection> {
    let reader = EpochReader::open(backend.clone(), dir, RecoveryMode::TolerateTornTail)?;
    let names = backend.list(dir).map_err(|e| Error::io(dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| segment_number(n)).collect();
    seqs.sort_unstable();
    let newest = *seqs.last().ok_or_else(|| Error::NoStore {
        dir: dir.to_path_buf(),
    })?;
    let mut segments = Vec::new();
    for &seq in &seqs {
        let name = format!("{seq:016x}.seg");
        let path = dir.join(&name);
        let size = backend
            .open_read(&path)
            .and_then(|f| f.len())
            .map_err(|e| Error::io(&path, e))?;
        segments.push(SegmentSummary {
            name,
            size,
            sealed: seq != newest,
        });
    }
    let newest_path = dir.join(format!("{newest:016x}.seg"));
    let src = backend
        .open_read(&newest_path)
        .map_err(|e| Error::io(&newest_path, e))?;
    let mut log = LogReader::new(src, &newest_path)?;
    let end = log.last_entry_before(log.file_len()?)?.map_or(0, |e| e.end);
    let lock_holder = match backend.lock(dir, LockMode::Shared) {
        Err(Error::Locked { pid, .. }) => pid.or(Some(0)),
        _ => None,
    };
    let mut needs_recovery = Vec::new();
    if lock_holder.is_none() {
        needs_recovery = super::verify::residue_notes(&names);
        let file_len = log.file_len()?;
        if end > 0 && file_len > end {
            log.seek(end);
            let torn = match log.next_entry() {
                Ok(_) => log.tail().is_some(),
                Err(_) => false,
            };
            let what = if torn {
                "an unfinished last write (torn tail); the next open cuts it"
            } else {
                "space reserved after the last entry; the next open gives it back"
            };
            needs_recovery.push(format!("{}: {what}", newest_path.display()));
        }
    }
    let (snapshot, _) = read_only_snapshot(backend, dir, RecoveryMode::TolerateTornTail, None)?;
    Ok(Inspection {
        format_version: log.header().version,
        segments,
        epochs: reader.epochs()?,
        tables: snapshot.tables(),
        durable_end: (newest, end),
        lock_holder,
        checkpoints: combine_checkpoints(reader.checkpoints()?, &snapshot)?,
        other_files: names
            .into_iter()
            .filter(|n| segment_number(n).is_none() && !KNOWN.contains(&n.as_str()))
            .collect(),
        needs_recovery,
    })
}
