//! Copying a store directory while a writer goes on (hot backup, FORMAT.md §11.12): the
//! segments up to a position, with the checkpoints that name copied epochs.

use std::path::Path;
use std::sync::Arc;

use super::checkpoints;
use super::dir::{TMP_SUFFIX, segment_name, with_suffix};
use super::options::Position;
use super::read::SegmentDir;
use crate::backend::{Backend, ReadAt};
use crate::error::{Error, Result};

/// What a copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The copy ends here: the last segment copied and the end of its last entry copied.
    pub end: Position,
    /// Segments copied.
    pub segments: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Checkpoints copied.
    pub checkpoints: usize,
}

const CHUNK: usize = 1 << 20;

/// Fails unless `dest` is absent or an empty directory, and creates it.
pub(crate) fn prepare_dest(backend: &dyn Backend, dest: &Path) -> Result<()> {
    let io = |e| Error::io(dest, e);
    if backend.exists(dest).map_err(io)? && !backend.list(dest).map_err(io)?.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "backup destination {} is not empty",
            dest.display()
        )));
    }
    backend.create_dir_all(dest).map_err(io)
}

/// Copies every segment of `dir` up to `end` (whole segments before `end.segment`, the first
/// `end.offset` bytes of that one) and the checkpoints naming copied epochs into the empty
/// directory `dest`, each file through a temporary name, synced and renamed. Sources are all
/// opened before any is read, so retention deleting one afterwards does not matter; a segment
/// deleted before it was opened is an `Io` error with kind `NotFound`, and `dest` is emptied
/// again so the caller can retry from a newer position.
pub(crate) fn copy_through(dir: &SegmentDir, dest: &Path, end: Position) -> Result<CopyReport> {
    let backend = &*dir.backend;
    let seqs: Vec<u64> = dir
        .segments()?
        .into_iter()
        .filter(|&s| s <= end.segment)
        .collect();
    if seqs.last() != Some(&end.segment) {
        let missing = dir.seg(end.segment);
        return Err(Error::io(missing, std::io::ErrorKind::NotFound.into()));
    }
    let mut sources: Vec<(u64, Arc<dyn ReadAt>)> = Vec::new();
    for &seq in &seqs {
        let p = dir.seg(seq);
        sources.push((seq, backend.open_read(&p).map_err(|e| Error::io(&p, e))?));
    }
    let named = checkpoints::read(backend, &dir.path)?;
    let mut report = CopyReport {
        end,
        segments: 0,
        bytes: 0,
        checkpoints: 0,
    };
    let mut written = Vec::new();
    let result = (|| {
        for (seq, src) in &sources {
            let len = if *seq == end.segment {
                end.offset
            } else {
                src.len().map_err(|e| Error::io(dir.seg(*seq), e))?
            };
            let to = dest.join(segment_name(*seq));
            copy_file(backend, &**src, &dir.seg(*seq), &to, len)?;
            written.push(to);
            report.segments += 1;
            report.bytes += len;
        }
        let kept: Vec<_> = named
            .into_iter()
            .filter(|c| seqs.contains(&c.segment))
            .collect();
        if !kept.is_empty() {
            checkpoints::write(backend, dest, &kept)?;
            written.push(dest.join(checkpoints::CHECKPOINTS_FILE));
            report.checkpoints = kept.len();
        }
        Ok(report)
    })();
    if result.is_err() {
        for p in written {
            let _ = backend.remove(&p);
        }
    }
    result
}

/// Copies the first `len` bytes of `src` to a new file `to`, durably.
fn copy_file(
    backend: &dyn Backend,
    src: &dyn ReadAt,
    from: &Path,
    to: &Path,
    len: u64,
) -> Result<()> {
    let tmp = with_suffix(to, TMP_SUFFIX);
    let out = backend.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).unwrap_or(CHUNK).min(CHUNK);
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = src
            .read_full_at(chunk, at)
            .map_err(|e| Error::io(from, e))?;
        if n < want {
            // The source is shorter than the position said: not a copy of a commit.
            return Err(Error::io(from, std::io::ErrorKind::UnexpectedEof.into()));
        }
        out.write_at(chunk, at).map_err(|e| Error::io(&tmp, e))?;
        at += want as u64;
    }
    out.sync_data().map_err(|e| Error::io(&tmp, e))?;
    drop(out);
    backend.rename(&tmp, to).map_err(|e| Error::io(to, e))
}
