//! Dirty sets: which keys of a weak table changed since the last flush, and how.

use std::collections::HashMap;
use std::hash::Hash;

use crate::sync::Mutex;

/// What a flush does with a marked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Write the key's current value (read at flush time; a missing value becomes a delete).
    Upsert,
    /// Delete the key's row.
    Delete,
}

/// The keys of one weak table marked since the last flush. A later mark of a key replaces an
/// earlier one. Thread-safe.
#[derive(Debug)]
pub struct DirtySet<K> {
    marks: Mutex<HashMap<K, Mark>>,
}

impl<K: Eq + Hash + Clone> Default for DirtySet<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone> DirtySet<K> {
    /// An empty set.
    pub fn new() -> Self {
        DirtySet {
            marks: Mutex::new(HashMap::new()),
        }
    }

    /// Marks `key` to be written with its current value at the next flush.
    pub fn mark_upsert(&self, key: K) {
        self.mark(key, Mark::Upsert);
    }

    /// Marks `key` to be deleted at the next flush.
    pub fn mark_delete(&self, key: K) {
        self.mark(key, Mark::Delete);
    }

    /// Marks `key`; replaces an earlier mark of it.
    pub fn mark(&self, key: K, mark: Mark) {
        self.marks.lock().insert(key, mark);
    }

    /// Number of marked keys.
    pub fn len(&self) -> usize {
        self.marks.lock().len()
    }

    /// Whether no key is marked.
    pub fn is_empty(&self) -> bool {
        self.marks.lock().is_empty()
    }

    /// Takes every mark, leaving the set empty (a swap, so marking goes on meanwhile).
    pub fn drain(&self) -> HashMap<K, Mark> {
        std::mem::take(&mut *self.marks.lock())
    }

    /// Puts back drained marks after a failed flush, except for keys marked again since the
    /// drain: the newer mark wins.
    pub fn merge_back(&self, drained: HashMap<K, Mark>) {
        let mut marks = self.marks.lock();
        for (k, m) in drained {
            marks.entry(k).or_insert(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TestDirtySet_MarkAndDrain and TestDirtySet_OverwriteOp.
    #[test]
    fn marks_drain_and_overwrite() {
        let d = DirtySet::new();
        d.mark_upsert("a");
        d.mark_upsert("b");
        d.mark_delete("c");
        assert_eq!(d.len(), 3);
        d.mark_delete("a");
        let drained = d.drain();
        assert_eq!(d.len(), 0);
        assert_eq!(drained.len(), 3);
        assert_eq!(drained["a"], Mark::Delete);
        assert_eq!(drained["b"], Mark::Upsert);
    }

    /// TestDirtySet_Merge: newer marks win over merged-back ones.
    #[test]
    fn merge_back_keeps_newer_marks() {
        let d = DirtySet::new();
        d.mark_upsert("a");
        d.mark_upsert("b");
        let drained = d.drain();
        d.mark_delete("a");
        d.mark_upsert("c");
        d.merge_back(drained);
        let all = d.drain();
        assert_eq!(all.len(), 3);
        assert_eq!(all["a"], Mark::Delete);
        assert_eq!(all["b"], Mark::Upsert);
        assert_eq!(all["c"], Mark::Upsert);
    }

    /// TestDirtySet_ConcurrentMarkAndDrain, strengthened: no mark is lost.
    #[test]
    fn concurrent_marks_and_drains_lose_nothing() {
        let d = std::sync::Arc::new(DirtySet::new());
        let mut seen = std::collections::HashSet::new();
        std::thread::scope(|s| {
            for w in 0..10u32 {
                let d = d.clone();
                s.spawn(move || {
                    for i in 0..1000u32 {
                        d.mark_upsert(w * 1000 + i);
                    }
                });
            }
            for _ in 0..50 {
                seen.extend(d.drain().into_keys());
            }
        });
        seen.extend(d.drain().into_keys());
        assert_eq!(seen.len(), 10_000);
    }
}
