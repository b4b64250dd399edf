//! Target 5: the grailbio logio/stateio reader and the importer (feature `stateio`).

use std::path::Path;
use std::sync::Arc;

use super::common::{backend_with, dir};
use super::input::Input;
use crate::backend::{Backend, ReadAt};
use crate::epoch::RecoveryMode;
use crate::tools::Finding;
use crate::tools::stateio::{
    IMPORT_TABLE, LOGIO_BLOCK, LOGIO_HEADER, LogioReader, StateioEntry, StateioReader,
    import_stateio,
};
use crate::{Readable, read_only_snapshot};

const PATH: &str = "/fuzz.state";
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// Treats `data` as a stateio file: reads it with the logio and the stateio readers, checking
/// every entry returned against an independent decoder of the research note's §4 rules, the
/// order of entries and findings, the epochs of updates, and that reading ends; then imports
/// it (on the simulator) and checks the store holds the epochs read. Then writes a valid
/// stateio file from choices in `data` by the Go writer's algorithm (32 KiB blocks, padding,
/// FIRST/MIDDLE/LAST), checks it reads back exactly, damages it (flips, overwrites,
/// truncation) and checks that every entry read was written at the same offset, unless it
/// lies on damaged bytes, and that a truncation alone gives only a torn tail.
pub fn stateio_read(data: &[u8]) {
    let read = read_image(data);
    import_image(data, &read);
    written_then_damaged(data);
}

/// Re-reads the logio entry at `at` by the §4 rules alone: its data and end.
fn decode_independently(file: &[u8], at: u64) -> Result<(Vec<u8>, u64), String> {
    let mut p = at;
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let s = usize::try_from(p).map_err(|e| e.to_string())?;
        let head = file
            .get(s..s + LOGIO_HEADER)
            .ok_or_else(|| format!("record header at {p} past the end"))?;
        let sum = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let kind = head[4];
        let len = usize::from(u16::from_le_bytes([head[5], head[6]]));
        let mut back = [0u8; 8];
        back.copy_from_slice(&head[7..15]);
        let back = u64::from_le_bytes(back);
        let block_end = (p / LOGIO_BLOCK + 1) * LOGIO_BLOCK;
        let end = p + (LOGIO_HEADER + len) as u64;
        if len == 0 || end > block_end {
            return Err(format!("record at {p} of {len} bytes crosses its block"));
        }
        let rec = file
            .get(s..s + LOGIO_HEADER + len)
            .ok_or_else(|| format!("record at {p} past the end"))?;
        if xxhash_rust::xxh64::xxh64(&rec[4..], 0) as u32 != sum {
            return Err(format!("checksum mismatch at {p}"));
        }
        let ok = match kind {
            FULL | FIRST => first && back == 0,
            MIDDLE | LAST => !first && p % LOGIO_BLOCK == 0 && back == p - at,
            _ => false,
        };
        if !ok || (matches!(kind, FIRST | MIDDLE) && end != block_end) {
            return Err(format!("record of type {kind} at {p} out of sequence"));
        }
        out.extend_from_slice(&rec[LOGIO_HEADER..]);
        p = end;
        first = false;
        if matches!(kind, FULL | LAST) {
            return Ok((out, p));
        }
    }
}

fn check_findings(findings: &[Finding], len: u64) {
    let mut last = None;
    for (i, f) in findings.iter().enumerate() {
        assert!(f.offset < len.max(1), "finding {f:?} past the end ({len})");
        assert!(
            !f.torn_tail || i + 1 == findings.len(),
            "a torn tail {f:?} is not the last finding: {findings:?}"
        );
        assert!(
            last.is_none_or(|l| l <= f.offset),
            "findings out of order: {findings:?}"
        );
        last = Some(f.offset);
    }
}

/// (offset, kind, data) of the stateio entries read, and the findings.
type Read = (Vec<(u64, u8, Vec<u8>)>, Vec<Finding>);

