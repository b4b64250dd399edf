//! Checkpoints of a store: named, fixed states with a status lifecycle (pending, active,
//! inactive, failed), kept from retention while named, readable and restorable.

use std::sync::Arc;
use std::time::SystemTime;

use crate::epoch::{Checkpoint, CheckpointChange, CheckpointStatus};
use crate::error::{Error, Result};
use crate::store::engine::{CommitPos, Snapshot, Store, replay};

/// The checkpoints of a store, from [`Store::checkpoints`].
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints<'a> {
    store: &'a Store,
}

impl Store {
    /// The store's checkpoints: save, list, activate, fail, delete, read and restore.
    ///
    /// ```
    /// use statelog::{CheckpointStatus, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"config", b"v1"))?;
    /// let cps = store.checkpoints();
    /// cps.save("v1")?;
    /// assert_eq!(cps.get("v1")?.status, CheckpointStatus::Pending);
    /// cps.activate("v1")?; // e.g. once the new version proved good
    /// store.write(|tx| tx.put_bytes(&b, b"config", b"v2"))?;
    /// // Back to the saved state, as a new state (history is kept).
    /// cps.restore("v1")?;
    /// assert_eq!(store.read().get_bytes(&b, b"config")?.as_deref(), Some(&b"v1"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoints(&self) -> Checkpoints<'_> {
        Checkpoints { store: self }
    }
}

