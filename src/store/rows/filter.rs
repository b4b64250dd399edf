//! The key filter of a table's delta: which keys the delta may hold, so that a get on a key it
//! does not hold goes straight to the base.

use std::sync::atomic::{AtomicU64, Ordering as MemoryOrder};

use super::delta::{Delta, hash, probe};

/// Keys a delta's filter is sized for, over a base of `base_len` rows: half the base, and
/// 4,096 more. A delta is folded into a new base at the next compaction; under the default
/// compaction policy (a snapshot once the updates outweigh the last one) an epoch's updates
/// rarely change more keys than that (a delta that does gets a larger filter).
fn filter_keys(base_len: usize) -> usize {
    base_len / 2 + 4096
}

/// Filter bits per key at the filter's capacity. Each key sets three bits of one 64-bit word
/// (one cache line read per get): at that many keys a get on a key outside the delta looks in
/// the delta for nothing about once in 70 (a single bit per key: once in 16); fewer keys,
/// less often.
const FILTER_BITS_PER_KEY: usize = 16;

/// The key filter of a delta: never a false negative. Bits are only ever set, never cleared,
/// so every state built on one base shares one filter: a state sees at most bits of keys
/// that later (or abandoned) transactions added, which only cost a look in the tree. The
/// writer sets a key's bit before the state holding the key is published, and publication
/// orders the two for readers.
///
/// A delta that outgrows the keys its filter was sized for gets a filter twice its size, of
/// its own keys (states built on it before keep theirs).
#[derive(Debug)]
pub(super) struct DeltaKeys {
    bits: Box<[AtomicU64]>,
    /// Keys it is sized for.
    pub(super) keys: usize,
}

impl Default for DeltaKeys {
    fn default() -> Self {
        DeltaKeys::for_base(0)
    }
}

impl DeltaKeys {
    /// A filter for the delta over a base of `base_len` rows.
    pub(super) fn for_base(base_len: usize) -> DeltaKeys {
        DeltaKeys::for_keys(filter_keys(base_len))
    }

    /// A filter sized for `keys` keys.
    pub(super) fn for_keys(keys: usize) -> DeltaKeys {
        let words = keys.saturating_mul(FILTER_BITS_PER_KEY) / 64;
        DeltaKeys {
            bits: (0..words.max(1)).map(|_| AtomicU64::new(0)).collect(),
            keys,
        }
    }

    /// A filter that may hold every key (and never grows): for a delta whose runs answer
    /// as fast themselves (one large run with its own filter and directory, see
    /// `Rows::put_changes`), where building this one would only cost the restore its time.
    pub(super) fn every_key() -> DeltaKeys {
        DeltaKeys {
            bits: Box::new([AtomicU64::new(u64::MAX)]),
            keys: usize::MAX,
        }
    }

    /// A filter of `delta`'s keys, sized for twice as many.
    pub(super) fn of_delta(delta: &Delta) -> DeltaKeys {
        let keys = DeltaKeys::for_keys(delta.len().saturating_mul(2));
        for k in delta.keys() {
            keys.add(k);
        }
        keys
    }

    /// The word and bits of `key`: the key's hash (as the run filters take it), mixed once
    /// more so that these bits do not repeat a run filter's, probed as a run filter is.
    fn bit(&self, key: &[u8]) -> (usize, u64) {
        let mut h = hash(key);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        probe(h, self.bits.len())
    }

    /// The bytes its bits take.
    pub(super) fn heap_bytes(&self) -> usize {
        self.bits.len() * 8
    }

    pub(super) fn may_hold(&self, key: &[u8]) -> bool {
        let (w, m) = self.bit(key);
        self.bits
            .get(w)
            .is_some_and(|x| x.load(MemoryOrder::Relaxed) & m == m)
    }

    pub(super) fn add(&self, key: &[u8]) {
        let (w, m) = self.bit(key);
        if let Some(x) = self.bits.get(w)
            && x.load(MemoryOrder::Relaxed) & m != m
        {
            x.fetch_or(m, MemoryOrder::Relaxed);
        }
    }
}
