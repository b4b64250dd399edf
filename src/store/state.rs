//! The store's state in memory: persistent (structurally shared) maps, so a read snapshot is
//! a reference-counted pointer and a writer's copy costs O(1).

use std::fmt;

use imbl::OrdMap;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::codec::{Bytes, Op, STORE_FORMAT, TableMeta, decode_prefix, decode_value};
use crate::error::Result;

/// A row: its encoded value and its version (bumped by one on every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Encoded value.
    pub value: Bytes,
    /// Version, starting at 1 for a new row.
    pub version: u64,
}

/// A unique index: encoded index key → primary key. Derived from the rows when a table is
/// opened with its index definitions; never written to disk.
#[derive(Debug, Clone)]
pub struct IndexState {
    /// Index name.
    pub name: String,
    /// Index key → primary key.
    pub map: OrdMap<Bytes, Bytes>,
}

/// One table.
#[derive(Debug, Clone)]
pub struct TableState {
    /// What it is.
    pub meta: TableMeta,
    /// The next id the table's sequence hands out (never goes back).
    pub next_id: u64,
    /// Rows by encoded key, in key order.
    pub rows: OrdMap<Bytes, Row>,
    /// Unique indexes registered by the program.
    pub indexes: Vec<IndexState>,
}

/// A value derived from a state by the program (see `DerivedView`), published with it.
pub type ViewValue = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// The whole state of a store.
#[derive(Clone, Default)]
pub struct State {
    /// Number of transactions committed since the store was created.
    pub seq: u64,
    /// The epoch of the log this state was committed in (or restored from); not stored in
    /// snapshots. With `seq`, the state's [`CommitPos`](crate::CommitPos).
    pub epoch: u64,
    /// Increases with every change, derived ones (indexes) included; publication never goes
    /// back to a lower generation.
    pub generation: u64,
    /// Next table id.
    pub next_table_id: u32,
    /// Tables by id.
    pub tables: OrdMap<u32, TableState>,
    /// Table ids by name.
    pub by_name: OrdMap<String, u32>,
    /// The program's derived view of this state, if it set one.
    pub view: Option<ViewValue>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("seq", &self.seq)
            .field("generation", &self.generation)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// The table named `name`.
    pub fn table_by_name(&self, name: &str) -> Option<&TableState> {
        self.by_name.get(name).and_then(|id| self.tables.get(id))
    }

    /// Applies one logged change (replay and commit). An op that does not fit the state is an
    /// error: the log is damaged or was written by another program.
    pub fn apply(&mut self, op: &Op) -> std::result::Result<(), String> {
        match op {
            Op::CreateTable(meta) => {
                if self.tables.contains_key(&meta.id) || self.by_name.contains_key(&meta.name) {
                    return Err(format!("table {} created twice", meta.name));
                }
                self.by_name.insert(meta.name.clone(), meta.id);
                self.next_table_id = self.next_table_id.max(meta.id.saturating_add(1));
                self.tables.insert(
                    meta.id,
                    TableState {
                        meta: meta.clone(),
                        next_id: 1,
                        rows: OrdMap::new(),
                        indexes: Vec::new(),
                    },
                );
            }
            Op::AlterTable(meta) => {
                let t = self.table_mut(meta.id)?;
                if t.meta.name != meta.name {
                    return Err(format!("table {} renamed to {}", t.meta.name, meta.name));
                }
                t.meta = meta.clone();
            }
            Op::Put {
                table,
                key,
                value,
                version,
            } => {
                let row = Row {
                    value: value.clone(),
                    version: *version,
                };
                self.table_mut(*table)?.rows.insert(key.clone(), row);
            }
            Op::Delete { table, key } => {
                self.table_mut(*table)?.rows.remove(key);
            }
            Op::Sequence { table, next } => {
                let t = self.table_mut(*table)?;
                t.next_id = t.next_id.max(*next);
            }
        }
        Ok(())
    }

