//! Bodies of the fuzz targets in `fuzz/` (cargo-fuzz), kept in the crate so that
//! `cargo test --release --all-features --test fuzz_corpus` runs them too, over their seed
//! corpora and generated inputs, without the nightly toolchain. Compiled only with the
//! `internals` feature; not part of the stable API.
//!
//! Every body takes arbitrary bytes. Bytes from disk are hostile: no input may make the library
//! panic, hang or allocate without bound, and a record that fails its checksum is never
//! returned. A body panics only through an `assert!` on a real invariant of the library (or
//! through a panic inside the library), which is what the fuzzer looks for.
//!
//! - [`frame_decode`]: the frame decoder on a raw file image, and on valid logs with damage.
//! - [`open_directory`]: opening a store directory made of arbitrary (and synthesized) files.
//! - [`restore_mutated`]: restoring a valid store whose segment files were damaged.
//! - [`store_ops`]: operation sequences (transactions, syncs, compactions, reopens, crashes,
//!   rewinds) checked against a model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use crate::backend::{Backend, CrashMode, ReadAt, SimBackend};
use crate::epoch::{
    Clock, CompactionPolicy, Durability, EpochLog, EpochReader, LogTail, Options, RecoveryMode,
    Retention, Updates,
};
use crate::frame::{
    EntryPos, FILE_HEADER_LEN, LogOptions, LogReader, LogWriter, MAX_ENTRY_LEN, RECORD_HEADER_LEN,
    SYNC_MARK_LEN, TailPolicy,
};
use crate::{
    CommitPos, Error, Follower, FollowerOptions, Readable, Snapshot, Store, StoreOptions, Table,
    TableDef,
};

// ---------------------------------------------------------------------------------------------
// Input decoding

/// Reads fuzzer bytes as a stream of choices; past the end every read is 0, so any input is
/// a complete program.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value below `n` (0 when `n` is 0), using as few bytes as `n` needs.
    fn below(&mut self, n: u64) -> u64 {
        match n {
            0 | 1 => 0,
            2..=256 => u64::from(self.u8()) % n,
            257..=65_536 => u64::from(self.u16()) % n,
            _ => self.u64() % n,
        }
    }

    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// A u64 field of a synthesized structure: mostly small, sometimes extreme, so arithmetic on
/// hostile values is reached.
fn field(inp: &mut Input<'_>) -> u64 {
    match inp.below(16) {
        0 => u64::MAX - inp.below(4),
        1 => inp.u64(),
        2 => 1u64 << inp.below(64),
        _ => inp.below(8),
    }
}

/// Overwrites one byte of `bytes` (a light mutation of a synthesized structure).
fn tweak(bytes: &mut [u8], inp: &mut Input<'_>) {
    let at = inp.index(bytes.len());
    let v = inp.u8();
    if let Some(b) = bytes.get_mut(at) {
        *b = v;
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

const LOG_PATH: &str = "/fuzz.log";
const DIR: &str = "/store";
const MODES: [RecoveryMode; 3] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::Strict,
    RecoveryMode::Salvage,
];
/// The smallest entry on disk: a record header and the sync mark.
const MIN_ENTRY: u64 = (RECORD_HEADER_LEN + SYNC_MARK_LEN) as u64;
/// Frame-header tag of segment files (FORMAT.md §11.1).
const SEGMENT_TAG: u32 = 1;

fn dir() -> &'static Path {
    Path::new(DIR)
}

