//! Checkpoints of a store: named, fixed states with a status lifecycle (pending, active,
//! inactive, failed) and a payload, kept from retention while named, readable and restorable
//! (whole, or some tables). The registry file pins the epochs; the statuses and payloads are
//! records in the log (`checkpoint_records`), changed by write transactions.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::checkpoint_records::{RECORDS_TABLE, combine, has_record, records_table};
use crate::epoch::{Checkpoint, CheckpointChange, CheckpointStatus};
use crate::error::{Error, Result};
use crate::store::engine::{
    CommitPos, Op, Snapshot, State, Store, VERSION_FLOORS, WriteTx, decode_tx, decode_value,
    encode_value_bytes, renumber_restored, replay,
};
use crate::store::rows::Rows;

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
        self.save_as(name, false, &[])
    }

    /// [`save`](Self::save) with a payload of the program's (a version, a description),
    /// kept with the checkpoint and returned in [`Checkpoint::payload`]. A retry is harmless
    /// only with the same payload: another one is
    /// [`CheckpointExists`](Error::CheckpointExists).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save_with("v2", b"release 2.0")?;
    /// let c = store.checkpoints().get("v2")?;
    /// assert_eq!(c.payload, b"release 2.0");
    /// assert!(c.created <= std::time::SystemTime::now());
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_with(&self, name: &str, payload: &[u8]) -> Result<Checkpoint> {
        self.save_as(name, false, payload)
    }

    /// [`save_with`](Self::save_with) a serde value as the payload (encoded as table values
    /// are); read it back with [`payload_value`](Self::payload_value).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// struct Release { version: String, hosts: u32 }
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let release = Release { version: "2.0".into(), hosts: 12 };
    /// store.checkpoints().save_value("v2", &release)?;
    /// assert_eq!(store.checkpoints().payload_value::<Release>("v2")?, release);
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_value<V: Serialize>(&self, name: &str, payload: &V) -> Result<Checkpoint> {
        self.save_with(name, &encode_value_bytes(payload)?)
    }

    /// The payload of checkpoint `name` decoded as a `V` (saved with
    /// [`save_value`](Self::save_value)); bytes that are not a `V` are
    /// [`InvalidArgument`](Error::InvalidArgument).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save_value("v1", &("1.0".to_string(), 3u32))?;
    /// let (version, hosts): (String, u32) = store.checkpoints().payload_value("v1")?;
    /// assert_eq!((version.as_str(), hosts), ("1.0", 3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn payload_value<V: DeserializeOwned>(&self, name: &str) -> Result<V> {
        let c = self.get(name)?;
        decode_value(&c.payload).map_err(|e| {
            Error::InvalidArgument(format!(
                "the payload of checkpoint {name} is not a {}: {e}",
                std::any::type_name::<V>()
            ))
        })
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
        self.save_as(name, true, &[])
    }

    /// [`save_replacing`](Self::save_replacing) with a payload (see
    /// [`save_with`](Self::save_with)).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save_with("nightly", b"monday")?;
    /// store.checkpoints().save_replacing_with("nightly", b"tuesday")?;
    /// assert_eq!(store.checkpoints().get("nightly")?.payload, b"tuesday");
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_replacing_with(&self, name: &str, payload: &[u8]) -> Result<Checkpoint> {
        self.save_as(name, true, payload)
    }

    /// Saves: the snapshot and the registry's pin first, then the checkpoint's record (its
    /// status and payload) as a commit. A crash between them leaves a pin without a record:
    /// a pending checkpoint without its payload, which a retry of the save completes.
    fn save_as(&self, name: &str, replace: bool, payload: &[u8]) -> Result<Checkpoint> {
        let s = &self.store.shared;
        // A compaction under way finishes first (one snapshot at a time).
        let _gate = s.compaction.acquire();
        let _publish = self.store.publishing();
        let mut w = s.writer.lock();
        self.store.sync_locked(&mut w)?;
        let head = Snapshot {
            state: w.head.clone(),
        };
        // A table squatting the records' name is refused before anything is written.
        records_table(&head)?;
        let existing = combine(s.log.checkpoints()?, &head)?
            .into_iter()
            .find(|c| c.name == name);
        let mut checkpoint = match existing {
            Some(c) if !replace => {
                if !self.unchanged_since(&c, &w.head)? {
                    return Err(Error::CheckpointExists {
                        name: name.to_string(),
                    });
                }
                if has_record(&head, &c)? {
                    return if c.payload == payload {
                        Ok(c)
                    } else {
                        Err(Error::CheckpointExists {
                            name: name.to_string(),
                        })
                    };
                }
                // A save whose record was not written (or a checkpoint from before records
                // existed): the retry writes it.
                c
            }
            Some(c) if c.status == CheckpointStatus::Active => {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint {name} is active and cannot be replaced; activate another first"
                )));
            }
            _ => {
                let bytes = w.head.encode_snapshot()?;
                let (mut report, c) = if replace {
                    s.log.snapshot_renaming(&bytes, name)?
                } else {
                    let (report, c) = s.log.snapshot_as_checkpoint(&bytes, name)?;
                    let report = report.ok_or_else(|| Error::CheckpointExists {
                        name: name.to_string(),
                    })?;
                    (report, c)
                };
                self.store.note_retention(&mut report);
                self.store.start_epoch_locked(&mut w, report.epoch.id);
                c
            }
        };
        checkpoint.payload = payload.to_vec();
        let mut tx = WriteTx::new(&w.head);
        tx.put_checkpoint_record(&checkpoint)?;
        if !tx.ops.is_empty() {
            self.store
                .commit_locked(&mut w, tx.work, &tx.ops, crate::Durability::Strong)?;
            self.store.sync_locked(&mut w)?;
        }
        Ok(checkpoint)
    }

    /// Whether the current state is the one checkpoint `c` holds, as far as the log can tell:
    /// the current epoch was started by the snapshot that ended `c`'s epoch, and the updates
    /// logged after it (if any) changed checkpoint records only.
    fn unchanged_since(&self, c: &Checkpoint, head: &State) -> Result<bool> {
        let log = &self.store.shared.log;
        let current = log.current_epoch();
        let follows = log
            .epochs()?
            .iter()
            .any(|e| e.id == current && e.prev == Some(c.epoch));
        if !follows || log.update_bytes() == 0 {
            return Ok(follows);
        }
        let Some(id) = head.table_by_name(RECORDS_TABLE).map(|t| t.meta.id) else {
            return Ok(false);
        };
        for update in log.read_epoch(current)?.updates {
            let Ok(ops) = decode_tx(&update?) else {
                return Ok(false);
            };
            let records_only = ops.iter().all(|op| match op {
                Op::Put { table, .. } | Op::Delete { table, .. } | Op::Sequence { table, .. } => {
                    *table == id
                }
                Op::CreateTable(meta) | Op::AlterTable(meta) => meta.id == id,
            });
            if !records_only {
                return Ok(false);
            }
        }
        Ok(true)
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
        combine(self.store.shared.log.checkpoints()?, &self.store.read())
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
    /// durable step (a transaction of its own, so not to be called inside a
    /// [`Store::write`] closure: there, use [`WriteTx::activate_checkpoint`], which also
    /// commits it with the transaction's other changes). An unknown name changes nothing
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
        self.store.write(|tx| tx.activate_checkpoint(name))
    }

    /// Marks pending checkpoint `name` failed (a transaction of its own; inside a
    /// [`Store::write`] closure, use [`WriteTx::fail_checkpoint`]). The active checkpoint (or one that was
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
        self.store.write(|tx| tx.fail_checkpoint(name))
    }

    /// Deletes checkpoint `name` (not the active one); its epoch is left to retention. Like
    /// every call here but the reads ([`list`](Self::list), [`get`](Self::get),
    /// [`active`](Self::active), [`read`](Self::read), [`payload_value`](Self::payload_value)),
    /// it waits for the writer lock: not inside a [`Store::write`] closure.
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

    /// Removes checkpoints: under the writer lock, their pins from the registry, then their
    /// records in a commit (a crash between leaves records without pins, which are ignored).
    fn change(&self, change: CheckpointChange) -> Result<Vec<Checkpoint>> {
        self.store.write(|tx| {
            let removed = tx.change_checkpoint_records(&change)?;
            let names: Vec<String> = removed.iter().map(|c| c.name.clone()).collect();
            self.store.shared.log.remove_checkpoints(&names)?;
            Ok(removed)
        })
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

    /// Makes checkpoint `name`'s state the store's current state and activates it, in one
    /// durable step. Nothing is cut: the state is written as a new snapshot, so the history
    /// after the checkpoint stays retained by the usual rules, followers move forward to it,
    /// and `seq` goes on growing. Every table goes back, apply logs included (to bring back
    /// some tables only, see [`restore_tables`](Self::restore_tables)); ids never go back,
    /// and the checkpoints' statuses and payloads are not restored. A failed checkpoint
    /// cannot be restored. Returns the new state's position.
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
        self.restore_then(name, |_| Ok(())).map(|(pos, ())| pos)
    }

    /// [`restore`](Self::restore), with the changes `f` makes to the restored state in the
    /// same durable step (the new snapshot holds both, or a crash leaves neither): for
    /// example the apply-log entry recording the rollback. `f` sees the restored state, with
    /// the checkpoint activated; unique indexes and validators hold as in any transaction,
    /// and an error from `f` (or a validator) restores nothing. Returns the new state's
    /// position and `f`'s result.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let config = store.bytes_table("config")?;
    /// store.write(|tx| tx.put_bytes(&config, b"version", b"1"))?;
    /// store.checkpoints().save("v1")?;
    /// store.write(|tx| tx.put_bytes(&config, b"version", b"2"))?;
    /// let (_, note) = store.checkpoints().restore_then("v1", |tx| {
    ///     tx.put_bytes(&config, b"rolled-back-from", b"2")?;
    ///     Ok("rolled back")
    /// })?;
    /// assert_eq!(note, "rolled back");
    /// let snap = store.read();
    /// assert_eq!(snap.get_bytes(&config, b"version")?.as_deref(), Some(&b"1"[..]));
    /// assert!(snap.get_bytes(&config, b"rolled-back-from")?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn restore_then<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut WriteTx) -> Result<R>,
    ) -> Result<(CommitPos, R)> {
        let build = |head: &State, mut state: State| {
            // Ids never go back: table ids and each table's sequence keep their highest value.
            state.next_table_id = state.next_table_id.max(head.next_table_id);
            for (id, now) in head.tables.iter() {
                if let Some(t) = state.tables.get_mut(id) {
                    t.next_id = t.next_id.max(now.next_id);
                }
            }
            // The checkpoint records and the version floors stay as they are now (the
            // activation is written into the new state below; the restored rows get versions
            // above the floors).
            for own in [RECORDS_TABLE, VERSION_FLOORS] {
                if let Some(id) = state.by_name.remove(own) {
                    state.tables.remove(&id);
                }
                if let Some(t) = head.table_by_name(own) {
                    state.by_name.insert(own.to_string(), t.meta.id);
                    state.tables.insert(t.meta.id, t.clone());
                }
            }
            let names: Vec<String> = state
                .by_name
                .keys()
                .filter(|n| *n != RECORDS_TABLE && *n != VERSION_FLOORS)
                .cloned()
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            renumber_restored(head, state, &names)
        };
        self.restore_state(name, build, |tx| {
            tx.activate_checkpoint(name)?;
            f(tx)
        })
    }

    /// Brings back the rows of the tables named `tables` as checkpoint `name` holds them;
    /// every other table (an apply log recording the restore, say) keeps its current rows.
    /// A table created after the checkpoint becomes empty; a name that no table has, now or
    /// then, is [`TableNotFound`](Error::TableNotFound) and nothing changes. As with
    /// [`restore`](Self::restore) the result is a new snapshot, ids never go back, and unique
    /// indexes are rebuilt; the checkpoint's status does not change (activate it if the
    /// restore makes it the store's state). Returns the new state's position.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let config = store.bytes_table("config")?;
    /// let applied = store.apply_log::<String>("applied")?;
    /// store.write(|tx| tx.put_bytes(&config, b"version", b"1"))?;
    /// store.checkpoints().save("v1")?;
    /// store.write(|tx| {
    ///     tx.put_bytes(&config, b"version", b"2")?;
    ///     tx.append(&applied, &"v2".to_string())
    /// })?;
    /// store.checkpoints().restore_tables("v1", &["config"])?;
    /// assert_eq!(store.read().get_bytes(&config, b"version")?.as_deref(), Some(&b"1"[..]));
    /// assert_eq!(store.read().count(&applied)?, 1); // the apply log keeps its entries
    /// # Ok(())
    /// # }
    /// ```
    pub fn restore_tables(&self, name: &str, tables: &[&str]) -> Result<CommitPos> {
        self.restore_tables_then(name, tables, |_| Ok(()))
            .map(|(pos, ())| pos)
    }

    /// [`restore_tables`](Self::restore_tables), with the changes `f` makes to the result in
    /// the same durable step, as [`restore_then`](Self::restore_then) does.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let config = store.bytes_table("config")?;
    /// let applied = store.apply_log::<String>("applied")?;
    /// store.write(|tx| tx.put_bytes(&config, b"version", b"1"))?;
    /// store.checkpoints().save("v1")?;
    /// store.write(|tx| tx.put_bytes(&config, b"version", b"2"))?;
    /// // The rollback and its apply-log entry: both durable, or neither.
    /// store.checkpoints().restore_tables_then("v1", &["config"], |tx| {
    ///     tx.activate_checkpoint("v1")?;
    ///     tx.append(&applied, &"rolled back to v1".to_string())
    /// })?;
    /// assert_eq!(store.read().count(&applied)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn restore_tables_then<R>(
        &self,
        name: &str,
        tables: &[&str],
        f: impl FnOnce(&mut WriteTx) -> Result<R>,
    ) -> Result<(CommitPos, R)> {
        let build = |head: &State, saved: State| {
            let mut state = head.clone();
            for &table in tables {
                if table == RECORDS_TABLE || table == VERSION_FLOORS {
                    return Err(Error::InvalidArgument(format!(
                        "{table} is the store's own (checkpoint records, version floors) and is \
                         not restored"
                    )));
                }
                let now = head.table_by_name(table);
                let mut t = match (saved.table_by_name(table), now) {
                    (Some(then), _) => then.clone(),
                    (None, Some(now)) => {
                        let mut t = now.clone();
                        t.rows = Rows::default();
                        t.indexes.clear();
                        t.drop_stored();
                        t
                    }
                    (None, None) => return Err(Error::table_not_found(table)),
                };
                if let Some(now) = now {
                    t.next_id = t.next_id.max(now.next_id);
                    if now.meta.id != t.meta.id {
                        state.tables.remove(&now.meta.id);
                    }
                }
                state.by_name.insert(table.to_string(), t.meta.id);
                state.tables.insert(t.meta.id, t);
            }
            renumber_restored(head, state, tables)
        };
        self.restore_state(name, build, f)
    }

    /// A restore: under the writer lock, `build(head, saved)` makes the new state from the
    /// current one and checkpoint `name`'s, `then` changes it as a transaction would, and the
    /// result is written as a new snapshot and published.
    fn restore_state<R>(
        &self,
        name: &str,
        build: impl FnOnce(&State, State) -> Result<State>,
        then: impl FnOnce(&mut WriteTx) -> Result<R>,
    ) -> Result<(CommitPos, R)> {
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
        let mut state = build(&w.head, (*saved.state).clone())?;
        state.seq = w.head.seq + 1;
        state.generation = w.head.generation + 1;
        state.next_table_id = state.next_table_id.max(w.head.next_table_id);
        for ix in s.indexes.lock().iter() {
            ix.rebuild(&mut state)?;
        }
        let mut tx = WriteTx::new(&state);
        tx.registry = Some(s.registry.clone());
        let out = then(&mut tx)?;
        self.store.check(&tx)?;
        let mut state = tx.work;
        state.seal();
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
        let pos = CommitPos {
            epoch: state.epoch,
            seq: state.seq,
        };
        Ok((pos, out))
    }
}
