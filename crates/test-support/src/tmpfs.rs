//! A tmpfs mounted for a test: a small disk to fill, or a dedicated data disk (a mount point).
//! Mounting needs root (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A tmpfs of `bytes` mounted on a directory (created if missing), unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount_at(path: &Path, bytes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "lifeboat-test",
            ])
            .arg(path)
            .status()
            .context("running mount")?;
        if !status.success() {
            bail!(
                "mounting a tmpfs on {} needs root (CI runs as root)",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open there does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
