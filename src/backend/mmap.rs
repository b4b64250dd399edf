//! Read-only memory maps of sealed files, the one place statelog uses `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

use super::api::{ReadAt, copy_at};

/// A sealed file mapped into memory.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Option<Mmap>,
}

impl MappedFile {
    /// Maps `file`, which the caller promises is sealed.
    pub(crate) fn map(file: &File) -> io::Result<Self> {
        if file.metadata()?.len() == 0 {
            // Empty files cannot be mapped; they read as empty.
            return Ok(MappedFile { map: None });
        }
        // SAFETY: `Mmap::map` is unsafe because the mapped bytes change (or the process gets
        // SIGBUS) if the file is modified or truncated while mapped. statelog maps only sealed
        // files: segments and snapshots that are never written, truncated or rewritten in
        // place after sealing. They are only ever removed (unlinking leaves the mapping valid)
        // or replaced by renaming a new file over the name (a different inode). Repair tools
        // write replacements rather than editing sealed files. The map is read-only and every
        // read copies bytes out through a bounds-checked slice.
        let map = unsafe { Mmap::map(file)? };
        Ok(MappedFile { map: Some(map) })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl ReadAt for MappedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(copy_at(self.bytes(), buf, offset))
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes().len() as u64)
    }
}
