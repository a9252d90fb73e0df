//! `copy`: the backups a target repository lacks, copied from a source (another region or
//! provider). Stored bytes are copied as they are when both repositories encrypt to the same
//! recipients; otherwise each artefact is decrypted and sealed again for the target. Every copied
//! object is read back from the target and its stored sha256 checked before the manifest is
//! written, last; a rerun copies only what is still missing. Source manifests that do not belong
//! where they were found are reported and never followed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use lifeboat_repo::{
    Artefact, BackupId, Description, Identity, LockKind, Manifest, NewBackup, ReadBack, Repository,
};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::backup::{lock, write_backup};
use crate::backups::{ensure_sound, read_plain_into, temp_file};
use crate::forget::decide;
use crate::retention::Policy;
use crate::{Cancel, Error, Progress, Result};

/// What one target got.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub target: String,
    pub copied: Vec<BackupId>,
    /// Backups the target already had.
    pub skipped: usize,
    /// Backups (by directory name in the source) that could not be copied, each with the
    /// reason; nothing of them is in the target.
    pub failed: Vec<(String, String)>,
    /// Backups not copied because the target's retention policy would remove them at once.
    pub left_out: usize,
    /// Whether artefacts were re-encrypted for the target's recipients.
    pub reencrypted: bool,
    /// Age in seconds of the target's newest backup after the copy (`None`: it has none).
    pub lag_seconds: Option<u64>,
}