/// A fixed clock, so bodies do not depend on the time.
fn fixed_clock() -> Clock {
    Clock::new(|| UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// The names and contents of the files directly in `DIR`.
fn dir_files(be: &SimBackend) -> Vec<(String, Vec<u8>)> {
    let names = Backend::list(be, dir()).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|n| {
            let bytes = be.file_bytes(&dir().join(&n))?;
            Some((n, bytes))
        })
        .collect()
}

/// A fresh simulated machine whose `DIR` holds `files` (durably).
fn backend_with(files: &[(String, Vec<u8>)], seed: u64) -> SimBackend {
    let be = SimBackend::new(seed);
    let _ = Backend::create_dir_all(&be, dir());
    for (name, bytes) in files {
        be.set_file_bytes(&dir().join(name), bytes);
    }
    be
}

/// Total bytes in `DIR`: an upper bound on the work any reader of it may do.
fn dir_bytes(be: &SimBackend) -> u64 {
    dir_files(be).iter().map(|(_, b)| b.len() as u64).sum()
}

/// Iterates an epoch's updates to the end. Every update is a distinct entry of at least
/// `MIN_ENTRY` bytes, so the count is bounded by the bytes in the directory.
fn drain(be: &SimBackend, updates: Updates) {
    let bound = dir_bytes(be) / MIN_ENTRY + 16;
    let mut n = 0u64;
    for _ in updates {
        n += 1;
        assert!(
            n <= bound,
            "an epoch's updates did not end after {n} items ({bound} possible)"
        );
    }
}

/// The number of a segment file name (`{seq:016x}.seg`), if it is one.
fn segment_number(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)?
        .try_into()
        .ok()
        .map(u16::from_le_bytes)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

// ---------------------------------------------------------------------------------------------
// Target 1: the frame decoder

/// Treats `data` as a whole log file: reads every entry forward with resync on corruption, in
/// strict and non-strict mode, and walks backwards with `last_entry_before` from the file
/// length and smaller limits. Every entry returned is re-checked against FORMAT.md §3–§5.1 by
/// an independent decoder (a record failing its checksum is never returned). Then builds a
/// valid log (1 KiB blocks) from choices in `data`, damages it (bit flips, overwrites,
/// truncation, zeroing, garbage), and checks that every entry read from it is one that was
/// written at the same position, unless it lies on damaged bytes that happen to form a valid
/// record; and that reopening it for append cuts only the tail and keeps the cut bytes.
pub fn frame_decode(data: &[u8]) {
    decode_image(data);
    decode_damaged_log(data);
}

/// Re-reads the entry at `pos` by the rules of FORMAT.md §3–§5.1 alone (no library code), and
/// returns its payload.
fn decode_entry_independently(
    file: &[u8],
    block: u64,
    file_id: u64,
    pos: EntryPos,
) -> Result<Vec<u8>, String> {
    const FULL: u8 = 1;
    const FIRST: u8 = 2;
    const MIDDLE: u8 = 3;
    const LAST: u8 = 4;
    if pos.start < FILE_HEADER_LEN as u64 {
        return Err("entry inside the file header".into());
    }
    let mut at = pos.start;
    let mut body = Vec::new();
    let mut first = true;
    loop {
        let start = usize::try_from(at).map_err(|e| e.to_string())?;
        let head = file
            .get(start..start + RECORD_HEADER_LEN)
            .ok_or_else(|| format!("record header at {at} past the end"))?;
        let (Some(crc), Some(&kind), Some(len), Some(back)) =
            (le32(head, 0), head.get(4), le16(head, 5), le32(head, 7))
        else {
            return Err("short record header".into());
        };
        let len = usize::from(len);
        let back = u64::from(back);
        if len == 0 {
            return Err(format!("empty record at {at}"));
        }
        let block_end = (at / block + 1) * block;
        let rec_end = at + (RECORD_HEADER_LEN + len) as u64;
        if rec_end > block_end {
            return Err(format!("record at {at} crosses its block"));
        }
        let rec = file
            .get(start..start + RECORD_HEADER_LEN + len)
            .ok_or_else(|| format!("record at {at} past the end"))?;
        let mut h = crc32fast::Hasher::new();
        h.update(&file_id.to_le_bytes());
        h.update(rec.get(4..).unwrap_or_default());
        if h.finalize() != crc {
            return Err(format!("checksum mismatch in the record at {at}"));
        }
        let in_order = match kind {
            FULL | FIRST => first && back == 0,
            MIDDLE | LAST => !first && at % block == 0 && back == at - pos.start,
            _ => false,
        };
        if !in_order {
            return Err(format!("record of type {kind} at {at} out of sequence"));
        }
        if matches!(kind, FIRST | MIDDLE) && rec_end != block_end {
            return Err(format!(
                "record of type {kind} at {at} does not fill its block"
            ));
        }
        body.extend_from_slice(rec.get(RECORD_HEADER_LEN..).unwrap_or_default());
        if body.len() as u64 > MAX_ENTRY_LEN + SYNC_MARK_LEN as u64 {
            return Err("entry too large".into());
        }
        at = rec_end;
        first = false;
        if matches!(kind, FULL | LAST) {
            break;
        }
    }
    if at != pos.end {
        return Err(format!("entry ends at {at}, not at {}", pos.end));
    }
    let mark = le64(&body, 0).ok_or("body shorter than its sync mark")?;
    if mark > pos.start {
        return Err(format!(
            "sync mark {mark} past the entry start {}",
            pos.start
        ));
    }
    Ok(body.get(SYNC_MARK_LEN..).unwrap_or_default().to_vec())
}

type Entries = Vec<(EntryPos, Vec<u8>)>;

/// Reads every entry of the file image `bytes` forward, resyncing past corruption; `None` if
/// the header is refused. Checks that entries come in file order, that each is complete and
/// valid (independently re-decoded), and that reading ends.
fn read_all(bytes: &[u8], strict: bool) -> Option<Entries> {
    let src: Arc<dyn ReadAt> = Arc::new(bytes.to_vec());
    let mut r = LogReader::new(src, LOG_PATH).ok()?;
    r.set_strict(strict);
    let block = u64::from(r.header().block_size);
    let file_id = r.header().file_id;
    let len = bytes.len() as u64;
    let mut out = Vec::new();
    let mut floor = FILE_HEADER_LEN as u64;
    // Each step returns an entry (at least MIN_ENTRY bytes, in file order) or skips damage up
    // to the next valid entry.
    let steps = 2 * (len / MIN_ENTRY) + 8;
    for _ in 0..steps {
        match r.next_entry() {
            Ok(Some(e)) => {
                let pos = e.pos;
                assert!(
                    pos.start >= floor && pos.start < pos.end && pos.end <= len,
                    "entry at {pos:?} out of order (expected at or after {floor}, file of {len})"
                );
                match decode_entry_independently(bytes, block, file_id, pos) {
                    Ok(p) => assert!(
                        p == e.payload,
                        "entry at {pos:?}: the reader returned other bytes than the records hold"
                    ),
                    Err(why) => panic!("the reader returned an invalid entry at {pos:?}: {why}"),
                }
                floor = pos.end;
                out.push((pos, e.payload.to_vec()));
            }
            Ok(None) => return Some(out),
            Err(Error::Corrupt { .. }) => match r.resync() {
                Ok(Some(s)) => {
                    assert!(
                        s.from >= floor && s.to > s.from,
                        "resync from {} to {} makes no progress (entries end at {floor})",
                        s.from,
                        s.to
                    );
                    floor = s.to;
                }
                // Damage at the end in strict mode: nothing to skip, reading is over.
                Ok(None) | Err(_) => return Some(out),
            },
            Err(_) => return Some(out),
        }
    }
    panic!("reading a {len}-byte log did not end after {steps} steps");
}

/// Walks backwards with `last_entry_before` from `limit`; checks each entry found is complete
/// and valid, ends at or before the limit, and reads forward as the same entry.
fn walk_back(bytes: &[u8], limit: u64) -> Vec<EntryPos> {
    let src: Arc<dyn ReadAt> = Arc::new(bytes.to_vec());
    let Ok(mut r) = LogReader::new(src, LOG_PATH) else {
        return Vec::new();
    };
    let block = u64::from(r.header().block_size);
    let file_id = r.header().file_id;
    let mut out = Vec::new();
    let mut lim = limit;
    let steps = bytes.len() as u64 / MIN_ENTRY + 2;
    for _ in 0..steps {
        match r.last_entry_before(lim) {
            Ok(Some(pos)) => {
                assert!(
                    pos.start >= FILE_HEADER_LEN as u64 && pos.start < pos.end && pos.end <= lim,
                    "last_entry_before({lim}) returned {pos:?}"
                );
                if let Err(why) = decode_entry_independently(bytes, block, file_id, pos) {
                    panic!("last_entry_before({lim}) returned an invalid entry {pos:?}: {why}");
                }
                r.seek(pos.start);
                match r.next_entry() {
                    Ok(Some(e)) => assert_eq!(
                        e.pos, pos,
                        "last_entry_before({lim}) and reading forward disagree"
                    ),
                    other => panic!(
                        "last_entry_before({lim}) returned {pos:?}, reading there gives {:?}",
                        other.map(|o| o.map(|e| e.pos))
                    ),
                }
                out.push(pos);
                lim = pos.start;
            }
            Ok(None) | Err(_) => return out,
        }
    }
    panic!("the backward walk from {limit} did not end after {steps} entries");
}

/// Limits for the backward scan: the file length and some smaller ones.
fn limits(len: u64, extra: u64) -> [u64; 5] {
    [
        len,
        len.saturating_sub(1),
        len / 2,
        extra % (len + 1),
        (FILE_HEADER_LEN as u64 + MIN_ENTRY).min(len),
    ]
}

fn decode_image(bytes: &[u8]) {
    for strict in [false, true] {
        if read_all(bytes, strict).is_none() {
            return;
        }
    }
    let extra = le32(bytes, 0).map_or(0, u64::from);
    for limit in limits(bytes.len() as u64, extra) {
        walk_back(bytes, limit);
    }
}

/// Byte ranges that were overwritten or added by damage (where a valid record may have been
/// forged on purpose: the fuzzer can learn checksums).
type Touched = Vec<(u64, u64)>;

fn on_touched(pos: EntryPos, touched: &Touched) -> bool {
    touched
        .iter()
        .any(|&(from, to)| from < pos.end && pos.start < to)
}

fn decode_damaged_log(data: &[u8]) {
    let mut inp = Input::new(data);
    let path = Path::new(LOG_PATH);
    let be = SimBackend::new(0);
    let options = LogOptions {
        file_id: inp.u64(),
        block_size: 1024,
        tag: inp.u32(),
    };
    let mut w = LogWriter::create(&be, path, &options).expect("creating a log on the simulator");
    if inp.bool() {
        w.set_write_buffer(0);
    }
    let mut written: Entries = Vec::new();
    for i in 0..1 + inp.below(10) {
        let len = match inp.below(4) {
            0 => inp.below(16),
            1 => inp.below(256),
            2 => inp.below(1100),
            _ => 900 + inp.below(2300),
        };
        let salt = inp.u8() ^ (i as u8);
        let payload: Vec<u8> = (0..len)
            .map(|j| (j as u8).wrapping_mul(31) ^ salt)
            .collect();
        let pos = w.append(&payload).expect("append on the simulator");
        written.push((pos, payload));
        if inp.below(3) == 0 {
            w.sync().expect("sync on the simulator");
        }
    }
    drop(w);
    let clean = be.file_bytes(path).expect("the log exists");

    // The undamaged log reads back exactly, forward and backward.
    for strict in [false, true] {
        let got = read_all(&clean, strict).expect("a valid log's header is accepted");
        assert!(got == written, "a valid log read back differently");
    }
    let back = walk_back(&clean, clean.len() as u64);
    let expected: Vec<EntryPos> = written.iter().rev().map(|(p, _)| *p).collect();
    assert_eq!(
        back, expected,
        "the backward walk of a valid log missed entries"
    );

    let (damaged, touched) = damage(&clean, &mut inp);
    let by_start: HashMap<u64, (u64, &[u8])> = written
        .iter()
        .map(|(p, b)| (p.start, (p.end, b.as_slice())))
        .collect();
    let was_written = |pos: EntryPos, payload: &[u8]| {
        by_start
            .get(&pos.start)
            .is_some_and(|&(end, p)| end == pos.end && p == payload)
    };
    for strict in [false, true] {
        for (pos, payload) in read_all(&damaged, strict).unwrap_or_default() {
            assert!(
                was_written(pos, &payload) || on_touched(pos, &touched),
                "the damaged log returned an entry at {pos:?} that was never written there"
            );
        }
    }
    let extra = inp.u32();
    for limit in limits(damaged.len() as u64, u64::from(extra)) {
        for pos in walk_back(&damaged, limit) {
            assert!(
                by_start
                    .get(&pos.start)
                    .is_some_and(|&(end, _)| end == pos.end)
                    || on_touched(pos, &touched),
                "the backward scan of the damaged log found an entry {pos:?} never written"
            );
        }
    }
    reopen_for_append(&damaged, &touched, &was_written, &mut inp);
}

/// Damages `clean` in 0–4 ways; returns the damaged image and the byte ranges overwritten or
/// added (truncation and zeroing cannot forge a record).
fn damage(clean: &[u8], inp: &mut Input<'_>) -> (Vec<u8>, Touched) {
    let mut bytes = clean.to_vec();
    let mut touched = Vec::new();
    for _ in 0..inp.below(5) {
        let len = bytes.len();
        // Positions near the end (where torn writes happen) are as likely as any other.
        let at = if inp.bool() {
            len.saturating_sub(1 + inp.index(256))
        } else {
            inp.index(len.max(1))
        };
        match inp.below(6) {
            0 => {
                let bit = 1u8 << inp.below(8);
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= bit;
                    touched.push((at as u64, at as u64 + 1));
                }
            }
            1 => {
                let v = inp.u8();
                if let Some(b) = bytes.get_mut(at) {
                    *b = v;
                    touched.push((at as u64, at as u64 + 1));
                }
            }
            2 => bytes.truncate(at),
            3 => {
                let n = 1 + inp.index(64);
                if let Some(r) = bytes.get_mut(at..(at + n).min(len)) {
                    r.fill(0);
                }
            }
            4 => {
                let n = 1 + inp.index(32);
                let src = inp.bytes(n);
                for (i, &v) in src.iter().enumerate() {
                    if let Some(b) = bytes.get_mut(at + i) {
                        *b = v;
                    }
                }
                touched.push((at as u64, (at + src.len()) as u64));
            }
            _ => {
                let n = inp.index(64);
                let garbage = inp.bytes(n);
                let zeros = inp.index(256);
                touched.push((len as u64, (len + garbage.len()) as u64));
                bytes.extend_from_slice(garbage);
                bytes.resize(bytes.len() + zeros, 0);
            }
        }
    }
    (bytes, touched)
}

