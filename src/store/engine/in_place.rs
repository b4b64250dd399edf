//! A transaction's puts and deletes read in place from its encoding (FORMAT.md §12): the
//! keys' and values' ranges of its bytes, so that a restore's replay copies each once and
//! decodes no ops first.

use std::ops::Range;

use super::codec::{DECODE_LIMIT, STORE_FORMAT};
#[cfg(doc)]
use super::codec::{Op, decode_tx};
use crate::store::rows::read_varint;

/// A put or a delete read in place from an encoded transaction (see [`parse_rows`]): the
/// table, the key's and the value's ranges of its bytes (`None`: deleted) and the version.
pub(super) type RowOp = (u32, Range<usize>, Option<Range<usize>>, u64);

/// Variant numbers of [`Op::Put`] and [`Op::Delete`] in the encoding (declaration order).
const PUT: u32 = 2;
const DELETE: u32 = 3;

/// The ops of encoded transaction `tx` (the format byte, then the ops as bincode's standard
/// configuration writes them, FORMAT.md §12) read in place into `out` when they are all
/// puts and deletes; `None` (`out` then holds no meaning) for any other transaction, which
/// [`decode_tx`] decodes or refuses. What it reads, `decode_tx` decodes to the same ops: the
/// same integers (bincode reads the same variable-length forms; a 32-bit field in 8 bytes
/// is left to it), lengths within the bytes, no byte left over.
pub(super) fn parse_rows(tx: &[u8], out: &mut Vec<RowOp>) -> Option<()> {
    out.clear();
    if tx.len() > DECODE_LIMIT || tx.first() != Some(&STORE_FORMAT) {
        return None;
    }
    let mut at = 1;
    let count = varint_at(tx, &mut at)?;
    for _ in 0..count {
        // Each op takes bytes: a count past them ends early.
        let (variant, table) = (u32_at(tx, &mut at)?, u32_at(tx, &mut at)?);
        let key = bytes_at(tx, &mut at)?;
        match variant {
            PUT => {
                let value = bytes_at(tx, &mut at)?;
                let version = varint_at(tx, &mut at)?;
                out.push((table, key, Some(value), version));
            }
            DELETE => out.push((table, key, None, 0)),
            _ => return None,
        }
    }
    (at == tx.len()).then_some(())
}

/// The variable-length integer at `*at` of `b`, moving `at` past it.
fn varint_at(b: &[u8], at: &mut usize) -> Option<u64> {
    let (v, n) = read_varint(b.get(*at..)?)?;
    *at += n;
    Some(v)
}

/// [`varint_at`] for a 32-bit field: one written in 8 bytes is not read (bincode refuses it).
fn u32_at(b: &[u8], at: &mut usize) -> Option<u32> {
    let (v, n) = read_varint(b.get(*at..)?)?;
    if n > 5 {
        return None;
    }
    *at += n;
    u32::try_from(v).ok()
}

/// The range of the length-prefixed bytes at `*at` of `b`, moving `at` past them.
fn bytes_at(b: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let len = usize::try_from(varint_at(b, at)?).ok()?;
    let end = at.checked_add(len).filter(|end| *end <= b.len())?;
    let range = *at..end;
    *at = end;
    Some(range)
}
