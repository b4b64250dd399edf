//! Client requests batched into proposals (one Raft log entry each): openraft 0.9 appends
//! and fsyncs each entry before it takes the next, so one request per entry would cost the
//! leader an fsync each.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::Request;

/// A proposal (one log entry) takes requests up to this many bytes of keys and values (the
/// last one may pass it by at most the largest command).
pub const MAX_PROPOSAL_BYTES: usize = 256 << 10;
/// Most requests in one proposal.
pub const MAX_PROPOSAL_REQUESTS: usize = 1024;
/// Proposals being committed at once by one node; requests arriving meanwhile wait and go
/// in the next proposal.
pub const MAX_PROPOSALS_IN_FLIGHT: usize = 2;
/// How long a proposal waits at most for the clients the node expects: when fewer requests
/// are outstanding than were lately (clients answered a moment ago send their next one
/// soon), it waits for the rest rather than split the clients into groups that take turns.
/// tokio's timer rounds it up to its 1 ms tick.
pub const LINGER: Duration = Duration::from_micros(500);
/// Proposals over which the proposer remembers how many requests were outstanding at once.
pub const PEAK_PROPOSALS: usize = 8;

/// A client request waiting to go into a proposal, and where its answer goes.
#[derive(Debug)]
pub(crate) struct Waiting<R, E> {
    /// The request.
    pub request: Request,
    /// Where its answer goes.
    pub answer: oneshot::Sender<Result<R, E>>,
}

/// The size a request counts for in a proposal: its keys and values.
pub(crate) fn request_bytes(req: &Request) -> usize {
    match req {
        Request::Set { key, value } => key.len() + value.len(),
        Request::Delete { key } => key.len(),
        Request::CompareAndSet {
            key,
            expected,
            value,
        } => {
            key.len()
                + expected.as_ref().map_or(0, String::len)
                + value.as_ref().map_or(0, String::len)
        }
    }
}

/// How many requests were outstanding at once (waiting or in proposals not answered yet)
/// when each of the last [`PEAK_PROPOSALS`] proposals started.
#[derive(Debug, Default)]
struct Concurrency {
    recent: VecDeque<usize>,
}

impl Concurrency {
    /// The most requests outstanding at once lately: how many the proposer expects.
    fn peak(&self) -> usize {
        self.recent.iter().copied().max().unwrap_or(0)
    }

    /// A proposal starts with `n` requests outstanding.
    fn record(&mut self, n: usize) {
        if self.recent.len() == PEAK_PROPOSALS {
            self.recent.pop_front();
        }
        self.recent.push_back(n);
    }

    /// The clients expected did not all come: expect only what comes from now on.
    fn forget(&mut self) {
        self.recent.clear();
    }
}

/// A batch being gathered: its requests and their bytes.
struct Batch<R, E> {
    waiting: Vec<Waiting<R, E>>,
    bytes: usize,
}

impl<R, E> Batch<R, E> {
    fn push(&mut self, w: Waiting<R, E>) {
        self.bytes += request_bytes(&w.request);
        self.waiting.push(w);
    }

    fn full(&self) -> bool {
        self.waiting.len() >= MAX_PROPOSAL_REQUESTS || self.bytes >= MAX_PROPOSAL_BYTES
    }
}

