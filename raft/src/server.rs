//! A node: openraft on this crate's storage, and its HTTP server (axum) with the Raft RPCs
//! of [`network`](crate::network) and a client API.
//!
//! Client API (JSON in, `{"Ok": ..}` or `{"Err": ApiError}` out): `POST /api/write` a
//! [`Request`]; `POST /api/read` `{"key"}`, linearizable (`ensure_linearizable` on the
//! leader); `POST /api/local-read` `{"key"}`, this node's state as it is; `POST /api/init`
//! `{"members": {id: addr}}`; `POST /api/add-learner` `{"id", "addr"}`;
//! `POST /api/change-membership` `{"members": [id]}`; `GET /api/metrics`. A node that is not
//! the leader forwards writes, reads and membership changes to the leader it knows (one hop).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, Config, RaftMetrics, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Error};
use crate::network::{APPEND_PATH, Network, SNAPSHOT_PATH, VOTE_PATH, base_url};
use tokio::sync::{mpsc, oneshot};

pub use crate::proposer::{
    LINGER, MAX_PROPOSAL_BYTES, MAX_PROPOSAL_REQUESTS, MAX_PROPOSALS_IN_FLIGHT, PEAK_PROPOSALS,
};
use crate::proposer::{Waiting, proposer, request_bytes};
use crate::{NodeId, Proposal, Raft, Request, Response, StateMachine, TypeConfig, open_storage};

/// Largest HTTP body a node accepts: an append of `MAX_PAYLOAD_ENTRIES` entries of the
/// largest proposal, or a snapshot chunk, as JSON (a byte escaped in JSON takes at most 6).
pub const MAX_BODY: usize = 64 << 20;
/// Largest key plus value of one command.
pub const MAX_COMMAND: usize = 64 << 10;
/// Most entries in one append request.
pub const MAX_PAYLOAD_ENTRIES: u64 = 16;
/// Snapshot chunk size in bytes.
pub const SNAPSHOT_CHUNK: u64 = 1 << 20;

const FORWARDED: &str = "x-statelog-forwarded";
/// The header naming the leader's address in an answer a follower relayed from it.
pub const LEADER: &str = "x-statelog-leader";

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's id.
    pub id: NodeId,
    /// The node's directory (statelog store and snapshot files).
    pub dir: PathBuf,
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Shortest election timeout.
    pub election_min: Duration,
    /// Longest election timeout.
    pub election_max: Duration,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_logs: u64,
    /// Entries kept in the log behind the snapshot (for followers that are only a little
    /// behind); older ones are purged.
    pub keep_logs: u64,
}

impl NodeOptions {
    /// Default settings for node `id` in `dir`: heartbeat 50 ms, election timeout 150–600
    /// ms, a snapshot every 10,000 entries, 1,000 entries kept behind it.
    ///
    /// A follower of openraft 0.9 campaigns only once the leader's lease (the longest
    /// election timeout) and then its own random election timeout have passed without a
    /// heartbeat, so a leader's death is noticed after 750–1,200 ms with these settings; a
    /// short lower bound keeps that sum well within two of the longest timeouts.
    pub fn new(id: NodeId, dir: impl Into<PathBuf>) -> Self {
        NodeOptions {
            id,
            dir: dir.into(),
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(150),
            election_max: Duration::from_millis(600),
            snapshot_logs: 10_000,
            keep_logs: 1_000,
        }
    }

    fn raft_config(&self) -> Result<Config, Error> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "statelog".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_min),
            election_timeout_max: ms(self.election_max),
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            max_in_snapshot_log_to_keep: self.keep_logs,
            install_snapshot_timeout: 2_000,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Raft(e.to_string()))
    }
}

/// A running node's shared state.
pub struct App {
    id: NodeId,
    raft: Raft,
    sm: StateMachine,
    http: reqwest::Client,
    proposals: mpsc::Sender<Waiting<Response, WriteError>>,
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

/// A node started by [`start`]: its address and Raft handle, and the server task.
pub struct Node {
    /// The address the node listens on.
    pub addr: SocketAddr,
    /// The node's openraft handle.
    pub raft: Raft,
    /// The node's state machine.
    pub sm: StateMachine,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Node {
    /// Stops the server and Raft.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.server.abort();
        let _ = self.server.await;
        self.raft
            .shutdown()
            .await
            .map_err(|e| Error::Raft(format!("shutdown: {e}")))
    }
}

/// Starts node `options.id` on `listener`: opens its storage, starts Raft and serves its
/// RPCs and client API until `stop` completes or the node is [shut down](Node::shutdown).
pub async fn start(
    options: NodeOptions,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Node, Error> {
    let config = Arc::new(options.raft_config()?);
    let (log, sm) = open_storage(&options.dir)?;
    let network = Network::new(Duration::from_millis(500))?;
    let raft = Raft::new(options.id, config, network, log, sm.clone())
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (proposals, rx) = mpsc::channel(4 * MAX_PROPOSAL_REQUESTS);
    let proposing = raft.clone();
    tokio::spawn(proposer(
        move |requests| {
            let raft = proposing.clone();
            async move {
                let written = raft.client_write(Proposal { requests }).await?;
                Ok(written.data)
            }
        },
        rx,
        LINGER,
    ));
    let app = Arc::new(App {
        id: options.id,
        raft: raft.clone(),
        sm: sm.clone(),
        http,
        proposals,
    });
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listener's address", e))?;
    let router = router(app);
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
    });
    Ok(Node {
        addr,
        raft,
        sm,
        server,
    })
}

