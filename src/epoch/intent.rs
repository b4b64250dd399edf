//! Small durable intent files (FORMAT.md §11.13): a multi-step change of the directory writes
//! one before its first step and removes it after its last, so an interrupted change is
//! finished (or its effect recognized) by the next open instead of read as damage.
//!
//! Every intent file is `magic (8 bytes) ‖ fields (u64 LE each) ‖ CRC-32 of what precedes`.

use std::path::Path;

use super::dir::{TMP_SUFFIX, with_suffix};
use crate::backend::Backend;
use crate::error::{CorruptKind, Error, Result};

/// A writeback (fsync) of the active segment failed: `[segment, certified end]`. The next
/// open cuts the segment at the certified end (FORMAT.md §11.13.1).
pub(crate) const SYNC_FAILED_FILE: &str = "SYNCFAIL";
pub(crate) const SYNC_FAILED_MAGIC: [u8; 8] = *b"SLSYNCFL";

/// A fall-back is setting aside segments `[from, to]` (FORMAT.md §11.13.2).
pub(crate) const FALLBACK_FILE: &str = "FALLBACK";
pub(crate) const FALLBACK_MAGIC: [u8; 8] = *b"SLFALLBK";

/// Retention is deleting every segment below `[below]` (FORMAT.md §11.13.3).
pub(crate) const RETIRE_FILE: &str = "RETIRE";
pub(crate) const RETIRE_MAGIC: [u8; 8] = *b"SLRETIRE";

/// The segments the directory holds: `[oldest, newest]`, every number between present under
/// some name (FORMAT.md §11.13.4). Not an intent: it stays.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
pub(crate) const MANIFEST_MAGIC: [u8; 8] = *b"SLMANIFS";

/// The most fields an intent file holds.
const MAX_FIELDS: usize = 8;

/// Encodes an intent file's bytes.
pub(crate) fn encode(magic: [u8; 8], fields: &[u64]) -> Vec<u8> {
    let mut b = magic.to_vec();
    for v in fields {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes an intent file of `n` fields; anything else is corruption at offset 0.
pub(crate) fn decode(bytes: &[u8], magic: [u8; 8], n: usize, path: &Path) -> Result<Vec<u64>> {
    let bad = || Error::corrupt(path, 0, CorruptKind::Payload);
    let len = 8 + 8 * n + 4;
    if n > MAX_FIELDS || bytes.len() != len || bytes.get(..8) != Some(&magic[..]) {
        return Err(bad());
    }
    let crc = crate::frame::read_u32(bytes, len - 4);
    if crc != bytes.get(..len - 4).map(crc32fast::hash) {
        return Err(bad());
    }
    (0..n)
        .map(|i| crate::frame::read_u64(bytes, 8 + 8 * i).ok_or_else(bad))
        .collect()
}

/// Reads intent file `name` of `dir` if it exists.
pub(crate) fn read(
    backend: &dyn Backend,
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    n: usize,
) -> Result<Option<Vec<u64>>> {
    let path = dir.join(name);
    if !backend.exists(&path).map_err(|e| Error::io(&path, e))? {
        return Ok(None);
    }
    // Gone between the check and this read: the change it announced is complete.
    let f = match backend.open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let len = f.len().map_err(|e| Error::io(&path, e))?;
    let want = (8 + 8 * n.min(MAX_FIELDS) + 4) as u64;
    if len != want {
        return Err(Error::corrupt(&path, 0, CorruptKind::Payload));
    }
    let mut b = vec![0u8; want as usize];
    let got = f.read_full_at(&mut b, 0).map_err(|e| Error::io(&path, e))?;
    b.truncate(got);
    decode(&b, magic, n, &path).map(Some)
}

/// Makes intent file `name` durable: a temporary file, synced, renamed into place (the
/// backend syncs the directory).
pub(crate) fn write(
    backend: &dyn Backend,
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    fields: &[u64],
) -> Result<()> {
    let path = dir.join(name);
    let tmp = with_suffix(&path, TMP_SUFFIX);
    let io = |e| Error::io(&tmp, e);
    if backend.exists(&tmp).map_err(io)? {
        backend.remove(&tmp).map_err(io)?;
    }
    let f = backend.create(&tmp).map_err(io)?;
    f.write_at(&encode(magic, fields), 0)
        .and_then(|()| f.sync_data())
        .map_err(io)?;
    backend.rename(&tmp, &path).map_err(io)
}

/// Removes intent file `name` (done: the change it announced is complete).
pub(crate) fn remove(backend: &dyn Backend, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    backend.remove(&path).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_md_vector_matches_the_encoder() {
        let v = crate::format_doc::doc_vectors("intent");
        assert_eq!(v.get("RETIRE"), Some(&encode(RETIRE_MAGIC, &[7])));
    }

    proptest::proptest! {
        /// Bytes from disk are hostile: any input decodes or is refused, never panics, for
        /// every intent kind and field count.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..64), n in 0usize..10) {
            let p = Path::new("X");
            for magic in [SYNC_FAILED_MAGIC, FALLBACK_MAGIC, RETIRE_MAGIC, MANIFEST_MAGIC] {
                let _ = decode(&b, magic, n, p);
                let mut framed = magic.to_vec();
                framed.extend_from_slice(&b);
                let _ = decode(&framed, magic, n, p);
            }
        }
    }

    #[test]
    fn intent_round_trips_and_refuses_damage() {
        let p = Path::new("RETIRE");
        let b = encode(RETIRE_MAGIC, &[7]);
        assert_eq!(decode(&b, RETIRE_MAGIC, 1, p).unwrap(), vec![7]);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(decode(&d, RETIRE_MAGIC, 1, p).is_err(), "flip at {i}");
        }
        assert!(decode(&b, FALLBACK_MAGIC, 1, p).is_err());
        assert!(decode(&b[..b.len() - 1], RETIRE_MAGIC, 1, p).is_err());
    }
}
