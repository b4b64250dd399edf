//! A hash directory over a sorted base: exact-key lookups in one probe (usually) instead of
//! a binary search, which on a large base costs a cache miss per step. The base keeps its
//! sorted slots for ranges; the directory maps a key's hash to a target the base chooses:
//! where the row's record starts in the base's bytes (a lookup then reads the row straight
//! from there), or, for bases whose bytes are not laid out as records, a slot index.

/// Open addressing with linear probing, at most half full. Each entry holds a target + 1
/// (0: empty) in its low [`TARGET_BITS`] bits and a tag of the key's hash in the others, so
/// a probe seldom reads the row of another key.
#[derive(Debug)]
pub struct Directory {
    entries: Box<[u64]>,
    /// log2 of the number of entries.
    table_bits: u32,
}

/// Bits of an entry that hold the target + 1.
const TARGET_BITS: u32 = 40;

/// Largest target an entry holds.
pub const MAX_TARGET: u64 = (1 << TARGET_BITS) - 2;

/// Rows whose homes a directory's build sorts at once, about (see [`Directory::build`]).
const SORT_ROWS: usize = if cfg!(test) { 1000 } else { 1 << 18 };

/// Most shares a directory's build sorts its rows' homes in: each share reads every row's
/// hash again, so their number is bounded (a larger base sorts more rows at once).
const MAX_SHARES: usize = 8;

/// Bases smaller than this are searched without a directory (the search stays in cache).
const MIN_ROWS: usize = 64;

impl Directory {
    /// A directory of `rows` rows, where `hash(i)` is row `i`'s key hash and `target(i)` what
    /// its entry leads to; `None` for a base too small to need one, or if a target exceeds
    /// [`MAX_TARGET`].
    pub fn build(
        rows: usize,
        hash: impl Fn(usize) -> u64,
        target: impl Fn(usize) -> u64,
    ) -> Option<Directory> {
        if rows < MIN_ROWS || rows as u64 > MAX_TARGET {
            return None;
        }
        let table_bits = (rows * 2).next_power_of_two().trailing_zeros();
        // The rows go in in the order of their home positions (a hash's top bits), so that
        // the entries are written in one sweep from the first to the last: a row goes to its
        // home or, if taken, to the first free entry after the rows before it, as inserting
        // it with linear probing would (every entry between its home and it is taken).
        // Writing at random positions instead cost a cache and TLB miss per row (56-312 ms
        // for 1,000,000 rows, against 35-100 ms). The homes are sorted a share of the
        // positions at a time, so that the sort's buffer stays near `SORT_ROWS` rows (or an
        // eighth of the rows, for the largest bases).
        let mut d = Directory {
            entries: vec![0u64; 1 << table_bits].into_boxed_slice(),
            table_bits,
        };
        let len = d.entries.len();
        let shares = rows.div_ceil(SORT_ROWS).min(MAX_SHARES);
        let share_len = len.div_ceil(shares);
        let mut homes: Vec<(u64, u64)> = Vec::new();
        // The first entry the sweep has not taken.
        let mut next = 0;
        // Rows that run past the last entry wrap around to the first free ones (the entries
        // from the first up to them are taken, as a probe that wraps finds them).
        let mut wrapped = 0;
        for share in 0..shares {
            let from = share * share_len;
            let to = from + share_len;
            homes.clear();
            for i in 0..rows {
                let h = hash(i);
                if (from..to).contains(&d.position(h)) {
                    let t = target(i);
                    if t > MAX_TARGET {
                        return None;
                    }
                    homes.push((h, t));
                }
            }
            homes.sort_unstable_by_key(|&(h, _)| h);
            for &(h, t) in &homes {
                let mut at = d.position(h).max(next);
                if at >= len {
                    while d.entries.get(wrapped).is_some_and(|e| *e != 0) {
                        wrapped += 1;
                    }
                    at = wrapped;
                } else {
                    next = at + 1;
                }
                if let Some(e) = d.entries.get_mut(at) {
                    *e = tag(h) | (t + 1);
                }
            }
        }
        Some(d)
    }

    fn position(&self, h: u64) -> usize {
        (h >> (64 - self.table_bits)) as usize
    }

