//! How the store's data is written inside epoch entries (FORMAT.md §12): rows, transactions and
//! snapshots, with bincode 2.0.1 (standard configuration) and order-preserving keys.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::rows::{Bytes, read_varint};

/// Format version of store payloads, the first byte of every transaction and snapshot: a
/// transaction of ops alone.
pub const STORE_FORMAT: u8 = 1;

/// The format byte of a transaction whose ops are followed by [`TxHints`] (FORMAT.md §12.1).
pub const TX_HINTED: u8 = 2;

/// Largest allocation a decoder may make for one payload.
pub(crate) const DECODE_LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value with bincode (standard configuration).
pub fn encode_value<V: Serialize + ?Sized>(v: &V) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, config())
        .map_err(|e| Error::InvalidArgument(format!("cannot encode value: {e}")))
}

/// Decodes a whole bincode value; trailing bytes are an error.
pub fn decode_value<V: DeserializeOwned>(b: &[u8]) -> std::result::Result<V, String> {
    let (v, n) = bincode::serde::decode_from_slice(b, config()).map_err(|e| e.to_string())?;
    if n != b.len() {
        return Err(format!("{} trailing bytes", b.len() - n));
    }
    Ok(v)
}

/// Decodes a bincode value at the start of `b`, ignoring the bytes after it.
pub fn decode_prefix<V: DeserializeOwned>(b: &[u8]) -> std::result::Result<V, String> {
    bincode::serde::decode_from_slice(b, config())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

/// Decodes a bincode value at the start of `b`; also returns the bytes it took.
pub fn decode_prefix_len<V: DeserializeOwned>(b: &[u8]) -> std::result::Result<(V, usize), String> {
    bincode::serde::decode_from_slice(b, config()).map_err(|e| e.to_string())
}

/// Encodes a key so that byte order is the key's order (memcomparable).
pub fn encode_key<K: Serialize>(k: &K) -> Result<Vec<u8>> {
    memcomparable::to_vec(k).map_err(|e| Error::InvalidArgument(format!("cannot encode key: {e}")))
}

thread_local! {
    /// A buffer the encoders below reuse, so a row costs one allocation (its shared bytes) or
    /// none (inline), not a growing `Vec` and a copy of it.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `fill` on the thread's scratch buffer, cleared (a fresh one if it is in use: a
/// `Serialize` implementation may itself encode), then `then` on what it wrote.
fn with_scratch<R>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    then: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = fill(&mut buf).map(|()| then(&buf));
            // A very large value does not keep its buffer for the rest of the thread's life.
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => {
            let mut buf = Vec::new();
            fill(&mut buf)?;
            Ok(then(&buf))
        }
    })
}

fn fill_key<K: Serialize + ?Sized>(k: &K) -> impl FnOnce(&mut Vec<u8>) -> Result<()> {
    move |buf| {
        let mut s = memcomparable::Serializer::new(buf);
        k.serialize(&mut s)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode key: {e}")))
    }
}

/// [`encode_key`] into [`Bytes`].
pub fn encode_key_bytes<K: Serialize + ?Sized>(k: &K) -> Result<Bytes> {
    with_scratch(fill_key(k), Bytes::new)
}

/// Runs `f` on the encoded key without allocating it (lookups).
pub fn with_encoded_key<K: Serialize + ?Sized, R>(k: &K, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    with_scratch(fill_key(k), f)
}

/// [`encode_value`] into [`Bytes`].
pub fn encode_value_bytes<V: Serialize + ?Sized>(v: &V) -> Result<Bytes> {
    let fill = |buf: &mut Vec<u8>| {
        bincode::serde::encode_into_std_write(v, buf, config())
            .map(|_| ())
            .map_err(|e| Error::InvalidArgument(format!("cannot encode value: {e}")))
    };
    with_scratch(fill, Bytes::new)
}

/// Decodes a key encoded by [`encode_key`].
pub fn decode_key<K: DeserializeOwned>(b: &[u8]) -> std::result::Result<K, String> {
    memcomparable::from_slice(b).map_err(|e| e.to_string())
}

/// Whether a table holds typed (serde) rows or raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    /// Keys in memcomparable form, values in bincode.
    Typed,
    /// Keys and values are the caller's bytes.
    Bytes,
}

/// What the store records about a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Table id, used by rows in the log.
    pub id: u32,
    /// Table name.
    pub name: String,
    /// Typed or bytes.
    pub kind: TableKind,
    /// The key type's name (normalized, without module paths).
    pub key_type: String,
    /// The value type's name (normalized).
    pub value_type: String,
    /// Schema version.
    pub version: u32,
}