fn read_image(bytes: &[u8]) -> Read {
    let len = bytes.len() as u64;
    let src: Arc<dyn ReadAt> = Arc::new(bytes.to_vec());
    // The logio layer: entries in order, each valid, never overlapping.
    let mut log = LogioReader::new(src.clone(), PATH).expect("a reader over memory");
    let mut floor = 0;
    let bound = len / (LOGIO_HEADER as u64 + 1) + 2;
    let mut n = 0;
    while let Some(e) = log.next_entry().expect("reading memory") {
        n += 1;
        assert!(
            n <= bound,
            "reading {len} bytes did not end after {n} entries"
        );
        assert!(
            e.offset >= floor && e.end <= len,
            "entry {e:?} out of order"
        );
        match decode_independently(bytes, e.offset) {
            Ok((data, end)) => assert!(
                data == e.data && end == e.end,
                "entry at {}: the reader returned other bytes than the records hold",
                e.offset
            ),
            Err(why) => panic!(
                "the reader returned an invalid entry at {}: {why}",
                e.offset
            ),
        }
        floor = e.end;
    }
    check_findings(log.findings(), len);

    // The stateio layer: updates of the current epoch only; the epoch is the last snapshot.
    let mut r = StateioReader::new(src, PATH).expect("a reader over memory");
    let mut out = Vec::new();
    let mut epoch = 0;
    while let Some(e) = r.next_entry().expect("reading memory") {
        match e {
            StateioEntry::Snapshot { offset, data, .. } => {
                epoch = offset;
                out.push((offset, 2, data));
            }
            StateioEntry::Update {
                offset,
                epoch: of,
                data,
            } => {
                assert_eq!(of, epoch, "an update of epoch {of} in epoch {epoch}");
                out.push((offset, 1, data));
            }
        }
        assert!(
            out.len() as u64 <= n,
            "more stateio entries than logio entries"
        );
    }
    assert_eq!(r.current_epoch(), epoch);
    let findings = r.findings();
    check_findings(&findings, len);
    (out, findings)
}

/// Imports the image on the simulator; the store must hold every epoch read, the last one's
/// rows being its snapshot and updates.
fn import_image(bytes: &[u8], (entries, findings): &Read) {
    let be = backend_with(&[], 0);
    be.set_file_bytes(Path::new(PATH), bytes);
    let shared: Arc<dyn Backend> = Arc::new(be.clone());
    let store = dir().join("imported");
    let report = match import_stateio(shared.clone(), Path::new(PATH), &store) {
        Ok(r) => r,
        // A state larger than the epoch layer takes is refused, never a panic.
        Err(crate::Error::TooLarge { .. }) => return,
        Err(e) => panic!("importing on the simulator failed: {e}"),
    };
    assert_eq!(
        &report.findings, findings,
        "import and reader disagree on damage"
    );
    assert_eq!(report.entries, entries.len() as u64);
    let snapshots = entries.iter().filter(|e| e.1 == 2).count();
    let first_updates = entries.iter().take_while(|e| e.1 == 1).count();
    assert_eq!(
        report.epochs.len(),
        snapshots + usize::from(first_updates > 0),
        "epochs imported"
    );
    let Some(last) = report.epochs.last() else {
        return;
    };
    let (snap, lost) = read_only_snapshot(shared, &store, RecoveryMode::Strict, Some(last.epoch))
        .expect("an imported store restores");
    assert!(lost.is_empty());
    let rows: Vec<Vec<u8>> = snap
        .raw_rows(IMPORT_TABLE)
        .expect("the imported table")
        .filter(|(k, _)| *k != b"epoch")
        .map(|(_, v)| v.to_vec())
        .collect();
    let tail = entries.iter().rev().take_while(|e| e.1 == 1).count();
    let start = entries.len() - tail - usize::from(last.snapshot);
    let mut expected: Vec<Vec<u8>> = Vec::new();
    if let Some((_, 2, s)) = entries.get(start) {
        expected.push(s.clone());
    }
    expected.extend(
        entries
            .iter()
            .skip(entries.len() - tail)
            .map(|e| e.2.clone()),
    );
    // Rows sort "snapshot" before "update/…", as written.
    assert!(
        rows == expected,
        "the last imported epoch differs from the file's"
    );
}

