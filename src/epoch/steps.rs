//! The multi-step changes of a store directory, each crash-safe: starting a segment
//! (temporary file, sync, rename), setting segments aside after a fall-back, deleting them for
//! retention, and rewinding; and the names and numbers they work with (FORMAT.md §11.4,
//! §11.6, §11.8, §11.13).

use std::path::Path;

use super::dir::{
    BROKEN_SUFFIX, REWIND_FILE, REWOUND_SUFFIX, SEGMENT_TAG, TMP_SUFFIX, parse_segment_name,
    segment_path, with_suffix,
};
use super::entry::{ContinueHead, SegmentStart, encode_continue};
use super::intent;
use super::options::Options;
use super::read::{FellBack, SegmentDir, Start};
use crate::backend::Backend;
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{BASE_VERSION, LogOptions, LogWriter, TailPolicy, random_file_id};

pub(super) fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Renames the segments numbered `from..=to` aside (suffix `.broken`), newest first, and
/// describes them. Idempotent: segments renamed already are counted, not renamed again.
pub(super) fn set_aside(dir: &SegmentDir, from: u64, to: u64, cause: String) -> Result<FellBack> {
    let names = dir.backend.list(&dir.path).map_err(io_at(&dir.path))?;
    let mut fell = FellBack {
        cause,
        segments: Vec::new(),
        bytes: 0,
    };
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| any_segment_number(n))
        .filter(|s| (from..=to).contains(s))
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    for seq in seqs.into_iter().rev() {
        let path = dir.seg(seq);
        let aside = with_suffix(&path, BROKEN_SUFFIX);
        if dir.backend.exists(&path).map_err(io_at(&path))? {
            fell.bytes += dir.file_len(seq).unwrap_or(0);
            dir.backend.rename(&path, &aside).map_err(io_at(&path))?;
        }
        fell.segments.push(aside);
    }
    fell.segments.reverse();
    Ok(fell)
}

/// Deletes every segment below `below` (listed regardless of the intent), then the `RETIRE`
/// intent that announced it. Idempotent: finishes an interrupted retention.
pub(super) fn retire_below(dir: &SegmentDir, below: u64) -> Result<()> {
    record_oldest(dir, below)?;
    let names = dir.backend.list(&dir.path).map_err(io_at(&dir.path))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    for seq in seqs.into_iter().take_while(|&s| s < below) {
        let p = dir.seg(seq);
        dir.backend.remove(&p).map_err(io_at(&p))?;
    }
    intent::remove(&*dir.backend, &dir.path, intent::RETIRE_FILE)
}

/// The id after `id`; ids and segment numbers come from disk, so reaching the end is an error,
/// not an overflow.
pub(super) fn next_id(id: u64, what: &str) -> Result<u64> {
    id.checked_add(1)
        .ok_or_else(|| Error::Overflow(format!("{what} are exhausted")))
}

/// Creates segment `seq` holding `first` as its first entry: written to a temporary file,
/// synced, then renamed into place (durable on return), ready for appends.
/// Creates the segment file `path` (a temporary name) holding `first` as its first entry,
/// synced; on failure the file is removed at once (it may hold a whole snapshot: on a full disk
/// it keeps the disk full).
pub(super) fn create_segment_file(
    dir: &SegmentDir,
    options: &Options,
    path: &Path,
    first: &[u8],
) -> Result<LogWriter> {
    create_segment_file_version(dir, options, path, first, BASE_VERSION)
}

/// [`create_segment_file`] with the frame header's format `version`.
pub(super) fn create_segment_file_version(
    dir: &SegmentDir,
    options: &Options,
    path: &Path,
    first: &[u8],
    version: u16,
) -> Result<LogWriter> {
    let log_options = LogOptions {
        file_id: random_file_id(),
        block_size: options.block_size,
        tag: SEGMENT_TAG,
    };
    let created = LogWriter::create_version(&*dir.backend, path, &log_options, version);
    let written = created.and_then(|mut w| {
        w.set_write_buffer(options.write_buffer);
        w.append(first)?;
        w.sync()?;
        Ok(w)
    });
    if written.is_err() {
        remove_quietly(dir, path);
    }
    written
}

/// Removes `path` if it exists, ignoring failures (cleanup after an error already reported).
pub(super) fn remove_quietly(dir: &SegmentDir, path: &Path) {
    if dir.backend.exists(path).unwrap_or(false) {
        let _ = dir.backend.remove(path);
    }
}

