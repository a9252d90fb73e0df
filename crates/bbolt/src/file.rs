//! Mapping a file read-only, so that [`crate::Db`] reads pages without copying them.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Advice;

use crate::{Error, Result};

/// A file mapped read-only into memory (or read, when it is empty or not mappable).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
    /// Holds the shared lock for as long as the map is read.
    _file: File,
}

/// Opens `path` for reading with a shared lock, as bbolt's read-only open does. A running etcd
/// holds its `db` exclusively locked: reading it then could see a half-written state.
pub(crate) fn open_shared(path: &Path) -> Result<File> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
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
        let file = open_shared(path)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Ok(Self {
                map: None,
                _file: file,
            });
        }
        // SAFETY: the map is read-only and private to this process; the caller's contract
        // (documented above) is that the file is not truncated while mapped.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io)?;
        Ok(Self {
            map: Some(map),
            _file: file,
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// Runs `work` on the bytes while a second thread maps the file's pages in ahead of it, so
    /// the kernel's share of a full read runs on another core.
    pub fn read_with<R>(&self, work: impl FnOnce(&[u8]) -> R) -> R {
        const CHUNK: usize = 8 << 20;
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            if let Some(map) = &self.map {
                scope.spawn(|| {
                    for offset in (0..map.len()).step_by(CHUNK) {
                        if done.load(Ordering::Relaxed) {
                            break;
                        }
                        // Only a hint: on kernels without it the reader faults pages in itself.
                        let _ = map.advise_range(Advice::PopulateRead, offset, CHUNK.min(map.len() - offset));
                    }
                });
            }
            let result = work(self.bytes());
            done.store(true, Ordering::Relaxed);
            result
        })
    }
}
