//! Replication figures for BENCHMARKS.md ("Replication (issue 23)"): a 3-node cluster of
//! processes on 127.0.0.1 (this program run again as each node), replicated commits/s and
//! latency with 1 and 8 clients, beside single-node strong commits of a statelog store on the
//! same disk in the same run; then the time from a leader's kill -9 to the first write
//! acknowledged by the new leader.
//!
//! `cargo run --release -p statelog-raft --example bench`
//! (`BENCH_SECS`: seconds per measurement, 3; `BENCH_CLIENTS`: client counts, `1,8,64`;
//! `BENCH_FAILOVERS`: leader kills, 10; `BENCH_DIR`: where the directories go, the system's
//! temp dir; `BENCH_FLOOR_DIR`: a memory file system for the same cluster without fsync
//! costs, `/dev/shm`, skipped if absent.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use statelog::{Store, StoreOptions};
use statelog_raft::server::{self, NodeOptions};
use statelog_raft::{Client, NodeId};

const VALUE: usize = 100;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One measurement: commits/s and latency percentiles.
struct Figures {
    ops: usize,
    secs: f64,
    lat: Vec<Duration>,
}

impl Figures {
    fn new(ops: usize, secs: f64, mut lat: Vec<Duration>) -> Self {
        lat.sort();
        Figures { ops, secs, lat }
    }
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() as f64 * p) as usize).min(self.lat.len() - 1);
        self.lat[i].as_secs_f64() * 1e3
    }
}

