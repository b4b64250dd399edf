//! The compaction gate: one compaction (or other snapshot) at a time.

use std::sync::Arc;

use crate::sync::{Condvar, Mutex};

/// One compaction at a time: automatic ones skip when one runs, explicit ones (and other
/// snapshots: checkpoints, restores) wait for it.
#[derive(Default)]
pub(crate) struct Gate {
    busy: Mutex<bool>,
    idle: Condvar,
}

/// A held [`Gate`]; released on drop.
pub(crate) struct GateGuard(Arc<Gate>);

impl Gate {
    /// Waits until no compaction runs, then holds the gate.
    pub(crate) fn acquire(self: &Arc<Self>) -> GateGuard {
        let mut busy = self.busy.lock();
        while *busy {
            self.idle.wait(&mut busy);
        }
        *busy = true;
        GateGuard(self.clone())
    }

    /// Holds the gate if no compaction runs.
    pub(super) fn try_acquire(self: &Arc<Self>) -> Option<GateGuard> {
        let mut busy = self.busy.lock();
        if *busy {
            return None;
        }
        *busy = true;
        Some(GateGuard(self.clone()))
    }

    /// Whether a compaction runs now.
    pub(super) fn running(&self) -> bool {
        *self.busy.lock()
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        *self.0.busy.lock() = false;
        self.0.idle.notify_all();
    }
}
