//! Snapshot states in parts (FORMAT.md §11.2, format version 2): a state larger than one
//! entry, or streamed through a ticket's `StateWriter`, is written in STATE entries after its
//! SNAPSHOT, restored whole, and a cut or misplaced part is damage, never a shorter state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{Durability, EpochLog, Options, PART_BYTES, Restored};
use statelog::{CorruptKind, Error};

mod common;
use common::noise;

fn fs() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn seg(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

fn updates(r: Restored) -> Vec<Vec<u8>> {
    r.updates.map(|u| u.unwrap()).collect()
}

/// The format version in a segment's file header.
fn version(path: &Path) -> u16 {
    let b = std::fs::read(path).unwrap();
    u16::from_le_bytes([b[8], b[9]])
}

#[test]
fn a_state_larger_than_a_part_round_trips_in_a_version_2_segment() {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(2 * PART_BYTES + 12_345, 7);
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"before", Durability::Strong).unwrap();
        let report = log.snapshot(&big).unwrap();
        assert_eq!(report.epoch.segment, 2);
        log.append(b"after 1", Durability::Strong).unwrap();
        log.append(b"after 2", Durability::Strong).unwrap();
        log.close().unwrap();
    }
    assert_eq!(version(&seg(dir.path(), 1)), 1, "a segment without parts");
    assert_eq!(version(&seg(dir.path(), 2)), 2, "the segment with parts");
    let (log, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(big.as_slice()));
    assert_eq!(updates(r), vec![b"after 1".to_vec(), b"after 2".to_vec()]);
    // A small state stays in its SNAPSHOT entry, in a version 1 file.
    let report = log.snapshot(b"small").unwrap();
    drop(log);
    assert_eq!(version(&seg(dir.path(), report.epoch.segment)), 1);
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"small"[..]));
    let report = statelog::tools::verify_epochs(fs(), dir.path(), &mut |_, _| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

/// A state given in pieces of any size, as a compaction produces it, while appends go on.
#[test]
fn a_streamed_state_is_written_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    log.append(b"u1", Durability::Strong).unwrap();
    let state = noise(PART_BYTES + PART_BYTES / 2, 3);
    let ticket = log.snapshot_start().unwrap();
    let mut w = ticket.state_writer();
    let mut at = 0;
    let mut step = 1;
    while at < state.len() {
        let end = (at + step).min(state.len());
        w.write(&state[at..end]).unwrap();
        at = end;
        step = (step * 3 + 1) % 5_000_000 + 1;
        if at > state.len() / 2 {
            // Appends beside the snapshot are copied after it at the switch.
            log.append(b"beside", Durability::Strong).unwrap();
        }
    }
    assert_eq!(w.written(), state.len() as u64);
    let prepared = ticket.prepared(w).unwrap();
    let (report, copied) = log.snapshot_finish(ticket, prepared).unwrap();
    assert!(!copied.is_empty());
    log.append(b"u2", Durability::Strong).unwrap();
    drop(log);
    assert_eq!(version(&seg(dir.path(), report.epoch.segment)), 2);
    let (_, r) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(state.as_slice()));
    let mut want = copied;
    want.push(b"u2".to_vec());
    assert_eq!(updates(r), want);
}

/// A state writer dropped unfinished (a compaction given up) leaves no file behind.
#[test]
fn an_unfinished_state_writer_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
    let ticket = log.snapshot_start().unwrap();
    let mut w = ticket.state_writer();
    w.write(&noise(PART_BYTES + 10, 1)).unwrap();
    let tmp = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".tmp")
            })
            .count()
    };
    assert_eq!(tmp(), 1, "the first part is written once it is full");
    drop(w);
    assert_eq!(tmp(), 0);
    log.snapshot_cancel(&ticket);
    log.append(b"still", Durability::Strong).unwrap();
}

/// Where the bytes of segment `path` after its SNAPSHOT entry's first STATE entry end: the
/// file cut there ends at an entry boundary, before the LAST part.
fn end_of_first_part(path: &Path) -> u64 {
    let be = FsBackend::new();
    let mut r = statelog::frame::LogReader::open(&be, path, false).unwrap();
    r.next_entry().unwrap().unwrap(); // SNAPSHOT
    r.next_entry().unwrap().unwrap().pos.end
}

