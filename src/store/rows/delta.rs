//! The delta of a table's rows: the changes on top of its base and appended rows, by key,
//! persistent (a clone is O(1)). Changes go into a small persistent tree; when it fills, it is
//! frozen into an immutable sorted run, and runs of like size are merged, the newer over the
//! older (a log-structured merge). So a change copies a path of a small tree, never of one as
//! large as the delta: changes at random keys cost about what changes at increasing keys do,
//! where one large tree copied a leaf of 64 entries for nearly every change of a commit.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use imbl::OrdMap;

use super::base::prefix_of;
use super::bytes::{Bytes, as_slice, positions_within};
use super::directory::{Directory, key_hash};
use super::reclaim::{on_reclaiming_thread, reclaim_any};
use super::row::Row;

/// What the delta holds for a key.
#[derive(Debug, Clone)]
enum Slot {
    /// A row (`Some`), or a deletion that hides a laid-out row (`None`).
    Set(Option<Row>),
    /// Nothing: hides the key's entry in an older run (a key removed from the delta).
    Gone,
}

/// An immutable run: entries in strictly increasing key order, and a filter of their keys.
#[derive(Debug)]
struct RunData {
    entries: Vec<(Bytes, Slot)>,
    /// Three bits of one word per key, [`RUN_FILTER_BITS`] bits per key: a get skips the runs
    /// whose filter does not hold its key (a run holds it about once in 70 when it does not).
    filter: Box<[u64]>,
    /// A hash directory of the entries, for a run of [`RUN_DIRECTORY_MIN`] entries or more
    /// that a restore laid out (built beside, on a thread of its own): a get finds its key
    /// in a probe or two, where a search of such a run missed the cache at most steps.
    directory: OnceLock<Option<Directory>>,
}

type Run = Arc<RunData>;

/// Entries a run needs for its last holder to free them on the reclaiming thread: a merge
/// replaces runs of up to [`MERGE_MAX`] entries, and the state that last held them is
/// dropped by the writer, under its lock (a restore's run holds up to millions).
const RECLAIM_MIN: usize = if cfg!(test) { 16 } else { 1 << 12 };

impl Drop for RunData {
    fn drop(&mut self) {
        if self.entries.len() >= RECLAIM_MIN && !on_reclaiming_thread() {
            reclaim_any(Box::new(std::mem::take(&mut self.entries)));
        }
    }
}

/// Entries a run a restore lays out needs for a directory (see [`RunData::directory`]).
const RUN_DIRECTORY_MIN: usize = if cfg!(test) { 64 } else { 1 << 15 };

/// Filter bits per key of a run.
const RUN_FILTER_BITS: usize = 16;

impl RunData {
    fn new(entries: Vec<(Bytes, Slot)>) -> RunData {
        let words = (entries.len() * RUN_FILTER_BITS / 64).max(1);
        let mut filter = vec![0u64; words].into_boxed_slice();
        for (k, _) in &entries {
            let (w, m) = probe(hash(k.as_slice()), words);
            if let Some(x) = filter.get_mut(w) {
                *x |= m;
            }
        }
        RunData {
            entries,
            filter,
            directory: OnceLock::new(),
        }
    }

