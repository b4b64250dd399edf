//! Fuzzer bytes read as a stream of choices.

/// Reads fuzzer bytes as a stream of choices; past the end every read is 0, so any input is
/// a complete program.
pub(super) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(super) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value below `n` (0 when `n` is 0), using as few bytes as `n` needs.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        match n {
            0 | 1 => 0,
            2..=256 => u64::from(self.u8()) % n,
            257..=65_536 => u64::from(self.u16()) % n,
            _ => self.u64() % n,
        }
    }

    pub(super) fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    pub(super) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub(super) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// A u64 field of a synthesized structure: mostly small, sometimes extreme, so arithmetic on
/// hostile values is reached.
pub(super) fn field(inp: &mut Input<'_>) -> u64 {
    match inp.below(16) {
        0 => u64::MAX - inp.below(4),
        1 => inp.u64(),
        2 => 1u64 << inp.below(64),
        _ => inp.below(8),
    }
}

/// Overwrites one byte of `bytes` (a light mutation of a synthesized structure).
pub(super) fn tweak(bytes: &mut [u8], inp: &mut Input<'_>) {
    let at = inp.index(bytes.len());
    let v = inp.u8();
    if let Some(b) = bytes.get_mut(at) {
        *b = v;
    }
}

/// Space the active segment reserves ahead of its data: none, or a little (the default, 1 MiB,
/// would make every open check a MiB of zeros: a tenth of the inputs a second).
pub(super) fn reserve(inp: &mut Input<'_>) -> u64 {
    [0, 512, 4096][inp.index(3)]
}
