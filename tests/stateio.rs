//! The grailbio logio/stateio reader and importer (issue 22 item 7) against the files the Go
//! original wrote (`tests/fixtures/grailbio-stateio/`, expected results from the research
//! note's §4), against damaged copies of them, and against crafted files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{EpochReader, RecoveryMode};
use statelog::tools::stateio::{
    IMPORT_TABLE, LogioEntry, LogioReader, StateioEpoch, StateioFile, StateioReader,
    import_stateio, read_stateio,
};
use statelog::{CorruptKind, Error, Readable, read_only_snapshot};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/grailbio-stateio")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn backend() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

/// The research note's pattern: `pat(n, seed)[i] = (i mod 251) XOR seed`.
fn pat(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Every entry of a logio image, and the reader's findings.
fn logio(bytes: Vec<u8>) -> (Vec<LogioEntry>, Vec<statelog::tools::Finding>) {
    let mut r = LogioReader::new(Arc::new(bytes), "test.log").unwrap();
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push(e);
    }
    (out, r.findings().to_vec())
}

fn stateio(bytes: Vec<u8>) -> StateioFile {
    let mut r = StateioReader::new(Arc::new(bytes), "test.state").unwrap();
    let mut epochs: Vec<StateioEpoch> = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        match e {
            statelog::tools::stateio::StateioEntry::Snapshot { offset, data, .. } => {
                epochs.push(StateioEpoch {
                    id: offset,
                    snapshot: Some(data),
                    updates: Vec::new(),
                })
            }
            statelog::tools::stateio::StateioEntry::Update { data, .. } => {
                if epochs.is_empty() {
                    epochs.push(StateioEpoch {
                        id: 0,
                        snapshot: None,
                        updates: Vec::new(),
                    });
                }
                epochs.last_mut().unwrap().updates.push(data);
            }
        }
    }
    StateioFile {
        epochs,
        entries: r.entries(),
        records: r.records(),
        findings: r.findings(),
    }
}

/// (offset, end, records, data) of each entry.
fn layout(entries: &[LogioEntry]) -> Vec<(u64, u64, u32, Vec<u8>)> {
    entries
        .iter()
        .map(|e| (e.offset, e.end, e.records, e.data.clone()))
        .collect()
}

fn epoch(id: u64, snapshot: Option<&[u8]>, updates: &[&[u8]]) -> StateioEpoch {
    StateioEpoch {
        id,
        snapshot: snapshot.map(<[u8]>::to_vec),
        updates: updates.iter().map(|u| u.to_vec()).collect(),
    }
}

/// A logio record as the Go writer makes it (for crafted files).
fn record(kind: u8, back: u64, data: &[u8]) -> Vec<u8> {
    let mut covered = vec![kind];
    covered.extend_from_slice(&(data.len() as u16).to_le_bytes());
    covered.extend_from_slice(&back.to_le_bytes());
    covered.extend_from_slice(data);
    let sum = xxhash_rust::xxh64::xxh64(&covered, 0) as u32;
    let mut out = sum.to_le_bytes().to_vec();
    out.extend_from_slice(&covered);
    out
}

/// A stateio entry in one FULL record.
fn entry(kind: u8, epoch: u64, data: &[u8]) -> Vec<u8> {
    let mut payload = vec![kind];
    payload.extend_from_slice(&epoch.to_le_bytes());
    payload.extend_from_slice(data);
    record(1, 0, &payload)
}

// ---------------------------------------------------------------------------------------------
// The Go original's files.

#[test]
fn logio_small_reads_hello_and_world() {
    let (entries, findings) = logio(fixture_bytes("logio_small.bin"));
    assert_eq!(
        layout(&entries),
        vec![
            (0, 20, 1, b"hello".to_vec()),
            (20, 41, 1, b"world!".to_vec())
        ]
    );
    assert!(findings.is_empty());
}

#[test]
fn logio_multiblock_assembles_first_middle_last() {
    let (entries, findings) = logio(fixture_bytes("logio_multiblock.bin"));
    assert_eq!(
        layout(&entries),
        vec![(0, 115, 1, pat(100, 0)), (115, 70160, 3, pat(70000, 1))]
    );
    assert!(findings.is_empty());
}

