//! A client of a cluster's HTTP API that finds a node that answers: a node that is not the
//! leader forwards to the leader, and when none is known (an election, a dead leader) the
//! client tries the next node until its deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openraft::{BasicNode, RaftMetrics};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error};
use crate::network::base_url;
use crate::server::{AddLearnerRequest, InitRequest, LEADER, MembershipRequest, ReadRequest};
use crate::{NodeId, Request, Response};

/// The longest one HTTP request of a client may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of a cluster, given some of its nodes' addresses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    nodes: Arc<Vec<String>>,
    http: reqwest::Client,
    /// How long a call keeps trying.
    deadline: Duration,
    /// The node that answered last (tried first).
    preferred: Arc<AtomicUsize>,
}

impl Client {
    /// A client of the nodes at `nodes` (`host:port`), trying for up to 10 s per call.
    pub fn new(nodes: impl IntoIterator<Item = impl Into<String>>) -> Result<Client, Error> {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        if nodes.is_empty() {
            return Err(Error::Api(ApiError::Invalid("no node address".into())));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Client {
            nodes: Arc::new(nodes),
            http,
            deadline: Duration::from_secs(10),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The same client, trying for up to `deadline` per call.
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline;
        self
    }

    /// Posts `body` to `path` on one node after another until one answers with a result
    /// other than "no leader" (or a failed forward), or the deadline passes.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let start = Instant::now();
        let n = self.nodes.len();
        let mut i = self.preferred.load(Ordering::Relaxed) % n;
        let mut tried = 0usize;
        loop {
            let url = format!("{}{path}", base_url(&self.nodes[i]));
            // No request outlives the call's deadline (a leader cut off from its peers keeps
            // a write waiting).
            let left = self
                .deadline
                .saturating_sub(start.elapsed())
                .clamp(Duration::from_millis(50), REQUEST_TIMEOUT);
            let sent = match body {
                Some(b) => self.http.post(url).json(b).timeout(left).send().await,
                None => self.http.get(url).timeout(left).send().await,
            };
            let last = match sent {
                Ok(resp) => {
                    // Next time, the leader this node relayed from (if it is one of ours),
                    // else this node.
                    let leader = resp
                        .headers()
                        .get(LEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|a| self.nodes.iter().position(|n| n == a));
                    match resp.json::<Result<T, ApiError>>().await {
                        Ok(Ok(t)) => {
                            self.preferred.store(leader.unwrap_or(i), Ordering::Relaxed);
                            return Ok(t);
                        }
                        Ok(Err(e @ (ApiError::NoLeader | ApiError::Forward { .. }))) => {
                            e.to_string()
                        }
                        Ok(Err(e)) => return Err(Error::Api(e)),
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            let elapsed = start.elapsed();
            if elapsed >= self.deadline {
                return Err(Error::Timeout(
                    self.deadline,
                    format!("{}: {last}", self.nodes[i]),
                ));
            }
            i = (i + 1) % n;
            tried += 1;
            if tried % n == 0 {
                // Every node tried: wait a little for an election.
                tokio::time::sleep(Duration::from_millis(10).min(self.deadline - elapsed)).await;
            }
        }
    }

    /// Applies a command through the leader; returns once it is committed and applied.
    /// A call retried after a lost answer may apply the command twice (harmless for `Set`
    /// and `Delete`).
    pub async fn write(&self, req: &Request) -> Result<Response, Error> {
        self.call("/api/write", Some(req)).await
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &str) -> Result<Response, Error> {
        self.write(&Request::Set {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// The value of `key`, linearizable: read on the leader once it has confirmed its
    /// leadership and applied every write acknowledged before the call.
    pub async fn read(&self, key: &str) -> Result<Option<String>, Error> {
        self.call("/api/read", Some(&ReadRequest { key: key.into() }))
            .await
    }

    /// The value of `key` in the state of the first node given, as it is (no consistency
    /// check): for tests and tools.
    pub async fn local_read(&self, key: &str) -> Result<Option<String>, Error> {
        let url = format!("{}/api/local-read", base_url(&self.nodes[0]));
        let resp = self
            .http
            .post(url)
            .json(&ReadRequest { key: key.into() })
            .send()
            .await?;
        Ok(resp.json::<Result<Option<String>, ApiError>>().await??)
    }

    /// Initializes a new cluster with these members (id and address), on the first node
    /// given.
    pub async fn init(&self, members: BTreeMap<NodeId, String>) -> Result<(), Error> {
        let url = format!("{}/api/init", base_url(&self.nodes[0]));
        let resp = self
            .http
            .post(url)
            .json(&InitRequest { members })
            .send()
            .await?;
        Ok(resp.json::<Result<(), ApiError>>().await??)
    }

    /// Adds node `id` at `addr` as a learner and waits until it has caught up; returns the
    /// membership entry's log index.
    pub async fn add_learner(&self, id: NodeId, addr: &str) -> Result<u64, Error> {
        let req = AddLearnerRequest {
            id,
            addr: addr.into(),
        };
        self.call("/api/add-learner", Some(&req)).await
    }

    /// Makes `members` the voting members (learners not named stay out); returns the
    /// membership entry's log index.
    pub async fn change_membership(&self, members: BTreeSet<NodeId>) -> Result<u64, Error> {
        self.call(
            "/api/change-membership",
            Some(&MembershipRequest { members }),
        )
        .await
    }

    /// The Raft metrics of the first node given.
    pub async fn metrics(&self) -> Result<RaftMetrics<NodeId, BasicNode>, Error> {
        let url = format!("{}/api/metrics", base_url(&self.nodes[0]));
        let resp = self.http.get(url).send().await?;
        Ok(resp
            .json::<Result<RaftMetrics<NodeId, BasicNode>, ApiError>>()
            .await??)
    }
}
