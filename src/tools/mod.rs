//! Tools over a store directory, as library functions (the `statelog` command is a thin layer
//! over them): inspection and verification. Dumping is [`read_only_snapshot`] plus
//! [`Readable::raw_rows`].
//!
//! [`read_only_snapshot`]: crate::read_only_snapshot
//! [`Readable::raw_rows`]: crate::Readable::raw_rows

mod inspect;
#[cfg(feature = "stateio")]
pub mod stateio;
mod verify;

pub use inspect::{Inspection, SegmentSummary, inspect, inspect_dir};
pub use verify::{Finding, VerifyReport, verify, verify_dir, verify_epochs};
