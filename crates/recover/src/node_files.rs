//! A files backup put in place on the node (`--with-files`): what it adds is recorded first, what
//! it replaces is saved, so that `abort` returns the node's files as they were.

use super::*;

/// Puts the files of `tar` in place under the root, all or nothing: unpacked (and so checked)
/// into a staging directory first, then moved; static Pod manifests go to where the ones taken
/// out wait, so the kubelet sees them only when the run puts them back.
pub(super) fn put_files(journal: &Journal, tar: &[u8], cx: Cx<'_>) -> Result<()> {
    let (root, options) = (cx.root(), cx.options);
    let staging = under(root, &journal.run_dir(options)).join("files-staging");
    if staging.exists() {
        // Left by a crash in the middle of this step: unpacked again from the archive.
        std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    }
    // Checked again where it is placed: the node may have changed since the plan.
    let id = journal.with_files.as_deref().unwrap_or_default();
    crate::files_backup::check_placeable(tar, id, root)?;
    lifeboat_core::files::unpack(tar, &staging)?;
    cx.reached("staged")?;
    place(journal, &staging, &staging, cx)?;
    std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    Ok(())
}

/// Where an entry of a files backup goes on the node: static Pod manifests to where the ones
/// taken out wait.
pub(super) fn placed_at(journal: &Journal, options: &RecoverOptions, entry: &Path) -> PathBuf {
    let pods = relative_to_root(&journal.static_pod_dir);
    match (entry.parent(), entry.file_name()) {
        (Some(parent), Some(name)) if parent == pods => {
            under(&options.root, &journal.manifests_aside(options)).join(name)
        }
        _ => options.root.join(entry),
    }
}

/// The entries of `tar` the node does not have (parents before children).
pub(super) fn added_files(journal: &Journal, options: &RecoverOptions, tar: &[u8]) -> Result<Vec<PathBuf>> {
    Ok(archive_entries(tar)?
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| std::fs::symlink_metadata(placed_at(journal, options, path)).is_err())
        .collect())
}

/// Removes what the files backup added to the node: a manifest among them would start on the
/// next kubelet sync. A directory it added stays if something else is in it now.
pub(super) fn remove_added_files(journal: &Journal, cx: Cx<'_>) -> Result<()> {
    for path in journal.added_files.iter().flatten().rev() {
        let target = placed_at(journal, cx.options, path);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir(&target);
            }
            Ok(_) => std::fs::remove_file(&target).map_err(io("remove", &target))?,
            Err(_) => continue,
        }
        cx.reached(&format!("removed-{}", path.display()))?;
    }
    Ok(())
}

/// Moves every file under `dir` (relative to `staging`) to where it goes on the node.
pub(super) fn place(journal: &Journal, staging: &Path, dir: &Path, cx: Cx<'_>) -> Result<()> {
    let options = cx.options;
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let path = entry.path();
        let file_type = entry.file_type().map_err(io("read", &path))?;
        if file_type.is_dir() {
            place(journal, staging, &path, cx)?;
            continue;
        }
        let target = placed_at(journal, options, path.strip_prefix(staging).unwrap_or(&path));
        if target.exists() && !target.is_dir() {
            std::fs::remove_file(&target).map_err(io("replace", &target))?;
        }
        let target_dir = target.parent().unwrap_or(&options.root);
        move_file(dir, target_dir, &entry.file_name().to_string_lossy(), cx)?;
    }
    Ok(())
}
