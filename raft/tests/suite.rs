//! The acceptance test: openraft's own storage test suite against the statelog storage.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use statelog_raft::{LogStore, NodeId, StateMachine, TypeConfig, open_storage};
use tempfile::TempDir;

/// Each test of the suite gets a fresh node directory (removed with the guard).
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = open_storage(dir.path()).expect("open storage");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
