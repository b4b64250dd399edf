//! Apply logs: append-only tables of entries numbered by increasing ids (director's
//! `LogApply`, `CountApplied`, `AppliedInstances`, `ResetApplyLog`; FORMAT.md §12.1). An entry
//! is appended in a write transaction, atomically with the other tables' changes, and read
//! back by id range; a prefix can be cut (`truncate_before`) or the whole log emptied
//! (`reset`), and ids never go back. A log is a typed table whose key type is recorded as
//! `@log` (ids as `u64` keys, entries as values), so followers, the change feed, backups,
//! checkpoints and the tools see it as they see any table, while a plain table handle cannot
//! open it (its key type differs) and rewrite its entries.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::follower::Follower;
use crate::error::{Error, Result};
use crate::store::engine::{
    ApplyLog, LOG_KEY_TYPE, Readable, Store, Table, TableDef, WriteTx, type_label,
};

impl Store {
    /// Opens the apply log `name` of entries of type `V`, creating it on first use. A table of
    /// that name that is not a log of `V`s is
    /// [`IncompatibleSchema`](Error::IncompatibleSchema).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let applied = store.apply_log::<(String, String)>("applied")?;
    /// let id = store.write(|tx| tx.append(&applied, &("host-1".into(), "v2".into())))?;
    /// assert_eq!(id, 1);
    /// assert_eq!(store.read().count(&applied)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply_log<V>(&self, name: &str) -> Result<ApplyLog<V>>
    where
        V: Serialize + DeserializeOwned + 'static,
    {
        let def = TableDef::<u64, V>::new(name).key_label(LOG_KEY_TYPE);
        self.table(def).map(ApplyLog::of)
    }
}

impl Follower {
    /// A handle for the apply log `name`, which must exist with entries of type `V`.
    ///
    /// ```
    /// use statelog::{Follower, FollowerOptions, Readable};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<String>("events")?;
    /// store.write(|tx| tx.append(&log, &"started".to_string()))?;
    /// let follower = Follower::open(dir.path(), FollowerOptions::default())?;
    /// let log = follower.apply_log::<String>("events")?;
    /// assert_eq!(follower.read().entry(&log, 1)?, Some("started".to_string()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply_log<V>(&self, name: &str) -> Result<ApplyLog<V>>
    where
        V: Serialize + DeserializeOwned + 'static,
    {
        let snap = self.read();
        let meta = &snap
            .state()
            .table_by_name(name)
            .ok_or_else(|| Error::TableNotFound {
                table: name.to_string(),
            })?
            .meta;
        let value_type = type_label::<V>();
        if meta.key_type != LOG_KEY_TYPE || meta.value_type != value_type {
            return Err(Error::IncompatibleSchema {
                table: name.to_string(),
                found: format!("keys {}, values {}", meta.key_type, meta.value_type),
                expected: format!("keys {LOG_KEY_TYPE}, values {value_type}"),
            });
        }
        Ok(ApplyLog::of(Table::new(meta.id, name, Vec::new())))
    }
}

impl WriteTx {
    /// Appends `entry` to `log` and returns its id: 1 for a new log's first entry, then
    /// increasing, never reused (also after [`truncate_before`](Self::truncate_before),
    /// [`reset`](Self::reset) and a reopen). The entry commits with the rest of the
    /// transaction, or not at all.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<String>("events")?;
    /// let ids = store.write(|tx| Ok((tx.append(&log, &"a".into())?, tx.append(&log, &"b".into())?)))?;
    /// assert_eq!(ids, (1, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn append<V>(&mut self, log: &ApplyLog<V>, entry: &V) -> Result<u64>
    where
        V: Serialize + DeserializeOwned,
    {
        let id = self.next_id(&log.table)?;
        self.insert(&log.table, &id, entry)?;
        Ok(id)
    }

    /// Removes the entries of `log` with ids below `id`; returns how many. Ids keep
    /// increasing from where they were.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<u32>("events")?;
    /// store.write(|tx| { for v in 0..5 { tx.append(&log, &v)?; } Ok(()) })?;
    /// assert_eq!(store.write(|tx| tx.truncate_before(&log, 4))?, 3);
    /// let ids: Vec<u64> = store.read().entries(&log, ..)?.map(|e| e.map(|(id, _)| id)).collect::<Result<_, _>>()?;
    /// assert_eq!(ids, vec![4, 5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn truncate_before<V>(&mut self, log: &ApplyLog<V>, id: u64) -> Result<u64>
    where
        V: Serialize + DeserializeOwned,
    {
        self.remove_ids(log, ..id)
    }

    /// Removes every entry of `log`; returns how many. Ids keep increasing from where they
    /// were.
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<u32>("events")?;
    /// store.write(|tx| tx.append(&log, &7))?;
    /// assert_eq!(store.write(|tx| tx.reset(&log))?, 1);
    /// assert_eq!(store.write(|tx| tx.append(&log, &8))?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reset<V>(&mut self, log: &ApplyLog<V>) -> Result<u64>
    where
        V: Serialize + DeserializeOwned,
    {
        self.remove_ids(log, ..)
    }

    /// Keeps only the entries of `log` for which `keep(id, entry)` is true; returns how many
    /// were removed (director's `ResetApplyLog` of one version is a `retain` of the others).
    ///
    /// ```
    /// use statelog::Readable;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let log = store.apply_log::<(String, u32)>("applied")?;
    /// store.write(|tx| {
    ///     for (host, version) in [("a", 1), ("b", 1), ("a", 2)] {
    ///         tx.append(&log, &(host.to_string(), version))?;
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(store.write(|tx| tx.retain(&log, |_, (_, version)| *version != 1))?, 2);
    /// assert_eq!(store.read().count(&log)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retain<V>(
        &mut self,
        log: &ApplyLog<V>,
        mut keep: impl FnMut(u64, &V) -> bool,
    ) -> Result<u64>
    where
        V: Serialize + DeserializeOwned,
    {
        let mut gone = Vec::new();
        for e in self.entries(log, ..)? {
            let (id, entry) = e?;
            if !keep(id, &entry) {
                gone.push(id);
            }
        }
        for id in &gone {
            self.delete(&log.table, id)?;
        }
        Ok(gone.len() as u64)
    }

    fn remove_ids<V>(
        &mut self,
        log: &ApplyLog<V>,
        ids: impl std::ops::RangeBounds<u64>,
    ) -> Result<u64>
    where
        V: Serialize + DeserializeOwned,
    {
        let ids = self
            .entries(log, ids)?
            .map(|e| e.map(|(id, _)| id))
            .collect::<Result<Vec<u64>>>()?;
        for id in &ids {
            self.delete(&log.table, id)?;
        }
        Ok(ids.len() as u64)
    }
}
