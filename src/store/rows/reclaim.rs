//! Freeing large things off the caller's path: a state a compaction replaced, a replay's
//! leftovers, the runs a delta's merge replaced. Each is dropped on one reclaiming thread, so
//! the time to free many allocations is not a commit's or a restore's.

/// Something large to free.
pub(crate) type Garbage = Box<dyn std::any::Any + Send>;

thread_local! {
    /// Whether this thread is the reclaiming one.
    static RECLAIMING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the caller runs on the reclaiming thread (where garbage is dropped in place).
pub(crate) fn on_reclaiming_thread() -> bool {
    RECLAIMING.with(std::cell::Cell::get)
}

/// Drops `garbage` on the reclaiming thread (started on first use; if it cannot be, here).
pub(crate) fn reclaim_any(garbage: Garbage) {
    static RECLAIMER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> =
        std::sync::OnceLock::new();
    let sender = RECLAIMER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("statelog-reclaim".into())
            .spawn(move || {
                RECLAIMING.with(|r| r.set(true));
                rx.into_iter().for_each(drop);
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = sender {
        // A send fails only if the thread is gone; then it is dropped here.
        let _ = tx.send(garbage);
    }
}
