//! A table's rows (and a unique index's entries) in memory: an immutable sorted base, shared by
//! every state that has it and built without a per-row allocation (straight from snapshot
//! bytes on restore, by one merge at compaction), under a persistent delta of the changes
//! since. Cloning is O(1); a change copies only a path of the delta.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering as MemoryOrder};
use std::sync::{Arc, OnceLock};

use imbl::OrdMap;

use super::codec::Bytes;
use super::directory::{Directory, key_hash};

/// A row: its encoded value and its version (bumped by one on every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Encoded value.
    pub value: Bytes,
    /// Version, starting at 1 for a new row.
    pub version: u64,
}

/// A row read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    /// Encoded key.
    pub key: &'a [u8],
    /// Encoded value.
    pub value: &'a [u8],
    /// Version.
    pub version: u64,
}

/// A key changed since the base was laid out.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its row in the base, if any.
    pub before: Option<RowRef<'a>>,
    /// Its row now, if any.
    pub now: Option<RowRef<'a>>,
}

/// Where one base row's bytes are.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The key's first 8 bytes, big-endian, zero-padded: most comparisons end here.
    prefix: u64,
    key_at: usize,
    value_at: usize,
    key_len: u32,
    value_len: u32,
    version: u64,
}

/// Sorted rows in one shared buffer.
#[derive(Debug, Default)]
pub struct Base {
    data: Arc<Vec<u8>>,
    slots: Vec<Slot>,
    /// The key prefix of every `FENCE`-th slot: a search narrows to one stretch of slots in
    /// this small array (it stays in cache) before it touches the slots.
    fences: Vec<u64>,
    /// Exact-key lookups by hash: set once built (inline for a small base, on a background
    /// thread for a large one, so an open or a compaction does not wait for it); until then
    /// lookups search the slots. Holds `None` for a base too small to need one.
    directory: OnceLock<Option<Directory>>,
}

/// Bases of at least this many rows build their directory on a background thread.
const BACKGROUND_DIRECTORY_ROWS: usize = 1 << 16;

/// Slots between fences.
const FENCE: usize = 32;

fn fences_of(slots: &[Slot]) -> Vec<u64> {
    slots.iter().step_by(FENCE).map(|s| s.prefix).collect()
}

#[allow(
    clippy::big_endian_bytes,
    reason = "key order is byte order: the prefix must compare as the bytes do"
)]
fn prefix_of(key: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = key.len().min(8);
    if let (Some(dst), Some(src)) = (p.get_mut(..n), key.get(..n)) {
        dst.copy_from_slice(src);
    }
    u64::from_be_bytes(p)
}

impl Base {
    /// A base of `slots` over `data`, with its fences; its directory is built by
    /// [`Base::shared`].
    fn new(data: Arc<Vec<u8>>, slots: Vec<Slot>) -> Base {
        Base {
            fences: fences_of(&slots),
            directory: OnceLock::new(),
            data,
            slots,
        }
    }

    /// The base, shared, with its directory built: inline when small, else on a background
    /// thread (lookups search the slots until it is set; if no thread can be started, they
    /// always do).
    fn shared(self) -> Arc<Base> {
        let base = Arc::new(self);
        if base.len() < BACKGROUND_DIRECTORY_ROWS {
            base.build_directory();
        } else {
            let b = Arc::clone(&base);
            let _ = std::thread::Builder::new()
                .name("statelog-directory".into())
                .spawn(move || b.build_directory());
        }
        base
    }

    fn build_directory(&self) {
        let hash = |i: usize| {
            self.slots.get(i).map_or(0, |s| {
                let key = self
                    .data
                    .get(s.key_at..s.key_at + s.key_len as usize)
                    .unwrap_or_default();
                key_hash(s.prefix, key)
            })
        };
        let _ = self.directory.set(Directory::build(self.slots.len(), hash));
    }

    /// Rows whose keys and values are ranges of `data`; `rows` holds (key start, key length,
    /// value start, value length, version) in strictly increasing key order. Ranges outside
    /// `data` or out of order are refused.
    pub fn from_ranges(
        data: Arc<Vec<u8>>,
        rows: impl IntoIterator<Item = (usize, usize, usize, usize, u64)>,
    ) -> Result<Base, String> {
        let mut b = BaseBuilder::new(data, 0);
        for (key_at, key_len, value_at, value_len, version) in rows {
            b.push(key_at, key_len, value_at, value_len, version)?;
        }
        Ok(b.finish())
    }

