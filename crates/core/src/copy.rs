//! `copy`: the backups a target repository lacks, copied from a source (another region or
//! provider). Stored bytes are copied as they are when both repositories encrypt to the same
//! recipients; otherwise each artefact is decrypted and sealed again for the target. Every copied
//! object is read back from the target and its stored sha256 checked before the manifest is
//! written, last; a rerun copies only what is still missing.

use std::io::{Read, Seek};
use std::path::Path;
use std::time::SystemTime;

use lifeboat_repo::{Artefact, ArtefactWriter, BackupId, Identity, Manifest, Repository};
use serde::Serialize;

use crate::backups::{ensure_sound, read_plain_into, temp_file};
use crate::{Error, Progress, Result};

/// What one target got.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub target: String,
    pub copied: Vec<BackupId>,
    /// Backups the target already had.
    pub skipped: usize,
    /// Backups that could not be copied, each with the reason; nothing of them is listed.
    pub failed: Vec<(BackupId, String)>,
    /// Whether artefacts were re-encrypted for the target's recipients.
    pub reencrypted: bool,
    /// Age in seconds of the target's newest backup after the copy (`None`: it has none).
    pub lag_seconds: Option<u64>,
}

/// Copies into `target` every backup of `source` it lacks. `identities` open the source; they are
/// needed only when the two repositories encrypt differently.
pub async fn copy(
    source: &Repository,
    target: &Repository,
    identities: &[Identity],
    temp_dir: &Path,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let present: std::collections::BTreeSet<BackupId> =
        target.list().await?.backups.into_iter().map(|m| m.id).collect();
    let reencrypt = source.config().encryption != target.config().encryption;
    let mut report = CopyReport {
        target: target.storage().repo().to_string(),
        copied: Vec::new(),
        skipped: 0,
        failed: Vec::new(),
        reencrypted: reencrypt,
        lag_seconds: None,
    };
    for manifest in source.list().await?.backups {
        if present.contains(&manifest.id) {
            report.skipped += 1;
            continue;
        }
        match copy_backup(
            source, target, &manifest, reencrypt, identities, temp_dir, progress,
        )
        .await
        {
            Ok(()) => report.copied.push(manifest.id.clone()),
            Err(error) => {
                // Whatever arrived of this backup has no manifest; remove it so no orphan stays.
                let _ = target.delete_data(&manifest.id).await;
                report.failed.push((manifest.id.clone(), error.to_string()));
            }
        }
    }
    let newest = target.list().await?.backups.last().map(|m| m.id.time());
    report.lag_seconds = newest.map(|time| {
        let now = time::OffsetDateTime::from(SystemTime::now());
        u64::try_from((now - time).whole_seconds()).unwrap_or(0)
    });
    Ok(report)
}

async fn copy_backup(
    source: &Repository,
    target: &Repository,
    manifest: &Manifest,
    reencrypt: bool,
    identities: &[Identity],
    temp_dir: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut artefacts = Vec::new();
    for artefact in &manifest.artefacts {
        progress.start(Some(artefact.stored_size));
        let copied = match reencrypt {
            false => copy_stored(source, target, artefact, progress).await,
            true => reseal(source, target, manifest, artefact, identities, temp_dir, progress).await,
        };
        progress.finish();
        let copied = copied?;
        // Proof that the target holds what the manifest will say, read back from the target.
        let read = target.read_stored(&copied, &|_| {}).await?;
        ensure_sound(target, &copied, &copied.mismatches(&read))?;
        artefacts.push(copied);
    }
    target
        .put_manifest(&Manifest {
            artefacts,
            ..manifest.clone()
        })
        .await?;
    Ok(())
}

/// The stored bytes, unchanged, hashed on the way.
async fn copy_stored(
    source: &Repository,
    target: &Repository,
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
    let mut upload = target.storage().upload(&artefact.key).await?;
    let streamed: Result<()> = async {
        while let Some(chunk) = download.next_chunk().await? {
            progress.advance(chunk.len() as u64);
            upload.write(chunk.to_vec()).await?;
        }
        Ok(())
    }
    .await;
    if let Err(error) = streamed {
        let _ = upload.abort().await;
        return Err(error);
    }
    upload.finish().await?;
    Ok(artefact.clone())
}

/// Decrypted with the source's identity into a private temporary file, sealed for the target.
async fn reseal(
    source: &Repository,
    target: &Repository,
    manifest: &Manifest,
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
    let (mut file, findings) = read_plain_into(source, artefact, identities, (file, temp.path()), &|n| {
        progress.advance(n)
    })
    .await?;
    ensure_sound(source, artefact, &findings)?;
    let io = |source| Error::Io {
        action: "read",
        path: temp.path().to_path_buf(),
        source,
    };
    file.rewind().map_err(io)?;
    let mut writer = ArtefactWriter::start(target, &manifest.id, &artefact.name).await?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(io(error));
            }
        };
        if let Err(error) = writer.write(&buffer[..n]).await {
            let _ = writer.abort().await;
            return Err(error.into());
        }
    }
    Ok(writer.finish(artefact.plain_sha256.clone()).await?)
}
