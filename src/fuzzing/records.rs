//! The small files of a store directory, each decoder on its own: the checkpoint registry
//! (`CHECKPOINTS`, FORMAT.md §11.9), a named lock's fence file (§11.12), the rewind intent
//! (`REWIND`, §11.8) and the other intent files and manifest (§11.13). Each body decodes the
//! raw input, then the input made plausible (the file's magic in front, its checksum fixed at
//! the end, its length right), so that the fields behind the checksum are reached. Whatever
//! decodes must encode back to the same bytes: the decoders accept one spelling of each
//! value, and a file a program reads and writes back is unchanged.

use std::path::Path;

use super::input::Input;
use crate::epoch::{
    FALLBACK_MAGIC, MANIFEST_MAGIC, RETIRE_MAGIC, RewindIntent, SYNC_FAILED_MAGIC,
    decode_checkpoints, decode_intent, encode_checkpoints, encode_intent,
};
use crate::store::{decode_fence, encode_fence};

/// `body` with the CRC-32 of what precedes it in its last 4 bytes (the checksum every small
/// file ends with), when there are more than 4 bytes.
fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    if body.len() > 4 {
        let end = body.len() - 4;
        let crc = crc32fast::hash(body.get(..end).unwrap_or_default());
        if let Some(tail) = body.get_mut(end..) {
            tail.copy_from_slice(&crc.to_le_bytes());
        }
    }
    body
}

/// The raw input, and the input after `magic` with a fixed checksum.
fn spellings(data: &[u8], magic: &[u8]) -> [Vec<u8>; 2] {
    let mut fixed = magic.to_vec();
    fixed.extend_from_slice(data);
    [data.to_vec(), with_crc(fixed)]
}

/// The checkpoint registry's decoder: on the input, and on the input as a registry body
/// (magic, version 1, the input's count and records, a fixed checksum).
pub fn checkpoint_registry(data: &[u8]) {
    let path = Path::new("/store/CHECKPOINTS");
    let mut versioned = b"SLCHECKP".to_vec();
    versioned.extend_from_slice(&1u32.to_le_bytes());
    for b in spellings(data, b"SLCHECKP")
        .into_iter()
        .chain(spellings(data, &versioned))
    {
        if let Ok(list) = decode_checkpoints(&b, path) {
            assert_eq!(
                encode_checkpoints(&list),
                b,
                "a registry decoded as {list:?} encodes to other bytes"
            );
        }
    }
}

/// A named lock's fence file: the number, then its CRC.
pub fn fence_file(data: &[u8]) {
    let mut fixed = data.get(..8).unwrap_or(data).to_vec();
    fixed.resize(8, 0);
    let crc = crc32fast::hash(&fixed);
    fixed.extend_from_slice(&crc.to_le_bytes());
    for b in [data.to_vec(), fixed] {
        if let Some(n) = decode_fence(&b) {
            assert_eq!(encode_fence(n).as_slice(), b.get(..12).unwrap_or_default());
        }
    }
}

/// The intent files (`REWIND`, `SYNCFAIL`, `FALLBACK`, `RETIRE`) and the manifest: each
/// decoder on the input and on the input after its magic with a fixed checksum.
pub fn intent_files(data: &[u8]) {
    let mut inp = Input::new(data);
    let rest = {
        // The first byte picks a field count to try (the intents have 1 to 4 fields).
        let n = inp.index(9);
        (n, inp.bytes(usize::MAX))
    };
    let path = Path::new("/store/INTENT");
    for b in spellings(rest.1, b"SLREWIND") {
        if let Ok(intent) = RewindIntent::decode(&b, path) {
            assert_eq!(intent.encode(), b, "{intent:?} encodes to other bytes");
            let _ = intent.fields();
        }
    }
    for magic in [
        SYNC_FAILED_MAGIC,
        FALLBACK_MAGIC,
        RETIRE_MAGIC,
        MANIFEST_MAGIC,
    ] {
        for b in spellings(rest.1, &magic) {
            for n in [rest.0, 1, 2, 3, 4] {
                if let Ok(fields) = decode_intent(&b, magic, n, path) {
                    assert_eq!(fields.len(), n);
                    assert_eq!(encode_intent(magic, &fields), b);
                }
            }
        }
    }
}
