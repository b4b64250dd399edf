//! A transaction's puts and deletes read in place from its encoding (FORMAT.md §12): the
//! keys' and values' ranges of its bytes, so that a restore's replay copies each once and
//! decodes no ops first.

use std::ops::Range;

use super::codec::{
    DECODE_LIMIT, STORE_FORMAT, TX_HINTED, bytes_at, check_declared, kept_positions, varint_at,
};
#[cfg(doc)]
use super::codec::{Op, decode_tx_hinted};
use crate::store::rows::read_varint;

/// A put or a delete read in place from an encoded transaction (see [`parse_rows`]): the
/// table, the key's and the value's ranges of its bytes (`None`: deleted), the version, and
/// whether the transaction's hints say the put kept its row's unique-index keys.
pub(crate) type RowOp = (u32, Range<usize>, Option<Range<usize>>, u64, bool);

/// Variant numbers of [`Op::Put`] and [`Op::Delete`] in the encoding (declaration order).
const PUT: u32 = 2;
const DELETE: u32 = 3;

/// A table's declared unique-index names (see [`TxHints`](super::codec::TxHints)).
pub(crate) type Declared = Vec<(u32, Vec<String>)>;

/// The ops of encoded transaction `tx` (the format byte, then the ops as bincode's standard
/// configuration writes them, FORMAT.md §12; in format 2 then its hints) read in place into
/// `out` (the hints' declarations into `declared`) when they are all puts and deletes;
/// `None` (`out` then holds no meaning) for any other transaction, which
/// [`decode_tx_hinted`] decodes or refuses. What it reads, `decode_tx_hinted` decodes to
/// the same ops and hints: the same integers (bincode reads the same variable-length forms;
/// a 32-bit field in 8 bytes is left to it), lengths within the bytes, no byte left over.
pub(crate) fn parse_rows(tx: &[u8], out: &mut Vec<RowOp>, declared: &mut Declared) -> Option<()> {
    out.clear();
    declared.clear();
    let hinted = match tx.first() {
        Some(&STORE_FORMAT) => false,
        Some(&TX_HINTED) => true,
        _ => return None,
    };
    if tx.len() > DECODE_LIMIT {
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
                out.push((table, key, Some(value), version, false));
            }
            DELETE => out.push((table, key, None, 0, false)),
            _ => return None,
        }
    }
    if hinted {
        // The declarations, then the kept bitmap.
        for _ in 0..varint_at(tx, &mut at)? {
            let table = u32_at(tx, &mut at)?;
            let mut names = Vec::new();
            for _ in 0..varint_at(tx, &mut at)? {
                let name = std::str::from_utf8(tx.get(bytes_at(tx, &mut at)?)?).ok()?;
                names.push(name.to_string());
            }
            declared.push((table, names));
        }
        let bitmap = tx.get(bytes_at(tx, &mut at)?)?;
        let puts = |i: usize| out.get(i).filter(|op| op.2.is_some()).map(|op| op.0);
        for i in kept_positions(bitmap, out.len(), puts).ok()? {
            if let Some(op) = out.get_mut(i) {
                op.4 = true;
            }
        }
        let has_kept = |t: u32| out.iter().any(|op| op.4 && op.0 == t);
        check_declared(declared, has_kept).ok()?;
    }
    (at == tx.len()).then_some(())
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