#[test]
fn logio_padding_skips_the_zero_trailer() {
    let (entries, findings) = logio(fixture_bytes("logio_padding.bin"));
    assert_eq!(
        layout(&entries),
        vec![
            (0, 32758, 1, pat(32743, 2)),
            (32768, 32784, 1, b"x".to_vec())
        ]
    );
    assert!(findings.is_empty());
}

#[test]
fn logio_exactfit_ends_on_the_block_boundary() {
    let (entries, findings) = logio(fixture_bytes("logio_exactfit.bin"));
    assert_eq!(
        layout(&entries),
        vec![
            (0, 32768, 1, pat(32753, 3)),
            (32768, 65566, 2, pat(32768, 4))
        ]
    );
    assert!(findings.is_empty());
}

#[test]
fn stateio_nosnapshot_is_one_epoch_without_snapshot() {
    let file = read_stateio(&FsBackend::new(), &fixture("stateio_nosnapshot.bin")).unwrap();
    assert_eq!(file.epochs, vec![epoch(0, None, &[b"a", b"b"])]);
    assert_eq!((file.entries, file.records), (2, 2));
    assert!(file.findings.is_empty());
}

#[test]
fn stateio_small_has_three_epochs() {
    let file = read_stateio(&FsBackend::new(), &fixture("stateio_small.bin")).unwrap();
    assert_eq!(
        file.epochs,
        vec![
            epoch(0, None, &[b"u1", b"u2"]),
            epoch(52, Some(b"S1"), &[b"u3"]),
            epoch(104, Some(b"S2"), &[b"u4", b"u5"]),
        ]
    );
    assert_eq!((file.entries, file.records), (7, 7));
    assert!(file.findings.is_empty());
    // The snapshots name the epoch they close.
    let mut r = StateioReader::open(&FsBackend::new(), &fixture("stateio_small.bin")).unwrap();
    let mut prevs = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        if let statelog::tools::stateio::StateioEntry::Snapshot { prev, .. } = e {
            prevs.push(prev);
        }
    }
    assert_eq!(prevs, vec![0, 52]);
    assert_eq!(r.current_epoch(), 104);
}

#[test]
fn stateio_multiblock_has_multi_record_snapshots_and_updates() {
    let file = read_stateio(&FsBackend::new(), &fixture("stateio_multiblock.bin")).unwrap();
    assert_eq!(
        file.epochs,
        vec![
            epoch(0, None, &[&pat(10, 0)]),
            epoch(34, Some(&pat(40000, 1)), &[&pat(5, 2)]),
            epoch(40102, Some(&[3, 2, 1]), &[&pat(70000, 4), &pat(7, 5)]),
        ]
    );
    // 1 + 2 (FIRST, LAST) + 1 + 1 + 3 (FIRST, MIDDLE, LAST) + 1.
    assert_eq!((file.entries, file.records), (6, 9));
    assert!(file.findings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Damage: corruption in the middle (a complete entry follows) versus a torn tail.

#[test]
fn a_flipped_byte_in_the_middle_is_corruption_at_its_record() {
    let mut bytes = fixture_bytes("stateio_small.bin");
    bytes[26 + 20] ^= 0x40; // inside u2's data
    let file = stateio(bytes);
    assert_eq!(file.findings.len(), 1);
    let f = &file.findings[0];
    assert_eq!(
        (f.offset, f.kind, f.torn_tail),
        (26, CorruptKind::Checksum, false)
    );
    assert_eq!(f.file, Path::new("test.state"));
    assert!(!file.is_clean());
    // Only the damaged entry is lost (the Go reader drops the rest of the block).
    assert_eq!(
        file.epochs,
        vec![
            epoch(0, None, &[b"u1"]),
            epoch(52, Some(b"S1"), &[b"u3"]),
            epoch(104, Some(b"S2"), &[b"u4", b"u5"]),
        ]
    );
}

#[test]
fn a_damaged_middle_record_loses_only_its_entry() {
    let mut bytes = fixture_bytes("stateio_multiblock.bin");
    bytes[65536 + 100] ^= 1; // the MIDDLE record of the 70000-byte update
    let file = stateio(bytes);
    assert_eq!(file.findings.len(), 1);
    let f = &file.findings[0];
    assert_eq!(
        (f.offset, f.kind, f.torn_tail),
        (65536, CorruptKind::Checksum, false)
    );
    // The LAST record of the damaged entry is skipped, the update after it is read.
    assert_eq!(file.epochs[2].updates, vec![pat(7, 5)]);
    assert_eq!(file.entries, 5);
}

#[test]
fn a_damaged_header_in_the_middle_resyncs_byte_by_byte() {
    let mut bytes = fixture_bytes("logio_small.bin");
    bytes[1] ^= 1; // the first record's checksum (the Go test's TestResync damage)
    let (entries, findings) = logio(bytes);
    assert_eq!(layout(&entries), vec![(20, 41, 1, b"world!".to_vec())]);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].offset, findings[0].kind, findings[0].torn_tail),
        (0, CorruptKind::Checksum, false)
    );
}

