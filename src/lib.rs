//! statelog: an embedded, append-only, log-structured state store.
//!
//! Layers, bottom up:
//! - [`backend`]: every file operation, through one small trait.
//! - [`frame`]: checksummed records in fixed-size blocks (the log file format of FORMAT.md).
#![deny(unsafe_code)]

pub mod backend;
mod error;
pub mod frame;

pub use error::{CorruptKind, Error, Result};
