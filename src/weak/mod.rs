//! Weak durability: tables whose changes are not logged one by one but marked dirty and
//! written in batches by flushes; two-class bootstrap; declared references and repair.

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
