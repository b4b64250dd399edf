//! Publication with a derived view, off the writer's path: under the writer lock a commit
//! (or a sync) only hands its newest ready state over (`Store::publish`, in `db`); once the
//! lock is released, `publish_views` computes the view and publishes the pair.
//!
//! Views are computed without any lock held. A publisher needs the newest state handed over
//! when it started: if a view of that state (or a newer one) is being computed, it waits for
//! that computation (so states handed over while a slow view runs are coalesced into the
//! newest); otherwise it computes the view of the newest state handed over itself, beside any
//! slower computation of an older one. The pair is published under the publication lock,
//! only if it is newer than the one published: published states never go backwards.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use super::db::Store;

impl Store {
    /// With a derived view: publishes the newest state handed over with its view, and then
    /// delivers to subscribers the commits that publication covers. Returns once the state
    /// that was newest when it was called (or a newer one) is published, or its view failed:
    /// then the last good pair stays published, the error is kept for
    /// [`view_error`](Self::view_error), and the state is tried again at the next
    /// publication. Never called with the writer lock held. Without a view: does nothing.
    pub(crate) fn publish_views(&self) {
        let Some(view) = &self.shared.view else {
            return;
        };
        let s = &self.shared;
        let target = s.writer.lock().handed.as_ref().map(|h| h.generation);
        let publication = &s.publication;
        let mut p = publication.progress.lock();
        if let Some(target) = target {
            let mut waited = false;
            loop {
                if s.published.load().generation >= target {
                    break;
                }
                if p.computing.iter().any(|g| *g >= target) {
                    // A view of this state or a newer one is under way: its result is ours.
                    publication.ended.wait(&mut p);
                    waited = true;
                    continue;
                }
                if waited {
                    // The computation waited for failed.
                    break;
                }
                let Some(state) = s.writer.lock().handed.clone() else {
                    break;
                };
                p.computing.push(state.generation);
                drop(p);
                let result = catch_unwind(AssertUnwindSafe(|| view.compute(&state)));
                p = publication.progress.lock();
                if let Some(i) = p.computing.iter().position(|g| *g == state.generation) {
                    p.computing.swap_remove(i);
                }
                publication.ended.notify_all();
                match result {
                    Ok(Ok(v)) => {
                        if state.generation > s.published.load().generation {
                            let mut with_view = (*state).clone();
                            with_view.view = Some(v);
                            s.published.store(Arc::new(with_view));
                        }
                    }
                    Ok(Err(e)) => *s.view_error.lock() = Some(e),
                    Err(panic) => {
                        drop(p);
                        resume_unwind(panic);
                    }
                }
                p.settled = p.settled.max(state.generation);
                break;
            }
        }
        let settled = p.settled;
        let published = s.published.load().generation;
        let mut w = s.writer.lock();
        drop(p);
        if w.handed.as_ref().is_some_and(|h| h.generation <= published) {
            w.handed = None;
        }
        // After the publication: a subscriber told of a commit reads a state that holds it
        // (unless its view failed: then the commit is delivered all the same).
        let mut durable = None;
        while let Some((generation, pos)) = w.undelivered.front().copied() {
            if generation > settled {
                break;
            }
            durable = Some(pos);
            w.undelivered.pop_front();
        }
        if let Some(durable) = durable {
            w.feed.deliver(durable);
        }
    }

    /// A guard that runs [`publish_views`](Self::publish_views) when dropped: taken before
    /// the writer lock, it publishes what was handed over under it once that is released.
    pub(crate) fn publishing(&self) -> Publishing<'_> {
        Publishing(self)
    }
}

/// Runs [`Store::publish_views`] when dropped (see [`Store::publishing`]); not while the
/// thread unwinds from a panic, where a panicking view would abort it.
pub(crate) struct Publishing<'a>(&'a Store);

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.publish_views();
        }
    }
}
