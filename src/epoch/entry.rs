//! Epoch-layer entries: what the payload of each frame entry of a segment means (FORMAT.md
//! §11.2).

use byteorder::{ByteOrder, LittleEndian};

use crate::frame::{read_u64, write_u64};

/// Kind byte of an update entry.
pub const KIND_UPDATE: u8 = 1;
/// Kind byte of a snapshot entry (the start of an epoch).
pub const KIND_SNAPSHOT: u8 = 2;
/// Kind byte of a continue entry (the start of a later segment of the same epoch).
pub const KIND_CONTINUE: u8 = 3;
/// Kind byte of a seal entry (the last entry of a segment that will not grow).
pub const KIND_SEAL: u8 = 4;
/// Kind byte of a close entry (a clean shutdown; more entries may follow after reopen).
pub const KIND_CLOSE: u8 = 5;
/// Kind byte of a state entry: one part of a snapshot's state (format version 2).
pub const KIND_STATE: u8 = 6;

/// Offset of the kind byte in every entry.
pub const KIND_OFFSET: usize = 0;
/// Offset of the epoch id in every entry.
pub const EPOCH_OFFSET: usize = KIND_OFFSET + size_of::<u8>();
/// Length of the part every entry shares: kind and epoch.
pub const COMMON_LEN: usize = EPOCH_OFFSET + size_of::<u64>();

/// Offset of the previous epoch's id in a snapshot entry.
pub const SNAP_PREV_EPOCH_OFFSET: usize = COMMON_LEN;
/// Offset of the previous epoch's first segment in a snapshot entry.
pub const SNAP_PREV_SEGMENT_OFFSET: usize = SNAP_PREV_EPOCH_OFFSET + size_of::<u64>();
/// Offset of the creation time (Unix milliseconds) in a snapshot entry.
pub const SNAP_CREATED_OFFSET: usize = SNAP_PREV_SEGMENT_OFFSET + size_of::<u64>();
/// Offset of the highest epoch id ever started, in a snapshot entry.
pub const SNAP_HIGH_EPOCH_OFFSET: usize = SNAP_CREATED_OFFSET + size_of::<u64>();
/// Offset of the highest segment number ever used, in a snapshot entry.
pub const SNAP_HIGH_SEGMENT_OFFSET: usize = SNAP_HIGH_EPOCH_OFFSET + size_of::<u64>();
/// Offset of the flags byte in a snapshot entry.
pub const SNAP_FLAGS_OFFSET: usize = SNAP_HIGH_SEGMENT_OFFSET + size_of::<u64>();
/// Offset of the state bytes in a snapshot entry.
pub const SNAP_STATE_OFFSET: usize = SNAP_FLAGS_OFFSET + size_of::<u8>();

/// Snapshot flag: the entry carries a state (else the epoch starts from no state).
pub const FLAG_HAS_STATE: u8 = 1;
/// Snapshot flag: the previous-epoch fields are meaningful.
pub const FLAG_HAS_PREV: u8 = 2;
/// Snapshot flag: the state is in the STATE entries that follow (format version 2), not in
/// this entry.
pub const FLAG_PARTS: u8 = 4;

/// Offset of the flags byte in a state entry.
pub const STATE_FLAGS_OFFSET: usize = COMMON_LEN;
/// Offset of the data in a state entry.
pub const STATE_DATA_OFFSET: usize = STATE_FLAGS_OFFSET + size_of::<u8>();
/// State entry flag: the last part of the state.
pub const STATE_FLAG_LAST: u8 = 1;

/// Offset of the epoch's first segment in a continue entry.
pub const CONT_EPOCH_SEGMENT_OFFSET: usize = COMMON_LEN;
/// Offset of the previous segment of the same epoch in a continue entry.
pub const CONT_PREV_SEGMENT_OFFSET: usize = CONT_EPOCH_SEGMENT_OFFSET + size_of::<u64>();
/// Offset of the creation time in a continue entry.
pub const CONT_CREATED_OFFSET: usize = CONT_PREV_SEGMENT_OFFSET + size_of::<u64>();
/// Offset of the highest epoch id ever started, in a continue entry.
pub const CONT_HIGH_EPOCH_OFFSET: usize = CONT_CREATED_OFFSET + size_of::<u64>();
/// Offset of the highest segment number ever used, in a continue entry.
pub const CONT_HIGH_SEGMENT_OFFSET: usize = CONT_HIGH_EPOCH_OFFSET + size_of::<u64>();
/// Length of a continue entry.
pub const CONT_LEN: usize = CONT_HIGH_SEGMENT_OFFSET + size_of::<u64>();

/// The first entry of a segment: where it belongs and the store's high-water marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentStart {
    /// The segment starts epoch `epoch` with a snapshot.
    Snapshot(SnapshotHead),
    /// The segment continues epoch `epoch`, which started in segment `epoch_segment`.
    Continue(ContinueHead),
}