#[test]
fn a_truncated_last_record_is_a_torn_tail() {
    let mut bytes = fixture_bytes("stateio_small.bin");
    bytes.truncate(bytes.len() - 3);
    let file = stateio(bytes);
    assert_eq!(file.findings.len(), 1);
    let f = &file.findings[0];
    assert_eq!(
        (f.offset, f.kind, f.torn_tail),
        (156, CorruptKind::Incomplete, true)
    );
    assert!(file.is_clean());
    assert_eq!(file.epochs.last(), Some(&epoch(104, Some(b"S2"), &[b"u4"])));
}

#[test]
fn a_truncated_multi_record_entry_is_a_torn_tail_at_its_start() {
    let mut bytes = fixture_bytes("stateio_multiblock.bin");
    bytes.truncate(100_000); // inside the LAST record of the 70000-byte update
    let file = stateio(bytes.clone());
    assert_eq!(file.findings.len(), 1);
    let f = &file.findings[0];
    assert_eq!(
        (f.offset, f.kind, f.torn_tail),
        (40129, CorruptKind::Incomplete, true)
    );
    assert_eq!(
        file.epochs.last(),
        Some(&epoch(40102, Some(&[3, 2, 1]), &[]))
    );
    // Cut right after the MIDDLE record: the same.
    bytes.truncate(98304);
    let file = stateio(bytes);
    assert_eq!(
        (file.findings[0].offset, file.findings[0].torn_tail),
        (40129, true)
    );
}

#[test]
fn a_torn_tail_with_garbage_and_zero_tails() {
    // Zeros after the last entry: a clean end.
    let mut bytes = fixture_bytes("stateio_small.bin");
    bytes.extend_from_slice(&[0; 100]);
    let file = stateio(bytes.clone());
    assert!(file.findings.is_empty());
    assert_eq!(file.entries, 7);
    // A 10-byte fragment that is not zero: a torn tail at its start.
    bytes.truncate(182);
    bytes.extend_from_slice(&[0xee; 10]);
    let file = stateio(bytes);
    assert_eq!(file.findings.len(), 1);
    assert_eq!(
        (file.findings[0].offset, file.findings[0].torn_tail),
        (182, true)
    );
    // A file of 10 garbage bytes: nothing read, a torn tail at 0.
    let file = stateio(vec![7; 10]);
    assert!(file.epochs.is_empty());
    assert_eq!(
        (file.findings[0].offset, file.findings[0].torn_tail),
        (0, true)
    );
}

#[test]
fn nonzero_padding_is_damage() {
    let mut bytes = fixture_bytes("logio_padding.bin");
    bytes[32760] = 1;
    let (entries, findings) = logio(bytes);
    assert_eq!(entries.len(), 2);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].offset, findings[0].kind, findings[0].torn_tail),
        (32758, CorruptKind::RecordLayout, false)
    );
}

