//! Mapping a file read-only, so that [`crate::Db`] reads pages without copying them.

use std::fs::File;
use std::path::Path;

use crate::{Error, Result};

/// A file mapped read-only into memory (or read, when it is empty or not mappable).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only.
    ///
    /// The mapping assumes nobody truncates the file while it is read (a snapshot or a stopped
    /// member's db); a running etcd only appends and rewrites pages, never shrinks.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Ok(Self { map: None });
        }
        // SAFETY: the map is read-only and private to this process; the caller's contract
        // (documented above) is that the file is not truncated while mapped.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)?;
        Ok(Self { map: Some(map) })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}
