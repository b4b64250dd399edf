//! The store's state in memory: persistent (structurally shared) maps, so a read snapshot is
//! a reference-counted pointer and a writer's copy costs O(1).

use std::fmt;
use std::sync::Arc;

use super::body::{BodyRef, PairsRef, RowsRef, TableRef, write_body};
use super::codec::{Op, TableMeta, decode_prefix, decode_prefix_len};
use crate::error::Result;
use crate::store::rows::{BaseBuilder, BaseId, Bytes, MarkedRun, Row, Rows, read_varint};
use imbl::OrdMap;

/// A unique index: encoded index key → primary key. Derived from the rows when a table is
/// opened with its index definitions; never written to disk.
#[derive(Debug, Clone)]
pub struct IndexState {
    /// Index name.
    pub name: String,
    /// Index key → primary key (the row's value).
    pub map: Rows,
}

/// One table.
#[derive(Debug, Clone)]
pub struct TableState {
    /// What it is.
    pub meta: TableMeta,
    /// The next id the table's sequence hands out (never goes back).
    pub next_id: u64,
    /// Rows by encoded key, in key order.
    pub rows: Rows,
    /// Unique indexes registered by the program.
    pub indexes: Vec<IndexState>,
    /// Unique indexes read from a snapshot and not yet claimed by a registration: each holds
    /// the entries of the base rows (`rows.base_row`), whatever changed since; or, with
    /// `folded`, of the base the replay folded its changes into.
    pub stored: Vec<IndexState>,
    /// With `stored`, when the replay folded changes into a new base: what changed from the
    /// base the stored indexes describe to the rows' base.
    pub folded: Option<Arc<Folded>>,
    /// With `stored`, when the replay put its changes in the delta over the base the stored
    /// indexes describe: those that kept their rows' unique-index keys.
    pub kept: Option<Arc<Kept>>,
}

/// The changes a replay put in a table's delta in bulk, marked where they kept the
/// unique-index keys of their base rows (FORMAT.md §12.1.1). A claim trusts the stored
/// entries of a marked change's key while the rows' delta still holds that very change (not a
/// later one), as it trusts those of unchanged rows, and so neither decodes the row nor
/// searches the base for it.
#[derive(Debug)]
pub struct Kept {
    /// The base the stored indexes describe: the marks only hold while the rows are on it.
    pub base: BaseId,
    /// The changes.
    pub run: MarkedRun,
}

impl TableState {
    /// The same table with its changes, and its indexes' changes, folded into new bases.
    pub fn compacted(&self) -> TableState {
        let indexes = self.indexes.iter().map(|ix| ix.map.compacted()).collect();
        self.compacted_as(self.rows.compacted(), indexes)
    }

    /// [`compacted`](Self::compacted), given its rows and its indexes' entries (in order)
    /// folded already.
    pub fn compacted_as(&self, rows: Rows, indexes: Vec<Rows>) -> TableState {
        let mut t = self.clone();
        if t.rows.delta_len() > 0 {
            t.drop_stored(); // they describe the old base
        }
        t.rows = rows;
        for (ix, map) in t.indexes.iter_mut().zip(indexes) {
            ix.map = map;
        }
        for ix in &mut t.stored {
            ix.map = ix.map.compacted();
        }
        t
    }

    /// Whether [`compacted`](Self::compacted) would change anything: there are changes, or
    /// a base holds a shared buffer mostly of other rows.
    pub fn needs_compaction(&self) -> bool {
        let mut maps = self.indexes.iter().chain(&self.stored).map(|ix| &ix.map);
        self.rows.needs_fold() || maps.any(Rows::needs_fold)
    }

    /// Drops the stored indexes, and what they need to be brought up to date.
    pub fn drop_stored(&mut self) {
        self.stored.clear();
        self.folded = None;
        self.kept = None;
    }

    /// Whether rows appended by a transaction wait to be sealed (see [`Rows::seal`]).
    fn has_pending(&self) -> bool {
        self.rows.has_pending() || self.indexes.iter().any(|ix| ix.map.has_pending())
    }

    /// Whether the changes on top of the base are many enough to fold them in.
    pub fn delta_is_large(&self) -> bool {
        self.rows.delta_len() > self.rows.base_len() / 8 + 4096
    }
}

