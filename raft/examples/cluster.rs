//! A 3-node cluster on 127.0.0.1 in one process: started, initialized, written through a
//! follower (forwarded to the leader), read back linearizably, grown by a learner promoted
//! to a voter, then shut down.
//!
//! `cargo run --release -p statelog-raft --example cluster`

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use statelog_raft::server::{self, Node, NodeOptions};
use statelog_raft::{Client, Error, NodeId};

async fn start(root: &std::path::Path, id: NodeId) -> Result<Node, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Raft(format!("bind: {e}")))?;
    server::start(
        NodeOptions::new(id, root.join(format!("node{id}"))),
        listener,
        std::future::pending(),
    )
    .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let root = tempfile::tempdir().map_err(|e| Error::Raft(e.to_string()))?;
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let node = start(root.path(), id).await?;
        println!("node {id} listening on {}", node.addr);
        nodes.push(node);
    }
    let members: BTreeMap<NodeId, String> = nodes
        .iter()
        .zip(1..)
        .map(|(n, id)| (id, n.addr.to_string()))
        .collect();
    Client::new([nodes[0].addr.to_string()])?
        .init(members)
        .await?;

    // Writes and reads through any node: followers forward to the leader.
    let client = Client::new(nodes.iter().rev().map(|n| n.addr.to_string()))?;
    let start_writes = Instant::now();
    for i in 0..100 {
        client.set(&format!("key{i}"), &format!("value{i}")).await?;
    }
    println!(
        "100 writes committed on a majority in {:?}",
        start_writes.elapsed()
    );
    for i in [0, 42, 99] {
        let v = client.read(&format!("key{i}")).await?;
        assert_eq!(v.as_deref(), Some(format!("value{i}").as_str()));
        println!("read key{i} = {v:?} (linearizable)");
    }
    let leader = nodes[0].raft.current_leader().await;
    println!("leader: node {leader:?}");

    // A fourth node joins as a learner, catches up, and becomes a voter.
    let fourth = start(root.path(), 4).await?;
    client.add_learner(4, &fourth.addr.to_string()).await?;
    client
        .change_membership(BTreeSet::from([1, 2, 3, 4]))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fourth.sm.get("key99")?.is_none() {
        assert!(Instant::now() < deadline, "node 4 did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "node 4 joined and holds {} keys; members: {:?}",
        fourth.sm.len()?,
        fourth
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect::<Vec<_>>()
    );
    nodes.push(fourth);
    for n in nodes {
        n.shutdown().await?;
    }
    println!("cluster example: ok");
    Ok(())
}