/// Copies into `target` every backup of `source` it lacks. `identities` open the source; they are
/// needed only when the two repositories encrypt differently. With `target_keep`, the target's own
/// retention, backups that policy would remove at once are left out: copying them only for a
/// later forget to delete them would repeat on every run.
pub async fn copy(
    source: &Repository,
    target: &Repository,
    identities: &[Identity],
    temp_dir: &Path,
    target_keep: Option<&Policy>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<CopyReport> {
    // Nothing deletes from the source while it is read.
    let source_lock = lock(source, "copy", LockKind::Shared, cancel).await?;
    let copied = async {
        let target_backups = cancel.run(async { Ok(target.list().await?) }).await?.backups;
        let present: BTreeSet<BackupId> = target_backups.iter().map(|m| m.id.clone()).collect();
        let reencrypt = source.config().encryption != target.config().encryption;
        let listing = cancel.run(async { Ok(source.list().await?) }).await?;
        let wanted: Option<BTreeSet<BackupId>> = target_keep.map(|policy| {
            let mut union = target_backups.clone();
            union.extend(
                listing
                    .backups
                    .iter()
                    .filter(|m| !present.contains(&m.id))
                    .cloned(),
            );
            union.sort_by(|a, b| a.id.cmp(&b.id));
            decide(policy, &union)
                .into_iter()
                .filter(|d| d.keep)
                .map(|d| d.id)
                .collect()
        });
        let mut report = CopyReport {
            target: target.storage().repo().to_string(),
            copied: Vec::new(),
            skipped: 0,
            failed: listing
                .unreadable
                .iter()
                .map(|(name, error)| (name.clone(), error.to_string()))
                .collect(),
            left_out: 0,
            reencrypted: reencrypt,
            lag_seconds: None,
        };
        for manifest in listing.backups {
            if present.contains(&manifest.id) {
                report.skipped += 1;
                continue;
            }
            if wanted.as_ref().is_some_and(|ids| !ids.contains(&manifest.id)) {
                report.left_out += 1;
                continue;
            }
            let copied = write_backup(target, manifest.id.clone(), "copy", cancel, async |backup| {
                for artefact in &manifest.artefacts {
                    progress.start(Some(artefact.stored_size));
                    let copied = match reencrypt {
                        false => copy_stored(source, backup, artefact, progress).await,
                        true => reseal(source, backup, artefact, identities, temp_dir, progress).await,
                    };
                    progress.finish();
                    let copied = copied?;
                    // Proof that the target holds what the manifest will say, read back from it.
                    let read = target.read_stored(&copied, &|_| {}).await?;
                    ensure_sound(target, &copied, &copied.mismatches(&read))?;
                }
                Ok(description_of(&manifest))
            })
            .await;
            match copied {
                Ok(_) => report.copied.push(manifest.id.clone()),
                Err(error @ Error::Interrupted { .. }) => return Err(error),
                Err(error) => report.failed.push((manifest.id.to_string(), error.to_string())),
            }
        }
        let newest = cancel
            .run(async { Ok(target.list().await?) })
            .await?
            .backups
            .last()
            .map(Manifest::time);
        report.lag_seconds = newest.map(|time| {
            let now = time::OffsetDateTime::from(SystemTime::now());
            u64::try_from((now - time).whole_seconds()).unwrap_or(0)
        });
        Ok(report)
    }
    .await;
    source_lock.release().await;
    copied
}

fn description_of(manifest: &Manifest) -> Description {
    Description {
        kind: manifest.kind.clone(),
        created: manifest.created.clone(),
        host: manifest.host.clone(),
        tool: manifest.tool.clone(),
        tags: manifest.tags.clone(),
        etcd: manifest.etcd.clone(),
        cluster: manifest.cluster.clone(),
    }
}

/// The stored bytes, unchanged; they must be the ones the source's manifest names.
async fn copy_stored(
    source: &Repository,
    backup: &mut NewBackup,
    artefact: &Artefact,
    progress: &dyn Progress,
) -> Result<Artefact> {
    let Some(mut download) = source.storage().download(&artefact.key).await? else {
        return Err(lifeboat_repo::Error::MissingObject {
            repo: source.storage().repo().to_string(),
            key: artefact.key.clone(),
        }
        .into());
    };
    backup.start_verbatim(artefact).await?;
    let mut copied_bytes = 0u64;
    while let Some(chunk) = download.next_chunk().await? {
        // A source object longer than its manifest says is not copied past that size.
        copied_bytes += chunk.len() as u64;
        if copied_bytes > artefact.stored_size {
            return Err(lifeboat_repo::Error::TooLarge {
                object: format!("{}/{}", source.storage().repo(), artefact.key),
                what: "stored size",
                limit: artefact.stored_size,
            }
            .into());
        }
        progress.advance(chunk.len() as u64);
        backup.write(&chunk).await?;
    }
    let copied = backup.finish_artefact(artefact.plain_sha256.clone()).await?;
    let read = ReadBack {
        stored_size: copied.stored_size,
        stored_sha256: copied.stored_sha256.clone(),
        plain: None,
    };
    ensure_sound(source, artefact, &artefact.mismatches(&read))?;
    Ok(copied)
}

/// Decrypted with the source's identity into a private temporary file, sealed for the target.
async fn reseal(
    source: &Repository,
    backup: &mut NewBackup,
    artefact: &Artefact,
    identities: &[Identity],
    temp_dir: &Path,
    progress: &dyn Progress,
) -> Result<Artefact> {
    let temp = temp_file(temp_dir)?;
    let file = temp.reopen().map_err(|source| Error::Io {
        action: "open",
        path: temp.path().to_path_buf(),
        source,
    })?;
    let (file, findings) = read_plain_into(source, artefact, identities, (file, temp.path()), &|n| {
        progress.advance(n)
    })
    .await?;
    ensure_sound(source, artefact, &findings)?;
    let io = |source| Error::Io {
        action: "read",
        path: temp.path().to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::from_std(file);
    tokio::io::AsyncSeekExt::rewind(&mut file).await.map_err(io)?;
    backup.start_artefact(&artefact.name).await?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await.map_err(io)?;
        if n == 0 {
            break;
        }
        backup.write(&buffer[..n]).await?;
    }
    Ok(backup.finish_artefact(artefact.plain_sha256.clone()).await?)
}
