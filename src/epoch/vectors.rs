//! FORMAT.md §11 agrees with the code: its layout tables match the offset constants of
//! `entry.rs`, its hex vectors are what the encoders and a real store write and what `decode`
//! reads back, its rejection rules are what `decode` refuses, and a `REWIND` file laid out as
//! its table says is one a writer accepts and finishes.
//!
//! The epoch vectors use the keyword `epoch-vector NAME`, so the frame test (which owns every
//! `vector NAME` line) does not see them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::dir::{REWIND_FILE, SEGMENT_TAG, segment_name, segment_path};
use super::entry::*;
use super::read::entry_error_kind;
use super::{Clock, Durability, EpochLog, Options, Retention};
use crate::backend::{Backend, FsBackend};
use crate::error::{CorruptKind, Error};
use crate::format_doc::{assert_vectors_match, decode_hex, doc_rows, doc_vectors, hex};
use crate::frame::LogReader;

/// The creation time used by every vector: 2023-11-14 22:13:20 UTC, in Unix milliseconds.
const CREATED_MS: u64 = 1_700_000_000_000;

/// A layout row: offset, width (`None` for `rest`: the field runs to the end of the entry),
/// field name, meaning.
type Row = (usize, Option<usize>, String, String);

/// Rows `| offset | width | field | meaning |` of a layout table.
fn doc_layout(name: &str) -> Vec<Row> {
    doc_rows(name)
        .into_iter()
        .filter_map(|cells| {
            let offset = cells.first()?.parse().ok()?;
            let width = match cells.get(1)?.as_str() {
                "rest" => None,
                w => Some(w.parse().ok()?),
            };
            let field = cells.get(2)?.trim_matches('`').to_string();
            let meaning = cells.get(3).cloned().unwrap_or_default();
            Some((offset, width, field, meaning))
        })
        .collect()
}

/// Rows `| value | name | ... |` whose value is a number and whose name is not `(invalid)`.
fn doc_values(name: &str) -> Vec<(u8, String)> {
    doc_rows(name)
        .into_iter()
        .filter_map(|cells| {
            let value = cells.first()?.parse().ok()?;
            let name = cells.get(1)?.trim_matches('`').to_string();
            (!name.starts_with('(')).then_some((value, name))
        })
        .collect()
}

/// Offset, width and field of each layout row (the meaning left out).
fn layout_only(rows: &[Row]) -> Vec<(usize, Option<usize>, String)> {
    rows.iter()
        .map(|(o, w, f, _)| (*o, *w, f.clone()))
        .collect()
}

/// The end of the fixed part of a layout: the offset of a `rest` field, or the end of the last.
fn fixed_len(rows: &[Row]) -> usize {
    rows.last().map_or(0, |(o, w, _, _)| o + w.unwrap_or(0))
}

fn snapshot_with_state() -> SnapshotHead {
    SnapshotHead {
        epoch: 2,
        prev: Some((1, 3)),
        created_ms: CREATED_MS,
        high_epoch: 2,
        high_segment: 5,
        has_state: true,
    }
}

fn snapshot_epoch0() -> SnapshotHead {
    SnapshotHead {
        epoch: 0,
        prev: None,
        created_ms: CREATED_MS,
        high_epoch: 0,
        high_segment: 1,
        has_state: false,
    }
}

fn continue_head() -> ContinueHead {
    ContinueHead {
        epoch: 2,
        epoch_segment: 5,
        prev_segment: 5,
        created_ms: CREATED_MS,
        high_epoch: 2,
        high_segment: 6,
    }
}

