//! Weak durability: tables whose changes are not logged one by one but marked dirty and
//! written in batches by flushes; two-class bootstrap; declared references and repair.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use statelog::weak::{DirtySet, Flusher, Persistence, Rules};
//! use statelog::{Readable, StoreOptions, TableDef};
//!
//! # fn main() -> statelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! // Strong tables in one directory, weak (cache) tables in another.
//! let (p, latency) = Persistence::open(
//!     dir.path().join("state"),
//!     dir.path().join("cache"),
//!     StoreOptions::default(),
//!     StoreOptions::default(),
//!     |_strong, weak| Ok((weak.table(TableDef::<String, u32>::new("latency"))?, Rules::new())),
//! )?;
//! // The application keeps the values; changes are only marked dirty...
//! let live: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
//! let dirty = Arc::new(DirtySet::new());
//! live.lock().unwrap().insert("node-1".into(), 12);
//! dirty.mark_upsert("node-1".to_string());
//! // ...and a flush writes their current values as one transaction.
//! let source = live.clone();
//! let flusher = Flusher::new(p.weak.clone())
//!     .source(&latency, dirty, move |k| source.lock().unwrap().get(k).copied());
//! flusher.flush()?;
//! assert_eq!(p.weak.read().get(&latency, "node-1")?, Some(12));
//! p.close()?;
//! # Ok(())
//! # }
//! ```

mod bootstrap;
mod dirty;
mod flush;
mod repair;
mod worker;

pub use bootstrap::Persistence;
pub use dirty::{DirtySet, Mark};
pub use flush::{FlushReport, Flusher};
pub use repair::{ParentIn, RepairReport, Rules};
pub use worker::{FlushPolicy, FlushWorker};
