//! Merging sorted streams of rows by key: the iterator over a table's rows (its laid-out
//! parts, base, chunks, recent and pending rows, under its delta), and changes merged into
//! rows.

use std::cmp::Ordering;

use super::base::Base;
use super::bytes::Bytes;
use super::row::{Change, Row, RowRef};

/// Which of two sorted streams goes next in a merge by key, given their next keys: `Less`
/// the first, `Greater` the second, `Equal` both (the same key); `None` when both are done.
pub(super) fn merge_order(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Ordering> {
    match (a, b) {
        (None, None) => None,
        (Some(_), None) => Some(Ordering::Less),
        (None, Some(_)) => Some(Ordering::Greater),
        (Some(a), Some(b)) => Some(a.cmp(b)),
    }
}

/// `rows` (in key order) with `changes` (strictly increasing keys; `None`: removed) merged in;
/// `seen` is told each change as it is merged, with the row of `rows` it replaces or removes.
pub(super) fn merge_changes<'a>(
    rows: impl Iterator<Item = RowRef<'a>>,
    changes: impl Iterator<Item = &'a (Bytes, Option<Row>)>,
    mut seen: impl FnMut(Change<'a>),
) -> impl Iterator<Item = RowRef<'a>> {
    let mut rows = rows.peekable();
    let mut changes = changes.peekable();
    std::iter::from_fn(move || {
        loop {
            let order = merge_order(
                rows.peek().map(|r| r.key),
                changes.peek().map(|(k, _)| k.as_slice()),
            )?;
            if order == Ordering::Less {
                return rows.next();
            }
            // Replaced or removed by the change.
            let before = if order == Ordering::Equal {
                rows.next()
            } else {
                None
            };
            let (key, now) = changes.next()?;
            let now = now.as_ref().map(|r| RowRef {
                key,
                value: &r.value,
                version: r.version,
            });
            seen(Change { key, before, now });
            if now.is_some() {
                return now;
            }
        }
    })
}

pub(super) type DeltaIter<'a> = Box<dyn Iterator<Item = (&'a Bytes, &'a Option<Row>)> + 'a>;

/// Rows of sorted parts (the base's, then the tail's chunks'), then of the recent rows, then
/// of a sorted slice (the pending rows), each part's keys above the part before's.
#[derive(Default)]
pub(super) struct Sorted<'a> {
    pub(super) parts: Vec<(&'a Base, usize, usize)>,
    pub(super) at: usize,
    pub(super) recent: std::slice::Iter<'a, std::sync::OnceLock<(Bytes, Row)>>,
    pub(super) pending: std::slice::Iter<'a, (Bytes, Row)>,
}

impl<'a> Iterator for Sorted<'a> {
    type Item = RowRef<'a>;

    fn next(&mut self) -> Option<RowRef<'a>> {
        while let Some((base, next, end)) = self.parts.get_mut(self.at) {
            if *next < *end {
                let row = base.row(*next);
                *next += 1;
                return row;
            }
            self.at += 1;
        }
        for slot in self.recent.by_ref() {
            if let Some((k, r)) = slot.get() {
                return Some(RowRef {
                    key: k,
                    value: &r.value,
                    version: r.version,
                });
            }
        }
        self.pending.next().map(|(k, r)| RowRef {
            key: k,
            value: &r.value,
            version: r.version,
        })
    }
}

/// Rows laid out (base, tail, pending) and the delta merged in key order (the delta wins on
/// equal keys).
pub struct Merge<'a> {
    pub(super) sorted: std::iter::Peekable<Sorted<'a>>,
    pub(super) delta: std::iter::Peekable<DeltaIter<'a>>,
}

impl<'a> Iterator for Merge<'a> {
    type Item = RowRef<'a>;

    fn next(&mut self) -> Option<RowRef<'a>> {
        loop {
            let order = merge_order(
                self.sorted.peek().map(|r| r.key),
                self.delta.peek().map(|(k, _)| k.as_slice()),
            )?;
            if order == Ordering::Less {
                return self.sorted.next();
            }
            if order == Ordering::Equal {
                self.sorted.next(); // replaced or deleted by the delta
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
