//! Reading grailbio `stateio` files: logio entries of `[type u8][epoch u64 LE][data]`, type 1
//! an update of the epoch named, type 2 a snapshot that starts a new epoch (whose id is the
//! snapshot's offset) and names the epoch it closes. The first epoch, id 0, has no snapshot.
#![deny(clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use super::logio::LogioReader;
use crate::backend::{Backend, ReadAt};
use crate::error::{CorruptKind, Error, Result};
use crate::tools::Finding;

const UPDATE: u8 = 1;
const SNAPSHOT: u8 = 2;

/// Bytes before a stateio entry's data: its type and epoch.
const ENTRY_HEAD: usize = 9;

/// One valid stateio entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateioEntry {
    /// A snapshot: it starts epoch `offset`.
    Snapshot {
        /// Offset of its first logio record: the id of the epoch it starts.
        offset: u64,
        /// The epoch it closes (informational in stateio).
        prev: u64,
        /// The state.
        data: Vec<u8>,
    },
    /// An update of the current epoch.
    Update {
        /// Offset of its first logio record.
        offset: u64,
        /// The epoch it belongs to.
        epoch: u64,
        /// The update.
        data: Vec<u8>,
    },
}

/// Reads a stateio file entry by entry. Damaged records, malformed entries (shorter than 9
/// bytes, an unknown type) and updates naming another epoch than the current one are skipped
/// and recorded as [`Finding`]s, as `statelog verify` reports damage.
///
/// ```
/// use std::sync::Arc;
/// use statelog::tools::stateio::{StateioEntry, StateioReader};
///
/// // An empty file is an empty stateio log.
/// let mut r = StateioReader::new(Arc::new(Vec::new()), "empty.state").unwrap();
/// assert_eq!(r.next_entry().unwrap(), None);
/// assert_eq!(r.current_epoch(), 0);
/// ```
#[derive(Debug)]
pub struct StateioReader {
    log: LogioReader,
    epoch: u64,
    findings: Vec<Finding>,
    entries: u64,
}

impl StateioReader {
    /// A reader of the whole file `src`, named `path` in findings and errors.
    pub fn new(src: Arc<dyn ReadAt>, path: impl AsRef<Path>) -> Result<Self> {
        Ok(StateioReader {
            log: LogioReader::new(src, path)?,
            epoch: 0,
            findings: Vec::new(),
            entries: 0,
        })
    }

    /// Opens `path` through `backend`.
    pub fn open(backend: &dyn Backend, path: &Path) -> Result<Self> {
        let src = backend.open_read(path).map_err(|e| Error::io(path, e))?;
        Self::new(src, path)
    }

    /// The next valid entry; `None` at the end of the file. An error is an I/O error.
    pub fn next_entry(&mut self) -> Result<Option<StateioEntry>> {
        while let Some(e) = self.log.next_entry()? {
            let finding = |kind| Finding {
                file: self.log.path().to_path_buf(),
                offset: e.offset,
                kind,
                torn_tail: false,
            };
            let (Some(&kind), Some(head)) = (e.data.first(), e.data.get(1..ENTRY_HEAD)) else {
                self.findings.push(finding(CorruptKind::Payload));
                continue;
            };
            let epoch = head
                .iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b));
            let data = e.data.get(ENTRY_HEAD..).unwrap_or_default().to_vec();
            match kind {
                UPDATE if epoch == self.epoch => {
                    self.entries += 1;
                    return Ok(Some(StateioEntry::Update {
                        offset: e.offset,
                        epoch,
                        data,
                    }));
                }
                UPDATE => self.findings.push(finding(CorruptKind::WrongEpoch {
                    expected: self.epoch,
                    found: epoch,
                })),
                SNAPSHOT => {
                    self.entries += 1;
                    self.epoch = e.offset;
                    return Ok(Some(StateioEntry::Snapshot {
                        offset: e.offset,
                        prev: epoch,
                        data,
                    }));
                }
                other => self.findings.push(finding(CorruptKind::EntryKind(other))),
            }
        }
        Ok(None)
    }

    /// The current epoch: the offset of the last snapshot read, 0 before any.
    pub fn current_epoch(&self) -> u64 {
        self.epoch
    }

    /// Valid entries returned so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Logio records of the entries read so far (those skipped as malformed included).
    pub fn records(&self) -> u64 {
        self.log.records()
    }

    /// Damage found so far: the logio layer's and this layer's, in offset order.
    pub fn findings(&self) -> Vec<Finding> {
        let mut all: Vec<Finding> = self
            .log
            .findings()
            .iter()
            .chain(&self.findings)
            .cloned()
            .collect();
        all.sort_by_key(|f| f.offset);
        all
    }
}

/// One epoch of a stateio file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateioEpoch {
    /// Its id: the offset of its snapshot (0 for the first epoch, which has none).
    pub id: u64,
    /// Its snapshot (`None` for a first epoch without one; possibly empty).
    pub snapshot: Option<Vec<u8>>,
    /// Its updates, in order.
    pub updates: Vec<Vec<u8>>,
}

/// What [`read_stateio`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateioFile {
    /// The epochs, in file order (a first epoch without snapshot only if it has updates).
    pub epochs: Vec<StateioEpoch>,
    /// Valid entries read.
    pub entries: u64,
    /// Logio records of those entries.
    pub records: u64,
    /// Damage, in offset order.
    pub findings: Vec<Finding>,
}

impl StateioFile {
    /// Whether no damage was found, a torn tail aside (what an interrupted write leaves).
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.torn_tail)
    }
}

/// Reads the stateio file `path` through `backend`, whole, into memory (use
/// [`StateioReader`] to stream it).
///
/// ```
/// use std::sync::Arc;
/// use statelog::backend::FsBackend;
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("empty.state");
/// # std::fs::write(&path, b"").unwrap();
/// let file = statelog::tools::stateio::read_stateio(&FsBackend::new(), &path)?;
/// assert!(file.epochs.is_empty() && file.is_clean());
/// # Ok(())
/// # }
/// ```
pub fn read_stateio(backend: &dyn Backend, path: &Path) -> Result<StateioFile> {
    let mut r = StateioReader::open(backend, path)?;
    read_all(&mut r)
}

/// Reads every entry of `r` into epochs.
pub(super) fn read_all(r: &mut StateioReader) -> Result<StateioFile> {
    let mut epochs: Vec<StateioEpoch> = Vec::new();
    while let Some(entry) = r.next_entry()? {
        match entry {
            StateioEntry::Snapshot { offset, data, .. } => epochs.push(StateioEpoch {
                id: offset,
                snapshot: Some(data),
                updates: Vec::new(),
            }),
            StateioEntry::Update { data, .. } => match epochs.last_mut() {
                Some(e) => e.updates.push(data),
                None => epochs.push(StateioEpoch {
                    id: 0,
                    snapshot: None,
                    updates: vec![data],
                }),
            },
        }
    }
    Ok(StateioFile {
        epochs,
        entries: r.entries(),
        records: r.records(),
        findings: r.findings(),
    })
}