/// Rows of a base a claim checks against a stored index before it trusts it (see
/// [`sample_positions`]).
const SAMPLE_ROWS: usize = 64;

/// The positions of the rows of a base of `len` rows that a claim checks against a stored
/// index: [`SAMPLE_ROWS`] or so, evenly spread, the last included.
pub fn sample_positions(len: usize) -> impl Iterator<Item = usize> {
    let step = (len / SAMPLE_ROWS).max(1);
    (0..len).step_by(step).chain(len.checked_sub(1))
}

/// What a replay changed in a table's rows when it folded them into a new base while the
/// table held stored unique indexes (which describe the base before): every key whose row
/// differs between the two bases, with its value in the base before, and that base's sample
/// rows. A claim checks the stored indexes and brings them up to date with these, at a cost
/// of the changed rows, not of the table; the base before itself is not held (only the
/// before values of the changed keys, in one buffer).
#[derive(Debug)]
pub struct Folded {
    /// The base the changes were folded into (set once it is laid out): they only hold
    /// while the rows are on it.
    pub base: BaseId,
    /// Rows the base before held.
    pub before_len: usize,
    /// Its rows at [`sample_positions`] of `before_len`: key and value.
    pub sample: Vec<(Bytes, Bytes)>,
    /// The changed keys and their before values, one after the other.
    data: Vec<u8>,
    /// Per changed key, in strictly increasing key order: where its key starts in `data`,
    /// the key's length, and its before value's ([`ABSENT`]: no row before; [`SAME_KEYS`]:
    /// not kept, the row kept its unique-index keys), which follows the key.
    items: Vec<(usize, u32, u32)>,
    /// Whether every key pushed fit in `items`.
    fits: bool,
}

/// The length of a before value that is not there.
const ABSENT: u32 = u32::MAX;

/// The length of a before value not kept, as the change kept its row's unique-index keys.
const SAME_KEYS: u32 = u32::MAX - 1;

/// A changed key's row in the base before a fold (see [`Folded::changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before<'a> {
    /// No row.
    Absent,
    /// A row of this value.
    Value(&'a [u8]),
    /// A row whose unique-index keys are the row's now (its value not kept).
    SameKeys,
}

impl Folded {
    /// Folded changes from a base of `before_len` rows whose sample rows are `sample`, with
    /// room for `keys` changed keys (of the sample's average size); add the keys with
    /// [`push_change`](Self::push_change), then set `base`.
    pub fn new(before_len: usize, sample: Vec<(Bytes, Bytes)>, keys: usize) -> Folded {
        let bytes: usize = sample.iter().map(|(k, v)| k.len() + v.len()).sum();
        // Rounded up, with an eighth more: a buffer a little short would be copied whole
        // into one twice its size at the last keys (room never written is never touched).
        let average = bytes.div_ceil(sample.len().max(1));
        let bytes = (average + average / 8).saturating_mul(keys);
        Folded {
            base: BaseId::default(),
            before_len,
            sample,
            data: Vec::with_capacity(bytes),
            items: Vec::with_capacity(keys),
            fits: true,
        }
    }

    /// Adds key `key` (above every key added so far) if its row changed: `before`, its value
    /// in the base before, if it had a row there, and `now`, its value after; with
    /// `same_keys` (the change kept the unique-index keys of a row there before, to a row
    /// there now) only that. A key or value too long to lay out makes it
    /// [`fits`](Self::fits) no more.
    pub fn push_change(
        &mut self,
        key: &[u8],
        before: Option<&[u8]>,
        now: Option<&[u8]>,
        same_keys: bool,
    ) {
        if before == now {
            return;
        }
        let value_len = match before.map(|v| u32::try_from(v.len())) {
            Some(_) if same_keys && now.is_some() => SAME_KEYS,
            None => ABSENT,
            Some(Ok(n)) if n < SAME_KEYS => n,
            Some(_) => return self.fits = false,
        };
        let Ok(key_len) = u32::try_from(key.len()) else {
            return self.fits = false;
        };
        self.items.push((self.data.len(), key_len, value_len));
        self.data.extend_from_slice(key);
        if value_len < SAME_KEYS {
            self.data.extend_from_slice(before.unwrap_or_default());
        }
    }