    /// Builds the directory of its entries.
    fn build_directory(&self) {
        let hash = |i: usize| self.entries.get(i).map_or(0, |(k, _)| hash(k.as_slice()));
        let _ = self
            .directory
            .set(Directory::build(self.entries.len(), hash, |i| i as u64));
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of `key` (whose [`hash`] is `h`), if the run has one.
    fn find(&self, key: &[u8], h: u64) -> Option<&(Bytes, Slot)> {
        if let Some(Some(d)) = self.directory.get() {
            // Its probe answers for an absent key too (an empty entry, or other tags), as
            // the filter would, in about as many cache lines.
            let entry = |t: u64| self.entries.get(usize::try_from(t).ok()?);
            let is_key = |t: u64| entry(t).is_some_and(|(k, _)| k.as_slice() == key);
            return d.find(h, is_key).and_then(entry);
        }
        let (w, m) = probe(h, self.filter.len());
        if self.filter.get(w).is_none_or(|x| x & m != m) {
            return None;
        }
        let i = self
            .entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()?;
        self.entries.get(i)
    }
}

/// A run a delta was made of (see [`Delta::of_sorted`]) and a mark per change. Holding the
/// run keeps its changes where they are, so a change read from a delta is known to be the
/// run's own (not a later change of its key, nor a copy made by a merge) by its address.
#[derive(Debug)]
pub struct MarkedRun {
    run: Run,
    marks: Vec<bool>,
}

impl MarkedRun {
    /// Whether `row`, a delta's row under `key`, is the run's own change of `key` and
    /// marked: asked of keys in increasing order, `at` (0 at first) keeping the place.
    pub fn holds_marked(&self, at: &mut usize, key: &[u8], row: &Row) -> bool {
        let entries = &self.run.entries;
        while entries.get(*at).is_some_and(|(k, _)| k.as_slice() < key) {
            *at += 1;
        }
        match (entries.get(*at), self.marks.get(*at)) {
            (Some((k, Slot::Set(Some(own)))), Some(true)) => {
                k.as_slice() == key && std::ptr::eq(own, row)
            }
            _ => false,
        }
    }
}

/// The hash of a key for the run filters (and, mixed again, the delta's key filter).
pub(super) fn hash(key: &[u8]) -> u64 {
    key_hash(prefix_of(key), key)
}

/// The word of a filter of `words` words and the three bits in it that stand for hash `h`.
pub(super) fn probe(h: u64, words: usize) -> (usize, u64) {
    let word = ((u128::from(h >> 32) * words as u128) >> 32) as usize;
    let mask = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
    (word, mask)
}

/// Entries the tree takes before it is frozen into a run: small, so that the leaves a commit
/// copies are few (a leaf holds 64), and large enough that runs stay few.
const HOT_MAX: usize = if cfg!(test) { 8 } else { 1024 };

/// Runs of about one size merged into one, the next size: every entry is copied about
/// log4(len / HOT_MAX) times in all, and a get that the caller's filter lets through searches
/// at most three runs of each size.
const FAN_IN: usize = 4;

/// Runs are merged only while the result stays at most this long: a merge runs inside a
/// commit, and one of this size takes a few milliseconds. Larger deltas keep more runs of this
/// size (each searched newest first by a get its key filter lets through); compaction folds
/// them into the base.
const MERGE_MAX: usize = if cfg!(test) { 64 } else { 1 << 14 };

/// Changes by key (`Some`: the row; `None`: deleted), persistent.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    hot: OrdMap<Bytes, Slot>,
    /// Frozen runs, oldest first: at most `FAN_IN - 1` of about each size, each size
    /// `FAN_IN` times the next, up to [`MERGE_MAX`] entries, and any number of that size.
    runs: Vec<Run>,
    /// Entries in the runs.
    in_runs: usize,
    /// The merge of runs past [`MERGE_MAX`] under way, if any (see [`Merging`]).
    merging: Option<Arc<Mutex<Merging>>>,
    /// About how many entries of the runs a newer entry of their key hides (counted as
    /// changes find their key in the runs, less what merges dropped): merges past
    /// [`MERGE_MAX`] start only while they are a share of the runs worth the copying
    /// ([`SUPERSEDED_SHARE`]), so a load of new keys is not merged again and again for
    /// nothing.
    superseded: usize,
}

/// The share of the runs' entries that must be hidden by newer ones (one in this many) before
/// a merge past [`MERGE_MAX`] starts: half. Under the default compaction policy a delta is
/// folded before that (the updates of a tail as large as the snapshot hide about a quarter of
/// their changes on random keys), and the merges' copying and freeing beside the commits
/// raised the slowest commits (max 136-214 ms against 74-82 ms without them, in alternating
/// runs); with automatic compaction off, or compaction far behind, they bound the delta.
const SUPERSEDED_SHARE: usize = 2;

/// A merge of [`FAN_IN`] runs too large to merge within one commit ([`MERGE_MAX`]), carried a
/// share at a time by the commits that freeze the tree, then put in place of its runs if the
/// delta still holds them. Without it, a delta of many changes would keep every change of a
/// key in runs of [`MERGE_MAX`]: a get probes every run's filter (the writer slows down as the
/// changes since the last compaction grow) and every replaced row is kept. Shared by the
/// delta's clones: the merge depends on its runs alone, so any clone that holds them may carry
/// it on or put it in place.
#[derive(Debug)]
struct Merging {
    /// The runs merged, oldest first.
    sources: Vec<Run>,
    /// Whether the first of them was the delta's oldest (`Gone` entries are then dropped).
    oldest: bool,
    /// Each source's next entry.
    at: Vec<usize>,
    /// The entries merged so far, and the filter of their keys (sized for every source entry).
    out: Vec<(Bytes, Slot)>,
    filter: Box<[u64]>,
    /// The merged run, once every entry is merged.
    done: Option<Run>,
}