/// Takes requests from `rx` into proposals, each committed by `propose` (its answers in the
/// requests' order), at most [`MAX_PROPOSALS_IN_FLIGHT`] at once; returns once `rx` closes.
/// `linger`: how long a proposal waits at most for the clients expected ([`LINGER`]).
///
/// A proposal takes every request waiting when a slot frees up. Clients answered by a
/// proposal send their next request a moment later; a proposal started without them would
/// split the clients into groups that take turns, each waiting a whole round for the other
/// group's. So when fewer requests are outstanding than were lately (the most outstanding
/// when one of the last [`PEAK_PROPOSALS`] proposals started), the proposer waits for the
/// rest, at most `linger`; after a wait that ran out it expects only what it got, so
/// clients that stopped cost one wait, not one per proposal. One client never waits.
pub(crate) async fn proposer<R, E, F, Fut>(
    propose: F,
    mut rx: mpsc::Receiver<Waiting<R, E>>,
    linger: Duration,
) where
    R: Send + 'static,
    E: Clone + Send + 'static,
    F: Fn(Vec<Request>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_PROPOSALS_IN_FLIGHT));
    // Requests in proposals not answered yet.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut concurrency = Concurrency::default();
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Batch {
            waiting: Vec::new(),
            bytes: 0,
        };
        batch.push(first);
        while !batch.full() {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let busy = in_flight.load(Ordering::Acquire);
        let expected = concurrency.peak();
        if batch.waiting.len() + busy < expected && !batch.full() {
            let timer = tokio::time::sleep(linger);
            tokio::pin!(timer);
            while batch.waiting.len() + busy < expected && !batch.full() {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(w) => batch.push(w),
                        None => break,
                    },
                    () = &mut timer => {
                        concurrency.forget();
                        break;
                    }
                }
            }
        }
        concurrency.record(batch.waiting.len() + busy);
        let n = batch.waiting.len();
        in_flight.fetch_add(n, Ordering::AcqRel);
        let (requests, answers): (Vec<Request>, Vec<_>) = batch
            .waiting
            .into_iter()
            .map(|w| (w.request, w.answer))
            .unzip();
        let committed = propose(requests);
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let result = committed.await;
            in_flight.fetch_sub(n, Ordering::AcqRel);
            match result {
                Ok(responses) => {
                    for (answer, r) in answers.into_iter().zip(responses) {
                        let _ = answer.send(Ok(r));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What [`run`] saw: the sizes of the proposals in order, and each client's latencies.
    struct Seen {
        sizes: Vec<usize>,
        latencies: Vec<Vec<Duration>>,
    }

    /// Clients sending requests one after another (client `c` sends `rounds[c]`, its next one
    /// `(c + 1) * turnaround` after its answer) to a proposer whose proposals take `commit`
    /// and that lingers up to `linger`. Time is tokio's paused clock (its timer counts whole
    /// milliseconds): the schedule is exact.
    async fn run(
        rounds: &[usize],
        turnaround: Duration,
        commit: Duration,
        linger: Duration,
    ) -> Seen {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Waiting<u64, String>>(1024);
        let seen = sizes.clone();
        let proposer = tokio::spawn(proposer(
            move |requests: Vec<Request>| {
                seen.lock().unwrap().push(requests.len());
                async move {
                    tokio::time::sleep(commit).await;
                    Ok((0..requests.len() as u64).collect())
                }
            },
            rx,
            linger,
        ));
        let mut tasks = Vec::new();
        for (c, &rounds) in rounds.iter().enumerate() {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in 0..rounds {
                    let (answer, got) = oneshot::channel();
                    let request = Request::Set {
                        key: format!("c{c}"),
                        value: format!("{i}"),
                    };
                    let sent = tokio::time::Instant::now();
                    tx.send(Waiting { request, answer }).await.unwrap();
                    got.await.unwrap().unwrap();
                    latencies.push(sent.elapsed());
                    tokio::time::sleep(turnaround * (c as u32 + 1)).await;
                }
                latencies
            }));
        }
        drop(tx);
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
        proposer.await.unwrap();
        let sizes = sizes.lock().unwrap().clone();
        Seen { sizes, latencies }
    }

    #[tokio::test(start_paused = true)]
    async fn clients_that_come_back_go_in_one_proposal() {
        // Proposals of 20 ms, clients back 1 to 8 ms after their answer (the scale of the
        // paused clock's tick; on a real network, tens of microseconds after an fsync's
        // hundreds): without waiting for them the eight would go in proposals of one or two.
        let ms = Duration::from_millis;
        let apart = run(&[50; 8], ms(1), ms(20), Duration::ZERO).await.sizes;
        assert!(
            apart.iter().filter(|&&n| n == 8).count() * 2 < apart.len(),
            "without lingering: {apart:?}"
        );
        let sizes = run(&[50; 8], ms(1), ms(20), ms(10)).await.sizes;
        let late = &sizes[10..sizes.len() - 2];
        let whole = late.iter().filter(|&&n| n == 8).count();
        assert!(
            whole * 10 >= late.len() * 9,
            "proposals of all eight clients: {whole} of {}: {sizes:?}",
            late.len()
        );
        assert_eq!(sizes.iter().sum::<usize>(), 8 * 50);
    }

    #[tokio::test(start_paused = true)]
    async fn one_client_never_waits() {
        let start = tokio::time::Instant::now();
        let sizes = run(&[20], Duration::ZERO, Duration::from_millis(1), LINGER)
            .await
            .sizes;
        assert_eq!(sizes, vec![1; 20]);
        // 20 proposals of 1 ms, no linger between them.
        assert!(
            start.elapsed() < Duration::from_millis(21),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clients_that_stop_cost_one_wait() {
        // Eight clients, seven of which stop after 5 requests: the first goes on alone and
        // waits for the others at most once (a request alone takes the proposal's 2 ms).
        let mut rounds = [5; 8];
        rounds[0] = 40;
        let seen = run(&rounds, Duration::ZERO, Duration::from_millis(2), LINGER).await;
        let lingered = seen.latencies[0][5..]
            .iter()
            .filter(|l| **l > Duration::from_millis(2))
            .count();
        assert!(
            lingered <= 1,
            "the lone client waited {lingered} times: {:?}",
            seen.sizes
        );
    }

    #[test]
    fn the_expected_count_is_the_peak_of_the_last_proposals() {
        let mut c = Concurrency::default();
        assert_eq!(c.peak(), 0);
        c.record(8);
        for _ in 0..PEAK_PROPOSALS - 1 {
            c.record(2);
        }
        assert_eq!(c.peak(), 8);
        c.record(3);
        assert_eq!(c.peak(), 3, "the 8 left the window");
        c.forget();
        assert_eq!(c.peak(), 0);
    }
}
