//! Checkpoint records: the status and payload of each checkpoint, kept in the log itself as
//! the rows of the internal table `@checkpoints` (FORMAT.md §12.1), so that a write
//! transaction changes them atomically with its other changes. The registry file keeps the
//! epochs retention honours (the pins); a checkpoint exists while it is pinned, and its
//! record, when one names the pinned epoch, is the authority for its status.

use crate::epoch::{Checkpoint, CheckpointChange, CheckpointStatus, apply_checkpoint_change};
use crate::error::{Error, Result};
pub(crate) use crate::store::engine::CHECKPOINT_RECORDS as RECORDS_TABLE;
use crate::store::engine::{Internal, Readable, Table, WriteTx, schema_error};

/// The records' table (keys are checkpoint names).
const RECORDS: Internal = Internal {
    name: RECORDS_TABLE,
    key_label: "@checkpoint",
    value_label: "@checkpoint-record",
    holds: "the checkpoint records",
};

/// A record: the epoch it describes, the status code, the payload.
type Record = (u64, u8, Vec<u8>);

/// The records table of a state, if it has one; a table of that name that is not one is
/// [`IncompatibleSchema`](Error::IncompatibleSchema).
pub(crate) fn records_table(r: &(impl Readable + ?Sized)) -> Result<Option<Table<String, Record>>> {
    RECORDS.find(r.state())
}

/// The record of `c` in `r`, if one names `c`'s epoch (a record of another epoch belongs to
/// a checkpoint of that name that was replaced or deleted).
fn record_of(r: &(impl Readable + ?Sized), c: &Checkpoint) -> Result<Option<Record>> {
    let Some(t) = records_table(r)? else {
        return Ok(None);
    };
    Ok(r.get(&t, c.name.as_str())?.filter(|rec| rec.0 == c.epoch))
}

/// Whether `r` holds a record of `c`.
pub(crate) fn has_record(r: &(impl Readable + ?Sized), c: &Checkpoint) -> Result<bool> {
    Ok(record_of(r, c)?.is_some())
}

/// The checkpoints: the registry's `pins`, each with the status and payload of its record in
/// `r` (a pin without a record keeps the registry's status: pending for a save whose record
/// was not written, the old status in a directory written before records existed).
pub(crate) fn combine(
    pins: Vec<Checkpoint>,
    r: &(impl Readable + ?Sized),
) -> Result<Vec<Checkpoint>> {
    let mut list = pins;
    for c in &mut list {
        if let Some((_, code, payload)) = record_of(r, c)? {
            c.status = CheckpointStatus::from_code(code)
                .ok_or_else(|| schema_error(RECORDS_TABLE, format!("status code {code}")))?;
            c.payload = payload;
        }
    }
    Ok(list)
}

impl WriteTx {
    /// The registry's pins.
    fn pins(&self) -> Result<Vec<Checkpoint>> {
        let registry = self.registry.as_ref().ok_or_else(|| {
            Error::InvalidArgument("this transaction has no checkpoint registry".into())
        })?;
        registry.read()
    }

    /// The checkpoints as this transaction sees them (its own checkpoint changes included).
    ///
    /// ```
    /// use statelog::CheckpointStatus;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("v1")?;
    /// let status = store.write(|tx| {
    ///     tx.activate_checkpoint("v1")?;
    ///     Ok(tx.checkpoints()?[0].status)
    /// })?;
    /// assert_eq!(status, CheckpointStatus::Active);
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        combine(self.pins()?, self)
    }

    /// Makes checkpoint `name` the active one, and the active one inactive, when this
    /// transaction commits (with its other changes, or not at all). An unknown name is
    /// [`CheckpointNotFound`](Error::CheckpointNotFound), a failed checkpoint
    /// [`CheckpointLifecycle`](Error::CheckpointLifecycle); either changes nothing.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let applied = store.apply_log::<String>("applied")?;
    /// store.checkpoints().save("v2")?;
    /// // The activation and its apply-log entry commit together.
    /// store.write(|tx| {
    ///     tx.activate_checkpoint("v2")?;
    ///     tx.append(&applied, &"v2".to_string())
    /// })?;
    /// assert_eq!(store.checkpoints().active()?.name, "v2");
    /// assert_eq!(store.read().count(&applied)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn activate_checkpoint(&mut self, name: &str) -> Result<()> {
        self.change_checkpoint_records(&CheckpointChange::Activate(name.to_string()))
            .map(|_| ())
    }

    /// Marks pending checkpoint `name` failed when this transaction commits. The active
    /// checkpoint, and one that was active, cannot fail
    /// ([`CheckpointLifecycle`](Error::CheckpointLifecycle), nothing changes).
    ///
    /// ```
    /// use statelog::CheckpointStatus;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save("candidate")?;
    /// store.write(|tx| tx.fail_checkpoint("candidate"))?;
    /// assert_eq!(store.checkpoints().get("candidate")?.status, CheckpointStatus::Failed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_checkpoint(&mut self, name: &str) -> Result<()> {
        self.change_checkpoint_records(&CheckpointChange::Fail(name.to_string()))
            .map(|_| ())
    }

    /// Replaces the payload of checkpoint `name` when this transaction commits (its status
    /// and state stay).
    ///
    /// ```
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// store.checkpoints().save_with("v3", b"build 41")?;
    /// store.write(|tx| tx.set_checkpoint_payload("v3", b"build 42"))?;
    /// assert_eq!(store.checkpoints().get("v3")?.payload, b"build 42");
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_checkpoint_payload(&mut self, name: &str, payload: &[u8]) -> Result<()> {
        let mut c = self
            .checkpoints()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::CheckpointNotFound {
                name: name.to_string(),
            })?;
        c.payload = payload.to_vec();
        self.put_checkpoint_record(&c)
    }

    /// Applies `change` to the checkpoints this transaction sees and writes the records that
    /// changed; deletes the records of the checkpoints removed, and returns those (the caller
    /// removes their pins), and every record without a pin (left by a crash during a delete).
    /// On error nothing is written.
    pub(crate) fn change_checkpoint_records(
        &mut self,
        change: &CheckpointChange,
    ) -> Result<Vec<Checkpoint>> {
        let pins = self.pins()?;
        let before = combine(pins, self)?;
        let mut after = before.clone();
        let removed = apply_checkpoint_change(&mut after, change)?;
        for c in &after {
            if before.iter().find(|b| b.name == c.name) != Some(c) {
                self.put_checkpoint_record(c)?;
            }
        }
        if let Some(t) = records_table(self)? {
            let orphans: Vec<String> = self
                .list(&t)?
                .into_iter()
                .filter(|(name, rec)| !after.iter().any(|c| c.name == *name && c.epoch == rec.0))
                .map(|(name, _)| name)
                .collect();
            for name in &orphans {
                self.delete(&t, name.as_str())?;
            }
        }
        Ok(removed)
    }

    /// Writes the record of `c` (its epoch, status and payload).
    pub(crate) fn put_checkpoint_record(&mut self, c: &Checkpoint) -> Result<()> {
        let t: Table<String, Record> = RECORDS.find_or_create(self)?;
        let record: Record = (c.epoch, c.status.code(), c.payload.clone());
        self.insert(&t, &c.name, &record).map(|_| ())
    }
}
