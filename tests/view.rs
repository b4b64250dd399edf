//! Derived views off the writer's path (issue 22, item 6): the view of a new state is computed
//! without the writer lock, so a slow view holds back neither other writers nor their
//! acknowledgements; a failing view keeps the last good (state, view) pair published and is
//! reported; readers only ever see a monotonic sequence of states, each with its view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use statelog::{
    ChangeFilter, Changes, DerivedView, Durability, Error, Readable, Snapshot, Store, StoreOptions,
};

/// Long enough never to be reached unless the store is stuck.
const STUCK: Duration = Duration::from_secs(60);

/// The rows of bytes table "b" (0 before it exists).
fn rows(snap: &Snapshot) -> statelog::Result<u64> {
    match snap.tables().iter().find(|t| t.name == "b") {
        Some(t) => Ok(t.rows as u64),
        None => Ok(0),
    }
}

fn open(dir: &std::path::Path, view: DerivedView) -> Store {
    Store::open(dir, StoreOptions::default().view(view)).unwrap()
}

/// A view that blocks while it computes the view of the first state after the test arms it:
/// it says so on `started`, then waits for `release`.
struct Gate {
    armed: AtomicBool,
    started: Mutex<Sender<u64>>,
    release: Mutex<Receiver<()>>,
}

/// While one thread's view blocks, another thread commits and is acknowledged (its state
/// published with its view, so read-your-writes holds), strong and buffered alike; once the
/// slow view ends, its older state is skipped, not published over the newer one.
#[test]
fn a_slow_view_holds_back_neither_other_writers_nor_their_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let (started_tx, started) = channel();
    let (release, release_rx) = channel();
    let gate = Arc::new(Gate {
        armed: AtomicBool::new(false),
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    });
    let g = gate.clone();
    let store = open(
        dir.path(),
        DerivedView::new(move |snap: &Snapshot| {
            let n = rows(snap)?;
            if g.armed.swap(false, Ordering::SeqCst) {
                g.started.lock().unwrap().send(n).unwrap();
                g.release.lock().unwrap().recv().unwrap();
            }
            Ok(n)
        }),
    );
    let b = store.bytes_table("b").unwrap();
    gate.armed.store(true, Ordering::SeqCst);
    std::thread::scope(|s| {
        let slow = s.spawn(|| store.write(|tx| tx.put_bytes(&b, b"slow", b"v")).unwrap());
        // The slow thread's view runs (its commit is durable, its state handed over).
        assert_eq!(started.recv_timeout(STUCK).unwrap(), 1);
        let (acked_tx, acked) = channel();
        let (store, b) = (&store, &b);
        let fast = s.spawn(move || {
            for (i, durability) in [Durability::Strong, Durability::Buffered]
                .into_iter()
                .enumerate()
            {
                let key = format!("fast{i}");
                store
                    .write_with(durability, |tx| tx.put_bytes(b, key.as_bytes(), b"v"))
                    .unwrap();
                // Read-your-writes: the state is published, with its view.
                let snap = store.read();
                assert!(snap.get_bytes(b, key.as_bytes()).unwrap().is_some());
                assert_eq!(*snap.view::<u64>().unwrap(), rows(&snap).unwrap());
                acked_tx.send(key).unwrap();
            }
        });
        let got: Vec<String> = (0..2)
            .map(|_| acked.recv_timeout(STUCK))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| {
                release.send(()).unwrap();
                panic!("a slow view held back another writer's acknowledgement")
            });
        assert_eq!(got, ["fast0", "fast1"]);
        let before = store.read().position();
        release.send(()).unwrap();
        slow.join().unwrap();
        fast.join().unwrap();
        // The slow view's state was older than the one published: skipped.
        let snap = store.read();
        assert_eq!(snap.position(), before);
        assert_eq!(rows(&snap).unwrap(), 3);
        assert_eq!(*snap.view::<u64>().unwrap(), 3);
    });
}