    /// Whether every key added fit.
    pub fn fits(&self) -> bool {
        self.fits
    }

    /// The number of changed keys.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no key changed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The changed keys in increasing order, each with its row in the base before.
    pub fn changes(&self) -> impl Iterator<Item = (&[u8], Before<'_>)> + '_ {
        self.items.iter().map(|&(at, key_len, value_len)| {
            let value_at = at + key_len as usize;
            let key = self.data.get(at..value_at).unwrap_or_default();
            let before = match value_len {
                ABSENT => Before::Absent,
                SAME_KEYS => Before::SameKeys,
                n => Before::Value(
                    self.data
                        .get(value_at..value_at + n as usize)
                        .unwrap_or_default(),
                ),
            };
            (key, before)
        })
    }
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
                        rows: Rows::default(),
                        indexes: Vec::new(),
                        stored: Vec::new(),
                        folded: None,
                        kept: None,
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

    /// Seals the rows each table and index appended in the transaction just applied (see
    /// [`Rows::seal`]): done before the state is shared.
    pub fn seal(&mut self) {
        let ids: Vec<u32> = self
            .tables
            .iter()
            .filter(|(_, t)| t.has_pending())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(t) = self.tables.get_mut(&id) {
                t.rows.seal();
                for ix in &mut t.indexes {
                    ix.map.seal();
                }
            }
        }
    }

    /// The same state with every table's and index's changes folded into a new base (one
    /// copy of each row): done when a snapshot starts a new epoch, so the persistent deltas
    /// stay small.
    pub fn compacted(&self) -> State {
        let mut out = self.clone();
        for (id, t) in self.tables.iter() {
            if !t.needs_compaction() {
                continue;
            }
            out.tables.insert(*id, t.compacted());
        }
        out
    }

