//! Bodies of the fuzz targets in `fuzz/` (cargo-fuzz), kept in the crate so that
//! `cargo test --release --all-features --test fuzz_corpus` runs them too, over their seed
//! corpora and generated inputs, without the nightly toolchain. Compiled only with the
//! `internals` feature; not part of the stable API.
//!
//! Every body takes arbitrary bytes. Bytes from disk are hostile: no input may make the library
//! panic, hang or allocate without bound, and a record that fails its checksum is never
//! returned. A body panics only through an `assert!` on a real invariant of the library (or
//! through a panic inside the library), which is what the fuzzer looks for.
//!
//! - [`frame_decode()`] (`frame_decode.rs`): the frame decoder on a raw file image, and on
//!   valid logs with damage.
//! - [`open_directory()`] (`open_directory.rs`): opening a store directory made of arbitrary
//!   (and synthesized) files.
//! - [`restore_mutated()`] (`restore_mutated.rs`): restoring a valid store whose segment files
//!   were damaged.
//! - [`store_ops()`] (`store_ops.rs`): operation sequences (transactions, syncs, compactions,
//!   reopens, crashes, rewinds) checked against a model.
//! - [`checkpoint_registry()`], [`fence_file()`], [`intent_files()`] (`records.rs`): the
//!   decoders of the directory's small files, each on its own, with round trips.
//! - [`transaction()`] (`transaction.rs`): a store transaction's decoder and its in-place
//!   reading of puts, deletes and hints (FORMAT.md §12.1), which must agree.
//! - [`follower_tail()`] (`follower_tail.rs`): a follower polling a segment that grows,
//!   shrinks and is overwritten under it.
//! - `stateio_read()` (`stateio_read.rs`, also feature `stateio`): the grailbio logio/stateio
//!   reader on a raw file image and on valid files with damage, and the importer.
//!
//! Shared by the bodies: `input.rs` (fuzzer bytes read as a stream of choices), `common.rs`
//! (the simulated directory, little-endian readers, and the read-only checks that whatever a
//! reader or follower finds it changes nothing and ends), `model.rs` (the store states the
//! bodies compare with: a store's rows as plain maps).

mod common;
mod follower_tail;
mod frame_decode;
mod input;
mod model;
mod open_directory;
mod records;
mod restore_mutated;
#[cfg(feature = "stateio")]
mod stateio_read;
mod store_ops;
mod transaction;

pub use follower_tail::follower_tail;
pub use frame_decode::frame_decode;
pub use open_directory::open_directory;
pub use records::{checkpoint_registry, fence_file, intent_files};
pub use restore_mutated::restore_mutated;
#[cfg(feature = "stateio")]
pub use stateio_read::stateio_read;
pub use store_ops::store_ops;
pub use transaction::transaction;