/// The vectors, made by the encoders.
fn code_vectors() -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut update = Vec::new();
    encode_update(&mut update, 7, b"abc");
    out.insert("update-entry".into(), update);
    out.insert(
        "snapshot-entry".into(),
        encode_snapshot(&snapshot_with_state(), Some(b"S")),
    );
    out.insert(
        "snapshot-epoch0".into(),
        encode_snapshot(&snapshot_epoch0(), None),
    );
    out.insert(
        "snapshot-parts-entry".into(),
        encode_snapshot_parts(&snapshot_with_state()),
    );
    let mut part = Vec::new();
    encode_state(&mut part, 2, false, b"S1");
    out.insert("state-entry".into(), part);
    let mut last = Vec::new();
    encode_state(&mut last, 2, true, b"S2");
    out.insert("state-entry-last".into(), last);
    out.insert("continue-entry".into(), encode_continue(&continue_head()));
    out.insert("seal-entry".into(), encode_seal(2));
    out.insert("close-entry".into(), encode_close(2));
    out
}

#[test]
fn format_md_epoch_vectors_match_the_encoders() {
    let doc = doc_vectors("epoch-vector");
    let code = code_vectors();
    assert_vectors_match("epoch vectors", &doc, &code);
}

#[test]
fn format_md_epoch_vectors_decode_back() {
    let doc = doc_vectors("epoch-vector");
    let get = |name: &str| doc.get(name).map(Vec::as_slice).unwrap_or(&[]);
    assert_eq!(
        decode(get("update-entry")),
        Ok(Decoded::Update {
            epoch: 7,
            data: b"abc"
        })
    );
    assert_eq!(
        decode(get("snapshot-entry")),
        Ok(Decoded::Snapshot {
            head: snapshot_with_state(),
            state: b"S",
            parts: false,
        })
    );
    assert_eq!(
        decode(get("snapshot-epoch0")),
        Ok(Decoded::Snapshot {
            head: snapshot_epoch0(),
            state: b"",
            parts: false,
        })
    );
    assert_eq!(
        decode(get("continue-entry")),
        Ok(Decoded::Continue(continue_head()))
    );
    assert_eq!(decode(get("seal-entry")), Ok(Decoded::Seal { epoch: 2 }));
    assert_eq!(decode(get("close-entry")), Ok(Decoded::Close { epoch: 2 }));
    assert_eq!(
        decode(get("snapshot-parts-entry")),
        Ok(Decoded::Snapshot {
            head: snapshot_with_state(),
            state: b"",
            parts: true,
        })
    );
    assert_eq!(
        decode(get("state-entry")),
        Ok(Decoded::State {
            epoch: 2,
            last: false,
            data: b"S1",
        })
    );
    assert_eq!(
        decode(get("state-entry-last")),
        Ok(Decoded::State {
            epoch: 2,
            last: true,
            data: b"S2",
        })
    );
}

