//! Target 3: restoring a valid store with damaged bytes.

use std::sync::Arc;

use super::common::{
    MODES, backend_with, dir, dir_files, drain, fixed_clock, read_only_view, segment_number,
};
use super::input::{Input, reserve, tweak};
use super::model::{StoreModel, read_model};
use crate::backend::SimBackend;
use crate::epoch::{Durability, Options, RecoveryMode, Retention};
use crate::{Error, Follower, FollowerOptions, Store, StoreOptions, TableDef};

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
        reserve_bytes: reserve(&mut inp),
        ..Options::default()
    };
    let be = SimBackend::new(seed);
    let (history, durable) = build_store(&be, &options, &mut inp);
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
            // A follower shows durable commits only: the writer left without closing may have
            // left its last buffered commits uncertified (FORMAT.md §11.11).
            Ok(m) if !hit => assert!(
                history[durable..].contains(&m),
                "a follower of an undamaged store differs"
            ),
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

/// Writes a store; returns every state it went through, in order (the first is empty), and
/// the index of the first one certified durable for a follower (a strong commit, a
/// compaction or a close made it and everything before it durable).
fn build_store(
    be: &SimBackend,
    options: &Options,
    inp: &mut Input<'_>,
) -> (Vec<StoreModel>, usize) {
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
    let mut durable = 0;
    for phase in 0..2 + inp.below(2) {
        if phase > 0 {
            store.compact().expect("compaction on the simulator");
            durable = history.len() - 1;
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
                                Ok(_) | Err(Error::RowNotFound { .. }) => {}
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
            if strong {
                durable = history.len() - 1;
            }
        }
    }
    if inp.bool() {
        store.close().expect("close on the simulator");
        durable = history.len() - 1;
    }
    (history, durable)
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
