//! A table's rows (and a unique index's entries) in memory: an immutable sorted base, shared by
//! every state that has it and built without a per-row allocation (straight from snapshot
//! bytes on restore, by one merge at compaction), then the rows appended since in key order
//! (sorted chunks, see `tail`, and the newest few in a shared block of write-once slots, see
//! `recent`), under a persistent delta of the other changes. Cloning is O(1); a change copies
//! only a path of the delta, or appends to the transaction's pending rows.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use super::base::Base;
use super::bytes::{Bytes, as_slice, positions_within};
use super::delta::{Delta, MarkedRun};
use super::filter::DeltaKeys;
use super::merge::{DeltaIter, Merge, Sorted, merge_changes, merge_order};
use super::recent::Recent;
use super::row::{Change, Row, RowRef};
use super::tail::Tail;

/// Rows by encoded key, in key order: a shared base, the rows appended after it in key order
/// (sorted chunks, the recent rows of small commits, and the rows of the transaction at work
/// not yet sealed), and a persistent delta of the other changes (`None`: deleted), which wins
/// over the rest.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    base: Arc<Base>,
    /// Chunks of rows appended after the base, each key greater than the base's and the
    /// chunk before's.
    tail: Tail,
    /// Rows appended after the tail by small commits, in key order (see [`Recent`]).
    recent: Recent,
    /// Rows appended after those, in key order, not yet made a chunk (see
    /// [`Rows::seal`]).
    pending: Vec<(Bytes, Row)>,
    /// At least every key the rows have held since the base was laid out: a key above it is
    /// new, and is appended without a search.
    bound: Option<Bytes>,
    delta: Delta,
    len: usize,
    /// A bit per hash of every key ever put in the delta: a get whose bit is clear skips the
    /// delta's tree (most gets, while the delta is small next to the base). Shared by every
    /// state built on this base (see [`DeltaKeys`]).
    seen: Arc<DeltaKeys>,
}

/// Names the base some rows are laid out on, without holding its rows (they are freed with
/// the last rows on it): see [`Rows::base_id`].
/// The default names no base.
#[derive(Debug, Clone, Default)]
pub struct BaseId(Weak<Base>);

/// Rows a sorted run needs before [`Rows::put_sorted`] merges it into a new base.
const MERGE_RUN_MIN: usize = 1024;

/// Appended rows a chunk needs: when sealed, fewer go into the recent block while it has room
/// (single-row commits of new keys must not copy a chunk each). Small in unit tests, so that
/// they make chunks.
const CHUNK_MIN: usize = if cfg!(test) { 3 } else { 256 };

/// Appended rows made a chunk while a transaction is still adding more (so rows waiting to be
/// sealed stay few).
const PENDING_MAX: usize = if cfg!(test) { 11 } else { 1 << 16 };

impl Rows {
    /// Rows that are all in `base`.
    pub fn from_base(base: Base) -> Rows {
        Rows::over(base.shared())
    }

    /// Rows that are all in `base`, shared already.
    fn over(base: Arc<Base>) -> Rows {
        Rows {
            len: base.len(),
            seen: Arc::new(DeltaKeys::for_base(base.len())),
            bound: base.last_key().map(Bytes::new),
            base,
            tail: Tail::default(),
            recent: Recent::default(),
            pending: Vec::new(),
            delta: Delta::default(),
        }
    }

    /// [`from_base`](Self::from_base), the base's directory not built until
    /// [`start_directory`](Self::start_directory): for rows a replay may soon lay out anew.
    pub fn from_base_later(base: Base) -> Rows {
        Rows::over(base.shared_later())
    }

    /// Builds the directory of a base [`from_base_later`](Self::from_base_later) left
    /// without one, if these rows are still on it (as [`from_base`](Self::from_base) does).
    pub fn start_directory(&self) {
        self.base.start_directory();
    }

