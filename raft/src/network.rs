//! openraft's network over HTTP: each Raft RPC is a JSON POST to the target node's
//! [`server`](crate::server), answered with openraft's result as JSON. Messages are bounded:
//! append requests carry at most `max_payload_entries` entries of bounded size, and snapshots
//! go in chunks of `snapshot_max_chunk_size` bytes (openraft's chunked transfer), each
//! within the server's body limit.

use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{NodeId, TypeConfig};

/// The path of the append-entries RPC.
pub const APPEND_PATH: &str = "/raft/append";
/// The path of the vote RPC.
pub const VOTE_PATH: &str = "/raft/vote";
/// The path of the install-snapshot (chunk) RPC.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// Makes a connection to each peer; all share one HTTP client (and its connection pool).
#[derive(Debug, Clone)]
pub struct Network {
    http: reqwest::Client,
}

impl Network {
    /// A network whose connections give up connecting after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Result<Network, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Network { http })
    }
}

/// A connection to one peer.
#[derive(Debug, Clone)]
pub struct Connection {
    http: reqwest::Client,
    target: NodeId,
    base: String,
}

/// The base URL of a node address (`host:port`, or a URL already).
pub(crate) fn base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            http: self.http.clone(),
            target,
            base: base_url(&node.addr),
        }
    }
}

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(option.hard_ttl())
            .json(req)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let result: Result<Resp, RaftError<NodeId, E>> = resp
            .json()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(APPEND_PATH, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(VOTE_PATH, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        // A peer that is down is tried again soon: a restarted node catches up quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
