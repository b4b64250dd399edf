//! Verifying a store directory: every checksum and structural rule of every file, read-only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{Backend, LockMode};
use crate::epoch::{
    CHECKPOINTS_FILE, Decoded, EpochReader, RecoveryMode, decode_entry, segment_number,
};
use crate::error::{CorruptKind, Error, Result};
use crate::frame::{FILE_HEADER_LEN, LogReader};
use crate::store::{decode_state, decode_transaction};

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The damaged file.
    pub file: PathBuf,
    /// Where the damage starts.
    pub offset: u64,
    /// What rule the bytes broke.
    pub kind: CorruptKind,
    /// Whether it is a torn tail (an unfinished last write, which a writer cuts on open) rather
    /// than corruption in the middle.
    pub torn_tail: bool,
}

/// What [`verify`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files checked.
    pub files: usize,
    /// Entries that passed every check.
    pub entries: u64,
    /// Problems, in file and offset order.
    pub findings: Vec<Finding>,
    /// Whether a writer held the directory while it was checked (then an unfinished last
    /// write in the newest segment is a write in progress, not a finding).
    pub writer_running: bool,
    /// Crash residue that the next writer's open cuts, removes or finishes, described: an
    /// unfinished intent (`REWIND`, `FALLBACK`, `RETIRE`, `SYNCFAIL`) or a `.tmp` file. A torn
    /// tail of the newest segment is residue too; it is in `findings` with `torn_tail` set.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether no damage was found: crash residue (a torn tail of the newest segment, the
    /// files in `notes`) is what every crash can leave, and is clean.
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.torn_tail)
    }

    /// Whether nothing at all was found, crash residue included (`verify --strict`).
    pub fn is_pristine(&self) -> bool {
        self.findings.is_empty() && self.notes.is_empty()
    }
}

/// Files a crash can leave that the next writer's open finishes or removes, with what it
/// does about each.
pub(super) fn residue_notes(names: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for n in names {
        let what = match n.as_str() {
            "REWIND" => "an unfinished rewind; the next open finishes it",
            "FALLBACK" => "an unfinished fall-back; the next open finishes it",
            "RETIRE" => "an unfinished retention; the next open finishes deleting old segments",
            "SYNCFAIL" => {
                "a failed fsync was recorded; the next open cuts the newest segment at its \
                 certified end"
            }
            n if n.ends_with(".tmp") => "a temporary file; the next open removes it",
            _ => continue,
        };
        notes.push(format!("{n}: {what}"));
    }
    notes
}

