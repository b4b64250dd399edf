//! Fault injection: counting operations against the injected faults, and the counted,
//! faultable steps of a namespace change.

use std::io;
use std::path::Path;

use super::errors::fault_error;
use super::model::{NsChange, State};
use super::types::{FaultKind, OpKind};

impl State {
    /// Counts an operation of `kind` for the faults; returns the kind of the fault that fires.
    pub(super) fn fault(&mut self, kind: OpKind) -> Option<FaultKind> {
        let mut fired = None;
        self.faults.retain_mut(|(fault, seen)| {
            if fault.op != kind {
                return true;
            }
            *seen = seen.saturating_add(1);
            if *seen >= fault.nth.max(1) {
                fired = fired.or(Some(fault.kind));
                false
            } else {
                true
            }
        });
        fired
    }

    /// Fails with the error of a fault that fires on this operation of `kind` (any fault kind
    /// acts as a plain failure here).
    pub(super) fn plain_fault(&mut self, kind: OpKind) -> io::Result<()> {
        match self.fault(kind) {
            Some(k) => Err(fault_error(k)),
            None => Ok(()),
        }
    }

    /// Step 1 of a namespace operation: a counted, faultable change of the live namespace.
    pub(super) fn ns_change(&mut self, kind: OpKind, change: NsChange) -> io::Result<()> {
        self.alive()?;
        self.count_op();
        self.plain_fault(kind)?;
        change.replay(&mut self.live);
        self.pending_ns.push(change);
        Ok(())
    }

    /// Step 2 of a namespace operation: the directory sync.
    pub(super) fn ns_sync(&mut self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        self.count_op();
        self.plain_fault(OpKind::SyncDir)?;
        self.sync_dir_now(dir);
        Ok(())
    }
}