/// One change in a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new table.
    CreateTable(TableMeta),
    /// A table's schema changed (after a migration rewrote its rows).
    AlterTable(TableMeta),
    /// Insert or replace a row.
    Put {
        /// Table id.
        table: u32,
        /// Encoded key.
        key: Bytes,
        /// Encoded value.
        value: Bytes,
        /// The row's version after this write.
        version: u64,
    },
    /// Remove a row.
    Delete {
        /// Table id.
        table: u32,
        /// Encoded key.
        key: Bytes,
    },
    /// A table's id sequence advanced to `next`.
    Sequence {
        /// Table id.
        table: u32,
        /// The next id to hand out.
        next: u64,
    },
}

/// Encodes a transaction: the format byte, then the ops.
pub fn encode_tx(ops: &[Op]) -> Result<Vec<u8>> {
    // Sized up front: a large transaction is not copied again each time the buffer grows.
    let size: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value, .. } => key.len() + value.len() + 24,
            _ => 32,
        })
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    out.push(STORE_FORMAT);
    bincode::serde::encode_into_std_write(ops, &mut out, config())
        .map_err(|e| Error::InvalidArgument(format!("cannot encode transaction: {e}")))?;
    Ok(out)
}

/// What a transaction says of its puts beyond the ops (format [`TX_HINTED`], FORMAT.md
/// §12.1.1): hints a restore may use to do less work, and may always ignore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxHints {
    /// Tables with the names of their unique indexes when the transaction was made, each
    /// table at most once: declared in the first transaction of an epoch that needs it, and
    /// again whenever they change.
    pub declared: Vec<(u32, Vec<String>)>,
    /// Positions in the ops, increasing, of the puts that replaced a row whose unique-index
    /// keys (under the indexes declared for its table) are the new value's.
    pub kept: Vec<usize>,
}

impl TxHints {
    /// Whether there is nothing to say (the transaction is written in format 1).
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty() && self.kept.is_empty()
    }
}

/// [`encode_tx`] with hints: format [`TX_HINTED`] unless `hints` is empty. The hints must
/// hold as [`decode_tx_hinted`] checks them.
pub fn encode_tx_hinted(ops: &[Op], hints: &TxHints) -> Result<Vec<u8>> {
    let mut out = encode_tx(ops)?;
    if hints.is_empty() {
        return Ok(out);
    }
    if let Some(format) = out.first_mut() {
        *format = TX_HINTED;
    }
    let mut bitmap = vec![0u8; ops.len().div_ceil(8)];
    for &i in &hints.kept {
        if let Some(byte) = bitmap.get_mut(i / 8) {
            *byte |= 1 << (i % 8);
        }
    }
    // The bitmap as a sequence of u8: its length, then its bytes.
    let trailer = (&hints.declared, &bitmap);
    bincode::serde::encode_into_std_write(trailer, &mut out, config())
        .map_err(|e| Error::InvalidArgument(format!("cannot encode transaction: {e}")))?;
    Ok(out)
}

/// The variable-length integer at `*at` of `b`, moving `at` past it.
pub(super) fn varint_at(b: &[u8], at: &mut usize) -> Option<u64> {
    let (v, n) = read_varint(b.get(*at..)?)?;
    *at += n;
    Some(v)
}

/// The range of the length-prefixed bytes at `*at` of `b`, moving `at` past them.
pub(super) fn bytes_at(b: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let len = usize::try_from(varint_at(b, at)?).ok()?;
    let end = at.checked_add(len).filter(|end| *end <= b.len())?;
    let range = *at..end;
    *at = end;
    Some(range)
}

/// The count at `*at` of `b`, moving `at` past it, if it is no more than the bytes after it
/// (every element takes at least one).
fn count_at(b: &[u8], at: &mut usize) -> Option<u64> {
    let n = varint_at(b, at)?;
    (n <= b.len().saturating_sub(*at) as u64).then_some(n)
}

