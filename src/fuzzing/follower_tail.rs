//! A follower's tail reader on a segment that grows and shrinks under it: a store commits
//! transactions while the input appends bytes to its active segment (a write in progress of
//! another process, or garbage), cuts it (a torn tail the writer's repair would cut, or a cut
//! into committed entries), or overwrites a byte; a follower in the same directory polls
//! between the steps. Whatever the file holds, a poll never panics or hangs, and a state the
//! follower shows is one the writer committed: the rows of some transaction of its history
//! (a damaged entry fails its checksum and is never applied).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::common::{dir, dir_files, segment_number, store_options};
use super::input::Input;
use crate::backend::SimBackend;
use crate::{Durability, Follower, FollowerOptions, Readable, Store};

type Kv = BTreeMap<u8, u32>;

/// Steps an input drives at most.
const MAX_STEPS: usize = 48;

/// Runs the steps the input chooses; see the module docs.
pub fn follower_tail(data: &[u8]) {
    let mut inp = Input::new(data);
    let be = SimBackend::new(inp.u64());
    let options = store_options(&mut inp);
    let Ok(store) = Store::open_with(Arc::new(be.process()), dir(), options) else {
        return;
    };
    let Ok(table) = store.table(crate::TableDef::<u8, u32>::new("kv")) else {
        return;
    };
    let Ok(follower) = Follower::open_with(Arc::new(be.clone()), dir(), FollowerOptions::default())
    else {
        return;
    };
    // Every state the writer committed, in order (the follower may show any of them).
    let mut history: Vec<Kv> = vec![Kv::new()];
    let mut model = Kv::new();
    let mut damaged = false;
    for step in 0..MAX_STEPS {
        if inp.is_empty() {
            break;
        }
        match inp.below(8) {
            0..=2 => {
                let (k, v) = (inp.u8() % 16, step as u32);
                let durability = if inp.bool() {
                    Durability::Strong
                } else {
                    Durability::Buffered
                };
                if store
                    .write_with(durability, |tx| tx.insert(&table, &k, &v).map(|_| ()))
                    .is_ok()
                {
                    model.insert(k, v);
                    history.push(model.clone());
                }
            }
            3 => {
                let _ = store.sync();
            }
            4 => {
                // Bytes after the end: a write in progress, or garbage.
                let n = 1 + inp.index(600);
                let bytes = inp.bytes(n).to_vec();
                edit_active(&be, |b| b.extend_from_slice(&bytes));
            }
            5 => {
                // A cut: a torn tail, or into committed entries.
                let back = 1 + inp.below(700) as usize;
                damaged = true;
                edit_active(&be, |b| b.truncate(b.len().saturating_sub(back)));
            }
            6 => {
                let at = inp.u16() as usize;
                let v = inp.u8();
                damaged = true;
                edit_active(&be, |b| {
                    let len = b.len().max(1);
                    if let Some(x) = b.get_mut(at % len) {
                        *x ^= v | 1;
                    }
                });
            }
            _ => {
                if store.compact().is_err() {
                    break;
                }
            }
        }
        check_poll(&follower, &history, damaged);
    }
    check_poll(&follower, &history, damaged);
}

/// Polls; on success the follower's rows must be a state of `history`. A poll may fail only
/// once the file was damaged (a cut or an overwritten byte).
fn check_poll(follower: &Follower, history: &[Kv], damaged: bool) {
    match follower.poll() {
        Ok(_) => {}
        Err(e) => {
            assert!(damaged, "a poll failed on an undamaged directory: {e}");
            return;
        }
    }
    let snap = follower.read();
    let Ok(t) = snap.table_named::<u8, u32>("kv") else {
        // Not created yet where the follower is.
        return;
    };
    let got: Kv = match snap.list(&t) {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => panic!("a follower's rows do not decode: {e}"),
    };
    assert!(
        history.contains(&got),
        "a follower shows {got:?}, a state the writer never committed"
    );
}

/// Applies `edit` to the newest segment's bytes (the active one).
fn edit_active(be: &SimBackend, edit: impl FnOnce(&mut Vec<u8>)) {
    let newest = dir_files(be)
        .into_iter()
        .filter_map(|(name, bytes)| segment_number(&name).map(|n| (n, name, bytes)))
        .max_by_key(|(n, _, _)| *n);
    if let Some((_, name, mut bytes)) = newest {
        edit(&mut bytes);
        be.set_file_bytes(&dir().join(name), &bytes);
    }
}
