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

    /// `len` bytes at `offset`, of which `head` (read before) is the start: a page's span once
    /// its first page told how long the span is.
    fn read_on<'a>(&'a self, head: Cow<'a, [u8]>, offset: u64, len: usize) -> Option<Cow<'a, [u8]>> {
        drop(head);
        self.read_at(offset, len)
    }
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
        self.read_on(Cow::Owned(Vec::new()), offset, len)
    }

    fn read_on<'a>(&'a self, head: Cow<'a, [u8]>, offset: u64, len: usize) -> Option<Cow<'a, [u8]>> {
        // Only the rest is read: the head is not read from the file a second time.
        let read = head.len();
        if read > len || offset.checked_add(len as u64)? > self.len {
            return None;
        }
        let mut buffer = head.into_owned();
        buffer.resize(len, 0);
        self.file
            .read_exact_at(&mut buffer[read..], offset + read as u64)
            .ok()?;
        Some(Cow::Owned(buffer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    /// Every entry and finding of a walk, as text.
    fn walked<S: Source + ?Sized>(source: &S) -> Vec<String> {
        let db = Db::open(source).unwrap();
        let mut seen = Vec::new();
        let findings = db.walk(|entry| seen.push(format!("{entry:?}")));
        seen.extend(findings.iter().map(ToString::to_string));
        seen
    }

    #[test]
    fn a_file_read_page_by_page_walks_as_its_bytes_do() {
        let big = vec![7u8; 2 * testing::PS + 100];
        let leaf = crate::write::leaf_page(3, &[(0, b"k1".as_slice(), big.as_slice()), (0, b"k2", b"v")]);
        let tree = testing::bucket_root(3);
        let image = [
            testing::meta(0, 2, crate::FREELIST_NOT_PERSISTED, 6, 2),
            testing::meta(1, 2, crate::FREELIST_NOT_PERSISTED, 6, 1),
            testing::leaf(Some(2), &[(1, b"key", &tree)]),
            testing::spanning(leaf, 3),
        ]
        .concat();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &image).unwrap();
        let paged = FileSource::open(file.path()).unwrap();
        assert_eq!(walked(&paged), walked(image.as_slice()));
        // The entry behind the three-page value is reached: the whole span was read.
        let entries = walked(&paged);
        assert_eq!(entries.len(), 3, "two entries and their bucket, no findings");
        assert!(
            entries[2].contains("key: [107, 50], value: [118]"),
            "{}",
            entries[2]
        );
        // A span is never read past the file's end, with or without its head.
        let head = paged.read_at(0, 10).unwrap();
        assert!(paged.read_on(head, 0, image.len() + 1).is_none());
        assert!(paged.read_on(Cow::Owned(vec![0; 20]), 0, 10).is_none());
    }
}
