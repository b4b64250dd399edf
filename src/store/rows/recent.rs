//! The rows appended by small commits (a single-row insert of a new highest key, the common
//! case of counters and timestamps), kept in one block of write-once slots shared by every
//! state that holds them. A state sees the first `len` slots; the next commit fills slot
//! `len` in the same block, which older states never read, so appending copies nothing (a
//! persistent map would copy a path of nodes per row, and free the old path when the older
//! state goes). A full block becomes a chunk of the tail.

use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use super::bytes::Bytes;
use super::row::Row;

/// Slots in a block: the rows a block holds before it is made a chunk.
pub const CAPACITY: usize = if cfg!(test) { 8 } else { 256 };

type Slot = OnceLock<(Bytes, Row)>;

/// Rows appended in increasing key order, each greater than every key before it.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    block: Option<Arc<[Slot]>>,
    len: usize,
}

impl Recent {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slots of the rows held, in key order (each one set).
    pub fn slots(&self) -> &[Slot] {
        self.block
            .as_deref()
            .and_then(|b| b.get(..self.len))
            .unwrap_or_default()
    }

    /// The greatest key held.
    pub fn last_key(&self) -> Option<&[u8]> {
        let (k, _) = self.slots().last()?.get()?;
        Some(k.as_slice())
    }

    /// The row under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&(Bytes, Row)> {
        let slots = self.slots();
        let i = slots.partition_point(|s| s.get().is_some_and(|(k, _)| k.as_slice() < key));
        slots
            .get(i)
            .and_then(OnceLock::get)
            .filter(|(k, _)| k.as_slice() == key)
    }

    /// The slots of the rows with keys in `lo`..`hi`.
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> &[Slot] {
        let slots = self.slots();
        let below = |s: &Slot, k: &[u8], inclusive: bool| {
            s.get()
                .is_some_and(|(p, _)| p.as_slice() < k || (inclusive && p.as_slice() == k))
        };
        let first = match lo {
            Bound::Included(k) => slots.partition_point(|s| below(s, k, false)),
            Bound::Excluded(k) => slots.partition_point(|s| below(s, k, true)),
            Bound::Unbounded => 0,
        };
        let past = match hi {
            Bound::Included(k) => slots.partition_point(|s| below(s, k, true)),
            Bound::Excluded(k) => slots.partition_point(|s| below(s, k, false)),
            Bound::Unbounded => slots.len(),
        };
        slots.get(first..past.max(first)).unwrap_or_default()
    }

    /// The rows held, in key order.
    pub fn rows(&self) -> impl Iterator<Item = &(Bytes, Row)> + Clone {
        self.slots().iter().filter_map(OnceLock::get)
    }

    /// Appends `rows`, each with a key greater than every key held, if they fit in the
    /// block; gives them back if not. A slot already filled (by a state that branched from
    /// this one and appended first: an abandoned one) makes this state copy its rows into a
    /// block of its own.
    pub fn try_extend(&mut self, rows: Vec<(Bytes, Row)>) -> Result<(), Vec<(Bytes, Row)>> {
        if rows.len() > CAPACITY - self.len {
            return Err(rows);
        }
        for row in rows {
            let block = self.block.get_or_insert_with(|| empty_block(&[]));
            let taken = match block.get(self.len) {
                Some(slot) => slot.set(row).err(),
                None => Some(row), // not reached: the room was checked
            };
            if let Some(row) = taken {
                let own = empty_block(self.slots());
                if let Some(slot) = own.get(self.len) {
                    let _ = slot.set(row);
                }
                self.block = Some(own);
            }
            self.len += 1;
        }
        Ok(())
    }

    /// Empties it (the block stays with the states that still hold rows in it).
    pub fn clear(&mut self) {
        *self = Recent::default();
    }
}

/// A new block holding copies of the rows in `first` (the rest of its slots empty).
fn empty_block(first: &[Slot]) -> Arc<[Slot]> {
    (0..CAPACITY)
        .map(|i| match first.get(i).and_then(OnceLock::get) {
            Some(r) => OnceLock::from(r.clone()),
            None => OnceLock::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u8) -> (Bytes, Row) {
        (
            Bytes::new(&[i]),
            Row {
                value: Bytes::new(&[i, i]),
                version: 1,
            },
        )
    }

    #[test]
    fn states_that_share_a_block_see_their_own_rows() {
        let mut a = Recent::default();
        a.try_extend(vec![row(1), row(2)]).unwrap();
        let mut b = a.clone();
        b.try_extend(vec![row(3)]).unwrap();
        // `c` branched from `a` before `b` appended: its append finds slot 2 taken and copies.
        let mut c = a.clone();
        c.try_extend(vec![row(4)]).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.get(&[3]).is_none());
        assert_eq!(b.get(&[3]).map(|r| r.1.version), Some(1));
        assert!(b.get(&[4]).is_none());
        assert!(c.get(&[3]).is_none());
        assert_eq!(c.get(&[4]).map(|r| r.0.as_slice()), Some(&[4u8][..]));
        assert_eq!(c.last_key(), Some(&[4u8][..]));
        let keys = |r: &Recent| -> Vec<u8> { r.rows().map(|(k, _)| k.as_slice()[0]).collect() };
        assert_eq!(keys(&b), [1, 2, 3]);
        assert_eq!(keys(&c), [1, 2, 4]);
        assert!(!Arc::ptr_eq(
            b.block.as_ref().unwrap(),
            c.block.as_ref().unwrap()
        ));
    }

    #[test]
    fn ranges_and_lookups_follow_the_keys() {
        let mut r = Recent::default();
        r.try_extend((1..=4).map(|i| row(i * 2)).collect()).unwrap();
        let keys = |s: &[Slot]| -> Vec<u8> {
            s.iter()
                .filter_map(OnceLock::get)
                .map(|(k, _)| k.as_slice()[0])
                .collect()
        };
        use Bound::{Excluded, Included, Unbounded};
        assert_eq!(keys(r.range(Unbounded, Unbounded)), [2, 4, 6, 8]);
        assert_eq!(keys(r.range(Included(&[4]), Excluded(&[8]))), [4, 6]);
        assert_eq!(keys(r.range(Excluded(&[4]), Included(&[8]))), [6, 8]);
        assert_eq!(keys(r.range(Included(&[5]), Included(&[5]))), [0u8; 0]);
        assert_eq!(keys(r.range(Included(&[9]), Unbounded)), [0u8; 0]);
        assert!(r.get(&[5]).is_none());
        assert!(r.get(&[8]).is_some());
        // Rows past the block's room are given back, and none is taken.
        let more: Vec<_> = (10..10 + CAPACITY as u8 - 3).map(row).collect();
        assert_eq!(r.try_extend(more).map_err(|m| m.len()), Err(CAPACITY - 3));
        assert_eq!(r.len(), 4);
        r.try_extend((10..10 + CAPACITY as u8 - 4).map(row).collect())
            .unwrap();
        assert_eq!(r.len(), CAPACITY);
        r.clear();
        assert!(r.is_empty() && r.get(&[2]).is_none());
    }
}
