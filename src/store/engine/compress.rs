//! Compression of state images (FORMAT.md §12.2): the body cut into chunks compressed as
//! independent LZ4 blocks, on every core, both ways. Image format 4 (what this version
//! writes) is streamed: each block is preceded by its lengths, so a block is written as soon
//! as it is compressed and the image is never whole in memory; format 3 (a chunk table up
//! front) is still read.

use std::sync::mpsc::SyncSender;

use super::codec::DECODE_LIMIT;

/// Uncompressed bytes per chunk.
const CHUNK: usize = 4 << 20;
/// Bytes before the chunk table: the body length (u64) and the chunk count (u32).
const HEAD: usize = 12;
/// LZ4 never expands data more than this many times (a decoder bound, with margin).
const MAX_RATIO: u64 = 255;
/// Bytes before each block of image format 4: its uncompressed and compressed lengths.
const BLOCK_HEAD: usize = 8;

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
#[cfg(test)]
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

/// The body `b` holds (format 3: as `compress` wrote it).
pub(crate) fn decompress(b: &[u8]) -> Result<Vec<u8>, String> {
    let (total, chunks) = table(b)?;
    inflate(b, total, &chunks)
}

/// The body of the format 4 blocks `b` (the image after its format byte).
pub(crate) fn decompress_blocks(b: &[u8]) -> Result<Vec<u8>, String> {
    let (total, chunks) = blocks(b)?;
    inflate(b, total, &chunks)
}

/// The places of the format 4 blocks of `b`, checked for bounds before anything is allocated:
/// each at most `CHUNK` long uncompressed and at most `MAX_RATIO` times its compressed length.
fn blocks(b: &[u8]) -> Result<(usize, Vec<ChunkAt>), String> {
    let mut chunks = Vec::new();
    let (mut at, mut total) = (0usize, 0usize);
    while at < b.len() {
        let u32_at = |at: usize| {
            b.get(at..at.saturating_add(4))
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| format!("block {} ends early", chunks.len()))
        };
        let raw = u32_at(at)? as usize;
        let len = u32_at(at + 4)? as usize;
        let from = at + BLOCK_HEAD;
        if raw == 0 || raw > CHUNK || raw as u64 > (len as u64).saturating_mul(MAX_RATIO) {
            return Err(format!(
                "block {} claims {raw} bytes from {len} compressed",
                chunks.len()
            ));
        }
        let to = from
            .checked_add(len)
            .filter(|&t| t <= b.len())
            .ok_or_else(|| format!("block {} lies outside the image", chunks.len()))?;
        chunks.push(ChunkAt { from, to, raw });
        total = total
            .checked_add(raw)
            .ok_or("the image's length overflows")?;
        at = to;
    }
    Ok((total, chunks))
}

