//! openraft's state machine on a statelog store: a key-value table, applied in transactions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, StorageError,
    StorageIOError, StoredMembership,
};
use statelog::{BytesTable, Durability, Readable, Store, WriteTx};

use crate::error::Error;
use crate::snapshot::{self, Meta};
use crate::store::{blocking, encode, get_json};
use crate::{NodeId, Request, Response, TypeConfig};

/// The bytes table of the key-value state.
pub(crate) const KV_TABLE: &str = "kv";
/// The bytes table of the state machine's metadata: last applied log id and membership.
pub(crate) const SM_META_TABLE: &str = "sm_meta";

const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";

/// The replicated key-value state machine on a statelog [`Store`], with its snapshot files
/// in a directory of their own. Cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    kv: BytesTable,
    meta: BytesTable,
    dir: PathBuf,
    /// Snapshot builds and installs one at a time.
    snapshots: Mutex<()>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("store", &self.inner.store)
            .field("snapshots", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// The last applied log id and the membership.
type AppliedState = (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>);

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

fn string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value under `key`, or `None`.
pub(crate) fn get_value(
    r: &impl Readable,
    kv: &BytesTable,
    key: &str,
) -> statelog::Result<Option<String>> {
    Ok(r.get_bytes(kv, key.as_bytes())?.map(string))
}

fn apply_request(tx: &mut WriteTx, kv: &BytesTable, req: &Request) -> statelog::Result<Response> {
    let previous = get_value(tx, kv, req.key())?;
    let ok = match req {
        Request::Set { key, value } => {
            tx.put_bytes(kv, key.as_bytes(), value.as_bytes())?;
            true
        }
        Request::Delete { key } => {
            if previous.is_some() {
                tx.delete_bytes(kv, key.as_bytes())?;
            }
            true
        }
        Request::CompareAndSet {
            key,
            expected,
            value,
        } => {
            if previous != *expected {
                false
            } else {
                match value {
                    Some(v) => tx.put_bytes(kv, key.as_bytes(), v.as_bytes())?,
                    None if previous.is_some() => tx.delete_bytes(kv, key.as_bytes())?,
                    None => {}
                }
                true
            }
        }
    };
    Ok(Response { ok, previous })
}

impl StateMachine {
    /// The state machine on `store` (its tables are created if absent), with snapshot files in
    /// `snapshot_dir` (created if absent). If the current snapshot file is newer than the
    /// store's state (an install interrupted between the two), the state is restored from it.
    pub fn open(store: Store, snapshot_dir: impl AsRef<Path>) -> Result<StateMachine, Error> {
        let dir = snapshot_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        snapshot::remove_temps(&dir)?;
        let kv = store.bytes_table(KV_TABLE)?;
        let meta = store.bytes_table(SM_META_TABLE)?;
        let sm = StateMachine {
            inner: Arc::new(Inner {
                store,
                kv,
                meta,
                dir,
                snapshots: Mutex::new(()),
            }),
        };
        let current = snapshot::current_path(&sm.inner.dir);
        if current.exists() {
            let (_, snap_meta) = snapshot::open(&current)?;
            let (applied, _) = sm.applied()?;
            if snap_meta.last_log_id > applied {
                sm.restore(&current, &snap_meta)?;
            }
        }
        Ok(sm)
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The value under `key` in this node's state (not linearizable by itself).
    pub fn get(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(get_value(&self.inner.store.read(), &self.inner.kv, key)?)
    }

    /// The number of keys in this node's state.
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.inner.store.read().count(&self.inner.kv)?)
    }

    /// Whether this node's state has no keys.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    fn applied(&self) -> Result<AppliedState, Error> {
        let snap = self.inner.store.read();
        let applied: Option<Option<LogId<NodeId>>> = get_json(&snap, &self.inner.meta, APPLIED)?;
        let applied = applied.flatten();
        let membership = get_json(&snap, &self.inner.meta, MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    /// Replaces the state with the snapshot file at `path` (verified first), in one strong
    /// transaction.
    fn restore(&self, path: &Path, meta: &Meta) -> Result<(), Error> {
        let (file_meta, _) = snapshot::verify(path)?;
        if file_meta.last_log_id != meta.last_log_id
            || file_meta.last_membership != meta.last_membership
        {
            return Err(Error::corrupt(
                format!("snapshot {}", path.display()),
                "its metadata differs from the snapshot being installed",
            ));
        }
        let (mut reader, _) = snapshot::open(path)?;
        let applied = encode("log id", &meta.last_log_id)?;
        let membership = encode("membership", &meta.last_membership)?;
        let inner = &self.inner;
        // The snapshot's own error (a row that no longer reads) aborts the transaction and
        // is returned as it is.
        inner.store.transact(|tx| -> Result<(), Error> {
            let old: Vec<Vec<u8>> = tx.range_bytes(&inner.kv, ..)?.map(|(k, _)| k).collect();
            for k in old {
                tx.delete_bytes(&inner.kv, &k)?;
            }
            while let Some((k, v)) = reader.next_row()? {
                tx.put_bytes(&inner.kv, &k, &v)?;
            }
            tx.put_bytes(&inner.meta, APPLIED, &applied)?;
            tx.put_bytes(&inner.meta, MEMBERSHIP, &membership)?;
            Ok(())
        })
    }

    fn build_blocking(&self) -> Result<Meta, Error> {
        let inner = &self.inner;
        let _one = inner.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        // A read snapshot: O(1), a fixed state while the writers go on.
        let snap = inner.store.read();
        let applied: Option<Option<LogId<NodeId>>> = get_json(&snap, &inner.meta, APPLIED)?;
        let applied = applied.flatten();
        let membership: StoredMembership<NodeId, BasicNode> =
            get_json(&snap, &inner.meta, MEMBERSHIP)?.unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let meta = Meta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: format!(
                "{}-{}-{nanos}",
                applied.map_or(0, |l| l.leader_id.term),
                applied.map_or(0, |l| l.index)
            ),
        };
        // The state applied buffered is made durable before openraft may purge the log up to
        // this snapshot.
        crate::store::sync(&inner.store)?;
        let tmp = snapshot::temp_path(&inner.dir, "build");
        let rows = snap.range_bytes(&inner.kv, ..)?;
        snapshot::write(&tmp, &meta, rows)?;
        let current = snapshot::current_path(&inner.dir);
        std::fs::rename(&tmp, &current)
            .map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))?;
        snapshot::sync_dir(&inner.dir)?;
        Ok(meta)
    }

    fn install_blocking(&self, meta: Meta, mut data: std::fs::File) -> Result<(), Error> {
        use std::io::{Seek, SeekFrom};
        let inner = &self.inner;
        let _one = inner.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = snapshot::temp_path(&inner.dir, "install");
        let io = |e| {
            Error::io(
                format!("copying the received snapshot to {}", tmp.display()),
                e,
            )
        };
        data.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut out = std::fs::File::create_new(&tmp).map_err(io)?;
        std::io::copy(&mut data, &mut out).map_err(io)?;
        out.sync_all().map_err(io)?;
        drop(out);
        // The state first, then the file: an interruption between leaves a store newer than
        // the current snapshot, which is consistent.
        if let Err(e) = self.restore(&tmp, &meta) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let current = snapshot::current_path(&inner.dir);
        std::fs::rename(&tmp, &current)
            .map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))?;
        snapshot::sync_dir(&inner.dir)
    }

    fn current_blocking(&self) -> Result<Option<(Meta, std::fs::File)>, Error> {
        let _one = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = snapshot::current_path(&self.inner.dir);
        let file = match std::fs::File::open(&current) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("opening {}", current.display()), e)),
        };
        let (_, meta) = snapshot::Reader::new(
            std::io::BufReader::new(file.try_clone().map_err(|e| Error::io("snapshot", e))?),
            current.display().to_string(),
        )?;
        Ok(Some((meta, file)))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let this = self.clone();
        let meta = blocking(move || this.build_blocking())
            .await
            .map_err(snap_err)?;
        let path = snapshot::current_path(&self.inner.dir);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snap_err(Error::io(format!("opening {}", path.display()), e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<AppliedState, StorageError<NodeId>> {
        self.applied()
            .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let applied = encode("log id", &Some(last)).map_err(sm_err)?;
        let membership = entries
            .iter()
            .rev()
            .find_map(|e| match &e.payload {
                EntryPayload::Membership(m) => {
                    Some(StoredMembership::new(Some(e.log_id), m.clone()))
                }
                _ => None,
            })
            .map(|m| encode("membership", &m))
            .transpose()
            .map_err(sm_err)?;
        let inner = &self.inner;
        // One transaction for the batch, with the applied log id and membership. Buffered: the
        // log holds the entries durably, and a state that is behind after a crash is caught
        // up by applying them again; snapshots sync first.
        inner
            .store
            .write_with(Durability::Buffered, |tx| {
                let mut out = Vec::with_capacity(entries.len());
                for e in &entries {
                    out.push(match &e.payload {
                        EntryPayload::Normal(p) => p
                            .requests
                            .iter()
                            .map(|req| apply_request(tx, &inner.kv, req))
                            .collect::<statelog::Result<Vec<Response>>>()?,
                        EntryPayload::Blank | EntryPayload::Membership(_) => Vec::new(),
                    });
                }
                tx.put_bytes(&inner.meta, APPLIED, &applied)?;
                if let Some(m) = &membership {
                    tx.put_bytes(&inner.meta, MEMBERSHIP, m)?;
                }
                Ok(out)
            })
            .map_err(sm_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        // An unnamed file: its chunks go to disk, not memory, and nothing is left behind if
        // the transfer is abandoned.
        let path = snapshot::temp_path(&self.inner.dir, "receive");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|f| std::fs::remove_file(&path).map(|()| f))
            .map_err(|e| snap_err(Error::io(format!("creating {}", path.display()), e)))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        blocking(move || this.install_blocking(meta, data))
            .await
            .map_err(snap_err)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let this = self.clone();
        let current = blocking(move || this.current_blocking())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}
