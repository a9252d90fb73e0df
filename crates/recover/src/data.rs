//! etcd's data directory: the safety snapshot of the running member, the old data set aside, the
//! restore into place and its owner.

use super::*;

pub(super) async fn safety_copy(
    node: &Node,
    journal: &Journal,
    files: Option<&[u8]>,
    cx: Cx<'_>,
    cancel: &Cancel,
) -> Result<()> {
    let run_dir = under(cx.root(), &journal.run_dir(cx.options));
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&run_dir)
        .map_err(io("create", &run_dir))?;
    let connect = member_connection(cx.root(), &node.etcd);
    let path = run_dir.join("pre-recover.db");
    match cx.host.save_snapshot(&connect, &path, cancel).await {
        Ok(revision) => cx.narrator.note(&format!(
            "the running member's data is saved in {} (revision {revision})",
            path.display(),
        )),
        Err(error) if error.interrupted_by().is_some() => return Err(error),
        Err(error) => cx
            .narrator
            .note(&format!("no safety snapshot: etcd does not answer ({error})")),
    }
    cx.reached("saved-snapshot")?;
    if let Some(backup) = files {
        // The files the backup's will replace, kept to put back on --abort: kubeadm's set and
        // whatever else of the node the backup holds.
        let replaced = archive_entries(backup)?
            .into_iter()
            .filter(|(path, contents)| contents.is_some() && cx.root().join(path).is_file())
            .map(|(path, _)| globset::escape(&path.to_string_lossy()));
        let current = lifeboat_core::files::FilesOptions {
            root: cx.options.root.clone(),
            include: lifeboat_core::files::KUBEADM_SET
                .iter()
                .map(|p| p.to_string())
                .chain(replaced)
                .collect(),
            exclude: Vec::new(),
        };
        let tar = lifeboat_core::files::archive(&cx.options.root, &lifeboat_core::files::collect(&current)?)?;
        // What cannot be put back (a symlink, a setuid file) is refused now, not on --abort.
        crate::files_backup::check_placeable(&tar, "(the node's own files)", cx.root()).map_err(|error| {
            failed(
                "safety-copy",
                format!("the node's files could not be put back on --abort, so the files backup is not placed: {error}"),
            )
        })?;
        let path = run_dir.join("before-files.tar");
        let mut pending = lifeboat_core::fsio::PendingFile::create(&path)?;
        pending.write_all(&tar)?;
        pending.commit()?;
        cx.narrator.note(&format!(
            "the node's current files are saved in {}",
            path.display()
        ));
        cx.reached("saved-files")?;
    }
    Ok(())
}

pub(super) async fn restore_step(
    node: &Node,
    journal: &Journal,
    restore: RestoreFn<'_>,
    cx: Cx<'_>,
) -> Result<()> {
    let data = under(cx.root(), &node.etcd.host_data_dir);
    let etcd = &node.etcd;
    // Restored and renamed into place before a crash: only the owner may be missing.
    if !data.join("member").exists() {
        restore_into(etcd, journal, &restore_target(journal, &data), restore).await?;
        cx.reached("restored")?;
        place_restored(journal, &data)?;
        cx.reached("placed")?;
    }
    // A crash after the move left the emptied target of a mount point.
    place_restored(journal, &data)?;
    if let Some(user) = etcd.run_as_user {
        let group = etcd.run_as_group.unwrap_or(user);
        cx.host.chown_tree(&data, user, group)?;
        cx.reached("owned")?;
    }
    Ok(())
}

/// Restores into `data` (the restore writes beside it and renames the result into place).
pub(super) async fn restore_into(
    etcd: &EtcdManifest,
    journal: &Journal,
    data: &Path,
    restore: RestoreFn<'_>,
) -> Result<()> {
    if data.exists() {
        // An empty or partial directory left by a crash in the middle: restore refuses a
        // non-empty target, and nothing in it is the old data (that is aside).
        std::fs::remove_dir_all(data).map_err(io("remove", data))?;
    }
    let options = lifeboat_core::snapshot_restore::RestoreOptions {
        snapshot: PathBuf::new(),
        data_dir: data.to_path_buf(),
        wal_dir: None,
        name: etcd.name.clone(),
        initial_cluster: etcd
            .initial_cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(","),
        initial_cluster_token: journal.token.clone(),
        initial_advertise_peer_urls: etcd.initial_advertise_peer_urls.clone(),
        skip_hash_check: false,
        bump_revision: journal.bump_revision,
        mark_compacted: journal.mark_compacted,
        replay: None,
    };
    restore(options).await
}

/// What a run writes on one filesystem, and what is free there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceNeed {
    /// A node path on that filesystem.
    pub path: PathBuf,
    /// What goes there, for the plan.
    pub what: String,
    /// Bytes needed, with a 10 % margin.
    pub needed: u64,
    pub free: u64,
}

/// The nearest existing directory of `path` and its device.
fn device_of(path: &Path) -> Result<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut at = path;
    while !at.exists() {
        at = at.parent().unwrap_or(Path::new("/"));
    }
    let metadata = std::fs::metadata(at).map_err(io("stat", at))?;
    Ok((at.to_path_buf(), metadata.dev()))
}

/// Per filesystem, what the run writes there: the restored data (`restored_bytes`) where the
/// data directory is; the fetched snapshot (`fetched_bytes`, 0 for a file given) and the safety
/// snapshot (about the member's current database) in the run's directory. Sums when both are
/// one filesystem.
pub fn space_needs(
    options: &RecoverOptions,
    node: &Node,
    restored_bytes: u64,
    fetched_bytes: u64,
) -> Result<Vec<SpaceNeed>> {
    let with_margin = |bytes: u64| bytes.saturating_add(bytes / 10);
    let data = under(&options.root, &node.etcd.host_data_dir);
    let safety = std::fs::metadata(data.join("member/snap/db")).map_or(0, |m| m.len());
    let run_dir = under(&options.root, &options.journal_dir);
    let wanted = [
        (
            node.etcd.host_data_dir.clone(),
            data,
            "the restored data".to_string(),
            restored_bytes,
        ),
        (
            options.journal_dir.clone(),
            run_dir,
            "the fetched and the safety snapshot".to_string(),
            fetched_bytes.saturating_add(safety),
        ),
    ];
    let mut needs: Vec<(u64, SpaceNeed)> = Vec::new();
    for (shown, path, what, bytes) in wanted {
        let (existing, device) = device_of(&path)?;
        match needs.iter_mut().find(|(d, _)| *d == device) {
            Some((_, need)) => {
                need.needed = need.needed.saturating_add(with_margin(bytes));
                need.what = format!("{} and {what}", need.what);
            }
            None => needs.push((
                device,
                SpaceNeed {
                    path: shown,
                    what,
                    needed: with_margin(bytes),
                    free: free_bytes(&existing)?,
                },
            )),
        }
    }
    Ok(needs.into_iter().map(|(_, need)| need).collect())
}
