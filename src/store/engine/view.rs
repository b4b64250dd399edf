//! Derived views: a function of each committed state, published with it.

use std::sync::Arc;

use super::read::Snapshot;
use super::state::{State, ViewValue};
use crate::error::Result;
use crate::sync::{Condvar, Mutex};

type ViewFn = dyn Fn(&Snapshot) -> Result<ViewValue> + Send + Sync;

/// A function computing a derived view (an index, a cache, an overlay) from each new committed
/// state. Readers get it with [`Snapshot::view`]; no reader ever sees a state without its view,
/// and the states they see never go backwards.
///
/// The view is computed off the writer's path: a commit hands its state over to publication
/// and releases the writer lock, and only then is the view computed and the (state, view)
/// pair published, so a slow view holds back no other writer (nor group commit). `write`
/// still returns only once its state, or a newer one, is published with its view, or the
/// view failed for it: read-your-writes holds as without a view. States committed while a
/// slow view runs may be skipped: the next publication computes the view of the newest.
///
/// If the function fails, the last good (state, view) pair stays published and the error is
/// kept for [`Store::view_error`](crate::Store::view_error); the transaction itself is
/// committed and durable, but invisible to readers until a view succeeds. Each later commit
/// or [`Store::sync`](crate::Store::sync) tries the newest state again, and once the view
/// succeeds, that state is published with it.
///
/// ```
/// use statelog::{DerivedView, Readable, Snapshot, Store, StoreOptions};
///
/// # fn main() -> statelog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// // A view of how many tables have rows, computed once per published state.
/// let view = DerivedView::new(|s: &Snapshot| Ok(s.tables().iter().filter(|t| t.rows > 0).count()));
/// let store = Store::open(dir.path(), StoreOptions::default().view(view))?;
/// let b = store.bytes_table("b")?;
/// store.write(|tx| tx.put_bytes(&b, b"k", b"v"))?;
/// // Published with the state `write` committed.
/// assert_eq!(*store.read().view::<usize>().unwrap(), 1);
/// # Ok(())
/// # }
/// ```
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

/// The store's publications with a derived view (see `publish.rs`): which views are being
/// computed, and a condition variable for the publishers waiting on one of them.
#[derive(Default)]
pub(crate) struct Publication {
    pub(crate) progress: Mutex<Progress>,
    /// Notified when a view computation ends.
    pub(crate) ended: Condvar,
}

/// What the publishers did, under [`Publication::progress`].
#[derive(Default)]
pub(crate) struct Progress {
    /// The generations of the states whose views are being computed now.
    pub(crate) computing: Vec<u64>,
    /// The newest generation published, or whose view failed: the feed delivers what it
    /// covers.
    pub(crate) settled: u64,
}
