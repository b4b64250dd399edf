//! What every workload shares: the bench's row and its versions, a small random number
//! generator, medians and percentiles, rates, directory sizes, the process's memory from
//! /proc/self/status, progress lines and the load average.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub score: f64,
    pub created_at: i64,
}

pub fn row(id: u64) -> Row {
    Row {
        id,
        name: format!("node-{id:08}"),
        tags: vec![
            format!("t{}", id % 7),
            format!("r{}", id % 13),
            "prod".into(),
        ],
        score: id as f64 * 0.5,
        created_at: 1_700_000_000_000 + id as i64,
    }
}

/// Version `v` of row `id`: the same unique name, another score.
pub fn row_v(id: u64, v: u64) -> Row {
    let mut r = row(id);
    r.score += v as f64;
    r
}

/// A bijection on u64 (the splitmix64 finalizer): distinct ids give distinct hashes.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Row `id`'s unique name in random order (a hash of the id, unique as the ids are), for the
/// issue 20 workloads: the others insert names in increasing order, the easy case for every
/// index.
pub fn random_name(id: u64) -> String {
    format!("node-{:016x}", mix(id))
}

/// Version `v` of row `id` with its name in random order.
pub fn random_row(id: u64, v: u64) -> Row {
    let mut r = row_v(id, v);
    r.name = random_name(id);
    r
}

/// The median of some measurements.
pub fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The median time in ms of `f(1)` ... `f(runs)`.
pub fn median_ms(runs: u64, mut f: impl FnMut(u64)) -> f64 {
    median_of(
        (1..=runs)
            .map(|v| {
                let t0 = Instant::now();
                f(v);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

pub struct Rng(pub u64);
impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

pub fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Memory of this process in KiB: (current resident, peak resident).
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets this process's peak resident memory (VmHWM) to its current resident memory (Linux:
/// 5 written to /proc/self/clear_refs); false if it cannot.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The quantile `q` (0 to 1) of sorted latencies, in ms.
pub fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = (sorted.len() as f64 * q) as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

pub fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

pub static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub fn progress(msg: &str) {
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[compare {t:7.1}s] {msg}");
}

/// The first three fields of /proc/loadavg (other work on the machine skews the figures).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}