/// Strong commits of one 100-byte row each on a single store, from `clients` threads.
fn single_node(dir: &Path, clients: usize, secs: f64) -> Figures {
    let store = Store::open(dir, StoreOptions::default()).expect("open store");
    let kv = store.bytes_table("kv").expect("table");
    let value = vec![b'v'; VALUE];
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let lats: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (store, kv, value) = (store.clone(), kv.clone(), value.clone());
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = 0u64;
                    while Instant::now() < until {
                        let key = format!("c{c}/{i}");
                        let t = Instant::now();
                        store
                            .write(|tx| tx.put_bytes(&kv, key.as_bytes(), &value))
                            .expect("write");
                        lat.push(t.elapsed());
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let lat: Vec<Duration> = lats.into_iter().flatten().collect();
    Figures::new(lat.len(), elapsed, lat)
}

/// A node: this program run with `node ID ADDR DIR`.
struct NodeProc {
    id: NodeId,
    addr: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    fn spawn(&mut self) {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .args(["node", &self.id.to_string(), &self.addr])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.split("listening on ").nth(1) {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        self.addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("node did not start");
        self.child = Some(child);
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn leader(nodes: &[NodeProc]) -> NodeId {
    let start = Instant::now();
    loop {
        for n in nodes.iter().filter(|n| n.child.is_some()) {
            if let Ok(m) = Client::new([n.addr.clone()]).unwrap().metrics().await {
                if m.current_leader == Some(n.id) && m.state.is_leader() {
                    return n.id;
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn replicated(nodes: &[NodeProc], clients: usize, secs: f64, run: usize) -> Figures {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let value = "v".repeat(VALUE);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = Client::new(addrs.clone()).unwrap();
            let value = value.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    let t = Instant::now();
                    client
                        .set(&format!("r{run}/c{c}/{i}"), &value)
                        .await
                        .expect("replicated write");
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    Figures::new(lat.len(), elapsed, lat)
}

/// Kills the leader while one client writes; returns the time from the kill to the first
/// write acknowledged that was sent after it (so by the new leader).
async fn failover(nodes: &mut [NodeProc], round: usize) -> Duration {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = Client::new(addrs).unwrap();
    let old = leader(nodes).await;
    let i = nodes.iter().position(|n| n.id == old).unwrap();
    client
        .set("warm", "up")
        .await
        .expect("write before the kill");
    let killed = Instant::now();
    nodes[i].kill();
    let mut n = 0;
    let took = loop {
        if client
            .set(&format!("failover{round}/{n}"), "x")
            .await
            .is_ok()
        {
            break killed.elapsed();
        }
        n += 1;
    };
    nodes[i].spawn();
    // Caught up before the next round.
    let target = Client::new([nodes[(i + 1) % 3].addr.clone()])
        .unwrap()
        .metrics()
        .await
        .unwrap()
        .last_applied
        .map_or(0, |l| l.index);
    let restarted = Client::new([nodes[i].addr.clone()]).unwrap();
    let start = Instant::now();
    while restarted
        .metrics()
        .await
        .map_or(0, |m| m.last_applied.map_or(0, |l| l.index))
        < target
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "restart did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    took
}

async fn node_main(id: NodeId, addr: &str, dir: &Path) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let local = listener.local_addr().expect("addr");
    let _node = server::start(NodeOptions::new(id, dir), listener, std::future::pending())
        .await
        .expect("start node");
    println!("bench node {id} listening on {local}");
    std::future::pending::<()>().await;
}

fn row(what: &str, clients: usize, f: &Figures) {
    println!(
        "| {what} | {clients} | {:.0} | {:.2} | {:.2} |",
        f.rate(),
        f.pct(0.50),
        f.pct(0.99)
    );
}

/// A 3-node cluster of this program's node processes, their directories in `root`, with
/// its leader elected.
async fn cluster(root: &Path) -> Vec<NodeProc> {
    let mut nodes: Vec<NodeProc> = (1..=3)
        .map(|id| NodeProc {
            id,
            addr: "127.0.0.1:0".into(),
            dir: root.join(format!("node{id}")),
            child: None,
        })
        .collect();
    for n in &mut nodes {
        n.spawn();
    }
    let members: BTreeMap<NodeId, String> = nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    Client::new([nodes[0].addr.clone()])
        .unwrap()
        .init(members)
        .await
        .expect("init");
    leader(&nodes).await;
    nodes
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.get(1).map(String::as_str) == Some("node") {
        let id: NodeId = args[2].parse().expect("node id");
        rt.block_on(node_main(id, &args[3], Path::new(&args[4])));
        return;
    }
    let secs = env_u64("BENCH_SECS", 3) as f64;
    let failovers = env_u64("BENCH_FAILOVERS", 10) as usize;
    let base = std::env::var("BENCH_DIR").map_or_else(|_| std::env::temp_dir(), PathBuf::from);
    let root = tempfile::tempdir_in(base).expect("bench dir");

    println!("| workload | clients | commits/s | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let counts: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut single = Vec::new();
    for &clients in &counts {
        let f = single_node(&root.path().join(format!("single{clients}")), clients, secs);
        row("single node, strong commit", clients, &f);
        single.push(f);
    }

    rt.block_on(async {
        let mut nodes = cluster(root.path()).await;
        let mut repl = Vec::new();
        for (run, &clients) in counts.iter().enumerate() {
            let f = replicated(&nodes, clients, secs, run).await;
            row("3 nodes, replicated", clients, &f);
            repl.push(f);
        }
        println!();
        for ((clients, r), s) in counts.iter().zip(&repl).zip(&single) {
            println!(
                "{clients} clients: replicated / single-node strong = {:.2} (target for 8: >= 0.5)",
                r.rate() / s.rate()
            );
        }
        // The same cluster with its directories in memory: no fsync costs anything, so what
        // is left of a replicated write is the protocol's own round (openraft's core, the two
        // HTTP hops, the apply): the ceiling any disk leaves below.
        let floor_dir = std::env::var("BENCH_FLOOR_DIR").unwrap_or_else(|_| "/dev/shm".into());
        if Path::new(&floor_dir).is_dir() {
            let mem = tempfile::tempdir_in(&floor_dir).expect("floor dir");
            let mem_nodes = cluster(mem.path()).await;
            println!();
            println!("| workload | clients | commits/s | p50 ms | p99 ms |");
            println!("| --- | ---: | ---: | ---: | ---: |");
            let mut floor = Vec::new();
            for (run, &clients) in counts.iter().enumerate() {
                let f = replicated(&mem_nodes, clients, secs, run).await;
                row(
                    "3 nodes, replicated, directories in memory (no fsync)",
                    clients,
                    &f,
                );
                floor.push(f);
            }
            drop(mem_nodes);
            println!();
            for ((clients, m), s) in counts.iter().zip(&floor).zip(&single) {
                println!(
                    "{clients} clients: replicated with no fsync at all / single-node strong on \
                     disk = {:.2} (the protocol's ceiling for the ratio on this machine)",
                    m.rate() / s.rate()
                );
            }
        }
        let mut times = Vec::new();
        for round in 0..failovers {
            times.push(failover(&mut nodes, round).await);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len().max(1) as f64;
        println!(
            "failover (kill -9 of the leader to the first write acknowledged by the new one), \
             {} kills: min {:.0} ms, median {:.0} ms, mean {:.0} ms, max {:.0} ms \
             (election timeout 150-600 ms; target: within two of the longest, 1200 ms)",
            times.len(),
            times.first().map_or(0.0, |d| ms(*d)),
            times.get(times.len() / 2).map_or(0.0, |d| ms(*d)),
            mean,
            times.last().map_or(0.0, |d| ms(*d)),
        );
    });
}
