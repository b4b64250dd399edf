//! Failure tests: 3-node clusters of `statelog-raft` processes on 127.0.0.1 (free ports
//! below the ephemeral range, kept across restarts), killed with SIGKILL. Every wait is bounded; each test ends by
//! itself.
//!
//! `STATELOG_RAFT_KILL_ROUNDS` sets how many times the leader is killed (20 by default).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, applied, client_of, cluster, wait_all_caught_up, wait_leader};
use statelog_raft::Client;

const LONG: Duration = Duration::from_secs(30);

/// Writes `key -> value` pairs through `client` until `stop`, recording each acknowledged
/// one.
async fn writer(
    client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (k, v) = (format!("{prefix}/{i}"), format!("v{i}-{prefix}"));
        // A write that fails (its node killed, no leader yet) is not acknowledged: it may or
        // may not be committed, and nothing is asserted about it.
        if client.set(&k, &v).await.is_ok() {
            acked.lock().unwrap().push((k, v));
        }
        i += 1;
    }
}

async fn wait_count(acked: &Mutex<Vec<(String, String)>>, n: usize, what: &str) {
    let start = Instant::now();
    while acked.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < LONG,
            "{what}: fewer than {n} writes acknowledged within {LONG:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_during_writes_loses_no_acknowledged_write() {
    let rounds: usize = std::env::var("STATELOG_RAFT_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let root = tempfile::tempdir().unwrap();
    let mut procs = cluster(root.path(), 3, &[]).await;
    let mut all: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let leader = wait_leader(&procs, LONG).await;
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..4)
            .map(|c| {
                tokio::spawn(writer(
                    client_of(&procs),
                    format!("r{round}/c{c}"),
                    stop.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        wait_count(&acked, 20, "before the kill").await;
        let li = procs.iter().position(|p| p.id == leader).unwrap();
        procs[li].kill();
        let at_kill = acked.lock().unwrap().len();
        // The new leader acknowledges writes.
        wait_count(&acked, at_kill + 20, "after the kill").await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let new_leader = wait_leader(&procs, LONG).await;
        assert_ne!(
            new_leader, leader,
            "round {round}: the killed node is still leader"
        );
        // Every write acknowledged in this round, before or after the kill, is on the new
        // leader (linearizable reads).
        let client = client_of(&procs);
        let round_acked = acked.lock().unwrap().clone();
        for (k, v) in &round_acked {
            let got = client.read(k).await.unwrap();
            assert_eq!(got.as_deref(), Some(v.as_str()), "round {round}: lost {k}");
        }
        all.extend(round_acked);
        procs[li].restart();
        wait_all_caught_up(&procs, LONG).await;
    }
    // After the restarts, every acknowledged write is on every node.
    wait_all_caught_up(&procs, LONG).await;
    for p in &procs {
        let c = p.client();
        for (k, v) in &all {
            let got = c.local_read(k).await.unwrap();
            assert_eq!(got.as_deref(), Some(v.as_str()), "node {}: lost {k}", p.id);
        }
    }
    eprintln!(
        "{rounds} leader kills, {} acknowledged writes checked on 3 nodes",
        all.len()
    );
}

async fn write_n(client: &Client, prefix: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (k, v) = (format!("{prefix}/{i}"), format!("value-{prefix}-{i}"));
        client.set(&k, &v).await.unwrap();
        out.push((k, v));
    }
    out
}

async fn assert_local(p: &Proc, rows: &[(String, String)]) {
    let c = p.client();
    for (k, v) in rows {
        let got = c.local_read(k).await.unwrap();
        assert_eq!(got.as_deref(), Some(v.as_str()), "node {}: {k}", p.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_follower_restarts_and_catches_up_from_the_log() {
    let root = tempfile::tempdir().unwrap();
    let mut procs = cluster(root.path(), 3, &[]).await;
    let client = client_of(&procs);
    let mut rows = write_n(&client, "before", 50).await;
    let leader = wait_leader(&procs, LONG).await;
    let fi = procs.iter().position(|p| p.id != leader).unwrap();
    procs[fi].kill();
    rows.extend(write_n(&client, "while-down", 300).await);
    let li = procs.iter().position(|p| p.id == leader).unwrap();
    let target = applied(&procs[li]).await.unwrap();
    procs[fi].restart();
    common::wait_applied(&procs[fi], target, LONG).await;
    assert_local(&procs[fi], &rows).await;
    // From the log: no snapshot was built or sent (the policy's threshold is far off).
    let m = procs[fi].client().metrics().await.unwrap();
    assert_eq!(
        m.snapshot, None,
        "caught up from a snapshot instead of the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_follower_catches_up_from_a_snapshot() {
    let root = tempfile::tempdir().unwrap();
    // A snapshot every 100 entries, and no log kept behind it.
    let args = ["--snapshot-logs", "100", "--keep-logs", "0"];
    let mut procs = cluster(root.path(), 3, &args).await;
    let client = client_of(&procs);
    let mut rows = write_n(&client, "before", 50).await;
    let leader = wait_leader(&procs, LONG).await;
    let fi = procs.iter().position(|p| p.id != leader).unwrap();
    procs[fi].kill();
    std::fs::remove_dir_all(&procs[fi].dir).unwrap();
    rows.extend(write_n(&client, "while-down", 350).await);
    let li = procs.iter().position(|p| p.id == leader).unwrap();
    // The leader's log no longer holds the first entries: only a snapshot can bring the
    // wiped node back.
    let start = Instant::now();
    loop {
        let m = procs[li].client().metrics().await.unwrap();
        if m.purged.is_some_and(|p| p.index >= 100) {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "the leader did not purge its log: {:?}",
            m.purged
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = applied(&procs[li]).await.unwrap();
    procs[fi].restart();
    common::wait_applied(&procs[fi], target, LONG).await;
    assert_local(&procs[fi], &rows).await;
    let m = procs[fi].client().metrics().await.unwrap();
    assert!(
        m.snapshot.is_some_and(|s| s.index >= 100),
        "no snapshot installed: {:?}",
        m.snapshot
    );
    // It serves as a member afterwards: new writes reach it.
    let more = write_n(&client, "after", 20).await;
    let target = applied(&procs[li]).await.unwrap();
    common::wait_applied(&procs[fi], target, LONG).await;
    assert_local(&procs[fi], &more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition_accepts_no_writes() {
    let root = tempfile::tempdir().unwrap();
    let mut procs = cluster(root.path(), 3, &[]).await;
    let client = client_of(&procs);
    client.set("k", "v0").await.unwrap();

    // 1. The leader alone: its peers killed, it acknowledges no write and no linearizable
    //    read.
    let leader = wait_leader(&procs, LONG).await;
    for p in procs.iter_mut().filter(|p| p.id != leader) {
        p.kill();
    }
    let li = procs.iter().position(|p| p.id == leader).unwrap();
    let lone = procs[li].client().with_deadline(Duration::from_secs(2));
    let w = lone.set("k", "v1").await;
    assert!(w.is_err(), "a lone leader acknowledged a write: {w:?}");
    let r = lone.read("k").await;
    assert!(
        r.is_err(),
        "a lone leader served a linearizable read: {r:?}"
    );

    // Healed: writes go on.
    for p in procs.iter_mut().filter(|p| !p.running()) {
        p.restart();
    }
    client.set("k", "v2").await.unwrap();
    assert_eq!(client.read("k").await.unwrap().as_deref(), Some("v2"));

    // 2. A follower alone: the leader and the other follower killed.
    wait_all_caught_up(&procs, LONG).await;
    let leader = wait_leader(&procs, LONG).await;
    let fi = procs.iter().position(|p| p.id != leader).unwrap();
    let follower = procs[fi].id;
    for p in procs.iter_mut().filter(|p| p.id != follower) {
        p.kill();
    }
    let lone = procs[fi].client().with_deadline(Duration::from_secs(2));
    let w = lone.set("k", "v3").await;
    assert!(w.is_err(), "a lone follower acknowledged a write: {w:?}");
    let r = lone.read("k").await;
    assert!(
        r.is_err(),
        "a lone follower served a linearizable read: {r:?}"
    );
    assert_eq!(lone.local_read("k").await.unwrap().as_deref(), Some("v2"));
}
