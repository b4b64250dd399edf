//! Opening the strong and weak stores together: migrations, repair, and one closer.

use std::path::Path;
use std::sync::Arc;

use crate::sync::Mutex;

use super::flush::Flusher;
use super::repair::{RepairReport, Rules};
use super::worker::{FlushPolicy, FlushWorker};
use crate::backend::{Backend, FsBackend};
use crate::error::{Error, Result};
use crate::store::{Store, StoreOptions};

/// The two classes of an application's state: strong tables (every transaction durable
/// before it returns) and weak tables (written by flushes of dirty sets), in separate
/// directories, for example the weak ones on a faster disk or on tmpfs.
pub struct Persistence {
    /// The strong store.
    pub strong: Store,
    /// The weak (cache) store.
    pub weak: Store,
    /// What the repair on open removed.
    pub repair: RepairReport,
    worker: Mutex<Option<FlushWorker>>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("strong", &self.strong)
            .field("weak", &self.weak)
            .field("repair", &self.repair)
            .finish_non_exhaustive()
    }
}

impl Persistence {
    /// Opens the strong store in `strong_dir` and the weak store in `weak_dir`, then calls
    /// `setup` to open the tables (which runs their migrations) and declare the references,
    /// then repairs the weak store by those references. Returns the stores and what `setup`
    /// returned.
    pub fn open<T>(
        strong_dir: impl AsRef<Path>,
        weak_dir: impl AsRef<Path>,
        strong_options: StoreOptions,
        weak_options: StoreOptions,
        setup: impl FnOnce(&Store, &Store) -> Result<(T, Rules)>,
    ) -> Result<(Self, T)> {
        let backend: Arc<dyn Backend> = Arc::new(FsBackend::new());
        let dirs = (strong_dir.as_ref(), weak_dir.as_ref());
        Self::open_with(backend, dirs, (strong_options, weak_options), setup)
    }

    /// As [`open`](Self::open), through a given I/O backend; `dirs` and `options` are
    /// (strong, weak).
    pub fn open_with<T>(
        backend: Arc<dyn Backend>,
        dirs: (&Path, &Path),
        options: (StoreOptions, StoreOptions),
        setup: impl FnOnce(&Store, &Store) -> Result<(T, Rules)>,
    ) -> Result<(Self, T)> {
        let strong = Store::open_with(backend.clone(), dirs.0, options.0)?;
        let weak = Store::open_with(backend, dirs.1, options.1)?;
        let (tables, rules) = setup(&strong, &weak)?;
        let repair = rules.repair(&weak, Some(&strong))?;
        let p = Persistence {
            strong,
            weak,
            repair,
            worker: Mutex::new(None),
        };
        Ok((p, tables))
    }

    /// Starts the flush worker for the weak store (replacing and stopping a running one).
    pub fn start_flush_worker(&self, flusher: Arc<Flusher>, policy: FlushPolicy) -> Result<()> {
        let worker = FlushWorker::start(flusher, policy)?;
        let old = self.worker.lock().replace(worker);
        if let Some(old) = old {
            old.stop()?;
        }
        Ok(())
    }

    /// Stops the flush worker (its final flush), then syncs and closes both stores. Every
    /// failure is reported: one error as is, several as [`Error::Several`].
    pub fn close(self) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(w) = self.worker.lock().take() {
            if let Err(e) = w.stop() {
                errors.push(e);
            }
        }
        for store in [&self.weak, &self.strong] {
            if let Err(e) = store.close() {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several(errors)),
        }
    }
}
