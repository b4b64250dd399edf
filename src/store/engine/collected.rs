//! The row changes of one table that a restore's replay collects (see `replay`), cut now
//! and then to the last change of each key, each with whether it kept its row's unique-index
//! keys (FORMAT.md §12.1.1).

use crate::store::rows::{Bytes, Row, prefix_of};

/// Collected changes a table holds before they are cut down (see [`TableChanges::push`]).
const CUT_MIN: usize = if cfg!(test) { 4 } else { 1 << 16 };

/// Changes a table's collection holds before it makes room up to its next cut at once.
const RESERVE_FROM: usize = if cfg!(test) { 2 } else { 4096 };

/// Changes a table's collection makes room for at once, at most.
const RESERVE_MAX: usize = 1 << 20;

/// Bits of a [`TableChanges::last_per_key`] sort item that hold a change's position (the
/// others, its key's [`short_len`]).
const POSITION_BITS: u32 = 56;

/// The position bits of a sort item.
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

/// The [`short_len`] of a key longer than 8 bytes.
const LONG: u64 = 9;

/// A key's length if it is 8 bytes or fewer, else [`LONG`].
fn short_len(len: usize) -> u64 {
    (len as u64).min(LONG)
}

/// The row changes of one table (`None`: deleted), in the order they were made; now and
/// then sorted by key and cut to the last change of each key, so that they stay at most about
/// twice as many as the keys changed.
#[derive(Default)]
pub(super) struct TableChanges {
    /// The changes: in order, or after a cut the last of each key in key order, then in
    /// order.
    pub(super) changes: Vec<(Bytes, Option<Row>)>,
    /// Beside each change: whether it kept its row's unique-index keys (a put whose
    /// transaction said so under a declaration, FORMAT.md §12.1.1); after a cut, whether
    /// every change of its key did.
    same_keys: Vec<bool>,
    /// How many were left by the last cut.
    left_by_cut: usize,
    /// The table's unique-index names its transactions declared last in this epoch.
    declared: Option<Vec<String>>,
    /// Whether a change that kept its keys was pushed since the last declaration.
    under_declared: bool,
    /// The index names every change that kept its keys kept them under (the declarations'
    /// common names).
    kept_under: Option<Vec<String>>,
}

impl TableChanges {
    /// Declares the table's unique-index names for the changes that follow.
    pub(super) fn declare(&mut self, names: Vec<String>) {
        self.declared = Some(names);
        self.under_declared = false;
    }

    /// Whether a change said to keep its keys did, as far as a restore can trust: only
    /// under a declaration, whose names then bound [`kept_under`](Self::kept_under).
    fn keeps(&mut self, said: bool) -> bool {
        let Some(declared) = self.declared.as_ref().filter(|_| said) else {
            return false;
        };
        if !self.under_declared {
            self.under_declared = true;
            self.kept_under = Some(match self.kept_under.take() {
                None => declared.clone(),
                Some(under) => under.into_iter().filter(|n| declared.contains(n)).collect(),
            });
        }
        true
    }

    /// Whether changes that kept their keys kept them under every index named in `names`.
    pub(super) fn kept_all_of<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        self.kept_under
            .as_ref()
            .is_some_and(|under| names.all(|n| under.iter().any(|u| u == n)))
    }

    /// Adds a change, after every change before it (`same_keys`: its transaction says it
    /// kept its row's unique-index keys). `rows`: how many rows the table had (changes up to
    /// that many are kept before a cut, as they may all be of different keys).
    pub(super) fn push(&mut self, key: Bytes, row: Option<Row>, same_keys: bool, rows: usize) {
        let same_keys = self.keeps(same_keys);
        let limit = self.left_by_cut.saturating_mul(2).max(CUT_MIN).max(rows);
        if self.changes.len() == self.changes.capacity() && self.changes.len() >= RESERVE_FROM {
            // Many already: room up to the next cut at once (at most `RESERVE_MAX` more), so
            // that a long tail's changes are not copied each time they double (room never
            // written is never touched).
            let more = limit
                .saturating_sub(self.changes.len())
                .clamp(1, RESERVE_MAX);
            self.changes.reserve_exact(more);
            self.same_keys.reserve_exact(more);
        }
        self.changes.push((key, row));
        self.same_keys.push(same_keys);
        if self.changes.len() >= limit {
            self.cut();
        }
    }

    /// The positions of the last change of each key, in key order, each with whether every
    /// change of its key kept its unique-index keys.
    pub(super) fn last_per_key(&self) -> Vec<(usize, bool)> {
        // Positions sorted by what orders the keys without reading them again: the key's
        // first 8 bytes (zero-padded), then, for a key of 8 bytes or fewer, its length (the
        // two name it: of two such keys with one prefix, the shorter is a prefix of the
        // other), then the position. Only keys longer than 8 bytes that share a prefix are
        // read again (each read is a cache miss: the changes are in the order they came).
        let mut order: Vec<(u64, u64)> = self
            .changes
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (prefix_of(k), short_len(k.len()) << POSITION_BITS | i as u64))
            .collect();
        order.sort_unstable();
        let position = |o: &(u64, u64)| (o.1 & POSITION_MASK) as usize;
        let long = |o: &(u64, u64)| o.1 >> POSITION_BITS == LONG;
        let key = |o: &(u64, u64)| self.changes.get(position(o)).map(|(k, _)| k);
        let by_key = |a: &(u64, u64), b: &(u64, u64)| key(a).cmp(&key(b)).then(a.1.cmp(&b.1));
        for run in order.chunk_by_mut(|a, b| a.0 == b.0 && long(a) && long(b)) {
            if run.len() > 1 {
                run.sort_unstable_by(by_key);
            }
        }
        // Each run of one key's changes (in order): its last, and whether all kept.
        let same_keys = |o: &(u64, u64)| self.same_keys.get(position(o)).copied().unwrap_or(false);
        let same_key = |a: &(u64, u64), b: &(u64, u64)| {
            a.0 == b.0
                && a.1 >> POSITION_BITS == b.1 >> POSITION_BITS
                && (!long(a) || key(a) == key(b))
        };
        let mut last: Vec<(usize, bool)> = Vec::with_capacity(order.len());
        for run in order.chunk_by(same_key) {
            if let Some(end) = run.last() {
                last.push((position(end), run.iter().all(same_keys)));
            }
        }
        last
    }

    /// Takes the last change of each key out, in key order, each with whether every change
    /// of its key kept its unique-index keys; the changes left are the replaced ones.
    /// Moved out in one pass, so that a merge then reads them in order (read through the
    /// positions instead, every change cost a cache miss in the merge's loop).
    pub(super) fn take_last(&mut self) -> (Vec<(Bytes, Option<Row>)>, Vec<bool>) {
        let order = self.last_per_key();
        let empty = || (Bytes::new(&[]), None);
        let mut last = Vec::with_capacity(order.len());
        last.extend(order.iter().filter_map(|&(i, _)| {
            self.changes
                .get_mut(i)
                .map(|c| std::mem::replace(c, empty()))
        }));
        (last, order.into_iter().map(|(_, same)| same).collect())
    }

    /// Keeps only the last change of each key, in key order.
    fn cut(&mut self) {
        let (last, same_keys) = self.take_last();
        // The replaced changes (a value each) are freed here: a cut is the replay's work.
        self.changes = last;
        self.same_keys = same_keys;
        self.left_by_cut = self.changes.len();
    }
}
