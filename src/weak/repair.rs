//! Declared references between tables, and the repair that removes orphans on open.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::store::{Readable, Snapshot, Store, Table, WriteTx, encode_key};

/// Where a referenced parent table lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentIn {
    /// In the same store as the child (the weak store).
    Same,
    /// In the strong store (another directory).
    Strong,
}

/// Rows removed by a repair, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Table name → rows removed.
    pub removed: BTreeMap<String, usize>,
}

impl RepairReport {
    /// Total rows removed.
    pub fn total(&self) -> usize {
        self.removed.values().sum()
    }
}

trait Rule: Send + Sync {
    /// (parent, child) table names, for ordering flushes.
    fn edge(&self) -> (Option<&str>, &str);
    /// The table this rule deletes from.
    fn deletes_from(&self) -> &str;
    fn apply(&self, tx: &mut WriteTx, strong: Option<&Snapshot>) -> Result<usize>;
}

type KeyFn<CK, CV, PK> = Box<dyn Fn(&CK, &CV) -> PK + Send + Sync>;
type WhenFn<CK, CV> = Box<dyn Fn(&CK, &CV) -> bool + Send + Sync>;

struct Reference<CK, CV, PK, PV> {
    child: Table<CK, CV>,
    parent: Table<PK, PV>,
    parent_in: ParentIn,
    key: KeyFn<CK, CV, PK>,
    when: WhenFn<CK, CV>,
}

impl<CK, CV, PK, PV> Rule for Reference<CK, CV, PK, PV>
where
    CK: Serialize + DeserializeOwned + Send + Sync,
    CV: DeserializeOwned + Send + Sync,
    PK: Serialize + Send + Sync,
    PV: Send + Sync,
{
    fn edge(&self) -> (Option<&str>, &str) {
        let parent = (self.parent_in == ParentIn::Same).then(|| self.parent.name());
        (parent, self.child.name())
    }

    fn deletes_from(&self) -> &str {
        self.child.name()
    }

    fn apply(&self, tx: &mut WriteTx, strong: Option<&Snapshot>) -> Result<usize> {
        let mut orphans = Vec::new();
        for row in tx.range(&self.child, ..)? {
            let (ck, cv) = row?;
            if !(self.when)(&ck, &cv) {
                continue;
            }
            let pk = (self.key)(&ck, &cv);
            let exists = match self.parent_in {
                ParentIn::Same => tx.contains(&self.parent, &pk)?,
                ParentIn::Strong => strong
                    .ok_or_else(|| {
                        Error::InvalidArgument("a reference to the strong store needs it".into())
                    })?
                    .contains(&self.parent, &pk)?,
            };
            if !exists {
                orphans.push(ck);
            }
        }
        for ck in &orphans {
            tx.delete(&self.child, ck)?;
        }
        Ok(orphans.len())
    }
}

struct Unreferenced<PK, PV, CK, CV> {
    parent: Table<PK, PV>,
    child: Table<CK, CV>,
    key: KeyFn<CK, CV, PK>,
    when: WhenFn<CK, CV>,
}

impl<PK, PV, CK, CV> Rule for Unreferenced<PK, PV, CK, CV>
where
    PK: Serialize + DeserializeOwned + Send + Sync,
    PV: DeserializeOwned + Send + Sync,
    CK: Serialize + DeserializeOwned + Send + Sync,
    CV: DeserializeOwned + Send + Sync,
{
    fn edge(&self) -> (Option<&str>, &str) {
        (Some(self.parent.name()), self.child.name())
    }

    fn deletes_from(&self) -> &str {
        self.parent.name()
    }

    fn apply(&self, tx: &mut WriteTx, _strong: Option<&Snapshot>) -> Result<usize> {
        let mut referenced = HashSet::new();
        for row in tx.range(&self.child, ..)? {
            let (ck, cv) = row?;
            if (self.when)(&ck, &cv) {
                referenced.insert(encode_key(&(self.key)(&ck, &cv))?);
            }
        }
        let mut unused = Vec::new();
        for row in tx.range(&self.parent, ..)? {
            let (pk, _) = row?;
            if !referenced.contains(&encode_key(&pk)?) {
                unused.push(pk);
            }
        }
        for pk in &unused {
            tx.delete(&self.parent, pk)?;
        }
        Ok(unused.len())
    }
}

/// Referential rules between tables, checked by [`repair`](Self::repair) on open and used to
/// order flushes (parents upserted first, children deleted first). Rules are applied in the
/// order they are declared, each seeing the removals of the ones before it.
#[derive(Default)]
pub struct Rules {
    rules: Vec<Box<dyn Rule>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r: Vec<&str> = self.rules.iter().map(|r| r.deletes_from()).collect();
        f.debug_struct("Rules").field("deleting_from", &r).finish()
    }
}

impl Rules {
    /// No rules.
    pub fn new() -> Self {
        Rules::default()
    }

