//! A range of a table's rows read from both ends: forward by the merge of its parts, backward
//! by seeking the greatest row below the last one returned (a search of each part, not a walk).

use std::ops::Bound;

use super::bytes::{Bytes, as_slice};
use super::merge::Merge;
use super::row::RowRef;
use super::set::Rows;

/// The rows with keys in a range, in key order from the front and in reverse from the back
/// (the two ends meet without overlap).
pub struct Range<'a> {
    rows: &'a Rows,
    lo: Bound<Bytes>,
    hi: Bound<Bytes>,
    /// The forward merge, made on the first call from the front.
    front: Option<Merge<'a>>,
    /// The key last returned from the front.
    front_at: Option<&'a [u8]>,
    /// The key last returned from the back.
    back_at: Option<&'a [u8]>,
    done: bool,
}

impl Rows {
    /// The rows with keys in `bounds`, in key order, from either end.
    pub fn range(&self, bounds: (Bound<Bytes>, Bound<Bytes>)) -> Range<'_> {
        Range::new(self, bounds)
    }
}

impl<'a> Range<'a> {
    pub(super) fn new(rows: &'a Rows, bounds: (Bound<Bytes>, Bound<Bytes>)) -> Self {
        Range {
            rows,
            lo: bounds.0,
            hi: bounds.1,
            front: None,
            front_at: None,
            back_at: None,
            done: false,
        }
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = RowRef<'a>;

    fn next(&mut self) -> Option<RowRef<'a>> {
        if self.done {
            return None;
        }
        let (rows, lo, hi) = (self.rows, &self.lo, &self.hi);
        let front = self
            .front
            .get_or_insert_with(|| rows.merge_range((lo.clone(), hi.clone())));
        let row = front.next();
        match row {
            Some(r) if self.back_at.is_none_or(|b| r.key < b) => {
                self.front_at = Some(r.key);
                Some(r)
            }
            _ => {
                self.done = true;
                None
            }
        }
    }
}

impl<'a> DoubleEndedIterator for Range<'a> {
    fn next_back(&mut self) -> Option<RowRef<'a>> {
        if self.done {
            return None;
        }
        let lo = self.front_at.map_or(as_slice(&self.lo), Bound::Excluded);
        let hi = self.back_at.map_or(as_slice(&self.hi), Bound::Excluded);
        match self.rows.last_in(lo, hi) {
            Some(r) => {
                self.back_at = Some(r.key);
                Some(r)
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}
