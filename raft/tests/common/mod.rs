//! Nodes as processes of the `statelog-raft` binary on 127.0.0.1, for the failure tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use statelog_raft::{Client, NodeId};

/// A node process; killed (SIGKILL) when dropped, so a failing test leaves none behind.
pub struct Proc {
    pub id: NodeId,
    /// `127.0.0.1:port`, fixed at the first start and reused by restarts.
    pub addr: String,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

/// A port that is free now, below the kernel's ephemeral range (32768 and up), so neither an
/// outgoing connection nor a bind to port 0 takes it while its node is down between a kill
/// and a restart.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

impl Proc {
    /// Starts node `id` with its directory in `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path, id: NodeId, args: &[&str]) -> Proc {
        let mut p = Proc {
            id,
            addr: String::new(),
            dir: root.join(format!("n{id}")),
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            p.addr = format!("127.0.0.1:{}", free_port());
            match p.spawn() {
                Ok(()) => return p,
                // Taken between the check and the node's bind: another port.
                Err(e) => last = e,
            }
        }
        panic!("node {id} did not start: {last}");
    }

    /// Starts the process on `self.addr`; an error if it exits or prints nothing in 20 s.
    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "node {} is running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("node log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_statelog-raft"))
            .arg("serve")
            .arg("--id")
            .arg(self.id.to_string())
            .arg("--listen")
            .arg(&self.addr)
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn statelog-raft");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "node {} did not start on {} ({e}; its log: {})",
                    self.id,
                    self.addr,
                    self.dir.with_extension("log").display()
                ))
            }
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again, on the same address and directory.
    pub fn restart(&mut self) {
        if let Err(e) = self.spawn() {
            panic!("restart: {e}");
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// A client of this node only.
    pub fn client(&self) -> Client {
        Client::new([self.addr.clone()]).expect("client")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `n` nodes (ids 1..=n) on free ports and initializes them as one cluster.
pub async fn cluster(root: &Path, n: u64, args: &[&str]) -> Vec<Proc> {
    let procs: Vec<Proc> = (1..=n).map(|id| Proc::start(root, id, args)).collect();
    let members: BTreeMap<NodeId, String> = procs.iter().map(|p| (p.id, p.addr.clone())).collect();
    procs[0].client().init(members).await.expect("init");
    wait_leader(&procs, Duration::from_secs(20)).await;
    procs
}

/// A client of every node.
pub fn client_of(procs: &[Proc]) -> Client {
    Client::new(procs.iter().map(|p| p.addr.clone())).expect("client")
}

/// The leader that a running node reports as itself leader, waiting up to `timeout`.
pub async fn wait_leader(procs: &[Proc], timeout: Duration) -> NodeId {
    let start = Instant::now();
    loop {
        for p in procs.iter().filter(|p| p.running()) {
            if let Ok(m) = p.client().metrics().await {
                if m.current_leader == Some(p.id) && m.state.is_leader() {
                    return p.id;
                }
            }
        }
        assert!(start.elapsed() < timeout, "no leader within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node's last applied index.
pub async fn applied(p: &Proc) -> Option<u64> {
    let m = p.client().metrics().await.ok()?;
    Some(m.last_applied.map_or(0, |l| l.index))
}

/// Waits until node `p` has applied index `index`.
pub async fn wait_applied(p: &Proc, index: u64, timeout: Duration) {
    let start = Instant::now();
    loop {
        if applied(p).await.is_some_and(|a| a >= index) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "node {} did not apply index {index} within {timeout:?} (at {:?})",
            p.id,
            applied(p).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every running node has applied what the leader has applied now.
pub async fn wait_all_caught_up(procs: &[Proc], timeout: Duration) {
    let leader = wait_leader(procs, timeout).await;
    let lp = procs.iter().find(|p| p.id == leader).expect("leader");
    let target = applied(lp).await.expect("leader metrics");
    for p in procs.iter().filter(|p| p.running()) {
        wait_applied(p, target, timeout).await;
    }
}
