//! An immutable run of rows sorted by key in one shared buffer: the base a table's rows are
//! laid out in on restore and at compaction (and the chunks appended after it), with fences
//! and a hash directory for lookups.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};

use super::bytes::{put_varint, read_varint, varint_bytes};
use super::directory::{Directory, MAX_TARGET, key_hash};
use super::row::RowRef;

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
    /// How `data` lays out each row around its key and value.
    layout: Layout,
    /// Whether `data` holds exactly the rows' records, in order (a base [`Base::collect`]
    /// built): bases that all are can be joined by copying their bytes whole.
    packed: bool,
    /// Whether its directory waits for [`Base::start_directory`] (see [`Base::shared_later`]).
    later: AtomicBool,
}

/// How a base's bytes hold its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Layout {
    /// Keys and values are ranges of the bytes, nothing more is known: the directory leads
    /// to slots.
    #[default]
    Ranges,
    /// Each row is a record: the key's length (a [`varint_bytes`] integer) and the key, the
    /// value's length and the value, then (`versioned`) the version, as snapshots and
    /// [`Base::collect`] write rows. The directory leads to records, so an exact-key lookup
    /// reads one entry and the row's own bytes, not its slot.
    Records { versioned: bool },
}

/// Bases of at least this many rows build their directory on a background thread.
const BACKGROUND_DIRECTORY_ROWS: usize = 1 << 16;

/// Chunks (see [`Base::shared_as_chunk`]) of at least this many rows get a directory.
const CHUNK_DIRECTORY_ROWS: usize = 1 << 16;

/// How far [`Base::get_near`] gallops (in slots, doubling) before it looks the key up (a
/// key that far ahead costs fewer cache misses through the directory).
const NEAR_STEPS: usize = 16;

/// Bytes of other rows a base's buffer may hold before a compaction lays it out anew (see
/// [`Base::holds_foreign_bytes`]): the tables of a small image are not copied.
const FOREIGN_SLACK: usize = 1 << 20;

/// Slots between fences.
const FENCE: usize = 32;

/// Bytes of records [`Base::collect_tapped`] writes before it hands them on.
const TAP_BYTES: usize = 1 << 16;

fn fences_of(slots: &[Slot]) -> Vec<u64> {
    slots.iter().step_by(FENCE).map(|s| s.prefix).collect()
}

