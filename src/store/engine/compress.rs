//! Compression of state images (FORMAT.md §12.2, image format 3): the body cut into chunks
//! compressed as independent LZ4 blocks, on every core, both ways.

use super::codec::DECODE_LIMIT;

/// Uncompressed bytes per chunk.
const CHUNK: usize = 4 << 20;
/// Bytes before the chunk table: the body length (u64) and the chunk count (u32).
const HEAD: usize = 12;
/// LZ4 never expands data more than this many times (a decoder bound, with margin).
const MAX_RATIO: u64 = 255;

/// Threads for `work` chunks: every core, less `spare` (left to the store's readers).
fn threads(work: usize, spare: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(spare)
        .clamp(1, 8)
        .min(work.max(1))
}

/// Compresses `body` (appended to `out`): its length, the chunk table, the chunks. It runs
/// while the store serves readers (compaction), so one core is left to them.
pub(crate) fn compress(body: &[u8], out: &mut Vec<u8>) {
    let chunks: Vec<&[u8]> = body.chunks(CHUNK).collect();
    let per = chunks.len().div_ceil(threads(chunks.len(), 1)).max(1);
    let packed: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .chunks(per)
            .map(|group| {
                s.spawn(move || {
                    group
                        .iter()
                        .map(|c| lz4_flex::block::compress(c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    for (raw, c) in chunks.iter().zip(&packed) {
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
    }
    for c in &packed {
        out.extend_from_slice(c);
    }
}

/// One chunk's place: where its compressed bytes are and how long it is uncompressed.
struct ChunkAt {
    from: usize,
    to: usize,
    raw: usize,
}

/// Reads the length and chunk table of `b`, checking every bound before anything is
/// allocated.
fn table(b: &[u8]) -> Result<(usize, Vec<ChunkAt>), String> {
    let u32_at = |at: usize| {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("the compressed image ends early")
    };
    let total = b
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("the compressed image ends early")?;
    let n = u32_at(8)? as usize;
    let data_at = n
        .checked_mul(8)
        .and_then(|t| t.checked_add(HEAD))
        .filter(|&d| d <= b.len())
        .ok_or("the chunk table does not fit")?;
    if total > DECODE_LIMIT as u64 || total > (b.len() as u64).saturating_mul(MAX_RATIO) {
        return Err(format!("an image of {total} bytes is beyond the limit"));
    }
    let mut chunks = Vec::with_capacity(n);
    let (mut at, mut sum) = (data_at, 0usize);
    for i in 0..n {
        let raw = u32_at(HEAD + 8 * i)? as usize;
        let len = u32_at(HEAD + 8 * i + 4)? as usize;
        if raw == 0 || raw > CHUNK || (raw < CHUNK && i + 1 != n) {
            return Err(format!("chunk {i} has {raw} bytes"));
        }
        let to = at
            .checked_add(len)
            .filter(|&t| t <= b.len())
            .ok_or("a chunk lies outside the image")?;
        chunks.push(ChunkAt { from: at, to, raw });
        at = to;
        sum += raw;
    }
    if at != b.len() || sum as u64 != total {
        return Err("the chunk table does not match the image".into());
    }
    Ok((sum, chunks))
}

/// The body `b` holds (as `compress` wrote it).
pub(crate) fn decompress(b: &[u8]) -> Result<Vec<u8>, String> {
    let (total, chunks) = table(b)?;
    let mut body = vec![0u8; total];
    let mut outs: Vec<(&ChunkAt, &mut [u8])> = Vec::with_capacity(chunks.len());
    let mut rest: &mut [u8] = &mut body;
    for c in &chunks {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(c.raw);
        outs.push((c, head));
        rest = tail;
    }
    // Restore: nobody reads yet, every core helps.
    let per = outs.len().div_ceil(threads(outs.len(), 0)).max(1);
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = outs
            .chunks_mut(per)
            .map(|group| {
                s.spawn(move || {
                    for (c, out) in group.iter_mut() {
                        let src = b
                            .get(c.from..c.to)
                            .ok_or("a chunk lies outside the image")?;
                        let n = lz4_flex::block::decompress_into(src, out)
                            .map_err(|e| format!("a chunk does not decompress: {e}"))?;
                        if n != out.len() {
                            return Err("a chunk decompresses to another length".to_string());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a decompressor panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<(), String>>()?;
    Ok(body)
}

/// The first `n` bytes of the body (for reading the sequence number without the rest).
pub(crate) fn decompress_prefix(b: &[u8], n: usize) -> Result<Vec<u8>, String> {
    let (_, chunks) = table(b)?;
    let Some(c) = chunks.first() else {
        return Ok(Vec::new());
    };
    let mut out = vec![0u8; c.raw];
    let src = b
        .get(c.from..c.to)
        .ok_or("a chunk lies outside the image")?;
    lz4_flex::block::decompress_into(src, &mut out)
        .map_err(|e| format!("a chunk does not decompress: {e}"))?;
    out.truncate(n.min(c.raw));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let body: Vec<u8> = (0..(CHUNK * 2 + 1000)).map(|i| (i % 251) as u8).collect();
        let mut packed = Vec::new();
        compress(&body, &mut packed);
        assert!(packed.len() < body.len() / 4);
        assert_eq!(decompress(&packed).unwrap(), body);
        assert_eq!(decompress_prefix(&packed, 10).unwrap(), body[..10]);
        for len in [0, 5, 12, 20, packed.len() - 1] {
            assert!(decompress(&packed[..len]).is_err(), "length {len}");
        }
        let mut huge = packed.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decompress(&huge).is_err());
        let mut empty = Vec::new();
        compress(&[], &mut empty);
        assert_eq!(decompress(&empty).unwrap(), Vec::<u8>::new());
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decompress(&b);
            let _ = decompress_prefix(&b, 9);
        }
    }
}
