//! Control-plane files: kubeadm's PKI, kubeconfigs, static Pod manifests and kubelet
//! configuration, as one tar artefact that keeps modes, owners and mtimes; and putting them back.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use lifeboat_repo::{BackupId, Identity, Manifest, Repository};
use sha2::{Digest, Sha256};

use crate::backup::{Labels, description, write_backup};
use crate::blocking::blocking;
use crate::fsio::{PendingDir, io};
use crate::{Cancel, Error, Progress, Result};

/// The artefact name of a control-plane files backup.
pub const FILES_ARTEFACT: &str = "control-plane-files.tar";

/// kubeadm's set, relative to the root: directories are taken whole.
pub const KUBEADM_SET: &[&str] = &[
    "etc/kubernetes/pki",
    "etc/kubernetes/*.conf",
    "etc/kubernetes/manifests",
    "var/lib/kubelet/config.yaml",
    "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
];

/// What to collect.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// `/` on a node; a copy of a node's tree elsewhere.
    pub root: PathBuf,
    /// Paths or globs relative to the root (default: [`KUBEADM_SET`]).
    pub include: Vec<String>,
    /// Globs of paths relative to the root to leave out.
    pub exclude: Vec<String>,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        // `*` stays within one path component, as in a shell; `**` crosses them.
        let glob = GlobBuilder::new(pattern.trim_start_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Usage {
                message: format!("{pattern:?} is not a valid pattern: {e}"),
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| Error::Usage {
        message: format!("bad patterns: {e}"),
    })
}

/// Every existing path of the set (files, symlinks, directories with what they hold), relative
/// to the root, sorted, parents before children.
pub fn collect(options: &FilesOptions) -> Result<Vec<PathBuf>> {
    let include = glob_set(&options.include)?;
    let exclude = glob_set(&options.exclude)?;
    let mut found = std::collections::BTreeSet::new();
    // The directories the patterns can reach: each pattern's part before its first wildcard.
    let mut starts = std::collections::BTreeSet::new();
    for pattern in &options.include {
        let literal: Vec<&str> = pattern
            .trim_start_matches('/')
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '{']))
            .collect();
        starts.insert(PathBuf::from(literal.join("/")));
    }
    for start in starts {
        walk(&options.root, &start, &include, &exclude, false, &mut found)?;
    }
    Ok(found.into_iter().collect())
}

fn walk(
    root: &Path,
    relative: &Path,
    include: &GlobSet,
    exclude: &GlobSet,
    inside_included: bool,
    found: &mut std::collections::BTreeSet<PathBuf>,
) -> Result<()> {
    let full = root.join(relative);
    let Ok(metadata) = fs::symlink_metadata(&full) else {
        return Ok(());
    };
    if !relative.as_os_str().is_empty() && exclude.is_match(relative) {
        return Ok(());
    }
    let included = inside_included || include.is_match(relative);
    if included {
        // Parents first, so their modes and owners are restored too.
        for ancestor in relative.ancestors().skip(1) {
            if !ancestor.as_os_str().is_empty() {
                found.insert(ancestor.to_path_buf());
            }
        }
        found.insert(relative.to_path_buf());
    }
    if metadata.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&full)
            .map_err(io("read", &full))?
            .filter_map(|e| e.ok().map(|e| relative.join(e.file_name())))
            .collect();
        entries.sort();
        for entry in entries {
            walk(root, &entry, include, exclude, included, found)?;
        }
    }
    Ok(())
}

/// The tar of `paths` (relative to `root`), with modes, owners and mtimes.
pub fn archive(root: &Path, paths: &[PathBuf]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    for path in paths {
        let full = root.join(path);
        builder
            .append_path_with_name(&full, path)
            .map_err(io("archive", &full))?;
    }
    builder.into_inner().map_err(io("archive", root))
}