    /// Rows copied from an ordered iterator into a new buffer.
    fn collect<'a>(rows: impl Iterator<Item = RowRef<'a>>) -> Base {
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for r in rows {
            let key_at = data.len();
            data.extend_from_slice(r.key);
            let value_at = data.len();
            data.extend_from_slice(r.value);
            ranges.push((key_at, r.key.len(), value_at, r.value.len(), r.version));
        }
        let data = Arc::new(data);
        let slots: Vec<Slot> = ranges
            .into_iter()
            .map(|(key_at, key_len, value_at, value_len, version)| Slot {
                prefix: prefix_of(data.get(key_at..key_at + key_len).unwrap_or_default()),
                key_at,
                value_at,
                key_len: key_len as u32,
                value_len: value_len as u32,
                version,
            })
            .collect();
        Base::new(data, slots)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn row(&self, i: usize) -> Option<RowRef<'_>> {
        let s = self.slots.get(i)?;
        Some(RowRef {
            key: self
                .data
                .get(s.key_at..s.key_at + s.key_len as usize)
                .unwrap_or_default(),
            value: self
                .data
                .get(s.value_at..s.value_at + s.value_len as usize)
                .unwrap_or_default(),
            version: s.version,
        })
    }

    fn key(&self, i: usize) -> &[u8] {
        self.row(i).map_or(&[], |r| r.key)
    }

    fn compare(&self, i: usize, key: &[u8], prefix: u64) -> Ordering {
        match self.slots.get(i) {
            Some(s) if s.prefix != prefix => s.prefix.cmp(&prefix),
            Some(_) => self.key(i).cmp(key),
            None => Ordering::Greater,
        }
    }

    /// The index of `key`, if the base holds it: by the directory when there is one.
    fn lookup(&self, key: &[u8]) -> Option<usize> {
        let Some(Some(directory)) = self.directory.get() else {
            return self.find(key).ok();
        };
        let prefix = prefix_of(key);
        directory.find(key_hash(prefix, key), |i| self.holds_at(i, key, prefix))
    }

    /// Whether slot `i` holds `key` (whose prefix is `prefix`): a key of up to 8 bytes is
    /// its prefix and length, a longer one is compared byte by byte.
    fn holds_at(&self, i: usize, key: &[u8], prefix: u64) -> bool {
        self.slots.get(i).is_some_and(|s| {
            s.prefix == prefix
                && s.key_len as usize == key.len()
                && (key.len() <= 8 || self.key(i) == key)
        })
    }

    /// The index of `key`, or where it would go.
    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        let prefix = prefix_of(key);
        // Stretches that start below the prefix come before the key, except the last of
        // them; those that start above it come after.
        let first = self.fences.partition_point(|f| *f < prefix);
        let past = self.fences.partition_point(|f| *f <= prefix);
        let mut lo = first.saturating_sub(1) * FENCE;
        let mut hi = if past >= self.fences.len() {
            self.slots.len()
        } else {
            past * FENCE
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.compare(mid, key, prefix) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// The first index inside a lower bound.
    fn start(&self, b: Bound<&[u8]>) -> usize {
        match b {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.find(k).unwrap_or_else(|i| i),
            Bound::Excluded(k) => self.find(k).map_or_else(|i| i, |i| i + 1),
        }
    }

    /// The first index past an upper bound.
    fn end(&self, b: Bound<&[u8]>) -> usize {
        match b {
            Bound::Unbounded => self.slots.len(),
            Bound::Included(k) => self.find(k).map_or_else(|i| i, |i| i + 1),
            Bound::Excluded(k) => self.find(k).unwrap_or_else(|i| i),
        }
    }
}

/// Builds a [`Base`] row by row, checking each as it comes.
pub struct BaseBuilder {
    data: Arc<Vec<u8>>,
    slots: Vec<Slot>,
}

impl BaseBuilder {
    /// A builder over `data`, with room for `rows` rows.
    pub fn new(data: Arc<Vec<u8>>, rows: usize) -> Self {
        BaseBuilder {
            data,
            slots: Vec::with_capacity(rows),
        }
    }