#[test]
fn format_md_epoch_tables_match_the_constants() {
    let row = |o: usize, w: Option<usize>, f: &str| (o, w, f.to_string());
    let common = vec![
        row(KIND_OFFSET, Some(1), "kind"),
        row(EPOCH_OFFSET, Some(8), "epoch"),
    ];

    let mut update = common.clone();
    update.push(row(COMMON_LEN, None, "data"));
    assert_eq!(layout_only(&doc_layout("update-entry")), update);

    let mut snapshot = common.clone();
    snapshot.extend([
        row(SNAP_PREV_EPOCH_OFFSET, Some(8), "prev_epoch"),
        row(SNAP_PREV_SEGMENT_OFFSET, Some(8), "prev_segment"),
        row(SNAP_CREATED_OFFSET, Some(8), "created_ms"),
        row(SNAP_HIGH_EPOCH_OFFSET, Some(8), "high_epoch"),
        row(SNAP_HIGH_SEGMENT_OFFSET, Some(8), "high_segment"),
        row(SNAP_FLAGS_OFFSET, Some(1), "flags"),
        row(SNAP_STATE_OFFSET, None, "state"),
    ]);
    let doc = doc_layout("snapshot-entry");
    assert_eq!(layout_only(&doc), snapshot);
    assert_eq!(fixed_len(&doc), SNAP_STATE_OFFSET);

    let mut cont = common.clone();
    cont.extend([
        row(CONT_EPOCH_SEGMENT_OFFSET, Some(8), "epoch_segment"),
        row(CONT_PREV_SEGMENT_OFFSET, Some(8), "prev_segment"),
        row(CONT_CREATED_OFFSET, Some(8), "created_ms"),
        row(CONT_HIGH_EPOCH_OFFSET, Some(8), "high_epoch"),
        row(CONT_HIGH_SEGMENT_OFFSET, Some(8), "high_segment"),
    ]);
    let doc = doc_layout("continue-entry");
    assert_eq!(layout_only(&doc), cont);
    assert_eq!(fixed_len(&doc), CONT_LEN);

    let mut state = common.clone();
    state.extend([
        row(STATE_FLAGS_OFFSET, Some(1), "flags"),
        row(STATE_DATA_OFFSET, None, "data"),
    ]);
    let doc = doc_layout("state-entry");
    assert_eq!(layout_only(&doc), state);
    assert_eq!(fixed_len(&doc), STATE_DATA_OFFSET);

    for name in ["seal-entry", "close-entry"] {
        let doc = doc_layout(name);
        assert_eq!(layout_only(&doc), common, "{name}");
        assert_eq!(fixed_len(&doc), COMMON_LEN, "{name}");
    }

    // The kind column of each table names its kind byte.
    for (name, kind) in [
        ("update-entry", KIND_UPDATE),
        ("snapshot-entry", KIND_SNAPSHOT),
        ("continue-entry", KIND_CONTINUE),
        ("seal-entry", KIND_SEAL),
        ("close-entry", KIND_CLOSE),
        ("state-entry", KIND_STATE),
    ] {
        let meaning = doc_layout(name)
            .into_iter()
            .find(|(_, _, f, _)| f == "kind")
            .map(|(_, _, _, m)| m)
            .unwrap_or_default();
        assert!(
            meaning.starts_with(&format!("{kind} ")) || meaning == kind.to_string(),
            "{name}: kind cell {meaning:?}, code {kind}"
        );
    }

    let kinds: Vec<(u8, String)> = vec![
        (KIND_UPDATE, "UPDATE".into()),
        (KIND_SNAPSHOT, "SNAPSHOT".into()),
        (KIND_CONTINUE, "CONTINUE".into()),
        (KIND_SEAL, "SEAL".into()),
        (KIND_CLOSE, "CLOSE".into()),
        (KIND_STATE, "STATE".into()),
    ];
    assert_eq!(doc_values("entry-kinds"), kinds);
    let flags: Vec<(u8, String)> = vec![
        (FLAG_HAS_STATE, "HAS_STATE".into()),
        (FLAG_HAS_PREV, "HAS_PREV".into()),
        (FLAG_PARTS, "PARTS".into()),
    ];
    assert_eq!(doc_values("snapshot-flags"), flags);
    assert_eq!(
        doc_values("state-flags"),
        vec![(STATE_FLAG_LAST, "LAST".into())]
    );
}