/// Source entries a freeze carries a merge past [`MERGE_MAX`] on by (a fraction of a
/// millisecond of a commit's time). Each change is merged about log4(len / MERGE_MAX) times
/// past it, so this keeps up with deltas of a few million changes.
const MERGE_STEP: usize = 4 * HOT_MAX;

impl Merging {
    fn new(sources: Vec<Run>, oldest: bool) -> Merging {
        let total: usize = sources.iter().map(|r| r.len()).sum();
        let largest = sources.iter().map(|r| r.len()).max().unwrap_or(0);
        Merging {
            at: vec![0; sources.len()],
            out: Vec::with_capacity(largest),
            filter: vec![0u64; (total * RUN_FILTER_BITS / 64).max(1)].into_boxed_slice(),
            sources,
            oldest,
            done: None,
        }
    }

    /// Merges up to `budget` source entries more; returns the merged run once all are.
    fn carry(&mut self, budget: usize) -> Option<Run> {
        let mut left = budget;
        while self.done.is_none() && left > 0 {
            // The smallest next key; of equal keys the newest source's entry wins.
            let mut best: Option<(usize, &Bytes)> = None;
            for (i, run) in self.sources.iter().enumerate() {
                let at = self.at.get(i).copied().unwrap_or(usize::MAX);
                if let Some((k, _)) = run.entries.get(at) {
                    if best.is_none_or(|(_, b)| k.as_slice() <= b.as_slice()) {
                        best = Some((i, k));
                    }
                }
            }
            let Some((won, key)) = best else {
                let entries = std::mem::take(&mut self.out);
                let filter = std::mem::take(&mut self.filter);
                self.done = Some(Arc::new(RunData {
                    entries,
                    filter,
                    directory: OnceLock::new(),
                }));
                break;
            };
            let key = key.clone();
            for (i, run) in self.sources.iter().enumerate() {
                let Some(at) = self.at.get_mut(i) else {
                    continue;
                };
                let Some(entry) = run.entries.get(*at) else {
                    continue;
                };
                if entry.0.as_slice() != key.as_slice() {
                    continue;
                }
                *at += 1;
                left = left.saturating_sub(1);
                if i == won && !(self.oldest && matches!(entry.1, Slot::Gone)) {
                    let (w, m) = probe(hash(key.as_slice()), self.filter.len());
                    if let Some(x) = self.filter.get_mut(w) {
                        *x |= m;
                    }
                    self.out.push(entry.clone());
                }
            }
        }
        self.done.clone()
    }
}

impl Delta {
    /// A delta of `changes` (keys strictly increasing; `None`: deleted) in one run, each
    /// change with a mark (see [`MarkedRun`]).
    pub fn of_sorted(changes: Vec<(Bytes, Option<Row>)>, marks: Vec<bool>) -> (Delta, MarkedRun) {
        let entries: Vec<(Bytes, Slot)> = changes
            .into_iter()
            .map(|(k, change)| (k, Slot::Set(change)))
            .collect();
        let in_runs = entries.len();
        let run = Arc::new(RunData::new(entries));
        if in_runs >= RUN_DIRECTORY_MIN {
            let r = Arc::clone(&run);
            let spawned = std::thread::Builder::new()
                .name("statelog-directory".into())
                .spawn(move || r.build_directory());
            if spawned.is_err() {
                run.build_directory();
            }
        }
        let delta = Delta {
            runs: if in_runs == 0 {
                Vec::new()
            } else {
                vec![run.clone()]
            },
            in_runs,
            ..Delta::default()
        };
        (delta, MarkedRun { run, marks })
    }

    /// Entries held: at least the keys it has a change for, 0 only when it has none.
    pub fn len(&self) -> usize {
        self.hot.len() + self.in_runs
    }