impl Checkpoints<'_> {
    /// Saves the current state as checkpoint `name`, status pending: takes a snapshot (a new
    /// epoch starts) and names the epoch it ended, whose state is fixed from then on. Saving
    /// a name that exists is a harmless retry while nothing was committed since that save
    /// (the existing checkpoint is returned); after commits (or a compaction) it is
    /// [`CheckpointExists`](Error::CheckpointExists) and nothing is written: see
    /// [`save_replacing`](Self::save_replacing).
    ///
    /// ```
    /// use statelog::Error;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// let saved = store.checkpoints().save("before-migration")?;
    /// // Saving again under the name is a harmless retry.
    /// assert_eq!(store.checkpoints().save("before-migration")?, saved);
    /// // Not once the state changed: the name holds the older state.
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// let again = store.checkpoints().save("before-migration");
    /// assert!(matches!(again, Err(Error::CheckpointExists { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn save(&self, name: &str) -> Result<Checkpoint> {
        self.save_as(name, false)
    }

    /// [`save`](Self::save), replacing a checkpoint of that name (unless it is the active
    /// one): the registry names the new epoch instead, in one durable write.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.checkpoints().save("nightly")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// store.checkpoints().save_replacing("nightly")?;
    /// assert_eq!(store.checkpoints().read("nightly")?.count(&b)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_replacing(&self, name: &str) -> Result<Checkpoint> {
        self.save_as(name, true)
    }

    fn save_as(&self, name: &str, replace: bool) -> Result<Checkpoint> {
        let s = &self.store.shared;
        // A compaction under way finishes first (one snapshot at a time).
        let _gate = s.compaction.acquire();
        let _publish = self.store.publishing();
        let mut w = s.writer.lock();
        self.store.sync_locked(&mut w)?;
        if !replace && let Some(c) = self.list()?.into_iter().find(|c| c.name == name) {
            return if self.unchanged_since(&c)? {
                Ok(c)
            } else {
                Err(Error::CheckpointExists {
                    name: name.to_string(),
                })
            };
        }
        let bytes = w.head.encode_snapshot()?;
        let (report, checkpoint) = if replace {
            let (report, c) = s.log.snapshot_replacing_checkpoint(&bytes, name)?;
            (Some(report), c)
        } else {
            s.log.snapshot_as_checkpoint(&bytes, name)?
        };
        if let Some(mut report) = report {
            self.store.note_retention(&mut report);
            self.store.start_epoch_locked(&mut w, report.epoch.id);
        }
        Ok(checkpoint)
    }

    /// Whether the current state is the one checkpoint `c` holds, as far as the log can tell
    /// cheaply: the current epoch was started by the snapshot that ended `c`'s epoch, and no
    /// update was logged after it.
    fn unchanged_since(&self, c: &Checkpoint) -> Result<bool> {
        let log = &self.store.shared.log;
        let current = log.current_epoch();
        let follows = log
            .epochs()?
            .iter()
            .any(|e| e.id == current && e.prev == Some(c.epoch));
        Ok(follows && log.update_bytes() == 0)
    }

    /// Every checkpoint, in the order they were saved.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("a")?;
    /// store.checkpoints().save("b")?;
    /// let names: Vec<String> = store.checkpoints().list()?.into_iter().map(|c| c.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn list(&self) -> Result<Vec<Checkpoint>> {
        self.store.shared.log.checkpoints()
    }

    /// The checkpoint named `name`, or [`CheckpointNotFound`](Error::CheckpointNotFound).
    ///
    /// ```
    /// use statelog::CheckpointStatus;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("c")?;
    /// assert_eq!(store.checkpoints().get("c")?.status, CheckpointStatus::Pending);
    /// assert!(store.checkpoints().get("missing").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, name: &str) -> Result<Checkpoint> {
        self.list()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::CheckpointNotFound {
                name: name.to_string(),
            })
    }

    /// The active checkpoint, or [`NoActiveCheckpoint`](Error::NoActiveCheckpoint) if none is.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("a")?;
    /// assert!(store.checkpoints().active().is_err());
    /// store.checkpoints().activate("a")?;
    /// assert_eq!(store.checkpoints().active()?.name, "a");
    /// # Ok(())
    /// # }
    /// ```
    pub fn active(&self) -> Result<Checkpoint> {
        self.list()?
            .into_iter()
            .find(|c| c.status == CheckpointStatus::Active)
            .ok_or(Error::NoActiveCheckpoint)
    }

    /// Makes `name` the active checkpoint and the previously active one inactive, in one
    /// durable step. An unknown name changes nothing
    /// ([`CheckpointNotFound`](Error::CheckpointNotFound)); a failed checkpoint cannot be
    /// activated ([`CheckpointLifecycle`](Error::CheckpointLifecycle)).
    ///
    /// ```
    /// use statelog::CheckpointStatus;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let cps = store.checkpoints();
    /// cps.save("v1")?;
    /// cps.activate("v1")?;
    /// cps.save("v2")?;
    /// cps.activate("v2")?;
    /// assert_eq!(cps.get("v1")?.status, CheckpointStatus::Inactive);
    /// assert_eq!(cps.active()?.name, "v2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn activate(&self, name: &str) -> Result<()> {
        self.change(CheckpointChange::Activate(name.to_string()))
            .map(|_| ())
    }

    /// Marks pending checkpoint `name` failed. The active checkpoint (or one that was
    /// active) cannot fail: the error leaves it as it is.
    ///
    /// ```
    /// use statelog::CheckpointStatus;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("candidate")?;
    /// store.checkpoints().fail("candidate")?;
    /// assert_eq!(store.checkpoints().get("candidate")?.status, CheckpointStatus::Failed);
    /// assert!(store.checkpoints().restore("candidate").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail(&self, name: &str) -> Result<()> {
        self.change(CheckpointChange::Fail(name.to_string()))
            .map(|_| ())
    }

    /// Deletes checkpoint `name` (not the active one); its epoch is left to retention.
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("old")?;
    /// store.checkpoints().delete("old")?;
    /// assert!(store.checkpoints().get("old").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&self, name: &str) -> Result<()> {
        self.change(CheckpointChange::Delete(name.to_string()))
            .map(|_| ())
    }

    /// Deletes every inactive checkpoint saved before `time` (never the active one, a pending
    /// one or a failed one: delete those by name), and returns them; retention reclaims their
    /// epochs at the next snapshot.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let cps = store.checkpoints();
    /// cps.save("old")?;
    /// cps.activate("old")?;
    /// cps.save("new")?;
    /// cps.activate("new")?; // "old" is inactive now
    /// let deleted = cps.delete_older_than(SystemTime::now() + Duration::from_secs(1))?;
    /// assert_eq!(deleted.len(), 1);
    /// assert_eq!(cps.list()?.len(), 1); // the active one stays
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_older_than(&self, time: SystemTime) -> Result<Vec<Checkpoint>> {
        self.change(CheckpointChange::DeleteOlderThan(time))
    }

    fn change(&self, change: CheckpointChange) -> Result<Vec<Checkpoint>> {
        self.store.shared.log.change_checkpoints(&change)
    }

    /// The state saved as checkpoint `name` (read from its epoch; unique indexes are not
    /// attached: look rows up by key).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"old"))?;
    /// store.checkpoints().save("c")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"new"))?;
    /// assert_eq!(store.checkpoints().read("c")?.get_bytes(&b, b"k")?.as_deref(), Some(&b"old"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(&self, name: &str) -> Result<Snapshot> {
        let c = self.get(name)?;
        let log = &self.store.shared.log;
        let (mut state, lost) = replay(log.dir(), log.read_epoch(c.epoch)?)?;
        if let Some(l) = lost.first() {
            return Err(Error::corrupt(&l.file, l.from, l.kind));
        }
        state.generation = 1;
        Ok(Snapshot {
            state: Arc::new(state),
        })
    }

    /// Makes checkpoint `name`'s state the store's current state and activates it. Nothing
    /// is cut: the state is written as a new snapshot, so the history after the checkpoint
    /// stays retained by the usual rules, followers move forward to it, and `seq` goes on
    /// growing. A failed checkpoint cannot be restored. Returns the new state's position.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"old"))?;
    /// store.checkpoints().save("c")?;
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"new"))?;
    /// let pos = store.checkpoints().restore("c")?;
    /// assert_eq!(store.read().position(), pos);
    /// assert_eq!(store.read().get_bytes(&b, b"k")?.as_deref(), Some(&b"old"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn restore(&self, name: &str) -> Result<CommitPos> {
        let c = self.get(name)?;
        if c.status == CheckpointStatus::Failed {
            return Err(Error::CheckpointLifecycle {
                name: name.to_string(),
                status: c.status,
                action: "restored".into(),
            });
        }
        let saved = self.read(name)?;
        let s = &self.store.shared;
        let _gate = s.compaction.acquire();
        let publish = self.store.publishing();
        let mut w = s.writer.lock();
        self.store.sync_locked(&mut w)?;
        let mut state = (*saved.state).clone();
        state.seq = w.head.seq + 1;
        state.generation = w.head.generation + 1;
        // Ids never go back: table ids and each table's sequence keep their highest value.
        state.next_table_id = state.next_table_id.max(w.head.next_table_id);
        for (id, now) in w.head.tables.iter() {
            if let Some(t) = state.tables.get_mut(id) {
                t.next_id = t.next_id.max(now.next_id);
            }
        }
        for ix in s.indexes.lock().iter() {
            ix.rebuild(&mut state)?;
        }
        let mut report = s.log.snapshot(&state.encode_snapshot()?)?;
        self.store.note_retention(&mut report);
        state.epoch = report.epoch.id;
        let state = Arc::new(state);
        w.head = state.clone();
        self.store.publish(&mut w, state.clone());
        w.feed.reset();
        w.undelivered.clear();
        drop(w);
        drop(publish);
        self.activate(name)?;
        Ok(CommitPos {
            epoch: state.epoch,
            seq: state.seq,
        })
    }
}
