//! Writing artefacts so that a file under its final name is always complete: write under a
//! temporary sibling name (mode 0600), fsync, rename, fsync the directory. A failure or a
//! cancellation at any point removes the temporary file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file being written under a temporary name; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    written: u64,
}

/// `FILE` → `FILE.part`, the name etcdctl uses too.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: std::io::Error, written: u64) -> Error {
    if source.raw_os_error() == Some(28) {
        return Error::DiskFull {
            path: path.to_path_buf(),
            written,
        };
    }
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The error of `action` on `path` (a full disk is named as such), for `map_err`.
pub(crate) fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| io_error(action, path, source, 0)
}

impl PendingFile {
    /// Starts `target` as `target.part`, replacing a stale `.part` of an earlier, killed run.
    pub fn create(target: &Path) -> Result<Self> {
        let temp = part_path(target);
        match std::fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove stale", &temp, e, 0)),
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error("create", &temp, e, 0))?;
        Ok(Self {
            temp,
            target: target.to_path_buf(),
            file: Some(file),
            written: 0,
        })
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io_error(
                "write",
                &self.temp,
                std::io::ErrorKind::BrokenPipe.into(),
                self.written,
            ));
        };
        file.write_all(bytes)
            .map_err(|e| io_error("write", &self.temp, e, self.written))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the file durable and gives it its final name.
    pub fn commit(mut self) -> Result<PathBuf> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(|e| io_error("fsync", &self.temp, e, self.written))?;
        }
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| io_error("rename", &self.temp, e, self.written))?;
        sync_parent(&self.target)?;
        // Committed: nothing to clean up any more.
        self.temp = PathBuf::new();
        Ok(self.target.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Fsyncs the directory holding `path`, so a rename into it survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}

/// Fsyncs a directory, so the entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e, 0))
}

/// A directory being built under a temporary name; removed on drop unless committed.
pub(crate) struct PendingDir {
    pub(crate) temp: PathBuf,
    committed: bool,
}

impl PendingDir {
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = target.with_file_name(format!(".{name}.lifeboat-{}", std::process::id()));
        let _ = fs::remove_dir_all(&temp);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&temp)
            .map_err(io("create", &temp))?;
        Ok(Self {
            temp,
            committed: false,
        })
    }

    pub(crate) fn dir(&self, relative: &str) -> Result<PathBuf> {
        let path = self.temp.join(relative);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(io("create", &path))?;
        Ok(path)
    }

    /// Moves the directory to `target` (an absent or empty directory).
    pub(crate) fn commit(self, target: &Path) -> Result<()> {
        commit_together(vec![(self, target.to_path_buf())])
    }

    fn rename_into(&mut self, target: &Path) -> Result<()> {
        if target.exists() {
            fs::remove_dir(target).map_err(io("replace the empty directory", target))?;
        }
        fs::rename(&self.temp, target).map_err(io("rename into", target))?;
        self.committed = true;
        Ok(())
    }
}

/// Moves each directory to its target, all or none: if one rename fails, those already done
/// go back under their temporary names and are removed, so no target appears alone (a data
/// directory without its separate WAL directory, or the other way round).
pub(crate) fn commit_together(mut pending: Vec<(PendingDir, PathBuf)>) -> Result<()> {
    for index in 0..pending.len() {
        let (dir, target) = &mut pending[index];
        if let Err(error) = dir.rename_into(target) {
            for (done, target) in &mut pending[..index] {
                if fs::rename(&*target, &done.temp).is_ok() {
                    done.committed = false;
                }
            }
            return Err(error);
        }
    }
    for (_, target) in &pending {
        sync_parent(target)?;
    }
    Ok(())
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn committed_file_is_complete_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("snap.db");
        let mut pending = PendingFile::create(&target).unwrap();
        pending.write_all(b"hello").unwrap();
        assert!(!target.exists(), "the final name appears only at commit");
        assert!(part_path(&target).exists());
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        assert!(!part_path(&target).exists());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("snap.db");
        std::fs::write(part_path(&target), b"stale from a killed run").unwrap();
        let mut pending = PendingFile::create(&target).unwrap();
        pending.write_all(b"half").unwrap();
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn directories_committed_together_appear_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, data) = (dir.path().join("wal"), dir.path().join("data"));
        let pending = |target: &Path| {
            let pending = PendingDir::create(target).unwrap();
            std::fs::write(pending.temp.join("f"), b"x").unwrap();
            pending
        };
        // The second rename fails (its source vanished): the first is undone.
        let (first, second) = (pending(&wal), pending(&data));
        std::fs::remove_dir_all(&second.temp).unwrap();
        let error = commit_together(vec![(first, wal.clone()), (second, data.clone())]).unwrap_err();
        assert!(error.to_string().contains("data"), "{error}");
        assert!(!wal.exists() && !data.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left");

        commit_together(vec![(pending(&wal), wal.clone()), (pending(&data), data.clone())]).unwrap();
        assert!(wal.join("f").exists() && data.join("f").exists());
    }

    #[test]
    fn missing_directory_is_named() {
        let err = PendingFile::create(Path::new("/nonexistent-lifeboat-dir/x.db")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-lifeboat-dir/x.db.part"),
            "{err}"
        );
    }
}
