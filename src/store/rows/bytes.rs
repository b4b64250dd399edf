//! The raw material of rows: shared immutable byte strings (keys and values), and the
//! variable-length integers that lay out their lengths and versions as bincode writes them
//! (FORMAT.md §12).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Longest byte string kept inline (no allocation, compared without following a pointer).
const INLINE: usize = 22;

/// Shared immutable bytes (keys and values). Up to 22 bytes are stored inline, so short keys
/// (integers, short names) compare inside the tree node that holds them; longer ones are
/// shared, and cloning them is a reference count.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl Bytes {
    /// Bytes from a slice.
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Bytes(Repr::Inline {
                len: b.len() as u8,
                data,
            })
        } else {
            Bytes(Repr::Shared(Arc::from(b)))
        }
    }

    /// How many hold these bytes (1 for inline ones).
    #[cfg(test)]
    pub(super) fn holders(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 1,
            Repr::Shared(b) => Arc::strong_count(b),
        }
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len).min(INLINE)],
            Repr::Shared(b) => b,
        }
    }
}

/// The positions `from..to` of the entries of `sorted` (sorted by key, the key first in each)
/// whose keys lie within `lo`..`hi`; `to` may be below `from` for an empty range.
pub(super) fn positions_within<T>(
    sorted: &[(Bytes, T)],
    lo: std::ops::Bound<&[u8]>,
    hi: std::ops::Bound<&[u8]>,
) -> (usize, usize) {
    use std::ops::Bound;
    let from = match lo {
        Bound::Included(k) => sorted.partition_point(|(p, _)| p.as_slice() < k),
        Bound::Excluded(k) => sorted.partition_point(|(p, _)| p.as_slice() <= k),
        Bound::Unbounded => 0,
    };
    let to = match hi {
        Bound::Included(k) => sorted.partition_point(|(p, _)| p.as_slice() <= k),
        Bound::Excluded(k) => sorted.partition_point(|(p, _)| p.as_slice() < k),
        Bound::Unbounded => sorted.len(),
    };
    (from, to)
}

/// A bound over bytes as a bound over their slice.
pub(super) fn as_slice(b: &std::ops::Bound<Bytes>) -> std::ops::Bound<&[u8]> {
    use std::ops::Bound;
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            Bytes::new(&v)
        } else {
            Bytes(Repr::Shared(Arc::from(v)))
        }
    }
}

impl PartialEq for Bytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            // Zero-padded arrays compared as big-endian integers, then by length, order
            // exactly as the slices do (a shorter prefix sorts first).
            (Repr::Inline { len: a, data: x }, Repr::Inline { len: b, data: y }) => {
                inline_words(x).cmp(&inline_words(y)).then(a.cmp(b))
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// An inline array as two big-endian integers, for comparison (in memory only; big-endian
/// because its integer order is the byte order).
#[inline]
#[allow(clippy::big_endian_bytes)]
fn inline_words(d: &[u8; INLINE]) -> (u128, u64) {
    let mut hi = [0u8; 16];
    hi.copy_from_slice(&d[..16]);
    let mut lo = [0u8; 8];
    lo[..INLINE - 16].copy_from_slice(&d[16..]);
    (u128::from_be_bytes(hi), u64::from_be_bytes(lo))
}

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::borrow::Borrow<[u8]> for Bytes {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes::new(v))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes::from(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A variable-length integer as bincode's standard configuration writes it (and snapshots
/// hold lengths and versions): one byte up to 250, else a marker (251, 252, 253) and 2, 4 or
/// 8 bytes little-endian. Returns the bytes and how many of them are used.
pub fn varint_bytes(n: u64) -> ([u8; 9], usize) {
    let mut b = [0u8; 9];
    let (marker, width) = match n {
        0..=250 => {
            b[0] = n as u8;
            return (b, 1);
        }
        251..=0xffff => (251, 2),
        0x1_0000..=0xffff_ffff => (252, 4),
        _ => (253, 8),
    };
    b[0] = marker;
    if let Some(dst) = b.get_mut(1..1 + width) {
        dst.copy_from_slice(n.to_le_bytes().get(..width).unwrap_or_default());
    }
    (b, 1 + width)
}

/// Appends `n` to `out` as [`varint_bytes`] writes it.
pub fn put_varint(out: &mut Vec<u8>, n: u64) {
    if n <= 250 {
        out.push(n as u8);
    } else {
        let (b, len) = varint_bytes(n);
        out.extend_from_slice(b.get(..len).unwrap_or_default());
    }
}

/// Reads a [`varint_bytes`] integer at the start of `b`: the value and its length, or `None`
/// if `b` ends early or starts with an unknown marker.
pub fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let width = match first {
        0..=250 => return Some((u64::from(first), 1)),
        251 => 2,
        252 => 4,
        253 => 8,
        _ => return None,
    };
    let mut w = [0u8; 8];
    w.get_mut(..width)?.copy_from_slice(b.get(1..1 + width)?);
    Some((u64::from_le_bytes(w), 1 + width))
}

#[cfg(test)]
mod tests {
    use super::Bytes;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Short strings over a small alphabet with zeros, so prefixes, padding-like zeros and
        // both representations (inline up to 22 bytes, shared beyond) meet often.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
            0..30,
        )
    }

    proptest! {
        /// Order, equality and hashing of `Bytes` are those of the byte strings, whichever
        /// representation each side has.
        #[test]
        fn bytes_order_is_the_slice_order(a in bytes(), b in bytes()) {
            let (x, y) = (Bytes::from(a.clone()), Bytes::new(&b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(&*x, a.as_slice());
            let hash = |v: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                use std::hash::Hasher;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v(&mut h);
                h.finish()
            };
            use std::hash::Hash;
            prop_assert_eq!(hash(&|h| x.hash(h)), hash(&|h| a.as_slice().hash(h)));
        }
    }
}
