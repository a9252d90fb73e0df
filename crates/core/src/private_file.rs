//! A private file with no name, for plaintext that must not outlive the process (a decrypted
//! snapshot holds every Secret of the cluster): opened with `O_TMPFILE` (mode 0600) in a
//! directory, or on a file system without it created and unlinked at once. The kernel frees it
//! however the process ends, SIGKILL and OOM-kill included; until then it is read again through
//! `/proc/self/fd/N`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::fsio::io;

/// An unnamed, private file, alive as long as this value.
#[derive(Debug)]
pub struct UnlinkedFile {
    file: File,
    path: PathBuf,
}

impl UnlinkedFile {
    /// Creates one in `dir` (the data lives on that file system).
    pub fn create(dir: &Path) -> Result<Self> {
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
            .open(dir);
        let file = match unnamed {
            Ok(file) => file,
            // EOPNOTSUPP, or EISDIR from a kernel that does not know the flag.
            Err(error) if matches!(error.raw_os_error(), Some(95) | Some(21)) => {
                // Unique in this process and hard to guess: a name planted in a shared directory
                // makes create_new fail rather than be used.
                static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let nonce = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = dir.join(format!(
                    ".lifeboat-private-{}-{}-{nonce:08x}",
                    std::process::id(),
                    CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&name)
                    .map_err(io("create", &name))?;
                std::fs::remove_file(&name).map_err(io("unlink", &name))?;
                file
            }
            Err(error) => return Err(io("create a private file in", dir)(error)),
        };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(Self { file, path })
    }

    /// A path that opens this file again (`/proc/self/fd/N`), valid in this process only.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the file, for writing or reading it.
    pub fn handle(&self) -> Result<File> {
        self.file.try_clone().map_err(io("duplicate", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn it_has_no_name_is_private_and_reads_back_through_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let private = UnlinkedFile::create(dir.path()).unwrap();
        private.handle().unwrap().write_all(b"every secret").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut text = String::new();
        File::open(private.path())
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "every secret");
        let mode = std::os::unix::fs::PermissionsExt::mode(&private.file.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }
}