pub(super) fn start_segment(
    dir: &SegmentDir,
    options: &Options,
    seq: u64,
    first: &[u8],
) -> Result<LogWriter> {
    start_segment_with(dir, options, seq, |tmp| {
        create_segment_file(dir, options, tmp, first)
    })
}

/// [`start_segment`] with the file (under its temporary name) made by `create`.
pub(super) fn start_segment_with(
    dir: &SegmentDir,
    options: &Options,
    seq: u64,
    create: impl FnOnce(&Path) -> Result<LogWriter>,
) -> Result<LogWriter> {
    let path = segment_path(&dir.path, seq);
    let tmp = with_suffix(&path, TMP_SUFFIX);
    let written = create(&tmp).and_then(|w| {
        dir.backend.rename(&tmp, &path).map_err(io_at(&tmp))?;
        Ok(w)
    });
    let mut writer = match written {
        Ok(w) => w,
        Err(e) => {
            remove_quietly(dir, &tmp);
            return Err(e);
        }
    };
    writer.set_path(&path);
    writer.set_reserve_step(options.reserve_bytes);
    Ok(writer)
}

/// The segments to give up when the newest epoch's start is damaged: the newest segment, and
/// if it is a readable continuation, every segment back to the epoch's snapshot segment.
pub(super) fn damaged_epoch_segments(dir: &SegmentDir, seqs: &[u64]) -> Vec<u64> {
    let Some(&newest) = seqs.last() else {
        return Vec::new();
    };
    let from = match dir.read_start(newest, false) {
        Ok(Start {
            head: SegmentStart::Continue(c),
            ..
        }) => c.epoch_segment.min(newest),
        _ => newest,
    };
    seqs.iter().copied().filter(|&s| s >= from).collect()
}

/// Whether segments were set aside in `dir` (by a fallback or a rewind).
pub(super) fn any_set_aside(backend: &dyn Backend, dir: &Path) -> Result<bool> {
    Ok(backend
        .list(dir)
        .map_err(io_at(dir))?
        .iter()
        .any(|n| any_segment_number(n).is_some() && parse_segment_name(n).is_none()))
}

/// The highest segment number among the names in `dir`, set-aside ones included.
pub(super) fn highest_segment_name(backend: &dyn Backend, dir: &Path) -> Result<u64> {
    Ok(backend
        .list(dir)
        .map_err(io_at(dir))?
        .iter()
        .filter_map(|n| any_segment_number(n))
        .max()
        .unwrap_or(0))
}

/// The number of a segment file name, with or without a set-aside suffix.
pub(super) fn any_segment_number(name: &str) -> Option<u64> {
    let base = name
        .strip_suffix(BROKEN_SUFFIX)
        .or_else(|| name.strip_suffix(REWOUND_SUFFIX))
        .unwrap_or(name);
    parse_segment_name(base)
}

/// A rewind in progress (the `REWIND` file, FORMAT.md §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RewindIntent {
    pub(super) epoch: u64,
    pub(super) cut_from: u64,
    pub(super) high_epoch: u64,
    pub(super) high_segment: u64,
}

const REWIND_MAGIC: [u8; 8] = *b"SLREWIND";
const REWIND_LEN: usize = 8 + 4 * 8 + 4;