/// Opens the damaged log for append with a policy from the input. A refusal leaves the file
/// untouched; otherwise only a tail is cut (and saved aside), and an entry appended after the
/// reopen is the file's last entry and is read back.
fn reopen_for_append(
    damaged: &[u8],
    touched: &Touched,
    was_written: &dyn Fn(EntryPos, &[u8]) -> bool,
    inp: &mut Input<'_>,
) {
    let path = Path::new(LOG_PATH);
    let be = SimBackend::new(1);
    be.set_file_bytes(path, damaged);
    let policy = match inp.below(3) {
        0 => TailPolicy::Strict,
        1 => TailPolicy::TolerateTorn,
        _ => TailPolicy::CutAll,
    };
    let (mut w, cut) = match LogWriter::open(&be, path, policy) {
        Ok(x) => x,
        Err(_) => {
            assert!(
                be.file_bytes(path).as_deref() == Some(damaged),
                "refusing to open a log for append changed it"
            );
            return;
        }
    };
    let kept = be.file_bytes(path).unwrap_or_default();
    assert_eq!(
        kept.len() as u64,
        w.end(),
        "the writer's end is not the file's end"
    );
    assert!(
        damaged.get(..kept.len()) == Some(kept.as_slice()),
        "opening for append changed bytes it kept"
    );
    match &cut {
        None => assert_eq!(kept.len(), damaged.len(), "bytes were cut without a report"),
        Some(c) => {
            assert_eq!(
                c.offset,
                w.end(),
                "the cut does not start at the end of the data"
            );
            assert_eq!(
                c.offset + c.len,
                damaged.len() as u64,
                "the cut length is wrong"
            );
            let rest = damaged.get(kept.len()..).unwrap_or_default();
            match &c.saved_to {
                Some(side) => assert!(
                    be.file_bytes(side).as_deref() == Some(rest),
                    "the bytes saved aside are not the bytes cut"
                ),
                None => assert!(
                    rest.iter().all(|&b| b == 0),
                    "non-zero bytes were cut without being saved aside"
                ),
            }
            assert!(
                policy != TailPolicy::Strict || c.zeroed,
                "the strict policy cut non-zero bytes"
            );
            assert!(
                policy == TailPolicy::CutAll || !c.corrupt,
                "proven corruption was cut by {policy:?}"
            );
        }
    }
    let fresh = b"appended after reopening".to_vec();
    let pos = w.append(&fresh).expect("append on the simulator");
    w.sync().expect("sync on the simulator");
    drop(w);
    let after = be.file_bytes(path).unwrap_or_default();
    let src: Arc<dyn ReadAt> = Arc::new(after.clone());
    let last = LogReader::new(src, LOG_PATH)
        .and_then(|mut r| r.last_entry_before(after.len() as u64))
        .ok()
        .flatten();
    assert_eq!(
        last,
        Some(pos),
        "the entry appended after reopening is not the last"
    );
    let mut seen = false;
    for (p, payload) in read_all(&after, false).unwrap_or_default() {
        if p == pos {
            assert!(
                payload == fresh,
                "the appended entry reads back differently"
            );
            seen = true;
        } else {
            assert!(
                was_written(p, &payload) || on_touched(p, touched),
                "after reopening, an entry at {p:?} was never written"
            );
        }
    }
    assert!(
        seen,
        "the entry appended after reopening is not read forward"
    );
}

