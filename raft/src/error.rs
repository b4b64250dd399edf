//! Errors of the storage, the node and the client.

use serde::{Deserialize, Serialize};

/// An error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statelog store failed.
    #[error("store: {0}")]
    Store(#[from] statelog::Error),
    /// A file of the node's directory (a snapshot) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A stored record (a log entry, the vote, a snapshot) does not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was read.
        what: String,
        /// Why it does not decode.
        detail: String,
    },
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The HTTP transport failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A node answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No node answered in time.
    #[error("no node answered within {0:?}: {1}")]
    Timeout(std::time::Duration, String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// An error a node's client API answers with (JSON, beside an HTTP error status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ApiError {
    /// This node is not the leader and knows of none to forward to (an election is running,
    /// or it cannot reach a quorum).
    #[error("no leader known")]
    NoLeader,
    /// The request is malformed or too large.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Raft refused the request (a membership change in progress, a node shutting down).
    #[error("raft: {0}")]
    Raft(String),
    /// Forwarding to the leader failed.
    #[error("forwarding to the leader at {addr} failed: {detail}")]
    Forward {
        /// The leader's address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The node's storage failed.
    #[error("storage: {0}")]
    Storage(String),
}