impl RewindIntent {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = REWIND_MAGIC.to_vec();
        for v in [
            self.epoch,
            self.cut_from,
            self.high_epoch,
            self.high_segment,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub(super) fn read(backend: &dyn Backend, path: &Path) -> Result<Self> {
        let f = backend.open_read(path).map_err(io_at(path))?;
        let len = f.len().map_err(io_at(path))?;
        if len != REWIND_LEN as u64 {
            return Err(Error::corrupt(path, 0, CorruptKind::Payload));
        }
        let mut b = vec![0u8; REWIND_LEN];
        let n = f.read_full_at(&mut b, 0).map_err(io_at(path))?;
        RewindIntent::decode(b.get(..n).unwrap_or_default(), path)
    }

    /// Decodes the bytes of a `REWIND` file; anything but a whole intent with its checksum is
    /// corruption at offset 0.
    pub(crate) fn decode(b: &[u8], path: &Path) -> Result<Self> {
        let bad = || Error::corrupt(path, 0, CorruptKind::Payload);
        if b.len() != REWIND_LEN || b.get(..8) != Some(&REWIND_MAGIC[..]) {
            return Err(bad());
        }
        let field = |i: usize| crate::frame::read_u64(b, 8 + 8 * i).ok_or_else(bad);
        let crc = crate::frame::read_u32(b, REWIND_LEN - 4);
        if crc != b.get(..REWIND_LEN - 4).map(crc32fast::hash) {
            return Err(bad());
        }
        Ok(RewindIntent {
            epoch: field(0)?,
            cut_from: field(1)?,
            high_epoch: field(2)?,
            high_segment: field(3)?,
        })
    }

    /// Its fields, in file order.
    #[cfg(feature = "internals")]
    pub(crate) fn fields(&self) -> [u64; 4] {
        [
            self.epoch,
            self.cut_from,
            self.high_epoch,
            self.high_segment,
        ]
    }

    /// Makes the intent durable (temporary file, sync, rename).
    pub(super) fn write(&self, dir: &SegmentDir) -> Result<()> {
        let path = dir.path.join(REWIND_FILE);
        let tmp = with_suffix(&path, TMP_SUFFIX);
        if dir.backend.exists(&tmp).map_err(io_at(&tmp))? {
            dir.backend.remove(&tmp).map_err(io_at(&tmp))?;
        }
        let f = dir.backend.create(&tmp).map_err(io_at(&tmp))?;
        f.write_at(&self.encode(), 0)
            .and_then(|()| f.sync_data())
            .map_err(io_at(&tmp))?;
        dir.backend.rename(&tmp, &path).map_err(io_at(&tmp))
    }
}

/// Carries out (or finishes) a rewind: renames the later epochs' segments aside, starts the
/// continuation segment if it does not exist yet, then removes the intent. Idempotent.
/// Returns the new active segment's writer, its number, the epoch's snapshot segment and the
/// epoch's creation time.
pub(super) fn finish_rewind(
    dir: &SegmentDir,
    options: &Options,
    intent: &RewindIntent,
) -> Result<(LogWriter, u64, u64, u64)> {
    let new_seq = next_id(intent.high_segment, "segment numbers")?;
    // Newest first: a reader in another process always sees some committed epoch.
    for seq in dir.segments()?.into_iter().rev() {
        if seq >= intent.cut_from && seq <= intent.high_segment {
            let from = dir.seg(seq);
            let to = with_suffix(&from, REWOUND_SUFFIX);
            dir.backend.rename(&from, &to).map_err(io_at(&from))?;
        }
    }
    let seqs = dir.segments()?;
    let prev = seqs
        .iter()
        .copied()
        .filter(|&s| s < intent.cut_from)
        .max()
        .ok_or(Error::EpochNotRetained {
            epoch: intent.epoch,
        })?;
    let prev_start = dir.read_start(prev, true)?;
    let prev_at = prev_start.pos.start;
    let (epoch_segment, _, head) = dir.epoch_start_of(prev, prev_start, true)?;
    if head.epoch != intent.epoch {
        return Err(Error::corrupt(
            dir.seg(prev),
            prev_at,
            CorruptKind::BrokenChain,
        ));
    }
    let new_path = dir.seg(new_seq);
    let writer = if dir.backend.exists(&new_path).map_err(io_at(&new_path))? {
        let (mut w, _) = LogWriter::open(&*dir.backend, &new_path, TailPolicy::TolerateTorn)?;
        w.set_write_buffer(options.write_buffer);
        w
    } else {
        let cont = ContinueHead {
            epoch: intent.epoch,
            epoch_segment,
            prev_segment: prev,
            created_ms: options.clock.now_ms(),
            high_epoch: intent.high_epoch,
            high_segment: new_seq,
        };
        start_segment(dir, options, new_seq, &encode_continue(&cont))?
    };
    record_newest(dir, new_seq, 0);
    let intent_path = dir.path.join(REWIND_FILE);
    dir.backend
        .remove(&intent_path)
        .map_err(io_at(&intent_path))?;
    Ok((writer, new_seq, epoch_segment, head.created_ms))
}

/// The directory's manifest (FORMAT.md §11.13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Manifest {
    /// The oldest segment kept.
    pub(super) oldest: u64,
    /// The newest segment.
    pub(super) newest: u64,
    /// The newest segment's length when a writer closed it cleanly (0: not closed since it
    /// was recorded).
    pub(super) closed_len: u64,
}

