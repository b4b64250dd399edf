//! FORMAT.md §12.2's LZ4 blocks agree with the code: the vectors of §12.5 decode with the
//! decompressor the store uses (`lz4_flex`) and with a decoder written from the document's
//! description alone (below); the format 3 images restore, from a SNAPSHOT entry, to the
//! same state as their uncompressed form; what the store's encoder writes keeps the end of
//! block rules and decodes by the description; and `body_len`'s 255 times bound is counted
//! on the image less its format byte.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::FsBackend;
use crate::epoch::{EpochLog, Options, RecoveryMode};
use crate::format_doc::{doc_vectors, hex};
use crate::{Readable, TableInfo, read_only_snapshot};

/// A block decoded by the steps of FORMAT.md §12.2 alone: the output, each match as
/// (offset, length, where it starts in the output), and the last sequence's literal count.
#[derive(Debug, Default)]
struct Decoded {
    out: Vec<u8>,
    matches: Vec<(usize, usize, usize)>,
    last_literals: usize,
}

/// Reads one byte of `block` at `*at`.
fn byte(block: &[u8], at: &mut usize) -> Result<u8, String> {
    let b = *block
        .get(*at)
        .ok_or_else(|| format!("the block ends inside a sequence, at {at}"))?;
    *at += 1;
    Ok(b)
}

/// Steps 2 and 6: a 4-bit length of 15 goes on in length bytes, up to one that is not 255.
fn length(nibble: u8, block: &[u8], at: &mut usize) -> Result<usize, String> {
    let mut n = usize::from(nibble);
    if nibble == 15 {
        loop {
            let b = byte(block, at)?;
            n += usize::from(b);
            if b != 255 {
                break;
            }
        }
    }
    Ok(n)
}

/// Decodes `block` by FORMAT.md §12.2, steps 1–7 and the end of block.
fn decode_by_the_document(block: &[u8]) -> Result<Decoded, String> {
    let mut d = Decoded::default();
    let mut at = 0;
    loop {
        let token = byte(block, &mut at)?;
        let literals = length(token >> 4, block, &mut at)?;
        let bytes = block
            .get(at..at + literals)
            .ok_or("the block ends inside literals")?;
        d.out.extend_from_slice(bytes);
        at += literals;
        if at == block.len() {
            d.last_literals = literals;
            return Ok(d);
        }
        let offset = usize::from(u16::from_le_bytes([
            byte(block, &mut at)?,
            byte(block, &mut at)?,
        ]));
        if offset == 0 || offset > d.out.len() {
            return Err(format!(
                "offset {offset} with {} bytes of output",
                d.out.len()
            ));
        }
        let len = length(token & 15, block, &mut at)? + 4;
        let start = d.out.len();
        for _ in 0..len {
            let b = d.out.get(d.out.len() - offset).copied().unwrap_or(0);
            d.out.push(b);
        }
        d.matches.push((offset, len, start));
    }
}

/// The LZ4 specification's rules for writers: the last 5 bytes are literals, and the last
/// match starts at least 12 bytes before the end.
fn keeps_end_rules(d: &Decoded) -> bool {
    let len = d.out.len();
    let last5 = d.last_literals >= 5.min(len);
    let last_match = d
        .matches
        .last()
        .is_none_or(|&(_, _, start)| start + 12 <= len);
    last5 && last_match
}

/// What the store's decompressor (`lz4_flex`, into a buffer of the chunk's exact length)
/// makes of `block`.
fn decode_like_the_store(block: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; len];
    let n = lz4_flex::block::decompress_into(block, &mut out).map_err(|e| e.to_string())?;
    if n != len {
        return Err(format!("{n} bytes instead of {len}"));
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> usize {
    let bytes: [u8; 4] = b
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .expect("a u32 in the image");
    u32::from_le_bytes(bytes) as usize
}

/// The single chunk of a one-chunk format 3 image, by the layout of FORMAT.md §12.2: its
/// uncompressed length and its block.
fn only_chunk(image: &[u8]) -> (usize, &[u8]) {
    assert_eq!(image.first(), Some(&3), "a format 3 image");
    let body_len = u64::from_le_bytes(image[1..9].try_into().expect("8 bytes"));
    assert_eq!(u32_at(image, 9), 1, "one chunk");
    let raw = u32_at(image, 13);
    let packed = u32_at(image, 17);
    assert_eq!(raw as u64, body_len);
    let block = &image[21..];
    assert_eq!(block.len(), packed, "the chunk table accounts for the rest");
    (raw, block)
}

/// What a store restores from a SNAPSHOT entry holding `image`: its sequence number, its
/// tables, and the rows of each.
type Restored = (u64, Vec<TableInfo>, Vec<Vec<(Vec<u8>, Vec<u8>)>>);

fn restore(image: &[u8]) -> Restored {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = Arc::new(FsBackend::new());
    let (log, _) =
        EpochLog::open(backend.clone(), dir.path(), Options::default()).expect("a new log");
    log.snapshot(image).expect("a snapshot");
    log.close().expect("close");
    drop(log);
    let (snap, _) = read_only_snapshot(backend, dir.path(), RecoveryMode::Strict, None)
        .expect("the image restores");
    let tables = snap.tables();
    let rows = tables
        .iter()
        .map(|t| {
            snap.raw_rows(&t.name)
                .expect("rows")
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect()
        })
        .collect();
    (snap.seq(), tables, rows)
}

fn vector<'a>(set: &'a HashMap<String, Vec<u8>>, name: &str) -> &'a [u8] {
    set.get(name)
        .unwrap_or_else(|| panic!("FORMAT.md has the vector {name}"))
}

