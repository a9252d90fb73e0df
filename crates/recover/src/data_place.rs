//! Where the data directory's old and restored contents go. A data directory that is a mount
//! point (a dedicated etcd disk) cannot be renamed (EBUSY): its contents move instead, into a
//! directory inside it (the same filesystem), and the restore is written inside it too and its
//! `member` moved up. Every move can be repeated after a crash.

use super::*;

/// Entries of a mount point that are the filesystem's, never moved.
const FILESYSTEM_ENTRIES: [&str; 1] = ["lost+found"];

/// Undoes the octal escapes of `/proc/self/mountinfo` (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `dir` is a mount point: on another device than its parent, or (a bind mount on the
/// same device) named as one by the mount table.
pub fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    if !own.is_dir() {
        return false;
    }
    let parent = dir.parent().and_then(|p| std::fs::metadata(p).ok());
    if parent.is_some_and(|p| p.dev() != own.dev()) {
        return true;
    }
    let Ok(canonical) = dir.canonicalize() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|table| {
        table.lines().any(|line| {
            line.split(' ')
                .nth(4)
                .is_some_and(|point| Path::new(&unescape(point)) == canonical)
        })
    })
}

/// Where the old data waits during the run: beside the data directory, or inside it when it is
/// a mount point.
pub fn old_data(journal: &Journal, root: &Path) -> PathBuf {
    let (data, aside) = (under(root, &journal.data_dir), under(root, &journal.data_aside()));
    match (is_mount_point(&data), aside.file_name()) {
        (true, Some(name)) => data.join(name),
        _ => aside,
    }
}

/// Moves every entry of `from` but `keep` (and the filesystem's own) into `to`, creating it 0700.
fn move_entries(from: &Path, to: &Path, keep: &[&std::ffi::OsStr], cx: Cx<'_>) -> Result<()> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(to)
        .map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))?.flatten() {
        let name = entry.file_name();
        if keep.contains(&name.as_os_str())
            || FILESYSTEM_ENTRIES.iter().any(|f| name == *f)
            || to.starts_with(entry.path())
        {
            continue;
        }
        std::fs::rename(entry.path(), to.join(&name)).map_err(io("rename", &entry.path()))?;
        cx.reached(&format!("moved-{}", name.to_string_lossy()))?;
    }
    lifeboat_core::fsio::sync_dir(to)?;
    Ok(lifeboat_core::fsio::sync_dir(from)?)
}

/// Sets the old data aside: the directory renamed, or its contents moved when it is a mount.
pub(super) fn data_aside(journal: &Journal, cx: Cx<'_>) -> Result<()> {
    let data = under(cx.root(), &journal.data_dir);
    let old = old_data(journal, cx.root());
    if is_mount_point(&data) {
        return move_entries(&data, &old, &[], cx);
    }
    if data.exists() && old.exists() {
        // Aside already, and something in the data directory since: the restore would remove it.
        return Err(failed(
            "data-aside",
            format!(
                "both {} and {} exist; check which holds the member's data by hand",
                data.display(),
                old.display()
            ),
        ));
    }
    if data.exists() {
        std::fs::rename(&data, &old).map_err(io("rename", &data))?;
        if let Some(parent) = data.parent() {
            lifeboat_core::fsio::sync_dir(parent)?;
        }
        cx.reached("renamed")?;
    }
    Ok(())
}

/// Where a restore writes for `data`: the directory itself (renamed into place), or on a mount
/// point a directory inside it whose `member` then moves up.
pub(super) fn restore_target(journal: &Journal, data: &Path) -> PathBuf {
    match is_mount_point(data) {
        true => data.join(format!(".restored-{}", journal.run)),
        false => data.to_path_buf(),
    }
}

/// After a restore into [`restore_target`]: on a mount point its `member` moves up and the
/// target goes.
pub(super) fn place_restored(journal: &Journal, data: &Path) -> Result<()> {
    let target = restore_target(journal, data);
    if target == data {
        return Ok(());
    }
    if target.join("member").exists() && !data.join("member").exists() {
        std::fs::rename(target.join("member"), data.join("member")).map_err(io("rename", &target))?;
    }
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io("remove", &target))?;
    }
    Ok(lifeboat_core::fsio::sync_dir(data)?)
}

/// Where `--abort` keeps the restored data: `<data>.aborted-recover-<run>`, inside the data
/// directory when it is a mount point.
fn kept_restored(journal: &Journal, data: &Path, root: &Path) -> PathBuf {
    let mut kept = journal.data_dir.clone().into_os_string();
    kept.push(format!(".aborted-recover-{}", journal.run));
    let kept = PathBuf::from(kept);
    match is_mount_point(data) {
        true => data.join(kept.file_name().unwrap_or_default()),
        false => under(root, &kept),
    }
}

/// `--abort` of the restore: what it wrote is kept aside, never deleted. Everything the data
/// directory holds is the restore's (the old data is aside since the step before); the
/// journal records this undone before the old data returns, so it is never taken for the
/// restore's. What was done, for the report.
pub(super) fn restored_aside(journal: &Journal, cx: Cx<'_>) -> Result<Vec<String>> {
    let root = cx.root();
    let data = under(root, &journal.data_dir);
    let kept = kept_restored(journal, &data, root);
    if is_mount_point(&data) {
        let restore_target = restore_target(journal, &data);
        let written: Vec<PathBuf> = [data.join("member"), restore_target]
            .into_iter()
            .filter(|path| std::fs::symlink_metadata(path).is_ok())
            .collect();
        if written.is_empty() {
            return Ok(Vec::new());
        }
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&kept)
            .map_err(io("create", &kept))?;
        for path in written {
            let name = path.file_name().unwrap_or_default();
            std::fs::rename(&path, kept.join(name)).map_err(io("rename", &path))?;
            cx.reached(&format!("kept-{}", name.to_string_lossy()))?;
        }
        lifeboat_core::fsio::sync_dir(&kept)?;
        lifeboat_core::fsio::sync_dir(&data)?;
        return Ok(vec![format!(
            "the restored data is kept aside in {} (the data directory is a mount point)",
            kept.display()
        )]);
    }
    if !data.exists() {
        return Ok(Vec::new());
    }
    std::fs::rename(&data, &kept).map_err(io("rename", &data))?;
    if let Some(parent) = data.parent() {
        lifeboat_core::fsio::sync_dir(parent)?;
    }
    cx.reached("kept-restored")?;
    Ok(vec![format!(
        "the restored data directory is kept aside as {}",
        kept.display()
    )])
}

/// `--abort` of setting the old data aside: it returns. What was done, for the report.
pub(super) fn data_back(journal: &Journal, cx: Cx<'_>) -> Result<Vec<String>> {
    let root = cx.root();
    let (data, old) = (under(root, &journal.data_dir), old_data(journal, root));
    if !old.exists() {
        return Ok(Vec::new());
    }
    if is_mount_point(&data) {
        move_entries(&old, &data, &[], cx)?;
        std::fs::remove_dir(&old).map_err(io("remove", &old))?;
        lifeboat_core::fsio::sync_dir(&data)?;
    } else {
        std::fs::rename(&old, &data).map_err(io("rename", &old))?;
        if let Some(parent) = data.parent() {
            lifeboat_core::fsio::sync_dir(parent)?;
        }
    }
    cx.reached("old-back")?;
    Ok(vec![format!("{} is back", journal.data_dir.display())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_escapes_are_undone() {
        assert_eq!(unescape("/var/lib/etcd\\040disk"), "/var/lib/etcd disk");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/bad\\x"), "/bad\\x");
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_point_and_the_root_is() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(&dir.path().join("absent")));
    }
}
