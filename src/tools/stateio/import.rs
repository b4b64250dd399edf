//! Importing a stateio file into a new store directory: each stateio epoch becomes an epoch
//! of the epoch layer, written through [`EpochLog`], holding one bytes table
//! [`IMPORT_TABLE`]:
//!
//! - the epoch's snapshot (state) is the row `snapshot` (absent for a first epoch without
//!   snapshot), with the row `epoch`, the stateio epoch id in decimal;
//! - each update is one transaction writing the row `update/` + its 1-based number in the
//!   epoch, 20 decimal digits (so rows sort in update order).
//!
//! The state of an imported epoch is therefore its snapshot and all its updates, as bytes;
//! `statelog dump --epoch N` shows any of them.
#![deny(clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use super::reader::{StateioEntry, StateioReader};
use crate::backend::Backend;
use crate::epoch::{Durability, EpochLog, Options, Retention};
use crate::error::{Error, Result};
use crate::store::BytesTableImage;
use crate::tools::Finding;

/// The bytes table an import writes.
pub const IMPORT_TABLE: &str = "stateio";

/// One imported epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedEpoch {
    /// The stateio epoch id (the offset of its snapshot; 0 for a first epoch without one).
    pub source: u64,
    /// The epoch it became in the store directory.
    pub epoch: u64,
    /// Whether it had a snapshot.
    pub snapshot: bool,
    /// Its updates.
    pub updates: u64,
}

/// What [`import_stateio`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The epochs written, in order.
    pub epochs: Vec<ImportedEpoch>,
    /// Valid stateio entries read (snapshots and updates).
    pub entries: u64,
    /// Logio records of those entries.
    pub records: u64,
    /// Damage in the source, skipped (as `statelog verify` reports it), in offset order.
    pub findings: Vec<Finding>,
}

impl ImportReport {
    /// Whether the source had no damage, a torn tail aside.
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.torn_tail)
    }
}

/// Imports the stateio file `src` into `dir`, which must be absent or empty, through
/// `backend`: every epoch in file order, with its snapshot and updates (see the module
/// documentation for the mapping). Damaged records are skipped and reported; the result is a
/// store directory (every epoch kept) that [`Store`](crate::Store), `statelog dump` and
/// `statelog verify` read. An error (an I/O error, a state larger than the epoch layer takes)
/// stops the import and leaves in `dir` the epochs written so far.
///
/// ```
/// use std::sync::Arc;
/// use statelog::backend::FsBackend;
/// use statelog::tools::stateio::import_stateio;
///
/// # fn main() -> statelog::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let src = tmp.path().join("empty.state");
/// # std::fs::write(&src, b"").unwrap();
/// let report = import_stateio(Arc::new(FsBackend::new()), &src, &tmp.path().join("store"))?;
/// assert!(report.epochs.is_empty() && report.is_clean());
/// # Ok(())
/// # }
/// ```
pub fn import_stateio(backend: Arc<dyn Backend>, src: &Path, dir: &Path) -> Result<ImportReport> {
    if backend.exists(dir).map_err(|e| Error::io(dir, e))? {
        let names = backend.list(dir).map_err(|e| Error::io(dir, e))?;
        if !names.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} is not empty; import into a new or empty directory",
                dir.display()
            )));
        }
    }
    let mut reader = StateioReader::open(&*backend, src)?;
    let options = Options {
        retention: Retention {
            keep_epochs: usize::MAX,
            keep_for: None,
        },
        ..Options::default()
    };
    let (log, _) = EpochLog::open(backend, dir, options)?;
    let mut image = BytesTableImage::new(IMPORT_TABLE);
    let mut epochs: Vec<ImportedEpoch> = Vec::new();
    let mut created = false;
    while let Some(entry) = reader.next_entry()? {
        match entry {
            StateioEntry::Snapshot { offset, data, .. } => {
                let id = offset.to_string();
                let state = image.snapshot(&[(b"snapshot", &data), (b"epoch", id.as_bytes())])?;
                let report = log.snapshot(&state)?;
                if let Some(e) = report.retention_error {
                    return Err(e);
                }
                created = true;
                epochs.push(ImportedEpoch {
                    source: offset,
                    epoch: report.epoch.id,
                    snapshot: true,
                    updates: 0,
                });
            }
            StateioEntry::Update { data, .. } => {
                let n = epochs.last().map_or(0, |e| e.updates) + 1;
                let key = format!("update/{n:020}");
                let row: (&[u8], &[u8]) = (key.as_bytes(), &data);
                let tx = if created {
                    image.put_tx(&[row])?
                } else {
                    // The first epoch, without snapshot: its first update creates the table.
                    created = true;
                    epochs.push(ImportedEpoch {
                        source: 0,
                        epoch: log.current_epoch(),
                        snapshot: false,
                        updates: 0,
                    });
                    image.create_tx(&[(b"epoch", b"0"), row])?
                };
                log.append(&tx, Durability::Buffered)?;
                if let Some(e) = epochs.last_mut() {
                    e.updates += 1;
                }
            }
        }
    }
    log.sync()?;
    log.close()?;
    Ok(ImportReport {
        epochs,
        entries: reader.entries(),
        records: reader.records(),
        findings: reader.findings(),
    })
}