/// The rejection rules of FORMAT.md §11.2, and the corruption kinds it names for them.
#[test]
fn decode_rejects_what_format_md_forbids() {
    // Shorter than kind + epoch: malformed whatever the kind byte.
    for len in 0..COMMON_LEN {
        for kind in [0u8, KIND_UPDATE, KIND_SEAL, 200] {
            let mut b = vec![0u8; len];
            if let Some(k) = b.first_mut() {
                *k = kind;
            }
            assert_eq!(decode(&b), Err(EntryError::Short), "len {len} kind {kind}");
        }
    }
    // Kind 0 and 7..=255.
    for kind in std::iter::once(0u8).chain(7..=255) {
        let mut b = vec![0u8; CONT_LEN];
        if let Some(k) = b.first_mut() {
            *k = kind;
        }
        assert_eq!(decode(&b), Err(EntryError::Kind(kind)));
        assert_eq!(
            entry_error_kind(EntryError::Kind(kind)),
            CorruptKind::EntryKind(kind)
        );
    }
    // An update may be empty.
    let mut b = Vec::new();
    encode_update(&mut b, 3, b"");
    assert_eq!(b.len(), COMMON_LEN);
    assert_eq!(
        decode(&b),
        Ok(Decoded::Update {
            epoch: 3,
            data: b""
        })
    );
    // Snapshot: at least 50 bytes; no unknown flag bits; no state bytes without HAS_STATE.
    let snap = encode_snapshot(&snapshot_epoch0(), None);
    assert_eq!(snap.len(), SNAP_STATE_OFFSET);
    assert_eq!(
        decode(snap.get(..SNAP_STATE_OFFSET - 1).unwrap_or(&[])),
        Err(EntryError::Short)
    );
    for flags in 0..=255u8 {
        let mut b = snap.clone();
        if let Some(f) = b.get_mut(SNAP_FLAGS_OFFSET) {
            *f = flags;
        }
        // PARTS only with HAS_STATE.
        let want_ok = flags & !(FLAG_HAS_STATE | FLAG_HAS_PREV | FLAG_PARTS) == 0
            && (flags & FLAG_PARTS == 0 || flags & FLAG_HAS_STATE != 0);
        assert_eq!(decode(&b).is_ok(), want_ok, "flags {flags}");
        if !want_ok {
            assert_eq!(decode(&b), Err(EntryError::Flags(flags)));
        }
        b.push(b'x');
        // State bytes only with HAS_STATE and not PARTS.
        let with_state_ok = want_ok && flags & FLAG_HAS_STATE != 0 && flags & FLAG_PARTS == 0;
        assert_eq!(decode(&b).is_ok(), with_state_ok, "flags {flags} + state");
    }
    // HAS_STATE with no state bytes is an empty state, not an absent one.
    let empty = encode_snapshot(&snapshot_with_state(), Some(b""));
    assert_eq!(
        decode(&empty),
        Ok(Decoded::Snapshot {
            head: snapshot_with_state(),
            state: b"",
            parts: false,
        })
    );
    // Continue, seal and close have exact lengths.
    let cont = encode_continue(&continue_head());
    assert_eq!(cont.len(), CONT_LEN);
    for b in [
        cont.get(..CONT_LEN - 1).unwrap_or(&[]).to_vec(),
        [cont.as_slice(), &[0]].concat(),
        [encode_seal(1).as_slice(), &[0]].concat(),
        [encode_close(1).as_slice(), &[0]].concat(),
    ] {
        assert_eq!(decode(&b), Err(EntryError::Short), "{}", hex(&b));
    }
    assert_eq!(entry_error_kind(EntryError::Short), CorruptKind::Payload);
    assert_eq!(entry_error_kind(EntryError::Flags(4)), CorruptKind::Payload);
}

fn fs() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn fixed_clock_options() -> Options {
    Options {
        clock: Clock::new(|| UNIX_EPOCH + Duration::from_millis(CREATED_MS)),
        retention: Retention {
            keep_epochs: 100,
            keep_for: None,
        },
        ..Options::default()
    }
}

/// The frame-header tag and the entry payloads of segment `seq`.
fn segment_entries(dir: &Path, seq: u64) -> (u32, Vec<Vec<u8>>) {
    let mut r =
        LogReader::open(&FsBackend::new(), &segment_path(dir, seq), false).expect("segment");
    let tag = r.header().tag;
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().expect("entry") {
        out.push(e.payload.to_vec());
    }
    (tag, out)
}