/// The fixed fields of a snapshot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHead {
    /// The epoch this snapshot starts.
    pub epoch: u64,
    /// The previous epoch and its first segment, if there was one.
    pub prev: Option<(u64, u64)>,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Highest epoch id ever started in the store when this entry was written.
    pub high_epoch: u64,
    /// Highest segment number ever used when this entry was written.
    pub high_segment: u64,
    /// Whether a state follows (epoch 0 may start from no state).
    pub has_state: bool,
}

/// The fields of a continue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContinueHead {
    /// The epoch this segment continues.
    pub epoch: u64,
    /// The segment holding the epoch's snapshot.
    pub epoch_segment: u64,
    /// The segment this one follows.
    pub prev_segment: u64,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Highest epoch id ever started in the store when this entry was written.
    pub high_epoch: u64,
    /// Highest segment number ever used when this entry was written.
    pub high_segment: u64,
}

impl SegmentStart {
    /// The store's high-water marks (epoch, segment) recorded in the entry.
    pub fn high_marks(&self) -> (u64, u64) {
        match self {
            SegmentStart::Snapshot(h) => (h.high_epoch, h.high_segment),
            SegmentStart::Continue(h) => (h.high_epoch, h.high_segment),
        }
    }
}

/// A decoded entry; borrowed data points into the entry bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An update of an epoch.
    Update {
        /// The epoch it belongs to.
        epoch: u64,
        /// The update bytes.
        data: &'a [u8],
    },
    /// A snapshot: the start of an epoch, with its state if it has one.
    Snapshot {
        /// The fixed fields.
        head: SnapshotHead,
        /// The state bytes (empty when `head.has_state` is false, or when `parts`).
        state: &'a [u8],
        /// Whether the state is in the STATE entries that follow (`FLAG_PARTS`).
        parts: bool,
    },
    /// One part of a snapshot's state.
    State {
        /// The epoch of the snapshot.
        epoch: u64,
        /// Whether this is the state's last part.
        last: bool,
        /// The part's bytes.
        data: &'a [u8],
    },
    /// The start of a later segment of an epoch.
    Continue(ContinueHead),
    /// The end of a segment.
    Seal {
        /// The epoch of the segment.
        epoch: u64,
    },
    /// A clean shutdown.
    Close {
        /// The epoch current at shutdown.
        epoch: u64,
    },
}

/// Why an entry's bytes are not a valid epoch-layer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// Shorter than its kind requires.
    Short,
    /// Kind 0 or an unknown kind.
    Kind(u8),
    /// Unknown flag bits in a snapshot.
    Flags(u8),
}

/// Decodes an entry read from a segment. Never panics.
pub fn decode(b: &[u8]) -> Result<Decoded<'_>, EntryError> {
    let kind = *b.first().ok_or(EntryError::Short)?;
    let epoch = read_u64(b, EPOCH_OFFSET).ok_or(EntryError::Short)?;
    let field = |at| read_u64(b, at).ok_or(EntryError::Short);
    match kind {
        KIND_UPDATE => Ok(Decoded::Update {
            epoch,
            data: b.get(COMMON_LEN..).unwrap_or(&[]),
        }),
        KIND_SNAPSHOT => {
            let flags = *b.get(SNAP_FLAGS_OFFSET).ok_or(EntryError::Short)?;
            if flags & !(FLAG_HAS_STATE | FLAG_HAS_PREV | FLAG_PARTS) != 0 {
                return Err(EntryError::Flags(flags));
            }
            let has_state = flags & FLAG_HAS_STATE != 0;
            let parts = flags & FLAG_PARTS != 0;
            let state = b.get(SNAP_STATE_OFFSET..).unwrap_or(&[]);
            if (!has_state || parts) && !state.is_empty() {
                return Err(EntryError::Short);
            }
            if parts && !has_state {
                return Err(EntryError::Flags(flags));
            }
            let head = SnapshotHead {
                epoch,
                prev: (flags & FLAG_HAS_PREV != 0).then_some((
                    field(SNAP_PREV_EPOCH_OFFSET)?,
                    field(SNAP_PREV_SEGMENT_OFFSET)?,
                )),
                created_ms: field(SNAP_CREATED_OFFSET)?,
                high_epoch: field(SNAP_HIGH_EPOCH_OFFSET)?,
                high_segment: field(SNAP_HIGH_SEGMENT_OFFSET)?,
                has_state,
            };
            Ok(Decoded::Snapshot { head, state, parts })
        }
        KIND_STATE => {
            let flags = *b.get(STATE_FLAGS_OFFSET).ok_or(EntryError::Short)?;
            if flags & !STATE_FLAG_LAST != 0 {
                return Err(EntryError::Flags(flags));
            }
            Ok(Decoded::State {
                epoch,
                last: flags & STATE_FLAG_LAST != 0,
                data: b.get(STATE_DATA_OFFSET..).unwrap_or(&[]),
            })
        }
        KIND_CONTINUE if b.len() == CONT_LEN => Ok(Decoded::Continue(ContinueHead {
            epoch,
            epoch_segment: field(CONT_EPOCH_SEGMENT_OFFSET)?,
            prev_segment: field(CONT_PREV_SEGMENT_OFFSET)?,
            created_ms: field(CONT_CREATED_OFFSET)?,
            high_epoch: field(CONT_HIGH_EPOCH_OFFSET)?,
            high_segment: field(CONT_HIGH_SEGMENT_OFFSET)?,
        })),
        KIND_SEAL | KIND_CLOSE if b.len() == COMMON_LEN => Ok(if kind == KIND_SEAL {
            Decoded::Seal { epoch }
        } else {
            Decoded::Close { epoch }
        }),
        KIND_CONTINUE | KIND_SEAL | KIND_CLOSE => Err(EntryError::Short),
        other => Err(EntryError::Kind(other)),
    }
}