#[test]
fn a_state_cut_before_its_last_part_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(2 * PART_BYTES + 1, 9);
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"u0", Durability::Strong).unwrap();
        log.snapshot(&big).unwrap();
        log.close().unwrap();
    }
    let s2 = seg(dir.path(), 2);
    let cut = end_of_first_part(&s2);
    let b = std::fs::read(&s2).unwrap();
    std::fs::write(&s2, &b[..cut as usize]).unwrap();
    // The manifest knows the closed segment's length and reports the cut by itself.
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (s2.clone(), cut)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a cut segment"),
    }
    // Without it (a store from before manifests), the missing LAST part is what tells.
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt { file, kind, offset }) => {
            assert_eq!(
                (file, kind, offset),
                (s2.clone(), CorruptKind::Incomplete, cut)
            )
        }
        Err(e) => panic!("{e}"),
        Ok((_, r)) => panic!(
            "opened with a state of {:?} bytes",
            r.snapshot.map(|s| s.len())
        ),
    }
    let report = statelog::tools::verify_epochs(fs(), dir.path(), &mut |_, _| {}).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.file == s2 && f.kind == CorruptKind::Incomplete),
        "{:?}",
        report.findings
    );
    // With fall-back allowed, the store goes back to the epoch before, whole.
    let opts = Options {
        fall_back: true,
        ..Options::default()
    };
    let (_, r) = EpochLog::open(fs(), dir.path(), opts).unwrap();
    assert_eq!(r.epoch.id, 0);
    assert_eq!(r.report.fell_back.len(), 1);
    assert_eq!(updates(r), vec![b"u0".to_vec()]);
}

/// A version 1 file may not hold a state in parts: a header rewritten to version 1 makes the
/// snapshot damage (a build that knows only version 1 refuses the file as newer instead).
#[test]
fn parts_in_a_version_1_file_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.snapshot(&noise(PART_BYTES + 1, 5)).unwrap();
        log.close().unwrap();
    }
    let s2 = seg(dir.path(), 2);
    let mut b = std::fs::read(&s2).unwrap();
    b[8] = 1;
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&s2, &b).unwrap();
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt { file, kind, .. }) => {
            assert_eq!(file, s2);
            assert_eq!(kind, CorruptKind::Payload);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    }
    // Version 3 is a newer format, not damage.
    b[8] = 3;
    std::fs::write(&s2, &b).unwrap();
    assert!(matches!(
        EpochLog::open(fs(), dir.path(), Options::default()),
        Err(Error::Incompatible {
            found: 3,
            supported: 2,
            ..
        })
    ));
}

/// Listing the epochs reads each snapshot's head, not its parts (a compaction's retention
/// lists them: reading every part of a large state twice took a sixth of it): a damaged
/// part is still found by what reads the state, and by verify.
#[test]
fn listing_epochs_reads_heads_not_parts() {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(2 * PART_BYTES + 1, 11);
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), Options::default()).unwrap();
        log.append(b"u0", Durability::Strong).unwrap();
        log.snapshot(&big).unwrap();
        log.append(b"u1", Durability::Strong).unwrap();
        log.close().unwrap();
    }
    let s2 = seg(dir.path(), 2);
    // A byte of the second part's payload.
    let at = end_of_first_part(&s2) as usize + 1000;
    let mut b = std::fs::read(&s2).unwrap();
    b[at] ^= 0x10;
    std::fs::write(&s2, &b).unwrap();
    let reader = statelog::epoch::EpochReader::open(fs(), dir.path(), Default::default()).unwrap();
    let epochs = reader.epochs().unwrap();
    assert_eq!(
        epochs.iter().map(|e| (e.id, e.segment)).collect::<Vec<_>>(),
        vec![(1, 2), (0, 1)]
    );
    match EpochLog::open(fs(), dir.path(), Options::default()) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, s2),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("restored a damaged state"),
    }
    let report = statelog::tools::verify_epochs(fs(), dir.path(), &mut |_, _| {}).unwrap();
    assert!(
        report.findings.iter().any(|f| f.file == s2),
        "{:?}",
        report.findings
    );
}