    /// Whether it holds no change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, key: &[u8]) -> Option<(&Bytes, &Slot)> {
        if let Some(found) = self.hot.get_key_value(key) {
            return Some(found);
        }
        if self.runs.is_empty() {
            return None;
        }
        let h = hash(key);
        self.runs
            .iter()
            .rev()
            .find_map(|run| run.find(key, h).map(|(k, s)| (k, s)))
    }

    /// The change of `key`, with the key as the delta holds it.
    pub fn get_key_value(&self, key: &[u8]) -> Option<(&Bytes, &Option<Row>)> {
        match self.slot(key) {
            Some((k, Slot::Set(row))) => Some((k, row)),
            _ => None,
        }
    }

    /// Puts a change; returns the change it replaced.
    pub fn insert(&mut self, key: Bytes, change: Option<Row>) -> Option<Option<Row>> {
        let before = match self.hot.insert(key.clone(), Slot::Set(change)) {
            Some(Slot::Set(before)) => Some(before),
            Some(Slot::Gone) => None,
            None if self.runs.is_empty() => None,
            None => {
                let before = self.in_runs(&key);
                self.superseded += usize::from(before.is_some());
                before
            }
        };
        self.freeze_if_full();
        before
    }

    /// Puts a change of a key the delta holds no change for (the caller knows, from a
    /// filter): no search of the runs.
    pub fn insert_absent(&mut self, key: Bytes, change: Option<Row>) {
        self.hot.insert(key, Slot::Set(change));
        self.freeze_if_full();
    }

    /// Removes the change of `key`; returns it.
    pub fn remove(&mut self, key: &[u8]) -> Option<Option<Row>> {
        if self.runs.is_empty() {
            return match self.hot.remove(key) {
                Some(Slot::Set(before)) => Some(before),
                _ => None,
            };
        }
        let before = self.get_key_value(key).map(|(_, r)| r.clone());
        if self.in_runs(key).is_some() {
            // The entry hidden, and the `Gone` that hides it (dropped by the oldest merge).
            self.superseded += 2;
            self.hot.insert(Bytes::new(key), Slot::Gone);
            self.freeze_if_full();
        } else {
            self.hot.remove(key);
        }
        before
    }

    /// The change the runs hold for `key`.
    fn in_runs(&self, key: &[u8]) -> Option<Option<Row>> {
        let h = hash(key);
        match self.runs.iter().rev().find_map(|run| run.find(key, h)) {
            Some((_, Slot::Set(row))) => Some(row.clone()),
            _ => None,
        }
    }

    /// Freezes a full tree into a run, then merges the newest `FAN_IN` runs while they are of
    /// about one size (the oldest of them at most twice the newest), and carries on the merge
    /// of larger runs.
    fn freeze_if_full(&mut self) {
        if self.hot.len() < HOT_MAX {
            return;
        }
        let run: Vec<(Bytes, Slot)> = std::mem::take(&mut self.hot).into_iter().collect();
        self.in_runs += run.len();
        self.runs.push(Arc::new(RunData::new(run)));
        while self.runs.len() >= FAN_IN {
            let from = self.runs.len() - FAN_IN;
            let (oldest, newest) = match (self.runs.get(from), self.runs.last()) {
                (Some(o), Some(n)) => (o.len(), n.len()),
                _ => break,
            };
            let window = self.runs.get(from..).unwrap_or_default();
            let total: usize = window.iter().map(|r| r.len()).sum();
            if oldest > newest.saturating_mul(2) || total > MERGE_MAX || self.merges_any(window) {
                break;
            }
            let merged = merge_runs(window, from == 0);
            self.dropped(total - merged.len());
            self.in_runs = self.in_runs - total + merged.len();
            self.runs.truncate(from);
            self.runs.push(Arc::new(RunData::new(merged)));
        }
        self.carry_merge();
    }

    /// Counts `n` entries a merge dropped (hidden ones, and `Gone` ones with nothing older).
    fn dropped(&mut self, n: usize) {
        self.superseded = self.superseded.saturating_sub(n);
    }

    /// Whether the merge under way takes any of `runs`.
    fn merges_any(&self, runs: &[Run]) -> bool {
        self.merging.as_ref().is_some_and(|m| {
            let m = m.lock().unwrap_or_else(PoisonError::into_inner);
            m.sources
                .iter()
                .any(|s| runs.iter().any(|r| Arc::ptr_eq(r, s)))
        })
    }

    /// While enough of the runs' entries are hidden ([`SUPERSEDED_SHARE`]), starts a merge of
    /// the newest [`FAN_IN`] consecutive runs of about one size (the largest
    /// at most `FAN_IN` times the smallest) that together pass [`MERGE_MAX`], unless one is
    /// under way; carries the one under way on by [`MERGE_STEP`] source entries; puts it in
    /// place once done.
    fn carry_merge(&mut self) {
        if self.merging.is_none() {
            if self.superseded.saturating_mul(SUPERSEDED_SHARE) < self.in_runs {
                return;
            }
            let n = self.runs.len();
            let from = (0..=n.saturating_sub(FAN_IN)).rev().find(|&from| {
                let w = self.runs.get(from..from + FAN_IN).unwrap_or_default();
                let lens = w.iter().map(|r| r.len());
                let (min, max) = (lens.clone().min(), lens.clone().max());
                w.len() == FAN_IN
                    && lens.sum::<usize>() > MERGE_MAX
                    && max <= min.map(|m| m.saturating_mul(FAN_IN))
            });
            let Some(from) = from else {
                return;
            };
            let sources = self
                .runs
                .get(from..from + FAN_IN)
                .unwrap_or_default()
                .to_vec();
            self.merging = Some(Arc::new(Mutex::new(Merging::new(sources, from == 0))));
        }
        let Some(job) = self.merging.clone() else {
            return;
        };
        let (done, sources, oldest) = {
            let mut m = job.lock().unwrap_or_else(PoisonError::into_inner);
            (m.carry(MERGE_STEP), m.sources.clone(), m.oldest)
        };
        if let Some(merged) = done {
            self.merging = None;
            self.put_merged(&sources, oldest, merged);
        }
    }

    /// Puts `merged` in place of `sources` if the runs still hold them, one after another
    /// (and first, if the merge dropped `Gone` entries); the runs it replaces are freed on the
    /// reclaiming thread.
    fn put_merged(&mut self, sources: &[Run], oldest: bool, merged: Run) {
        let k = sources.len();
        let at = self
            .runs
            .windows(k)
            .position(|w| w.iter().zip(sources).all(|(a, b)| Arc::ptr_eq(a, b)));
        let Some(at) = at.filter(|&at| !oldest || at == 0) else {
            return;
        };
        let total: usize = sources.iter().map(|r| r.len()).sum();
        self.dropped(total - merged.len());
        self.in_runs = self.in_runs - total + merged.len();
        let with = (!merged.entries.is_empty()).then_some(merged);
        let replaced: Vec<Run> = self.runs.splice(at..at + k, with).collect();
        reclaim_any(Box::new(replaced));
    }

    /// Every key it holds an entry for, in no order, some perhaps twice: cheaper than
    /// [`iter`](Self::iter) for a filter of its keys.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> + '_ {
        let runs = self
            .runs
            .iter()
            .flat_map(|r| r.entries.iter().map(|(k, _)| k));
        self.hot.keys().chain(runs)
    }

    /// The change of the greatest key within `lo`..`hi` that the delta holds a change for
    /// (a key only hidden from older runs, `Gone`, is skipped): the greatest key of each
    /// source by a search, the newest source's entry winning.
    pub fn last_in<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Option<(&'a Bytes, &'a Option<Row>)> {
        let mut below: Option<&'a [u8]> = None;
        loop {
            let hi = below.map_or(hi, Bound::Excluded);
            let in_hot = self
                .hot
                .range::<_, [u8]>((lo, hi))
                .next_back()
                .map(|(k, _)| k);
            let in_runs = self.runs.iter().filter_map(|run| {
                let (from, to) = positions_within(&run.entries, lo, hi);
                (to > from)
                    .then(|| run.entries.get(to - 1).map(|(k, _)| k))
                    .flatten()
            });
            let key = in_hot.into_iter().chain(in_runs).max()?;
            match self.slot(key) {
                Some((k, Slot::Set(row))) => return Some((k, row)),
                _ => below = Some(key.as_slice()),
            }
        }
    }

    /// Every change, in key order.
    pub fn iter(&self) -> DeltaRange<'_> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The changes of the keys in `bounds`, in key order.
    pub fn range(&self, bounds: (Bound<Bytes>, Bound<Bytes>)) -> DeltaRange<'_> {
        let lo = as_slice(&bounds.0);
        let hi = as_slice(&bounds.1);
        let mut sources: Vec<Source<'_>> = self
            .runs
            .iter()
            .map(|run| {
                let (from, to) = positions_within(&run.entries, lo, hi);
                let slice = run.entries.get(from..to.max(from)).unwrap_or_default();
                Box::new(slice.iter().map(|(k, s)| (k, s))) as Box<dyn Iterator<Item = _>>
            })
            .map(Iterator::peekable)
            .collect();
        let hot: Box<dyn Iterator<Item = (&Bytes, &Slot)>> = if self.hot.is_empty() {
            Box::new(std::iter::empty())
        } else {
            Box::new(self.hot.range(bounds))
        };
        sources.push(hot.peekable());
        DeltaRange::new(sources)
    }
}