    /// Each row of `child` refers to the row of `parent` whose key `key` returns; a child
    /// whose parent is missing is an orphan and is removed.
    pub fn reference<CK, CV, PK, PV>(
        self,
        child: &Table<CK, CV>,
        parent: &Table<PK, PV>,
        parent_in: ParentIn,
        key: impl Fn(&CK, &CV) -> PK + Send + Sync + 'static,
    ) -> Self
    where
        CK: Serialize + DeserializeOwned + Send + Sync + 'static,
        CV: DeserializeOwned + Send + Sync + 'static,
        PK: Serialize + Send + Sync + 'static,
        PV: Send + Sync + 'static,
    {
        self.reference_when(child, parent, parent_in, key, |_, _| true)
    }

    /// As [`reference`](Self::reference), but only child rows for which `when` holds refer to
    /// a parent (others are kept whether or not it exists).
    pub fn reference_when<CK, CV, PK, PV>(
        mut self,
        child: &Table<CK, CV>,
        parent: &Table<PK, PV>,
        parent_in: ParentIn,
        key: impl Fn(&CK, &CV) -> PK + Send + Sync + 'static,
        when: impl Fn(&CK, &CV) -> bool + Send + Sync + 'static,
    ) -> Self
    where
        CK: Serialize + DeserializeOwned + Send + Sync + 'static,
        CV: DeserializeOwned + Send + Sync + 'static,
        PK: Serialize + Send + Sync + 'static,
        PV: Send + Sync + 'static,
    {
        self.rules.push(Box::new(Reference {
            child: child.clone(),
            parent: parent.clone(),
            parent_in,
            key: Box::new(key),
            when: Box::new(when),
        }));
        self
    }

    /// A row of `parent` that no row of `child` (for which `when` holds) refers to through
    /// `key` is garbage and is removed.
    pub fn unreferenced<PK, PV, CK, CV>(
        mut self,
        parent: &Table<PK, PV>,
        child: &Table<CK, CV>,
        key: impl Fn(&CK, &CV) -> PK + Send + Sync + 'static,
        when: impl Fn(&CK, &CV) -> bool + Send + Sync + 'static,
    ) -> Self
    where
        PK: Serialize + DeserializeOwned + Send + Sync + 'static,
        PV: DeserializeOwned + Send + Sync + 'static,
        CK: Serialize + DeserializeOwned + Send + Sync + 'static,
        CV: DeserializeOwned + Send + Sync + 'static,
    {
        self.rules.push(Box::new(Unreferenced {
            parent: parent.clone(),
            child: child.clone(),
            key: Box::new(key),
            when: Box::new(when),
        }));
        self
    }

    /// Removes every orphan from `weak` in one atomic transaction, checking references into
    /// `strong` (the other directory) where declared. Idempotent.
    pub fn repair(&self, weak: &Store, strong: Option<&Store>) -> Result<RepairReport> {
        let strong = strong.map(Store::read);
        let mut report = RepairReport::default();
        weak.write(|tx| {
            for rule in &self.rules {
                let n = rule.apply(tx, strong.as_ref())?;
                if n > 0 {
                    *report
                        .removed
                        .entry(rule.deletes_from().to_string())
                        .or_default() += n;
                }
            }
            Ok(())
        })?;
        if report.total() > 0 {
            crate::trace::trace_event!(
                warn,
                "statelog: repair of {} removed {} orphans: {:?}",
                weak.log().dir().display(),
                report.total(),
                report.removed
            );
        }
        Ok(report)
    }

    /// The indexes of `names` ordered parents first (a stable topological order of the rules'
    /// parent → child edges; unrelated tables keep their order).
    pub(crate) fn parents_first(&self, names: &[String]) -> Vec<usize> {
        let pos = |n: &str| names.iter().position(|x| x == n);
        let mut indegree = vec![0usize; names.len()];
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for r in &self.rules {
            if let (Some(p), c) = r.edge() {
                if let (Some(p), Some(c)) = (pos(p), pos(c)) {
                    if p != c && !edges.contains(&(p, c)) {
                        edges.push((p, c));
                        if let Some(d) = indegree.get_mut(c) {
                            *d += 1;
                        }
                    }
                }
            }
        }
        let mut order = Vec::with_capacity(names.len());
        let mut done = vec![false; names.len()];
        while order.len() < names.len() {
            // The first table (in the given order) with no pending parent; on a cycle, the
            // first remaining one.
            let next = (0..names.len())
                .find(|&i| !done[i] && indegree[i] == 0)
                .or_else(|| (0..names.len()).find(|&i| !done[i]));
            let Some(i) = next else { break };
            done[i] = true;
            order.push(i);
            for &(p, c) in &edges {
                if p == i {
                    if let Some(d) = indegree.get_mut(c) {
                        *d = d.saturating_sub(1);
                    }
                }
            }
        }
        order
    }
}
