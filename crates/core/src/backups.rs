//! Backups already in a repository: verify them (stored hashes; with an identity, the plain data
//! and the native snapshot check) and restore one into a member data directory.

use std::path::{Path, PathBuf};

use lifeboat_etcd_data::{HashKv, HashRules};
use lifeboat_repo::{Artefact, BackupId, EtcdFacts, HashKvRecord, Identity, Manifest, Repository};
use serde::Serialize;

use crate::backup::ETCD_ARTEFACT;
use crate::blocking::blocking;
use crate::fsio::io_error;
use crate::snapshot_restore::{RestoreOptions, RestoreReport, preflight, restore};
use crate::{Cancel, Error, Progress, Result};

/// What verifying one artefact found.
#[derive(Debug, Clone, Serialize)]
pub struct ArtefactCheck {
    pub name: String,
    pub key: String,
    /// Empty when the artefact is sound.
    pub findings: Vec<String>,
    /// Whether the plain data was read (decrypted, decompressed, checked).
    pub read_data: bool,
    /// What could not be checked, and why (e.g. a HashKV the member could not give).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What verifying one backup found.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCheck {
    /// The backup's ID (for an untrusted manifest, its directory's name).
    pub id: String,
    pub ok: bool,
    pub artefacts: Vec<ArtefactCheck>,
}

pub(crate) fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".lifeboat-download-")
        .tempfile_in(dir)
        .map_err(|source| Error::Io {
            action: "create a temporary file in",
            path: dir.to_path_buf(),
            source,
        })
}