#[allow(
    clippy::big_endian_bytes,
    reason = "key order is byte order: the prefix must compare as the bytes do"
)]
pub(crate) fn prefix_of(key: &[u8]) -> u64 {
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
    fn new(data: Arc<Vec<u8>>, slots: Vec<Slot>, layout: Layout) -> Base {
        // Record offsets must fit a directory entry.
        let layout = if data.len() as u64 > MAX_TARGET {
            Layout::Ranges
        } else {
            layout
        };
        Base {
            fences: fences_of(&slots),
            directory: OnceLock::new(),
            data,
            slots,
            layout,
            packed: false,
            later: AtomicBool::new(false),
        }
    }

    /// The rows of `parts`, whose keys each come after the part before's, in one base: their
    /// bytes copied whole when all are packed (chunks of a tail are), else row by row.
    pub(super) fn concat(parts: &[Arc<Base>]) -> Base {
        let count = parts.iter().map(|p| p.len()).sum();
        if !parts.iter().all(|p| p.packed) {
            let bytes = parts.iter().map(|p| p.row_bytes()).sum();
            let rows = parts
                .iter()
                .flat_map(|p| (0..p.len()).filter_map(|i| p.row(i)));
            return Base::collect(rows, count, bytes);
        }
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        let mut slots = Vec::with_capacity(count);
        for p in parts {
            let at = data.len();
            data.extend_from_slice(&p.data);
            slots.extend(p.slots.iter().map(|s| Slot {
                key_at: s.key_at + at,
                value_at: s.value_at + at,
                ..*s
            }));
        }
        let mut base = Base::new(Arc::new(data), slots, Layout::Records { versioned: true });
        base.packed = true;
        base
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

    /// The base, shared, its directory not built until [`Base::start_directory`] (lookups
    /// search the slots until then): for a base that may soon be replaced, as a table's
    /// snapshot base is by a replay that folds its tail into a new one.
    pub(super) fn shared_later(self) -> Arc<Base> {
        self.later.store(true, AtomicOrdering::Relaxed);
        Arc::new(self)
    }

    /// Builds the directory of a base shared by [`Base::shared_later`] as [`Base::shared`]
    /// would have (once: later calls, and calls on other bases, do nothing).
    pub(super) fn start_directory(self: &Arc<Base>) {
        if !self.later.swap(false, AtomicOrdering::Relaxed) {
            return;
        }
        if self.len() < BACKGROUND_DIRECTORY_ROWS {
            self.build_directory();
        } else {
            self.build_directory_in_background();
        }
    }

    /// Whether its directory waits for [`Base::start_directory`].
    #[cfg(test)]
    pub(super) fn directory_waits(&self) -> bool {
        self.later.load(AtomicOrdering::Relaxed)
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
        let target = |i: usize| match self.layout {
            Layout::Ranges => i as u64,
            // (u64::MAX: no directory; cannot happen for a checked layout.)
            Layout::Records { .. } => self
                .slots
                .get(i)
                .and_then(|s| s.key_at.checked_sub(varint_bytes(u64::from(s.key_len)).1))
                .map_or(u64::MAX, |at| at as u64),
        };
        let _ = self
            .directory
            .set(Directory::build(self.slots.len(), hash, target));
    }

    /// The row whose record starts at `at`, if it holds `key`.
    fn record_holding(&self, at: u64, key: &[u8], versioned: bool) -> Option<RowRef<'_>> {
        let at = usize::try_from(at).ok()?;
        self.record_at(at, versioned).filter(|r| r.key == key)
    }

    /// The row whose record starts at `at` (see [`Layout::Records`]), if its bytes hold one.
    fn record_at(&self, at: usize, versioned: bool) -> Option<RowRef<'_>> {
        let b = self.data.get(at..)?;
        let (key_len, n) = read_varint(b)?;
        let key = b.get(n..n.checked_add(usize::try_from(key_len).ok()?)?)?;
        let b = b.get(n + key.len()..)?;
        let (value_len, n) = read_varint(b)?;
        let value = b.get(n..n.checked_add(usize::try_from(value_len).ok()?)?)?;
        let version = if versioned {
            read_varint(b.get(n + value.len()..)?)?.0
        } else {
            0
        };
        Some(RowRef {
            key,
            value,
            version,
        })
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

    /// Rows copied from an ordered iterator into a new buffer, as records, with room for
    /// `count` rows of `bytes` bytes of keys and values (what the caller knows of them: no
    /// buffer then grows by copying).
    pub(super) fn collect<'a>(
        rows: impl Iterator<Item = RowRef<'a>>,
        count: usize,
        bytes: usize,
    ) -> Base {
        let mut nothing = |_: &[u8]| Ok(());
        Base::collect_tapped(rows, count, bytes, &mut nothing).unwrap_or_default()
    }

    /// [`collect`](Self::collect), handing `tap` the records as they are written, in
    /// pieces of about [`TAP_BYTES`] (all of them, in order, by the end); an error of `tap`
    /// stops it.
    pub(super) fn collect_tapped<'a>(
        rows: impl Iterator<Item = RowRef<'a>>,
        count: usize,
        bytes: usize,
        tap: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<Base> {
        // Room for the records' lengths and versions too (most take a byte or two each).
        let mut data = Vec::with_capacity(bytes + count * 4);
        let mut slots = Vec::with_capacity(count);
        let mut tapped = 0;
        for r in rows {
            put_varint(&mut data, r.key.len() as u64);
            let key_at = data.len();
            data.extend_from_slice(r.key);
            put_varint(&mut data, r.value.len() as u64);
            let value_at = data.len();
            data.extend_from_slice(r.value);
            put_varint(&mut data, r.version);
            slots.push(Slot {
                prefix: prefix_of(r.key),
                key_at,
                value_at,
                key_len: r.key.len() as u32,
                value_len: r.value.len() as u32,
                version: r.version,
            });
            if data.len() - tapped >= TAP_BYTES {
                tap(data.get(tapped..).unwrap_or_default())?;
                tapped = data.len();
            }
        }
        tap(data.get(tapped..).unwrap_or_default())?;
        // An estimate too high leaves room no row will use (given back in place).
        if data.capacity() - data.len() > data.len() / 8 + 4096 {
            data.shrink_to_fit();
        }
        let mut base = Base::new(Arc::new(data), slots, Layout::Records { versioned: true });
        base.packed = true;
        Ok(base)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Its rows' records (key length and key, value length and value, version; the layout a
    /// snapshot image writes a table's rows in) as one byte string, when its buffer holds
    /// exactly them (a base [`Base::collect`] or [`Base::concat`] built).
    pub(super) fn packed_records(&self) -> Option<&[u8]> {
        self.packed.then_some(self.data.as_slice())
    }

    /// Bytes of its buffer (rows and their lengths).
    pub(super) fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Whether its rows are only a part of a buffer it shares (a table's or an index's part
    /// of a decoded snapshot image, which holds every table): holding it keeps the rest of
    /// the image in memory, so a compaction lays such a base out in a buffer of its own.
    pub(super) fn holds_foreign_bytes(&self) -> bool {
        // Its records: the keys and values, their lengths and versions (a few bytes each).
        let own = self.row_bytes() + self.slots.len() * 4;
        self.data.len() > own.saturating_add(own / 4).saturating_add(FOREIGN_SLACK)
    }

    /// Approximate heap bytes held: the row bytes, the slots and fences (the directory is
    /// estimated at a word per row).
    pub(super) fn heap_bytes(&self) -> usize {
        self.data.len()
            + self.slots.len() * (std::mem::size_of::<Slot>() + 8)
            + self.fences.len() * 8
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

    /// The row under `key`, if the base holds it: by the directory when there is one.
    pub(super) fn get(&self, key: &[u8]) -> Option<RowRef<'_>> {
        let Some(Some(directory)) = self.directory.get() else {
            return self.find(key).ok().and_then(|i| self.row(i));
        };
        let prefix = prefix_of(key);
        let hash = key_hash(prefix, key);
        match self.layout {
            Layout::Records { versioned } => {
                let mut found = None;
                directory.find(hash, |at| {
                    found = self.record_holding(at, key, versioned);
                    found.is_some()
                });
                found
            }
            Layout::Ranges => directory
                .find(hash, |i| self.holds_at(i as usize, key, prefix))
                .and_then(|i| self.row(i as usize)),
        }
    }

    /// The row under `key`, searched for from slot `near` on (then set to where the key is
    /// or would be): a key at or just after `near` is found by reading the slots in order. A
    /// key before `near`, or far after it, is looked up as by [`get`](Self::get).
    pub(super) fn get_near(&self, key: &[u8], near: &mut usize) -> Option<RowRef<'_>> {
        let prefix = prefix_of(key);
        let n = self.slots.len();
        let mut lo = (*near).min(n);
        if lo > 0 && self.compare(lo - 1, key, prefix) != Ordering::Less {
            return self.get(key);
        }
        // Every slot before `lo` is below the key: gallop to a slot at or past it, then
        // bisect the last step.
        let mut step = 1;
        let mut hi = lo;
        while hi < n && self.compare(hi, key, prefix) == Ordering::Less {
            if step > NEAR_STEPS {
                *near = hi;
                return self.get(key);
            }
            lo = hi + 1;
            hi = hi.saturating_add(step).min(n);
            step = step.saturating_mul(2);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.compare(mid, key, prefix) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        *near = lo;
        (lo < n && self.compare(lo, key, prefix) == Ordering::Equal)
            .then(|| self.row(lo))
            .flatten()
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
    /// The layout the caller says the rows are in, while every row pushed so far is in it.
    layout: Layout,
}

impl BaseBuilder {
    /// A builder over `data`, with room for `rows` rows.
    pub fn new(data: Arc<Vec<u8>>, rows: usize) -> Self {
        BaseBuilder {
            data,
            slots: Vec::with_capacity(rows),
            layout: Layout::Ranges,
        }
    }

    /// A builder over rows the data holds as records (a snapshot's rows, `versioned`, or its
    /// index entries, not): each pushed row is checked to be one, and if any is not, lookups
    /// go through slots instead (the rows are the same either way).
    pub fn of_records(data: Arc<Vec<u8>>, rows: usize, versioned: bool) -> Self {
        BaseBuilder {
            layout: Layout::Records { versioned },
            ..BaseBuilder::new(data, rows)
        }
    }

    /// Whether the bytes around a row's key and value are its record.
    fn is_record(
        &self,
        key_at: usize,
        key_len: usize,
        value_at: usize,
        value_len: usize,
        version: u64,
        versioned: bool,
    ) -> bool {
        // Lengths and versions up to 250 take one byte: the common case, checked first.
        let holds = |at: usize, n: u64| {
            let Some(&first) = self.data.get(at) else {
                return false;
            };
            if n <= 250 {
                return u64::from(first) == n;
            }
            let (b, len) = varint_bytes(n);
            self.data.get(at..at.saturating_add(len)) == b.get(..len)
        };
        let key_len_bytes = varint_bytes(key_len as u64).1;
        let key_end = key_at.saturating_add(key_len);
        key_at >= key_len_bytes
            && holds(key_at - key_len_bytes, key_len as u64)
            && holds(key_end, value_len as u64)
            && value_at == key_end.saturating_add(varint_bytes(value_len as u64).1)
            && (!versioned || holds(value_at.saturating_add(value_len), version))
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
        if let Layout::Records { versioned } = self.layout
            && !self.is_record(key_at, key_len, value_at, value_len, version, versioned)
        {
            self.layout = Layout::Ranges;
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
        Base::new(self.data, self.slots, self.layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A shared base of `keys` (sorted, distinct) with empty values, row `i` at version
    /// `i + 1`: laid out as ranges (`records` false) or as records.
    fn base_of(keys: &[Vec<u8>], records: bool) -> Arc<Base> {
        if records {
            let rows = keys.iter().enumerate().map(|(i, k)| RowRef {
                key: k,
                value: &[],
                version: i as u64 + 1,
            });
            let base = Base::collect(rows, keys.len(), 0);
            assert!(matches!(base.layout, Layout::Records { versioned: true }));
            return base.shared();
        }
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            ranges.push((data.len(), k.len(), 0, 0, i as u64 + 1));
            data.extend_from_slice(k);
        }
        let base = Base::from_ranges(Arc::new(data), ranges).unwrap();
        assert_eq!(base.layout, Layout::Ranges);
        base.shared()
    }

    /// The version of the row a lookup finds for `key` (row `i` of [`base_of`] is at `i + 1`).
    fn found(base: &Base, key: &[u8]) -> Option<u64> {
        base.get(key).map(|r| {
            assert_eq!(r.key, key);
            r.version
        })
    }

    /// Joining parts copies packed ones whole and reads any other (a base over a snapshot's
    /// bytes) row by row: the rows, their order and their versions are the same either way.
    #[test]
    fn concat_joins_packed_and_other_parts_alike() {
        let keys = |from: u8, to: u8| (from..to).map(|k| vec![k, k]).collect::<Vec<_>>();
        let packed = [base_of(&keys(0, 70), true), base_of(&keys(100, 170), true)];
        let mixed = [base_of(&keys(0, 70), false), base_of(&keys(100, 170), true)];
        for parts in [&packed, &mixed] {
            let joined = Base::concat(parts);
            assert!(joined.packed);
            let rows: Vec<(Vec<u8>, u64)> = (0..joined.len())
                .filter_map(|i| joined.row(i))
                .map(|r| (r.key.to_vec(), r.version))
                .collect();
            let want: Vec<(Vec<u8>, u64)> = keys(0, 70)
                .into_iter()
                .chain(keys(100, 170))
                .enumerate()
                .map(|(i, k)| (k, i as u64 % 70 + 1))
                .collect();
            assert_eq!(rows, want);
            let joined = joined.shared();
            assert_eq!(found(&joined, &[150, 150]), Some(51));
            assert_eq!(found(&joined, &[80, 80]), None);
        }
    }

    /// Rows written as a snapshot writes them (records: lengths, key, value, version), with
    /// lengths of one and three bytes: the builder recognises them, lookups read the rows from
    /// their records, and a buffer that is not records (a length byte changed) is searched
    /// through its slots with the same answers.
    #[test]
    fn snapshot_records_are_read_in_place() {
        let mut data = Vec::new();
        let mut rows = Vec::new();
        let put = |data: &mut Vec<u8>, n: usize| put_varint(data, n as u64);
        for i in 0..200u32 {
            let key = format!("key-{i:05}").into_bytes();
            let value = vec![i as u8; if i % 3 == 0 { 300 } else { 5 }];
            put(&mut data, key.len());
            let key_at = data.len();
            data.extend_from_slice(&key);
            put(&mut data, value.len());
            let value_at = data.len();
            data.extend_from_slice(&value);
            put(&mut data, 1000 + i as usize);
            rows.push((key, key_at, value_at, value.len(), 1000 + u64::from(i)));
        }
        for damaged in [false, true] {
            let mut bytes = data.clone();
            if damaged {
                bytes[rows[150].2 - 1] ^= 1; // a value length no longer matches
            }
            let mut b = BaseBuilder::of_records(Arc::new(bytes), rows.len(), true);
            for (key, key_at, value_at, value_len, version) in &rows {
                b.push(*key_at, key.len(), *value_at, *value_len, *version)
                    .unwrap();
            }
            let base = b.finish();
            let want = if damaged {
                Layout::Ranges
            } else {
                Layout::Records { versioned: true }
            };
            assert_eq!(base.layout, want);
            let base = base.shared();
            assert!(matches!(base.directory.get(), Some(Some(_))));
            for (key, _, _, value_len, version) in &rows {
                let r = base.get(key).unwrap();
                assert_eq!(
                    (r.key, r.value.len(), r.version),
                    (&key[..], *value_len, *version)
                );
            }
            assert!(base.get(b"key-00200").is_none());
            assert!(base.get(b"key-0000").is_none());
        }
        // Index entries carry no version: records only when claimed without one.
        let mut entries = Vec::new();
        let mut at = Vec::new();
        for (key, _, _, _, _) in &rows {
            put(&mut entries, key.len());
            at.push(entries.len());
            entries.extend_from_slice(key);
            put(&mut entries, 1);
            entries.push(7);
        }
        let entries = Arc::new(entries);
        for versioned in [true, false] {
            let mut b = BaseBuilder::of_records(entries.clone(), rows.len(), versioned);
            for ((key, ..), key_at) in rows.iter().zip(&at) {
                b.push(*key_at, key.len(), key_at + key.len() + 1, 1, 0)
                    .unwrap();
            }
            let base = b.finish();
            let want = if versioned {
                Layout::Ranges
            } else {
                Layout::Records { versioned: false }
            };
            assert_eq!(base.layout, want);
            let base = base.shared();
            for (key, ..) in &rows {
                let r = base.get(key).unwrap();
                assert_eq!((r.key, r.value, r.version), (&key[..], &[7u8][..], 0));
            }
        }
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
        let base = base_of(&keys, false);
        assert!(base.fences.len() > 10);
        assert!(matches!(base.directory.get(), Some(Some(_))));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(base.find(k), Ok(i), "{k:?}");
            assert_eq!(found(&base, k), Some(i as u64 + 1), "{k:?}");
            let mut absent = k.clone();
            absent.push(0); // just after k
            assert_eq!(found(&base, &absent), None, "{absent:?}");
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
            records in any::<bool>(),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let base = base_of(&keys, records);
            prop_assert!(matches!(base.directory.get(), Some(Some(_))));
            for (i, k) in keys.iter().enumerate() {
                prop_assert_eq!(found(&base, k), Some(i as u64 + 1));
            }
            for p in &probes {
                let want = keys.binary_search(p).ok().map(|i| i as u64 + 1);
                prop_assert_eq!(found(&base, p), want);
            }
        }
    }

    proptest! {
        /// Lookups from a remembered place (keys mostly rising, some falling back, some far
        /// ahead, starting anywhere) answer as plain lookups do, in both layouts.
        #[test]
        fn lookups_near_the_last_answer_alike(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..12), 0..700),
            mut probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..12), 0..300),
            start in 0usize..1000,
            records in any::<bool>(),
            back in proptest::collection::vec(any::<bool>(), 0..300),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let base = base_of(&keys, records);
            probes.sort();
            // Some probes step back (the caller's keys need not keep rising).
            for (i, b) in back.iter().enumerate() {
                if *b && i % 7 == 0 && i + 1 < probes.len() {
                    probes.swap(i, i + 1);
                }
            }
            let mut near = start;
            for p in &probes {
                let want = base.get(p).map(|r| (r.key.to_vec(), r.version));
                let got = base.get_near(p, &mut near).map(|r| (r.key.to_vec(), r.version));
                prop_assert_eq!(got, want);
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
        for records in [false, true] {
            let base = base_of(&keys, records);
            let check = |base: &Base| {
                for i in (0..n as u64).step_by(997) {
                    assert_eq!(found(base, &key(i * 2)), Some(i + 1));
                    assert_eq!(found(base, &key(i * 2 + 1)), None);
                    assert_eq!(found(base, &key(i * 2)[..8]), None);
                    // A slot holds only its own key, also among keys of one prefix and length.
                    let (own, other) = (key(i * 2), key(i * 2 + 1));
                    assert!(base.holds_at(i as usize, &own, prefix_of(&own)));
                    assert!(!base.holds_at(i as usize, &other, prefix_of(&other)));
                    assert!(!base.holds_at(i as usize, &own[..8], prefix_of(&own)));
                    // So does a record.
                    if records {
                        let s = base.slots[i as usize];
                        let at = (s.key_at - varint_bytes(u64::from(s.key_len)).1) as u64;
                        assert!(base.record_holding(at, &own, true).is_some());
                        assert!(base.record_holding(at, &other, true).is_none());
                        assert!(base.record_holding(at, &own[..8], true).is_none());
                    }
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
    }

    #[test]
    fn out_of_order_or_outside_ranges_are_refused() {
        let data = Arc::new(b"abc".to_vec());
        assert!(Base::from_ranges(data.clone(), [(1, 1, 0, 1, 1), (0, 1, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data.clone(), [(2, 5, 0, 1, 1)]).is_err());
        assert!(Base::from_ranges(data, [(0, 1, 1, 1, 1), (1, 1, 2, 1, 1)]).is_ok());
    }
}
