//! The subcommands, one file each, and what they share (`common.rs`).

pub(crate) mod apply;
pub(crate) mod backup;
pub(crate) mod common;
pub(crate) mod compact;
pub(crate) mod dump;
pub(crate) mod follow;
pub(crate) mod import_stateio;
pub(crate) mod inspect;
pub(crate) mod repair;
pub(crate) mod rewind;
pub(crate) mod verify;
