//! The row types the rest of the folder shares: a row held in memory, a row read in place, and
//! a key's change since its base was laid out.

use super::bytes::Bytes;

/// A row: its encoded value and its version (bumped by one on every write, never repeated for
/// its key: see FORMAT.md §12.1's version floors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Encoded value.
    pub value: Bytes,
    /// Version, starting at 1 for a new row.
    pub version: u64,
}

/// A row read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    /// Encoded key.
    pub key: &'a [u8],
    /// Encoded value.
    pub value: &'a [u8],
    /// Version.
    pub version: u64,
}

/// A key changed since the base was laid out.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its row in the base, if any.
    pub before: Option<RowRef<'a>>,
    /// Its row now, if any.
    pub now: Option<RowRef<'a>>,
}