    /// The target of the key hashing to `h` for which `is_key(target)` holds, if any.
    pub fn find(&self, h: u64, mut is_key: impl FnMut(u64) -> bool) -> Option<u64> {
        let mask = self.entries.len().checked_sub(1)?;
        let target_mask = (1u64 << TARGET_BITS) - 1;
        let tag = tag(h);
        let mut pos = self.position(h);
        for _ in 0..self.entries.len() {
            let e = *self.entries.get(pos)?;
            if e == 0 {
                return None;
            }
            if e & !target_mask == tag {
                let t = (e & target_mask) - 1;
                if is_key(t) {
                    return Some(t);
                }
            }
            pos = (pos + 1) & mask;
        }
        None
    }
}

/// The tag of hash `h`: its low bits, placed above the target's.
fn tag(h: u64) -> u64 {
    h << TARGET_BITS
}

/// The hash of a key whose first 8 bytes (big-endian, zero-padded) are `prefix`: a function of
/// the prefix and the length for keys of up to 8 bytes (no need to read the key's bytes to
/// build the directory), of every byte for longer ones.
pub fn key_hash(prefix: u64, key: &[u8]) -> u64 {
    let mut h = mix(prefix ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for chunk in key.get(8..).unwrap_or_default().chunks(8) {
        let mut w = [0u8; 8];
        if let Some(dst) = w.get_mut(..chunk.len()) {
            dst.copy_from_slice(chunk);
        }
        h = mix(h ^ u64::from_le_bytes(w));
    }
    h
}

/// A multiply-xorshift finaliser (every output bit depends on every input bit).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_slot_and_nothing_else() {
        // Hashes with many collisions in position and tag bits: the probe must still check
        // each candidate.
        let hashes: Vec<u64> = (0..5000u64).map(|i| (i % 97) << 50 | (i % 3)).collect();
        // Targets of rows 3 apart, as record offsets are.
        let d = Directory::build(hashes.len(), |i| hashes[i], |i| i as u64 * 3).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(d.find(*h, |t| t == i as u64 * 3), Some(i as u64 * 3));
        }
        assert_eq!(d.find(hashes[7], |_| false), None);
        assert_eq!(d.find(12345, |t| hashes[t as usize / 3] == 12345), None);
        // A target too large for an entry: no directory (the base searches instead).
        assert!(Directory::build(100, |i| i as u64, |i| MAX_TARGET + i as u64).is_none());
        assert!(Directory::build(100, |i| i as u64, |_| MAX_TARGET).is_some());
    }

    #[test]
    fn rows_past_the_last_entry_wrap_around() {
        // Every home in the last few entries of the table (top bits all set), and some at the
        // first: the rows that run past the end take the free entries after those at the
        // start, and each is found from its home.
        let rows = 3000usize;
        let hashes: Vec<u64> = (0..rows as u64)
            .map(|i| match i % 3 {
                0 => u64::MAX - (i % 7),
                1 => (i % 5) << 40 | i,
                _ => (u64::MAX >> 2) + (i << 20),
            })
            .collect();
        let d = Directory::build(rows, |i| hashes[i], |i| i as u64).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(d.find(*h, |t| t == i as u64), Some(i as u64), "row {i}");
        }
        assert_eq!(d.entries.iter().filter(|e| **e != 0).count(), rows);
    }

    #[test]
    fn every_row_is_found_and_absent_keys_are_not() {
        // Pseudo-random hashes, many rows (sorted in the most shares under test).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let hashes: Vec<u64> = (0..100_000)
            .map(|_| {
                x = mix(x);
                x
            })
            .collect();
        let d = Directory::build(hashes.len(), |i| hashes[i], |i| i as u64 * 2).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(d.find(*h, |t| t == i as u64 * 2), Some(i as u64 * 2));
        }
        for k in 0..1000u64 {
            let h = mix(k ^ 0xDEAD_BEEF);
            assert_eq!(d.find(h, |t| hashes[t as usize / 2] == h), None);
        }
    }

    #[test]
    fn small_bases_have_none() {
        assert!(Directory::build(MIN_ROWS - 1, |i| i as u64, |i| i as u64).is_none());
        assert!(Directory::build(MIN_ROWS, |i| i as u64, |i| i as u64).is_some());
    }

    #[test]
    fn key_hash_reads_bytes_past_the_prefix() {
        let a = b"abcdefgh-1";
        let b = b"abcdefgh-2";
        let p = u64::from_le_bytes(*b"abcdefgh");
        assert_ne!(key_hash(p, a), key_hash(p, b));
        assert_ne!(key_hash(p, b"abcdefgh"), key_hash(p, b"abcdefgh\0"));
    }
}
