//! The `statelog-raft` command: run a node of a replicated statelog cluster, and talk to one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use statelog_raft::server::{self, NodeOptions};
use statelog_raft::{Client, Error, NodeId, Request};

#[derive(Parser)]
#[command(
    name = "statelog-raft",
    about = "A replicated key-value store: openraft on statelog"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run node ID, listening on ADDR, with its log and state in DIR.
    Serve {
        /// The node's id.
        #[arg(long)]
        id: NodeId,
        /// The address to listen on (port 0: any free port; the line printed names it).
        #[arg(long)]
        listen: String,
        /// The node's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Leader heartbeat interval, ms.
        #[arg(long, default_value_t = 50)]
        heartbeat_ms: u64,
        /// Shortest election timeout, ms.
        #[arg(long, default_value_t = 150)]
        election_min_ms: u64,
        /// Longest election timeout, ms.
        #[arg(long, default_value_t = 600)]
        election_max_ms: u64,
        /// Build a snapshot after this many entries.
        #[arg(long, default_value_t = 10_000)]
        snapshot_logs: u64,
        /// Entries kept in the log behind a snapshot.
        #[arg(long, default_value_t = 1_000)]
        keep_logs: u64,
    },
    /// Initialize a new cluster on NODE with members ID=ADDR (NODE among them).
    Init {
        /// The node to initialize.
        #[arg(long)]
        node: String,
        /// Members, as ID=ADDR.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Add node ID at ADDR as a learner (waits until it caught up).
    AddLearner {
        /// Nodes of the cluster (comma-separated).
        #[arg(long)]
        nodes: String,
        /// The learner's id.
        #[arg(long)]
        id: NodeId,
        /// The learner's address.
        #[arg(long)]
        addr: String,
    },
    /// Make these node ids the voting members (promotes learners).
    ChangeMembership {
        /// Nodes of the cluster (comma-separated).
        #[arg(long)]
        nodes: String,
        /// The voting members.
        #[arg(required = true)]
        members: Vec<NodeId>,
    },
    /// Set KEY to VALUE (through the leader).
    Write {
        /// Nodes of the cluster (comma-separated).
        #[arg(long)]
        nodes: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete KEY (through the leader).
    Delete {
        /// Nodes of the cluster (comma-separated).
        #[arg(long)]
        nodes: String,
        /// The key.
        key: String,
    },
    /// Read KEY, linearizable (on the leader).
    Read {
        /// Nodes of the cluster (comma-separated).
        #[arg(long)]
        nodes: String,
        /// The key.
        key: String,
    },
    /// Print a node's Raft metrics as JSON.
    Metrics {
        /// The node.
        #[arg(long)]
        node: String,
    },
}

fn nodes(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn serve(options: NodeOptions, listen: String) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::Raft(format!("binding {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Raft(format!("binding {listen}: {e}")))?;
    let id = options.id;
    let node = server::start(options, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // The line tests and scripts wait for.
    println!("statelog-raft node {id} listening on {addr}");
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Raft(format!("installing the SIGTERM handler: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    node.shutdown().await
}

async fn run(cli: Cli) -> Result<(), Error> {
    let print = |v: serde_json::Value| println!("{v}");
    match cli.command {
        Command::Serve {
            id,
            listen,
            dir,
            heartbeat_ms,
            election_min_ms,
            election_max_ms,
            snapshot_logs,
            keep_logs,
        } => {
            let options = NodeOptions {
                heartbeat: Duration::from_millis(heartbeat_ms),
                election_min: Duration::from_millis(election_min_ms),
                election_max: Duration::from_millis(election_max_ms),
                snapshot_logs,
                keep_logs,
                ..NodeOptions::new(id, dir)
            };
            serve(options, listen).await
        }
        Command::Init { node, members } => {
            let mut map = BTreeMap::new();
            for m in members {
                let (id, addr) = m
                    .split_once('=')
                    .and_then(|(id, addr)| Some((id.parse::<NodeId>().ok()?, addr.to_string())))
                    .ok_or_else(|| {
                        Error::Api(statelog_raft::ApiError::Invalid(format!(
                            "member {m:?} is not ID=ADDR"
                        )))
                    })?;
                map.insert(id, addr);
            }
            Client::new([node])?.init(map).await?;
            print(serde_json::json!({"initialized": true}));
            Ok(())
        }
        Command::AddLearner { nodes: n, id, addr } => {
            let index = Client::new(nodes(&n))?.add_learner(id, &addr).await?;
            print(serde_json::json!({"learner": id, "log_index": index}));
            Ok(())
        }
        Command::ChangeMembership { nodes: n, members } => {
            let members: BTreeSet<NodeId> = members.into_iter().collect();
            let index = Client::new(nodes(&n))?
                .change_membership(members.clone())
                .await?;
            print(serde_json::json!({"members": members, "log_index": index}));
            Ok(())
        }
        Command::Write {
            nodes: n,
            key,
            value,
        } => {
            let r = Client::new(nodes(&n))?.set(&key, &value).await?;
            print(serde_json::json!({"ok": r.ok, "previous": r.previous}));
            Ok(())
        }
        Command::Delete { nodes: n, key } => {
            let r = Client::new(nodes(&n))?
                .write(&Request::Delete { key })
                .await?;
            print(serde_json::json!({"ok": r.ok, "previous": r.previous}));
            Ok(())
        }
        Command::Read { nodes: n, key } => {
            let v = Client::new(nodes(&n))?.read(&key).await?;
            print(serde_json::json!({"key": key, "value": v}));
            Ok(())
        }
        Command::Metrics { node } => {
            let m = Client::new([node])?.metrics().await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&m).map_err(|e| Error::Raft(e.to_string()))?
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("statelog-raft: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("statelog-raft: {e}");
            ExitCode::FAILURE
        }
    }
}