#[test]
fn crafted_entries_break_the_stateio_rules() {
    let mut bytes = entry(1, 0, b"ok");
    let wrong_epoch = bytes.len() as u64;
    bytes.extend(entry(1, 99, b"foreign")); // an update of another epoch
    let bad_kind = bytes.len() as u64;
    bytes.extend(entry(3, 0, b"three")); // stateio type 3
    let type_zero = bytes.len() as u64;
    bytes.extend(entry(0, 0, b"zero")); // type 0: accepted by Go, refused here
    let short = bytes.len() as u64;
    bytes.extend(record(1, 0, b"tiny")); // shorter than 9 bytes
    let unknown_record = bytes.len() as u64;
    bytes.extend(record(5, 1, b"rec")); // a record type Go skips silently
    bytes.extend(entry(1, 0, b"mid"));
    let orphan = bytes.len() as u64;
    bytes.extend(record(4, 1, b"last")); // a LAST without FIRST, inside a block
    bytes.extend(entry(1, 0, b"after"));
    let file = stateio(bytes);
    assert_eq!(
        file.epochs,
        vec![epoch(0, None, &[b"ok", b"mid", b"after"])]
    );
    let got: Vec<(u64, CorruptKind, bool)> = file
        .findings
        .iter()
        .map(|f| (f.offset, f.kind, f.torn_tail))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                wrong_epoch,
                CorruptKind::WrongEpoch {
                    expected: 0,
                    found: 99
                },
                false
            ),
            (bad_kind, CorruptKind::EntryKind(3), false),
            (type_zero, CorruptKind::EntryKind(0), false),
            (short, CorruptKind::Payload, false),
            (unknown_record, CorruptKind::RecordType(5), false),
            (orphan, CorruptKind::RecordLayout, false),
        ]
    );
}

#[test]
fn a_first_record_that_does_not_fill_its_block_is_damage() {
    let mut bytes = record(2, 0, b"first");
    bytes.extend(entry(1, 0, b"u"));
    let file = stateio(bytes);
    assert_eq!(file.epochs, vec![epoch(0, None, &[b"u"])]);
    assert_eq!(
        (file.findings[0].offset, file.findings[0].kind),
        (0, CorruptKind::RecordLayout)
    );
}

#[test]
fn a_first_record_without_continuation_is_damage_at_its_entry() {
    // A FIRST filling block 0, then a FULL entry where its MIDDLE or LAST should be.
    let mut payload = vec![1];
    payload.extend_from_slice(&0u64.to_le_bytes());
    payload.resize(32768 - 15, 7);
    let mut bytes = record(2, 0, &payload);
    assert_eq!(bytes.len(), 32768);
    bytes.extend(entry(1, 0, b"u"));
    let file = stateio(bytes);
    assert_eq!(file.epochs, vec![epoch(0, None, &[b"u"])]);
    assert_eq!(file.findings.len(), 1);
    let f = &file.findings[0];
    assert_eq!(
        (f.offset, f.kind, f.torn_tail),
        (0, CorruptKind::Sequence, false)
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let path = fixture("missing.bin");
    match read_stateio(&FsBackend::new(), &path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Import.

/// The rows of the imported table in epoch `epoch` of `dir`, as (key, value) strings.
fn rows(dir: &Path, epoch: u64) -> Vec<(String, Vec<u8>)> {
    let (snap, lost) =
        read_only_snapshot(backend(), dir, RecoveryMode::Strict, Some(epoch)).unwrap();
    assert!(lost.is_empty());
    snap.raw_rows(IMPORT_TABLE)
        .unwrap()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.to_vec()))
        .collect()
}

fn row(k: &str, v: &[u8]) -> (String, Vec<u8>) {
    (k.to_string(), v.to_vec())
}

fn epoch_ids(dir: &Path) -> Vec<u64> {
    let r = EpochReader::open(backend(), dir, RecoveryMode::Strict).unwrap();
    let mut ids: Vec<u64> = r.epochs().unwrap().iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn import_keeps_every_epoch_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let report = import_stateio(backend(), &fixture("stateio_small.bin"), &dir).unwrap();
    let mapping: Vec<(u64, u64, bool, u64)> = report
        .epochs
        .iter()
        .map(|e| (e.source, e.epoch, e.snapshot, e.updates))
        .collect();
    assert_eq!(
        mapping,
        vec![(0, 0, false, 2), (52, 1, true, 1), (104, 2, true, 2)]
    );
    assert_eq!((report.entries, report.records), (7, 7));
    assert!(report.findings.is_empty());
    assert_eq!(epoch_ids(&dir), vec![0, 1, 2]);
    let u = |n: u64| format!("update/{n:020}");
    assert_eq!(
        rows(&dir, 0),
        vec![row("epoch", b"0"), row(&u(1), b"u1"), row(&u(2), b"u2")]
    );
    assert_eq!(
        rows(&dir, 1),
        vec![
            row("epoch", b"52"),
            row("snapshot", b"S1"),
            row(&u(1), b"u3")
        ]
    );
    assert_eq!(
        rows(&dir, 2),
        vec![
            row("epoch", b"104"),
            row("snapshot", b"S2"),
            row(&u(1), b"u4"),
            row(&u(2), b"u5")
        ]
    );
    let verified = statelog::tools::verify_dir(&dir).unwrap();
    assert!(verified.is_pristine(), "{verified:?}");
    // The store opens it, and goes on from the last epoch.
    let store = statelog::Store::open(&dir, statelog::StoreOptions::default()).unwrap();
    let t = store.bytes_table(IMPORT_TABLE).unwrap();
    assert_eq!(store.read().count(&t).unwrap(), 4);
}

#[test]
fn import_multiblock_keeps_large_snapshots_and_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let report = import_stateio(backend(), &fixture("stateio_multiblock.bin"), &dir).unwrap();
    assert_eq!(report.epochs.len(), 3);
    assert_eq!(epoch_ids(&dir), vec![0, 1, 2]);
    let last = rows(&dir, 2);
    assert_eq!(last[0], row("epoch", b"40102"));
    assert_eq!(last[1], row("snapshot", &[3, 2, 1]));
    assert_eq!(last[2].1, pat(70000, 4));
    assert_eq!(last[3].1, pat(7, 5));
    assert_eq!(rows(&dir, 1)[1], row("snapshot", &pat(40000, 1)));
    assert!(statelog::tools::verify_dir(&dir).unwrap().is_pristine());
}