    /// Adds the next row: its key and value are ranges of the data, and its key must be
    /// greater than the previous one's.
    pub fn push(
        &mut self,
        key_at: usize,
        key_len: usize,
        value_at: usize,
        value_len: usize,
        version: u64,
    ) -> Result<(), String> {
        let key = self
            .data
            .get(key_at..key_at.saturating_add(key_len))
            .ok_or("a key lies outside the data")?;
        if value_at.saturating_add(value_len) > self.data.len() {
            return Err("a value lies outside the data".into());
        }
        let prefix = prefix_of(key);
        if let Some(last) = self.slots.last() {
            let ordered = match last.prefix.cmp(&prefix) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => self
                    .data
                    .get(last.key_at..last.key_at + last.key_len as usize)
                    .is_some_and(|prev| prev < key),
            };
            if !ordered {
                return Err("rows out of key order".into());
            }
        }
        self.slots.push(Slot {
            prefix,
            key_at,
            value_at,
            key_len: u32::try_from(key_len).map_err(|_| "key too long")?,
            value_len: u32::try_from(value_len).map_err(|_| "value too long")?,
            version,
        });
        Ok(())
    }

    /// The base.
    pub fn finish(self) -> Base {
        Base::new(self.data, self.slots)
    }
}

/// Rows by encoded key, in key order: a shared base and the changes since (`None`: deleted
/// from the base).
#[derive(Debug, Clone, Default)]
pub struct Rows {
    base: Arc<Base>,
    delta: OrdMap<Bytes, Option<Row>>,
    len: usize,
    /// A bit per hash of every key ever put in the delta: a get whose bit is clear skips the
    /// delta's tree (most gets, while the delta is small next to the base). Shared by every
    /// state built on this base (see [`DeltaKeys`]).
    seen: Arc<DeltaKeys>,
}

/// Rows a sorted run needs before [`Rows::put_sorted`] merges it into a new base.
const MERGE_RUN_MIN: usize = 1024;

/// Keys a delta's filter is sized for, over a base of `base_len` rows: half the base, and
/// 4,096 more. A delta is folded into a new base at the next compaction (and on open, once
/// larger than an eighth of the base); under the default compaction policy (a snapshot once
/// the updates outweigh the last one) an epoch's updates rarely change more keys than that.
fn filter_keys(base_len: usize) -> usize {
    base_len / 2 + 4096
}

/// Filter bits per key at the filter's capacity (one hash: at that many keys, a get on a key
/// outside the delta looks in the tree for nothing about once in 16; fewer keys, less often).
const FILTER_BITS_PER_KEY: usize = 16;

/// The key filter of a delta: never a false negative. Bits are only ever set, never cleared,
/// so every state built on one base shares one filter: a state sees at most bits of keys
/// that later (or abandoned) transactions added, which only cost a look in the tree. The
/// writer sets a key's bit before the state holding the key is published, and publication
/// orders the two for readers.
#[derive(Debug)]
struct DeltaKeys(Box<[AtomicU64]>);

impl Default for DeltaKeys {
    fn default() -> Self {
        DeltaKeys::for_base(0)
    }
}

impl DeltaKeys {
    /// A filter for the delta over a base of `base_len` rows.
    fn for_base(base_len: usize) -> DeltaKeys {
        let words = filter_keys(base_len).saturating_mul(FILTER_BITS_PER_KEY) / 64;
        DeltaKeys((0..words.max(1)).map(|_| AtomicU64::new(0)).collect())
    }