// ---------------------------------------------------------------------------------------------
// Target 2: opening a directory of arbitrary files

/// Names a store directory may hold (FORMAT.md §11.1), and junk.
const NAMES: [&str; 16] = [
    "0000000000000001.seg",
    "0000000000000002.seg",
    "0000000000000003.seg",
    "0000000000000004.seg",
    "0000000000000003.seg.tmp",
    "REWIND",
    "REWIND.tmp",
    "LOCK",
    "0000000000000002.seg.broken",
    "0000000000000001.seg.rewound",
    "0000000000000004.seg.0000000000000020.broken",
    "notes.txt",
    "SYNCFAIL",
    "FALLBACK",
    "RETIRE",
    "MANIFEST",
];

/// The intent files and the manifest (FORMAT.md §11.13): name, magic, field count.
const INTENTS: [(&str, &[u8; 8], usize); 4] = [
    ("SYNCFAIL", b"SLSYNCFL", 2),
    ("FALLBACK", b"SLFALLBK", 2),
    ("RETIRE", b"SLRETIRE", 1),
    ("MANIFEST", b"SLMANIFS", 3),
];

const SUFFIXES: [&str; 6] = [
    ".seg",
    ".seg",
    ".seg.tmp",
    ".seg.broken",
    ".seg.rewound",
    "",
];

/// Splits `data` into up to 6 files in a store directory: arbitrary bytes, segments
/// synthesized from choices in `data` (valid frames holding epoch entries with hostile
/// fields, sometimes damaged), and rewind intents with a valid checksum. Then opens it with
/// `EpochLog::open` and `Store::open_with` in every recovery mode (fall-back chosen by
/// `data`), and with the read-only `EpochReader` (which must change nothing). Errors are fine;
/// on success every update, the epoch list and each listed epoch are read, and a few writes
/// (append, snapshot, rewind, close, reopen) are tried.
pub fn open_directory(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let files = synth_directory(&mut inp);
    for mode in MODES {
        read_only_view(&backend_with(&files, 0), mode);
    }
    for (i, mode) in MODES.into_iter().enumerate() {
        let options = Options {
            recovery: mode,
            fall_back: flags & (1 << i) != 0,
            block_size: 1024,
            segment_bytes: 4096,
            clock: fixed_clock(),
            ..Options::default()
        };
        exercise_epoch_log(&backend_with(&files, 1), &options, flags >> 3);
        exercise_store(&backend_with(&files, 2), &options, flags);
    }
}

fn synth_directory(inp: &mut Input<'_>) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for _ in 0..1 + inp.below(6) {
        let pick = inp.index(NAMES.len() + 2);
        let name = match NAMES.get(pick) {
            Some(n) => (*n).to_string(),
            None => {
                let seq = field(inp);
                let suffix = SUFFIXES.get(inp.index(SUFFIXES.len())).unwrap_or(&"");
                format!("{seq:016x}{suffix}")
            }
        };
        let bytes = match inp.below(8) {
            0 | 1 => {
                let n = inp.index(2048);
                inp.bytes(n).to_vec()
            }
            2 => rewind_file(inp),
            3 => intent_file(inp, &name),
            _ => synth_segment(inp),
        };
        files.push((name, bytes));
    }
    files
}

/// A rewind intent (`REWIND`, FORMAT.md §11.8) with hostile fields and a valid checksum.
fn rewind_file(inp: &mut Input<'_>) -> Vec<u8> {
    record_file(inp, b"SLREWIND", 4)
}

/// `magic ‖ n hostile u64 fields ‖ CRC-32`, the layout of the small record files, sometimes
/// damaged or cut.
fn record_file(inp: &mut Input<'_>, magic: &[u8; 8], n: usize) -> Vec<u8> {
    let mut b = magic.to_vec();
    for _ in 0..n {
        b.extend_from_slice(&field(inp).to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    match inp.below(8) {
        0 => tweak(&mut b, inp),
        1 => b.truncate(inp.index(b.len())),
        _ => {}
    }
    b
}

/// An intent file or manifest (FORMAT.md §11.13) with hostile fields and a valid checksum: of
/// the kind its name says, or any kind under another name.
fn intent_file(inp: &mut Input<'_>, name: &str) -> Vec<u8> {
    let (_, magic, n) = INTENTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .copied()
        .unwrap_or(INTENTS[inp.index(INTENTS.len())]);
    record_file(inp, magic, n)
}

/// A segment file: a valid frame header (usually with the segment tag) and epoch entries made
/// from choices, sometimes with a damaged tail.
fn synth_segment(inp: &mut Input<'_>) -> Vec<u8> {
    let be = SimBackend::new(0);
    let path = Path::new("/segment");
    let block_size = match inp.below(4) {
        0 => 2048,
        1 => 4096,
        _ => 1024,
    };
    let tag = if inp.below(16) == 0 {
        inp.u32()
    } else {
        SEGMENT_TAG
    };
    let options = LogOptions {
        file_id: inp.u64(),
        block_size,
        tag,
    };
    let Ok(mut w) = LogWriter::create(&be, path, &options) else {
        return Vec::new();
    };
    for i in 0..inp.below(8) {
        let entry = epoch_entry(inp, i == 0);
        if w.append(&entry).is_err() || (inp.below(4) == 0 && w.sync().is_err()) {
            break;
        }
    }
    drop(w);
    let mut bytes = be.file_bytes(path).unwrap_or_default();
    match inp.below(8) {
        0 => bytes.truncate(inp.index(bytes.len() + 1)),
        1 => {
            let at = inp.index(bytes.len());
            let bit = 1u8 << inp.below(8);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= bit;
            }
        }
        2 => {
            let n = inp.index(64);
            bytes.extend_from_slice(inp.bytes(n));
        }
        3 => bytes.resize(bytes.len() + inp.index(1024), 0),
        _ => {}
    }
    bytes
}

/// Real store payloads (a state image and transactions of a `Table<u8, u32>` named "kv" and a
/// bytes table), taken once from a store on the simulator, for synthesized entries.
#[derive(Default)]
struct Samples {
    state: Vec<u8>,
    txs: Vec<Vec<u8>>,
}

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let be = SimBackend::new(7);
        let mut out = Samples::default();
        let options = StoreOptions {
            log: Options {
                clock: fixed_clock(),
                ..Options::default()
            },
            ..StoreOptions::default()
        };
        if let Ok(store) = Store::open_with(Arc::new(be.clone()), dir(), options) {
            if let Ok(kv) = store.table(TableDef::<u8, u32>::new("kv")) {
                let _ = store.write(|tx| {
                    tx.insert(&kv, &1, &10)?;
                    tx.insert(&kv, &2, &20)?;
                    Ok(())
                });
                let _ = store.write(|tx| tx.delete(&kv, &1).map(|_| ()));
            }
            if let Ok(raw) = store.bytes_table("raw") {
                let _ = store.write(|tx| tx.put_bytes(&raw, b"k", b"value"));
            }
            let _ = store.compact();
        }
        for (name, bytes) in dir_files(&be) {
            if segment_number(&name).is_none() {
                continue;
            }
            let src: Arc<dyn ReadAt> = Arc::new(bytes);
            let Ok(mut r) = LogReader::new(src, &name) else {
                continue;
            };
            while let Ok(Some(e)) = r.next_entry() {
                match e.payload.first() {
                    Some(1) => out
                        .txs
                        .push(e.payload.get(9..).unwrap_or_default().to_vec()),
                    Some(2) if e.payload.len() > 50 => {
                        out.state = e.payload.get(50..).unwrap_or_default().to_vec();
                    }
                    _ => {}
                }
            }
        }
        out
    })
}