#[test]
fn import_of_a_file_starting_with_a_snapshot_leaves_epoch_zero_empty() {
    let mut bytes = entry(2, 0, b"S0");
    bytes.extend(entry(1, 0, b"u"));
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.state");
    std::fs::write(&src, &bytes).unwrap();
    let dir = tmp.path().join("store");
    let report = import_stateio(backend(), &src, &dir).unwrap();
    assert_eq!(report.epochs.len(), 1);
    assert_eq!((report.epochs[0].source, report.epochs[0].epoch), (0, 1));
    assert_eq!(epoch_ids(&dir), vec![0, 1]);
    assert_eq!(
        rows(&dir, 1),
        vec![
            row("epoch", b"0"),
            row("snapshot", b"S0"),
            row(&format!("update/{:020}", 1), b"u")
        ]
    );
}

#[test]
fn import_reports_damage_and_imports_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = fixture_bytes("stateio_small.bin");
    bytes[78 + 20] ^= 0x40; // u3
    bytes.truncate(bytes.len() - 3); // u5 torn
    let src = tmp.path().join("damaged.state");
    std::fs::write(&src, &bytes).unwrap();
    let dir = tmp.path().join("store");
    let report = import_stateio(backend(), &src, &dir).unwrap();
    let got: Vec<(u64, CorruptKind, bool)> = report
        .findings
        .iter()
        .map(|f| (f.offset, f.kind, f.torn_tail))
        .collect();
    assert_eq!(
        got,
        vec![
            (78, CorruptKind::Checksum, false),
            (156, CorruptKind::Incomplete, true)
        ]
    );
    assert!(report.findings.iter().all(|f| f.file == src));
    assert!(!report.is_clean());
    let updates: Vec<u64> = report.epochs.iter().map(|e| e.updates).collect();
    assert_eq!(updates, vec![2, 0, 1]);
    assert!(statelog::tools::verify_dir(&dir).unwrap().is_pristine());
}

#[test]
fn import_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("something"), b"x").unwrap();
    let err = import_stateio(backend(), &fixture("stateio_small.bin"), tmp.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    // Into an empty existing directory it goes.
    let empty = tempfile::tempdir().unwrap();
    import_stateio(backend(), &fixture("stateio_small.bin"), empty.path()).unwrap();
    assert_eq!(epoch_ids(empty.path()), vec![0, 1, 2]);
}