    /// The word and bit of `key`: FNV-1a, finished with a multiply-xorshift so every bit
    /// depends on every byte, then mapped onto the bits by a multiply (no modulo).
    fn bit(&self, key: &[u8]) -> (usize, u64) {
        let mut h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        let bits = self.0.len() as u64 * 64;
        let bit = ((u128::from(h) * u128::from(bits)) >> 64) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    fn may_hold(&self, key: &[u8]) -> bool {
        let (w, m) = self.bit(key);
        self.0
            .get(w)
            .is_some_and(|x| x.load(MemoryOrder::Relaxed) & m != 0)
    }

    fn add(&self, key: &[u8]) {
        let (w, m) = self.bit(key);
        if let Some(x) = self.0.get(w)
            && x.load(MemoryOrder::Relaxed) & m == 0
        {
            x.fetch_or(m, MemoryOrder::Relaxed);
        }
    }
}

impl Rows {
    /// Rows that are all in `base`.
    pub fn from_base(base: Base) -> Rows {
        Rows {
            len: base.len(),
            seen: Arc::new(DeltaKeys::for_base(base.len())),
            base: base.shared(),
            delta: OrdMap::new(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Changes held on top of the base.
    pub fn delta_len(&self) -> usize {
        self.delta.len()
    }

    /// The row under `key`.
    pub fn get(&self, key: &[u8]) -> Option<RowRef<'_>> {
        if self.delta.is_empty() || !self.seen.may_hold(key) {
            return self.base.lookup(key).and_then(|i| self.base.row(i));
        }
        match self.delta.get_key_value(key) {
            Some((k, Some(r))) => Some(RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            }),
            Some((_, None)) => None,
            None => self.base.lookup(key).and_then(|i| self.base.row(i)),
        }
    }

    /// Whether a row is under `key`.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Puts `row` under `key`; returns whether a row was there.
    pub fn insert(&mut self, key: Bytes, row: Row) -> bool {
        self.insert_with(key, row, None)
    }

    /// [`insert`](Self::insert) when the caller has just looked the key up: `existed` says
    /// whether a row was there, which spares a second search of the base.
    pub fn insert_known(&mut self, key: Bytes, row: Row, existed: bool) {
        self.insert_with(key, row, Some(existed));
    }

    fn insert_with(&mut self, key: Bytes, row: Row, known: Option<bool>) -> bool {
        self.seen.add(&key);
        let existed = match (self.delta.insert(key.clone(), Some(row)), known) {
            (Some(Some(_)), _) => true,
            (Some(None), _) => false,
            (None, Some(existed)) => existed,
            (None, None) => self.base.len() > 0 && self.base.lookup(&key).is_some(),
        };
        if !existed {
            self.len += 1;
        }
        existed
    }

    /// Removes the row under `key`; returns whether there was one.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let in_base = self.base.len() > 0 && self.base.lookup(key).is_some();
        let existed = if in_base {
            // A tombstone hides the base row.
            self.seen.add(key);
            !matches!(self.delta.insert(Bytes::new(key), None), Some(None))
        } else {
            matches!(self.delta.remove(key), Some(Some(_)))
        };
        if existed {
            self.len -= 1;
        }
        existed
    }

    /// As an index: the primary key stored under index key `key`.
    pub fn primary_key(&self, key: &[u8]) -> Option<&[u8]> {
        self.get(key).map(|r| r.value)
    }

    /// As an index: stores primary key `pk` under index key `key`; returns whether the key
    /// was taken.
    pub fn insert_primary_key(&mut self, key: Bytes, pk: Bytes) -> bool {
        self.insert(
            key,
            Row {
                value: pk,
                version: 0,
            },
        )
    }

    /// Rows in the base (those the last restore or compaction laid out).
    pub fn base_len(&self) -> usize {
        self.base.len()
    }

    /// Base row `i`, in key order (whatever the delta says of it).
    pub fn base_row(&self, i: usize) -> Option<RowRef<'_>> {
        self.base.row(i)
    }