/// An epoch-layer entry (FORMAT.md §11.2) with fields from choices.
fn epoch_entry(inp: &mut Input<'_>, first: bool) -> Vec<u8> {
    const UPDATE: u8 = 1;
    const SNAPSHOT: u8 = 2;
    const CONTINUE: u8 = 3;
    const SEAL: u8 = 4;
    const CLOSE: u8 = 5;
    let roll = inp.below(12);
    let kind = match (first, roll) {
        (true, 0..=6) => SNAPSHOT,
        (true, 7..=9) => CONTINUE,
        (_, 0..=5) => UPDATE,
        (_, 6) => SEAL,
        (_, 7) => CLOSE,
        (_, 8) => SNAPSHOT,
        (_, 9) => CONTINUE,
        (_, 10) => 0,
        _ => {
            let n = inp.index(64);
            return inp.bytes(n).to_vec();
        }
    };
    let mut b = vec![kind];
    b.extend_from_slice(&field(inp).to_le_bytes());
    match kind {
        SNAPSHOT => {
            for _ in 0..5 {
                b.extend_from_slice(&field(inp).to_le_bytes());
            }
            let flags = match inp.below(8) {
                0 => inp.u8(),
                1 => 0,
                2 => 1,
                _ => 3,
            };
            b.push(flags);
            if flags & 1 != 0 {
                match inp.below(4) {
                    0 => {}
                    1 => b.extend_from_slice(&samples().state),
                    2 => {
                        let mut s = samples().state.clone();
                        tweak(&mut s, inp);
                        b.extend_from_slice(&s);
                    }
                    _ => {
                        let n = inp.index(512);
                        b.extend_from_slice(inp.bytes(n));
                    }
                }
            }
        }
        CONTINUE => {
            for _ in 0..5 {
                b.extend_from_slice(&field(inp).to_le_bytes());
            }
        }
        UPDATE => {
            let txs = &samples().txs;
            match inp.below(5) {
                0 | 1 => {
                    if let Some(tx) = txs.get(inp.index(txs.len())) {
                        b.extend_from_slice(tx);
                    }
                }
                2 => {
                    if let Some(tx) = txs.get(inp.index(txs.len())) {
                        let mut tx = tx.clone();
                        tweak(&mut tx, inp);
                        b.extend_from_slice(&tx);
                    }
                }
                3 => {
                    // A large update: several records.
                    let n = 1000 + inp.index(3000);
                    b.extend((0..n).map(|j| j as u8));
                }
                _ => {
                    b.push(1);
                    let n = inp.index(64);
                    b.extend_from_slice(inp.bytes(n));
                }
            }
        }
        _ => {}
    }
    if inp.below(16) == 0 {
        b.truncate(inp.index(b.len() + 1));
    }
    b
}

/// The read-only reader: whatever it finds, it changes nothing.
fn read_only_view(be: &SimBackend, mode: RecoveryMode) {
    let before = dir_files(be);
    if let Ok(r) = EpochReader::open(Arc::new(be.clone()), dir(), mode) {
        if let Ok(restored) = r.restore() {
            drain(be, restored.updates);
        }
        for e in r.epochs().unwrap_or_default().iter().take(8) {
            if let Ok(restored) = r.read_epoch(e.id) {
                drain(be, restored.updates);
            }
        }
        let _ = r.checkpoints();
    }
    follow(be);
    assert!(
        dir_files(be) == before,
        "the read-only reader changed the directory"
    );
}

/// Follows the directory to its end (a tail must end on a directory nobody writes), and
/// opens a store follower on it, which must not panic either.
fn follow(be: &SimBackend) {
    if let Ok(mut tail) = LogTail::open(Arc::new(be.clone()), dir()) {
        let mut events = 0u32;
        while let Ok(Some(_)) = tail.next() {
            events += 1;
            assert!(
                events < 1_000_000,
                "a tail of a still directory does not end"
            );
        }
    }
    if let Ok(f) = Follower::open_with(Arc::new(be.clone()), dir(), FollowerOptions::default()) {
        let _ = f.poll();
        let _ = f.changes_since(CommitPos { epoch: 0, seq: 0 }, 64);
    }
}

fn exercise_epoch_log(be: &SimBackend, options: &Options, actions: u8) {
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    let Ok((log, restored)) = EpochLog::open(backend.clone(), dir(), options.clone()) else {
        return;
    };
    drain(be, restored.updates);
    let epochs = log.epochs().unwrap_or_default();
    for e in epochs.iter().take(8) {
        if let Ok(r) = log.read_epoch(e.id) {
            drain(be, r.updates);
        }
    }
    if actions & 1 != 0 {
        let _ = log.append(b"fuzz update", Durability::Strong);
    }
    if actions & 2 != 0 {
        let _ = log.snapshot(b"fuzz state");
    }
    if actions & 4 != 0 {
        if let Some(e) = epochs.last() {
            if let Ok(r) = log.truncate_to(e.id) {
                drain(be, r.updates);
            }
        }
    }
    if actions & 8 != 0 {
        let _ = log.append(b"buffered", Durability::Buffered);
        let _ = log.close();
    }
    drop(log);
    if let Ok((log, restored)) = EpochLog::open(backend, dir(), options.clone()) {
        drain(be, restored.updates);
        let _ = log.epochs();
    }
}

fn exercise_store(be: &SimBackend, options: &Options, flags: u8) {
    let store_options = StoreOptions {
        log: options.clone(),
        auto_compact: flags & 0x40 != 0,
        view: None,
    };
    let Ok(store) = Store::open_with(Arc::new(be.clone()), dir(), store_options) else {
        return;
    };
    let snap = store.read();
    for t in snap.tables() {
        if let Ok(rows) = snap.raw_rows(&t.name) {
            let _ = rows.count();
        }
    }
    if let Ok(epochs) = store.log().epochs() {
        for e in epochs.iter().take(8) {
            if let Ok(r) = store.log().read_epoch(e.id) {
                drain(be, r.updates);
            }
        }
    }
    if let Ok(kv) = store.table(TableDef::<u8, u32>::new("kv")) {
        let _ = store.read().list(&kv);
        let _ = store.write(|tx| tx.insert(&kv, &7, &7).map(|_| ()));
    }
    if flags & 0x80 != 0 {
        let _ = store.compact();
    }
    let _ = store.close();
}

// ---------------------------------------------------------------------------------------------
// Target 3: restoring a valid store with damaged bytes

