//! The locks the concurrent paths share (the log's group commit and seals, the store's writer,
//! the compaction gate, followers, the weak flusher). Normally `parking_lot`'s; built with
//! `RUSTFLAGS="--cfg shuttle"` they are `shuttle`'s, with the same interface, so that
//! `tests/shuttle_sim.rs` explores the interleavings of those paths under a controlled,
//! seeded scheduler (every lock, unlock and wait is a point where it may switch threads).

#[cfg(not(shuttle))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};

#[cfg(shuttle)]
pub(crate) use controlled::{Condvar, Mutex, MutexGuard};

#[cfg(shuttle)]
mod controlled {
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    /// `shuttle`'s mutex with `parking_lot`'s interface (no poisoning).
    #[derive(Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Mutex { .. }")
        }
    }

    /// A held [`Mutex`]; `None` only while a [`Condvar`] waits or
    /// [`MutexGuard::unlocked`] runs.
    pub(crate) struct MutexGuard<'a, T> {
        lock: &'a Mutex<T>,
        inner: Option<shuttle::sync::MutexGuard<'a, T>>,
    }

    fn unpoison<G>(r: Result<G, std::sync::PoisonError<G>>) -> G {
        r.unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                lock: self,
                inner: Some(unpoison(self.0.lock())),
            }
        }
    }

    impl<'a, T> MutexGuard<'a, T> {
        /// Runs `f` with the mutex released, then takes it again.
        pub(crate) fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
            drop(guard.inner.take());
            let r = f();
            guard.inner = Some(unpoison(guard.lock.0.lock()));
            r
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.inner.as_deref().expect("the guard holds its lock")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.inner.as_deref_mut().expect("the guard holds its lock")
        }
    }

    /// `shuttle`'s condition variable with `parking_lot`'s interface.
    #[derive(Default)]
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl std::fmt::Debug for Condvar {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Condvar")
        }
    }

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(shuttle::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.inner.take().expect("the guard holds its lock");
            guard.inner = Some(unpoison(self.0.wait(inner)));
        }

        /// Waits at most `timeout` (shuttle decides whether it times out).
        pub(crate) fn wait_for<T>(&self, guard: &mut MutexGuard<'_, T>, timeout: Duration) {
            let inner = guard.inner.take().expect("the guard holds its lock");
            let (inner, _) = unpoison(self.0.wait_timeout(inner, timeout));
            guard.inner = Some(inner);
        }

        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }

        pub(crate) fn notify_all(&self) -> usize {
            self.0.notify_all();
            0
        }
    }
}
