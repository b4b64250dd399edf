//! Snapshot states of any size (FORMAT.md §11.2, format version 2): a state that does not fit
//! one entry, or that is written as it is produced, goes into STATE entries after its
//! SNAPSHOT entry, each at most [`PART_BYTES`] long, so neither the writer nor the reader
//! needs an entry over the frame layer's limit, and the writer holds one part at a time.

use std::path::{Path, PathBuf};

use super::entry::{SnapshotHead, encode_snapshot, encode_snapshot_parts, encode_state};
use super::options::Options;
use super::read::SegmentDir;
use super::steps::{create_segment_file, create_segment_file_version, remove_quietly};
use crate::error::{Error, Result};
use crate::frame::LogWriter;

/// State bytes per STATE entry: what a [`StateWriter`] holds before it writes them. Writing
/// a part takes about three times this (the part, the entry, its framed records): 4 MiB
/// keeps that a small share of a compaction's memory (16 MiB parts were 67 MiB of it).
pub const PART_BYTES: usize = 4 << 20;

/// The most bytes of a snapshot part written to its file before they are synced: a commit's
/// fsync beside a compaction waits for at most this much of the image to reach the disk.
const SYNC_STEP: usize = 1 << 20;

/// The frame format version of a segment whose state is in parts.
const PARTS_VERSION: u16 = 2;

/// Writes a snapshot segment file from a state given in pieces of any size: a state of at most
/// [`PART_BYTES`] in the SNAPSHOT entry itself (a version 1 file, as before parts existed),
/// a larger one in STATE entries of [`PART_BYTES`] (a version 2 file). The file is created
/// when the first part is full, or when it is finished ([`SnapshotTicket::prepared`](super::SnapshotTicket::prepared)); it is removed on failure or
/// if the writer is dropped unfinished.
pub struct StateWriter {
    dir: SegmentDir,
    options: Options,
    path: PathBuf,
    head: SnapshotHead,
    writer: Option<LogWriter>,
    part: Vec<u8>,
    scratch: Vec<u8>,
    written: u64,
    done: bool,
}

impl std::fmt::Debug for StateWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWriter")
            .field("path", &self.path)
            .field("epoch", &self.head.epoch)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl StateWriter {
    pub(super) fn new(
        dir: &SegmentDir,
        options: &Options,
        path: &Path,
        head: SnapshotHead,
    ) -> Self {
        StateWriter {
            dir: dir.clone(),
            options: options.clone(),
            path: path.to_path_buf(),
            head,
            writer: None,
            part: Vec::new(),
            scratch: Vec::new(),
            written: 0,
            done: false,
        }
    }

    /// Appends `data` to the state.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.part.len() >= PART_BYTES {
                self.flush_part(false)?;
            }
            if self.part.capacity() == 0 {
                self.part.reserve_exact(PART_BYTES);
            }
            let n = (PART_BYTES - self.part.len()).min(data.len());
            let (now, rest) = data.split_at(n);
            self.part.extend_from_slice(now);
            self.written += n as u64;
            data = rest;
        }
        Ok(())
    }

    /// The state's bytes so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the held part as a STATE entry (the file is created with the first).
    fn flush_part(&mut self, last: bool) -> Result<()> {
        let r = self.try_flush_part(last);
        if r.is_err() {
            self.abandon();
        }
        r
    }

    fn try_flush_part(&mut self, last: bool) -> Result<()> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let first = encode_snapshot_parts(&self.head);
                let w = create_segment_file_version(
                    &self.dir,
                    &self.options,
                    &self.path,
                    &first,
                    PARTS_VERSION,
                )?;
                self.writer.insert(w)
            }
        };
        encode_state(&mut self.scratch, self.head.epoch, last, &self.part);
        // Each part goes to the disk as it is written, in steps of SYNC_STEP each synced
        // before the next is written, so commits' fsyncs on the same disk never queue behind
        // a flush of more than a step (the file is not durable before `finish` in any case:
        // it has its temporary name).
        writer.append_synced_in_steps(&self.scratch, SYNC_STEP)?;
        self.part.clear();
        Ok(())
    }

    /// Ends the state and syncs the file; returns its writer, ready for appends.
    pub(super) fn finish(mut self) -> Result<LogWriter> {
        let r = if self.writer.is_none() {
            // Small: the state in the SNAPSHOT entry itself.
            let first = encode_snapshot(&self.head, Some(&self.part));
            create_segment_file(&self.dir, &self.options, &self.path, &first)
        } else {
            self.flush_part(true)
                .and_then(|()| match self.writer.take() {
                    Some(mut w) => w.sync().map(|_| w),
                    None => Err(Error::InvalidArgument(
                        "the snapshot file was given up after an earlier failure".into(),
                    )),
                })
        };
        if r.is_err() {
            self.abandon();
        }
        self.done = true;
        r
    }

    /// Removes the file (after a failure, or when dropped unfinished).
    fn abandon(&mut self) {
        self.writer = None;
        self.done = true;
        remove_quietly(&self.dir, &self.path);
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        if !self.done {
            self.abandon();
        }
    }
}

/// Creates the snapshot segment file `path` with `head` and the whole `state`, as a
/// [`StateWriter`] writes it: in the SNAPSHOT entry up to [`PART_BYTES`] (a version 1 file),
/// else in parts. Synced on return; removed on failure.
pub(super) fn create_snapshot_file(
    dir: &SegmentDir,
    options: &Options,
    path: &Path,
    head: &SnapshotHead,
    state: &[u8],
) -> Result<LogWriter> {
    let mut w = StateWriter::new(dir, options, path, *head);
    w.write(state)?;
    w.finish()
}
