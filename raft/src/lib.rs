//! statelog as [openraft](https://docs.rs/openraft/0.9)'s storage: a replicated key-value
//! state machine whose nodes keep their Raft log, vote and state in a statelog directory.
//!
//! - [`LogStore`]: openraft's `RaftLogStorage` on a statelog [`Store`](statelog::Store):
//!   entries in a bytes table keyed by big-endian index, the vote, the committed log id, the
//!   purge point and the last log id in another. `append` writes its entries in one
//!   transaction (readable at once) and calls openraft's callback only after a strong commit
//!   that follows it has returned, that is after the fsync that covers it (a flusher thread
//!   does that commit for whatever appends queued up); the vote is a strong commit;
//!   `truncate` and `purge` are one strong transaction each.
//! - [`StateMachine`]: openraft's `RaftStateMachine`: each batch of committed entries (each
//!   entry a [`Proposal`] of client requests) is one transaction of the same store, which
//!   also records the last applied log id and the membership; snapshots stream a read
//!   snapshot of the store row by row into a checksummed file, and a received snapshot is
//!   verified and restored into the store in one transaction.
//! - [`network`]: openraft's `RaftNetwork` over HTTP (reqwest), with bounded messages and
//!   snapshots sent in chunks; [`server`]: a node, openraft on this storage with its HTTP
//!   server (axum): the Raft RPCs and a client API; [`Client`]: that API, following the
//!   leader.
//!
//! The `statelog-raft` binary runs a node (`serve`) and the client commands.

#![deny(unsafe_code)]

pub mod client;
mod error;
pub mod network;
mod proposer;
pub mod server;
mod sm;
mod snapshot;
mod store;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use client::Client;
pub use error::{ApiError, Error};
pub use sm::StateMachine;
pub use store::LogStore;

/// A node's id in the cluster.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The types this crate runs openraft with: a log entry carries a [`Proposal`] (client
    /// requests batched by the leader's node), answered by one [`Response`] per request.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Response>,
        SnapshotData = tokio::fs::File,
);

/// The openraft handle of a node.
pub type Raft = openraft::Raft<TypeConfig>;

/// A command of the replicated key-value state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Deletes `key` (a no-op if absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Sets `key` to `value` (deletes it if `value` is `None`) only if its current value is
    /// `expected` (`None`: absent).
    CompareAndSet {
        /// The key.
        key: String,
        /// The value the key must have.
        expected: Option<String>,
        /// The value to set, or `None` to delete.
        value: Option<String>,
    },
}

impl Request {
    /// The key the command changes.
    pub fn key(&self) -> &str {
        match self {
            Request::Set { key, .. }
            | Request::Delete { key }
            | Request::CompareAndSet { key, .. } => key,
        }
    }
}

/// The application data of one log entry: the client requests a node received while its
/// previous proposals were being committed, applied in order in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The requests, in the order they are applied.
    pub requests: Vec<Request>,
}

impl Proposal {
    /// A proposal of one request.
    pub fn one(request: Request) -> Self {
        Proposal {
            requests: vec![request],
        }
    }
}

/// The result of applying a [`Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the command changed the state as asked (false only for a compare-and-set whose
    /// expected value did not match).
    pub ok: bool,
    /// The key's value before the command.
    pub previous: Option<String>,
}

/// Opens (or creates) a node's storage in `dir`: the statelog store in `dir/store` and
/// snapshot files in `dir/snapshots`. Returns the log storage and the state machine, which
/// share one store.
pub fn open_storage(dir: impl AsRef<Path>) -> Result<(LogStore, StateMachine), Error> {
    let dir = dir.as_ref();
    let store = statelog::Store::open(dir.join("store"), statelog::StoreOptions::default())?;
    let log = LogStore::new(store.clone())?;
    let sm = StateMachine::open(store, dir.join("snapshots"))?;
    Ok((log, sm))
}