type Source<'a> = std::iter::Peekable<Box<dyn Iterator<Item = (&'a Bytes, &'a Slot)> + 'a>>;

/// The changes of a key range, in key order: the runs and the tree merged, the newest entry of
/// each key winning (a heap of the sources' next keys, so a delta of many runs costs a log of
/// their number per entry).
pub struct DeltaRange<'a> {
    /// Oldest first; the tree last.
    sources: Vec<Source<'a>>,
    /// The next key of every source that has one.
    heads: BinaryHeap<Head<'a>>,
}

/// A source's next key.
struct Head<'a> {
    key: &'a Bytes,
    source: usize,
}

impl Ord for Head<'_> {
    /// The heap's greatest is the smallest key, and of equal keys the newest source.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .as_slice()
            .cmp(self.key.as_slice())
            .then(self.source.cmp(&other.source))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

impl<'a> DeltaRange<'a> {
    fn new(mut sources: Vec<Source<'a>>) -> Self {
        let heads = sources
            .iter_mut()
            .enumerate()
            .filter_map(|(source, s)| s.peek().map(|&(key, _)| Head { key, source }))
            .collect();
        DeltaRange { sources, heads }
    }

    /// Takes the next entry of source `i`, and puts its following key on the heap.
    fn advance(&mut self, i: usize) -> Option<(&'a Bytes, &'a Slot)> {
        let s = self.sources.get_mut(i)?;
        let entry = s.next();
        if let Some(&(key, _)) = s.peek() {
            self.heads.push(Head { key, source: i });
        }
        entry
    }
}

