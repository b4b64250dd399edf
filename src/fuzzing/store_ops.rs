//! Target 4: operation sequences against a model.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::common::{dir, store_options};
use super::input::Input;
use super::model::Kv;
use crate::backend::{CrashMode, SimBackend};
use crate::epoch::Durability;
use crate::{Error, Follower, FollowerOptions, Readable, Store, StoreOptions, Table, TableDef};

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
    let options = store_options(&mut inp);
    let ops = decode_ops(&mut inp);
    let mut run = OpsRun::start(be, options);
    for op in ops {
        run.apply(op);
        // Everything issued is durable (acknowledged, or just restored): a follower must show
        // it all. Otherwise it shows a state issued since the last open.
        let durable = run.acked + 1 == run.history.len();
        run.follow(durable);
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
        let store = Store::open_with(Arc::new(self.be.process()), dir(), self.options.clone())?;
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
    /// holds a state issued since the last open, and exactly the committed state when
    /// everything issued is durable (a follower shows durable commits only).
    fn follow(&mut self, durable: bool) {
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
        if durable {
            assert!(
                got == self.model,
                "a follower holds {got:?} after everything was made durable, not {:?}",
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
                                Ok(_) | Err(Error::RowNotFound { .. }) => {}
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
