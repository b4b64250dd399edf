//! A deployment director (the seed `../shared/seeds/` 004): configuration snapshots with a
//! pending/active lifecycle, an apply log that says which instances applied which version
//! (the quorum of a two-phase rollout), and a leader lock with a fencing number.
//!
//! 1. The director takes the leader lock; its fencing number goes into every decision.
//! 2. It saves version v1 of the `routes` collection as pending, then activates it: the old
//!    active version is demoted, v1 becomes active and the activation is logged, in one
//!    transaction.
//! 3. Instances log that they applied it (one fails first, then succeeds); the rollout is done
//!    once a quorum applied it.
//! 4. v2 is saved and activated the same way; the apply log of v1 is reset.
//! 5. The director restarts (the store is reopened): everything above is still there, and the
//!    next leader gets a higher fencing number.
//!
//! Run with `cargo run --release --example director [DIR]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use statelog::{ApplyLog, Readable, Store, StoreOptions, Table, TableDef, WriteTx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Pending,
    Active,
    Inactive,
}

/// A configuration snapshot of one collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConfigSnapshot {
    status: Status,
    /// The configuration itself.
    body: String,
    /// The fencing number of the leader that last changed it.
    fence: u64,
}

/// One apply-log entry: an instance applied (or failed to apply) a version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    instance: String,
    collection: String,
    version: String,
    status: String,
}

struct Director {
    store: Store,
    snapshots: Table<(String, String), ConfigSnapshot>,
    log: ApplyLog<Applied>,
}

impl Director {
    fn open(dir: &PathBuf) -> statelog::Result<Director> {
        let store = Store::open(dir, StoreOptions::default())?;
        let snapshots = store.table(TableDef::new("snapshots"))?;
        let log = store.apply_log("apply_log")?;
        Ok(Director {
            store,
            snapshots,
            log,
        })
    }

    fn save(
        &self,
        fence: u64,
        collection: &str,
        version: &str,
        body: &str,
    ) -> statelog::Result<()> {
        let key = (collection.to_string(), version.to_string());
        let snap = ConfigSnapshot {
            status: Status::Pending,
            body: body.to_string(),
            fence,
        };
        self.store
            .write(|tx| tx.insert(&self.snapshots, &key, &snap).map(|_| ()))
    }

    /// Demotes the active version of `collection`, activates `version` and logs it: one
    /// transaction, so no reader ever sees two active versions, or an activation without its
    /// log entry.
    fn activate(&self, fence: u64, collection: &str, version: &str) -> statelog::Result<u64> {
        self.store.write(|tx| {
            let active = active_in(tx, &self.snapshots, collection)?;
            if let Some((v, mut snap)) = active {
                snap.status = Status::Inactive;
                snap.fence = fence;
                tx.insert(&self.snapshots, &(collection.to_string(), v), &snap)?;
            }
            let key = (collection.to_string(), version.to_string());
            let mut snap =
                tx.get(&self.snapshots, &key)?
                    .ok_or_else(|| statelog::Error::RowNotFound {
                        table: "snapshots".into(),
                        key: format!("{key:?}"),
                    })?;
            snap.status = Status::Active;
            snap.fence = fence;
            tx.insert(&self.snapshots, &key, &snap)?;
            tx.append(
                &self.log,
                &Applied {
                    instance: format!("director (fence {fence})"),
                    collection: collection.into(),
                    version: version.into(),
                    status: "activated".into(),
                },
            )
        })
    }

    /// `LogApply`.
    fn log_apply(
        &self,
        instance: &str,
        collection: &str,
        version: &str,
        ok: bool,
    ) -> statelog::Result<u64> {
        let entry = Applied {
            instance: instance.into(),
            collection: collection.into(),
            version: version.into(),
            status: if ok { "ok" } else { "failed" }.into(),
        };
        self.store.write(|tx| tx.append(&self.log, &entry))
    }