/// The vectors (all but `update-entry`, whose epoch 7 a short history does not reach) are
/// entries a store writes: with the clock fixed and a rotation after every append, the history
/// epoch 0 (segments 1, 2), epoch 1 (3, 4), epoch 2 (5, 6) puts them in segments 1, 5 and 6.
#[test]
fn format_md_epoch_vectors_are_what_a_store_writes() {
    let doc = doc_vectors("epoch-vector");
    let get = |name: &str| doc.get(name).cloned().unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        segment_bytes: 1,
        ..fixed_clock_options()
    };
    let (log, restored) = EpochLog::open(fs(), dir.path(), options.clone()).expect("open");
    assert_eq!(restored.epoch.id, 0);
    assert!(restored.snapshot.is_none());
    let (tag, seg1) = segment_entries(dir.path(), 1);
    assert_eq!(tag, SEGMENT_TAG);
    assert_eq!(tag, 1, "FORMAT.md §11.1 gives segments tag 1");
    assert_eq!(seg1, vec![get("snapshot-epoch0")]);

    log.append(b"u0", Durability::Strong).expect("append"); // seals 1, starts 2
    log.snapshot(b"R").expect("snapshot"); // seals 2, epoch 1 in 3
    log.append(b"u1", Durability::Strong).expect("append"); // seals 3, starts 4
    log.snapshot(b"S").expect("snapshot"); // seals 4, epoch 2 in 5
    log.append(b"abc", Durability::Buffered).expect("append"); // seals 5, starts 6
    log.close().expect("close");
    drop(log);

    for seq in 1..=6 {
        assert!(dir.path().join(segment_name(seq)).exists(), "segment {seq}");
    }
    let mut update = Vec::new();
    encode_update(&mut update, 2, b"abc");
    let (_, seg5) = segment_entries(dir.path(), 5);
    assert_eq!(
        seg5,
        vec![get("snapshot-entry"), update, get("seal-entry")],
        "segment 5"
    );
    let (_, seg6) = segment_entries(dir.path(), 6);
    assert_eq!(
        seg6,
        vec![get("continue-entry"), get("close-entry")],
        "segment 6"
    );

    // Restore (§11.4) reads epoch 2 from segments 5 and 6 and appends after the CLOSE.
    let (log, restored) = EpochLog::open(fs(), dir.path(), options).expect("reopen");
    assert_eq!(restored.epoch.id, 2);
    assert_eq!(restored.epoch.segment, 5);
    assert_eq!(restored.snapshot.as_deref(), Some(&b"S"[..]));
    assert_eq!(restored.updates.segments(), &[5, 6]);
    let updates: Vec<Vec<u8>> = restored.updates.map(|u| u.expect("update")).collect();
    assert_eq!(updates, vec![b"abc".to_vec()]);
    let ids: Vec<u64> = log.epochs().expect("epochs").iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![2, 1, 0]);
}

/// Builds a `REWIND` file from the FORMAT.md table: each field at the offset and width the
/// table gives, the magic from the table's hex, the checksum over the bytes before it.
fn rewind_file_from_doc(epoch: u64, cut_from: u64, high_epoch: u64, high_segment: u64) -> Vec<u8> {
    let rows = doc_layout("rewind-file");
    let len = fixed_len(&rows);
    let mut b = vec![0u8; len];
    let mut crc_at = None;
    for (offset, width, field, meaning) in &rows {
        let width = width.expect("fixed width");
        let value: Vec<u8> = match field.as_str() {
            "magic" => {
                let hex = meaning.split('`').nth(1).expect("magic hex in backticks");
                decode_hex(&hex.replace(' ', ""))
            }
            "epoch" => epoch.to_le_bytes().to_vec(),
            "cut_from" => cut_from.to_le_bytes().to_vec(),
            "high_epoch" => high_epoch.to_le_bytes().to_vec(),
            "high_segment" => high_segment.to_le_bytes().to_vec(),
            "crc" => {
                crc_at = Some(*offset);
                vec![0; width]
            }
            other => panic!("unknown REWIND field {other}"),
        };
        assert_eq!(value.len(), width, "{field}");
        b.get_mut(*offset..offset + width)
            .expect("field inside the file")
            .copy_from_slice(&value);
    }
    let crc_at = crc_at.expect("crc row");
    let crc = crc32fast::hash(b.get(..crc_at).unwrap_or(&[]));
    b.get_mut(crc_at..crc_at + 4)
        .expect("crc inside the file")
        .copy_from_slice(&crc.to_le_bytes());
    b
}

