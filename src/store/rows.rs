//! A table's rows (and a unique index's entries) in memory: an immutable sorted base, shared by
//! every state that has it and built without a per-row allocation (straight from snapshot
//! bytes on restore, by one merge at compaction), under a persistent delta of the changes
//! since. Cloning is O(1); a change copies only a path of the delta.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use super::codec::Bytes;

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
        let slots = ranges
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
        Base { data, slots }
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

    /// The index of `key`, or where it would go.
    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        let prefix = prefix_of(key);
        let (mut lo, mut hi) = (0, self.slots.len());
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
        Base {
            data: self.data,
            slots: self.slots,
        }
    }
}

/// Rows by encoded key, in key order: a shared base and the changes since (`None`: deleted
/// from the base).
#[derive(Debug, Clone, Default)]
pub struct Rows {
    base: Arc<Base>,
    delta: OrdMap<Bytes, Option<Row>>,
    len: usize,
}

impl Rows {
    /// Rows that are all in `base`.
    pub fn from_base(base: Base) -> Rows {
        Rows {
            len: base.len(),
            base: Arc::new(base),
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
        match self.delta.get_key_value(key) {
            Some((k, Some(r))) => Some(RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            }),
            Some((_, None)) => None,
            None => self.base.find(key).ok().and_then(|i| self.base.row(i)),
        }
    }

    /// Whether a row is under `key`.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Puts `row` under `key`; returns whether a row was there.
    pub fn insert(&mut self, key: Bytes, row: Row) -> bool {
        let existed = match self.delta.insert(key.clone(), Some(row)) {
            Some(Some(_)) => true,
            Some(None) => false,
            None => self.base.len() > 0 && self.base.find(&key).is_ok(),
        };
        if !existed {
            self.len += 1;
        }
        existed
    }

    /// Removes the row under `key`; returns whether there was one.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let in_base = self.base.len() > 0 && self.base.find(key).is_ok();
        let existed = if in_base {
            // A tombstone hides the base row.
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
            before: self.base.find(k).ok().and_then(|i| self.base.row(i)),
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

    /// The same rows with the delta folded into a new base (one copy of every row).
    pub fn compacted(&self) -> Rows {
        if self.delta.is_empty() {
            return self.clone();
        }
        Rows::from_base(Base::collect(self.iter()))
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

    #[test]
    fn out_of_order_or_outside_ranges_are_refused() {
        let data = Arc::new(b"abc".to_vec());
        assert!(Base::from_ranges(data.clone(), [(1, 1, 0, 1, 1), (0, 1, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data.clone(), [(2, 5, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data, [(0, 1, 1, 1, 1), (1, 1, 2, 1, 1)]).is_ok());
    }
}