/// Whether every count and length in the transaction `b` (format 1 or 2, FORMAT.md §12.1)
/// fits in the bytes after it: checked before the decoder allocates for them, so that what
/// it allocates follows from the bytes, never from a hostile length. What the walk does not
/// know (an unknown format or variant) it leaves to the decoder, which refuses it.
fn lengths_fit(b: &[u8]) -> Option<()> {
    let hinted = match b.first() {
        Some(&STORE_FORMAT) => false,
        Some(&TX_HINTED) => true,
        _ => return Some(()),
    };
    let mut at = 1;
    for _ in 0..count_at(b, &mut at)? {
        match varint_at(b, &mut at)? {
            // A table record: id, name, kind, key type, value type, version.
            0 | 1 => {
                varint_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
                varint_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
                varint_at(b, &mut at)?;
            }
            2 => {
                varint_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
                varint_at(b, &mut at)?;
            }
            3 => {
                varint_at(b, &mut at)?;
                bytes_at(b, &mut at)?;
            }
            4 => {
                varint_at(b, &mut at)?;
                varint_at(b, &mut at)?;
            }
            _ => return Some(()),
        }
    }
    if hinted {
        for _ in 0..count_at(b, &mut at)? {
            varint_at(b, &mut at)?;
            for _ in 0..count_at(b, &mut at)? {
                bytes_at(b, &mut at)?;
            }
        }
        bytes_at(b, &mut at)?;
    }
    Some(())
}

/// Decodes a transaction, its hints checked and left out.
pub fn decode_tx(b: &[u8]) -> std::result::Result<Vec<Op>, String> {
    decode_tx_hinted(b).map(|(ops, _)| ops)
}

/// Decodes a transaction and its hints (none in format 1). Hints that do not hold as a
/// writer writes them are an error: a kept bit past the ops or on an op that is not a
/// `Put`, a kept bitmap of another length than the ops', a table declared twice or without
/// a kept put in the transaction.
pub fn decode_tx_hinted(b: &[u8]) -> std::result::Result<(Vec<Op>, TxHints), String> {
    if b.len() > DECODE_LIMIT || lengths_fit(b).is_none() {
        return Err("a count or length runs past the transaction's bytes".into());
    }
    match b.split_first() {
        Some((&STORE_FORMAT, rest)) => Ok((decode_value(rest)?, TxHints::default())),
        Some((&TX_HINTED, rest)) => {
            let (ops, used): (Vec<Op>, usize) = decode_prefix_len(rest)?;
            let trailer = rest.get(used..).unwrap_or_default();
            let (declared, bitmap): (Vec<(u32, Vec<String>)>, Vec<u8>) = decode_value(trailer)?;
            let hints = hints_of(&ops, declared, &bitmap)?;
            Ok((ops, hints))
        }
        Some((v, _)) => Err(format!("store format {v} is not supported")),
        None => Err("empty transaction".into()),
    }
}

/// The hints of a format 2 transaction of `ops`, checked (see [`decode_tx_hinted`]).
fn hints_of(
    ops: &[Op],
    declared: Vec<(u32, Vec<String>)>,
    bitmap: &[u8],
) -> std::result::Result<TxHints, String> {
    let kept = kept_positions(bitmap, ops.len(), |i| match ops.get(i) {
        Some(Op::Put { table, .. }) => Some(*table),
        _ => None,
    })?;
    check_declared(&declared, |t| {
        kept.iter()
            .any(|&i| matches!(ops.get(i), Some(Op::Put { table, .. }) if *table == t))
    })?;
    Ok(TxHints { declared, kept })
}

/// The positions set in a kept bitmap of `len` ops, each checked to be a put
/// (`put_table(i)` is its table).
pub(super) fn kept_positions(
    bitmap: &[u8],
    len: usize,
    put_table: impl Fn(usize) -> Option<u32>,
) -> std::result::Result<Vec<usize>, String> {
    if bitmap.len() != len.div_ceil(8) {
        return Err(format!(
            "kept bitmap of {} bytes for {len} operations",
            bitmap.len()
        ));
    }
    let mut kept = Vec::new();
    for (at, byte) in bitmap.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                let i = at * 8 + bit;
                if i >= len || put_table(i).is_none() {
                    return Err(format!("kept bit {i} is not on a put"));
                }
                kept.push(i);
            }
        }
    }
    Ok(kept)
}

/// Checks declarations: each table once, each with a kept put (`has_kept(table)`).
pub(super) fn check_declared(
    declared: &[(u32, Vec<String>)],
    has_kept: impl Fn(u32) -> bool,
) -> std::result::Result<(), String> {
    for (i, (table, _)) in declared.iter().enumerate() {
        if declared.iter().take(i).any(|(t, _)| t == table) {
            return Err(format!("table {table} declared twice"));
        }
        if !has_kept(*table) {
            return Err(format!("table {table} declared without a kept put"));
        }
    }
    Ok(())
}

/// Whether `b` decodes as a store transaction (for verification).
pub(crate) fn decode_transaction(b: &[u8]) -> std::result::Result<(), String> {
    decode_tx(b).map(|_| ())
}