    /// Whether the base's directory waits for [`start_directory`](Self::start_directory).
    #[cfg(test)]
    pub fn directory_waits(&self) -> bool {
        self.base.directory_waits()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes the rows hold: the base and chunks (counted whole, even when
    /// shared with other states), and each row changed or appended since with an estimated
    /// overhead. O(changes since the base).
    pub fn heap_bytes(&self) -> usize {
        /// Estimated bytes per row held outside a base: tree node share, allocation headers.
        const ENTRY: usize = 64;
        let row =
            |k: &[u8], v: Option<&Row>| ENTRY + k.len() + v.map_or(0, |r| r.value.as_slice().len());
        let delta: usize = self
            .delta
            .iter()
            .map(|(k, r)| row(k.as_slice(), r.as_ref()))
            .sum();
        let recent: usize = self
            .recent
            .slots()
            .iter()
            .filter_map(|s| s.get())
            .map(|(k, r)| row(k.as_slice(), Some(r)))
            .sum();
        let pending: usize = self
            .pending
            .iter()
            .map(|(k, r)| row(k.as_slice(), Some(r)))
            .sum();
        self.base.heap_bytes()
            + self.tail.heap_bytes()
            + self.seen.heap_bytes()
            + delta
            + recent
            + pending
    }

    /// About how many bytes the rows hold, in O(1): the base's and chunks' bytes, and a
    /// guess of 64 per row changed or appended since.
    pub fn approx_bytes(&self) -> usize {
        self.base
            .data_len()
            .saturating_add(self.tail.heap_bytes())
            .saturating_add(
                (self.delta.len() + self.recent.len() + self.pending.len()).saturating_mul(64),
            )
    }

    /// Changes held on top of the base (appended rows included).
    pub fn delta_len(&self) -> usize {
        self.delta.len() + self.tail.len() + self.recent.len() + self.pending.len()
    }

    /// The row under `key`.
    pub fn get(&self, key: &[u8]) -> Option<RowRef<'_>> {
        self.in_delta(key).unwrap_or_else(|| self.laid_out(key))
    }

    /// [`get`](Self::get) for keys asked in increasing order: `near` (0 at first) keeps
    /// where in the base the last one was, so that a run of keys close together walks the
    /// base's slots in order instead of probing it at random. A `near` from another run of
    /// keys only costs a search.
    pub fn get_near(&self, key: &[u8], near: &mut usize) -> Option<RowRef<'_>> {
        self.in_delta(key).unwrap_or_else(|| {
            if self.base.last_key().is_some_and(|k| key <= k) {
                self.base.get_near(key, near)
            } else {
                self.laid_out(key)
            }
        })
    }

