//! Derived views: a function of each committed state, published with it.

use std::sync::Arc;

use super::read::Snapshot;
use super::state::{State, ViewValue};
use crate::error::Result;

type ViewFn = dyn Fn(&Snapshot) -> Result<ViewValue> + Send + Sync;

/// A function computing a derived view (an index, a cache, an overlay) from each new committed
/// state. Readers get it with [`Snapshot::view`]; no reader ever sees a state without its view.
/// If the function fails, the previous state and view stay published and the error is kept
/// for [`Store::view_error`](crate::Store::view_error); the transaction itself is committed.
#[derive(Clone)]
pub struct DerivedView(Arc<ViewFn>);

impl DerivedView {
    /// A view made by `f`.
    pub fn new<T: std::any::Any + Send + Sync>(
        f: impl Fn(&Snapshot) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        DerivedView(Arc::new(move |s| f(s).map(|v| Arc::new(v) as ViewValue)))
    }
}

impl DerivedView {
    /// The view of the state `snap` reads.
    pub(crate) fn of(&self, snap: &Snapshot) -> Result<ViewValue> {
        (self.0)(snap)
    }

    /// The view of `state`.
    pub(crate) fn compute(&self, state: &Arc<State>) -> Result<ViewValue> {
        (self.0)(&Snapshot {
            state: state.clone(),
        })
    }
}

impl std::fmt::Debug for DerivedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedView")
    }
}
