//! `verify` tells damage from crash residue (issue 26): every bit flip inside the entries of a
//! closed store, every cut of a closed or sealed segment, and every deleted segment is damage
//! (not clean, exit 1 in the CLI); the crash-point suites check the other half (every
//! directory a crash leaves is clean).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use statelog::backend::{Backend, SimBackend};
use statelog::frame::LogReader;
use statelog::tools::verify;
use statelog::{Store, StoreOptions};

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

/// A closed store of several epochs and segments on the simulator.
fn closed_store() -> SimBackend {
    let sim = SimBackend::new(8);
    let mut opts: StoreOptions = common::sim_store_options(3, 2048);
    opts.auto_compact = false;
    let store = Store::open_with(Arc::new(sim.process()), &dir(), opts).unwrap();
    let t = store.bytes_table("t").unwrap();
    for round in 0..3u32 {
        for i in 0..30u32 {
            store
                .write(|tx| tx.put_bytes(&t, &(round * 100 + i).to_le_bytes(), &[5u8; 50]))
                .unwrap();
        }
        if round < 2 {
            store.compact().unwrap();
        }
    }
    store.close().unwrap();
    drop(store);
    sim
}

fn segments(sim: &SimBackend) -> Vec<String> {
    let mut v: Vec<String> = sim
        .list(&dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

/// A copy of `sim`'s directory with `path` set to `bytes` (or removed when `None`).
fn with_file(sim: &SimBackend, path: &Path, bytes: Option<&[u8]>) -> SimBackend {
    let copy = SimBackend::new(9);
    for name in sim.list(&dir()).unwrap() {
        let p = dir().join(&name);
        if p == path {
            if let Some(b) = bytes {
                copy.set_file_bytes(&p, b);
            }
        } else {
            copy.set_file_bytes(&p, &sim.file_bytes(&p).unwrap());
        }
    }
    copy
}

fn damaged(sim: &SimBackend) -> bool {
    !verify(Arc::new(sim.clone()), &dir(), &mut |_, _| {})
        .unwrap()
        .is_clean()
}

#[test]
fn every_damage_to_a_closed_store_is_reported() {
    let sim = closed_store();
    assert!(!damaged(&sim), "the intact store verifies clean");
    let segs = segments(&sim);
    assert!(segs.len() >= 4, "{segs:?}");
    let (mut flips, mut cuts) = (0, 0);
    for name in &segs {
        let path = dir().join(name);
        let bytes = sim.file_bytes(&path).unwrap();
        // The bytes of every entry (record headers included): certified by a later sync mark,
        // a SEAL, or the clean close the manifest records.
        let mut ranges = Vec::new();
        {
            let be: Arc<dyn Backend> = Arc::new(sim.clone());
            let mut r = LogReader::open(&*be, &path, false).unwrap();
            while let Some(e) = r.next_entry().unwrap() {
                ranges.push((e.pos.start, e.pos.end));
            }
        }
        for &(start, end) in &ranges {
            for at in (start..end).step_by(5) {
                let mut b = bytes.clone();
                b[at as usize] ^= 0x10;
                assert!(
                    damaged(&with_file(&sim, &path, Some(&b))),
                    "{name}: a flipped bit at {at} verified clean"
                );
                flips += 1;
            }
        }
        // Cuts: at every entry boundary and inside entries.
        for &(start, end) in &ranges {
            for at in [start, (start + end) / 2] {
                if at == 0 || at >= bytes.len() as u64 {
                    continue;
                }
                assert!(
                    damaged(&with_file(&sim, &path, Some(&bytes[..at as usize]))),
                    "{name}: a cut at {at} verified clean"
                );
                cuts += 1;
            }
        }
        assert!(
            damaged(&with_file(&sim, &path, None)),
            "{name} deleted: verified clean"
        );
    }
    eprintln!(
        "{flips} bit flips, {cuts} cuts, {} deletions: all damage",
        segs.len()
    );
    assert!(flips > 500 && cuts > 50);
}
