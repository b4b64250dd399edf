//! Snapshot files: a state machine's rows streamed from a read snapshot into one checksummed
//! file, and read back row by row.
//!
//! Layout (integers little-endian): the magic `SLRSNAP1`; a `u32` length and the snapshot's
//! metadata as JSON; each row as a tag byte 1, a `u32` key length, the key, a `u32` value
//! length, the value; then a tag byte 0, the row count as `u64`, and the CRC-32 of every byte
//! before it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use openraft::{BasicNode, SnapshotMeta};

use crate::NodeId;
use crate::error::Error;

/// A row: key and value.
pub(crate) type Row = (Vec<u8>, Vec<u8>);

const MAGIC: &[u8; 8] = b"SLRSNAP1";
/// Largest metadata, key or value a snapshot file may hold.
const MAX_FIELD: u32 = 64 << 20;

/// The metadata of a snapshot of this crate's type config.
pub(crate) type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The name of the current snapshot in a snapshot directory.
pub(crate) fn current_path(dir: &Path) -> PathBuf {
    dir.join("current.snap")
}

/// A new temporary file name in `dir`.
pub(crate) fn temp_path(dir: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!("{what}-{nanos}.tmp"))
}

/// Removes files left by an interrupted build or install.
pub(crate) fn remove_temps(dir: &Path) -> Result<(), Error> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// Fsyncs a directory, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct CrcReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

fn put_field(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&l| l <= MAX_FIELD)
        .ok_or_else(|| std::io::Error::other("field over the snapshot's 64 MiB limit"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)
}

/// Writes a snapshot file at `path` (created; fsynced before returning) from `meta` and the
/// rows, streamed. Returns the number of rows.
pub(crate) fn write(
    path: &Path,
    meta: &Meta,
    rows: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<u64, Error> {
    let io = |e| Error::io(format!("writing snapshot {}", path.display()), e);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let meta_json = serde_json::to_vec(meta).map_err(|e| Error::corrupt("snapshot meta", e))?;
    w.write_all(MAGIC).map_err(io)?;
    put_field(&mut w, &meta_json).map_err(io)?;
    let mut count = 0u64;
    for (k, v) in rows {
        w.write_all(&[1]).map_err(io)?;
        put_field(&mut w, &k).map_err(io)?;
        put_field(&mut w, &v).map_err(io)?;
        count += 1;
    }
    w.write_all(&[0]).map_err(io)?;
    w.write_all(&count.to_le_bytes()).map_err(io)?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(count)
}

/// A snapshot file being read: its metadata, then its rows.
pub(crate) struct Reader<R: Read> {
    r: CrcReader<R>,
    what: String,
    rows: u64,
    done: bool,
}

fn get_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl<R: Read> Reader<R> {
    /// Reads the header of the snapshot `what` from `r`: its metadata.
    pub(crate) fn new(r: R, what: impl Into<String>) -> Result<(Self, Meta), Error> {
        let mut reader = Reader {
            r: CrcReader {
                inner: r,
                crc: crc32fast::Hasher::new(),
            },
            what: what.into(),
            rows: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.r.read_exact(&mut magic).map_err(|e| reader.bad(e))?;
        if &magic != MAGIC {
            return Err(reader.bad("not a snapshot file (bad magic)"));
        }
        let meta = reader.field()?;
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| reader.bad(e))?;
        Ok((reader, meta))
    }

    fn bad(&self, detail: impl std::fmt::Display) -> Error {
        Error::corrupt(format!("snapshot {}", self.what), detail)
    }

    fn field(&mut self) -> Result<Vec<u8>, Error> {
        let len = get_u32(&mut self.r).map_err(|e| self.bad(e))?;
        if len > MAX_FIELD {
            return Err(self.bad(format!("field of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.r.read_exact(&mut buf).map_err(|e| self.bad(e))?;
        Ok(buf)
    }

    /// The next row, or `None` after the last one once the count and checksum are verified.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row>, Error> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.r.read_exact(&mut tag).map_err(|e| self.bad(e))?;
        match tag[0] {
            1 => {
                let k = self.field()?;
                let v = self.field()?;
                self.rows += 1;
                Ok(Some((k, v)))
            }
            0 => {
                let mut count = [0u8; 8];
                self.r.read_exact(&mut count).map_err(|e| self.bad(e))?;
                let expected = self.r.crc.clone().finalize();
                let mut crc = [0u8; 4];
                self.r.inner.read_exact(&mut crc).map_err(|e| self.bad(e))?;
                if u32::from_le_bytes(crc) != expected {
                    return Err(self.bad("checksum mismatch"));
                }
                if u64::from_le_bytes(count) != self.rows {
                    return Err(self.bad("row count mismatch"));
                }
                self.done = true;
                Ok(None)
            }
            t => Err(self.bad(format!("bad row tag {t}"))),
        }
    }
}

/// Opens the snapshot file at `path` for reading.
pub(crate) fn open(path: &Path) -> Result<(Reader<BufReader<File>>, Meta), Error> {
    let file = File::open(path)
        .map_err(|e| Error::io(format!("opening snapshot {}", path.display()), e))?;
    Reader::new(
        BufReader::with_capacity(1 << 20, file),
        path.display().to_string(),
    )
}

/// Checks a whole snapshot file: every row, the count and the checksum. Returns its
/// metadata and row count.
pub(crate) fn verify(path: &Path) -> Result<(Meta, u64), Error> {
    let (mut r, meta) = open(path)?;
    while r.next_row()?.is_some() {}
    Ok((meta, r.rows))
}