/// The rows of the store's two tables: "kv" (`Table<u8, u32>`) and "raw" (bytes).
type StoreModel = (BTreeMap<u8, u32>, BTreeMap<Vec<u8>, Vec<u8>>);

/// Builds a valid store on the simulator (transactions of sizes from `data`, strong and
/// buffered, a compaction or two, segments rotating at a few KiB), then damages its files in
/// 1–4 ways (bit flips, overwrites, truncation, zeroing, removal, junk files). Reopens it with
/// `EpochReader` and `Store::open_with` in every recovery mode; errors are fine and nothing may
/// panic. If no segment was damaged, every mode must open and hold exactly the state written.
/// Otherwise, in the default and strict modes, a store that opens holds one of the states
/// that were committed (damage may cut a tail, never invent or mix states).
pub fn restore_mutated(data: &[u8]) {
    let mut inp = Input::new(data);
    let seed = inp.u64();
    let options = Options {
        block_size: 1024,
        segment_bytes: 2048 + 1024 * inp.below(4),
        retention: Retention {
            keep_epochs: 2 + inp.index(2),
            keep_for: None,
        },
        clock: fixed_clock(),
        ..Options::default()
    };
    let be = SimBackend::new(seed);
    let history = build_store(&be, &options, &mut inp);
    let Some(last) = history.last() else {
        return;
    };
    let clean = dir_files(&be);
    let (files, hit) = damage_store(&clean, &mut inp);
    for mode in MODES {
        read_only_view(&backend_with(&files, seed), mode);
    }
    // A follower reads what restore reads: the state written, or (damaged) a committed one.
    let be = backend_with(&files, seed);
    match Follower::open_with(Arc::new(be), dir(), FollowerOptions::default()) {
        Ok(f) => match read_model(&f.read()) {
            Ok(m) if !hit => assert!(&m == last, "a follower of an undamaged store differs"),
            Ok(m) => assert!(
                history.contains(&m),
                "a follower of a damaged store holds a state that was never committed"
            ),
            Err(e) => assert!(hit, "a follower of an undamaged store cannot read: {e}"),
        },
        Err(e) => assert!(hit, "a follower of an undamaged store failed: {e}"),
    }
    for mode in MODES {
        let be = backend_with(&files, seed);
        let store_options = StoreOptions {
            log: Options {
                recovery: mode,
                ..options.clone()
            },
            auto_compact: false,
            view: None,
        };
        let store = match Store::open_with(Arc::new(be.clone()), dir(), store_options) {
            Ok(s) => s,
            Err(e) => {
                assert!(hit, "an undamaged store failed to open in {mode:?}: {e}");
                continue;
            }
        };
        let got = read_model(&store.read());
        if !hit {
            match &got {
                Ok(m) => assert!(
                    m == last,
                    "an undamaged store opened in {mode:?} holds another state than written"
                ),
                Err(e) => panic!("an undamaged store's rows do not decode in {mode:?}: {e}"),
            }
        } else if mode != RecoveryMode::Salvage {
            match &got {
                Ok(m) => assert!(
                    history.contains(m),
                    "a damaged store opened in {mode:?} holds a state that was never committed"
                ),
                Err(e) => panic!("a damaged store serves rows that do not decode ({mode:?}): {e}"),
            }
        }
        if let Ok(epochs) = store.log().epochs() {
            for e in epochs.iter().take(8) {
                if let Ok(r) = store.log().read_epoch(e.id) {
                    drain(&be, r.updates);
                }
            }
        }
        if let Ok(kv) = store.table(TableDef::<u8, u32>::new("kv")) {
            let _ = store.write(|tx| tx.insert(&kv, &200, &1).map(|_| ()));
        }
        let _ = store.close();
    }
}

