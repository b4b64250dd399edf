//! The committed changes after a position, read back from the log: for watchers, followers
//! and shipping a store's history elsewhere.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::epoch::{EpochInfo, EpochLog, EpochReader, Restored};
use crate::error::{CorruptKind, Error, Result};
use crate::store::engine::{
    CommitPos, Op, Snapshot, State, Store, Table, VERSION_FLOORS, decode_key, decode_tx,
    decode_value, schema_error, table_names,
};

/// One committed transaction's changes to rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The state the transaction produced.
    pub pos: CommitPos,
    /// Its row changes, in the order they were made.
    pub ops: Vec<ChangeOp>,
}

/// One row change. Keys and values are in their stored encodings (FORMAT.md §12); decode them
/// with [`ChangeOp::decode`]. Table creation and schema changes show as the row changes they
/// make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// A row was written.
    Put {
        /// The table.
        table: String,
        /// The encoded key.
        key: Vec<u8>,
        /// The encoded value.
        value: Vec<u8>,
        /// The row's new version.
        version: u64,
    },
    /// A row was deleted.
    Delete {
        /// The table.
        table: String,
        /// The encoded key.
        key: Vec<u8>,
    },
}

impl ChangeOp {
    /// The table changed.
    pub fn table(&self) -> &str {
        match self {
            ChangeOp::Put { table, .. } | ChangeOp::Delete { table, .. } => table,
        }
    }

    /// The key and new value (`None` for a delete), if the change is to `table`.
    ///
    /// ```
    /// use statelog::{Changes, TableDef};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// let t = store.table(TableDef::<String, u32>::new("t"))?;
    /// let from = store.read().position();
    /// store.write(|tx| tx.insert(&t, &"a".to_string(), &1))?;
    /// let Changes::Since(changes) = store.changes_since(from, 10)? else { panic!() };
    /// let (key, value) = changes[0].ops[0].decode(&t).unwrap()?;
    /// assert_eq!((key.as_str(), value), ("a", Some(1)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn decode<K: DeserializeOwned, V: DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Option<Result<(K, Option<V>)>> {
        if self.table() != table.name() {
            return None;
        }
        let (key, value) = match self {
            ChangeOp::Put { key, value, .. } => (key, Some(value)),
            ChangeOp::Delete { key, .. } => (key, None),
        };
        let decoded = (|| {
            let k = decode_key(key).map_err(|e| schema_error(table.name(), e))?;
            let v = match value {
                Some(v) => Some(decode_value(v).map_err(|e| schema_error(table.name(), e))?),
                None => None,
            };
            Ok((k, v))
        })();
        Some(decoded)
    }
}

/// The answer of `changes_since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The transactions committed after the position, oldest first, without a gap (empty when
    /// there are none yet). Continue from the last one's `pos`.
    Since(Vec<Change>),
    /// The log no longer holds every change after the position (retention deleted them, the
    /// position is from a history that was rewound away, or salvage skipped damage): reload
    /// the whole state from a snapshot and continue from its position.
    Reset,
}

impl Store {
    /// Up to `limit` transactions committed after `pos` (a [`Snapshot::position`]), read from
    /// the log, or [`Changes::Reset`] when the log no longer holds them all (retention
    /// deleted them, or the position is from a history an operator rewound away). Reads the
    /// log from the start of `pos`'s epoch.
    ///
    /// ```
    /// use statelog::Changes;
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = statelog::Store::open(dir.path(), statelog::StoreOptions::default())?;
    /// # let b = store.bytes_table("b")?;
    /// let from = store.read().position();
    /// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
    /// match store.changes_since(from, 100)? {
    ///     Changes::Since(changes) => {
    ///         assert_eq!(changes[0].ops[0].table(), "b");
    ///         let next = changes.last().unwrap().pos; // continue from here
    ///         # let _ = next;
    ///     }
    ///     Changes::Reset => { /* reload a whole snapshot instead */ }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes_since(&self, pos: CommitPos, limit: usize) -> Result<Changes> {
        // The published state is durable: nothing after it is shipped.
        let names = self.shared.published.load_full();
        let upto = Snapshot {
            state: names.clone(),
        }
        .position();
        let dir = self.shared.log.dir();
        changes_since(&self.shared.log, dir, &names, pos, limit, Some(upto))
    }
}

/// Read access to a directory's retained epochs.
pub(crate) trait EpochSource {
    fn epochs(&self) -> Result<Vec<EpochInfo>>;
    fn read_epoch(&self, id: u64) -> Result<Restored>;
}

impl EpochSource for EpochLog {
    fn epochs(&self) -> Result<Vec<EpochInfo>> {
        EpochLog::epochs(self)
    }
    fn read_epoch(&self, id: u64) -> Result<Restored> {
        EpochLog::read_epoch(self, id)
    }
}

impl EpochSource for EpochReader {
    fn epochs(&self) -> Result<Vec<EpochInfo>> {
        EpochReader::epochs(self)
    }
    fn read_epoch(&self, id: u64) -> Result<Restored> {
        EpochReader::read_epoch(self, id)
    }
}