    /// Folds the tables whose changes outnumber an eighth of their base (after replaying many
    /// transactions) into new bases, unless they hold stored indexes still to be claimed.
    pub fn fold_large_deltas(&mut self) {
        let large: Vec<u32> = self
            .tables
            .iter()
            .filter(|(_, t)| t.delta_is_large() && t.stored.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in large {
            if let Some(t) = self.tables.get(&id).map(TableState::compacted) {
                self.tables.insert(id, t);
            }
        }
    }

    /// Encodes the whole state as a snapshot payload (image format 4), in memory; see
    /// [`write_snapshot`](Self::write_snapshot).
    pub fn encode_snapshot(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_snapshot(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes the whole state as a snapshot payload to `out`, piece by piece: image format
    /// 4, the format 2 body in LZ4 blocks compressed as the body is encoded, so neither the
    /// body nor the image is ever whole in memory.
    pub fn write_snapshot(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        out(&[IMAGE_FORMAT])?;
        let image = self.image_ref();
        super::compress::stream_blocks(
            self.approx_image_bytes(),
            |w| write_body(&image, w, false).map(drop),
            out,
        )
    }

    /// [`write_snapshot`](Self::write_snapshot) of [`compacted`](Self::compacted), which it
    /// returns: each table is folded as its image is written (the fold's records go to the
    /// image as they are laid out), so compaction passes over the changes once, and the
    /// image's compression runs beside the fold.
    pub fn write_snapshot_folded(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<State> {
        out(&[IMAGE_FORMAT])?;
        let image = self.image_ref();
        let mut folded = Vec::new();
        super::compress::stream_blocks(
            self.approx_image_bytes(),
            |w| {
                folded = write_body(&image, w, true)?;
                Ok(())
            },
            out,
        )?;
        let mut next = self.clone();
        for ((id, t), f) in self.tables.iter().zip(folded) {
            if !t.needs_compaction() {
                continue;
            }
            // The new bases' directories are built now that the image is written.
            let rows = f.rows.unwrap_or_else(|| t.rows.clone());
            for r in f.indexes.iter().chain([&rows]) {
                r.start_directory();
            }
            next.tables.insert(*id, t.compacted_as(rows, f.indexes));
        }
        Ok(next)
    }

    /// About how many bytes the image's body will have, in O(tables): the bases' bytes, and
    /// a guess per row held beside them. Only a hint of whether compressing it on several
    /// threads pays (see `compress::stream_blocks`).
    fn approx_image_bytes(&self) -> usize {
        self.tables
            .values()
            .map(|t| {
                let rows = &t.rows;
                let ix: usize = t.indexes.iter().map(|i| i.map.approx_bytes()).sum();
                rows.approx_bytes().saturating_add(ix)
            })
            .fold(0usize, usize::saturating_add)
    }

    pub(super) fn image_ref(&self) -> BodyRef<'_> {
        BodyRef {
            seq: self.seq,
            next_table_id: self.next_table_id,
            tables: self
                .tables
                .values()
                .map(|t| TableRef {
                    meta: &t.meta,
                    next_id: t.next_id,
                    rows: RowsRef(&t.rows),
                    indexes: t
                        .indexes
                        .iter()
                        .map(|ix| (ix.name.as_str(), PairsRef(&ix.map)))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Encodes the whole state as an uncompressed image (format 2), which readers accept too.
    pub fn encode_image_uncompressed(&self) -> Result<Vec<u8>> {
        let image = self.image_ref();
        let mut out = vec![IMAGE_V2];
        out.extend(super::codec::encode_value(&image)?);
        Ok(out)
    }

    /// The `seq` of a snapshot payload, read without decoding the rest.
    pub fn snapshot_seq(b: &[u8]) -> std::result::Result<u64, String> {
        match b.split_first() {
            Some((&(IMAGE_V1 | IMAGE_V2), rest)) => decode_prefix(rest),
            Some((&IMAGE_V3, rest)) => {
                decode_prefix(&super::compress::decompress_prefix(rest, 9, false)?)
            }
            Some((&IMAGE_FORMAT, rest)) => {
                decode_prefix(&super::compress::decompress_prefix(rest, 9, true)?)
            }
            Some((v, _)) => Err(format!("store format {v} is not supported")),
            None => Err("empty snapshot".into()),
        }
    }

    /// Decodes a snapshot payload (a copy of `b`; see [`decode_snapshot_owned`]).
    ///
    /// [`decode_snapshot_owned`]: Self::decode_snapshot_owned
    pub fn decode_snapshot(b: &[u8]) -> std::result::Result<State, String> {
        Self::decode_snapshot_owned(b.to_vec())
    }

    /// Decodes a snapshot payload (image format 1 or 2). The rows are not decoded one by one:
    /// a table's rows, and its stored unique indexes, are ranges of the payload, checked for
    /// bounds and key order.
    pub fn decode_snapshot_owned(b: Vec<u8>) -> std::result::Result<State, String> {
        Self::decode_image(b, false)
    }

    /// [`decode_snapshot_owned`](Self::decode_snapshot_owned) for a replay: the tables'
    /// bases build no directory until [`Rows::start_directory`] (a replay that folds a
    /// table's tail into a new base never needs its snapshot base's).
    pub(super) fn decode_snapshot_for_replay(b: Vec<u8>) -> std::result::Result<State, String> {
        Self::decode_image(b, true)
    }

    /// Decodes a snapshot payload; `later`: see [`State::decode_snapshot_for_replay`].
    fn decode_image(b: Vec<u8>, later: bool) -> std::result::Result<State, String> {
        let (version, data, start) = match b.first() {
            Some(&v @ (IMAGE_V1 | IMAGE_V2)) => (v, Arc::new(b), 1),
            Some(&IMAGE_V3) => {
                let body = super::compress::decompress(b.get(1..).unwrap_or_default())?;
                (IMAGE_V3, Arc::new(body), 0)
            }
            Some(&IMAGE_FORMAT) => {
                let body = super::compress::decompress_blocks(b.get(1..).unwrap_or_default())?;
                drop(b);
                (IMAGE_FORMAT, Arc::new(body), 0)
            }
            Some(v) => return Err(format!("store format {v} is not supported")),
            None => return Err("empty snapshot".into()),
        };
        let mut p = Parser {
            b: &data,
            at: start,
        };
        let seq = p.varint()?;
        let next_table_id =
            u32::try_from(p.varint()?).map_err(|_| "next table id out of range".to_string())?;
        let mut state = State {
            seq,
            epoch: 0,
            generation: 0,
            next_table_id,
            tables: OrdMap::new(),
            by_name: OrdMap::new(),
            view: None,
        };
        for _ in 0..p.count(1)? {
            let meta: TableMeta = p.serde()?;
            let next_id = p.varint()?;
            let n = p.count(3)?;
            let mut base = BaseBuilder::of_records(data.clone(), n, true);
            for _ in 0..n {
                let (key_at, key_len) = p.bytes()?;
                let (value_at, value_len) = p.bytes()?;
                let version = p.varint()?;
                base.push(key_at, key_len, value_at, value_len, version)?;
            }
            let rows = if later {
                Rows::from_base_later(base.finish())
            } else {
                Rows::from_base(base.finish())
            };
            let mut stored = Vec::new();
            if version >= IMAGE_V2 {
                for _ in 0..p.count(2)? {
                    let name: String = p.serde()?;
                    let n = p.count(2)?;
                    let mut base = BaseBuilder::of_records(data.clone(), n, false);
                    for _ in 0..n {
                        let (key_at, key_len) = p.bytes()?;
                        let (value_at, value_len) = p.bytes()?;
                        base.push(key_at, key_len, value_at, value_len, 0)?;
                    }
                    if stored.iter().any(|s: &IndexState| s.name == name) {
                        return Err(format!("index {}.{name} appears twice", meta.name));
                    }
                    let map = Rows::from_base(base.finish());
                    stored.push(IndexState { name, map });
                }
            }
            if state.by_name.insert(meta.name.clone(), meta.id).is_some() {
                return Err(format!("table {} appears twice", meta.name));
            }
            state.next_table_id = state.next_table_id.max(meta.id.saturating_add(1));
            let table = TableState {
                meta,
                next_id,
                rows,
                indexes: Vec::new(),
                stored,
                folded: None,
                kept: None,
            };
            state.tables.insert(table.meta.id, table);
        }
        if p.at != data.len() {
            return Err(format!("{} trailing bytes", data.len() - p.at));
        }
        Ok(state)
    }
}

/// Whether `b` decodes as a store state image (for verification).
pub(crate) fn decode_state(b: &[u8]) -> std::result::Result<(), String> {
    State::decode_snapshot(b).map(|_| ())
}

/// Reads a bincode (standard configuration) state image in place.
struct Parser<'a> {
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or("the image ends early")?;
        self.at += n;
        Ok(s)
    }

    /// A variable-length integer: one byte up to 250, else a marker and 2, 4 or 8 bytes.
    fn varint(&mut self) -> std::result::Result<u64, String> {
        let rest = self.b.get(self.at..).unwrap_or_default();
        match read_varint(rest) {
            Some((n, len)) => {
                self.at += len;
                Ok(n)
            }
            None => match rest.first() {
                None | Some(251..=253) => Err("the image ends early".into()),
                Some(other) => Err(format!("bad integer marker {other}")),
            },
        }
    }

    /// A count of items that take at least `min` bytes each (bounded by what is left).
    fn count(&mut self, min: usize) -> std::result::Result<usize, String> {
        let n = self.varint()?;
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min as u64) > left {
            return Err(format!("{n} items cannot fit in {left} bytes"));
        }
        Ok(n as usize)
    }

    /// A byte string: where it starts and its length.
    fn bytes(&mut self) -> std::result::Result<(usize, usize), String> {
        let n = self.count(1)?;
        let at = self.at;
        self.take(n)?;
        Ok((at, n))
    }

    /// A serde value (bincode, standard configuration).
    fn serde<T: serde::de::DeserializeOwned>(&mut self) -> std::result::Result<T, String> {
        let rest = self.b.get(self.at..).unwrap_or_default();
        let (v, n) = decode_prefix_len(rest)?;
        self.at += n;
        Ok(v)
    }
}

/// The image format this build writes: 4, the format 2 body in a stream of LZ4 blocks.
pub const IMAGE_FORMAT: u8 = 4;
/// The format 2 body in LZ4-compressed chunks after a chunk table; still read.
pub const IMAGE_V3: u8 = 3;
/// Uncompressed, with the unique indexes; still read.
pub const IMAGE_V2: u8 = 2;
/// The first image format (no indexes), still read.
pub const IMAGE_V1: u8 = 1;
