//! Rows appended after a table's base in increasing key order (bulk loads of new keys, which
//! most often come in key order: counters, timestamps): immutable sorted chunks instead of a
//! tree insert per row. Chunks are merged eight at a time as they accumulate, so a table has a
//! few of them, each row is copied a few times (log8 of the rows over the chunk size), and a
//! compaction folds them into the base.

use std::ops::Bound;
use std::sync::Arc;

use super::base::Base;
use super::row::RowRef;

/// Chunks merged at once, when the oldest of them is at most twice the newest's size.
const MERGE_CHUNKS: usize = 8;

/// Sorted chunks, each holding keys greater than the one before.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    chunks: Arc<Vec<Arc<Base>>>,
    rows: usize,
}

impl Tail {
    /// Approximate heap bytes of the chunks.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.heap_bytes()).sum()
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The chunks, in key order.
    #[cfg(test)]
    pub fn chunks(&self) -> &[Arc<Base>] {
        &self.chunks
    }

    /// The greatest key held.
    pub fn last_key(&self) -> Option<&[u8]> {
        self.chunks.last().and_then(|c| c.last_key())
    }

    /// Appends `chunk`, whose keys the caller has checked are all greater than
    /// [`last_key`](Self::last_key); merges the newest chunks when enough of similar size
    /// have accumulated.
    pub fn push(&mut self, chunk: Base) {
        if chunk.len() == 0 {
            return;
        }
        self.rows += chunk.len();
        let chunks = Arc::make_mut(&mut self.chunks);
        chunks.push(chunk.shared_as_chunk());
        while let Some(first) = chunks.len().checked_sub(MERGE_CHUNKS) {
            let (Some(oldest), Some(newest)) = (chunks.get(first), chunks.last()) else {
                break;
            };
            if oldest.len() > newest.len().saturating_mul(2) {
                break;
            }
            let merged: Vec<Arc<Base>> = chunks.drain(first..).collect();
            chunks.push(Base::concat(&merged).shared_as_chunk());
        }
    }

    /// The row under `key`.
    pub fn get(&self, key: &[u8]) -> Option<RowRef<'_>> {
        let i = self
            .chunks
            .partition_point(|c| c.first_key().is_some_and(|f| f <= key));
        let chunk = self.chunks.get(i.checked_sub(1)?)?;
        chunk.get(key)
    }

    /// Each chunk that may hold keys within `lo`..`hi`, with the range of its rows that do.
    pub fn parts(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Vec<(&Base, usize, usize)> {
        let below = |k: &[u8]| match lo {
            Bound::Included(l) => k < l,
            Bound::Excluded(l) => k <= l,
            Bound::Unbounded => false,
        };
        let above = |k: &[u8]| match hi {
            Bound::Included(h) => k > h,
            Bound::Excluded(h) => k >= h,
            Bound::Unbounded => false,
        };
        self.chunks
            .iter()
            .filter(|c| !c.last_key().is_none_or(below) && !c.first_key().is_none_or(above))
            .map(|c| {
                let start = c.start(lo);
                (c.as_ref(), start, c.end(hi).max(start))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::big_endian_bytes, reason = "keys must sort as the numbers do")]
    fn chunk(ids: std::ops::Range<u64>) -> Base {
        let keys: Vec<[u8; 8]> = ids.map(u64::to_be_bytes).collect();
        let rows = keys.iter().map(|k| RowRef {
            key: k,
            value: &k[7..],
            version: 1,
        });
        Base::collect(rows, keys.len(), 0)
    }

    #[allow(clippy::big_endian_bytes, reason = "keys must sort as the numbers do")]
    #[test]
    fn chunks_merge_in_groups_and_keep_every_row() {
        let mut tail = Tail::default();
        let mut next = 0u64;
        for n in 0..200u64 {
            let size = 10 + n % 7;
            tail.push(chunk(next..next + size));
            next += size;
            // A base-8 counter of chunk sizes: at most 7 per size class.
            assert!(
                tail.chunks().len() <= 7 * 4,
                "{} chunks",
                tail.chunks().len()
            );
        }
        assert_eq!(tail.len(), next as usize);
        let all: Vec<u64> = tail
            .parts(Bound::Unbounded, Bound::Unbounded)
            .into_iter()
            .flat_map(|(c, s, e)| (s..e).filter_map(|i| c.row(i)))
            .map(|r| u64::from_be_bytes(r.key.try_into().unwrap()))
            .collect();
        assert_eq!(all, (0..next).collect::<Vec<_>>());
        for id in [0, 1, 9, 10, next / 2, next - 1] {
            assert_eq!(
                tail.get(&id.to_be_bytes()).map(|r| r.key),
                Some(&id.to_be_bytes()[..])
            );
        }
        assert!(tail.get(&next.to_be_bytes()).is_none());
        assert!(tail.get(&[0]).is_none());
        // A range inside one chunk skips the others.
        let (lo, hi) = (5u64.to_be_bytes(), 8u64.to_be_bytes());
        let parts: Vec<_> = tail
            .parts(Bound::Included(&lo), Bound::Excluded(&hi))
            .into_iter()
            .map(|(_, s, e)| e - s)
            .collect();
        assert_eq!(parts, vec![3]);
    }
}