/// Decompresses `chunks` of `b` (their uncompressed lengths adding up to `total`) into one
/// body, on every core.
fn inflate(b: &[u8], total: usize, chunks: &[ChunkAt]) -> Result<Vec<u8>, String> {
    let mut body = vec![0u8; total];
    let mut outs: Vec<(&ChunkAt, &mut [u8])> = Vec::with_capacity(chunks.len());
    let mut rest: &mut [u8] = &mut body;
    for c in chunks {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(c.raw);
        outs.push((c, head));
        rest = tail;
    }
    // Restore: nobody reads yet, every core helps (a small body: this thread alone).
    let cores = if total < INLINE_BYTES {
        1
    } else {
        threads(outs.len(), 0)
    };
    let per = outs.len().div_ceil(cores).max(1);
    if per >= outs.len() {
        inflate_into(b, &mut outs)?;
        return Ok(body);
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = outs
            .chunks_mut(per)
            .map(|group| s.spawn(move || inflate_into(b, group)))
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

/// Decompresses each chunk of `b` into its place.
fn inflate_into(b: &[u8], group: &mut [(&ChunkAt, &mut [u8])]) -> Result<(), String> {
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
}

/// The first `n` bytes of the body (for reading the sequence number without the rest):
/// format 3 (`blocks` false) or 4.
pub(crate) fn decompress_prefix(b: &[u8], n: usize, format4: bool) -> Result<Vec<u8>, String> {
    let chunks = if format4 {
        // Only the first block is needed: bound the scan to it.
        let first = b
            .get(4..8)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("the image ends early")? as usize;
        let end = BLOCK_HEAD.saturating_add(first).min(b.len());
        blocks(b.get(..end).unwrap_or_default())?.1
    } else {
        table(b)?.1
    };
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

/// Runs `fill`, which writes an image body to the writer it is given, and hands `out` the
/// body as format 4 blocks (each: its uncompressed and compressed lengths, u32 LE, then the
/// LZ4 block), in order, as they are compressed. `fill` runs on a thread of its own and the
/// blocks are compressed on others while `out` writes, so memory stays at a few blocks
/// whatever the body's size. An error of `out` stops `fill` and is returned.
///
/// `hint` is about how many bytes the body will have: below [`INLINE_BYTES`] it is encoded
/// and compressed on the calling thread, block by block (no thread is worth starting for a
/// small state; memory stays at one block whatever the body's real size).
pub(crate) fn stream_blocks(
    hint: usize,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send,
    out: &mut dyn FnMut(&[u8]) -> crate::Result<()>,
) -> crate::Result<()> {
    use std::sync::mpsc::{Receiver, sync_channel};
    if hint < INLINE_BYTES {
        return stream_blocks_here(fill, out);
    }
    let workers = threads(usize::MAX, 1);
    std::thread::scope(|s| {
        let (order_tx, order_rx) = sync_channel::<Receiver<Block>>(2 * workers);
        let mut inputs: Vec<SyncSender<Job>> = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Job>(1);
            inputs.push(tx);
            s.spawn(move || {
                for (raw, reply) in rx {
                    let packed = lz4_flex::block::compress(&raw);
                    let _ = reply.send((raw.len(), packed));
                }
            });
        }
        let encoder = s.spawn(move || {
            let mut sink = ChunkSink {
                buf: Vec::with_capacity(CHUNK),
                next: 0,
                inputs,
                order: order_tx,
            };
            fill(&mut sink)?;
            sink.send_chunk()
        });
        let mut written = Ok(());
        let mut head = [0u8; BLOCK_HEAD];
        for rx in order_rx {
            let Ok((raw, packed)) = rx.recv() else {
                break;
            };
            head[..4].copy_from_slice(&(raw as u32).to_le_bytes());
            head[4..].copy_from_slice(&(packed.len() as u32).to_le_bytes());
            written = out(&head).and_then(|()| out(&packed));
            if written.is_err() {
                // Dropping the receiver stops the encoder at its next chunk.
                break;
            }
        }
        let encoded = encoder.join();
        written?;
        match encoded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(crate::Error::InvalidArgument(format!(
                "cannot encode the state image: {e}"
            ))),
            Err(_) => Err(crate::Error::InvalidArgument(
                "the state image's encoder panicked".into(),
            )),
        }
    })
}

/// Images (and bodies) smaller than this are compressed and decompressed on the calling
/// thread.
pub(crate) const INLINE_BYTES: usize = 1 << 20;

/// [`stream_blocks`] on the calling thread: the same blocks, one at a time.
fn stream_blocks_here(
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    out: &mut dyn FnMut(&[u8]) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut sink = HereSink {
        buf: Vec::new(),
        out,
        failed: None,
    };
    let filled = fill(&mut sink).and_then(|()| sink.emit());
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    filled.map_err(|e| crate::Error::InvalidArgument(format!("cannot encode the state image: {e}")))
}

/// Cuts what is written to it into `CHUNK`-byte chunks and writes each as a block at once.
struct HereSink<'a> {
    buf: Vec<u8>,
    out: &'a mut dyn FnMut(&[u8]) -> crate::Result<()>,
    /// The error of `out`, which stops the encoder.
    failed: Option<crate::Error>,
}