/// Reads an artefact's plain bytes into `file` (at `path`). A decryption failure on intact stored
/// bytes is an error (wrong identity); on damaged ones it is the damage that is reported.
pub(crate) async fn read_plain_into(
    repo: &Repository,
    artefact: &Artefact,
    identities: &[Identity],
    (file, path): (std::fs::File, &Path),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(std::fs::File, Vec<String>)> {
    match repo
        .read_plain(artefact, identities.to_vec(), file, progress)
        .await
    {
        Ok((file, read)) => Ok((file, artefact.mismatches(&read))),
        Err(lifeboat_repo::Error::Io { source, .. }) => Err(io_error("write", path, source, 0)),
        Err(error @ (lifeboat_repo::Error::Decrypt { .. } | lifeboat_repo::Error::Compression { .. })) => {
            let findings = match repo.read_stored(artefact, &|_| {}).await {
                Ok(stored) => artefact.mismatches(&stored),
                Err(too_large @ lifeboat_repo::Error::TooLarge { .. }) => vec![too_large.to_string()],
                Err(other) => return Err(other.into()),
            };
            if findings.is_empty() {
                return Err(error.into());
            }
            Err(damaged(repo, artefact, &findings))
        }
        Err(lifeboat_repo::Error::MissingObject { .. }) => {
            Err(damaged(repo, artefact, &["the object is missing".to_string()]))
        }
        Err(too_large @ lifeboat_repo::Error::TooLarge { .. }) => {
            Err(damaged(repo, artefact, &[too_large.to_string()]))
        }
        Err(error) => Err(error.into()),
    }
}

/// `Ok` when reading `artefact` back found nothing; otherwise the damage, named.
pub(crate) fn ensure_sound(repo: &Repository, artefact: &Artefact, findings: &[String]) -> Result<()> {
    match findings.is_empty() {
        true => Ok(()),
        false => Err(damaged(repo, artefact, findings)),
    }
}

/// The etcd snapshot artefact of `manifest`, or a usage error naming the backup's kind.
pub(crate) fn etcd_artefact(manifest: &Manifest) -> Result<&Artefact> {
    manifest
        .artefacts
        .iter()
        .find(|a| a.name == ETCD_ARTEFACT)
        .ok_or_else(|| Error::Usage {
            message: format!(
                "backup {} holds no etcd snapshot (kind {}); choose an etcd backup",
                manifest.id, manifest.kind
            ),
        })
}

/// Fetches the etcd snapshot of `manifest` into the new private file `path`, decrypted and checked
/// against the manifest: a mismatch is [`Error::BackupDamaged`]. Cancelled, the file is left for
/// the caller to remove.
pub async fn fetch_snapshot(
    repo: &Repository,
    manifest: &Manifest,
    identities: &[Identity],
    path: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<()> {
    let file = crate::snapshot_restore::create_private(path)?;
    fetch_snapshot_into(repo, manifest, identities, (file, path), progress, cancel).await
}

/// [`fetch_snapshot`] into an open file (`path` names it in errors).
pub async fn fetch_snapshot_into(
    repo: &Repository,
    manifest: &Manifest,
    identities: &[Identity],
    (file, path): (std::fs::File, &Path),
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<()> {
    let artefact = etcd_artefact(manifest)?;
    // Nothing deletes the backup while it is read.
    let lock = crate::backup::lock(repo, "fetch", lifeboat_repo::LockKind::Shared, cancel).await?;
    progress.start(Some(artefact.stored_size));
    let read = cancel
        .run(read_plain_into(repo, artefact, identities, (file, path), &|n| {
            progress.advance(n)
        }))
        .await;
    progress.finish();
    lock.release().await;
    let (_, findings) = read?;
    ensure_sound(repo, artefact, &findings)
}

/// Reads an artefact whole into `sink`, decrypted, and checks it against its manifest entry.
pub(crate) async fn read_checked<W: std::io::Write + Send + 'static>(
    repo: &Repository,
    artefact: &Artefact,
    identities: &[Identity],
    sink: W,
) -> Result<W> {
    let (sink, read) = repo
        .read_plain(artefact, identities.to_vec(), sink, &|_| {})
        .await?;
    ensure_sound(repo, artefact, &artefact.mismatches(&read))?;
    Ok(sink)
}

fn damaged(repo: &Repository, artefact: &Artefact, findings: &[String]) -> Error {
    Error::BackupDamaged {
        repo: repo.storage().repo().to_string(),
        id: artefact.key.split('/').nth(1).unwrap_or_default().to_string(),
        object: artefact.key.clone(),
        finding: findings.join("; "),
    }
}

/// Verifies one backup. Without identities only the stored bytes are re-read and hashed; with
/// them each artefact is also decrypted and decompressed, and an etcd snapshot is checked natively
/// in a private temporary file under `temp_dir`.
pub async fn verify_backup(
    repo: &Repository,
    manifest: &Manifest,
    identities: Option<&[Identity]>,
    temp_dir: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<BackupCheck> {
    cancel
        .run(verify_uncancelled(repo, manifest, identities, temp_dir, progress))
        .await
}

async fn verify_uncancelled(
    repo: &Repository,
    manifest: &Manifest,
    identities: Option<&[Identity]>,
    temp_dir: &Path,
    progress: &dyn Progress,
) -> Result<BackupCheck> {
    let mut artefacts = Vec::new();
    for artefact in &manifest.artefacts {
        progress.start(Some(artefact.stored_size));
        let advance = |n| progress.advance(n);
        let mut notes = Vec::new();
        let findings = match identities {
            None => match repo.read_stored(artefact, &advance).await {
                Ok(read) => artefact.mismatches(&read),
                Err(lifeboat_repo::Error::MissingObject { .. }) => vec!["the object is missing".into()],
                Err(too_large @ lifeboat_repo::Error::TooLarge { .. }) => vec![too_large.to_string()],
                Err(error) => return Err(error.into()),
            },
            Some(identities) => {
                let temp = temp_file(temp_dir)?;
                let file = temp.as_file().try_clone().map_err(|source| Error::Io {
                    action: "open",
                    path: temp.path().to_path_buf(),
                    source,
                })?;
                match read_plain_into(repo, artefact, identities, (file, temp.path()), &advance).await {
                    Ok((_, findings)) if !findings.is_empty() => findings,
                    Ok(_) if artefact.name == ETCD_ARTEFACT => {
                        let path = temp.path().to_path_buf();
                        let recorded = manifest.etcd.clone();
                        let (findings, hash_notes) =
                            blocking(move || snapshot_findings(&path, recorded.as_ref())).await?;
                        notes = hash_notes;
                        findings
                    }
                    Ok(_) => Vec::new(),
                    Err(Error::BackupDamaged { finding, .. }) => vec![finding],
                    Err(error) => return Err(error),
                }
            }
        };
        progress.finish();
        artefacts.push(ArtefactCheck {
            name: artefact.name.clone(),
            key: artefact.key.clone(),
            findings,
            read_data: identities.is_some(),
            notes,
        });
    }
    Ok(BackupCheck {
        id: manifest.id.to_string(),
        ok: artefacts.iter().all(|a| a.findings.is_empty()),
        artefacts,
    })
}

/// The check of a backup whose manifest cannot be read.
pub fn unreadable_manifest(directory: &str, error: &lifeboat_repo::Error) -> BackupCheck {
    BackupCheck {
        id: directory.to_string(),
        ok: false,
        artefacts: vec![ArtefactCheck {
            name: "manifest.json".into(),
            key: format!("backups/{directory}/manifest.json"),
            findings: vec![error.to_string()],
            read_data: false,
            notes: Vec::new(),
        }],
    }
}

/// The snapshot's findings, then whether it hashes as the member did when it was taken: a
/// mismatch is a finding, a comparison that cannot be made a note.
fn snapshot_findings(path: &Path, recorded: Option<&EtcdFacts>) -> Result<(Vec<String>, Vec<String>)> {
    let report = crate::snapshot_file::verify(path)?;
    let mut findings: Vec<String> = report.findings.iter().map(|f| format!("snapshot: {f}")).collect();
    if matches!(report.trailer, lifeboat_etcd_data::Trailer::Absent) {
        findings.push("snapshot: no sha256 trailer".into());
    }
    let mut notes = Vec::new();
    if !findings.is_empty() {
        return Ok((findings, notes));
    }
    match hash_kv_comparison(path, recorded, None)? {
        HashKvComparison::Equal(_) => {}
        HashKvComparison::Differs { recorded, computed } => findings.push(format!(
            "snapshot: HashKV at revision {} is {computed}, the member's was {}: the data differs from what the member held",
            recorded.revision, recorded.hash
        )),
        HashKvComparison::Short(reason) => findings.push(format!("snapshot: HashKV: {reason}")),
        HashKvComparison::NotComparable(reason) => notes.push(format!("HashKV not comparable: {reason}")),
    }
    Ok((findings, notes))
}

/// How a snapshot file's HashKV compares with the one its member gave at backup time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKvComparison {
    Equal(HashKvRecord),
    Differs {
        recorded: HashKvRecord,
        computed: u32,
    },
    /// The file does not reach the recorded revision.
    Short(String),
    NotComparable(String),
}

/// Recomputes the member's HashKV from the file, with the member's revision, compact revision
/// and version's rules; `known`, the file's hash computed already by `rules`, is used instead
/// when it covers the same ones.
pub fn hash_kv_comparison(
    path: &Path,
    facts: Option<&EtcdFacts>,
    known: Option<(HashKv, HashRules)>,
) -> Result<HashKvComparison> {
    let Some(facts) = facts else {
        return Ok(HashKvComparison::NotComparable(
            "the backup records no etcd facts".into(),
        ));
    };
    let Some(recorded) = facts.hash_kv else {
        let reason = facts
            .hash_kv_missing
            .clone()
            .unwrap_or_else(|| "the backup records no HashKV (made before lifeboat recorded it)".into());
        return Ok(HashKvComparison::NotComparable(reason));
    };
    let rules = HashRules::of(lifeboat_etcd_data::Version::parse(&facts.version));
    let computed = match known {
        Some((known, known_rules))
            if known.revision == recorded.revision
                && known.compact_revision == recorded.compact_revision
                && known_rules == rules =>
        {
            Ok(known)
        }
        _ => crate::snapshot_file::hash_kv(
            path,
            Some(recorded.revision),
            Some(recorded.compact_revision),
            rules,
        ),
    };
    match computed {
        Ok(computed) if computed.hash == recorded.hash => Ok(HashKvComparison::Equal(recorded)),
        Ok(computed) => Ok(HashKvComparison::Differs {
            recorded,
            computed: computed.hash,
        }),
        Err(Error::SnapshotFile {
            source:
                source @ (lifeboat_etcd_data::Error::CompactBelowFile { .. }
                | lifeboat_etcd_data::Error::Compacted { .. }),
            ..
        }) => Ok(HashKvComparison::NotComparable(format!(
            "compacted since: {source}"
        ))),
        Err(Error::SnapshotFile {
            source: source @ lifeboat_etcd_data::Error::FutureRevision { .. },
            ..
        }) => Ok(HashKvComparison::Short(source.to_string())),
        Err(error) => Err(error),
    }
}

/// Restores backup `id` into `options.data_dir` (`options.snapshot` is ignored): the snapshot is
/// fetched, decrypted and checked against the manifest into a private temporary file beside the
/// data directory, then restored natively; the temporary file is always removed.
pub async fn restore_backup(
    repo: &Repository,
    id: &BackupId,
    identities: &[Identity],
    options: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(Manifest, RestoreReport)> {
    cancel
        .run(restore_uncancelled(repo, id, identities, options, progress))
        .await
}

async fn restore_uncancelled(
    repo: &Repository,
    id: &BackupId,
    identities: &[Identity],
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<(Manifest, RestoreReport)> {
    preflight(options)?;
    let manifest = repo.manifest(id).await?;
    let artefact = etcd_artefact(&manifest)?;
    let parent = match options.data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&parent)
        .map_err(|source| Error::Io {
            action: "create",
            path: parent.clone(),
            source,
        })?;
    let temp = temp_file(&parent)?;
    let file = temp.reopen().map_err(|source| Error::Io {
        action: "open",
        path: temp.path().to_path_buf(),
        source,
    })?;
    progress.start(Some(artefact.stored_size));
    let read = read_plain_into(repo, artefact, identities, (file, temp.path()), &|n| {
        progress.advance(n)
    })
    .await;
    progress.finish();
    let (file, findings) = read?;
    ensure_sound(repo, artefact, &findings)?;
    let options = RestoreOptions {
        snapshot: temp.path().to_path_buf(),
        ..options.clone()
    };
    // The temporary file stays here: if this future is dropped, it is removed.
    let report = blocking(move || {
        file.sync_all().map_err(|source| Error::Io {
            action: "fsync",
            path: options.snapshot.clone(),
            source,
        })?;
        restore(&options)
    })
    .await?;
    drop(temp);
    Ok((manifest, report))
}

/// Writes the plain bytes of one artefact of backup `id` to `sink` (stdout, for `dump`): the one
/// named `name`, or the only one. The bytes stream as they are decrypted; if they then fail the
/// manifest's size or sha256, an error follows them, so `set -o pipefail` callers notice.
pub async fn dump<W: std::io::Write + Send + 'static>(
    repo: &Repository,
    id: &BackupId,
    name: Option<&str>,
    identities: &[Identity],
    sink: W,
    cancel: &Cancel,
) -> Result<()> {
    cancel
        .run(dump_uncancelled(repo, id, name, identities, sink))
        .await
}

async fn dump_uncancelled<W: std::io::Write + Send + 'static>(
    repo: &Repository,
    id: &BackupId,
    name: Option<&str>,
    identities: &[Identity],
    sink: W,
) -> Result<()> {
    let manifest = repo.manifest(id).await?;
    let names: Vec<&str> = manifest.artefacts.iter().map(|a| a.name.as_str()).collect();
    let artefact = match name {
        Some(name) => manifest.artefacts.iter().find(|a| a.name == name),
        None if manifest.artefacts.len() == 1 => manifest.artefacts.first(),
        None => None,
    };
    let Some(artefact) = artefact else {
        return Err(Error::Usage {
            message: format!(
                "backup {id} has artefacts {}; name one with --artifact",
                names.join(", ")
            ),
        });
    };
    read_checked(repo, artefact, identities, sink).await?;
    Ok(())
}