impl<'a> Iterator for DeltaRange<'a> {
    type Item = (&'a Bytes, &'a Option<Row>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let top = self.heads.pop()?;
            let won = self.advance(top.source);
            // Older entries of the same key lose.
            while let Some(h) = self.heads.peek() {
                if h.key.as_slice() != top.key.as_slice() {
                    break;
                }
                let source = h.source;
                self.heads.pop();
                self.advance(source);
            }
            match won {
                Some((k, Slot::Set(row))) => return Some((k, row)),
                _ => continue,
            }
        }
    }
}

/// `runs` (oldest first) merged, the newest entry of a key winning; `Gone` entries are
/// dropped when nothing older is left for them to hide (`oldest`). Merged in pairs (one
/// comparison per entry and level).
fn merge_runs(runs: &[Run], oldest: bool) -> Vec<(Bytes, Slot)> {
    match runs {
        [] => Vec::new(),
        [only] => only
            .entries
            .iter()
            .filter(|(_, s)| !(oldest && matches!(s, Slot::Gone)))
            .cloned()
            .collect(),
        [older, newer] => merge_two(&older.entries, &newer.entries, oldest),
        _ => {
            let half = runs.len() / 2;
            let (older, newer) = runs.split_at(half);
            let older = merge_runs(older, oldest);
            let newer = merge_runs(newer, false);
            merge_two(&older, &newer, oldest)
        }
    }
}

