//! An immutable run of rows sorted by key in one shared buffer: the base a table's rows are
//! laid out in on restore and at compaction (and the chunks appended after it), with fences
//! and a hash directory for lookups.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use super::directory::{Directory, key_hash};
use super::rows::RowRef;

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

/// Chunks (see [`Base::shared_as_chunk`]) of at least this many rows get a directory.
const CHUNK_DIRECTORY_ROWS: usize = 1 << 13;

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
    pub(super) fn shared(self) -> Arc<Base> {
        let base = Arc::new(self);
        if base.len() < BACKGROUND_DIRECTORY_ROWS {
            base.build_directory();
        } else {
            base.build_directory_in_background();
        }
        base
    }

    /// The base, shared, for a chunk appended after a table's base: small ones get no
    /// directory (lookups search their slots; a bulk load that appends them looks up no new
    /// key), larger ones (merged from small ones, or a long transaction's) build it on a
    /// background thread.
    pub(super) fn shared_as_chunk(self) -> Arc<Base> {
        let base = Arc::new(self);
        if base.len() < CHUNK_DIRECTORY_ROWS {
            let _ = base.directory.set(None);
        } else {
            base.build_directory_in_background();
        }
        base
    }

    fn build_directory_in_background(self: &Arc<Base>) {
        let b = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("statelog-directory".into())
            .spawn(move || b.build_directory());
    }

    /// Bytes of keys and values its rows hold.
    pub(super) fn row_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.key_len as usize + s.value_len as usize)
            .sum()
    }

    /// The first key, if any.
    pub(super) fn first_key(&self) -> Option<&[u8]> {
        self.row(0).map(|r| r.key)
    }

    /// The last key, if any.
    pub(super) fn last_key(&self) -> Option<&[u8]> {
        self.len()
            .checked_sub(1)
            .and_then(|i| self.row(i))
            .map(|r| r.key)
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
    pub(super) fn collect<'a>(rows: impl Iterator<Item = RowRef<'a>>) -> Base {
        Base::collect_sized(rows, 0, 0)
    }

    /// [`collect`](Self::collect) into buffers with room for `rows` rows of `bytes` bytes of
    /// keys and values (when the caller knows: no buffer grows by copying).
    pub(super) fn collect_sized<'a>(
        rows: impl Iterator<Item = RowRef<'a>>,
        count: usize,
        bytes: usize,
    ) -> Base {
        let mut data = Vec::with_capacity(bytes);
        let mut slots = Vec::with_capacity(count);
        for r in rows {
            let key_at = data.len();
            data.extend_from_slice(r.key);
            let value_at = data.len();
            data.extend_from_slice(r.value);
            slots.push(Slot {
                prefix: prefix_of(r.key),
                key_at,
                value_at,
                key_len: r.key.len() as u32,
                value_len: r.value.len() as u32,
                version: r.version,
            });
        }
        Base::new(Arc::new(data), slots)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn row(&self, i: usize) -> Option<RowRef<'_>> {
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
    pub(super) fn lookup(&self, key: &[u8]) -> Option<usize> {
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
    pub(super) fn find(&self, key: &[u8]) -> Result<usize, usize> {
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
    pub(super) fn start(&self, b: Bound<&[u8]>) -> usize {
        match b {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.find(k).unwrap_or_else(|i| i),
            Bound::Excluded(k) => self.find(k).map_or_else(|i| i, |i| i + 1),
        }
    }

    /// The first index past an upper bound.
    pub(super) fn end(&self, b: Bound<&[u8]>) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
