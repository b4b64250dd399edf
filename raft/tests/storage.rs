//! The storage across reopening, and snapshot files refused when damaged.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{
    BasicNode, Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, Vote,
};
use statelog_raft::{Proposal, Request, TypeConfig, open_storage};
use tokio::io::AsyncWriteExt;

fn set(index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal::one(Request::Set {
            key: key.into(),
            value: value.into(),
        })),
    }
}

fn membership(index: u64) -> Entry<TypeConfig> {
    let nodes: std::collections::BTreeMap<u64, BasicNode> = [(1u64, BasicNode::new("127.0.0.1:1"))]
        .into_iter()
        .collect();
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], nodes)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_vote_and_cuts_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = open_storage(dir.path()).unwrap();
        let entries: Vec<_> = (1..=10).map(|i| set(i, &format!("k{i}"), "v")).collect();
        log.blocking_append(entries).await.unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 6))).await.unwrap();
        log.truncate(log_id(1, 1, 8)).await.unwrap();
        log.purge(log_id(1, 1, 3)).await.unwrap();
    }
    // Dropped: the store is closed, and opens again at once.
    let (mut log, _sm) = open_storage(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 6)));
    let got: Vec<u64> = log
        .try_get_log_entries(0..100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(got, vec![4, 5, 6, 7]);
    // Everything purged: the last log id is the purge point.
    log.purge(log_id(1, 1, 7)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    assert!(log.try_get_log_entries(0..100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshot_is_refused_and_intact_one_survives_reopen() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open_storage(leader_dir.path()).unwrap();
    let mut entries = vec![membership(1)];
    entries.extend((2..=200).map(|i| set(i, &format!("key{i:04}"), &format!("value {i}"))));
    sm.apply(entries).await.unwrap();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 200)));
    let bytes = std::fs::read(leader_dir.path().join("snapshots/current.snap")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut follower) = open_storage(dir.path()).unwrap();
        follower.apply([set(1, "old", "row")]).await.unwrap();
        // One flipped bit in a row: the checksum refuses it, and the state is untouched.
        let mut bad = bytes.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x10;
        let mut data = follower.begin_receiving_snapshot().await.unwrap();
        data.write_all(&bad).await.unwrap();
        data.flush().await.unwrap();
        let err = follower.install_snapshot(&snap.meta, data).await;
        assert!(err.is_err(), "a damaged snapshot was installed");
        assert_eq!(follower.get("old").unwrap().as_deref(), Some("row"));
        assert_eq!(follower.get("key0100").unwrap(), None);
        assert!(follower.get_current_snapshot().await.unwrap().is_none());
        // The intact one replaces the state.
        let mut data = follower.begin_receiving_snapshot().await.unwrap();
        data.write_all(&bytes).await.unwrap();
        data.flush().await.unwrap();
        follower.install_snapshot(&snap.meta, data).await.unwrap();
        assert_eq!(follower.get("old").unwrap(), None);
        assert_eq!(follower.len().unwrap(), 199);
    }
    let (_log, mut follower) = open_storage(dir.path()).unwrap();
    assert_eq!(
        follower.get("key0100").unwrap().as_deref(),
        Some("value 100")
    );
    let (applied, m) = follower.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 200)));
    assert_eq!(m.log_id(), &Some(log_id(1, 1, 1)));
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);
}
