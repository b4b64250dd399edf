//! With the `tracing` feature, the store emits events at open, compaction and repair.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use statelog::{Store, StoreOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps the message of every event.
#[derive(Clone, Default)]
struct Messages(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Messages {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = String::new();
        event.record(&mut Message(&mut m));
        self.0.lock().unwrap().push(m);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn open_and_compaction_emit_events() {
    let dir = tempfile::tempdir().unwrap();
    let messages = Messages::default();
    tracing::subscriber::with_default(messages.clone(), || {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let t = store.bytes_table("t").unwrap();
        store.write(|tx| tx.put_bytes(&t, b"k", b"v")).unwrap();
        store.compact().unwrap();
    });
    let got = messages.0.lock().unwrap().clone();
    let has = |s: &str| got.iter().any(|m| m.contains(s));
    assert!(has("statelog: opened"), "{got:?}");
    assert!(has("compaction started"), "{got:?}");
    assert!(has("compaction finished in"), "{got:?}");
}

/// A failed fsync poisons the log: an error event says writes are refused from now on.
#[cfg(feature = "internals")]
#[test]
fn poisoning_emits_an_error_event() {
    use statelog::backend::{Fault, FaultKind, OpKind, SimBackend};
    let be = SimBackend::new(7);
    let messages = Messages::default();
    tracing::subscriber::with_default(messages.clone(), || {
        let store = Store::open_with(
            Arc::new(be.process()),
            std::path::Path::new("/db"),
            StoreOptions::default(),
        )
        .unwrap();
        let t = store.bytes_table("t").unwrap();
        be.inject(Fault {
            op: OpKind::Sync,
            nth: 1,
            kind: FaultKind::Eio,
        });
        assert!(store.write(|tx| tx.put_bytes(&t, b"k", b"v")).is_err());
    });
    let got = messages.0.lock().unwrap().clone();
    assert!(
        got.iter().any(|m| m.contains("writes refused from now on")),
        "{got:?}"
    );
}
