//! Target 1: the frame decoder.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::common::{LOG_PATH, MIN_ENTRY, le16, le32, le64};
use super::input::Input;
use crate::Error;
use crate::backend::{ReadAt, SimBackend};
use crate::frame::{
    EntryPos, FILE_HEADER_LEN, LogOptions, LogReader, LogWriter, MAX_ENTRY_LEN, RECORD_HEADER_LEN,
    SYNC_MARK_LEN, TailPolicy,
};

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