/// Stores the control-plane files under `options.root` as a new backup of kind `files`.
pub async fn backup_files(
    repo: &Repository,
    options: &FilesOptions,
    labels: &Labels,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(Manifest, Vec<PathBuf>)> {
    let collecting = options.clone();
    let (paths, tar, sha256) = blocking(move || {
        let paths = collect(&collecting)?;
        if !paths.iter().any(|p| collecting.root.join(p).is_file()) {
            return Err(Error::Usage {
                message: format!(
                    "no control-plane files under {} ({}); is this a kubeadm node? (--root, --include)",
                    collecting.root.display(),
                    collecting.include.join(", ")
                ),
            });
        }
        let tar = archive(&collecting.root, &paths)?;
        let sha256 = hex::encode(Sha256::digest(&tar));
        Ok((paths, tar, sha256))
    })
    .await?;
    let now = SystemTime::now();
    let manifest = write_backup(
        repo,
        BackupId::new(now),
        "backup --files",
        cancel,
        async |backup| {
            backup.start_artefact(FILES_ARTEFACT).await?;
            progress.start(Some(tar.len() as u64));
            for chunk in tar.chunks(1 << 20) {
                backup.write(chunk).await?;
                progress.advance(chunk.len() as u64);
            }
            progress.finish();
            backup.finish_artefact(sha256).await?;
            Ok(description("files", now, labels, None))
        },
    )
    .await?;
    Ok((manifest, paths))
}

/// The tar of a files backup, decrypted and checked against its manifest.
pub async fn fetch_files(
    repo: &Repository,
    id: &BackupId,
    identities: &[Identity],
    cancel: &Cancel,
) -> Result<Vec<u8>> {
    cancel
        .run(async {
            let manifest = repo.manifest(id).await?;
            let Some(artefact) = manifest.artefacts.iter().find(|a| a.name == FILES_ARTEFACT) else {
                return Err(Error::Usage {
                    message: format!(
                        "backup {id} holds no control-plane files (kind {}); choose a files backup",
                        manifest.kind
                    ),
                });
            };
            crate::backups::read_checked(repo, artefact, identities, Vec::new()).await
        })
        .await
}

/// Puts files backup `id` into `target` (absent or empty), all or nothing; returns the number
/// of entries.
pub async fn restore_files(
    repo: &Repository,
    id: &BackupId,
    identities: &[Identity],
    target: &Path,
    cancel: &Cancel,
) -> Result<usize> {
    let tar = fetch_files(repo, id, identities, cancel).await?;
    let target = target.to_path_buf();
    blocking(move || unpack(&tar, &target)).await
}

/// Unpacks `tar` into `target` (absent or empty) with modes, owners (as root) and mtimes, all
/// or nothing: into a hidden sibling first, renamed into place at the end.
pub fn unpack(tar: &[u8], target: &Path) -> Result<usize> {
    if fs::read_dir(target).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Usage {
            message: format!(
                "{} is not empty; restore into a new directory and copy what you need from there",
                target.display()
            ),
        });
    }
    let pending = PendingDir::create(target)?;
    let temp = pending.temp.clone();
    let unpacked = (|| {
        let mut archive = tar::Archive::new(tar);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_preserve_ownerships(true);
        archive.set_overwrite(false);
        let mut count = 0;
        // `unpack_in` refuses entries that would land outside the target.
        for entry in archive.entries().map_err(io("read the archive for", target))? {
            let mut entry = entry.map_err(io("read the archive for", target))?;
            if !entry.unpack_in(&temp).map_err(io("unpack into", &temp))? {
                return Err(Error::Usage {
                    message: format!(
                        "the archive holds a path outside the target ({}); nothing was restored",
                        entry.path().map(|p| p.display().to_string()).unwrap_or_default()
                    ),
                });
            }
            count += 1;
        }
        Ok(count)
    })();
    // On an error the pending directory removes itself.
    let count = unpacked?;
    pending.commit(target)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(path: &[u8], contents: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path);
        header.set_size(contents.len() as u64);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, contents).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn unpack_refuses_paths_outside_the_target_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("restored");
        let error = unpack(&tar_with(b"../evil.txt", b"x"), &target).unwrap_err();
        assert!(error.to_string().contains("outside the target"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left");

        assert_eq!(unpack(&tar_with(b"etc/ok.txt", b"x"), &target).unwrap(), 1);
        assert_eq!(std::fs::read(target.join("etc/ok.txt")).unwrap(), b"x");
    }

    #[test]
    fn patterns_follow_shell_rules_and_directories_come_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "etc/kubernetes/admin.conf",
            "etc/kubernetes/sub/x.conf",
            "etc/kubernetes/pki/a/b.crt",
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), b"x").unwrap();
        }
        let options = FilesOptions {
            root: root.to_path_buf(),
            include: vec!["etc/kubernetes/*.conf".into(), "etc/kubernetes/pki".into()],
            exclude: vec![],
        };
        let found: Vec<String> = collect(&options)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            found,
            [
                "etc",
                "etc/kubernetes",
                "etc/kubernetes/admin.conf",
                "etc/kubernetes/pki",
                "etc/kubernetes/pki/a",
                "etc/kubernetes/pki/a/b.crt",
            ]
        );
    }
}