    /// The changes on top of the base, in key order: each key with its base row (if it had
    /// one) and its row now (`None`: deleted).
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> + '_ {
        self.delta.iter().map(|(k, now)| Change {
            key: k,
            before: self.base.lookup(k).and_then(|i| self.base.row(i)),
            now: now.as_ref().map(|r| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            }),
        })
    }

    /// Every row, in key order.
    pub fn iter(&self) -> Merge<'_> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The rows with keys in `bounds`, in key order.
    pub fn range(&self, bounds: (Bound<Bytes>, Bound<Bytes>)) -> Merge<'_> {
        let (lo, hi) = (as_slice(&bounds.0), as_slice(&bounds.1));
        if is_empty_range(lo, hi) {
            return Merge {
                base: &self.base,
                next: 0,
                end: 0,
                delta: (Box::new(std::iter::empty()) as DeltaIter<'_>).peekable(),
            };
        }
        let start = self.base.start(lo);
        let end = self.base.end(hi).max(start);
        let delta: DeltaIter<'_> = if self.delta.is_empty() {
            Box::new(std::iter::empty())
        } else {
            Box::new(self.delta.range(bounds))
        };
        Merge {
            base: &self.base,
            next: start,
            end,
            delta: delta.peekable(),
        }
    }

    /// Puts `run`, rows in strictly increasing key order. A run that is large next to the
    /// table is merged with the table's rows into a new base (one copy of every row instead of
    /// a tree insert per row); any other goes into the delta row by row.
    pub fn put_sorted(&mut self, run: Vec<(Bytes, Row)>) {
        self.put_sorted_from(run, MERGE_RUN_MIN);
    }

    /// [`put_sorted`](Self::put_sorted), merging runs of at least `min` rows.
    fn put_sorted_from(&mut self, run: Vec<(Bytes, Row)>, min: usize) {
        let sorted = run.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
        if !sorted || run.len() < min || run.len().saturating_mul(4) < self.len {
            for (key, row) in run {
                self.insert(key, row);
            }
            return;
        }
        let mut table = self.iter().peekable();
        let mut run = run.iter().peekable();
        let merged = std::iter::from_fn(move || {
            let order = match (table.peek(), run.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(t), Some((k, _))) => t.key.cmp(k.as_slice()),
            };
            if order == Ordering::Less {
                return table.next();
            }
            if order == Ordering::Equal {
                table.next(); // replaced by the run's row
            }
            run.next().map(|(k, r)| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            })
        });
        let base = Base::collect(merged);
        *self = Rows::from_base(base);
    }

    /// The same rows with the delta folded into a new base (one copy of every row).
    pub fn compacted(&self) -> Rows {
        if self.delta.is_empty() {
            return self.clone();
        }
        Rows::from_base(Base::collect(self.iter()))
    }
}

