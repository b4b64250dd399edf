//! Hot backup: a consistent, restorable copy of a store, written while writers go on.

use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;
use crate::epoch::{EpochLog, Options};
use crate::error::{Error, Result};
use crate::store::engine::{Snapshot, State, Store};

/// How many times a backup starts again when retention deletes a segment it was copying.
const BACKUP_TRIES: usize = 8;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The number of transactions committed before the state that was copied.
    pub seq: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Store {
    /// Writes a consistent copy of the store to the directory `dest` (which must not exist or
    /// must be empty) while writers go on: everything committed before the call is made
    /// durable, then the log's segments up to that point are copied (the last one cut
    /// there), with the checkpoints naming copied epochs; every file is synced before this
    /// returns. The copy is a whole store, with the retained epochs and checkpoints: open it
    /// with [`Store::open`]. Writers wait only for the sync.
    ///
    /// ```
    /// use statelog::{Readable, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let dest = dir.path().join("copy");
    /// store.backup_to(&dest)?;
    /// let copy = Store::open(&dest, StoreOptions::default())?;
    /// assert_eq!(copy.read().get_bytes(&copy.bytes_table("b")?, b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let dest = dest.as_ref();
        let mut tries = 0;
        loop {
            tries += 1;
            let (seq, end) = {
                let mut w = self.shared.writer.lock();
                let end = self.shared.log.sync()?;
                self.publish_ready(&mut w);
                (w.head.seq, end)
            };
            self.publish_views();
            match self.shared.log.copy_through(dest, end) {
                Ok(copy) => {
                    return Ok(BackupReport {
                        seq,
                        bytes: copy.bytes,
                    });
                }
                // Retention deleted a segment before it could be opened: again, from now.
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && tries < BACKUP_TRIES => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Snapshot {
    /// Writes this state as a new store directory `dest` (which must not exist or must be
    /// empty): one snapshot, fsynced, restorable with `Store::open`. Use with
    /// [`read_only_snapshot`](crate::read_only_snapshot) to back up a store that another
    /// process is writing.
    ///
    /// ```
    /// use statelog::{Readable, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let dest = dir.path().join("one-state");
    /// store.read().backup_to(&dest)?;
    /// let copy = Store::open(&dest, StoreOptions::default())?;
    /// assert_eq!(copy.read().count(&copy.bytes_table("b")?)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        write_backup(
            Arc::new(crate::backend::FsBackend::new()),
            &self.state,
            dest.as_ref(),
        )
    }
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