/// Two runs merged (see [`merge_runs`]).
fn merge_two(older: &[(Bytes, Slot)], newer: &[(Bytes, Slot)], oldest: bool) -> Vec<(Bytes, Slot)> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut a, mut b) = (0usize, 0usize);
    let keep = |s: &Slot| !(oldest && matches!(s, Slot::Gone));
    while let (Some(x), Some(y)) = (older.get(a), newer.get(b)) {
        match x.0.as_slice().cmp(y.0.as_slice()) {
            Ordering::Less => {
                if keep(&x.1) {
                    out.push(x.clone());
                }
                a += 1;
            }
            Ordering::Greater => {
                if keep(&y.1) {
                    out.push(y.clone());
                }
                b += 1;
            }
            Ordering::Equal => {
                if keep(&y.1) {
                    out.push(y.clone());
                }
                a += 1;
                b += 1;
            }
        }
    }
    let rest = older.get(a..).unwrap_or_default().iter();
    let rest = rest.chain(newer.get(b..).unwrap_or_default());
    out.extend(rest.filter(|(_, s)| keep(s)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The changes the delta should hold.
    type Model = BTreeMap<Vec<u8>, Option<Row>>;

    #[test]
    fn a_large_run_dropped_is_freed() {
        assert!(!on_reclaiming_thread());
        let value = Bytes::new(&[7; 40]);
        let changes: Vec<(Bytes, Option<Row>)> = (0..RECLAIM_MIN as u32 * 2)
            .map(|k| {
                let row = Row {
                    value: value.clone(),
                    version: 1,
                };
                (Bytes::new(format!("{k:08}").as_bytes()), Some(row))
            })
            .collect();
        let (delta, marked) = Delta::of_sorted(changes, Vec::new());
        assert_eq!(value.holders(), 1 + 2 * RECLAIM_MIN);
        drop((delta, marked));
        // Its entries go to the reclaiming thread, which frees them soon.
        let since = std::time::Instant::now();
        while value.holders() > 1 && since.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(value.holders(), 1);
    }

    fn row(v: u8) -> Option<Row> {
        (v != 0).then(|| Row {
            value: Bytes::new(&[v]),
            version: u64::from(v),
        })
    }

    proptest! {
        /// The delta answers as one ordered map of its changes would, for every operation,
        /// lookup and range, and a clone taken midway keeps what it held.
        #[test]
        fn the_delta_is_an_ordered_map(
            ops in proptest::collection::vec((0u8..40, 0u8..4, 0u8..5), 0..300),
            lo in 0u8..40,
            hi in 0u8..40,
        ) {
            let mut d = Delta::default();
            let mut model: Model = BTreeMap::new();
            let mut kept: Option<(Delta, Model)> = None;
            for (i, (k, op, v)) in ops.iter().enumerate() {
                let key = vec![*k];
                if *op == 0 {
                    let got = d.remove(&key);
                    prop_assert_eq!(got, model.remove(&key));
                } else {
                    let got = d.insert(Bytes::new(&key), row(*v));
                    prop_assert_eq!(got, model.insert(key.clone(), row(*v)));
                }
                if i == ops.len() / 2 {
                    kept = Some((d.clone(), model.clone()));
                }
                prop_assert!(model.is_empty() || !d.is_empty());
                prop_assert!(d.len() >= model.len());
            }
            for k in 0u8..40 {
                let got = d.get_key_value(&[k]).map(|(_, r)| r.clone());
                prop_assert_eq!(got, model.get(&vec![k]).cloned());
            }
            let all: Vec<(Vec<u8>, Option<Row>)> =
                d.iter().map(|(k, r)| (k.as_slice().to_vec(), r.clone())).collect();
            let want: Vec<(Vec<u8>, Option<Row>)> =
                model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
            prop_assert_eq!(all, want);
            let bounds = (Bound::Included(Bytes::new(&[lo])), Bound::Excluded(Bytes::new(&[hi])));
            if lo <= hi {
                let got: Vec<Vec<u8>> = d.range(bounds).map(|(k, _)| k.as_slice().to_vec()).collect();
                let want: Vec<Vec<u8>> = model.range(vec![lo]..vec![hi]).map(|(k, _)| k.clone()).collect();
                prop_assert_eq!(got, want);
            }
            if let Some((d, model)) = kept {
                let all: Vec<Vec<u8>> = d.iter().map(|(k, _)| k.as_slice().to_vec()).collect();
                let want: Vec<Vec<u8>> = model.keys().cloned().collect();
                prop_assert_eq!(all, want);
            }
        }
    }

    proptest! {
        /// A delta made of one sorted run (a restore's), looked up with the run's directory
        /// or by search, then changed like any: it answers as the model; and the run's marks
        /// name its own changes only, not the later ones of their keys.
        #[test]
        fn a_delta_of_a_sorted_run_is_an_ordered_map(
            run in proptest::collection::btree_map(0u16..400, (0u8..5, any::<bool>()), 0..200),
            ops in proptest::collection::vec((0u16..400, 0u8..4, 0u8..5), 0..100),
            directory in any::<bool>(),
        ) {
            let changes: Vec<(Bytes, Option<Row>)> =
                run.iter().map(|(k, (v, _))| (Bytes::new(&key_of(*k)), row(*v))).collect();
            let marks: Vec<bool> = run.values().map(|(_, m)| *m).collect();
            let mut model: Model = run.iter().map(|(k, (v, _))| (key_of(*k), row(*v))).collect();
            let (mut d, marked) = Delta::of_sorted(changes, marks);
            if directory {
                if let Some(r) = d.runs.first() {
                    r.build_directory();
                    prop_assert!(r.entries.len() < 64 || matches!(r.directory.get(), Some(Some(_))));
                }
            }
            agrees(&d, &model, 400)?;
            apply(&mut d, &mut model, &ops)?;
            agrees(&d, &model, 400)?;
            // Marked: only a key's change still the run's own (not a later one, nor a copy a
            // merge of runs made), and marked there; every such one while nothing changed.
            let changed: std::collections::BTreeSet<Vec<u8>> =
                ops.iter().map(|(k, _, _)| key_of(*k)).collect();
            let marks: BTreeMap<Vec<u8>, bool> =
                run.iter().map(|(k, (_, m))| (key_of(*k), *m)).collect();
            let mut at = 0;
            for (k, r) in d.iter() {
                let Some(r) = r else { continue };
                let k = k.as_slice();
                let want = !changed.contains(k) && marks.get(k).copied().unwrap_or(false);
                let got = marked.holds_marked(&mut at, k, r);
                prop_assert!(want || !got);
                if ops.is_empty() {
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    /// Key `k`, two bytes that sort as the number does.
    fn key_of(k: u16) -> Vec<u8> {
        vec![(k >> 8) as u8, (k & 0xff) as u8]
    }

    /// Applies `(key, op, value)` operations to both the delta and the model, checking each
    /// answer (op 0 removes).
    fn apply(d: &mut Delta, model: &mut Model, ops: &[(u16, u8, u8)]) -> Result<(), TestCaseError> {
        for (k, op, v) in ops {
            let key = key_of(*k);
            if *op == 0 {
                prop_assert_eq!(d.remove(&key), model.remove(&key));
            } else {
                prop_assert_eq!(
                    d.insert(Bytes::new(&key), row(*v)),
                    model.insert(key, row(*v))
                );
            }
        }
        Ok(())
    }

    /// Every key's change, and the whole delta in key order, as the model holds them.
    fn agrees(d: &Delta, model: &Model, keys: u16) -> Result<(), TestCaseError> {
        for k in 0..keys {
            let key = key_of(k);
            let got = d.get_key_value(&key).map(|(_, r)| r.clone());
            prop_assert_eq!(got, model.get(&key).cloned());
        }
        let all: Vec<(Vec<u8>, Option<Row>)> = d
            .iter()
            .map(|(k, r)| (k.as_slice().to_vec(), r.clone()))
            .collect();
        let want: Vec<(Vec<u8>, Option<Row>)> =
            model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        prop_assert_eq!(all, want);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Past [`MERGE_MAX`], runs are merged a share per freeze: the delta still answers as
        /// the model at every point, two clones that go on changing apart (sharing the merge
        /// under way) each answer as their own model, and the runs stay few (every change of
        /// a key is not kept).
        #[test]
        fn merges_past_the_commit_limit_keep_the_changes(
            first in proptest::collection::vec((0u16..300, 0u8..6, 0u8..5), 0..3000),
            left in proptest::collection::vec((0u16..300, 0u8..6, 0u8..5), 0..1500),
            right in proptest::collection::vec((0u16..300, 0u8..6, 0u8..5), 0..1500),
        ) {
            let mut d = Delta::default();
            let mut model: Model = BTreeMap::new();
            for chunk in first.chunks(97) {
                apply(&mut d, &mut model, chunk)?;
                agrees(&d, &model, 300)?;
            }
            let (mut d2, mut model2) = (d.clone(), model.clone());
            apply(&mut d, &mut model, &left)?;
            apply(&mut d2, &mut model2, &right)?;
            agrees(&d, &model, 300)?;
            agrees(&d2, &model2, 300)?;
            // 300 keys: without the merges past MERGE_MAX, 6,000 changes would leave about
            // 6000 / 64 runs.
            prop_assert!(d.runs.len() <= 24, "{} runs", d.runs.len());
            prop_assert!(d.in_runs <= 12 * 300, "{} entries", d.in_runs);
        }
    }
}