    /// What the delta says of `key`: `Some(row)` (`Some(None)`: deleted), or `None` if it does
    /// not hold the key (its filter answers most of these without a look in the tree).
    fn in_delta(&self, key: &[u8]) -> Option<Option<RowRef<'_>>> {
        if self.delta.is_empty() || !self.seen.may_hold(key) {
            return None;
        }
        self.delta.get_key_value(key).map(|(k, r)| {
            r.as_ref().map(|r| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            })
        })
    }

    /// The row under `key` in the base or the appended rows (whatever the delta says).
    fn laid_out(&self, key: &[u8]) -> Option<RowRef<'_>> {
        if self.tail.is_empty() && self.recent.is_empty() && self.pending.is_empty() {
            return self.base.get(key);
        }
        if self.bound.as_ref().is_none_or(|b| key > b.as_slice()) {
            return None;
        }
        if self.base.last_key().is_some_and(|k| key <= k) {
            self.base.get(key)
        } else if self.tail.last_key().is_some_and(|k| key <= k) {
            self.tail.get(key)
        } else if self.recent.last_key().is_some_and(|k| key <= k) {
            self.recent.get(key).map(|(k, r)| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            })
        } else {
            let i = self
                .pending
                .binary_search_by(|(k, _)| k.as_slice().cmp(key))
                .ok()?;
            self.pending.get(i).map(|(k, r)| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            })
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
        if self.bound.as_ref().is_none_or(|b| key > *b) {
            // A new key above every key held: appended, no search.
            self.bound = Some(key.clone());
            self.pending.push((key, row));
            self.len += 1;
            if self.pending.len() >= PENDING_MAX {
                self.seal();
            }
            return false;
        }
        // A key the filter has never seen is not in the delta: no search of it.
        let before = if self.seen.may_hold(&key) {
            self.delta.insert(key.clone(), Some(row))
        } else {
            self.seen.add(&key);
            self.delta.insert_absent(key.clone(), Some(row));
            None
        };
        let existed = match (before, known) {
            (Some(Some(_)), _) => true,
            (Some(None), _) => false,
            (None, Some(existed)) => existed,
            (None, None) => self.laid_out(&key).is_some(),
        };
        if !existed {
            self.len += 1;
        }
        self.grow_filter();
        existed
    }

    /// Gives a delta that outgrew its filter a larger one (a full filter would send every
    /// get to the delta).
    fn grow_filter(&mut self) {
        if self.delta.len() > self.seen.keys {
            self.seen = Arc::new(DeltaKeys::of_delta(&self.delta));
        }
    }

    /// Puts `changes` (the last change of each key, keys strictly increasing; `None`: the row
    /// deleted) as [`insert`](Self::insert) and [`remove`](Self::remove) one by one would.
    /// When the rows are all in their base, in bulk: the changes of keys up to the greatest
    /// key held make the delta, one run (a walk of the base's slots in key order says which
    /// keys it holds), and those above are appended; the run is returned, each of its changes
    /// marked if `same_keys` (beside `changes`) says so of a put that replaced a base row.
    pub fn put_changes(
        &mut self,
        changes: Vec<(Bytes, Option<Row>)>,
        same_keys: &[bool],
    ) -> Option<MarkedRun> {
        if self.delta_len() != 0 {
            for (key, change) in changes {
                match change {
                    Some(row) => {
                        self.insert(key, row);
                    }
                    None => {
                        self.remove(&key);
                    }
                }
            }
            return None;
        }
        let mut run = changes;
        let above = match &self.bound {
            Some(bound) => run.partition_point(|(k, _)| k <= bound),
            None => 0,
        };
        let appended = run.split_off(above);
        let mut near = 0;
        let mut same = same_keys.iter();
        let mut marks = Vec::with_capacity(run.len());
        let base = &self.base;
        let len = &mut self.len;
        run.retain(|(key, change)| {
            let held = base.get_near(key, &mut near).is_some();
            let same = same.next().copied().unwrap_or(false);
            match (change, held) {
                (None, false) => return false, // no row to delete
                (Some(_), false) => *len += 1,
                (None, true) => *len -= 1,
                (Some(_), true) => {}
            }
            marks.push(same && held && change.is_some());
            true
        });
        let (delta, marked) = Delta::of_sorted(run, marks);
        self.delta = delta;
        if !self.delta.is_empty() {
            // The run's own filter, then its directory, answers for keys it does not hold.
            self.seen = Arc::new(DeltaKeys::every_key());
        }
        for (key, row) in appended {
            if let Some(row) = row {
                self.insert(key, row);
            }
        }
        Some(marked)
    }

    /// Removes the row under `key`; returns whether there was one.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let in_base = self.laid_out(key).is_some();
        let existed = if in_base {
            // A tombstone hides the base (or appended) row.
            self.seen.add(key);
            let hidden = !matches!(self.delta.insert(Bytes::new(key), None), Some(None));
            self.grow_filter();
            hidden
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

    /// The name of the rows' base: [`is_on`](Self::is_on) tells whether rows are still laid
    /// out on it (a base laid out anew is another, even at the same address, which the name
    /// keeps from reuse).
    pub fn base_id(&self) -> BaseId {
        BaseId(Arc::downgrade(&self.base))
    }

    /// Whether the rows are laid out on the base `id` names.
    pub fn is_on(&self, id: &BaseId) -> bool {
        std::ptr::eq(id.0.as_ptr(), Arc::as_ptr(&self.base))
    }

    /// Base row `i`, in key order (whatever the delta says of it).
    pub fn base_row(&self, i: usize) -> Option<RowRef<'_>> {
        self.base.row(i)
    }

    /// The changes on top of the base, in key order: each key with its base row (if it had
    /// one) and its row now (`None`: deleted).
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> + '_ {
        self.changes_unless(|_, _| false)
    }

    /// [`changes`](Self::changes), but those of the delta that `skip` picks by key and row
    /// now (asked in key order, before the base is searched for the key's row).
    pub fn changes_unless<'a>(
        &'a self,
        mut skip: impl FnMut(&[u8], Option<&Row>) -> bool + 'a,
    ) -> impl Iterator<Item = Change<'a>> + 'a {
        // Appended rows are all new keys (above the base's), changed again only in the delta.
        let mut appended = self
            .appended(Bound::Unbounded, Bound::Unbounded, None)
            .peekable();
        let mut delta = self.delta.iter().peekable();
        std::iter::from_fn(move || {
            loop {
                let order = merge_order(
                    appended.peek().map(|r| r.key),
                    delta.peek().map(|(k, _)| k.as_slice()),
                )?;
                if order == Ordering::Less {
                    return appended.next().map(|a| Change {
                        key: a.key,
                        before: None,
                        now: Some(a),
                    });
                }
                if order == Ordering::Equal {
                    appended.next();
                }
                let (k, now) = delta.next()?;
                if skip(k, now.as_ref()) {
                    continue;
                }
                return Some(Change {
                    key: k,
                    before: self.base.get(k),
                    now: now.as_ref().map(|r| RowRef {
                        key: k,
                        value: &r.value,
                        version: r.version,
                    }),
                });
            }
        })
    }

    /// The appended rows (chunks, recent, then pending) with keys in `lo`..`hi`, in key
    /// order, after the rows of `base_part` (a range of the base's slots).
    fn appended<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        base_part: Option<(&'a Base, usize, usize)>,
    ) -> Sorted<'a> {
        let (first, past) = positions_within(&self.pending, lo, hi);
        let mut parts: Vec<(&Base, usize, usize)> = base_part.into_iter().collect();
        parts.extend(self.tail.parts(lo, hi));
        Sorted {
            parts,
            at: 0,
            recent: self.recent.range(lo, hi).iter(),
            pending: self
                .pending
                .get(first..past.max(first))
                .unwrap_or_default()
                .iter(),
        }
    }

    /// Every row, in key order.
    pub fn iter(&self) -> Merge<'_> {
        self.merge_range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The row with the greatest key within `lo`..`hi`: the greatest of the laid-out rows and
    /// of the delta's changes, each found by a search; a deletion in the delta moves the bound
    /// below its key and searches again.
    pub fn last_in<'a>(&'a self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Option<RowRef<'a>> {
        if is_empty_range(lo, hi) {
            return None;
        }
        let mut below: Option<&'a [u8]> = None;
        loop {
            let hi = below.map_or(hi, Bound::Excluded);
            let laid = self.laid_out_last(lo, hi);
            let changed = if self.delta.is_empty() {
                None
            } else {
                self.delta.last_in(lo, hi)
            };
            match changed {
                Some((k, change)) if laid.as_ref().is_none_or(|r| k.as_slice() >= r.key) => {
                    match change {
                        Some(r) => {
                            return Some(RowRef {
                                key: k,
                                value: &r.value,
                                version: r.version,
                            });
                        }
                        // Deleted: the laid-out row of the key, if any, is hidden too.
                        None => below = Some(k.as_slice()),
                    }
                }
                _ => return laid,
            }
        }
    }

    /// The laid-out row (base, chunks, recent, pending) with the greatest key within
    /// `lo`..`hi`, whatever the delta says of it.
    fn laid_out_last<'a>(&'a self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Option<RowRef<'a>> {
        let (first, past) = positions_within(&self.pending, lo, hi);
        if past > first {
            return self.pending.get(past - 1).map(|(k, r)| RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            });
        }
        let recent = self.recent.range(lo, hi).iter().rev().find_map(|s| s.get());
        if let Some((k, r)) = recent {
            return Some(RowRef {
                key: k,
                value: &r.value,
                version: r.version,
            });
        }
        let parts = self.tail.parts(lo, hi);
        let chunk = parts.iter().rev().find(|(_, start, end)| end > start);
        if let Some((chunk, _, end)) = chunk {
            return chunk.row(end - 1);
        }
        let start = self.base.start(lo);
        let end = self.base.end(hi);
        if end > start {
            return self.base.row(end - 1);
        }
        None
    }

    /// The rows with keys in `bounds`, in key order, by one merge of the parts.
    pub(super) fn merge_range(&self, bounds: (Bound<Bytes>, Bound<Bytes>)) -> Merge<'_> {
        let (lo, hi) = (as_slice(&bounds.0), as_slice(&bounds.1));
        if is_empty_range(lo, hi) {
            return Merge {
                sorted: Sorted::default().peekable(),
                delta: (Box::new(std::iter::empty()) as DeltaIter<'_>).peekable(),
            };
        }
        let start = self.base.start(lo);
        let end = self.base.end(hi).max(start);
        let sorted = self.appended(lo, hi, Some((&self.base, start, end)));
        let delta: DeltaIter<'_> = if self.delta.is_empty() {
            Box::new(std::iter::empty())
        } else {
            Box::new(self.delta.range(bounds))
        };
        Merge {
            sorted: sorted.peekable(),
            delta: delta.peekable(),
        }
    }

    /// Makes the rows appended since the last seal recent rows, or, with the recent rows, a
    /// chunk of the tail when they are many or the recent block is full. Called when a
    /// transaction commits (so states that are shared hold no pending rows, and cloning one
    /// copies none) and as pending rows reach [`PENDING_MAX`]; the rows read the same before
    /// and after (a later write to a pending key in the same transaction is in the delta,
    /// which wins over every appended row).
    pub fn seal(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        if pending.len() < CHUNK_MIN {
            match self.recent.try_extend(pending) {
                Ok(()) => return,
                Err(rows) => pending = rows,
            }
        }
        let rows = self.recent.rows().chain(&pending);
        let chunk = chunk_of(rows, self.recent.len() + pending.len());
        self.recent.clear();
        self.tail.push(chunk);
    }

    /// Whether rows appended by the transaction at work wait for [`seal`](Self::seal).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
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
        let above = match (run.first(), &self.bound) {
            (Some((first, _)), Some(bound)) => first > bound,
            (Some(_), None) => true,
            (None, _) => return,
        };
        if sorted && above && run.len() >= CHUNK_MIN {
            // New keys above every key held: with the recent rows, a chunk of the tail, the
            // table not copied.
            self.seal();
            self.len += run.len();
            self.bound = run.last().map(|(k, _)| k.clone());
            self.pending = run;
            self.seal();
            return;
        }
        if !sorted || run.len() < min || run.len().saturating_mul(4) < self.len {
            for (key, row) in run {
                self.insert(key, row);
            }
            return;
        }
        let run_len = run.len();
        let mut table = self.iter().peekable();
        let mut run = run.iter().peekable();
        let merged = std::iter::from_fn(move || {
            let order = merge_order(
                table.peek().map(|r| r.key),
                run.peek().map(|(k, _)| k.as_slice()),
            )?;
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
        let rows = self.len + run_len;
        *self = Rows::from_base(Base::collect(merged, rows, 0));
    }

    /// The same rows with the delta folded into a new base (one copy of every row); rows
    /// without changes are copied too when their base shares a larger buffer (see
    /// [`holds_foreign_bytes`](Self::holds_foreign_bytes)).
    pub fn compacted(&self) -> Rows {
        if !self.needs_fold() {
            return self.clone();
        }
        let mut nothing = |_: &[u8]| Ok(());
        let rows = self.folded_tapped(&mut nothing).unwrap_or_default();
        rows.start_directory();
        rows
    }

    /// Whether [`compacted`](Self::compacted) lays the rows out anew: there are changes on
    /// top of the base, or the base holds a buffer mostly of other rows.
    pub fn needs_fold(&self) -> bool {
        self.delta_len() > 0 || self.holds_foreign_bytes()
    }

    /// The rows laid out anew in one base (as [`compacted`](Self::compacted) does when they
    /// need it), handing `tap` every row's record in key order as it is written (the layout
    /// of [`packed_records`](Self::packed_records)); an error of `tap` stops it. The new
    /// base's directory waits for [`start_directory`](Self::start_directory), so that
    /// building it does not compete with what the fold feeds.
    pub fn folded_tapped(
        &self,
        tap: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<Rows> {
        // Room for the base's bytes and the changes' (estimated at the base's average row).
        let bytes = self.base.row_bytes();
        let bytes = bytes + bytes / self.base.len().max(1) * self.delta_len();
        Base::collect_tapped(self.iter(), self.len, bytes, tap).map(Rows::from_base_later)
    }

    /// Every row's record (key length and key, value length and value, version), in key
    /// order, as one byte string: when all the rows are in a base whose buffer holds exactly
    /// their records (see [`Base::collect`]), as after a compaction's fold.
    pub fn packed_records(&self) -> Option<&[u8]> {
        let only_base = self.delta_len() == 0
            && self.tail.is_empty()
            && self.recent.is_empty()
            && self.pending.is_empty()
            && self.len == self.base.len();
        only_base.then(|| self.base.packed_records()).flatten()
    }

    /// Whether the base is only a part of a buffer it shares with other tables' rows (a
    /// decoded snapshot image), which it keeps in memory.
    pub fn holds_foreign_bytes(&self) -> bool {
        self.base.holds_foreign_bytes()
    }

    /// The rows with `changes` (strictly increasing keys; `Some` puts the row, `None` removes
    /// the key's row if there is one; `count` of them) merged in, laid out as one new base in
    /// a single pass.
    pub fn merged<'a>(
        &'a self,
        changes: impl Iterator<Item = &'a (Bytes, Option<Row>)>,
        count: usize,
    ) -> Rows {
        self.merged_seeing(changes, count, |_| {})
    }

    /// [`merged`](Self::merged), telling `seen` each change in turn, with the row it replaces
    /// or removes (`before`: the key's row in these rows, if any).
    pub fn merged_seeing<'a>(
        &'a self,
        changes: impl Iterator<Item = &'a (Bytes, Option<Row>)>,
        count: usize,
        seen: impl FnMut(Change<'a>),
    ) -> Rows {
        // Room for as many more rows as changes, of the rows' average size.
        let bytes = self.base.row_bytes();
        let bytes = bytes + bytes / self.base.len().max(1) * count;
        let count = self.len + count;
        let base = if self.delta_len() == 0 {
            // Only the base: its rows read straight from its slots.
            let rows = (0..self.base.len()).filter_map(|i| self.base.row(i));
            Base::collect(merge_changes(rows, changes, seen), count, bytes)
        } else {
            Base::collect(merge_changes(self.iter(), changes, seen), count, bytes)
        };
        Rows::from_base(base)
    }
}

/// A chunk of the `len` rows of `rows` (in strictly increasing key order).
fn chunk_of<'a>(rows: impl Iterator<Item = &'a (Bytes, Row)> + Clone, len: usize) -> Base {
    let bytes = rows.clone().map(|(k, r)| k.len() + r.value.len()).sum();
    let refs = rows.map(|(k, r)| RowRef {
        key: k,
        value: &r.value,
        version: r.version,
    });
    Base::collect(refs, len, bytes)
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

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