/// A failing view keeps the last good pair published (durable commits stay invisible) and is
/// reported; once it succeeds again the newest state is published with its view, at the next
/// commit or sync (no new commit needed).
#[test]
fn a_failing_view_keeps_the_last_good_pair_until_it_succeeds_again() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let store = open(
        dir.path(),
        DerivedView::new(move |snap: &Snapshot| {
            if f.load(Ordering::SeqCst) {
                return Err(Error::InvalidArgument("view refused".into()));
            }
            rows(snap)
        }),
    );
    let b = store.bytes_table("b").unwrap();
    store.write(|tx| tx.put_bytes(&b, b"1", b"v")).unwrap();
    let good = store.read();
    assert_eq!(*good.view::<u64>().unwrap(), 1);
    fail.store(true, Ordering::SeqCst);
    store.write(|tx| tx.put_bytes(&b, b"2", b"v")).unwrap();
    store
        .write_with(Durability::Buffered, |tx| tx.put_bytes(&b, b"3", b"v"))
        .unwrap();
    store.sync().unwrap();
    let snap = store.read();
    assert_eq!(snap.position(), good.position(), "the last good pair stays");
    assert_eq!(*snap.view::<u64>().unwrap(), 1);
    assert!(snap.get_bytes(&b, b"2").unwrap().is_none());
    assert!(matches!(
        store.view_error(),
        Some(Error::InvalidArgument(_))
    ));
    // Durable all the same: a reopened store has them.
    fail.store(false, Ordering::SeqCst);
    store.sync().unwrap();
    let snap = store.read();
    assert_eq!(rows(&snap).unwrap(), 3, "published again at the next sync");
    assert_eq!(*snap.view::<u64>().unwrap(), 3);
    assert!(store.view_error().is_none());
    fail.store(true, Ordering::SeqCst);
    store.write(|tx| tx.put_bytes(&b, b"4", b"v")).unwrap();
    assert_eq!(rows(&store.read()).unwrap(), 3);
    fail.store(false, Ordering::SeqCst);
    store.write(|tx| tx.put_bytes(&b, b"5", b"v")).unwrap();
    let snap = store.read();
    assert_eq!(
        rows(&snap).unwrap(),
        5,
        "the next commit publishes the newest state"
    );
    assert_eq!(*snap.view::<u64>().unwrap(), 5);
    drop(snap);
    drop(store);
    let store = open(dir.path(), DerivedView::new(rows));
    assert_eq!(*store.read().view::<u64>().unwrap(), 5);
}

/// With a view, a subscriber told of a commit reads a state that holds it.
#[test]
fn subscribers_hear_of_a_commit_once_its_state_is_published_with_its_view() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), DerivedView::new(rows));
    let b = store.bytes_table("b").unwrap();
    let sub = store.subscribe(ChangeFilter::all());
    std::thread::scope(|s| {
        let store = &store;
        let listener = s.spawn(move || {
            let mut seen = 0;
            while seen < 60 {
                let Changes::Since(changes) = sub.recv_timeout(STUCK).expect("a message") else {
                    panic!("unexpected reset");
                };
                let snap = store.read();
                for c in &changes {
                    assert!(snap.position() >= c.pos, "told of a commit not published");
                }
                assert_eq!(*snap.view::<u64>().unwrap(), rows(&snap).unwrap());
                seen += changes.len();
            }
        });
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let (store, b) = (store, &b);
                s.spawn(move || {
                    for i in 0..20u32 {
                        let key = (w * 1000 + i).to_le_bytes();
                        let durability = match i % 2 {
                            0 => Durability::Strong,
                            _ => Durability::Buffered,
                        };
                        store
                            .write_with(durability, |tx| tx.put_bytes(b, &key, b"v"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // The last buffered commits are delivered once durable.
        store.sync().unwrap();
        listener.join().unwrap();
    });
}

/// Writers, syncs and readers at once with a view that takes its time: every state a reader
/// sees has its view, and the states it sees never go backwards.
#[test]
fn concurrent_writers_publish_a_monotonic_sequence_of_states_with_their_views() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        DerivedView::new(|snap: &Snapshot| {
            let n = rows(snap)?;
            if n % 7 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(n)
        }),
    );
    let b = store.bytes_table("b").unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut last = store.read().position();
                    while !done.load(Ordering::SeqCst) {
                        let snap = store.read();
                        assert!(snap.position() >= last, "a published state went backwards");
                        last = snap.position();
                        assert_eq!(*snap.view::<u64>().unwrap(), rows(&snap).unwrap());
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let (store, b) = (&store, &b);
                s.spawn(move || {
                    for i in 0..50u32 {
                        let key = (w * 1000 + i).to_le_bytes();
                        let durability = match i % 3 {
                            0 => Durability::Buffered,
                            _ => Durability::Strong,
                        };
                        store
                            .write_with(durability, |tx| tx.put_bytes(b, &key, b"v"))
                            .unwrap();
                        if durability == Durability::Buffered && i % 2 == 0 {
                            store.sync().unwrap();
                        }
                        // Read-your-writes, but for a buffered commit not synced (which a
                        // strong one of another writer may still hold back).
                        let synced = durability == Durability::Strong || i % 2 == 0;
                        let found = store.read().get_bytes(b, &key).unwrap().is_some();
                        assert!(found || !synced, "read your writes ({durability:?}, {i})");
                    }
                })
            })
            .collect();
        // The readers stop even if a writer fails.
        let _stop = Stop(&done);
        for w in writers {
            w.join().unwrap();
        }
        drop(_stop);
        for r in readers {
            r.join().unwrap();
        }
    });
    let snap = store.read();
    assert_eq!(rows(&snap).unwrap(), 200);
    assert_eq!(*snap.view::<u64>().unwrap(), 200);
}

/// Sets its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