/// Checks every segment of the store directory `dir`: the frame layer's checksums and record
/// rules, the epoch layer's structure (first entries, chains of segments, seals, epochs), and
/// that every transaction and snapshot decodes; and the checkpoint registry (it decodes, and
/// names only retained epochs). Reads only; safe beside a running writer.
/// `progress(done, total)` is called after each file. An error (rather than a finding) means
/// verify could not run: a missing directory, not a statelog directory, an incompatible
/// format version, an I/O error.
///
/// ```
/// use std::sync::Arc;
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
/// # store.close()?;
/// let backend = Arc::new(statelog::backend::FsBackend::new());
/// let report = statelog::tools::verify(backend, dir.path(), &mut |_done, _total| {})?;
/// assert!(report.is_clean());
/// # Ok(())
/// # }
/// ```
pub fn verify(
    backend: Arc<dyn Backend>,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<VerifyReport> {
    verify_with(backend, dir, progress, true)
}

/// [`verify`] through the file system, without progress reports: checks every segment of
/// the store directory `dir`.
///
/// ```
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # drop(statelog::Store::open(dir.path(), statelog::StoreOptions::default())?);
/// let report = statelog::tools::verify_dir(dir.path())?;
/// assert!(report.is_clean(), "{:?}", report.findings);
/// # Ok(())
/// # }
/// ```
pub fn verify_dir(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    verify(
        Arc::new(crate::backend::FsBackend::new()),
        dir.as_ref(),
        &mut |_, _| {},
    )
}

/// Like [`verify`], for a directory of the epoch layer alone (an [`EpochLog`] whose updates
/// and snapshots are the caller's own bytes, not store transactions): every rule but the
/// store payloads' decoding.
///
/// [`EpochLog`]: crate::epoch::EpochLog
pub fn verify_epochs(
    backend: Arc<dyn Backend>,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<VerifyReport> {
    verify_with(backend, dir, progress, false)
}

fn verify_with(
    backend: Arc<dyn Backend>,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
    payloads: bool,
) -> Result<VerifyReport> {
    if !backend.exists(dir).map_err(|e| Error::io(dir, e))? {
        return Err(Error::io(dir, std::io::ErrorKind::NotFound.into()));
    }
    let names = backend.list(dir).map_err(|e| Error::io(dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| segment_number(n)).collect();
    seqs.sort_unstable();
    // Segments an interrupted retention was deleting are gone (the next open finishes it).
    let below = crate::epoch::retired_below(&backend, dir)?;
    seqs.retain(|&s| s >= below);
    if seqs.is_empty() {
        return Err(Error::NoStore {
            dir: dir.to_path_buf(),
        });
    }
    let writer_running = matches!(
        backend.lock(dir, LockMode::Shared),
        Err(Error::Locked { .. })
    );
    let mut report = VerifyReport {
        writer_running,
        notes: if writer_running {
            Vec::new()
        } else {
            residue_notes(&names)
        },
        ..VerifyReport::default()
    };
    // The newest segment's length at a clean close: an unfinished write below it is not crash
    // residue but damage (the close certified those bytes).
    let closed = if writer_running {
        None
    } else {
        crate::epoch::closed_length(&backend, dir).unwrap_or(None)
    };
    // A segment the manifest names is gone (checked only with no writer running: a writer
    // updates the manifest and the listing one after the other).
    if !writer_running {
        match crate::epoch::check_manifest(&backend, dir) {
            Ok(()) => {}
            Err(Error::Corrupt { file, offset, kind }) => report.findings.push(Finding {
                file,
                offset,
                kind,
                torn_tail: false,
            }),
            Err(e) => return Err(e),
        }
    }
    // The epoch each segment belongs to, for checking CONTINUE entries.
    let mut epoch_of: Vec<(u64, u64)> = Vec::new();
    let newest = seqs.last().copied();
    for (i, &seq) in seqs.iter().enumerate() {
        let file = dir.join(format!("{seq:016x}.seg"));
        let is_newest = Some(seq) == newest;
        let finding = |offset, kind, torn_tail| Finding {
            file: file.clone(),
            offset,
            kind,
            torn_tail,
        };
        let src = backend.open_read(&file).map_err(|e| Error::io(&file, e))?;
        let mut reader = match LogReader::new(src, &file) {
            Ok(r) => r,
            Err(Error::Corrupt { offset, kind, .. }) => {
                report.findings.push(finding(offset, kind, false));
                progress(i + 1, seqs.len());
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut epoch = None;
        let mut sealed = false;
        let mut first = true;
        // While reading a state in parts: what was read of it (with `payloads`), and where
        // its snapshot entry is.
        let mut parts: Option<Vec<u8>> = None;
        let mut parts_at = 0;
        loop {
            // Tolerant reading: damage a later entry proves was synced is an error (corruption);
            // an unfinished last write ends the reading and is reported by `tail()`.
            let entry = match reader.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => {
                    // An unfinished last write of the newest segment is crash residue (a
                    // writer cuts it on open); in an older segment it is damage.
                    if let Some(t) = reader.tail() {
                        if !(is_newest && writer_running) {
                            let certified =
                                closed.is_some_and(|(s, len)| s == seq && t.offset < len);
                            report.findings.push(finding(
                                t.offset,
                                CorruptKind::Incomplete,
                                is_newest && !certified,
                            ));
                        }
                    } else if is_newest && !writer_running {
                        let (at, len) = (reader.position(), reader.file_len()?);
                        if len > at {
                            report.notes.push(format!(
                                "{}: {} zero bytes after the last entry at {at}: space a \
                                 writer reserved ahead of its data (given back on open)",
                                file.display(),
                                len - at
                            ));
                        }
                    }
                    break;
                }
                Err(Error::Corrupt { offset, kind, .. }) => {
                    report.findings.push(finding(offset, kind, false));
                    if reader.resync()?.is_none() {
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let at = entry.pos.start;
            let rule = |kind| Some(finding(at, kind, false));
            let problem = if sealed {
                // Nothing may follow a seal.
                rule(CorruptKind::BrokenChain)
            } else {
                match decode_entry(entry.payload) {
                    Err(kind) => rule(kind),
                    // The parts of a snapshot's state (FORMAT.md §11.2), up to the last.
                    Ok(d) if parts.is_some() => match d {
                        Decoded::State {
                            epoch: e,
                            last,
                            data,
                        } if Some(e) == epoch => {
                            let mut state = parts.take().unwrap_or_default();
                            if payloads {
                                state.extend_from_slice(data);
                            }
                            if !last {
                                parts = Some(state);
                                None
                            } else if payloads && decode_state(&state).is_err() {
                                Some(finding(parts_at, CorruptKind::Payload, false))
                            } else {
                                None
                            }
                        }
                        Decoded::State { epoch: e, .. } => rule(CorruptKind::WrongEpoch {
                            expected: epoch.unwrap_or(0),
                            found: e,
                        }),
                        _ => {
                            parts = None;
                            rule(CorruptKind::BrokenChain)
                        }
                    },
                    Ok(d) if first => match d {
                        Decoded::Snapshot {
                            head, parts: true, ..
                        } => {
                            epoch = Some(head.epoch);
                            if reader.header().version < 2 {
                                rule(CorruptKind::Payload)
                            } else {
                                parts = Some(Vec::new());
                                parts_at = at;
                                None
                            }
                        }
                        Decoded::Snapshot { head, state, .. } => {
                            epoch = Some(head.epoch);
                            let bad_state =
                                payloads && head.has_state && decode_state(state).is_err();
                            bad_state.then(|| finding(at, CorruptKind::Payload, false))
                        }
                        Decoded::Continue(h) => {
                            epoch = Some(h.epoch);
                            let prev_ok =
                                i.checked_sub(1).and_then(|j| seqs.get(j)) == Some(&h.prev_segment);
                            let start_ok = epoch_of
                                .iter()
                                .any(|&(s, e)| s == h.epoch_segment && e == h.epoch);
                            (!(prev_ok && start_ok))
                                .then(|| finding(at, CorruptKind::BrokenChain, false))
                        }
                        _ => rule(CorruptKind::BrokenChain),
                    },
                    Ok(Decoded::Update { epoch: e, data }) => {
                        if Some(e) != epoch {
                            rule(CorruptKind::WrongEpoch {
                                expected: epoch.unwrap_or(0),
                                found: e,
                            })
                        } else if payloads && decode_transaction(data).is_err() {
                            rule(CorruptKind::Payload)
                        } else {
                            None
                        }
                    }
                    Ok(Decoded::Seal { epoch: e } | Decoded::Close { epoch: e })
                        if Some(e) != epoch =>
                    {
                        rule(CorruptKind::WrongEpoch {
                            expected: epoch.unwrap_or(0),
                            found: e,
                        })
                    }
                    Ok(Decoded::Seal { .. }) => {
                        sealed = true;
                        None
                    }
                    Ok(Decoded::Close { .. }) => None,
                    Ok(_) => rule(CorruptKind::BrokenChain),
                }
            };
            first = false;
            match problem {
                Some(f) => report.findings.push(f),
                None => report.entries += 1,
            }
        }
        if first {
            report.findings.push(finding(
                FILE_HEADER_LEN as u64,
                CorruptKind::Incomplete,
                false,
            ));
        }
        if parts.is_some() {
            // The state's last part is missing.
            report
                .findings
                .push(finding(parts_at, CorruptKind::Incomplete, false));
        }
        if let Some(e) = epoch {
            epoch_of.push((seq, e));
        }
        // Every segment but the newest ends with a seal: one that a later segment of the same
        // epoch follows (a rotation sealed it), and the last of an epoch a newer one follows
        // (the snapshot sealed it). A cut of it, even at an entry boundary, is damage.
        if epoch.is_some() && !is_newest && !sealed {
            report.findings.push(finding(
                FILE_HEADER_LEN as u64,
                CorruptKind::Unsealed,
                false,
            ));
        }
        report.files += 1;
        progress(i + 1, seqs.len());
    }
    check_checkpoints(backend, dir, &mut report)?;
    report
        .findings
        .sort_by(|a, b| (&a.file, a.offset).cmp(&(&b.file, b.offset)));
    Ok(report)
}

/// The checkpoint registry must decode, and every epoch it names must be retained.
fn check_checkpoints(
    backend: Arc<dyn Backend>,
    dir: &Path,
    report: &mut VerifyReport,
) -> Result<()> {
    let reader = EpochReader::open(backend, dir, RecoveryMode::TolerateTornTail)?;
    let list = match reader.checkpoints() {
        Ok(l) => l,
        Err(Error::Corrupt { file, offset, kind }) => {
            report.findings.push(Finding {
                file,
                offset,
                kind,
                torn_tail: false,
            });
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // Damage in the segments was reported above; the chain is what it is.
    let retained: Vec<u64> = reader
        .epochs()
        .map(|l| l.iter().map(|e| e.id).collect())
        .unwrap_or_default();
    for c in list {
        if !retained.contains(&c.epoch) {
            report.findings.push(Finding {
                file: dir.join(CHECKPOINTS_FILE),
                offset: 0,
                kind: CorruptKind::BrokenChain,
                torn_tail: false,
            });
        }
    }
    Ok(())
}