    /// `AppliedInstances`: instances that logged `status` for the version, once each.
    fn applied_instances(
        &self,
        collection: &str,
        version: &str,
        status: &str,
    ) -> statelog::Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for e in self.store.read().entries(&self.log, ..)? {
            let (_, a) = e?;
            if a.collection == collection
                && a.version == version
                && a.status == status
                && !out.contains(&a.instance)
            {
                out.push(a.instance);
            }
        }
        Ok(out)
    }

    /// `ResetApplyLog`: removes the version's entries; returns how many.
    fn reset_apply_log(&self, collection: &str, version: &str) -> statelog::Result<u64> {
        self.store.write(|tx| {
            tx.retain(&self.log, |_, a| {
                !(a.collection == collection && a.version == version)
            })
        })
    }
}

/// The active version of `collection`, if any (a prefix scan of its versions).
fn active_in(
    tx: &WriteTx,
    snapshots: &Table<(String, String), ConfigSnapshot>,
    collection: &str,
) -> statelog::Result<Option<(String, ConfigSnapshot)>> {
    for row in tx.range(snapshots, (collection.to_string(), String::new())..)? {
        let ((c, v), snap) = row?;
        if c != collection {
            break;
        }
        if snap.status == Status::Active {
            return Ok(Some((v, snap)));
        }
    }
    Ok(None)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args().nth(1).map(PathBuf::from);
    let dir = given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("statelog-director-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let quorum = 2;
    let first_fence;
    {
        let d = Director::open(&dir)?;
        // 1. Leadership, with a fencing number.
        let leader = d.store.try_lock("director-leader")?;
        first_fence = leader.fence();
        println!("leader lock taken, fencing number {first_fence}");

        // 2. v1: saved pending, then activated with its log entry in one transaction.
        d.save(first_fence, "routes", "v1", "/api -> pool-a")?;
        let id = d.activate(first_fence, "routes", "v1")?;
        println!("routes v1 active (apply-log entry {id})");

        // 3. Instances apply it; one fails first.
        d.log_apply("host-1", "routes", "v1", true)?;
        d.log_apply("host-2", "routes", "v1", false)?;
        d.log_apply("host-2", "routes", "v1", true)?;
        let done = d.applied_instances("routes", "v1", "ok")?;
        let failed = d.applied_instances("routes", "v1", "failed")?;
        println!("routes v1 applied by {done:?} (failed once: {failed:?})");
        assert!(done.len() >= quorum, "no quorum");

        // 4. v2 replaces it; v1's apply log is reset.
        d.save(first_fence, "routes", "v2", "/api -> pool-b")?;
        d.activate(first_fence, "routes", "v2")?;
        let removed = d.reset_apply_log("routes", "v1")?;
        println!("routes v2 active; {removed} apply-log entries of v1 removed");
        drop(leader);
        d.store.close()?;
    }

    // 5. A restart: the state is restored from the log, and leadership moves on.
    let d = Director::open(&dir)?;
    let leader = d.store.try_lock("director-leader")?;
    assert!(leader.fence() > first_fence);
    let snap = d.store.read();
    let v1 = snap
        .get(&d.snapshots, &("routes".to_string(), "v1".to_string()))?
        .ok_or("v1 is missing")?;
    let v2 = snap
        .get(&d.snapshots, &("routes".to_string(), "v2".to_string()))?
        .ok_or("v2 is missing")?;
    assert_eq!((v1.status, v2.status), (Status::Inactive, Status::Active));
    let entries: Vec<(u64, Applied)> = snap.entries(&d.log, ..)?.collect::<Result<_, _>>()?;
    assert_eq!(entries.len(), 1, "only v2's activation is left");
    println!(
        "after a restart: v1 {:?}, v2 {:?} ({}), {} apply-log entry, next fencing number {}",
        v1.status,
        v2.status,
        v2.body,
        entries.len(),
        leader.fence()
    );
    // The next entry's id follows every id handed out before the restart.
    let next = d.log_apply("host-1", "routes", "v2", true)?;
    assert!(next > entries[0].0);
    println!("host-1 applied v2: apply-log entry {next}");
    drop(leader);
    d.store.close()?;
    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