/// The node's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route("/api/write", post(write))
        .route("/api/read", post(read))
        .route("/api/local-read", post(local_read))
        .route("/api/init", post(init))
        .route("/api/add-learner", post(add_learner))
        .route("/api/change-membership", post(change_membership))
        .route("/api/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn append(
    State(app): State<Arc<App>>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> HttpResponse {
    Json(app.raft.append_entries(req).await).into_response()
}

async fn vote(State(app): State<Arc<App>>, Json(req): Json<VoteRequest<NodeId>>) -> HttpResponse {
    Json(app.raft.vote(req).await).into_response()
}

async fn snapshot(
    State(app): State<Arc<App>>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> HttpResponse {
    Json(app.raft.install_snapshot(req).await).into_response()
}

/// A client API answer: the result as JSON, with a status that tells errors apart.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> HttpResponse {
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(ApiError::NoLeader) | Err(ApiError::Forward { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        Err(ApiError::Invalid(_)) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(result)).into_response()
}

/// Sends a request on to the leader, unless it was forwarded already (one hop only), and
/// relays its answer, naming the leader's address in the [`LEADER`] header (clients go
/// there directly next time).
async fn forward<B: Serialize>(
    app: &App,
    to: ForwardToLeader<NodeId, BasicNode>,
    headers: &HeaderMap,
    path: &str,
    body: &B,
) -> HttpResponse {
    let node = match to.leader_node {
        Some(node) if !headers.contains_key(FORWARDED) && to.leader_id != Some(app.id) => node,
        _ => return answer::<()>(Err(ApiError::NoLeader)),
    };
    let fail = |detail: String| {
        answer::<()>(Err(ApiError::Forward {
            addr: node.addr.clone(),
            detail,
        }))
    };
    let resp = match app
        .http
        .post(format!("{}{path}", base_url(&node.addr)))
        .header(FORWARDED, "1")
        .json(body)
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => return fail(e.to_string()),
    };
    let status = resp.status();
    match resp.bytes().await {
        Ok(bytes) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (HeaderName::from_static(LEADER), node.addr.clone()),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => fail(e.to_string()),
    }
}

async fn write_result<T: Serialize, B: Serialize>(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: &B,
    result: Result<T, WriteError>,
) -> HttpResponse {
    match result {
        Ok(r) => answer(Ok(r)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            forward(app, to, headers, path, body).await
        }
        Err(e) => answer::<T>(Err(ApiError::Raft(e.to_string()))),
    }
}

async fn write(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<Request>,
) -> HttpResponse {
    let size = request_bytes(&req);
    if size > MAX_COMMAND {
        return answer::<Response>(Err(ApiError::Invalid(format!(
            "command of {size} bytes, over the {MAX_COMMAND} byte limit"
        ))));
    }
    let (tx, rx) = oneshot::channel();
    let waiting = Waiting {
        request: req.clone(),
        answer: tx,
    };
    let result = match app.proposals.send(waiting).await {
        Ok(()) => match rx.await {
            Ok(r) => r,
            Err(_) => return answer::<Response>(Err(ApiError::Raft("proposal dropped".into()))),
        },
        Err(_) => return answer::<Response>(Err(ApiError::Raft("node shutting down".into()))),
    };
    write_result(&app, &headers, "/api/write", &req, result).await
}

/// A key to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The key.
    pub key: String,
}

async fn read(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<ReadRequest>,
) -> HttpResponse {
    match app.raft.ensure_linearizable().await {
        // Applied up to the read point: the local state answers.
        Ok(_) => answer(
            app.sm
                .get(&req.key)
                .map_err(|e| ApiError::Storage(e.to_string())),
        ),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
            forward(&app, to, &headers, "/api/read", &req).await
        }
        Err(e) => answer::<()>(Err(ApiError::Raft(e.to_string()))),
    }
}

async fn local_read(State(app): State<Arc<App>>, Json(req): Json<ReadRequest>) -> HttpResponse {
    answer(
        app.sm
            .get(&req.key)
            .map_err(|e| ApiError::Storage(e.to_string())),
    )
}

/// The initial members of a cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitRequest {
    /// Each member's id and address.
    pub members: BTreeMap<NodeId, String>,
}

async fn init(State(app): State<Arc<App>>, Json(req): Json<InitRequest>) -> HttpResponse {
    let members: BTreeMap<NodeId, BasicNode> = req
        .members
        .into_iter()
        .map(|(id, addr)| (id, BasicNode::new(addr)))
        .collect();
    answer(
        app.raft
            .initialize(members)
            .await
            .map_err(|e| ApiError::Raft(e.to_string())),
    )
}

/// A learner to add.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddLearnerRequest {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
}

async fn add_learner(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<AddLearnerRequest>,
) -> HttpResponse {
    let result = app
        .raft
        .add_learner(req.id, BasicNode::new(req.addr.clone()), true)
        .await
        .map(|r| r.log_id.index);
    write_result(&app, &headers, "/api/add-learner", &req, result).await
}

/// The new voting members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipRequest {
    /// Their ids (learners already added, or members).
    pub members: BTreeSet<NodeId>,
}

async fn change_membership(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<MembershipRequest>,
) -> HttpResponse {
    let result = app
        .raft
        .change_membership(req.members.clone(), false)
        .await
        .map(|r| r.log_id.index);
    write_result(&app, &headers, "/api/change-membership", &req, result).await
}

async fn metrics(State(app): State<Arc<App>>) -> HttpResponse {
    let m: RaftMetrics<NodeId, BasicNode> = app.raft.metrics().borrow().clone();
    answer(Ok(m))
}
