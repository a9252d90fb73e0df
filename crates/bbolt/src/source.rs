//! Where a [`crate::Db`] reads its pages from: bytes in memory (or mapped), or a file read page
//! by page with `pread` when memory use must stay small whatever the file's size.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{Error, Result};

/// Random access to the bytes of a bbolt file.
pub trait Source {
    /// Length of the file.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes at `offset`; `None` when they are not all there or cannot be read.
    fn read_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).ok()?;
        self.get(start..start.checked_add(len)?).map(Cow::Borrowed)
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        self.as_slice().read_at(offset, len)
    }
}

/// A file read with positioned reads: memory use is a few pages, not the file.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// Opens `path` for positioned reads, with a shared lock as [`crate::MappedFile`] takes.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = crate::file::open_shared(path)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Self { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        if offset.checked_add(len as u64)? > self.len {
            return None;
        }
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset).ok()?;
        Some(Cow::Owned(buffer))
    }
}