fn common(kind: u8, epoch: u64, extra: usize) -> Vec<u8> {
    let mut b = vec![0u8; COMMON_LEN];
    b.reserve(extra);
    if let Some(k) = b.first_mut() {
        *k = kind;
    }
    write_u64(&mut b, EPOCH_OFFSET, epoch);
    b
}

/// Encodes an update entry into `out` (cleared first).
pub fn encode_update(out: &mut Vec<u8>, epoch: u64, data: &[u8]) {
    out.clear();
    out.push(KIND_UPDATE);
    let mut e = [0u8; 8];
    LittleEndian::write_u64(&mut e, epoch);
    out.extend_from_slice(&e);
    out.extend_from_slice(data);
}

/// Encodes a snapshot entry.
pub fn encode_snapshot(head: &SnapshotHead, state: Option<&[u8]>) -> Vec<u8> {
    let state = state.unwrap_or(&[]);
    let mut b = common(KIND_SNAPSHOT, head.epoch, SNAP_STATE_OFFSET + state.len());
    b.resize(SNAP_STATE_OFFSET, 0);
    let (prev_epoch, prev_segment) = head.prev.unwrap_or((0, 0));
    write_u64(&mut b, SNAP_PREV_EPOCH_OFFSET, prev_epoch);
    write_u64(&mut b, SNAP_PREV_SEGMENT_OFFSET, prev_segment);
    write_u64(&mut b, SNAP_CREATED_OFFSET, head.created_ms);
    write_u64(&mut b, SNAP_HIGH_EPOCH_OFFSET, head.high_epoch);
    write_u64(&mut b, SNAP_HIGH_SEGMENT_OFFSET, head.high_segment);
    let mut flags = 0;
    if head.has_state {
        flags |= FLAG_HAS_STATE;
    }
    if head.prev.is_some() {
        flags |= FLAG_HAS_PREV;
    }
    if let Some(f) = b.get_mut(SNAP_FLAGS_OFFSET) {
        *f = flags;
    }
    b.extend_from_slice(state);
    b
}

/// Encodes the snapshot entry of a state in parts: `FLAG_PARTS` set, no state bytes (the
/// STATE entries after it hold them).
pub fn encode_snapshot_parts(head: &SnapshotHead) -> Vec<u8> {
    let mut b = encode_snapshot(head, None);
    if let Some(f) = b.get_mut(SNAP_FLAGS_OFFSET) {
        *f |= FLAG_HAS_STATE | FLAG_PARTS;
    }
    b
}

/// Encodes a state entry (one part of a snapshot's state) into `out` (cleared first).
pub fn encode_state(out: &mut Vec<u8>, epoch: u64, last: bool, data: &[u8]) {
    out.clear();
    out.push(KIND_STATE);
    let mut e = [0u8; 8];
    LittleEndian::write_u64(&mut e, epoch);
    out.extend_from_slice(&e);
    out.push(if last { STATE_FLAG_LAST } else { 0 });
    out.extend_from_slice(data);
}

/// Encodes a continue entry.
pub fn encode_continue(head: &ContinueHead) -> Vec<u8> {
    let mut b = common(KIND_CONTINUE, head.epoch, CONT_LEN);
    b.resize(CONT_LEN, 0);
    write_u64(&mut b, CONT_EPOCH_SEGMENT_OFFSET, head.epoch_segment);
    write_u64(&mut b, CONT_PREV_SEGMENT_OFFSET, head.prev_segment);
    write_u64(&mut b, CONT_CREATED_OFFSET, head.created_ms);
    write_u64(&mut b, CONT_HIGH_EPOCH_OFFSET, head.high_epoch);
    write_u64(&mut b, CONT_HIGH_SEGMENT_OFFSET, head.high_segment);
    b
}

/// Encodes a seal entry.
pub fn encode_seal(epoch: u64) -> Vec<u8> {
    common(KIND_SEAL, epoch, 0)
}

/// Encodes a close entry.
pub fn encode_close(epoch: u64) -> Vec<u8> {
    common(KIND_CLOSE, epoch, 0)
}