fn read_model(snap: &Snapshot) -> crate::Result<StoreModel> {
    let kv = match snap.table_named::<u8, u32>("kv") {
        Ok(t) => snap.list(&t)?.into_iter().collect(),
        Err(Error::NotFound(_)) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    let raw = match snap.raw_rows("raw") {
        Ok(rows) => rows.map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        Err(Error::NotFound(_)) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok((kv, raw))
}

/// Writes a store; returns every state it went through, in order (the first is empty).
fn build_store(be: &SimBackend, options: &Options, inp: &mut Input<'_>) -> Vec<StoreModel> {
    let store_options = StoreOptions {
        log: options.clone(),
        auto_compact: false,
        view: None,
    };
    let store = Store::open_with(Arc::new(be.clone()), dir(), store_options)
        .expect("a new store opens on the simulator");
    let kv = store
        .table(TableDef::<u8, u32>::new("kv"))
        .expect("a table is created on the simulator");
    let raw = store
        .bytes_table("raw")
        .expect("a table is created on the simulator");
    let mut model = StoreModel::default();
    let mut history = vec![model.clone()];
    for phase in 0..2 + inp.below(2) {
        if phase > 0 {
            store.compact().expect("compaction on the simulator");
        }
        for _ in 0..inp.below(7) {
            let strong = inp.bool();
            let mut writes = Vec::new();
            for _ in 0..1 + inp.below(3) {
                let key = inp.below(16) as u8;
                let w = match inp.below(6) {
                    0 => Write::Delete(key),
                    1 => {
                        let n = inp.index(1500);
                        Write::Raw(key, (0..n).map(|j| (j as u8) ^ key).collect())
                    }
                    _ => Write::Put(key, u32::from(inp.u16())),
                };
                writes.push(w);
            }
            let durability = if strong {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            store
                .write_with(durability, |tx| {
                    for w in &writes {
                        match w {
                            Write::Put(k, v) => {
                                tx.insert(&kv, k, v)?;
                            }
                            Write::Delete(k) => match tx.delete(&kv, k) {
                                Ok(_) | Err(Error::NotFound(_)) => {}
                                Err(e) => return Err(e),
                            },
                            Write::Raw(k, v) => tx.put_bytes(&raw, &[*k], v)?,
                        }
                    }
                    Ok(())
                })
                .expect("a transaction on the simulator");
            for w in writes {
                match w {
                    Write::Put(k, v) => {
                        model.0.insert(k, v);
                    }
                    Write::Delete(k) => {
                        model.0.remove(&k);
                    }
                    Write::Raw(k, v) => {
                        model.1.insert(vec![k], v);
                    }
                }
            }
            history.push(model.clone());
        }
    }
    if inp.bool() {
        store.close().expect("close on the simulator");
    }
    history
}

enum Write {
    Put(u8, u32),
    Delete(u8),
    Raw(u8, Vec<u8>),
}

/// Damages a store directory in 1–4 ways; returns the files and whether a segment or the
/// manifest changed.
fn damage_store(
    clean: &[(String, Vec<u8>)],
    inp: &mut Input<'_>,
) -> (Vec<(String, Vec<u8>)>, bool) {
    let mut files: Vec<(String, Option<Vec<u8>>)> = clean
        .iter()
        .map(|(n, b)| (n.clone(), Some(b.clone())))
        .collect();
    for _ in 0..1 + inp.below(4) {
        let pick = inp.index(files.len() + 1);
        let Some((_, slot)) = files.get_mut(pick) else {
            // Junk beside the segments: never part of the store.
            let name = match inp.below(4) {
                0 => "0000000000000fff.seg.tmp",
                1 => "LOCK",
                2 => "0000000000000001.seg.0000000000000040.broken",
                _ => "notes.txt",
            };
            let n = inp.index(64);
            files.push((name.to_string(), Some(inp.bytes(n).to_vec())));
            continue;
        };
        let Some(bytes) = slot else {
            continue;
        };
        let len = bytes.len();
        let at = if inp.bool() {
            len.saturating_sub(1 + inp.index(128))
        } else {
            inp.index(len.max(1))
        };
        match inp.below(8) {
            0 | 1 => {
                let bit = 1u8 << inp.below(8);
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= bit;
                }
            }
            2 => tweak(bytes, inp),
            3 | 4 => bytes.truncate(at),
            5 => {
                let n = 1 + inp.index(600);
                if let Some(r) = bytes.get_mut(at..(at + n).min(len)) {
                    r.fill(0);
                }
            }
            6 => {
                let n = inp.index(64);
                bytes.extend_from_slice(inp.bytes(n));
            }
            _ => *slot = None,
        }
    }
    let hit = clean.iter().any(|(name, bytes)| {
        (segment_number(name).is_some() || name == "MANIFEST")
            && !files
                .iter()
                .any(|(n, b)| n == name && b.as_ref() == Some(bytes))
    });
    let files = files
        .into_iter()
        .filter_map(|(n, b)| Some((n, b?)))
        .collect();
    (files, hit)
}

// ---------------------------------------------------------------------------------------------
// Target 4: operation sequences against a model

type Kv = BTreeMap<u8, u32>;

#[derive(Debug, Clone)]
enum StoreOp {
    /// A transaction of puts (`Some`) and deletes (`None`).
    Tx {
        strong: bool,
        writes: Vec<(u8, Option<u32>)>,
    },
    Sync,
    Compact,
    /// Drop the store (after `close` if set) and open it again.
    Reopen {
        close: bool,
    },
    /// Power loss now.
    Crash(CrashMode),
    /// Power loss after `n` more operations of the simulator, wherever that falls.
    CrashAfter(u64, CrashMode),
    /// Rewind the log to a closed, retained epoch (picked by index) and reopen.
    Rewind(usize),
}

fn crash_mode(b: u8) -> CrashMode {
    match b % 4 {
        0 => CrashMode::LoseUnsynced,
        1 => CrashMode::KeepPrefix,
        2 => CrashMode::Sectors,
        _ => CrashMode::Any,
    }
}

fn decode_ops(inp: &mut Input<'_>) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    while !inp.is_empty() && ops.len() < 96 {
        let code = inp.u8();
        let op = match code % 16 {
            c @ (0..=7 | 14 | 15) => {
                let n = if c >= 14 {
                    4 + inp.below(8)
                } else {
                    1 + inp.below(3)
                };
                let writes = (0..n)
                    .map(|_| {
                        let k = inp.below(12) as u8;
                        let v = (inp.below(4) > 0).then(|| u32::from(inp.u16()));
                        (k, v)
                    })
                    .collect();
                StoreOp::Tx {
                    strong: c < 4 || c == 14,
                    writes,
                }
            }
            8 => StoreOp::Sync,
            9 => StoreOp::Compact,
            10 => StoreOp::Reopen {
                close: code & 0x10 != 0,
            },
            11 => StoreOp::Crash(crash_mode(code >> 4)),
            12 => StoreOp::CrashAfter(1 + inp.below(48), crash_mode(code >> 4)),
            _ => StoreOp::Rewind(inp.index(4)),
        };
        ops.push(op);
    }
    ops
}

/// Decodes `data` into up to 96 operations on a `Table<u8, u32>` with 12 keys (strong and
/// buffered transactions, sync, compaction, clean reopen, power loss now or after a number of
/// simulator operations in any crash mode, rewind to a retained older epoch through the store's
/// epoch log) and checks the store against a model after each: the published state equals the
/// model; a clean reopen loses nothing; after a power loss the store holds the model's state
/// after some transaction between the last acknowledged one (a strong commit, sync, compaction
/// or close returned) and the last one issued; a rewind restores the state the epoch ended
/// with. No operation fails unless the simulated machine crashed.
pub fn store_ops(data: &[u8]) {
    let mut inp = Input::new(data);
    let be = SimBackend::new(inp.u64());
    let options = StoreOptions {
        log: Options {
            block_size: 1024,
            segment_bytes: 2048 + 1024 * inp.below(3),
            retention: Retention {
                keep_epochs: 2 + inp.index(2),
                keep_for: None,
            },
            compaction: CompactionPolicy {
                update_ratio: 1.0 + inp.below(3) as f64,
                min_update_bytes: 512,
            },
            clock: fixed_clock(),
            ..Options::default()
        },
        auto_compact: inp.bool(),
        view: None,
    };
    let ops = decode_ops(&mut inp);
    let mut run = OpsRun::start(be, options);
    for op in ops {
        let flushes = matches!(
            op,
            StoreOp::Tx { strong: true, .. }
                | StoreOp::Sync
                | StoreOp::Compact
                | StoreOp::Rewind(_)
        );
        run.apply(op);
        run.follow(flushes);
    }
    run.apply(StoreOp::Reopen { close: true });
    run.apply(StoreOp::Crash(CrashMode::LoseUnsynced));
}

struct OpsRun {
    be: SimBackend,
    options: StoreOptions,
    store: Option<(Store, Table<u8, u32>)>,
    model: Kv,
    /// States the durable store may hold after a power loss: `history[acked..]`.
    history: Vec<Kv>,
    acked: usize,
    /// The state each closed epoch ended with.
    ends: BTreeMap<u64, Kv>,
    crash_mode: CrashMode,
    /// A follower of the directory, and the number of power losses when it was opened (a
    /// power loss ends it: it may have read writes the machine then lost).
    follower: Option<(Follower, u64)>,
    power_losses: u64,
}

impl OpsRun {
    fn start(be: SimBackend, options: StoreOptions) -> Self {
        let mut run = OpsRun {
            be,
            options,
            store: None,
            model: Kv::new(),
            history: vec![Kv::new()],
            acked: 0,
            ends: BTreeMap::new(),
            crash_mode: CrashMode::LoseUnsynced,
            follower: None,
            power_losses: 0,
        };
        match run.open() {
            Ok((store, kv)) => run.opened(store, kv, None),
            Err(e) => panic!("a new store failed to open on the simulator: {e}"),
        }
        run
    }

    fn open(&self) -> crate::Result<(Store, Table<u8, u32>)> {
        let store = Store::open_with(Arc::new(self.be.clone()), dir(), self.options.clone())?;
        let kv = store.table(TableDef::new("kv"))?;
        Ok((store, kv))
    }

    fn rows(store: &Store, kv: &Table<u8, u32>) -> Kv {
        match store.read().list(kv) {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => panic!("the store's own rows do not decode: {e}"),
        }
    }

    /// A store was opened: it must hold `expected` (when known) or, after a power loss, a
    /// state of `history[acked..]`. Everything it restored is durable (opening syncs it).
    fn opened(&mut self, store: Store, kv: Table<u8, u32>, expected: Option<&Kv>) {
        if self.be.crashed() {
            // The armed crash fired inside the open, on an operation whose failure it ignored.
            drop(store);
            self.recover();
            return;
        }
        let got = Self::rows(&store, &kv);
        match expected {
            Some(want) => assert!(
                &got == want,
                "after reopening, the store holds {got:?} instead of {want:?}"
            ),
            None => {
                let possible = self.history.get(self.acked..).unwrap_or_default();
                assert!(
                    possible.contains(&got),
                    "after a power loss the store holds {got:?}, which is not a state between \
                     the last acknowledged and the last issued: {possible:?}"
                );
            }
        }
        // Closed epochs have ids below the current one; a rewind makes an older one current.
        let current = store.log().current_epoch();
        self.ends.retain(|&id, _| id < current);
        self.model = got.clone();
        self.history = vec![got];
        self.acked = 0;
        self.store = Some((store, kv));
    }

    /// After each operation: a follower (reopened after a power loss) polls without error and
    /// holds a state issued since the last open, and exactly the committed state when the
    /// operation wrote everything out.
    fn follow(&mut self, flushed: bool) {
        if self.be.crashed() || self.store.is_none() {
            return;
        }
        if self.follower.as_ref().map(|f| f.1) != Some(self.power_losses) {
            let backend = Arc::new(self.be.clone());
            match Follower::open_with(backend, dir(), FollowerOptions::default()) {
                Ok(f) => self.follower = Some((f, self.power_losses)),
                Err(_) if self.be.crashed() => return,
                Err(e) => panic!("a follower failed to open beside a live store: {e}"),
            }
        }
        let Some((f, _)) = &self.follower else {
            return;
        };
        if let Err(e) = f.poll() {
            assert!(self.be.crashed(), "a follower's poll failed: {e}");
            return;
        }
        let snap = f.read();
        let got: Kv = match snap
            .table_named::<u8, u32>("kv")
            .and_then(|t| snap.list(&t))
        {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => panic!("a follower's rows do not decode: {e}"),
        };
        if flushed {
            assert!(
                got == self.model,
                "a follower holds {got:?} after everything was written, not {:?}",
                self.model
            );
        } else {
            assert!(
                self.history.contains(&got),
                "a follower holds {got:?}, never issued since the last open: {:?}",
                self.history
            );
        }
    }

    /// Power loss in the current crash mode, then a reopen that must succeed.
    fn recover(&mut self) {
        self.power_losses += 1;
        self.be.crash(self.crash_mode);
        self.store = None;
        match self.open() {
            Ok((store, kv)) => self.opened(store, kv, None),
            Err(e) => panic!(
                "reopening after a power loss ({:?}) failed: {e}",
                self.crash_mode
            ),
        }
    }

    /// An operation failed: only a crashed machine may make it fail.
    fn failed(&mut self, what: &str, e: Error) {
        assert!(
            self.be.crashed(),
            "{what} failed on a simulator that did not crash: {e}"
        );
        self.recover();
    }

    fn acknowledge(&mut self) {
        self.acked = self.history.len() - 1;
    }

    /// After a successful operation: the published state is the model, and an epoch that
    /// just closed is remembered with the state it ended with.
    fn succeeded(&mut self, epoch_before: u64) {
        if self.be.crashed() {
            // The machine died after the operation's durable part (an automatic compaction
            // after a commit failed, which is not the commit's failure): power loss now.
            self.recover();
            return;
        }
        let Some((store, kv)) = &self.store else {
            return;
        };
        let got = Self::rows(store, kv);
        assert!(
            got == self.model,
            "the published state {got:?} is not the committed {:?}",
            self.model
        );
        let now = store.log().current_epoch();
        if now != epoch_before {
            self.ends.insert(epoch_before, self.model.clone());
        }
    }

    fn apply(&mut self, op: StoreOp) {
        let Some((store, kv)) = self.store.clone() else {
            return;
        };
        let epoch_before = store.log().current_epoch();
        match op {
            StoreOp::Tx { strong, writes } => {
                let mut after = self.model.clone();
                for &(k, v) in &writes {
                    match v {
                        Some(v) => after.insert(k, v),
                        None => after.remove(&k),
                    };
                }
                // Issued before it runs: a crash inside may keep it or not.
                self.history.push(after.clone());
                let durability = if strong {
                    Durability::Strong
                } else {
                    Durability::Buffered
                };
                let r = store.write_with(durability, |tx| {
                    for &(k, v) in &writes {
                        match v {
                            Some(v) => {
                                tx.insert(&kv, &k, &v)?;
                            }
                            None => match tx.delete(&kv, &k) {
                                Ok(_) | Err(Error::NotFound(_)) => {}
                                Err(e) => return Err(e),
                            },
                        }
                    }
                    Ok(())
                });
                match r {
                    Ok(()) => {
                        self.model = after;
                        if strong {
                            self.acknowledge();
                        }
                        self.succeeded(epoch_before);
                    }
                    Err(e) => self.failed("a transaction", e),
                }
            }
            StoreOp::Sync => match store.sync() {
                Ok(()) => {
                    self.acknowledge();
                    self.succeeded(epoch_before);
                }
                Err(e) => self.failed("sync", e),
            },
            StoreOp::Compact => match store.compact() {
                Ok(()) => {
                    self.acknowledge();
                    self.succeeded(epoch_before);
                }
                Err(e) => self.failed("compaction", e),
            },
            StoreOp::Reopen { close } => {
                if close {
                    if let Err(e) = store.close() {
                        return self.failed("close", e);
                    }
                    self.acknowledge();
                }
                drop((store, kv));
                self.store = None;
                let want = self.model.clone();
                match self.open() {
                    Ok((store, kv)) => self.opened(store, kv, Some(&want)),
                    Err(e) => self.failed("a clean reopen", e),
                }
            }
            StoreOp::Crash(mode) => {
                drop((store, kv));
                self.crash_mode = mode;
                self.recover();
            }
            StoreOp::CrashAfter(n, mode) => {
                self.crash_mode = mode;
                self.be.crash_after(self.be.ops() + n);
            }
            StoreOp::Rewind(pick) => {
                let epochs = match store.log().epochs() {
                    Ok(e) => e,
                    Err(e) => return self.failed("listing epochs", e),
                };
                let candidates: Vec<u64> = epochs
                    .iter()
                    .map(|e| e.id)
                    .filter(|id| *id != epoch_before && self.ends.contains_key(id))
                    .collect();
                let Some(&id) = candidates.get(pick % candidates.len().max(1)) else {
                    return;
                };
                let Some(target) = self.ends.get(&id).cloned() else {
                    return;
                };
                self.history.push(target.clone());
                match store.log().truncate_to(id) {
                    Ok(_) => {
                        self.acknowledge();
                        // The store's in-memory state is now stale: reopen to load the rewound
                        // state.
                        drop((store, kv));
                        self.store = None;
                        match self.open() {
                            Ok((store, kv)) => self.opened(store, kv, Some(&target)),
                            Err(e) => self.failed("reopening after a rewind", e),
                        }
                    }
                    Err(e) => self.failed("a rewind", e),
                }
            }
        }
    }
}
