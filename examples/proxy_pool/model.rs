//! The data model of Resin's proxy pool (../shared/research/seed-repos.md §000) as statelog
//! tables: strong ones in the state directory, weak ones in the cache directory, and the
//! references the repair on open enforces.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use statelog::weak::{ParentIn, Rules};
use statelog::{Result, Store, Table, TableDef};

/// A platform (strong); its name is unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub name: String,
    pub sticky_ttl_ns: i64,
    pub allocation_policy: String,
    pub updated_at_ns: i64,
}

/// A subscription (strong); `created_at_ns` is kept on update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub created_at_ns: i64,
    pub updated_at_ns: i64,
}

/// Headers added for URLs with a prefix (strong).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderRule {
    pub headers: Vec<(String, String)>,
    pub updated_at_ns: i64,
}

/// The single system configuration row (strong), saved with compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemConfig {
    pub config_json: String,
    pub updated_at_ns: i64,
}

/// A node's static description (weak), by node hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatic {
    pub raw_options_json: String,
    pub created_at_ns: i64,
}

/// A node's changing health (weak), by node hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDynamic {
    pub failure_count: u32,
    pub circuit_open_since: i64,
    pub egress_ip: String,
    pub egress_region: String,
    pub egress_updated_at_ns: i64,
}

/// A node's latency to a domain (weak), by (node hash, domain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLatency {
    pub ewma_ns: i64,
    pub last_updated_ns: i64,
}

/// A sticky lease of an account to a node (weak), by (platform id, account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub node_hash: String,
    pub egress_ip: String,
    pub created_at_ns: i64,
    pub expiry_ns: i64,
    pub last_accessed_ns: i64,
}

/// A node found in a subscription (weak), by (subscription id, node hash). An evicted binding
/// outlives its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionNode {
    pub tags: Vec<String>,
    pub evicted: bool,
}

/// Every table of the model.
#[derive(Debug, Clone)]
pub struct Tables {
    pub platforms: Table<String, Platform>,
    pub subscriptions: Table<String, Subscription>,
    pub header_rules: Table<String, HeaderRule>,
    pub config: Table<u8, SystemConfig>,
    pub nodes_static: Table<String, NodeStatic>,
    pub nodes_dynamic: Table<String, NodeDynamic>,
    pub node_latency: Table<(String, String), NodeLatency>,
    pub leases: Table<(String, String), Lease>,
    pub subscription_nodes: Table<(String, String), SubscriptionNode>,
}

/// Opens every table (strong ones in `strong`, weak ones in `weak`) and declares the
/// references, in the order Resin's RepairConsistency applies them.
pub fn open_tables(strong: &Store, weak: &Store) -> Result<(Tables, Rules)> {
    let t = Tables {
        platforms: strong
            .table(TableDef::new("platforms").unique("name", |p: &Platform| p.name.clone()))?,
        subscriptions: strong.table(TableDef::new("subscriptions"))?,
        header_rules: strong.table(TableDef::new("account_header_rules"))?,
        config: strong.table(TableDef::new("system_config"))?,
        nodes_static: weak.table(TableDef::new("nodes_static"))?,
        nodes_dynamic: weak.table(TableDef::new("nodes_dynamic"))?,
        node_latency: weak.table(TableDef::new("node_latency"))?,
        leases: weak.table(TableDef::new("leases"))?,
        subscription_nodes: weak.table(TableDef::new("subscription_nodes"))?,
    };
    let rules = Rules::new()
        // 1. Bindings of a deleted subscription, and live bindings of a node that is gone.
        .reference(
            &t.subscription_nodes,
            &t.subscriptions,
            ParentIn::Strong,
            |k, _| k.0.clone(),
        )
        .reference_when(
            &t.subscription_nodes,
            &t.nodes_static,
            ParentIn::Same,
            |k, _| k.1.clone(),
            |_, v| !v.evicted,
        )
        // 2. Nodes no live binding refers to.
        .unreferenced(
            &t.nodes_static,
            &t.subscription_nodes,
            |k, _| k.1.clone(),
            |_, v| !v.evicted,
        )
        // 3-5. Rows of nodes that are gone, and leases of a deleted platform.
        .reference(&t.nodes_dynamic, &t.nodes_static, ParentIn::Same, |k, _| {
            k.clone()
        })
        .reference(&t.node_latency, &t.nodes_static, ParentIn::Same, |k, _| {
            k.0.clone()
        })
        .reference(&t.leases, &t.platforms, ParentIn::Strong, |k, _| {
            k.0.clone()
        })
        .reference(&t.leases, &t.nodes_static, ParentIn::Same, |_, v| {
            v.node_hash.clone()
        });
    Ok((t, rules))
}
