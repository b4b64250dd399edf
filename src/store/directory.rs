//! A hash directory over a sorted base: exact-key lookups in one probe (usually) instead of
//! a binary search, which on a large base costs a cache miss per step. The base keeps its
//! sorted slots for ranges; the directory maps a key's hash to a slot index.

/// Open addressing with linear probing, at most half full. Each entry holds a slot index + 1
/// (0: empty) in its low bits and, in the bits the index does not need, a tag of the key's
/// hash, so a probe seldom reads a slot of another key.
#[derive(Debug)]
pub struct Directory {
    entries: Box<[u32]>,
    /// Bits of an entry that hold the slot index + 1.
    index_bits: u32,
    /// log2 of the number of entries.
    table_bits: u32,
}

/// Bases smaller than this are searched without a directory (the search stays in cache).
const MIN_ROWS: usize = 64;

/// Largest base given a directory: indexes + 1 must fit in 31 bits, leaving a tag bit.
const MAX_ROWS: usize = (1 << 31) - 1;

impl Directory {
    /// A directory of `rows` slots, where `hash(i)` is slot `i`'s key hash; `None` for a base
    /// too small to need one or too large to index in 31 bits.
    pub fn build(rows: usize, hash: impl Fn(usize) -> u64) -> Option<Directory> {
        if !(MIN_ROWS..=MAX_ROWS).contains(&rows) {
            return None;
        }
        let table_bits = (rows * 2).next_power_of_two().trailing_zeros();
        let index_bits = usize::BITS - rows.leading_zeros();
        let mut d = Directory {
            entries: vec![0u32; 1 << table_bits].into_boxed_slice(),
            index_bits,
            table_bits,
        };
        let mask = d.entries.len() - 1;
        for i in 0..rows {
            let h = hash(i);
            let mut pos = d.position(h);
            // At most half full: an empty entry is always found.
            while d.entries.get(pos).is_some_and(|e| *e != 0) {
                pos = (pos + 1) & mask;
            }
            let entry = d.tag(h) | (i as u32 + 1);
            if let Some(e) = d.entries.get_mut(pos) {
                *e = entry;
            }
        }
        Some(d)
    }

    fn position(&self, h: u64) -> usize {
        (h >> (64 - self.table_bits)) as usize
    }

    fn tag(&self, h: u64) -> u32 {
        let tag_bits = 32 - self.index_bits;
        ((h as u32) & ((1u32 << tag_bits) - 1)) << self.index_bits
    }

    /// The slot whose key hashes to `h` and for which `is_key(slot)` holds, if any.
    pub fn find(&self, h: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        let mask = self.entries.len().checked_sub(1)?;
        let index_mask = (1u32 << self.index_bits) - 1;
        let tag = self.tag(h);
        let mut pos = self.position(h);
        for _ in 0..self.entries.len() {
            let e = *self.entries.get(pos)?;
            if e == 0 {
                return None;
            }
            if e & !index_mask == tag {
                let slot = (e & index_mask) as usize - 1;
                if is_key(slot) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & mask;
        }
        None
    }
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
        let d = Directory::build(hashes.len(), |i| hashes[i]).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(d.find(*h, |s| s == i), Some(i));
        }
        assert_eq!(d.find(hashes[7], |_| false), None);
        assert_eq!(d.find(12345, |s| hashes[s] == 12345), None);
    }

    #[test]
    fn small_bases_have_none() {
        assert!(Directory::build(MIN_ROWS - 1, |i| i as u64).is_none());
        assert!(Directory::build(MIN_ROWS, |i| i as u64).is_some());
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