/// Whether no key lies between the bounds (the start is after the end).
fn is_empty_range(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

fn as_slice(b: &Bound<Bytes>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

type DeltaIter<'a> = Box<dyn Iterator<Item = (&'a Bytes, &'a Option<Row>)> + 'a>;

/// Rows of the base and the delta merged in key order (the delta wins on equal keys).
pub struct Merge<'a> {
    base: &'a Base,
    next: usize,
    end: usize,
    delta: std::iter::Peekable<DeltaIter<'a>>,
}

impl<'a> Iterator for Merge<'a> {
    type Item = RowRef<'a>;

    fn next(&mut self) -> Option<RowRef<'a>> {
        loop {
            let base = (self.next < self.end)
                .then(|| self.base.row(self.next))
                .flatten();
            let order = match (base, self.delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(b), Some((k, _))) => b.key.cmp(k.as_slice()),
            };
            if order == Ordering::Less {
                self.next += 1;
                return base;
            }
            if order == Ordering::Equal {
                self.next += 1; // replaced or deleted by the delta
            }
            match self.delta.next() {
                Some((k, Some(r))) => {
                    return Some(RowRef {
                        key: k,
                        value: &r.value,
                        version: r.version,
                    });
                }
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn row(v: u8, version: u64) -> Row {
        Row {
            value: Bytes::new(&[v]),
            version,
        }
    }

    proptest! {
        /// Any base and any changes behave like one ordered map: gets, length, iteration,
        /// ranges, and the same after compaction.
        #[test]
        fn rows_behave_like_an_ordered_map(
            base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
            ops in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(0u8..9)), 0..40),
            lo in proptest::collection::vec(0u8..4, 0..3),
            hi in proptest::collection::vec(0u8..4, 0..3),
        ) {
            let mut data = Vec::new();
            let mut ranges = Vec::new();
            let mut model: BTreeMap<Vec<u8>, (u8, u64)> = BTreeMap::new();
            for (k, v) in &base {
                let ka = data.len();
                data.extend_from_slice(k);
                let va = data.len();
                data.push(*v);
                ranges.push((ka, k.len(), va, 1, u64::from(*v)));
                model.insert(k.clone(), (*v, u64::from(*v)));
            }
            let mut rows = Rows::from_base(Base::from_ranges(data.into(), ranges).unwrap());
            for (k, v) in &ops {
                match v {
                    Some(v) => {
                        let existed = rows.insert(Bytes::new(k), row(*v, 7));
                        prop_assert_eq!(existed, model.insert(k.clone(), (*v, 7)).is_some());
                    }
                    None => prop_assert_eq!(rows.remove(k), model.remove(k).is_some()),
                }
            }
            for rows in [rows.clone(), rows.compacted()] {
                prop_assert_eq!(rows.len(), model.len());
                let all: Vec<(Vec<u8>, u8, u64)> =
                    rows.iter().map(|r| (r.key.to_vec(), r.value[0], r.version)).collect();
                let want: Vec<(Vec<u8>, u8, u64)> =
                    model.iter().map(|(k, (v, n))| (k.clone(), *v, *n)).collect();
                prop_assert_eq!(all, want);
                for k in model.keys() {
                    prop_assert_eq!(rows.get(k).map(|r| r.value[0]), model.get(k).map(|m| m.0));
                }
                prop_assert!(rows.get(&[9, 9]).is_none());
                // A range whose start is after its end is empty.
                let inverted = (Bound::Included(Bytes::new(&[3, 3])), Bound::Excluded(Bytes::new(&[1])));
                prop_assert_eq!(rows.range(inverted).count(), 0);
                let bounds = (Bound::Included(Bytes::new(&lo)), Bound::Excluded(Bytes::new(&hi)));
                if lo <= hi {
                    let got: Vec<Vec<u8>> = rows.range(bounds).map(|r| r.key.to_vec()).collect();
                    let want: Vec<Vec<u8>> = model
                        .range::<Vec<u8>, _>((Bound::Included(lo.clone()), Bound::Excluded(hi.clone())))
                        .map(|(k, _)| k.clone())
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    proptest! {
        /// A sorted run put on any base and delta, merged into a new base or (small, or not
        /// sorted) inserted row by row, gives the rows an insert of each would.
        #[test]
        fn sorted_runs_put_like_inserts(
            base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
            ops in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(0u8..9)), 0..20),
            run in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
            min in 0usize..30,
            shuffle in any::<bool>(),
        ) {
            let mut data = Vec::new();
            let mut ranges = Vec::new();
            for (k, v) in &base {
                let ka = data.len();
                data.extend_from_slice(k);
                let va = data.len();
                data.push(*v);
                ranges.push((ka, k.len(), va, 1, 1));
            }
            let mut rows = Rows::from_base(Base::from_ranges(data.into(), ranges).unwrap());
            for (k, v) in &ops {
                match v {
                    Some(v) => {
                        rows.insert(Bytes::new(k), row(*v, 2));
                    }
                    None => {
                        rows.remove(k);
                    }
                }
            }
            let mut want = rows.clone();
            let mut items: Vec<(Bytes, Row)> =
                run.iter().map(|(k, v)| (Bytes::new(k), row(*v, 3))).collect();
            if shuffle {
                items.reverse();
            }
            for (k, r) in &items {
                want.insert(k.clone(), r.clone());
            }
            rows.put_sorted_from(items, min);
            prop_assert_eq!(rows.len(), want.len());
            let got: Vec<(Vec<u8>, u8, u64)> =
                rows.iter().map(|r| (r.key.to_vec(), r.value[0], r.version)).collect();
            let expected: Vec<(Vec<u8>, u8, u64)> =
                want.iter().map(|r| (r.key.to_vec(), r.value[0], r.version)).collect();
            prop_assert_eq!(got, expected);
            for k in run.keys().chain(base.keys()) {
                prop_assert_eq!(rows.get(k).map(|r| r.value[0]), want.get(k).map(|r| r.value[0]));
            }
        }
    }

    /// A shared base of `keys` (sorted, distinct) with empty values.
    fn base_of(keys: &[Vec<u8>]) -> Arc<Base> {
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for k in keys {
            ranges.push((data.len(), k.len(), 0, 0, 1));
            data.extend_from_slice(k);
        }
        Base::from_ranges(Arc::new(data), ranges).unwrap().shared()
    }

    /// Many rows, with runs of equal 8-byte prefixes that cross fences: every key is found, and
    /// every absent key's place is the one a plain search gives.
    #[test]
    fn fenced_search_finds_every_key_and_place() {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for run in 0u8..40 {
            let len = [1usize, 3, 31, 32, 33, 70][run as usize % 6];
            for i in 0..len {
                let mut k = vec![0u8, 0, 0, 0, 0, 0, run, 7];
                let n = i as u32 * 2;
                k.extend_from_slice(&[(n >> 8) as u8, n as u8]);
                keys.push(k);
            }
            keys.push(vec![0, 0, 0, 0, 0, 0, run, 9]);
        }
        keys.sort();
        keys.dedup();
        let base = base_of(&keys);
        assert!(base.fences.len() > 10);
        assert!(matches!(base.directory.get(), Some(Some(_))));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(base.find(k), Ok(i), "{k:?}");
            assert_eq!(base.lookup(k), Some(i), "{k:?}");
            let mut absent = k.clone();
            absent.push(0); // just after k
            assert_eq!(base.lookup(&absent), None, "{absent:?}");
            assert_eq!(
                base.find(&absent),
                keys.binary_search(&absent),
                "{absent:?}"
            );
            let mut before = k.clone();
            if let Some(last) = before.last_mut().filter(|b| **b > 0) {
                *last -= 1;
                assert_eq!(
                    base.find(&before),
                    keys.binary_search(&before),
                    "{before:?}"
                );
            }
        }
        for probe in [
            vec![],
            vec![0u8],
            vec![255u8; 12],
            vec![0, 0, 0, 0, 0, 0, 39, 8],
        ] {
            assert_eq!(base.find(&probe), keys.binary_search(&probe), "{probe:?}");
        }
    }

    proptest! {
        /// A base large enough to have a directory: exact lookups find every key (short keys
        /// compared by prefix and length, long ones by their bytes) and nothing else.
        #[test]
        fn directory_lookups_match_a_search(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..20), 64..400),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..20), 0..200),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let base = base_of(&keys);
            prop_assert!(matches!(base.directory.get(), Some(Some(_))));
            for (i, k) in keys.iter().enumerate() {
                prop_assert_eq!(base.lookup(k), Some(i));
            }
            for p in &probes {
                prop_assert_eq!(base.lookup(p), keys.binary_search(p).ok());
            }
        }
    }

    /// A large base builds its directory on a background thread: lookups give the same
    /// answers while it is being built (by searching) and once it is set.
    #[test]
    #[allow(clippy::big_endian_bytes, reason = "keys must sort as the numbers do")]
    fn large_bases_answer_alike_before_and_after_their_directory() {
        let n = BACKGROUND_DIRECTORY_ROWS + 4000;
        // 12-byte keys: the bytes past the prefix decide.
        let key = |i: u64| [&[0u8; 4][..], &i.to_be_bytes()].concat();
        let keys: Vec<Vec<u8>> = (0..n as u64).map(|i| key(i * 2)).collect();
        let base = base_of(&keys);
        let check = |base: &Base| {
            for i in (0..n as u64).step_by(997) {
                assert_eq!(base.lookup(&key(i * 2)), Some(i as usize));
                assert_eq!(base.lookup(&key(i * 2 + 1)), None);
                // A slot holds only its own key, also among keys of one prefix and length.
                let (own, other) = (key(i * 2), key(i * 2 + 1));
                assert!(base.holds_at(i as usize, &own, prefix_of(&own)));
                assert!(!base.holds_at(i as usize, &other, prefix_of(&other)));
                assert!(!base.holds_at(i as usize, &own[..8], prefix_of(&own)));
            }
        };
        check(&base);
        let t0 = std::time::Instant::now();
        while base.directory.get().is_none() {
            assert!(t0.elapsed().as_secs() < 60, "directory never built");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(matches!(base.directory.get(), Some(Some(_))));
        check(&base);
    }

    #[test]
    fn out_of_order_or_outside_ranges_are_refused() {
        let data = Arc::new(b"abc".to_vec());
        assert!(Base::from_ranges(data.clone(), [(1, 1, 0, 1, 1), (0, 1, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data.clone(), [(2, 5, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data, [(0, 1, 1, 1, 1), (1, 1, 2, 1, 1)]).is_ok());
    }
}
