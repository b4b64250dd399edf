//! Checkpoints: names for retained epochs, with a status lifecycle, kept in the `CHECKPOINTS`
//! file of a store directory (FORMAT.md §11.9). Retention never deletes a named epoch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::dir::{TMP_SUFFIX, with_suffix};
use super::read::millis_to_time;
use crate::backend::Backend;
pub use crate::error::CheckpointStatus;
use crate::error::{CorruptKind, Error, Result};

/// Name of the checkpoint registry file.
pub const CHECKPOINTS_FILE: &str = "CHECKPOINTS";

const MAGIC: [u8; 8] = *b"SLCHECKP";
const VERSION: u32 = 1;
/// Longest checkpoint name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Most checkpoints a store keeps.
pub const MAX_CHECKPOINTS: usize = 4096;
/// Fixed bytes of a record before its name.
const RECORD_FIXED: usize = 8 + 8 + 8 + 1 + 1;
const MAX_FILE_LEN: u64 = (8 + 4 + 4 + MAX_CHECKPOINTS * (RECORD_FIXED + MAX_NAME_LEN) + 4) as u64;

impl CheckpointStatus {
    /// Its code in the registry and in the store's records.
    pub(crate) fn code(self) -> u8 {
        match self {
            CheckpointStatus::Pending => 1,
            CheckpointStatus::Active => 2,
            CheckpointStatus::Inactive => 3,
            CheckpointStatus::Failed => 4,
        }
    }

    /// The status of code `c`.
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => CheckpointStatus::Pending,
            2 => CheckpointStatus::Active,
            3 => CheckpointStatus::Inactive,
            4 => CheckpointStatus::Failed,
            _ => return None,
        })
    }
}

/// A named epoch: the state at the end of a sealed epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its name (1 to 255 bytes of UTF-8).
    pub name: String,
    /// The epoch named.
    pub epoch: u64,
    /// The epoch's first segment.
    pub segment: u64,
    /// When the checkpoint was saved.
    pub created: SystemTime,
    /// Its status.
    pub status: CheckpointStatus,
    /// The program's payload given at save (empty if none). Kept in the store's checkpoint
    /// records (FORMAT.md §12.1), not in the registry: empty when read from the registry alone.
    pub payload: Vec<u8>,
}

