//! Store settings: the defaults are what the documentation says, and each builder setting
//! reaches the epoch log (and changes what the store does).

use std::time::Duration;

use statelog::epoch::{Clock, Options};
use statelog::{RecoveryMode, Store, StoreOptions};

#[test]
fn defaults_are_documented_values() {
    let o = StoreOptions::default();
    assert!(o.auto_compact);
    assert!(o.view.is_none());
    assert_eq!(o.log.retention.keep_epochs, 2);
    assert_eq!(o.log.retention.keep_for, None);
    assert_eq!(o.log.compaction.min_update_bytes, 4 << 20);
    assert_eq!(o.log.compaction.update_ratio, 1.0);
    assert_eq!(o.log.segment_bytes, 64 << 20);
    assert_eq!(o.log.reserve_bytes, 1 << 20);
    assert_eq!(o.log.recovery, RecoveryMode::TolerateTornTail);
    assert!(!o.log.fall_back);
    assert_eq!(o.log.block_size, 32 * 1024);
    assert_eq!(o.log.write_buffer, 256 * 1024);
    // The same as the epoch log's own defaults.
    let log = Options::default();
    assert_eq!(o.log.retention, log.retention);
    assert_eq!(o.log.compaction, log.compaction);
    assert_eq!(o.log.segment_bytes, log.segment_bytes);
}

#[test]
fn each_builder_setting_reaches_the_log() {
    let o = StoreOptions::default()
        .auto_compact(false)
        .keep_epochs(1)
        .keep_for(Some(Duration::from_secs(60)))
        .min_update_bytes(123)
        .update_ratio(0.5)
        .segment_bytes(1 << 16)
        .reserve_bytes(0)
        .recovery(RecoveryMode::Strict)
        .fall_back(true)
        .block_size(4096)
        .write_buffer(1024)
        .clock(Clock::default())
        .view(statelog::DerivedView::new(|_| Ok(1u8)));
    assert!(!o.auto_compact);
    assert!(o.view.is_some());
    assert_eq!(o.log.retention.keep_epochs, 1);
    assert_eq!(o.log.retention.keep_for, Some(Duration::from_secs(60)));
    assert_eq!(o.log.compaction.min_update_bytes, 123);
    assert_eq!(o.log.compaction.update_ratio, 0.5);
    assert_eq!(o.log.segment_bytes, 1 << 16);
    assert_eq!(o.log.reserve_bytes, 0);
    assert_eq!(o.log.recovery, RecoveryMode::Strict);
    assert!(o.log.fall_back);
    assert_eq!(o.log.block_size, 4096);
    assert_eq!(o.log.write_buffer, 1024);
}

/// Commits `n` transactions of a 1 KiB value each.
fn fill(store: &Store, n: u32) {
    let t = store.bytes_table("t").unwrap();
    for i in 0..n {
        store
            .write(|tx| tx.put_bytes(&t, format!("{i:08}").as_bytes(), &[7u8; 1024]))
            .unwrap();
    }
}

#[test]
fn auto_compact_off_never_compacts_and_keep_epochs_bounds_retention() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default()
        .auto_compact(false)
        .min_update_bytes(1)
        .keep_epochs(1);
    let store = Store::open(dir.path(), options).unwrap();
    let epoch = store.log().current_epoch();
    fill(&store, 50);
    assert_eq!(
        store.log().current_epoch(),
        epoch,
        "no automatic compaction"
    );
    store.compact().unwrap();
    store.compact().unwrap();
    assert_eq!(store.log().epochs().unwrap().len(), 1, "one epoch kept");
}

#[test]
fn small_thresholds_compact_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default()
        .min_update_bytes(4096)
        .update_ratio(0.1);
    let store = Store::open(dir.path(), options).unwrap();
    let epoch = store.log().current_epoch();
    fill(&store, 50);
    // Automatic compactions run on their own thread: wait for the last one.
    store.close().unwrap();
    assert!(store.log().current_epoch() > epoch, "compacted by itself");
}

#[test]
fn segment_bytes_rotates_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions::default()
            .segment_bytes(8 << 10)
            .reserve_bytes(0),
    )
    .unwrap();
    fill(&store, 40);
    drop(store);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert!(segments > 2, "{segments} segments");
}