    /// The table with id `id`, for changing (copying only the path to it).
    pub fn table_mut(&mut self, id: u32) -> std::result::Result<&mut TableState, String> {
        self.tables
            .get_mut(&id)
            .ok_or_else(|| format!("no table with id {id}"))
    }

    /// Encodes the whole state as a snapshot payload.
    pub fn encode_snapshot(&self) -> Result<Vec<u8>> {
        let image = ImageRef {
            seq: self.seq,
            next_table_id: self.next_table_id,
            tables: self
                .tables
                .values()
                .map(|t| TableRef {
                    meta: &t.meta,
                    next_id: t.next_id,
                    rows: RowsRef(&t.rows),
                })
                .collect(),
        };
        let mut out = vec![STORE_FORMAT];
        out.extend(super::codec::encode_value(&image)?);
        Ok(out)
    }

    /// The `seq` of a snapshot payload, read without decoding the rest.
    pub fn snapshot_seq(b: &[u8]) -> std::result::Result<u64, String> {
        match b.split_first() {
            Some((&STORE_FORMAT, rest)) => decode_prefix(rest),
            Some((v, _)) => Err(format!("store format {v} is not supported")),
            None => Err("empty snapshot".into()),
        }
    }

    /// Decodes a snapshot payload.
    pub fn decode_snapshot(b: &[u8]) -> std::result::Result<State, String> {
        let image: Image = match b.split_first() {
            Some((&STORE_FORMAT, rest)) => decode_value(rest)?,
            Some((v, _)) => return Err(format!("store format {v} is not supported")),
            None => return Err("empty snapshot".into()),
        };
        let mut state = State {
            seq: image.seq,
            epoch: 0,
            generation: 0,
            next_table_id: image.next_table_id,
            tables: OrdMap::new(),
            by_name: OrdMap::new(),
            view: None,
        };
        for t in image.tables {
            if state
                .by_name
                .insert(t.meta.name.clone(), t.meta.id)
                .is_some()
            {
                return Err(format!("table {} appears twice", t.meta.name));
            }
            state.next_table_id = state.next_table_id.max(t.meta.id.saturating_add(1));
            let table = TableState {
                meta: t.meta,
                next_id: t.next_id,
                rows: t.rows.0,
                indexes: Vec::new(),
            };
            state.tables.insert(table.meta.id, table);
        }
        Ok(state)
    }
}

#[derive(Serialize)]
struct ImageRef<'a> {
    seq: u64,
    next_table_id: u32,
    tables: Vec<TableRef<'a>>,
}

#[derive(Serialize)]
struct TableRef<'a> {
    meta: &'a TableMeta,
    next_id: u64,
    rows: RowsRef<'a>,
}

/// Rows serialized in key order as a sequence of (key, value, version), without copying.
struct RowsRef<'a>(&'a OrdMap<Bytes, Row>);

impl Serialize for RowsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, r)| (k, &r.value, r.version)))
    }
}

#[derive(Deserialize)]
struct Image {
    seq: u64,
    next_table_id: u32,
    tables: Vec<TableImage>,
}

#[derive(Deserialize)]
struct TableImage {
    meta: TableMeta,
    next_id: u64,
    rows: RowsImage,
}

/// Rows decoded straight into the map (no intermediate list), strictly in key order.
struct RowsImage(OrdMap<Bytes, Row>);

impl<'de> Deserialize<'de> for RowsImage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RowsImage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("rows in key order")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<RowsImage, A::Error> {
                let mut rows = OrdMap::new();
                let mut last: Option<Bytes> = None;
                while let Some((key, value, version)) = seq.next_element::<(Bytes, Bytes, u64)>()? {
                    if last.as_ref().is_some_and(|l| *l >= key) {
                        return Err(de::Error::custom("rows out of key order"));
                    }
                    last = Some(key.clone());
                    rows.insert(key, Row { value, version });
                }
                Ok(RowsImage(rows))
            }
        }
        d.deserialize_seq(V)
    }
}
