//! A read-only view of a store directory, safe beside a writer in another process.

use std::path::Path;
use std::sync::Arc;

use super::checkpoints::{self, Checkpoint};
use super::copy::{self, CopyReport};
use super::options::Position;
use super::read::{EpochInfo, RecoveryMode, RecoveryReport, Restored, SegmentDir, Updates};
use crate::backend::Backend;
use crate::frame::{FILE_HEADER_LEN, LogReader};

/// How many times a copy starts again when retention deletes a segment it was about to copy.
pub(crate) const COPY_TRIES: usize = 8;
use crate::error::{Error, Result};

/// Reads a store directory without locking or changing it: the current epoch, the retained
/// epochs, and any retained epoch's state. Damage is reported, never repaired.
#[derive(Clone)]
pub struct EpochReader {
    dir: SegmentDir,
    mode: RecoveryMode,
}

impl std::fmt::Debug for EpochReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochReader")
            .field("dir", &self.dir.path)
            .finish_non_exhaustive()
    }
}

impl EpochReader {
    /// A reader of the store directory `dir`, treating damage as `mode` says.
    pub fn open(backend: Arc<dyn Backend>, dir: &Path, mode: RecoveryMode) -> Result<Self> {
        if !backend.exists(dir).map_err(|e| Error::io(dir, e))? {
            return Err(Error::io(dir, std::io::ErrorKind::NotFound.into()));
        }
        Ok(EpochReader {
            dir: SegmentDir {
                backend,
                path: dir.to_path_buf(),
            },
            mode,
        })
    }

    /// The newest epoch's state, found from the newest segment (bounded by that epoch's size).
    pub fn restore(&self) -> Result<Restored> {
        let (current, info) = self.dir.newest_epoch()?;
        let updates = Updates::new(
            self.dir.clone(),
            info.id,
            current.segments.clone(),
            current.snapshot.pos.end,
            false,
            self.mode,
        );
        Ok(Restored {
            epoch: info,
            snapshot: current.snapshot.state,
            updates,
            report: RecoveryReport::default(),
        })
    }

    /// The retained epochs, newest first (following the snapshots' back-pointers).
    pub fn epochs(&self) -> Result<Vec<EpochInfo>> {
        self.dir.epochs()
    }

    /// Copies the directory into `dest` (absent or empty) as a writer in another process goes
    /// on: the segments up to the end of the last complete entry of the newest one, and the
    /// checkpoints naming copied epochs (FORMAT.md §11.12). Returns where the copy ends.
    pub fn copy_to(&self, dest: &Path) -> Result<CopyReport> {
        copy::prepare_dest(&*self.dir.backend, dest)?;
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self
                .end()
                .and_then(|end| copy::copy_through(&self.dir, dest, end));
            match result {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && tries < COPY_TRIES => {}
                r => return r,
            }
        }
    }

    /// The end of the last complete entry of the newest segment.
    fn end(&self) -> Result<Position> {
        let newest = *self.dir.segments()?.last().ok_or_else(|| Error::NoStore {
            dir: self.dir.path.clone(),
        })?;
        let path = self.dir.seg(newest);
        let mut r = LogReader::open(&*self.dir.backend, &path, false)?;
        let len = r.file_len()?;
        let offset = r
            .last_entry_before(len)?
            .map_or(FILE_HEADER_LEN as u64, |e| e.end);
        Ok(Position {
            segment: newest,
            offset,
        })
    }

    /// The checkpoints, in the order they were saved.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        checkpoints::read(&*self.dir.backend, &self.dir.path)
    }

    /// The state of retained epoch `id`.
    pub fn read_epoch(&self, id: u64) -> Result<Restored> {
        let newest = self.dir.segments()?.last().copied();
        self.dir.read_epoch(id, newest, self.mode)
    }
}
