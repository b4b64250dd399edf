//! The main demo: Resin's proxy pool on statelog. Strong tables (platforms, subscriptions,
//! header rules, system config) in a state directory, weak tables (nodes, latency, leases,
//! subscription bindings) in a cache directory, written by a flush worker from dirty sets.
//!
//! A child process populates a pool of thousands of nodes and leases, lets the flush worker
//! write them, deletes a subscription and a platform (strong), marks more changes, and then
//! dies without a final flush. The parent reopens both directories, repairs the references,
//! and prints what survived and how long the restore took.
//!
//! Run with `cargo run --release --example proxy_pool [DIR]`.

mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::*;
use parking_lot::Mutex;
use statelog::weak::{DirtySet, FlushPolicy, Flusher, Persistence, Rules};
use statelog::{Readable, Result, StoreOptions};

const NODES: usize = 5_000;
const LEASES: usize = 2_000;
const SUBSCRIPTIONS: usize = 5;
const PLATFORMS: usize = 3;

fn open(dir: &Path) -> Result<(Persistence, Tables, Rules)> {
    let (p, (t, rules)) = Persistence::open(
        dir.join("state"),
        dir.join("cache"),
        StoreOptions::default(),
        StoreOptions::default(),
        |strong, weak| {
            // The rules are used twice: by the repair on open, and to order flushes.
            let (t, rules) = open_tables(strong, weak)?;
            let (_, again) = open_tables(strong, weak)?;
            Ok(((t, again), rules))
        },
    )?;
    Ok((p, t, rules))
}

/// The application's in-memory pool: the weak tables' live data and their dirty sets.
#[derive(Default)]
struct Pool {
    nodes: Mutex<HashMap<String, NodeStatic>>,
    dynamic: Mutex<HashMap<String, NodeDynamic>>,
    latency: Mutex<HashMap<(String, String), NodeLatency>>,
    leases: Mutex<HashMap<(String, String), Lease>>,
    bindings: Mutex<HashMap<(String, String), SubscriptionNode>>,
    d_nodes: Arc<DirtySet<String>>,
    d_dynamic: Arc<DirtySet<String>>,
    d_latency: Arc<DirtySet<(String, String)>>,
    d_leases: Arc<DirtySet<(String, String)>>,
    d_bindings: Arc<DirtySet<(String, String)>>,
}