/// Appends `data` as a logio entry the way the Go writer does; returns its offset.
fn append(file: &mut Vec<u8>, data: &[u8]) -> u64 {
    let r = file.len() as u64 % LOGIO_BLOCK;
    if (1..=14).contains(&r) || LOGIO_BLOCK - r <= LOGIO_HEADER as u64 {
        file.resize(file.len() + (LOGIO_BLOCK - r) as usize, 0);
    }
    let start = file.len() as u64;
    let mut rest = data;
    let mut first = true;
    while !rest.is_empty() {
        let avail = (LOGIO_BLOCK - file.len() as u64 % LOGIO_BLOCK) as usize - LOGIO_HEADER;
        let (kind, n) = match (rest.len() <= avail, first) {
            (true, true) => (FULL, rest.len()),
            (true, false) => (LAST, rest.len()),
            (false, true) => (FIRST, avail),
            (false, false) => (MIDDLE, avail),
        };
        let (chunk, more) = rest.split_at(n);
        let mut covered = vec![kind];
        covered.extend_from_slice(&(n as u16).to_le_bytes());
        covered.extend_from_slice(&(file.len() as u64 - start).to_le_bytes());
        covered.extend_from_slice(chunk);
        let sum = xxhash_rust::xxh64::xxh64(&covered, 0) as u32;
        file.extend_from_slice(&sum.to_le_bytes());
        file.extend_from_slice(&covered);
        rest = more;
        first = false;
    }
    start
}

fn written_then_damaged(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut file = Vec::new();
    let mut written: Vec<(u64, u8, Vec<u8>)> = Vec::new();
    let mut epoch = 0u64;
    for i in 0..1 + inp.below(8) {
        let len = match inp.below(4) {
            0 => inp.below(16),
            1 => inp.below(300),
            2 => 32_700 + inp.below(100),
            _ => inp.below(70_000),
        } as usize;
        let salt = inp.u8() ^ (i as u8);
        let body: Vec<u8> = (0..len).map(|j| (j % 251) as u8 ^ salt).collect();
        let snapshot = inp.below(3) == 0;
        let mut entry = vec![if snapshot { 2 } else { 1 }];
        entry.extend_from_slice(&epoch.to_le_bytes());
        entry.extend_from_slice(&body);
        // The writer's Tell(): where the entry's first record will start.
        let at = append(&mut file, &entry);
        if snapshot {
            epoch = at;
        }
        written.push((at, if snapshot { 2 } else { 1 }, body));
    }
    let (read, findings) = read_image(&file);
    assert!(
        findings.is_empty(),
        "a valid file has findings: {findings:?}"
    );
    assert!(read == written, "a valid file read back differently");

    // Truncation alone: a prefix of the entries, and at most a torn tail.
    let cut = inp.below(file.len() as u64 + 1) as usize;
    let (read, findings) = read_image(file.get(..cut).unwrap_or_default());
    assert!(
        findings.iter().all(|f| f.torn_tail),
        "a truncated file has damage in the middle: {findings:?}"
    );
    assert!(
        written.starts_with(&read),
        "a truncated file read other entries than a prefix"
    );

    // Damage: every entry read was written there, unless it lies on touched bytes.
    let mut damaged = file.clone();
    let mut touched: Vec<(u64, u64)> = Vec::new();
    for _ in 0..1 + inp.below(4) {
        if damaged.is_empty() {
            break;
        }
        let at = inp.below(damaged.len() as u64) as usize;
        match inp.below(3) {
            0 => damaged[at] ^= 1 << inp.below(8),
            1 => {
                let n = (1 + inp.below(40) as usize).min(damaged.len() - at);
                for b in &mut damaged[at..at + n] {
                    *b = inp.u8();
                }
                touched.push((at as u64, (at + n) as u64));
                continue;
            }
            _ => damaged.truncate(at),
        }
        touched.push((at as u64, at as u64 + 1));
    }
    let (read, _) = read_image(&damaged);
    for e in &read {
        // A record with a valid checksum can be forged only over bytes the damage wrote.
        assert!(
            written.contains(e) || touched.iter().any(|&(_, to)| to > e.0),
            "an entry at {} was read that was never written there",
            e.0
        );
    }
}
