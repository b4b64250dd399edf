//! Target 2: opening a directory of arbitrary files.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::common::{
    MODES, SEGMENT_TAG, backend_with, dir, dir_files, drain, fixed_clock, read_only_view,
    segment_number,
};
use super::input::{Input, field, tweak};
use crate::backend::{Backend, ReadAt, SimBackend};
use crate::epoch::{Durability, EpochLog, Options};
use crate::frame::{LogOptions, LogReader, LogWriter};
use crate::{Readable, Store, StoreOptions, TableDef};

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
    // Version 2 (parts allowed) or 1 (parts are damage).
    let version = if inp.below(3) == 0 { 2 } else { 1 };
    let Ok(mut w) = LogWriter::create_version(&be, path, &options, version) else {
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
    const STATE: u8 = 6;
    let roll = inp.below(14);
    let kind = match (first, roll) {
        (true, 0..=6) => SNAPSHOT,
        (true, 7..=9) => CONTINUE,
        (_, 0..=5) => UPDATE,
        (_, 6) => SEAL,
        (_, 7) => CLOSE,
        (_, 8) => SNAPSHOT,
        (_, 9) => CONTINUE,
        (_, 10) => 0,
        (_, 11 | 12) => STATE,
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
            let flags = match inp.below(10) {
                0 => inp.u8(),
                1 => 0,
                2 => 1,
                // A state in parts (FORMAT.md §11.2): STATE entries follow.
                3 | 4 => 7,
                _ => 3,
            };
            b.push(flags);
            if flags & 1 != 0 && (flags & 4 == 0 || inp.below(8) == 0) {
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
        STATE => {
            // Flags: usually LAST or none, sometimes anything.
            b.push(match inp.below(8) {
                0 => inp.u8(),
                1..=4 => 1,
                _ => 0,
            });
            let state = &samples().state;
            match inp.below(4) {
                // The sample state cut in two, so two parts make it whole.
                0 | 1 => {
                    let cut = inp.index(state.len() + 1);
                    let (head, tail) = state.split_at(cut);
                    b.extend_from_slice(if inp.below(2) == 0 { head } else { tail });
                }
                2 => b.extend_from_slice(state),
                _ => {
                    let n = inp.index(256);
                    b.extend_from_slice(inp.bytes(n));
                }
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