impl HereSink<'_> {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let packed = lz4_flex::block::compress(&self.buf);
        let mut head = [0u8; BLOCK_HEAD];
        head[..4].copy_from_slice(&(self.buf.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&(packed.len() as u32).to_le_bytes());
        self.buf.clear();
        match (self.out)(&head).and_then(|()| (self.out)(&packed)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.failed = Some(e);
                Err(std::io::Error::other("the image's writer stopped"))
            }
        }
    }
}

impl Chunked for HereSink<'_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn full(&mut self) -> std::io::Result<()> {
        self.emit()
    }
}

impl std::io::Write for HereSink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        write_chunked(self, data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that gathers its input in `CHUNK`-byte chunks.
trait Chunked {
    /// The chunk being filled.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Takes the full chunk away.
    fn full(&mut self) -> std::io::Result<()>;
}

/// Appends `data` to `sink`'s chunk, handing each chunk over as it fills.
fn write_chunked(sink: &mut impl Chunked, mut data: &[u8]) -> std::io::Result<usize> {
    let n = data.len();
    while !data.is_empty() {
        let buf = sink.buf();
        let take = (CHUNK - buf.len()).min(data.len());
        let (now, rest) = data.split_at(take);
        buf.extend_from_slice(now);
        data = rest;
        if buf.len() == CHUNK {
            sink.full()?;
        }
    }
    Ok(n)
}

/// Cuts what is written to it into `CHUNK`-byte chunks and sends each to a compressor, in
/// turn, with the place of its result in the writer's queue.
/// A compressed block: its uncompressed length and its bytes.
type Block = (usize, Vec<u8>);
/// A chunk to compress and where to send its block.
type Job = (Vec<u8>, SyncSender<Block>);

struct ChunkSink {
    buf: Vec<u8>,
    next: usize,
    inputs: Vec<SyncSender<Job>>,
    order: SyncSender<std::sync::mpsc::Receiver<Block>>,
}

impl ChunkSink {
    fn send_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let raw = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        let stopped = || std::io::Error::other("the image's writer stopped");
        self.order.send(result).map_err(|_| stopped())?;
        let input = self.inputs.get(self.next % self.inputs.len().max(1));
        self.next += 1;
        input
            .ok_or_else(stopped)?
            .send((raw, reply))
            .map_err(|_| stopped())
    }
}

impl Chunked for ChunkSink {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn full(&mut self) -> std::io::Result<()> {
        self.send_chunk()
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        write_chunked(self, data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        assert_eq!(decompress_prefix(&packed, 10, false).unwrap(), body[..10]);
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

    /// The calling thread's path (a small hint) writes the same blocks as the threaded one,
    /// and both stop at the writer's first error.
    #[test]
    fn streams_the_same_blocks_here_and_on_threads() {
        let body: Vec<u8> = (0..(CHUNK * 2 + 777)).map(|i| (i % 253) as u8).collect();
        let stream = |hint: usize, fail_at: Option<usize>| {
            let mut out = Vec::new();
            let mut calls = 0;
            let r = stream_blocks(hint, |w| w.write_all(&body), &mut |b| {
                calls += 1;
                if Some(calls) == fail_at {
                    return Err(crate::Error::InvalidArgument("disk full".into()));
                }
                out.extend_from_slice(b);
                Ok(())
            });
            (r.is_ok(), out)
        };
        let (ok_here, here) = stream(0, None);
        let (ok_threads, threads) = stream(usize::MAX, None);
        assert!(ok_here && ok_threads);
        assert_eq!(here, threads);
        assert_eq!(decompress_blocks(&here).unwrap(), body);
        assert_eq!(blocks(&here).unwrap().1.len(), 3);
        for hint in [0, usize::MAX] {
            let (ok, out) = stream(hint, Some(3));
            assert!(!ok, "hint {hint}: the writer's error was lost");
            assert!(out.len() < here.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decompress(&b);
            let _ = decompress_prefix(&b, 9, false);
            let _ = decompress_prefix(&b, 9, true);
            let _ = decompress_blocks(&b);
        }
    }
}