#[test]
fn format_md_lz4_block_vectors_decode() {
    let blocks = doc_vectors("lz4-block-vector");
    let outputs = doc_vectors("lz4-output-vector");
    let mut names: Vec<&String> = blocks.keys().collect();
    names.sort();
    let mut out_names: Vec<&String> = outputs.keys().collect();
    out_names.sort();
    assert!(!names.is_empty(), "FORMAT.md has LZ4 block vectors");
    assert_eq!(names, out_names, "each block vector has its output");
    for name in names {
        let block = vector(&blocks, name);
        let want = vector(&outputs, name);
        let store = decode_like_the_store(block, want.len()).expect("the store decodes it");
        assert_eq!(hex(&store), hex(want), "{name}: the store's decoder");
        let doc = decode_by_the_document(block).expect("the description decodes it");
        assert_eq!(hex(&doc.out), hex(want), "{name}: the document's decoder");
        assert!(keeps_end_rules(&doc), "{name} keeps the end of block rules");
        // It shows what FORMAT.md says it shows: a plain match, an overlapping one, and
        // length bytes for both kinds of length.
        assert!(doc.matches.iter().any(|&(d, len, _)| len <= d), "{name}");
        assert!(doc.matches.iter().any(|&(d, len, _)| len > d), "{name}");
        assert!(doc.matches.iter().any(|&(_, len, _)| len >= 19), "{name}");
        assert!(doc.last_literals >= 15, "{name}");
        // One byte less, or a buffer one byte short, is refused.
        let cut = &block[..block.len() - 1];
        assert!(
            decode_like_the_store(cut, want.len()).is_err(),
            "{name} cut"
        );
        assert!(decode_by_the_document(cut).map(|d| d.out) != Ok(want.to_vec()));
        assert!(decode_like_the_store(block, want.len() - 1).is_err());
        assert!(decode_like_the_store(block, want.len() + 1).is_err());
    }
}

#[test]
fn format_md_compressed_images_restore_to_the_uncompressed_state() {
    let plain = doc_vectors("store-vector");
    let read = doc_vectors("store-read-vector");
    for (packed_name, plain_name, has_matches) in [
        ("state-image-lz4", "state-image", false),
        ("state-image-lz4-matches", "state-image-indexed", true),
    ] {
        let image = vector(&read, packed_name);
        let uncompressed = vector(&plain, plain_name);
        let body = &uncompressed[1..];
        let (raw, block) = only_chunk(image);
        assert_eq!(raw, body.len(), "{packed_name}: body_len");
        let store = decode_like_the_store(block, raw).expect("the store decodes the chunk");
        assert_eq!(hex(&store), hex(body), "{packed_name}: the store's decoder");
        let doc = decode_by_the_document(block).expect("the description decodes the chunk");
        assert_eq!(
            hex(&doc.out),
            hex(body),
            "{packed_name}: the document's decoder"
        );
        assert!(
            keeps_end_rules(&doc),
            "{packed_name} keeps the end of block rules"
        );
        if has_matches {
            // FORMAT.md: an overlapping match at offset 1 and a plain one at offset 21, both
            // of 6 bytes, and a last sequence of 10 literals.
            assert_eq!(
                doc.matches
                    .iter()
                    .map(|&(d, len, _)| (d, len))
                    .collect::<Vec<_>>(),
                [(1, 6), (21, 6)]
            );
            assert_eq!(doc.last_literals, 10);
        } else {
            assert!(doc.matches.is_empty());
        }
        // The store's own image decoder, and a whole restore from a SNAPSHOT entry.
        crate::store::decode_state(image).expect("the store reads the image");
        assert_eq!(
            restore(image),
            restore(uncompressed),
            "{packed_name} restores to the state of {plain_name}"
        );
    }
}

#[test]
fn the_store_encoder_keeps_the_end_of_block_rules() {
    // Short, incompressible, repetitive and long-run chunks: runs past 270 bytes need the
    // 255-valued length bytes of steps 2 and 6.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for n in 0..40 {
        inputs.push(noise(n));
    }
    inputs.push(vec![0; 1000]);
    inputs.push(noise(600));
    inputs.push(b"statelog, ".repeat(100));
    let mut mixed = Vec::new();
    for i in 0..50 {
        mixed.extend(noise(i * 7 % 300));
        mixed.extend(std::iter::repeat_n(i as u8, i * 13 % 700));
    }
    inputs.push(mixed);
    let mut long_length_bytes = false;
    for input in &inputs {
        let block = lz4_flex::block::compress(input);
        let doc = decode_by_the_document(&block).expect("the description decodes it");
        assert_eq!(
            doc.out, *input,
            "the description decodes what the encoder wrote"
        );
        assert!(
            keeps_end_rules(&doc),
            "the encoder keeps the end of block rules"
        );
        if input.len() < 13 {
            assert!(
                doc.matches.is_empty(),
                "a chunk under 13 bytes is all literals"
            );
        }
        long_length_bytes |= doc.matches.iter().any(|&(_, len, _)| len >= 19 + 255);
    }
    assert!(
        long_length_bytes,
        "a match long enough for a 255 length byte"
    );
}

#[test]
fn body_len_is_bounded_by_255_times_the_image_less_its_format_byte() {
    let read = doc_vectors("store-read-vector");
    let image = vector(&read, "state-image-lz4");
    let rest = (image.len() - 1) as u64;
    let with_len = |n: u64| {
        let mut b = image.to_vec();
        b[1..9].copy_from_slice(&n.to_le_bytes());
        crate::store::decode_state(&b).expect_err("a wrong body_len")
    };
    assert!(
        with_len(255 * rest + 1).contains("beyond the limit"),
        "{}",
        with_len(255 * rest + 1)
    );
    // At the bound the length is accepted, and the chunk table then disagrees with it.
    let at_bound = with_len(255 * rest);
    assert!(!at_bound.contains("beyond the limit"), "{at_bound}");
}