fn flusher(pool: &Arc<Pool>, p: &Persistence, t: &Tables, rules: &Rules) -> Arc<Flusher> {
    let (a, b, c, d, e) = (
        pool.clone(),
        pool.clone(),
        pool.clone(),
        pool.clone(),
        pool.clone(),
    );
    Arc::new(
        Flusher::new(p.weak.clone())
            .source(&t.leases, pool.d_leases.clone(), move |k| {
                a.leases.lock().get(k).cloned()
            })
            .source(&t.node_latency, pool.d_latency.clone(), move |k| {
                b.latency.lock().get(k).cloned()
            })
            .source(&t.nodes_dynamic, pool.d_dynamic.clone(), move |k| {
                c.dynamic.lock().get(k).cloned()
            })
            .source(&t.subscription_nodes, pool.d_bindings.clone(), move |k| {
                d.bindings.lock().get(k).cloned()
            })
            .source(&t.nodes_static, pool.d_nodes.clone(), move |k| {
                e.nodes.lock().get(k).cloned()
            })
            // Parents (nodes_static) are upserted first and deleted last.
            .order_by(rules),
    )
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The child: populate, flush, change, die.
fn run_child(dir: &Path) -> Result<()> {
    let (p, t, rules) = open(dir)?;
    let s = |x: String| x;
    p.strong.write(|tx| {
        for i in 0..PLATFORMS {
            tx.insert(
                &t.platforms,
                &format!("plat{i}"),
                &Platform {
                    name: format!("platform-{i}"),
                    sticky_ttl_ns: 600_000_000_000,
                    allocation_policy: "BALANCED".into(),
                    updated_at_ns: now_ns(),
                },
            )?;
        }
        for i in 0..SUBSCRIPTIONS {
            let sub = Subscription {
                name: format!("subscription {i}"),
                url: format!("https://example.invalid/sub/{i}"),
                enabled: true,
                created_at_ns: now_ns(),
                updated_at_ns: now_ns(),
            };
            tx.upsert_preserving(&t.subscriptions, &format!("sub{i}"), &sub, |old, new| {
                new.created_at_ns = old.created_at_ns
            })?;
        }
        tx.insert_if_absent(
            &t.header_rules,
            &"*".to_string(),
            &HeaderRule {
                headers: vec![("User-Agent".into(), "resin".into())],
                updated_at_ns: now_ns(),
            },
        )?;
        Ok(())
    })?;
    let version = p.strong.read().version(&t.config, &1)?;
    let config = SystemConfig {
        config_json: "{\"flush_threshold\":1000}".into(),
        updated_at_ns: now_ns(),
    };
    p.strong
        .write(|tx| tx.save(&t.config, &1, &config, version))?;

    let pool = Arc::new(Pool::default());
    let f = flusher(&pool, &p, &t, &rules);
    p.start_flush_worker(
        f.clone(),
        FlushPolicy::fixed(Duration::from_millis(50), 1000, Duration::from_secs(1)),
    )?;
    for n in 0..NODES {
        let hash = format!("{n:016x}");
        let sub = format!("sub{}", n % SUBSCRIPTIONS);
        pool.nodes.lock().insert(
            hash.clone(),
            NodeStatic {
                raw_options_json: format!("{{\"port\":{}}}", 1000 + n),
                created_at_ns: now_ns(),
            },
        );
        pool.dynamic.lock().insert(
            hash.clone(),
            NodeDynamic {
                failure_count: 0,
                circuit_open_since: 0,
                egress_ip: format!("10.0.{}.{}", n / 256 % 256, n % 256),
                egress_region: ["eu", "us", "ap"][n % 3].into(),
                egress_updated_at_ns: now_ns(),
            },
        );
        for domain in ["a.example", "b.example"] {
            let k = (hash.clone(), s(domain.into()));
            pool.latency.lock().insert(
                k.clone(),
                NodeLatency {
                    ewma_ns: 1_000_000 + n as i64,
                    last_updated_ns: now_ns(),
                },
            );
            pool.d_latency.mark_upsert(k);
        }
        // Every tenth binding is evicted.
        let k = (sub, hash.clone());
        pool.bindings.lock().insert(
            k.clone(),
            SubscriptionNode {
                tags: vec!["fast".into()],
                evicted: n % 10 == 9,
            },
        );
        pool.d_bindings.mark_upsert(k);
        pool.d_nodes.mark_upsert(hash.clone());
        pool.d_dynamic.mark_upsert(hash);
    }
    for l in 0..LEASES {
        let k = (format!("plat{}", l % PLATFORMS), format!("account{l}"));
        pool.leases.lock().insert(
            k.clone(),
            Lease {
                node_hash: format!("{:016x}", l * 2 % NODES),
                egress_ip: "10.0.0.1".into(),
                created_at_ns: 777,
                expiry_ns: now_ns() + 600_000_000_000,
                last_accessed_ns: now_ns(),
            },
        );
        pool.d_leases.mark_upsert(k);
    }
    let marked = f.dirty_count();
    let t0 = Instant::now();
    while f.dirty_count() > 0 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The dirty count drops when the worker drains the sets; `flush` waits for a flush in
    // progress to commit (and writes anything still marked).
    f.flush()?;
    eprintln!(
        "child: marked {marked} weak rows; flushed by the worker in {:?}",
        t0.elapsed()
    );
    // Strong changes: a subscription and a platform are deleted (their weak rows become
    // orphans, removed by the repair on the next open).
    p.strong.write(|tx| {
        tx.delete(&t.subscriptions, &"sub4".to_string())?;
        tx.delete(&t.platforms, &"plat2".to_string())?;
        Ok(())
    })?;
    // More weak changes, never flushed: the process dies first.
    for n in 0..500 {
        let hash = format!("{n:016x}");
        if let Some(d) = pool.dynamic.lock().get_mut(&hash) {
            d.failure_count += 1;
        }
        pool.d_dynamic.mark_upsert(hash);
    }
    eprintln!("child: marked 500 more changes, then dies without a final flush");
    std::process::exit(0);
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        run_child(Path::new(&args[i + 1]))?;
        return Ok(());
    }
    let given = args.get(1).map(PathBuf::from);
    let dir = given.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("statelog-pool-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(&dir)
        .status()?;
    assert!(status.success(), "child failed: {status}");

    let t0 = Instant::now();
    let (p, t, _) = open(&dir)?;
    let took = t0.elapsed();
    let strong = p.strong.read();
    let weak = p.weak.read();
    println!(
        "reopened after the crash in {took:?} (both directories restored, references repaired)"
    );
    println!(
        "strong, all intact: {} platforms, {} subscriptions, {} header rules, config version {}",
        strong.count(&t.platforms)?,
        strong.count(&t.subscriptions)?,
        strong.count(&t.header_rules)?,
        strong.version(&t.config, &1)?
    );
    println!(
        "weak, as of the last flush: {} nodes, {} dynamic rows, {} latency rows, {} leases, {} bindings",
        weak.count(&t.nodes_static)?,
        weak.count(&t.nodes_dynamic)?,
        weak.count(&t.node_latency)?,
        weak.count(&t.leases)?,
        weak.count(&t.subscription_nodes)?
    );
    let unflushed = weak
        .list(&t.nodes_dynamic)?
        .iter()
        .filter(|(_, d)| d.failure_count > 0)
        .count();
    println!(
        "the 500 changes marked after the last flush are lost, as weak durability allows: {unflushed} found"
    );
    println!("repair removed: {:?}", p.repair.removed);
    let lease = weak.list(&t.leases)?.into_iter().next();
    if let Some((k, l)) = lease {
        println!(
            "a lease survived with its fields: {k:?} created_at_ns={} node={}",
            l.created_at_ns, l.node_hash
        );
    }
    p.close()?;
    if given.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
