//! How the store's data is written inside epoch entries (FORMAT.md §12): rows, transactions and
//! snapshots, with bincode 2.0.1 (standard configuration) and order-preserving keys.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::rows::Bytes;

/// Format version of store payloads, the first byte of every transaction and snapshot.
pub const STORE_FORMAT: u8 = 1;

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

/// Decodes a transaction.
pub fn decode_tx(b: &[u8]) -> std::result::Result<Vec<Op>, String> {
    match b.split_first() {
        Some((&STORE_FORMAT, rest)) => decode_value(rest),
        Some((v, _)) => Err(format!("store format {v} is not supported")),
        None => Err("empty transaction".into()),
    }
}

/// Whether `b` decodes as a store transaction (for verification).
pub(crate) fn decode_transaction(b: &[u8]) -> std::result::Result<(), String> {
    decode_tx(b).map(|_| ())
}
