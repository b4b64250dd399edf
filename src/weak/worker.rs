//! The flush worker: a thread that flushes when enough keys are dirty or enough time passed.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

use super::flush::{FlushReport, Flusher};
use crate::error::{Error, Result};

type ThresholdFn = Arc<dyn Fn() -> usize + Send + Sync>;
type IntervalFn = Arc<dyn Fn() -> Duration + Send + Sync>;
type ErrorFn = Arc<dyn Fn(&Error) + Send + Sync>;

/// When the flush worker flushes. The threshold and the interval are read on every tick, so
/// they can change while the worker runs.
#[derive(Clone)]
pub struct FlushPolicy {
    /// How often the worker looks at the dirty count.
    pub tick: Duration,
    /// Flush when at least this many keys are dirty.
    pub threshold: ThresholdFn,
    /// Flush when this long has passed since the last flush (and something is dirty).
    pub interval: IntervalFn,
    /// Called with each failed flush (its keys are merged back and retried later).
    pub on_error: ErrorFn,
}

impl FlushPolicy {
    /// A policy with fixed values; failures are written to standard error.
    pub fn fixed(tick: Duration, threshold: usize, interval: Duration) -> Self {
        FlushPolicy {
            tick,
            threshold: Arc::new(move || threshold),
            interval: Arc::new(move || interval),
            on_error: Arc::new(|e| eprintln!("statelog: flush failed, entries re-merged: {e}")),
        }
    }
}

impl std::fmt::Debug for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushPolicy")
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A thread that flushes a [`Flusher`] by a [`FlushPolicy`]; stopping it performs a final
/// flush.
pub struct FlushWorker {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<Result<FlushReport>>>,
}

impl std::fmt::Debug for FlushWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushWorker")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl FlushWorker {
    /// Starts the worker. On every tick: if nothing is dirty, nothing happens; otherwise it
    /// flushes when the dirty count reaches the threshold or the interval since the last flush
    /// (or the start) has passed.
    pub fn start(flusher: Arc<Flusher>, policy: FlushPolicy) -> Result<Self> {
        if policy.tick.is_zero() {
            return Err(Error::InvalidArgument(
                "flush worker tick must be positive".into(),
            ));
        }
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("statelog-flush".into())
            .spawn(move || {
                let mut last = Instant::now();
                loop {
                    {
                        let mut stop = s.stop.lock();
                        if !*stop {
                            s.wake.wait_for(&mut stop, policy.tick);
                        }
                        if *stop {
                            break;
                        }
                    }
                    let dirty = flusher.dirty_count();
                    if dirty == 0 {
                        continue;
                    }
                    if dirty >= (policy.threshold)() || last.elapsed() >= (policy.interval)() {
                        if let Err(e) = flusher.flush() {
                            (policy.on_error)(&e);
                        }
                        last = Instant::now();
                    }
                }
                flusher.flush()
            })
            .map_err(|e| Error::io("statelog-flush thread", e))?;
        Ok(FlushWorker {
            signal,
            thread: Some(thread),
        })
    }

    /// Stops the worker after a final flush, and returns that flush's result.
    pub fn stop(mut self) -> Result<FlushReport> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<FlushReport> {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_all();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::InvalidArgument("flush worker panicked".into()))),
            None => Ok(FlushReport::default()),
        }
    }
}

impl Drop for FlushWorker {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}