/// A `REWIND` file laid out as FORMAT.md §11.8 says is accepted by `EpochLog::open`, which
/// finishes the rewind as the protocol says; a damaged one makes open fail and changes nothing.
#[test]
fn format_md_rewind_file_is_finished_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = fixed_clock_options();
    {
        let (log, _) = EpochLog::open(fs(), dir.path(), options.clone()).expect("open");
        log.append(b"a", Durability::Strong).expect("append");
        log.snapshot(b"S1").expect("snapshot"); // epoch 1 in segment 2
        log.append(b"b", Durability::Strong).expect("append");
        log.snapshot(b"S2").expect("snapshot"); // epoch 2 in segment 3
        log.append(b"c", Durability::Strong).expect("append");
        log.close().expect("close");
    }
    // Rewind to epoch 1: cut from epoch 2's snapshot segment (3); marks before: epoch 2,
    // segment 3.
    let intent = rewind_file_from_doc(1, 3, 2, 3);
    assert_eq!(intent.len(), 44, "FORMAT.md §11.8 gives REWIND 44 bytes");
    let path = dir.path().join(REWIND_FILE);

    // Damaged: a flipped checksum bit, or a short file.
    let mut bad = intent.clone();
    if let Some(last) = bad.last_mut() {
        *last ^= 1;
    }
    for bytes in [bad, intent.get(..43).unwrap_or(&[]).to_vec()] {
        std::fs::write(&path, &bytes).expect("write REWIND");
        match EpochLog::open(fs(), dir.path(), options.clone()) {
            Err(Error::Corrupt { offset, kind, .. }) => {
                assert_eq!((offset, kind), (0, CorruptKind::Payload));
            }
            other => panic!("damaged REWIND accepted: {:?}", other.map(|_| ())),
        }
        assert!(segment_path(dir.path(), 3).exists(), "nothing renamed");
    }

    std::fs::write(&path, &intent).expect("write REWIND");
    let (log, restored) = EpochLog::open(fs(), dir.path(), options).expect("open");
    assert!(!path.exists(), "intent removed");
    assert!(!segment_path(dir.path(), 3).exists());
    let rewound = dir.path().join(format!("{}.rewound", segment_name(3)));
    assert!(rewound.exists(), "segment 3 renamed aside");
    assert_eq!(restored.epoch.id, 1);
    assert_eq!(restored.snapshot.as_deref(), Some(&b"S1"[..]));
    assert_eq!(restored.updates.segments(), &[2, 4]);
    let updates: Vec<Vec<u8>> = restored.updates.map(|u| u.expect("update")).collect();
    assert_eq!(updates, vec![b"b".to_vec()]);
    // The CONTINUE segment is numbered high_segment + 1 and carries the marks of the intent.
    let (_, seg4) = segment_entries(dir.path(), 4);
    let cont = ContinueHead {
        epoch: 1,
        epoch_segment: 2,
        prev_segment: 2,
        created_ms: CREATED_MS,
        high_epoch: 2,
        high_segment: 4,
    };
    assert_eq!(seg4, vec![encode_continue(&cont)]);
    // Ids and segment numbers are not reused: the next epoch is 3, in segment 5.
    let report = log.snapshot(b"S3").expect("snapshot");
    assert_eq!((report.epoch.id, report.epoch.segment), (3, 5));
}

/// A STATE entry (FORMAT.md §11.2): at least 10 bytes, no flag bit but LAST.
#[test]
fn state_entries_reject_short_and_unknown_flags() {
    let mut b = Vec::new();
    encode_state(&mut b, 4, true, b"");
    assert_eq!(b.len(), STATE_DATA_OFFSET);
    assert_eq!(
        decode(&b),
        Ok(Decoded::State {
            epoch: 4,
            last: true,
            data: b""
        })
    );
    assert_eq!(
        decode(b.get(..STATE_DATA_OFFSET - 1).unwrap_or(&[])),
        Err(EntryError::Short)
    );
    for flags in 2..=255u8 {
        if let Some(f) = b.get_mut(STATE_FLAGS_OFFSET) {
            *f = flags;
        }
        assert_eq!(decode(&b), Err(EntryError::Flags(flags)), "flags {flags}");
    }
}