/// Up to `limit` transactions committed after `pos`, read from the log, none after `upto` (the
/// newest durable position, when known). `names` is a state at least as new as the log's
/// table creations up to `pos` (for table names).
pub(crate) fn changes_since(
    source: &dyn EpochSource,
    dir: &Path,
    names: &State,
    pos: CommitPos,
    limit: usize,
    upto: Option<CommitPos>,
) -> Result<Changes> {
    let epochs = source.epochs()?;
    // The position's epoch, or (retention deleted it) the epoch started from it.
    let start = match epochs.iter().position(|e| e.id == pos.epoch) {
        Some(i) => i,
        None => match epochs.iter().rposition(|e| e.prev == Some(pos.epoch)) {
            Some(i) => i,
            None => return Ok(Changes::Reset),
        },
    };
    let mut names: HashMap<u32, String> = names
        .tables
        .values()
        .map(|t| (t.meta.id, t.meta.name.clone()))
        .collect();
    let mut out = Vec::new();
    let mut expected: Option<u64> = None;
    for info in epochs.iter().take(start + 1).rev() {
        let restored = match source.read_epoch(info.id) {
            Ok(r) => r,
            // Deleted by retention since the listing.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(partial(out));
            }
            Err(Error::EpochNotRetained { .. }) => {
                return Ok(partial(out));
            }
            Err(e) => return Err(e),
        };
        let snapshot_file = dir.join(format!("{:016x}.seg", restored.epoch.segment));
        let mut seq = match &restored.snapshot {
            Some(b) => State::snapshot_seq(b)
                .map_err(|_| Error::corrupt(&snapshot_file, 32, CorruptKind::Payload))?,
            None => 0,
        };
        // An epoch whose snapshot was taken beside the writers starts with copies of the
        // transactions after its snapshot's `seq` (FORMAT.md §11.6.1): it continues the
        // epoch before if its snapshot is at or before where that one ended.
        let continuous = match expected {
            None => seq <= pos.seq,
            Some(e) => seq <= e,
        };
        let shipped = expected.unwrap_or(0).max(pos.seq);
        if !continuous {
            return Ok(partial(out));
        }
        let mut updates = restored.updates;
        while let Some(update) = updates.next() {
            let update = match update {
                Ok(u) => u,
                // Retention deleted a segment before it could be opened: the log no longer
                // holds every change after `pos`.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(partial(out));
                }
                Err(e) => return Err(e),
            };
            seq += 1;
            let ops = decode_tx(&update).map_err(|_| match updates.last_location() {
                Some((file, offset)) => Error::corrupt(file, offset, CorruptKind::Payload),
                None => Error::corrupt(&snapshot_file, 32, CorruptKind::Payload),
            })?;
            for op in &ops {
                if let Op::CreateTable(meta) = op {
                    names.insert(meta.id, meta.name.clone());
                }
            }
            if seq <= shipped {
                continue;
            }
            // Only what is durable: the file may hold a strong commit whose fsync has not
            // returned (and may fail).
            if upto.is_some_and(|u| u.epoch == info.id && seq > u.seq) {
                return Ok(Changes::Since(out));
            }
            if out.len() == limit {
                return Ok(Changes::Since(out));
            }
            let pos = CommitPos {
                epoch: info.id,
                seq,
            };
            out.push(change_named(pos, ops, &names));
        }
        if !updates.lost().is_empty() {
            // Salvage skipped damage: what follows is not contiguous.
            return Ok(partial(out));
        }
        expected = Some(seq);
        if upto.is_some_and(|u| u.epoch == info.id) {
            break;
        }
    }
    if expected.is_some_and(|end| pos.seq > end) {
        return Err(Error::InvalidArgument(format!(
            "position {pos:?} is ahead of the log, which ends at seq {}",
            expected.unwrap_or(0)
        )));
    }
    Ok(Changes::Since(out))
}

/// What was read before the log stopped holding every change: those changes, or `Reset` if
/// there were none.
fn partial(out: Vec<Change>) -> Changes {
    if out.is_empty() {
        Changes::Reset
    } else {
        Changes::Since(out)
    }
}

/// The change one transaction (`ops`) made, for a state `after` it (table names are looked
/// up there).
pub(crate) fn change_in(pos: CommitPos, ops: Vec<Op>, after: &State) -> Change {
    let names = table_names(&ops, after);
    change_named(pos, ops, &names)
}

/// The change one transaction (`ops`) made, with table names from `names`.
pub(crate) fn change_named(pos: CommitPos, ops: Vec<Op>, names: &HashMap<u32, String>) -> Change {
    // The version floors' rows are the store's bookkeeping, not changes of the program's.
    let floors = names
        .iter()
        .find(|(_, n)| *n == VERSION_FLOORS)
        .map(|(id, _)| *id);
    Change {
        pos,
        ops: ops
            .into_iter()
            .filter(|op| !matches!(op, Op::Put { table, .. } if Some(*table) == floors))
            .filter_map(|op| change_op(op, names))
            .collect(),
    }
}

fn change_op(op: Op, names: &HashMap<u32, String>) -> Option<ChangeOp> {
    let name = |id: u32| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    match op {
        Op::Put {
            table,
            key,
            value,
            version,
        } => Some(ChangeOp::Put {
            table: name(table),
            key: key.to_vec(),
            value: value.to_vec(),
            version,
        }),
        Op::Delete { table, key } => Some(ChangeOp::Delete {
            table: name(table),
            key: key.to_vec(),
        }),
        Op::CreateTable(_) | Op::AlterTable(_) | Op::Sequence { .. } => None,
    }
}