/// The manifest, if the directory has one (stores written before it have none).
pub(super) fn read_manifest(dir: &SegmentDir) -> Result<Option<Manifest>> {
    let f = intent::read(
        &*dir.backend,
        &dir.path,
        intent::MANIFEST_FILE,
        intent::MANIFEST_MAGIC,
        3,
    )?;
    Ok(match f.as_deref() {
        Some(&[oldest, newest, closed_len]) => Some(Manifest {
            oldest,
            newest,
            closed_len,
        }),
        _ => None,
    })
}

/// Makes `m` the directory's manifest (durable).
pub(super) fn write_manifest(dir: &SegmentDir, m: Manifest) -> Result<()> {
    intent::write(
        &*dir.backend,
        &dir.path,
        intent::MANIFEST_FILE,
        intent::MANIFEST_MAGIC,
        &[m.oldest, m.newest, m.closed_len],
    )
}

/// The lowest number of the run of segment numbers (set-aside names included) that ends at
/// `newest` without a gap: what a first manifest can claim.
fn contiguous_from(dir: &SegmentDir, newest: u64) -> Result<u64> {
    let mut present: Vec<u64> = dir
        .backend
        .list(&dir.path)
        .map_err(io_at(&dir.path))?
        .iter()
        .filter_map(|n| any_segment_number(n))
        .filter(|&s| s <= newest)
        .collect();
    present.sort_unstable();
    present.dedup();
    let mut oldest = newest;
    for &s in present.iter().rev() {
        if s.checked_add(1) == Some(oldest) || s == oldest {
            oldest = s;
        } else {
            break;
        }
    }
    Ok(oldest)
}

/// Records that segment `newest` exists (after it was renamed into place), with `closed_len`
/// (0 unless a writer just closed it cleanly at that length). Best effort: a manifest that
/// names an older newest segment, or no clean close, only checks less.
pub(super) fn record_newest(dir: &SegmentDir, newest: u64, closed_len: u64) {
    let oldest = match read_manifest(dir) {
        Ok(Some(m)) => Ok(m.oldest),
        Ok(None) => contiguous_from(dir, newest),
        Err(e) => Err(e),
    };
    if let Ok(oldest) = oldest {
        let m = Manifest {
            oldest: oldest.min(newest),
            newest,
            closed_len,
        };
        let _ = write_manifest(dir, m);
    }
}

/// Records that no segment below `oldest` is kept any more: done before they are deleted, so
/// the manifest never names a deleted segment.
pub(super) fn record_oldest(dir: &SegmentDir, oldest: u64) -> Result<()> {
    match read_manifest(dir)? {
        Some(m) => write_manifest(
            dir,
            Manifest {
                oldest: oldest.min(m.newest),
                ..m
            },
        ),
        None => Ok(()),
    }
}

/// Checks the directory against its manifest: the newest segment it names, and every number
/// from its oldest on, must exist under some name (`.seg`, or set aside as `.broken` or
/// `.rewound`); a cleanly closed newest segment must be at least as long as it was closed. A
/// missing segment was deleted or lost (`BrokenChain`); a shorter one was cut (`Incomplete`
/// at the length it has).
pub(super) fn check_manifest(dir: &SegmentDir) -> Result<()> {
    let Some(m) = read_manifest(dir)? else {
        return Ok(());
    };
    let names = dir.backend.list(&dir.path).map_err(io_at(&dir.path))?;
    let mut present: Vec<u64> = names.iter().filter_map(|n| any_segment_number(n)).collect();
    present.sort_unstable();
    present.dedup();
    let below = dir.retired_below()?;
    let from = m.oldest.max(below);
    let newest = m.newest;
    // Every number from `from` to `newest`, without walking a range a damaged file could make
    // huge: compare the count of present numbers in the range with its width.
    let in_range = present
        .iter()
        .filter(|&&s| s >= from && s <= newest)
        .count() as u64;
    if newest >= from && in_range != (newest - from).saturating_add(1) {
        let missing = (from..=newest)
            .find(|s| present.binary_search(s).is_err())
            .unwrap_or(newest);
        return Err(Error::corrupt(
            dir.seg(missing),
            0,
            CorruptKind::BrokenChain,
        ));
    }
    if m.closed_len > 0 && names.iter().any(|n| parse_segment_name(n) == Some(newest)) {
        let len = dir.file_len(newest)?;
        if len < m.closed_len {
            return Err(Error::corrupt(
                dir.seg(newest),
                len,
                CorruptKind::Incomplete,
            ));
        }
    }
    Ok(())
}