fn created_ms(c: &Checkpoint) -> u64 {
    c.created
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The bytes of a registry file holding `list`.
pub(crate) fn encode(list: &[Checkpoint]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for c in list {
        b.extend_from_slice(&c.epoch.to_le_bytes());
        b.extend_from_slice(&c.segment.to_le_bytes());
        b.extend_from_slice(&created_ms(c).to_le_bytes());
        b.push(c.status.code());
        b.push(c.name.len() as u8);
        b.extend_from_slice(c.name.as_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a registry file; any deviation is corruption at the offset where it was found.
pub(crate) fn decode(b: &[u8], path: &Path) -> Result<Vec<Checkpoint>> {
    let bad = |at: usize, kind| Error::corrupt(path, at as u64, kind);
    let body_len = b
        .len()
        .checked_sub(4)
        .ok_or_else(|| bad(0, CorruptKind::Payload))?;
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err(bad(0, CorruptKind::BadMagic));
    }
    let crc = crate::frame::read_u32(b, body_len);
    if crc != b.get(..body_len).map(crc32fast::hash) {
        return Err(bad(body_len, CorruptKind::Checksum));
    }
    let version = crate::frame::read_u32(b, 8).ok_or_else(|| bad(8, CorruptKind::Payload))?;
    if version != VERSION {
        return Err(Error::Incompatible {
            file: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    let count = crate::frame::read_u32(b, 12).ok_or_else(|| bad(12, CorruptKind::Payload))?;
    if count as usize > MAX_CHECKPOINTS {
        return Err(bad(12, CorruptKind::Payload));
    }
    let mut at = 16;
    let mut list = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let u64_at =
            |o: usize| crate::frame::read_u64(b, o).ok_or_else(|| bad(o, CorruptKind::Payload));
        let epoch = u64_at(at)?;
        let segment = u64_at(at + 8)?;
        let created = u64_at(at + 16)?;
        let status = b
            .get(at + 24)
            .copied()
            .and_then(CheckpointStatus::from_code)
            .ok_or_else(|| bad(at + 24, CorruptKind::Payload))?;
        let len = *b
            .get(at + 25)
            .ok_or_else(|| bad(at + 25, CorruptKind::Payload))? as usize;
        let start = at + RECORD_FIXED;
        let name = b
            .get(start..start + len)
            .filter(|_| start + len <= body_len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(start, CorruptKind::Payload))?;
        list.push(Checkpoint {
            name: name.to_string(),
            epoch,
            segment,
            created: millis_to_time(created),
            status,
            payload: Vec::new(),
        });
        at = start + len;
    }
    if at != body_len {
        return Err(bad(at, CorruptKind::Payload));
    }
    check(&list).map_err(|_| bad(16, CorruptKind::Payload))?;
    Ok(list)
}

/// The registry's rules: unique names, at most one active, bounded size.
fn check(list: &[Checkpoint]) -> std::result::Result<(), String> {
    if list.len() > MAX_CHECKPOINTS {
        return Err(format!("more than {MAX_CHECKPOINTS} checkpoints"));
    }
    let mut names = std::collections::HashSet::new();
    for c in list {
        if !names.insert(c.name.as_str()) {
            return Err(format!("checkpoint {} appears twice", c.name));
        }
    }
    let active = list
        .iter()
        .filter(|c| c.status == CheckpointStatus::Active)
        .count();
    if active > 1 {
        return Err(format!("{active} active checkpoints"));
    }
    Ok(())
}

/// Reads the registry of directory `dir` (empty if there is none).
pub(crate) fn read(backend: &dyn Backend, dir: &Path) -> Result<Vec<Checkpoint>> {
    let path = dir.join(CHECKPOINTS_FILE);
    if !backend.exists(&path).map_err(|e| Error::io(&path, e))? {
        return Ok(Vec::new());
    }
    let f = backend.open_read(&path).map_err(|e| Error::io(&path, e))?;
    let len = f.len().map_err(|e| Error::io(&path, e))?;
    if len > MAX_FILE_LEN {
        return Err(Error::corrupt(&path, 0, CorruptKind::Payload));
    }
    let mut b = vec![0u8; len as usize];
    let n = f.read_full_at(&mut b, 0).map_err(|e| Error::io(&path, e))?;
    b.truncate(n);
    decode(&b, &path)
}

/// Reads a store's registry without going through its log, for a write transaction (every
/// change of the registry is made under the store's writer lock, which the transaction holds).
pub(crate) struct RegistryReader {
    backend: Arc<dyn Backend>,
    dir: PathBuf,
}

impl RegistryReader {
    /// A reader of the registry of directory `dir`.
    pub(crate) fn new(backend: Arc<dyn Backend>, dir: &Path) -> Self {
        RegistryReader {
            backend,
            dir: dir.to_path_buf(),
        }
    }

    /// The registry's checkpoints, in the order they were saved.
    pub(crate) fn read(&self) -> Result<Vec<Checkpoint>> {
        read(&*self.backend, &self.dir)
    }
}

/// Replaces the registry of `dir` with `list`, durably (temporary file, sync, rename).
pub(crate) fn write(backend: &dyn Backend, dir: &Path, list: &[Checkpoint]) -> Result<()> {
    check(list).map_err(Error::InvalidArgument)?;
    let path = dir.join(CHECKPOINTS_FILE);
    let tmp = with_suffix(&path, TMP_SUFFIX);
    let io = |p: &Path, e| Error::io(p, e);
    if backend.exists(&tmp).map_err(|e| io(&tmp, e))? {
        backend.remove(&tmp).map_err(|e| io(&tmp, e))?;
    }
    let f = backend.create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_at(&encode(list), 0)
        .and_then(|()| f.sync_data())
        .map_err(|e| io(&tmp, e))?;
    drop(f);
    backend.rename(&tmp, &path).map_err(|e| io(&path, e))
}

/// Checks a new checkpoint's name.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidArgument(format!(
            "a checkpoint name has 1 to {MAX_NAME_LEN} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// What a checkpoint operation does to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointChange {
    /// Makes the named checkpoint the active one; the active one becomes inactive. A failed
    /// checkpoint cannot be activated; activating the active one changes nothing.
    Activate(String),
    /// Marks a pending checkpoint failed (failing a failed one changes nothing). The active
    /// checkpoint, and one that was active, cannot fail.
    Fail(String),
    /// Removes the named checkpoint, unless it is the active one.
    Delete(String),
    /// Removes every inactive checkpoint saved before this time (never the active one, a
    /// pending one or a failed one).
    DeleteOlderThan(SystemTime),
}

/// Applies `change` to `list`; returns the checkpoints removed. On error `list` is unchanged.
pub(crate) fn apply(
    list: &mut Vec<Checkpoint>,
    change: &CheckpointChange,
) -> Result<Vec<Checkpoint>> {
    let find = |list: &[Checkpoint], name: &str| {
        list.iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::CheckpointNotFound {
                name: name.to_string(),
            })
    };
    let refuse = |name: &str, status: CheckpointStatus, what: &str| {
        Err(Error::CheckpointLifecycle {
            name: name.to_string(),
            status,
            action: what.to_string(),
        })
    };
    match change {
        CheckpointChange::Activate(name) => {
            let i = find(list, name)?;
            let status = list.get(i).map(|c| c.status);
            if status == Some(CheckpointStatus::Failed) {
                return refuse(name, CheckpointStatus::Failed, "activated");
            }
            for (j, c) in list.iter_mut().enumerate() {
                if j == i {
                    c.status = CheckpointStatus::Active;
                } else if c.status == CheckpointStatus::Active {
                    c.status = CheckpointStatus::Inactive;
                }
            }
            Ok(Vec::new())
        }
        CheckpointChange::Fail(name) => {
            let i = find(list, name)?;
            if let Some(c) = list.get_mut(i) {
                match c.status {
                    CheckpointStatus::Pending | CheckpointStatus::Failed => {
                        c.status = CheckpointStatus::Failed;
                    }
                    s => return refuse(name, s, "marked failed"),
                }
            }
            Ok(Vec::new())
        }
        CheckpointChange::Delete(name) => {
            let i = find(list, name)?;
            if list.get(i).map(|c| c.status) == Some(CheckpointStatus::Active) {
                return refuse(name, CheckpointStatus::Active, "deleted");
            }
            Ok(vec![list.remove(i)])
        }
        CheckpointChange::DeleteOlderThan(t) => {
            let (gone, kept) = std::mem::take(list)
                .into_iter()
                .partition(|c| c.created < *t && c.status == CheckpointStatus::Inactive);
            *list = kept;
            Ok(gone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cp(name: &str, epoch: u64, status: CheckpointStatus, secs: u64) -> Checkpoint {
        Checkpoint {
            name: name.into(),
            epoch,
            segment: epoch * 2,
            created: millis_to_time(secs * 1000),
            status,
            payload: Vec::new(),
        }
    }

    /// FORMAT.md §11.9: a registry with two checkpoints.
    #[test]
    fn registry_vector() {
        let list = vec![
            cp("v1", 3, CheckpointStatus::Inactive, 1),
            cp("v2", 5, CheckpointStatus::Active, 2),
        ];
        let b = encode(&list);
        let doc = crate::format_doc::doc_vectors("checkpoints-vector");
        let code = std::collections::HashMap::from([("two".to_string(), b.clone())]);
        crate::format_doc::assert_vectors_match("checkpoint vectors", &doc, &code);
        assert_eq!(decode(&b, Path::new("CHECKPOINTS")).unwrap(), list);
    }

    #[test]
    fn every_damaged_byte_and_every_truncation_is_an_error() {
        let b = encode(&[
            cp("a", 1, CheckpointStatus::Pending, 1),
            cp("bb", 2, CheckpointStatus::Failed, 2),
        ]);
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(decode(&c, Path::new("C")).is_err(), "byte {i} bit {bit}");
            }
        }
        for len in 0..b.len() {
            assert!(decode(&b[..len], Path::new("C")).is_err(), "length {len}");
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes, and valid registries with arbitrary bytes spliced in, never
        /// panic and never decode unless they re-encode to themselves.
        #[test]
        fn hostile_bytes_never_panic(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            at in 0usize..64,
        ) {
            let _ = decode(&junk, Path::new("C"));
            let mut b = encode(&[cp("a", 1, CheckpointStatus::Pending, 1)]);
            let at = at.min(b.len());
            b.splice(at..at, junk.iter().copied());
            if let Ok(list) = decode(&b, Path::new("C")) {
                proptest::prop_assert_eq!(encode(&list), b);
            }
        }
    }

    #[test]
    fn lifecycle_keeps_at_most_one_active() {
        let mut list = vec![
            cp("a", 1, CheckpointStatus::Pending, 1),
            cp("b", 2, CheckpointStatus::Pending, 2),
            cp("c", 3, CheckpointStatus::Pending, 3),
        ];
        apply(&mut list, &CheckpointChange::Activate("a".into())).unwrap();
        apply(&mut list, &CheckpointChange::Activate("b".into())).unwrap();
        let status: Vec<_> = list.iter().map(|c| c.status).collect();
        use CheckpointStatus::*;
        assert_eq!(status, [Inactive, Active, Pending]);
        // Unknown target: nothing changes, the active one stays.
        let before = list.clone();
        assert!(matches!(
            apply(&mut list, &CheckpointChange::Activate("zz".into())),
            Err(Error::CheckpointNotFound { .. })
        ));
        assert_eq!(list, before);
        // The active one cannot fail or be deleted; a failed one cannot be activated.
        assert!(apply(&mut list, &CheckpointChange::Fail("b".into())).is_err());
        assert!(apply(&mut list, &CheckpointChange::Fail("a".into())).is_err());
        assert!(apply(&mut list, &CheckpointChange::Delete("b".into())).is_err());
        apply(&mut list, &CheckpointChange::Fail("c".into())).unwrap();
        apply(&mut list, &CheckpointChange::Fail("c".into())).unwrap();
        assert!(apply(&mut list, &CheckpointChange::Activate("c".into())).is_err());
        // Rollback: an inactive one can be activated again.
        apply(&mut list, &CheckpointChange::Activate("a".into())).unwrap();
        assert_eq!(
            list.iter().map(|c| c.status).collect::<Vec<_>>(),
            [Active, Inactive, Failed]
        );
        // Deleting by age removes only inactive ones: the active and the failed one stay,
        // however old, and so does a pending one.
        list.push(cp("d", 9, Pending, 2));
        let gone = apply(
            &mut list,
            &CheckpointChange::DeleteOlderThan(millis_to_time(0) + Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(
            gone.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(
            list.iter().map(|c| c.status).collect::<Vec<_>>(),
            [Active, Failed, Pending]
        );
    }
}
